"""Serving fixtures: a small fitted model (unit tests) and a pipeline-built store (slow)."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from reelrank.config import Settings
from reelrank.features import columns as cols
from serving.state import ModelState, build_state

ROOT = Path(__file__).resolve().parents[2]
FAST = {
    "n_candidates": 40,
    "sources__mf__iterations": 8,
    "sources__mf__factors": 16,
    "ranker_windows": 2,
    "ranker_label_fraction": 0.1,
    "ranker__n_estimators": 40,
    "ranker__num_leaves": 15,
    "ranker__min_child_samples": 20,
}
PIPELINE_ARGS = [
    *("--dataset", "synthetic", "--users", "300", "--items", "200", "--events", "20000"),
    *("--seed", "7", "--folds", "2", "--no-diagnostics"),
]


def served_row(model, user: int, k: int = 10, config=None) -> pd.DataFrame:
    """The row the service serves ``user`` with the re-ranking ``config`` (default: the
    default strengths): re-ranked as of *now*, the request time, as the service does
    (``recommend``'s own default clock is the end of training, where a title's age, and
    so its freshness boost, differ)."""
    from reelrank.models.reranking import DEFAULT_RERANK

    now = pd.Timestamp.now(tz="UTC")
    return model.recommend([user], k=k, rerank=config or DEFAULT_RERANK, now=now)


@pytest.fixture(scope="session")
def small_world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from reelrank.data.synthetic import SyntheticConfig, generate_world

    world = generate_world(SyntheticConfig(n_users=150, n_items=100, n_events=5000, seed=3))
    events = pd.concat(list(world.iter_events()), ignore_index=True)
    return events, world.users, world.items


@pytest.fixture(scope="session")
def fitted_model(small_world):
    from reelrank.models.recommender import Recommender

    events, users, items = small_world
    return Recommender(random_state=0).set_params(**FAST).fit(events, users, items)


class FakeUserReader:
    """A user-feature reader over the model's snapshot that can be made to fail."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reindex(columns=list(cols.USER_FEATURES))
        self.values = self.frame.to_numpy(dtype=np.float64, na_value=np.nan)
        self.fail: str | None = None
        self.calls = 0

    def read(self, user_id: int) -> np.ndarray:
        from reelrank.exceptions import FeatureStoreError

        self.calls += 1
        if self.fail is not None:
            raise FeatureStoreError(self.fail)
        position = self.frame.index.get_indexer([user_id])[0]
        if position < 0:
            return np.full(self.values.shape[1], np.nan)
        return self.values[position].copy()

    def close(self) -> None:
        pass


def make_state(model, settings: Settings, version: str = "1", reader=None) -> ModelState:
    """A state around ``model`` with snapshot item features and ``reader`` for users."""
    state = build_state(
        model,
        SimpleNamespace(name="reelrank", version=version, run_id=f"run-{version}"),
        settings,
        alias="champion",
        metrics={"cv_ndcg_at_10": 0.5},
        use_feature_store=False,
    )
    if reader is None:
        return state
    import dataclasses

    return dataclasses.replace(state, user_reader=reader, user_reader_error=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _build_store(base: Path) -> Path:
    data_dir, prefect_home = base / "data", base / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "REELRANK_DATA_DIR": str(data_dir),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    for name in ("MLFLOW_TRACKING_URI", "REELRANK_MLFLOW_TRACKING_URI", "REELRANK_ONLINE_STORE"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "run", *PIPELINE_ARGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.fail(f"`reelrank run` failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return data_dir


@pytest.fixture(scope="session")
def pipeline_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir built by ``reelrank run`` on a small synthetic world, private to this
    worker (the tests rename its online store).

    Built once per test session, also under xdist: the first worker builds it in the
    session's shared temp dir under a file lock, every worker copies it.
    ``REELRANK_SERVING_STORE`` names an existing one to copy instead (local iteration).
    """
    existing = os.environ.get("REELRANK_SERVING_STORE")
    if existing:
        source = Path(existing)
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "serving_store"
        shared.mkdir(exist_ok=True)
        with (shared / "build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marker = shared / "built"
            if not marker.exists():
                _build_store(shared)
                marker.touch()
        source = shared / "data"
    else:
        source = _build_store(tmp_path_factory.mktemp("serving_store"))
    private = tmp_path_factory.mktemp("serving_data") / "data"
    shutil.copytree(source, private, ignore=shutil.ignore_patterns("feedback"))
    return private
