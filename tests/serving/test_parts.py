"""The request-path building blocks agree with the library code they replace."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrank.exceptions import FeatureStoreError
from reelrank.features import columns as cols
from reelrank.features.cross import (
    ItemCrossInputs,
    UserCrossInputs,
    cross_feature_matrix,
    cross_features,
)
from reelrank.schema import ITEM_ID, USER_ID
from serving.feedback import FeedbackLog, feedback_file
from serving.online.codec import _value, decode_scalar
from serving.online.sqlite import SqliteUserFeatureReader
from serving.scoring.trees import CompiledTrees, PartialScorer
from serving.timing import server_timing

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
def test_one_user_cross_features_equal_the_pairs_form(user, flags, other):
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
    got = cross_feature_matrix(
        UserCrossInputs.from_row(user_row), ItemCrossInputs(item_frame), columns
    )
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


def _partial_equals_full(compiled: CompiledTrees, X: np.ndarray, dynamic: np.ndarray) -> None:
    partial = compiled.partial(dynamic)
    assert isinstance(partial, PartialScorer)
    static = partial.static_reach(X)
    garbage = X.copy()  # static masks must not read the dynamic columns
    garbage[:, dynamic[dynamic < X.shape[1]]] = np.float32(12345.0)
    np.testing.assert_array_equal(partial.static_reach(garbage), static)
    columns = np.ascontiguousarray(X[:, dynamic].T)
    scores = partial.score(static, columns)
    np.testing.assert_array_equal(scores, compiled.predict(X))
    np.testing.assert_array_equal(scores, partial.score_numpy(static, columns))
    for row in (0, len(X) - 1):  # one candidate: still summed tree after tree
        np.testing.assert_array_equal(
            partial.score(static[:, row : row + 1], columns[:, row : row + 1]), scores[row]
        )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), share=st.floats(0.0, 1.0))
def test_partial_scores_equal_full_scores(fitted_model, seed, share):
    """Static masks ahead of time + dynamic splits per request == the whole ensemble."""
    booster = fitted_model.ranker_.booster_
    compiled = CompiledTrees.from_booster(booster)
    assert compiled is not None
    rng = np.random.default_rng(seed)
    n_features = booster.num_feature()
    dynamic = np.flatnonzero(rng.random(n_features) < share)
    X = rng.normal(0, 50, size=(64, n_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[rng.random(X.shape) < 0.1] = 0.0
    _partial_equals_full(compiled, X, dynamic)


@pytest.mark.parametrize("num_leaves", [7, 15, 40])  # 7: the ranker's default (byte masks)
def test_scores_equal_lightgbm_for_any_number_of_rows(num_leaves):
    """Both scorers add trees in LightGBM's order, for one candidate as for many."""
    import lightgbm as lgb

    rng = np.random.default_rng(11)
    X = rng.normal(size=(3000, 8))
    y = X[:, 0] * X[:, 1] + np.nan_to_num(X[:, 2]) + (X[:, 3] > 0) - X[:, 5]
    X[rng.random(X.shape) < 0.15] = np.nan
    model = lgb.LGBMRegressor(n_estimators=60, num_leaves=num_leaves, verbose=-1)
    booster = model.fit(X, y).booster_
    compiled = CompiledTrees.from_booster(booster)
    assert compiled is not None
    assert (compiled._leaf_by_mask is not None) == (num_leaves <= 8)
    partial = compiled.partial(np.array([0, 2, 5]))
    probe = X[:40].astype(np.float32)
    static = partial.static_reach(probe)
    columns = np.ascontiguousarray(probe[:, [0, 2, 5]].T)
    expected = booster.predict(probe, raw_score=True, num_threads=1)
    for size in (1, 2, 7, 40):
        np.testing.assert_array_equal(
            partial.score(static[:, :size], columns[:, :size]), expected[:size]
        )
        np.testing.assert_array_equal(compiled.predict(probe[:size]), expected[:size])
    for row in range(5):
        np.testing.assert_array_equal(
            compiled.predict(probe[row : row + 1]), expected[row : row + 1]
        )


def test_partial_scorer_refuses_inputs_of_the_wrong_shape(fitted_model):
    compiled = CompiledTrees.from_booster(fitted_model.ranker_.booster_)
    assert compiled is not None
    n_features = fitted_model.ranker_.booster_.num_feature()
    partial = compiled.partial(np.arange(3))
    X = np.zeros((4, n_features), dtype=np.float32)
    static = partial.static_reach(X)
    columns = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="trees"):
        partial.score(static[:-1], columns)
    with pytest.raises(ValueError, match="dynamic columns"):
        partial.score(static, columns[:-1])
    with pytest.raises(ValueError, match="one column per candidate"):
        partial.score(static, columns[:, :-1])


def test_partial_scores_with_wide_trees():
    import lightgbm as lgb

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 6))
    y = X[:, 0] * X[:, 1] + np.nan_to_num(X[:, 2]) + (X[:, 3] > 0)
    X[rng.random(X.shape) < 0.2] = np.nan
    model = lgb.LGBMRegressor(n_estimators=25, num_leaves=40, min_child_samples=5, verbose=-1)
    compiled = CompiledTrees.from_booster(model.fit(X, y).booster_)
    assert compiled is not None
    assert compiled._leaf_by_mask is None  # > 8 leaves: the lowest-bit path
    for dynamic in ([], [0], [1, 4], [0, 1, 2, 3, 4, 5]):
        _partial_equals_full(compiled, X[:500].astype(np.float32), np.asarray(dynamic, dtype=int))


def test_partial_scores_with_categorical_splits():
    import lightgbm as lgb

    rng = np.random.default_rng(6)
    X = np.column_stack(
        [rng.integers(0, 12, 3000), rng.normal(size=3000), rng.integers(0, 5, 3000)]
    ).astype(float)
    y = np.isin(X[:, 0], [1, 4, 7]) + X[:, 1] + (X[:, 2] == 3)
    X[rng.random(3000) < 0.1, 0] = np.nan
    model = lgb.LGBMRegressor(n_estimators=20, verbose=-1, min_child_samples=5, cat_smooth=1)
    compiled = CompiledTrees.from_booster(model.fit(X, y, categorical_feature=[0, 2]).booster_)
    assert compiled is not None
    assert len(compiled.categorical_split)
    probe = X[:400].astype(np.float32)
    probe[:20, 0] = [-3.0, 15.0, 1e12, 0.7, *([np.nan] * 16)]
    for dynamic in ([0], [2], [1], [0, 2], []):
        _partial_equals_full(compiled, probe, np.asarray(dynamic, dtype=int))


def _feast_value(kind: str, number: float):
    from feast.protos.feast.types.Value_pb2 import Value

    if kind == "none":
        return Value()
    if kind in {"int32_val", "int64_val", "unix_timestamp_val"}:
        return Value(**{kind: int(number)})
    if kind == "bool_val":
        return Value(bool_val=number > 0)
    return Value(**{kind: number})


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(
        [
            "none",
            "float_val",
            "double_val",
            "int32_val",
            "int64_val",
            "bool_val",
            "unix_timestamp_val",
        ]
    ),
    number=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=32),
        st.integers(-(2**31), 2**31 - 1).map(float),
        st.integers(-(2**62), 2**62).map(float),
    ),
)
def test_scalar_decoding_equals_protobuf(kind, number):
    from feast.protos.feast.types.Value_pb2 import Value

    if kind == "int32_val":
        number = float(np.clip(number, -(2**31), 2**31 - 1)) if np.isfinite(number) else 0.0
    elif kind in {"int64_val", "unix_timestamp_val"}:  # within int64 (floats reach 3e38)
        number = float(np.clip(number, -(2**62), 2**62)) if np.isfinite(number) else 0.0
    payload = _feast_value(kind, number).SerializeToString()
    parsed = Value()
    parsed.ParseFromString(payload)
    expected = _value(parsed)
    got = decode_scalar(payload)
    assert got is not None
    np.testing.assert_array_equal(np.float64(got), np.float64(expected))


def test_scalar_decoding_leaves_other_messages_to_protobuf():
    from feast.protos.feast.types.Value_pb2 import DoubleList, Value

    assert decode_scalar(Value(string_val="x").SerializeToString()) is None
    listed = Value(double_list_val=DoubleList(val=[1.0, 2.0])).SerializeToString()
    assert decode_scalar(listed) is None
    assert decode_scalar(b"\x20\x80") is None  # truncated varint


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


def test_json_bodies_equal_the_pydantic_schemas():
    from serving.encoding import batch_json, recommendation_json
    from serving.schemas import BatchRecommendationResponse, RecommendationResponse
    from serving.service import Recommendation, RecommendedItem

    results = [
        Recommendation(
            7,
            [RecommendedItem(3, 0.25, 1, "Heat (1995)"), RecommendedItem(9, -1e-300, 2, None)],
            "12",
            None,
            {"retrieval": 0.1},
            request_id="r-1",
        ),
        Recommendation(8, [], "12", "cold_start", {}, request_id="r-2", experiment="e", arm="a"),
        Recommendation(
            9, [RecommendedItem(1, 2.0, 1, "Amélie")], "12", "degraded", {}, request_id="r-3"
        ),
    ]
    for result in results:
        body = recommendation_json(result)
        model = RecommendationResponse.model_validate_json(body)
        assert model.model_dump_json().encode() == body or model == (
            RecommendationResponse.model_validate_json(model.model_dump_json())
        )
        assert set(RecommendationResponse.model_fields) == set(model.model_dump())
    batch = BatchRecommendationResponse.model_validate_json(batch_json(results, "12"))
    assert [r.user_id for r in batch.results] == [7, 8, 9]
    assert batch.results[0].items[1].title is None
    assert batch.results[2].fallback == "degraded"
    assert [r.request_id for r in batch.results] == ["r-1", "r-2", "r-3"]
    assert (batch.results[1].experiment, batch.results[1].arm) == ("e", "a")


def test_metrics_dir_is_emptied_of_metric_files_only(tmp_path):
    from reelrank.exceptions import ValidationError
    from serving.server import prepare_metrics_dir

    directory = tmp_path / "metrics"
    prepare_metrics_dir(directory)  # created
    for name in ("counter_1.db", "gauge_max_2.db", "histogram_3.db", "summary_4.db"):
        (directory / name).write_bytes(b"stale")
    (directory / "notes.txt").write_text("kept")
    prepare_metrics_dir(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]
    (directory / "mlflow.db").write_bytes(b"a database")  # e.g. pointed at the data dir
    (directory / "counter_5.db").write_bytes(b"stale")
    with pytest.raises(ValidationError, match=r"mlflow\.db"):
        prepare_metrics_dir(directory)
    assert (directory / "mlflow.db").exists()
    assert (directory / "counter_5.db").exists()  # nothing removed before the refusal


def test_one_worker_ignores_an_inherited_multiprocess_marker(monkeypatch):
    import serving.server as server
    from serving.metrics import OUR_MULTIPROC_DIR

    seen: dict[str, str | None] = {}
    monkeypatch.setenv(OUR_MULTIPROC_DIR, "/nonexistent")
    monkeypatch.setattr(
        server.uvicorn, "run", lambda *a, **k: seen.update(marker=os.environ.get(OUR_MULTIPROC_DIR))
    )
    server.run_server("127.0.0.1", 1, workers=1)
    assert seen == {"marker": None}
