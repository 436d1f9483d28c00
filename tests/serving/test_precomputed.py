"""The precomputed top-k table: stored lists round-trip; only a usable one is served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reelrank.batch.topk import SqliteTopK, lists_from_recommendations
from reelrank.models.catalogue import Catalogue
from serving.precomputed import PrecomputedLists


def _recommendations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [7, 7, 7, 3, 3, 3],
            "item_id": [30, 10, 20, 20, 30, 10],
            "score": [0.9, 0.5, 0.1, 2.0, 1.0, -1.0],
            "rank": [1, 2, 3, 1, 2, 3],
        }
    )


def _catalogue() -> Catalogue:
    items = pd.DataFrame({"item_id": [10, 20, 30], "title": ["a", "b", "c"]})
    return Catalogue.from_items(items, np.array([10, 20, 30]))


def test_lists_round_trip_through_the_sqlite_table(tmp_path: Path) -> None:
    store = SqliteTopK(tmp_path / "online_store.db")
    assert store.get(7) is None  # no table yet: a miss, not an error
    lists = lists_from_recommendations(_recommendations())
    assert store.write(lists, "4") == 2
    entry = store.get(7)
    assert entry is not None
    assert (entry.version, entry.k) == ("4", 3)
    assert entry.items.tolist() == [30, 10, 20]
    assert entry.scores.tolist() == [0.9, 0.5, 0.1]
    assert store.get(99) is None
    store.write(lists.iloc[:1], "5")  # a new run replaces the whole table
    assert store.get(7) is None
    assert store.get(3) is not None
    store.close()


def test_only_the_served_version_with_enough_items_is_answered(tmp_path: Path) -> None:
    store = SqliteTopK(tmp_path / "online_store.db")
    store.write(lists_from_recommendations(_recommendations()), "4")
    lists = PrecomputedLists(store)
    catalogue = _catalogue()
    found = lists.lookup(7, "4", 2, catalogue)
    assert found is not None
    columns, scores = found
    assert catalogue.item_ids[columns].tolist() == [30, 10]
    assert scores.tolist() == [0.9, 0.5]
    assert lists.lookup(7, "5", 2, catalogue) is None  # stale: another model version
    assert lists.lookup(7, "4", 4, catalogue) is None  # shorter than the k asked for
    assert lists.lookup(8, "4", 2, catalogue) is None  # missing user
    small = Catalogue.from_items(pd.DataFrame({"item_id": [10]}), np.array([10]))
    assert lists.lookup(7, "4", 2, small) is None  # an item the served model lacks
    lists.close()


def test_the_service_answers_from_the_table_and_falls_back_online(
    fitted_model, settings, monkeypatch
) -> None:
    from reelrank.batch.inference import recommend_in_chunks
    from reelrank.features.feast.repo_config import sqlite_path
    from serving.service import RecommendationService
    from tests.serving.conftest import make_state

    users = np.asarray(fitted_model.interactions_.user_ids[:30], dtype=np.int64)
    # batch-recommend stores the rows of the default re-ranking, which the service serves,
    # re-ranked as of the run (the freshness boost reads the titles' ages then)
    now = pd.Timestamp.now(tz="UTC")
    lists = recommend_in_chunks(fitted_model, users, 10, 8, settings.rerank.config(), now)
    SqliteTopK(sqlite_path(settings)).write(lists, "1")
    online = RecommendationService(settings, loader=lambda s: make_state(fitted_model, s))
    online.load()
    stored = settings.model_copy(update={"serve_precomputed": True})
    service = RecommendationService(stored, loader=lambda s: make_state(fitted_model, s))
    service.load()
    for user in users.tolist():
        got, expected = service.recommend(user, k=10), online.recommend(user, k=10)
        assert [i.item_id for i in got.items] == [i.item_id for i in expected.items]
        assert got.stages["features"] == got.stages["ranking"] == 0.0  # from the table
        assert got.model_version == "1"
    user = int(users[0])
    assert service.recommend(user, k=11).stages["ranking"] > 0  # longer than stored: online
    other = settings.rerank.config().with_strengths(diversity=0.5)
    assert service.recommend(user, k=10, rerank=other).stages["ranking"] > 0  # not stored
    unknown = int(users.max()) + 10_000
    assert service.recommend(unknown, k=10).stages["ranking"] > 0  # not in the table: online
    newer = RecommendationService(stored, loader=lambda s: make_state(fitted_model, s, "2"))
    newer.load()
    assert newer.recommend(user, k=10).stages["ranking"] > 0  # stale version: online
