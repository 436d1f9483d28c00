"""Stage 3: the re-ranker's filters, boosts and diversity, and its trade-off measurement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrank.evaluation.metrics import intra_list_diversity
from reelrank.exceptions import ValidationError
from reelrank.models.reranking import (
    ItemAttributes,
    RerankConfig,
    genre_bits,
    mmr_order,
    rerank,
)

DAY = 86_400.0
NOW = 1_000 * DAY
# Six items: 0-2 are Drama (top scores), 3 Comedy, 4 Horror (unreleased), 5 Drama+Comedy.
GENRES = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=bool)
ATTRIBUTES = ItemAttributes(
    genres=genre_bits(GENRES),
    release_seconds=np.array([0, 10, 20, 990, 1_100, np.nan]) * DAY,
    popularity_percentile=np.array([1.0, 0.9, 0.8, 0.2, 0.1, 0.5]),
)
ITEM_IDS = np.array([10, 11, 12, 13, 14, 15])
SCORES = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
COLUMNS = np.arange(6)


def row(config: RerankConfig, k: int = 4) -> list[int]:
    picks = rerank(SCORES, COLUMNS, ITEM_IDS, ATTRIBUTES, config, k, NOW)
    return ITEM_IDS[COLUMNS[picks]].tolist()


def test_no_strength_keeps_the_ranker_order_minus_the_unreleased() -> None:
    assert row(RerankConfig(), k=6) == [10, 11, 12, 13, 15]  # 14 releases after now
    everything = RerankConfig(exclude_unreleased=False)
    assert row(everything, k=6) == [10, 11, 12, 13, 14, 15]


def test_the_exclusion_list_is_a_hard_filter() -> None:
    assert row(RerankConfig(exclude=frozenset({10, 13})), k=6) == [11, 12, 15]


def test_diversity_brings_other_genres_up() -> None:
    plain, diverse = row(RerankConfig(), k=3), row(RerankConfig(diversity=0.7), k=3)
    assert plain == [10, 11, 12]
    assert diverse[0] == 10
    assert 13 in diverse  # the comedy is pulled in by the second slot


def test_freshness_favours_new_releases_and_long_tail_the_unpopular() -> None:
    assert row(RerankConfig(freshness=1.0, freshness_half_life_days=50), k=1) == [13]
    assert row(RerankConfig(long_tail=1.0), k=2)[0] == 13


def test_mmr_with_no_diversity_is_the_relevance_order() -> None:
    relevance = np.array([0.2, 0.9, 0.5])
    assert mmr_order(relevance, genre_bits(GENRES[:3]), 0.0, 3).tolist() == [1, 2, 0]


def test_strengths_are_bounded() -> None:
    with pytest.raises(ValidationError, match="diversity"):
        RerankConfig(diversity=1.5)


def test_intra_list_diversity_is_the_mean_pairwise_genre_distance() -> None:
    genres = pd.DataFrame(GENRES, index=ITEM_IDS, columns=["drama", "comedy", "horror"])
    same = pd.DataFrame({"user_id": 1, "item_id": [10, 11], "rank": [1, 2]})
    apart = pd.DataFrame({"user_id": 1, "item_id": [10, 13], "rank": [1, 2]})
    half = pd.DataFrame({"user_id": 1, "item_id": [10, 15], "rank": [1, 2]})
    assert intra_list_diversity(same, genres) == 0.0
    assert intra_list_diversity(apart, genres) == 1.0
    assert intra_list_diversity(half, genres) == pytest.approx(0.5)


def test_the_recommender_reranks_as_of_the_given_time(fitted_genre_model) -> None:
    plain = fitted_genre_model.recommend([1, 2], k=8)
    diverse = fitted_genre_model.recommend([1, 2], k=8, rerank=RerankConfig(diversity=0.8))
    assert set(plain["user_id"]) == set(diverse["user_id"]) == {1, 2}
    assert not plain.equals(diverse)
    ranked = fitted_genre_model.rank(fitted_genre_model.candidates([1, 2]))
    again = fitted_genre_model.rerank(ranked, RerankConfig(diversity=0.8), k=8)
    pd.testing.assert_frame_equal(
        again[["user_id", "item_id"]].reset_index(drop=True),
        diverse[["user_id", "item_id"]].reset_index(drop=True),
    )


def test_recommend_reads_the_freshness_boost_on_its_clock(fitted_genre_model) -> None:
    """``now`` is the re-ranker's clock (the service and batch-recommend pass the time they
    serve at): the same row as ``rerank(..., now=...)``, and by default the end of training."""
    model, users = fitted_genre_model, [1, 2]
    fresh = RerankConfig(freshness=1.0)
    later = model.trained_until_ + pd.Timedelta(days=3_650)
    served = model.recommend(users, k=8, rerank=fresh, now=later)
    ranked = model.rank(model.candidates(users))
    expected = model.rerank(ranked, fresh, k=8, now=later)
    pd.testing.assert_frame_equal(
        served[["user_id", "item_id"]].reset_index(drop=True),
        expected[["user_id", "item_id"]].reset_index(drop=True),
    )
    default = model.recommend(users, k=8, rerank=fresh)
    at_end = model.recommend(users, k=8, rerank=fresh, now=model.trained_until_)
    pd.testing.assert_frame_equal(default, at_end)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 80),
    k=st.integers(1, 20),
    diversity=st.sampled_from([0.0, 0.05, 0.1, 0.5, 0.9, 1.0]),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_the_compiled_mmr_picks_what_the_numpy_reference_picks(n, k, diversity, seed, ties):
    from reelrank.models.reranking import mmr_order, mmr_order_numpy

    rng = np.random.default_rng(seed)
    relevance = rng.integers(0, 4, n).astype(float) if ties else rng.random(n)
    bits = genre_bits(rng.random((n, 19)) < 0.2)
    got = mmr_order(relevance, bits, diversity, k)
    assert got.tolist() == mmr_order_numpy(relevance, bits, diversity, k).tolist()
