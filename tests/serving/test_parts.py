"""The request-path building blocks agree with the library code they replace."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrank.data.schema import ITEM_ID, USER_ID
from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from reelrank.features.cross import cross_features
from serving.cross import ItemCrossInputs, user_cross_features
from serving.features import SqliteUserFeatureReader
from serving.feedback import FeedbackLog, feedback_file
from serving.timing import server_timing
from serving.trees import CompiledTrees

values = st.one_of(st.just(np.nan), st.just(0.0), st.floats(0, 1), st.floats(-5, 5))


@settings(max_examples=60, deadline=None)
@given(
    user=st.lists(values, min_size=len(cols.USER_FEATURES), max_size=len(cols.USER_FEATURES)),
    flags=st.lists(
        st.lists(
            st.sampled_from([0.0, 1.0, np.nan]),
            min_size=len(cols.ITEM_GENRE),
            max_size=len(cols.ITEM_GENRE),
        ),
        min_size=1,
        max_size=6,
    ),
    other=st.lists(st.tuples(values, values), min_size=6, max_size=6),
)
def test_user_cross_features_equal_the_library_function(user, flags, other):
    n_items = len(flags)
    item_frame = pd.DataFrame(
        np.full((n_items, len(cols.ITEM_FEATURES)), 0.5), columns=list(cols.ITEM_FEATURES)
    )
    item_frame[list(cols.ITEM_GENRE)] = np.asarray(flags, dtype=float)
    item_frame[cols.ITEM_RATING_MEAN_BAYES] = [o[0] for o in other[:n_items]]
    item_frame[cols.ITEM_LOG_POP_30D] = [o[1] for o in other[:n_items]]
    item_frame.index = pd.Index(np.arange(100, 100 + n_items), name=ITEM_ID)
    user_row = np.asarray(user, dtype=float)
    user_frame = pd.DataFrame([user_row], columns=list(cols.USER_FEATURES), index=[7])
    columns = np.arange(n_items)[::-1]
    pairs = pd.DataFrame({USER_ID: 7, ITEM_ID: item_frame.index.to_numpy()[columns]})
    expected = cross_features(user_frame, item_frame, pairs)[list(cols.CROSS_FEATURES)]
    got = user_cross_features(user_row, ItemCrossInputs(item_frame), columns)
    np.testing.assert_array_equal(got, expected.to_numpy())


def test_compiled_trees_equal_lightgbm(fitted_model):
    booster = fitted_model.ranker_.booster_
    compiled = CompiledTrees.from_booster(booster)
    assert compiled is not None
    rng = np.random.default_rng(1)
    X = rng.normal(0, 50, size=(3000, booster.num_feature())).astype(np.float32)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[rng.random(X.shape) < 0.1] = 0.0
    np.testing.assert_array_equal(
        compiled.predict(X), booster.predict(X, raw_score=True, num_threads=1)
    )


def test_compiled_trees_handle_default_sides_and_missing_types():
    import lightgbm as lgb

    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 4))
    y = (np.nan_to_num(X[:, 0]) > 0.2).astype(int) + (X[:, 1] > 0).astype(int)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 3] = np.round(X[:, 3])  # many equal values, thresholds between integers
    for use_missing in (True, False):
        model = lgb.LGBMRegressor(
            n_estimators=30,
            num_leaves=31,
            min_child_samples=5,
            use_missing=use_missing,
            verbose=-1,
        ).fit(X, y)
        compiled = CompiledTrees.from_booster(model.booster_)
        assert compiled is not None
        probe = X.astype(np.float32)
        np.testing.assert_array_equal(
            compiled.predict(probe), model.booster_.predict(probe, raw_score=True)
        )


def test_compiled_trees_follow_categorical_splits():
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    X = np.column_stack([rng.integers(0, 12, 4000), rng.normal(size=4000)]).astype(float)
    y = np.isin(X[:, 0], [1, 4, 7, 9]).astype(float) + X[:, 1]
    X[rng.random(4000) < 0.1, 0] = np.nan
    model = lgb.LGBMRegressor(n_estimators=20, verbose=-1, min_child_samples=5, cat_smooth=1)
    model.fit(X, y, categorical_feature=[0])
    compiled = CompiledTrees.from_booster(model.booster_)
    assert compiled is not None
    assert len(compiled.categorical_split) > 0
    probe = np.column_stack(
        [
            rng.choice([np.nan, -3.0, -0.5, 0.0, 0.7, 1.0, 4.0, 9.0, 11.0, 15.0, 1e12], 3000),
            rng.normal(size=3000),
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(
        compiled.predict(probe), model.booster_.predict(probe, raw_score=True)
    )


@pytest.fixture
def online_db(tmp_path: Path) -> Path:
    """A SQLite table shaped like Feast's online store, holding user 5."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    path = tmp_path / "online_store.db"
    key = serialize_entity_key(
        EntityKey(join_keys=[USER_ID], entity_values=[Value(int64_val=5)]),
        entity_key_serialization_version=3,
    )
    with sqlite3.connect(path) as conn:
        conn.execute(
            'CREATE TABLE "p_user_features" (entity_key BLOB, feature_name TEXT, value BLOB, '
            "event_ts timestamp, PRIMARY KEY(entity_key, feature_name))"
        )
        conn.execute(
            'INSERT INTO "p_user_features" VALUES (?, ?, ?, 0)',
            (key, cols.USER_RATING_MEAN, Value(float_val=3.5).SerializeToString()),
        )
        conn.execute(
            'INSERT INTO "p_user_features" VALUES (?, ?, ?, 0)',
            (key, cols.USER_AGE, Value(int64_val=31).SerializeToString()),
        )
    return path


def test_sqlite_reader_reads_values_and_nan_for_the_rest(online_db):
    reader = SqliteUserFeatureReader(online_db, "p_user_features", timeout_ms=1000)
    row = reader.read(5)
    assert row[cols.USER_FEATURES.index(cols.USER_RATING_MEAN)] == 3.5
    assert row[cols.USER_FEATURES.index(cols.USER_AGE)] == 31
    assert np.isnan(row).sum() == len(cols.USER_FEATURES) - 2
    assert np.isnan(reader.read(6)).all()


def test_sqlite_reader_fails_when_the_file_goes_away(online_db):
    reader = SqliteUserFeatureReader(online_db, "p_user_features", timeout_ms=1000)
    reader.read(5)
    online_db.rename(online_db.with_suffix(".moved"))
    with pytest.raises(FeatureStoreError, match="missing"):
        reader.read(5)
    online_db.with_suffix(".moved").rename(online_db)
    assert reader.read(5)[cols.USER_FEATURES.index(cols.USER_RATING_MEAN)] == 3.5


def test_sqlite_reader_enforces_its_deadline(tmp_path):
    path = tmp_path / "slow.db"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "t" (entity_key BLOB, feature_name TEXT, value BLOB)')
    reader = SqliteUserFeatureReader(path, "t", timeout_ms=5)
    reader._query = (  # a query that runs far longer than 5 ms
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000) "
        "SELECT 'a', NULL FROM c WHERE x = -1 AND ? IS NOT NULL"
    )
    started = time.perf_counter()
    with pytest.raises(FeatureStoreError, match="exceeded"):
        reader.read(1)
    assert time.perf_counter() - started < 1.0


def test_feedback_file_per_day(tmp_path):
    log = FeedbackLog(tmp_path / "fb")
    day = pd.Timestamp("2024-03-02 23:59", tz="UTC").to_pydatetime()
    path = log.append([{"user_id": 1}], now=day)
    assert path == feedback_file(tmp_path / "fb", day)
    assert path.name == "feedback-2024-03-02.jsonl"


def test_server_timing_header_format():
    assert server_timing({"retrieval": 0.00012, "ranking": 0.002}) == (
        "retrieval;dur=0.120, ranking;dur=2.000"
    )
