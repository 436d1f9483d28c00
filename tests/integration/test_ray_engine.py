"""The Ray engine on a real local cluster gives the local engine's results.

The cluster is separate processes started here (``ray start --head`` with one CPU and a
200 MB object store, one worker node joining it with ``ray start --address``; see
``tests/integration/ray_cluster.py``), never an in-process ``ray.init()`` without an
address, and it is stopped in the fixture's finalizer, which then checks that none of
its processes is alive. On a small synthetic world (300 users, 200 items, 20,000 events,
2 folds) the local engine runs ``reelrank run``; then, on a copy of its lake:

* ``reelrank features --engine ray``: both feature tables built as Prefect tasks on the
  cluster, materialized through Feast's Ray offline store: the offline tables and every
  online-store row equal the local engine's;
* ``reelrank train --engine ray``: one ``score-fold`` task per fold on the cluster: the
  per-fold table equals the local engine's (every metric and interval; fit times aside);
* Feast historical retrieval through the Ray offline store equals the file store's;
* ``reelrank batch-recommend --engine ray`` (Ray Data) stores the local engine's lists.

With ``CI=true`` a cluster that cannot start fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require_service
from tests.integration.ray_cluster import ClusterError, LocalRayCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("ray")]

REELRANK = Path(sys.executable).parent / "reelrank"
WORLD = ("--dataset", "synthetic", "--users", "300", "--items", "200", "--events", "20000",
         "--seed", "7")  # fmt: skip
TRAIN = ("--folds", "2", "--no-diagnostics")
ONLINE_TABLES = ("reelrank_user_features", "reelrank_item_features")
TIMEOUT_S = 900


def _reelrank(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELRANK_", "MLFLOW_"))}
    env |= {"REELRANK_DATA_DIR": str(data_dir), "COLUMNS": "200", "NO_COLOR": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(REELRANK), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
        cwd=data_dir.parent,
        check=False,
    )  # fmt: skip
    print(f"reelrank {' '.join(args[:3])}: {time.perf_counter() - started:.0f} s")
    assert done.returncode == 0, (
        f"reelrank {args} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster(workers=1)
    try:
        cluster.start()
    except (ClusterError, OSError, subprocess.SubprocessError) as error:
        cluster.stop()
        require_service(False, f"a local Ray cluster (ray start: {str(error)[:400]})")
    try:
        yield cluster
    finally:
        alive = cluster.stop()
        assert alive == [], f"Ray processes still alive after stop: {alive}"


@pytest.fixture(scope="module")
def local_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole pipeline on the local engine."""
    data_dir = tmp_path_factory.mktemp("local") / "data"
    _reelrank(data_dir, "run", *WORLD, *TRAIN)
    return data_dir


@pytest.fixture(scope="module")
def ray_world(
    local_world: Path, cluster: LocalRayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The local world's lake, its features and model then built on the Ray engine."""
    data_dir = tmp_path_factory.mktemp("ray") / "data"
    for part in ("lake", "raw"):
        shutil.copytree(local_world / part, data_dir / part)
    engine = ("--engine", "ray", "--ray-address", cluster.address)
    _reelrank(data_dir, "features", "--full", *engine)
    _reelrank(data_dir, "train", "--no-feast", *TRAIN, *engine)
    return data_dir


def _online_rows(data_dir: Path, table: str) -> pd.DataFrame:
    with sqlite3.connect(data_dir / "feast" / "online_store.db") as con:
        rows = pd.read_sql(f"SELECT entity_key, feature_name, value, event_ts FROM {table}", con)
    return rows.sort_values(["entity_key", "feature_name"], ignore_index=True)


def test_features_built_and_materialized_on_ray_equal_the_local_engines(
    local_world: Path, ray_world: Path
) -> None:
    for name in ("user_features.parquet", "item_features.parquet"):
        local = pd.read_parquet(local_world / "features" / name)
        ray = pd.read_parquet(ray_world / "features" / name)
        pd.testing.assert_frame_equal(ray, local, check_exact=True)
    for table in ONLINE_TABLES:
        local_rows, ray_rows = _online_rows(local_world, table), _online_rows(ray_world, table)
        assert len(ray_rows) > 0, f"nothing materialized into {table}"
        pd.testing.assert_frame_equal(ray_rows, local_rows, check_exact=True)


def test_folds_scored_on_ray_give_the_local_per_fold_table(
    local_world: Path, ray_world: Path
) -> None:
    local = pd.read_csv(local_world / "reports" / "synthetic" / "cv_per_fold.csv")
    ray = pd.read_csv(ray_world / "reports" / "synthetic" / "cv_per_fold.csv")
    columns = [c for c in local.columns if c != "fit_seconds"]
    assert sorted(local["fold"].unique()) == [0, 1]
    pd.testing.assert_frame_equal(ray[columns], local[columns], check_exact=True)


def test_historical_retrieval_through_the_ray_offline_store_equals_the_file_store(
    ray_world: Path, cluster: LocalRayCluster
) -> None:
    from reelrank.config import Settings
    from reelrank.engines import ray_cluster
    from reelrank.features import columns as cols
    from reelrank.features.feast.store import forget_feature_stores, get_feature_store

    users = pd.read_parquet(ray_world / "features" / "user_features.parquet")
    entity_df = users[["user_id", "event_timestamp"]].drop_duplicates("user_id").head(40)
    entity_df = entity_df.assign(
        event_timestamp=entity_df["event_timestamp"] + pd.Timedelta(hours=12)
    )
    refs = [f"{cols.USER_VIEW}:{name}" for name in cols.USER_FEATURES[:6]]
    local = Settings(data_dir=ray_world, _env_file=None)
    on_ray = Settings(data_dir=ray_world, engine="ray", ray_address=cluster.address, _env_file=None)

    def retrieve(settings: Settings) -> pd.DataFrame:
        store = get_feature_store(settings)
        frame = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        return frame.sort_values("user_id", ignore_index=True)[["user_id", *cols.USER_FEATURES[:6]]]

    forget_feature_stores()
    expected = retrieve(local)
    with ray_cluster.connected(on_ray):
        got = retrieve(on_ray)
    forget_feature_stores()
    assert len(expected) == 40
    assert expected["user_events_total"].notna().all()  # every row found its features
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_batch_recommend_on_ray_data_stores_the_local_lists(
    ray_world: Path, cluster: LocalRayCluster
) -> None:
    def stored() -> pd.DataFrame:
        with sqlite3.connect(ray_world / "feast" / "online_store.db") as con:
            return pd.read_sql("SELECT user_id, version, k, items, scores FROM reelrank_topk", con)

    result = json.loads(
        _reelrank(ray_world, "batch-recommend", "--chunk-size", "100", "--json").stdout
    )
    assert result["engine"] == "local"
    assert result["users"] == 300
    assert result["users_per_second"] > 0
    local = stored()
    engine = ("--engine", "ray", "--ray-address", cluster.address)
    done = _reelrank(ray_world, "batch-recommend", "--chunk-size", "100", *engine)
    assert "ray engine" in done.stdout
    assert len(local) == 300
    pd.testing.assert_frame_equal(stored(), local)
