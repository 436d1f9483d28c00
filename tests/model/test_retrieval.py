"""Stage-1 sources: one interface, correct maths, the union and candidate recall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelrank.evaluation.candidates import candidate_recall
from reelrank.models.interactions import InteractionMatrix
from reelrank.models.retrieval import SOURCES, make_source, retrieve
from reelrank.models.sources import EASESource, PopularitySource
from reelrank.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID

T0 = pd.Timestamp("2021-01-01", tz="UTC")


def frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    """(user, item, age in days before the last event) -> canonical events."""
    last = max(age for _, _, age in rows)
    return pd.DataFrame(
        {
            USER_ID: [u for u, _, _ in rows],
            ITEM_ID: [i for _, i, _ in rows],
            RATING: 4.0,
            TIMESTAMP: [T0 + pd.Timedelta(days=last - age) for _, _, age in rows],
        }
    )


@pytest.fixture
def small_events() -> pd.DataFrame:
    rows = [(u, i, float(u + i) % 5) for u in range(1, 9) for i in range(1, 13) if (u * i) % 3]
    return frame(rows)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_has_the_same_interface(name, small_events):
    params = {"factors": 4, "iterations": 3} if name == "mf" else {}
    source = make_source(name, **params).fit(small_events)
    cands = source.candidates([1, 2, 999], n=3)
    assert list(cands.columns) == [USER_ID, ITEM_ID, "score", "rank"]
    seen = set(zip(small_events[USER_ID], small_events[ITEM_ID], strict=True))
    assert not any((u, i) in seen for u, i in zip(cands[USER_ID], cands[ITEM_ID], strict=True))
    for _, group in cands.groupby(USER_ID):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert group["score"].is_monotonic_decreasing
    scores = source.all_scores([1, 999])
    assert scores.shape == (2, source.interactions_.n_items)
    if source.personalised:
        assert 999 not in set(cands[USER_ID])  # unknown users: no personal candidates
        assert np.isnan(scores[1]).all()
    else:
        assert 999 in set(cands[USER_ID])


def test_popularity_weights_recent_events_more():
    # item 1: three old events; item 2: two fresh ones
    events = frame([(1, 1, 200.0), (2, 1, 200.0), (3, 1, 200.0), (4, 2, 0.0), (5, 2, 0.0)])
    recent = PopularitySource(half_life_days=10).fit(events)
    flat = PopularitySource(half_life_days=1e9).fit(events)
    assert recent.candidates([99], n=1)[ITEM_ID].item() == 2
    assert flat.candidates([99], n=1)[ITEM_ID].item() == 1


def test_ease_matches_the_closed_form(small_events):
    source = EASESource(l2=2.0).fit(small_events)
    X = source.interactions_.seen.toarray().astype(float)
    P = np.linalg.inv(X.T @ X + 2.0 * np.eye(X.shape[1]))
    B = np.eye(X.shape[1]) - P / np.diag(P)
    np.testing.assert_allclose(source.weights_, B, atol=1e-5)
    np.testing.assert_allclose(
        source.all_scores([1], exclude_seen=False)[0], X[0] @ B, rtol=1e-4, atol=1e-5
    )


def test_interaction_matrix_extends_catalogue_and_maps_unknowns(small_events):
    matrix = InteractionMatrix.from_events(small_events, catalogue=[500])
    assert 500 in matrix.item_ids
    assert matrix.user_rows([1, 12345]).tolist()[1] == -1
    assert matrix.item_columns([500, 777]).tolist()[1] == -1


def test_union_keeps_every_source_score_and_rank(small_events):
    matrix = InteractionMatrix.from_events(small_events)
    sources = {"popularity": PopularitySource().fit(matrix), "ease": EASESource(l2=1).fit(matrix)}
    union = retrieve(sources, matrix, [1, 2], n=2)
    per_source = {name: s.candidates([1, 2], n=2) for name, s in sources.items()}
    expected = set().union(
        *(set(zip(c[USER_ID], c[ITEM_ID], strict=True)) for c in per_source.values())
    )
    assert set(zip(union[USER_ID], union[ITEM_ID], strict=True)) == expected
    assert {"popularity_score", "popularity_rank", "ease_score", "ease_rank"} <= set(union)
    merged = per_source["ease"].merge(union, on=[USER_ID, ITEM_ID])
    assert (merged["rank"] == merged["ease_rank"]).all()


def test_candidate_recall_by_hand():
    candidates = pd.DataFrame(
        {
            USER_ID: [1, 1, 1, 2],
            ITEM_ID: [10, 11, 12, 10],
            "a_rank": [1.0, 2.0, np.nan, 1.0],
            "b_rank": [np.nan, 60.0, 1.0, np.nan],
        }
    )
    relevant = pd.DataFrame({USER_ID: [1, 1, 2, 2], ITEM_ID: [11, 12, 10, 99]})
    table = candidate_recall(candidates, relevant, ["a", "b"], cutoffs=(50, 100))
    # user 1: a finds 11 -> 1/2; user 2: a finds 10 -> 1/2
    assert table.loc["a", "recall@50"] == pytest.approx(0.5)
    # b@50 finds 12 for user 1 only -> (1/2 + 0) / 2 ; b@100 also finds 11
    assert table.loc["b", "recall@50"] == pytest.approx(0.25)
    assert table.loc["b", "recall@100"] == pytest.approx(0.5)
    assert table.loc["union", "recall@50"] == pytest.approx((1.0 + 0.5) / 2)


def test_als_factors_do_not_depend_on_the_thread_count(small_events):
    """The mf source runs ALS on every core (num_threads=0) because each user's and item's
    solve is independent: the factors are bitwise those of one thread."""
    from implicit.cpu.als import AlternatingLeastSquares

    seen = InteractionMatrix.from_events(small_events).seen.astype(np.float32).tocsr()
    factors = []
    for threads in (1, 2):
        model = AlternatingLeastSquares(
            factors=8, iterations=5, num_threads=threads, random_state=0
        )
        model.fit(seen, show_progress=False)
        factors.append((np.asarray(model.user_factors), np.asarray(model.item_factors)))
    np.testing.assert_array_equal(factors[0][0], factors[1][0])
    np.testing.assert_array_equal(factors[0][1], factors[1][1])


def test_score_pairs_gives_shown_items_the_features_retrieval_gives_candidates(small_events):
    from reelrank.models.retrieval import retrieve_block, score_pairs

    matrix = InteractionMatrix.from_events(small_events)
    sources = {
        "popularity": PopularitySource().fit(matrix),
        "ease": EASESource(l2=10.0).fit(matrix),
    }
    users = np.array([1, 2, 3], dtype=np.int64)
    block = retrieve_block(sources, matrix, users, n=4)
    picked = np.array([len(block.rows) - 1, 0, 2, 0])  # any order, a repeat
    pairs = score_pairs(sources, matrix, users, block.rows[picked], block.item_columns[picked])
    np.testing.assert_array_equal(pairs.features, block.features[picked])
    assert pairs.feature_names == block.feature_names
    seen_col = matrix.seen[matrix.user_rows([1])[0]].indices[0]  # an item user 1 had
    seen = score_pairs(sources, matrix, users, np.array([0]), np.array([seen_col]))
    assert np.isneginf(seen.features[0, 0])
    assert np.isnan(seen.features[0, 1])
