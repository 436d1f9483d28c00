"""Connecting to the Ray engine's cluster: the only module of the library that imports Ray.

ReelRank never starts a cluster: it connects to the one at ``REELRANK_RAY_ADDRESS`` (an
in-process ``ray.init()`` without an address would take every CPU of the machine and a
large object store). Ray's workers run with the cluster's environment, not the driver's,
so the connection carries the driver's ReelRank, Prefect, MLflow and Feast settings to
them as the job's ``runtime_env`` (paths made absolute: a worker's working directory is
the one its node was started in).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from reelrank.config import Settings
from reelrank.engines import ray_address
from reelrank.exceptions import EngineError

logger = logging.getLogger(__name__)

NAMESPACE: Final = "reelrank"
FORWARDED_PREFIXES: Final = ("REELRANK_", "PREFECT_", "MLFLOW_", "FEAST_")
FORWARDED_NAMES: Final = ("DO_NOT_TRACK",)
_PATH_SETTINGS: Final = (
    "data_dir",
    "raw_dir",
    "lake_dir",
    "quarantine_dir",
    "features_dir",
    "feast_dir",
    "feedback_dir",
    "reports_dir",
    "impressions_dir",
    "metrics_dir",
)


def worker_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a Ray worker needs to build the driver's Settings.

    Every ``REELRANK_``/``PREFECT_``/``MLFLOW_``/``FEAST_`` variable of ``environ`` (default:
    this process's), the settings' paths absolute, and the MLflow store in force.
    """
    source = os.environ if environ is None else environ
    env = {
        key: value
        for key, value in source.items()
        if key.startswith(FORWARDED_PREFIXES) or key in FORWARDED_NAMES
    }
    for name in _PATH_SETTINGS:
        value = getattr(settings, name, None)
        if value is not None:
            env[f"REELRANK_{name.upper()}"] = str(value.resolve())
    env["REELRANK_MLFLOW_TRACKING_URI"] = settings.tracking_uri
    env["REELRANK_ENGINE"] = settings.engine
    if settings.ray_address:
        env["REELRANK_RAY_ADDRESS"] = settings.ray_address
    return env


def init_kwargs(settings: Settings, extra_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``ray.init`` keyword arguments (all but the address) for this driver."""
    return {
        "namespace": NAMESPACE,
        "runtime_env": {"env_vars": worker_env(settings) | dict(extra_env or {})},
        "log_to_driver": False,
        "configure_logging": False,
    }


def connect(settings: Settings, extra_env: Mapping[str, str] | None = None) -> bool:
    """Connect this process to the cluster (no-op when already connected).

    Returns:
        True when this call connected (the caller then disconnects), False when Ray was
        already initialised (by a task runner, or inside a Ray worker).

    Raises:
        EngineError: no address, or nothing answers there.
    """
    import ray

    if ray.is_initialized():
        return False
    address = ray_address(settings)
    try:
        ray.init(address=address, **init_kwargs(settings, extra_env))
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise EngineError(
            f"cannot connect to the Ray cluster at {address}: {error}. Is it running "
            f"(`ray status --address {address}`)?"
        ) from error
    resources = ray.cluster_resources()
    logger.info(
        "connected to Ray at %s: %d node(s), %.0f CPU(s)",
        address,
        len([node for node in ray.nodes() if node.get("Alive")]),
        resources.get("CPU", 0),
    )
    return True


def disconnect() -> None:
    """Disconnect this driver from the cluster (the cluster keeps running)."""
    import ray

    ray.shutdown()


@contextmanager
def connected(settings: Settings, extra_env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Connected to the cluster for the block; disconnects only if it connected."""
    owner = connect(settings, extra_env)
    try:
        yield
    finally:
        if owner:
            disconnect()


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def put(value: Any) -> Any:
    """``value`` in the object store (one copy shared by every task that reads it)."""
    import ray

    return ray.put(value)


def get(reference: Any) -> Any:
    """The value behind an object reference (anything else unchanged)."""
    import ray

    return ray.get(reference) if isinstance(reference, ray.ObjectRef) else reference


__all__ = ["EngineError", "connect", "connected", "disconnect", "init_kwargs", "worker_env"]
