"""How close a model gets to the best possible ranking, on a world whose truth we know.

The synthetic world keeps every user's true preference for every item, so the oracle's
top-k (the items each user truly prefers most, among those released and not yet seen)
is the ceiling a recommender can reach. Two comparisons per fold:

* observed nDCG@k: model vs oracle on what users actually went on to watch;
* true-preference share: mean true preference of the model's top-k over the oracle's,
  after shifting preferences so the catalogue's least-preferred item scores 0 for the
  user (1.0 = the oracle's choice; popularity typically lands far below).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reelrank.data.synthetic import GroundTruth
from reelrank.evaluation.metrics import ndcg_at_k
from reelrank.evaluation.splits import TimeFold, build_relevant
from reelrank.schema import ITEM_ID, USER_ID


def true_preference_share(
    truth: GroundTruth, recommendations: pd.DataFrame, oracle: pd.DataFrame
) -> float:
    """Mean over users of sum(true pref of model's items) / sum(true pref of oracle's items).

    Preferences are shifted per user by their minimum over the catalogue so they are >= 0.
    """
    users = np.sort(oracle[USER_ID].unique())
    floor = truth.relevance_matrix(users).min(axis=1)
    floor_of = pd.Series(floor, index=users)

    def total(frame: pd.DataFrame) -> pd.Series:
        frame = frame[frame[USER_ID].isin(users)]
        pref = truth.relevance(frame[USER_ID].to_numpy(), frame[ITEM_ID].to_numpy())
        shifted = pref - floor_of.reindex(frame[USER_ID]).to_numpy()
        return pd.Series(shifted, index=frame[USER_ID].to_numpy()).groupby(level=0).sum()

    model_total = total(recommendations).reindex(users, fill_value=0.0)
    oracle_total = total(oracle).reindex(users)
    share = (model_total / oracle_total).replace([np.inf, -np.inf], np.nan)
    return float(share.mean())


def oracle_comparison(
    truth: GroundTruth, fold: TimeFold, recommendations: dict[str, pd.DataFrame], k: int = 10
) -> list[dict[str, Any]]:
    """One row per model (and the oracle) for a fold: observed nDCG@k, ratio to the oracle's,
    and the true-preference share."""
    relevant = build_relevant(fold.train, fold.test)
    users = np.sort(relevant[USER_ID].unique())
    oracle = truth.oracle_ranking(
        users, k=k, exclude=fold.train[[USER_ID, ITEM_ID]], as_of=fold.cutoff
    )
    oracle_ndcg = ndcg_at_k(oracle, relevant, k)
    rows = [
        {
            "fold": fold.fold,
            "model": "oracle",
            f"ndcg_at_{k}": oracle_ndcg,
            "ratio_to_oracle": 1.0,
            "true_preference_share": 1.0,
        }
    ]
    for name, recs in recommendations.items():
        score = ndcg_at_k(recs, relevant, k)
        rows.append(
            {
                "fold": fold.fold,
                "model": name,
                f"ndcg_at_{k}": score,
                "ratio_to_oracle": score / oracle_ndcg if oracle_ndcg > 0 else float("nan"),
                "true_preference_share": true_preference_share(truth, recs, oracle),
            }
        )
    return rows


def oracle_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """The per-fold rows of :func:`oracle_comparison` averaged over folds, one per model."""
    means = rows.groupby("model", sort=False).mean(numeric_only=True)
    return means.drop(columns="fold", errors="ignore").reset_index()
