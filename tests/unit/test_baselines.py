from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from reelrank.models.baselines import ItemKNNBaseline, PopularityBaseline

EVENTS = pd.DataFrame(
    {
        "user_id": [1, 1, 2, 2, 3, 3, 4],
        "item_id": [10, 11, 10, 12, 11, 12, 10],
    }
)


def test_popularity_ranks_by_count_and_excludes_seen() -> None:
    recs = PopularityBaseline().fit(EVENTS).recommend([4, 99], k=3)
    assert recs[recs.user_id == 99].item_id.tolist() == [10, 11, 12]
    assert 10 not in recs[recs.user_id == 4].item_id.tolist()
    assert recs.groupby("user_id")["rank"].apply(list).tolist() == [[1, 2], [1, 2, 3]]


def test_item_knn_prefers_co_watched_items() -> None:
    events = pd.DataFrame(
        {"user_id": [1, 1, 2, 2, 3, 3, 5, 5, 5], "item_id": [1, 2, 1, 2, 1, 2, 3, 4, 5]}
    )
    recs = ItemKNNBaseline(neighbours=2, shrinkage=0.0).fit(events).recommend([6, 1], k=1)
    # user 1 saw 1 and 2 only; the unknown user 6 gets the popular list
    assert recs[recs.user_id == 6].item_id.tolist() == [1]
    knn = ItemKNNBaseline(shrinkage=0.0).fit(
        pd.concat([events, pd.DataFrame({"user_id": [7], "item_id": [1]})])
    )
    top = knn.recommend([7], k=1)
    assert top.item_id.tolist() == [2]


def test_k_larger_than_catalogue_returns_what_exists() -> None:
    recs = PopularityBaseline().fit(EVENTS).recommend([1], k=50)
    assert recs.item_id.tolist() == [12]


def test_clone_and_validation() -> None:
    model = clone(ItemKNNBaseline(neighbours=5))
    assert model.get_params()["neighbours"] == 5
    with pytest.raises(ValueError, match="neighbours"):
        ItemKNNBaseline(neighbours=0).fit(EVENTS)
    with pytest.raises(ValueError, match="k must be positive"):
        PopularityBaseline().fit(EVENTS).recommend([1], k=0)
    assert np.isfinite(PopularityBaseline().fit(EVENTS).recommend([1, 2], k=2).score).all()
