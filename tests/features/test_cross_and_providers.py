"""Request-time cross features and the in-memory provider."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrank.exceptions import ValidationError
from reelrank.features import (
    CROSS_FEATURES,
    ITEM_FEATURES,
    USER_FEATURES,
    InMemoryFeatureProvider,
    build_item_features,
    build_user_features,
    cross_features,
)
from reelrank.features import columns as cols
from reelrank.features.cross import (
    ItemCrossInputs,
    UserCrossInputs,
    cross_feature_matrix,
    cross_feature_matrix_numpy,
)
from reelrank.features.protocol import FeatureProvider
from reelrank.schema import EVENT_TIMESTAMP, ITEM_ID, USER_ID
from tests.features.conftest import World


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    users = pd.DataFrame(0.0, index=pd.Index([1, 2], name=USER_ID), columns=list(USER_FEATURES))
    users.loc[1, "user_genre_share_drama"] = 0.8
    users.loc[1, "user_genre_share_comedy"] = 0.2
    users[cols.USER_RATING_MEAN] = [4.0, 2.5]
    users[cols.USER_MEAN_ITEM_LOG_POP] = [1.0, 3.0]
    items = pd.DataFrame(0.0, index=pd.Index([10, 11], name=ITEM_ID), columns=list(ITEM_FEATURES))
    items.loc[10, ["item_genre_drama", "item_genre_comedy"]] = 1.0
    items[cols.ITEM_RATING_MEAN_BAYES] = [3.5, 3.0]
    items[cols.ITEM_LOG_POP_30D] = [2.0, 0.5]
    return users, items


def test_cross_features_by_hand():
    users, items = _frames()
    pairs = pd.DataFrame({USER_ID: [1, 2, 1, 99], ITEM_ID: [10, 10, 11, 10]}, index=[5, 6, 7, 8])
    out = cross_features(users, items, pairs)
    assert list(out.columns) == list(CROSS_FEATURES)
    assert list(out.index) == [5, 6, 7, 8]
    assert out.loc[5, cols.CROSS_GENRE_AFFINITY_MEAN] == pytest.approx(0.5)
    assert out.loc[5, cols.CROSS_GENRE_AFFINITY_MAX] == pytest.approx(0.8)
    assert out.loc[5, cols.CROSS_RATING_GAP] == pytest.approx(0.5)
    assert out.loc[5, cols.CROSS_POPULARITY_GAP] == pytest.approx(1.0)
    assert out.loc[6, cols.CROSS_GENRE_AFFINITY_MAX] == pytest.approx(0.0)
    assert out.loc[6, cols.CROSS_POPULARITY_GAP] == pytest.approx(-1.0)
    assert np.isnan(out.loc[7, cols.CROSS_GENRE_AFFINITY_MEAN])  # item without genres
    assert out.loc[7, cols.CROSS_RATING_GAP] == pytest.approx(1.0)
    assert out.loc[8].isna().all()  # unknown user


def test_cross_features_refuse_frames_without_the_inputs():
    users, items = _frames()
    with pytest.raises(ValidationError, match="user_frame"):
        cross_features(
            users.drop(columns=[cols.USER_RATING_MEAN]),
            items,
            pd.DataFrame({USER_ID: [1], ITEM_ID: [10]}),
        )


@pytest.fixture(scope="module")
def provider(world: World) -> InMemoryFeatureProvider:
    return InMemoryFeatureProvider(
        build_user_features(world.events, world.users, world.items),
        build_item_features(world.events, world.items),
    )


def test_in_memory_provider_is_a_feature_provider(provider: InMemoryFeatureProvider):
    assert isinstance(provider, FeatureProvider)


def test_in_memory_provider_returns_the_latest_row_before_as_of(
    provider: InMemoryFeatureProvider,
):
    table = provider.item_table
    as_of = pd.Timestamp("2001-03-10 13:00", tz="UTC")
    out = provider.item_features([3, 999, 0, 3], as_of)
    assert list(out.index) == [3, 999, 0, 3]
    assert list(out.columns) == list(ITEM_FEATURES)
    expected = table[(table[ITEM_ID] == 3) & (table[EVENT_TIMESTAMP] == as_of.normalize())]
    assert out.iloc[0][cols.ITEM_EVENTS_TOTAL] == expected[cols.ITEM_EVENTS_TOTAL].item()
    assert out.loc[999].isna().all()
    assert out.dtypes.eq("float64").all()


def test_in_memory_provider_respects_the_ttl(provider: InMemoryFeatureProvider):
    last = provider.item_table[EVENT_TIMESTAMP].max()
    inside = provider.item_features([0], last + cols.ITEM_TTL)
    outside = provider.item_features([0], last + cols.ITEM_TTL + pd.Timedelta(seconds=1))
    assert inside.notna().all(axis=None)
    assert outside.isna().all(axis=None)
    before_any = provider.user_features([2], pd.Timestamp("2000-12-31", tz="UTC"))
    assert before_any.isna().all(axis=None)


def test_join_matches_single_time_lookups(provider: InMemoryFeatureProvider):
    times = pd.to_datetime(["2001-02-01 10:00", "2001-04-11 00:00", "2001-05-20 23:59"], utc=True)
    entity_df = pd.DataFrame({USER_ID: [2, 3, 4], ITEM_ID: [0, 1, 2], EVENT_TIMESTAMP: times})
    joined = provider.join(entity_df)
    for row, when in enumerate(times):
        users = provider.user_features([entity_df[USER_ID][row]], when)
        items = provider.item_features([entity_df[ITEM_ID][row]], when)
        np.testing.assert_array_equal(
            joined.loc[row, list(USER_FEATURES)].to_numpy(float), users.iloc[0].to_numpy()
        )
        np.testing.assert_array_equal(
            joined.loc[row, list(ITEM_FEATURES)].to_numpy(float), items.iloc[0].to_numpy()
        )


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(1, 40),
    one_user=st.booleans(),
    nan_share=st.sampled_from([0.0, 0.05, 0.3]),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
)
def test_compiled_cross_features_equal_the_numpy_definition(
    seed: int, n_items: int, one_user: bool, nan_share: float, scale: float
) -> None:
    """Bit for bit, NaN for NaN: the loop adds the genre products in numpy's order."""
    rng = np.random.default_rng(seed)
    n_genres = len(cols.ITEM_GENRE)
    flags = (rng.random((n_items, n_genres)) < 0.2).astype(float)
    flags[rng.random(flags.shape) < nan_share / 3] = np.nan
    items = pd.DataFrame(flags, columns=list(cols.ITEM_GENRE))
    items[cols.ITEM_RATING_MEAN_BAYES] = rng.normal(3.5, 1.0, n_items)
    items[cols.ITEM_LOG_POP_30D] = rng.normal(2.0, 2.0, n_items)
    items[items.columns[-2:]] = items[items.columns[-2:]].mask(rng.random((n_items, 2)) < nan_share)
    item_inputs = ItemCrossInputs(items)
    n_users = 1 if one_user else 2 * n_items
    shares = rng.random((n_users, n_genres)) * scale * (rng.random((n_users, n_genres)) < 0.6)
    shares[rng.random(shares.shape) < nan_share / 10] = np.nan
    means = rng.normal(3.5, 1.0, (2, n_users))
    means[rng.random(means.shape) < nan_share] = np.nan
    rows = rng.integers(0, n_items, n_users if not one_user else 3 * n_items)
    if one_user:
        users = UserCrossInputs(shares[0], float(means[0, 0]), float(means[1, 0]))
    else:
        users = UserCrossInputs(shares, means[0], means[1])
    _assert_same_bits(
        cross_feature_matrix(users, item_inputs, rows),
        cross_feature_matrix_numpy(users, item_inputs, rows),
    )
    if one_user:  # every item in order (item_rows=None)
        _assert_same_bits(
            cross_feature_matrix(users, item_inputs),
            cross_feature_matrix_numpy(users, item_inputs),
        )
    else:
        per_item = UserCrossInputs(shares[:n_items], means[0, :n_items], means[1, :n_items])
        _assert_same_bits(
            cross_feature_matrix(per_item, item_inputs),
            cross_feature_matrix_numpy(per_item, item_inputs),
        )


def _assert_same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal values, NaN where NaN, and the same sign of zero (== cannot see -0.0).

    Shares are ratios of counts, never -0.0; with -0.0 shares numpy's vectorised max may
    return either zero (scores cannot tell them apart), so the inputs do not hold any.
    """
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_cross_features_refuse_mismatched_sides() -> None:
    items = ItemCrossInputs(pd.DataFrame({c: [1.0, 0.0] for c in cols.ITEM_GENRE}))
    shares = np.full(len(cols.ITEM_GENRE), 0.1)
    with pytest.raises(ValidationError, match="user genre shares"):
        cross_feature_matrix(UserCrossInputs(shares[:-1], 3.0, 1.0), items)
    with pytest.raises(IndexError, match="item rows must lie in"):
        cross_feature_matrix(UserCrossInputs(shares, 3.0, 1.0), items, [0, 2])
    with pytest.raises(IndexError, match="item rows must lie in"):
        cross_feature_matrix(UserCrossInputs(shares, 3.0, 1.0), items, [-1])
    with pytest.raises(ValidationError, match="user rows for"):
        cross_feature_matrix(
            UserCrossInputs(np.vstack([shares] * 3), np.ones(3), np.ones(3)), items, [0, 1]
        )
