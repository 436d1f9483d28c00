"""The synthetic world: deterministic, canonical, and its statistics follow its parameters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import svds
from scipy.stats import spearmanr

from reelrank.data import validation as v
from reelrank.data.synthetic import (
    RANK,
    SCORE,
    GroundTruth,
    SyntheticConfig,
    SyntheticConfigError,
    SyntheticWorld,
    generate_world,
)
from reelrank.exceptions import DataSourceError, ValidationError
from reelrank.schema import (
    AGE,
    EARLIEST_TIMESTAMP,
    EVENTS,
    EVENTS_SCHEMA,
    GENDER,
    GENRE_VOCAB,
    GENRES,
    ITEM_ID,
    ITEMS,
    ITEMS_SCHEMA,
    OCCUPATION,
    RATING,
    RELEASE_DATE,
    TABLES,
    TIMESTAMP,
    USER_ID,
    USERS,
)

SMALL = SyntheticConfig(n_users=300, n_items=400, n_events=15_000, seed=7)


def gini(counts: np.ndarray) -> float:
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n = values.shape[0]
    return float((2 * np.arange(1, n + 1) - n - 1) @ values / (n * values.sum()))


def top_share(counts: np.ndarray, fraction: float = 0.1) -> float:
    values = np.sort(np.asarray(counts))[::-1]
    top = max(1, int(len(values) * fraction))
    return float(values[:top].sum() / values.sum())


def item_counts(world: SyntheticWorld, events: pd.DataFrame) -> np.ndarray:
    return np.bincount(events[ITEM_ID], minlength=world.config.n_items + 1)[1:]


def user_counts(world: SyntheticWorld, events: pd.DataFrame) -> np.ndarray:
    return np.bincount(events[USER_ID], minlength=world.config.n_users + 1)[1:]


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return generate_world(SyntheticConfig())


@pytest.fixture(scope="module")
def events(world: SyntheticWorld) -> pd.DataFrame:
    return world.events()


@pytest.fixture(scope="module")
def small_world() -> SyntheticWorld:
    return generate_world(SMALL)


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_frames() -> None:
    first, second = generate_world(SMALL), generate_world(SMALL)
    pd.testing.assert_frame_equal(first.users, second.users)
    pd.testing.assert_frame_equal(first.items, second.items)
    pd.testing.assert_frame_equal(first.events(), second.events())
    assert first.truth.equals(second.truth)


def test_different_seed_gives_different_world(small_world: SyntheticWorld) -> None:
    other = generate_world(replace(SMALL, seed=SMALL.seed + 1))
    assert not other.truth.equals(small_world.truth)
    assert not other.events().equals(small_world.events())
    assert not other.items[RELEASE_DATE].equals(small_world.items[RELEASE_DATE])


def test_event_stream_does_not_depend_on_chunk_size(small_world: SyntheticWorld) -> None:
    whole = small_world.events()
    chunks = list(small_world.iter_events(chunk_size=1_234))
    assert [len(c) for c in chunks[:-1]] == [1_234] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= 1_234
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert chunks[1].index[0] == 0  # every chunk has a fresh RangeIndex


# --- canonical frames ------------------------------------------------------------------------


def test_events_have_the_exact_canonical_schema(
    world: SyntheticWorld, events: pd.DataFrame
) -> None:
    assert list(events.columns) == EVENTS_SCHEMA.columns
    assert {c: str(t) for c, t in events.dtypes.items()} == EVENTS_SCHEMA.dtypes
    assert len(events) == world.config.n_events == world.n_events
    assert set(np.unique(events[RATING])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert events[USER_ID].between(1, world.config.n_users).all()
    assert events[ITEM_ID].between(1, world.config.n_items).all()


def test_users_and_items_have_the_canonical_schema(world: SyntheticWorld) -> None:
    users, items = world.users, world.items
    assert list(users.columns) == [USER_ID, AGE, GENDER, OCCUPATION]
    assert str(users[USER_ID].dtype) == "int64"
    assert users[USER_ID].tolist() == list(range(1, world.config.n_users + 1))
    assert users[GENDER].isin(["M", "F"]).all()
    assert users[AGE].between(1, 100).all()
    assert users[OCCUPATION].notna().all()
    assert list(items.columns) == ITEMS_SCHEMA.columns
    assert {c: str(t) for c, t in items.dtypes.items()} == ITEMS_SCHEMA.dtypes
    assert items[ITEM_ID].tolist() == list(range(1, world.config.n_items + 1))
    lengths = items[GENRES].map(len)
    assert lengths.between(1, 3).all()
    assert set(lengths) == {1, 2, 3}
    assert all(isinstance(g, list) and set(g) <= set(GENRE_VOCAB) for g in items[GENRES])
    assert all(len(set(g)) == len(g) for g in items[GENRES])


def test_world_passes_every_declared_domain(world: SyntheticWorld, events: pd.DataFrame) -> None:
    result = v.validate_tables(
        v.RawTable(EVENTS, events),
        v.RawTable(USERS, world.users),
        v.RawTable(ITEMS, world.items),
        rating_min=world.truth.rating_min,
        rating_max=world.truth.rating_max,
    )
    assert {t: r.quarantined for t, r in result.reports.items()} == dict.fromkeys(TABLES, 0)


def test_empty_world_keeps_the_schema() -> None:
    empty = generate_world(replace(SMALL, n_events=0)).events()
    assert empty.empty
    assert {c: str(t) for c, t in empty.dtypes.items()} == EVENTS_SCHEMA.dtypes


# --- time ------------------------------------------------------------------------------------


def test_no_event_before_its_item_is_released(world: SyntheticWorld, events: pd.DataFrame) -> None:
    release = world.items[RELEASE_DATE].to_numpy()  # row i is item i + 1
    assert (events[TIMESTAMP].to_numpy() >= release[events[ITEM_ID].to_numpy() - 1]).all()


def test_timestamps_lie_within_the_span(world: SyntheticWorld, events: pd.DataFrame) -> None:
    assert events[TIMESTAMP].min() >= world.config.start >= EARLIEST_TIMESTAMP
    assert events[TIMESTAMP].max() < world.config.end
    months = events[TIMESTAMP].dt.month.value_counts()
    assert len(months) == 12  # activity spread over the whole year, not bunched


def test_catalogue_is_released_over_time(world: SyntheticWorld) -> None:
    release = world.items[RELEASE_DATE]
    before = (release < world.config.start).mean()
    assert before == pytest.approx(world.config.catalog_share_before_start, abs=0.05)
    assert (release < world.config.end).all()
    during = release[release >= world.config.start]
    assert during.dt.month.nunique() == 12


def test_a_user_never_rates_an_item_twice(events: pd.DataFrame) -> None:
    assert not events.duplicated([USER_ID, ITEM_ID]).any()


# --- statistics follow the parameters --------------------------------------------------------


def test_popularity_is_heavy_tailed(world: SyntheticWorld, events: pd.DataFrame) -> None:
    counts = item_counts(world, events)
    assert top_share(counts) > 0.40
    assert gini(counts) > 0.5
    flat = generate_world(replace(SMALL, popularity_exponent=0.0))
    steep = generate_world(replace(SMALL, popularity_exponent=2.5))
    assert gini(item_counts(steep, steep.events())) > gini(item_counts(flat, flat.events())) + 0.1


def test_choices_are_draws_proportional_to_popularity() -> None:
    """With preference and time switched off, an item's count is proportional to its popularity."""
    config = SyntheticConfig(
        n_users=2_000, n_items=300, n_events=10_000, seed=1, preference_strength=0.0,
        popularity_exponent=1.0, activity_sigma=0.0, catalog_share_before_start=1.0,
        new_user_share=0.0, churn_share=0.0,
    )  # fmt: skip
    world = generate_world(config)
    counts = item_counts(world, world.events())
    popularity = world.truth.item_popularity
    tail = np.argsort(-popularity)[20:200]  # past the head, which saturates (no repeats)
    slope = np.polyfit(np.log(popularity[tail]), np.log(np.maximum(counts[tail], 0.5)), 1)[0]
    assert 0.85 < slope < 1.2
    ratio = counts[tail].sum() / (config.n_events * popularity[tail].sum())
    assert 0.9 < ratio < 1.3


def test_user_activity_is_heavy_tailed(world: SyntheticWorld, events: pd.DataFrame) -> None:
    counts = user_counts(world, events)
    assert top_share(counts) > 0.30
    assert counts.max() > 5 * np.median(counts)
    assert counts.min() >= world.config.min_events_per_user
    even = generate_world(replace(SMALL, activity_sigma=0.0))
    uneven = generate_world(replace(SMALL, activity_sigma=1.5))
    assert gini(user_counts(uneven, uneven.events())) > gini(user_counts(even, even.events())) + 0.1


def test_ratings_follow_true_preference(world: SyntheticWorld, events: pd.DataFrame) -> None:
    relevance = world.truth.relevance(events[USER_ID], events[ITEM_ID])
    assert spearmanr(relevance, events[RATING]).statistic > 0.5
    expected = world.truth.expected_rating(events[USER_ID], events[ITEM_ID])
    # The ratings are draws from the stated rating model: unbiased around its expectation.
    assert float(np.mean(events[RATING] - expected)) == pytest.approx(0.0, abs=0.02)
    assert 3.0 < events[RATING].mean() < 4.0


def test_users_pick_items_they_truly_prefer(world: SyntheticWorld, events: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    chosen = world.truth.relevance(events[USER_ID], events[ITEM_ID]).mean()
    random_pairs = world.truth.relevance(
        rng.integers(1, world.config.n_users + 1, 50_000),
        rng.integers(1, world.config.n_items + 1, 50_000),
    ).mean()
    assert chosen > random_pairs + 0.5
    indifferent = generate_world(replace(SMALL, preference_strength=0.0))
    ev = indifferent.events()
    assert indifferent.truth.relevance(ev[USER_ID], ev[ITEM_ID]).mean() < chosen - 0.5


def test_side_information_is_correlated_with_tastes(world: SyntheticWorld) -> None:
    taste = pd.DataFrame(world.truth.user_taste, columns=list(GENRE_VOCAB))
    male = (world.users[GENDER] == "M").to_numpy()
    assert taste.loc[male, "Action"].mean() > taste.loc[~male, "Action"].mean()
    assert taste.loc[male, "Romance"].mean() < taste.loc[~male, "Romance"].mean()
    assert np.corrcoef(world.users[AGE], taste["Film-Noir"])[0, 1] > 0.05
    # ... but only a little: side information explains a minority of taste.
    assert abs(np.corrcoef(male, taste["Action"])[0, 1]) < 0.5


def _recall_at_10(scores: np.ndarray, train: csr_matrix, test: pd.DataFrame) -> float:
    scores = np.array(scores, dtype=np.float64)
    scores[train.nonzero()] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    hits = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(hits, top, True, axis=1)
    return float(hits[test[USER_ID] - 1, test[ITEM_ID] - 1].mean())


def test_personalisation_clearly_beats_popularity() -> None:
    config = SyntheticConfig(n_users=800, n_items=700, n_events=60_000, seed=3)
    world = generate_world(config)
    events = world.events()
    held_out = np.random.default_rng(0).random(len(events)) < 0.2
    train, test = events[~held_out], events[held_out]
    matrix = csr_matrix(
        (np.ones(len(train)), (train[USER_ID] - 1, train[ITEM_ID] - 1)),
        shape=(config.n_users, config.n_items),
    )
    _, _, vt = svds(matrix, k=16, random_state=0)
    pure_svd = _recall_at_10((matrix @ vt.T) @ vt, matrix, test)
    popularity = np.asarray(matrix.sum(axis=0)).ravel()
    most_popular = _recall_at_10(np.tile(popularity, (config.n_users, 1)), matrix, test)
    assert pure_svd > 1.25 * most_popular


# --- ground truth ----------------------------------------------------------------------------


def test_relevance_is_standardised_and_vectorised(small_world: SyntheticWorld) -> None:
    truth = small_world.truth
    matrix = truth.relevance_matrix(np.arange(1, truth.n_users + 1))
    assert matrix.shape == (truth.n_users, truth.n_items)
    assert matrix.mean() == pytest.approx(0.0, abs=1e-9)
    assert matrix.std() == pytest.approx(1.0, abs=1e-9)
    users, items = np.array([1, 5, 300]), np.array([400, 1, 17])
    np.testing.assert_allclose(truth.relevance(users, items), matrix[users - 1, items - 1])
    np.testing.assert_allclose(truth.relevance(5, items), matrix[4, items - 1])


def test_relevance_refuses_unknown_ids(small_world: SyntheticWorld) -> None:
    with pytest.raises(ValidationError, match="Unknown user id"):
        small_world.truth.relevance([0], [1])
    with pytest.raises(ValidationError, match=r"1\.\.400"):
        small_world.truth.relevance([1], [401])


def test_expected_rating_matches_sampled_ratings(small_world: SyntheticWorld) -> None:
    truth = small_world.truth
    users, items = np.repeat([1, 2, 3], 20_000), np.repeat([10, 20, 30], 20_000)
    sampled = truth.sample_ratings(users, items, np.random.default_rng(1)).reshape(3, -1)
    expected = truth.expected_rating([1, 2, 3], [10, 20, 30])
    np.testing.assert_allclose(sampled.mean(axis=1), expected, atol=0.02)
    grid = truth.expected_rating_from_relevance(np.linspace(-4, 4, 50))
    assert np.all(np.diff(grid) > 0)
    assert grid.min() >= 1.0
    assert grid.max() <= 5.0


def test_oracle_ranking_ranks_by_true_relevance(small_world: SyntheticWorld) -> None:
    truth = small_world.truth
    ranking = truth.oracle_ranking([3, 1, 2], k=5)
    assert list(ranking.columns) == [USER_ID, ITEM_ID, SCORE, RANK]
    assert ranking[USER_ID].tolist() == [3] * 5 + [1] * 5 + [2] * 5
    assert ranking[RANK].tolist() == [1, 2, 3, 4, 5] * 3
    np.testing.assert_allclose(ranking[SCORE], truth.relevance(ranking[USER_ID], ranking[ITEM_ID]))
    for user in (3, 1, 2):
        group = ranking[ranking[USER_ID] == user]
        full = truth.relevance_matrix([user])[0]
        expected_items = np.argsort(-full)[:5] + 1
        assert group[ITEM_ID].tolist() == expected_items.tolist()


def test_oracle_ranking_respects_exclude_and_as_of(small_world: SyntheticWorld) -> None:
    truth = small_world.truth
    best = truth.oracle_ranking([1, 2], k=10)
    exclude = best[best[RANK] <= 3][[USER_ID, ITEM_ID]]
    ranking = truth.oracle_ranking([1, 2], k=10, exclude=exclude)
    pairs = set(zip(ranking[USER_ID], ranking[ITEM_ID], strict=True))
    assert not pairs & set(zip(exclude[USER_ID], exclude[ITEM_ID], strict=True))
    for user in (1, 2):
        kept = best[(best[USER_ID] == user) & (best[RANK] > 3)][ITEM_ID].tolist()
        assert ranking[ranking[USER_ID] == user][ITEM_ID].tolist()[:7] == kept

    as_of = small_world.config.start + pd.Timedelta(days=100)
    dated = truth.oracle_ranking([1, 2], k=10, as_of=as_of)
    release = small_world.items.set_index(ITEM_ID)[RELEASE_DATE]
    assert (release.loc[dated[ITEM_ID]] <= as_of).all()
    assert len(dated) == 20
    before_everything = release.min() - pd.Timedelta(days=1)
    assert truth.oracle_ranking([1], k=10, as_of=before_everything).empty
    with pytest.raises(ValidationError, match="timezone-aware"):
        truth.oracle_ranking([1], as_of=pd.Timestamp("2015-06-01"))


def test_ground_truth_save_load_roundtrip(small_world: SyntheticWorld, tmp_path: Path) -> None:
    small_world.truth.save(tmp_path)
    loaded = GroundTruth.load(tmp_path)
    assert loaded.equals(small_world.truth)
    pd.testing.assert_frame_equal(
        loaded.oracle_ranking([1, 2, 3], k=5), small_world.truth.oracle_ranking([1, 2, 3], k=5)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth.json", "truth.npz"]


def test_world_save_load_roundtrip(small_world: SyntheticWorld, tmp_path: Path) -> None:
    small_world.save(tmp_path / "world")
    loaded = SyntheticWorld.load(tmp_path / "world")
    assert loaded.config == small_world.config
    pd.testing.assert_frame_equal(loaded.events(), small_world.events())
    pd.testing.assert_frame_equal(loaded.items, small_world.items)
    assert not [p for p in (tmp_path / "world").iterdir() if p.name.startswith(".")]


def test_load_explains_a_missing_or_foreign_world(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"SyntheticWorld\.save"):
        SyntheticWorld.load(tmp_path)
    with pytest.raises(DataSourceError, match=r"GroundTruth\.save"):
        GroundTruth.load(tmp_path)
    generate_world(replace(SMALL, seed=1)).truth.save(tmp_path)
    generate_world(SMALL).save(tmp_path / "other")
    (tmp_path / "config.json").write_text((tmp_path / "other" / "config.json").read_text())
    with pytest.raises(DataSourceError, match="differs"):
        SyntheticWorld.load(tmp_path)


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_users": 0}, "n_users"),
        ({"max_user_coverage": 1.5}, "max_user_coverage"),
        ({"start_date": "1990-01-01"}, "1995-01-01"),
        ({"start_date": "not a date"}, "ISO date"),
        ({"churn_share": -0.1}, "churn_share"),
        ({"start_date": "2100-01-01"}, "in the future"),
        ({"catalog_history_years": 200}, "before 1890-01-01"),
    ],
)
def test_config_rejects_invalid_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SyntheticConfigError, match=message):
        SyntheticConfig(**changes)  # type: ignore[arg-type]


def test_too_many_events_for_the_catalogue_is_refused() -> None:
    with pytest.raises(SyntheticConfigError, match="Raise n_items"):
        generate_world(SyntheticConfig(n_users=10, n_items=20, n_events=1_000))


def test_config_roundtrips_through_a_dict() -> None:
    assert SyntheticConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(SyntheticConfigError, match="Unknown"):
        SyntheticConfig.from_dict({"n_user": 3})
