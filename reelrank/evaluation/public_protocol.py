"""recommenders-team's public MovieLens-100K protocol, reproduced to compare with their table.

Their benchmark (``examples/06_benchmarks/movielens.ipynb`` of recommenders-team/
recommenders) splits ratings with ``python_stratified_split(ratio=0.75, filter_by="item",
seed=42)``: per item, a random 75 % of its ratings train and the rest test. Every held-out
rating is relevant, items the user rated in training are not recommended, k = 10. This
module ports the split line by line (same random calls, same order) and their
``python_evaluation`` ranking metrics with binary relevance:

* precision@k, recall@k, MAP: averaged over the users both in the test set and in the
  recommendations;
* ``map``: the variant of their published MAP column (the sum of precision at each hit,
  over *all* of the user's relevant items); ``map@k`` divides by ``min(relevant, k)``;
* nDCG@k (binary gains): over every test user (a user with no hit counts 0).

It is a different task from the time folds the gate uses: a random split asks "what else
did this user rate, anywhere in their history", not "what will they watch next"
(``design_docs/03-model.md`` explains what that does to a ranker trained on time).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from reelrank.schema import ITEM_ID, RANK, USER_ID

K: Final = 10
RATIO: Final = 0.75
SEED: Final = 42


def stratified_split(
    events: pd.DataFrame, ratio: float = RATIO, filter_by: str = ITEM_ID, seed: int = SEED
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``python_stratified_split`` (random, one ratio), on ``events`` in their file order."""
    data = events.copy()
    rng = np.random.RandomState(seed)  # their np.random.seed + np.random.rand
    data["_random"] = rng.rand(len(data))
    data = data.sort_values([filter_by, "_random"])
    groups = data.groupby(filter_by)
    count = groups[filter_by].transform("count")
    share = (groups.cumcount() + 1) / count
    data = data.drop(columns="_random")
    return data[share <= ratio], data[(share > ratio) & (share <= 1.0)]


def metrics(test: pd.DataFrame, recommendations: pd.DataFrame, k: int = K) -> dict[str, float]:
    """Their ranking metrics of ``recommendations`` (``user_id, item_id, rank``) on ``test``."""
    truth = test[[USER_ID, ITEM_ID]].drop_duplicates()
    recs = recommendations[recommendations[RANK] <= k][[USER_ID, ITEM_ID, RANK]]
    common = np.intersect1d(truth[USER_ID].unique(), recs[USER_ID].unique())
    n_users = max(len(common), 1)
    truth_c = truth[truth[USER_ID].isin(common)]
    hits = recs[recs[USER_ID].isin(common)].merge(truth_c, on=[USER_ID, ITEM_ID])
    hits = hits.sort_values([USER_ID, RANK])
    n_hit = hits.groupby(USER_ID).size()
    actual = truth_c.groupby(USER_ID).size()
    precision_at_hits = (hits.groupby(USER_ID).cumcount() + 1) / hits[RANK]
    precision_sum = precision_at_hits.groupby(hits[USER_ID]).sum()
    relevant = actual.reindex(precision_sum.index)
    return {
        f"ndcg@{k}": float(per_user_ndcg(test, recommendations, k).mean()),
        f"precision@{k}": float((n_hit / k).sum() / n_users),
        f"recall@{k}": float((n_hit / actual.reindex(n_hit.index)).sum() / n_users),
        "map": float((precision_sum / relevant).sum() / n_users),
        f"map@{k}": float((precision_sum / np.minimum(relevant, k)).sum() / n_users),
    }


def per_user_ndcg(test: pd.DataFrame, recommendations: pd.DataFrame, k: int = K) -> pd.Series:
    """Their binary-gain nDCG@k of every test user (indexed by ``user_id``; a user with no
    recommendation or no hit scores 0): the mean is :func:`metrics`' ``ndcg@k``."""
    truth = test[[USER_ID, ITEM_ID]].drop_duplicates()
    recs = recommendations[recommendations[RANK] <= k][[USER_ID, ITEM_ID, RANK]]
    hits = recs.merge(truth, on=[USER_ID, ITEM_ID])
    dcg = (1.0 / np.log2(1.0 + hits[RANK])).groupby(hits[USER_ID]).sum()
    every = truth.groupby(USER_ID).size()
    ideal_gain = np.cumsum(1.0 / np.log2(1.0 + np.arange(1, k + 1)))
    idcg = pd.Series(ideal_gain[np.minimum(every.to_numpy(), k) - 1], index=every.index)
    return (dcg.reindex(idcg.index, fill_value=0.0) / idcg).rename(f"ndcg@{k}")
