"""``reelrank serve``: run the API under uvicorn."""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

import uvicorn

from reelrank.exceptions import ValidationError
from serving.metrics import MULTIPROC_DIR, OUR_MULTIPROC_DIR

logger = logging.getLogger(__name__)

APP_FACTORY: Final = "serving.app:create_default_app"
UVICORN_OPTIONS: Final[dict[str, Any]] = {
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
    "log_level": "warning",
    "timeout_graceful_shutdown": 10,
}
"""Server settings shared by ``reelrank serve`` and the benchmark's bare app."""
METRIC_FILES: Final = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")
"""prometheus_client's multiprocess files (only these are removed from ``metrics_dir``)."""
MULTIPROC_VARIABLES: Final = (MULTIPROC_DIR, "PROMETHEUS_MULTIPROCESS_DIR", OUR_MULTIPROC_DIR)


def run_server(host: str, port: int, workers: int, metrics_dir: Path | None = None) -> None:
    """Serve the API on ``host:port`` with ``workers`` processes (uvloop + httptools).

    Each worker builds its own app from the factory (and loads the champion itself). With
    more than one worker, Prometheus metrics run in multiprocess mode (``serving.metrics``)
    in ``metrics_dir`` (``REELRANK_METRICS_DIR``) when given, emptied of earlier metric
    files first as prometheus_client requires, else in a temporary directory removed on
    exit.
    """
    logger.info("serving on http://%s:%d with %d worker(s)", host, port, workers)
    owned: Path | None = None
    saved = {name: os.environ.get(name) for name in MULTIPROC_VARIABLES}
    if workers > 1:
        if metrics_dir is not None:
            directory = Path(metrics_dir)
            prepare_metrics_dir(directory)
        else:
            directory = owned = Path(tempfile.mkdtemp(prefix="reelrank-metrics-"))
        # Inherited by the worker processes. Both of prometheus_client's names, overriding
        # the temporary directory Feast picks when it is imported (``serving.metrics``).
        for name in MULTIPROC_VARIABLES:
            os.environ[name] = str(directory)
    else:  # one process renders its own registry, whatever it inherited
        os.environ.pop(OUR_MULTIPROC_DIR, None)
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **UVICORN_OPTIONS,
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)


def prepare_metrics_dir(directory: Path) -> None:
    """Create ``directory`` and remove earlier metric files from it.

    Raises:
        ValidationError: it holds other ``.db`` files; prometheus_client would read them
            as metric files and fail every scrape.
    """
    directory.mkdir(parents=True, exist_ok=True)
    foreign = sorted(
        p.name
        for p in directory.glob("*.db")
        if not any(fnmatch.fnmatch(p.name, pattern) for pattern in METRIC_FILES)
    )
    if foreign:
        raise ValidationError(
            f"REELRANK_METRICS_DIR={directory} holds other files ({', '.join(foreign[:3])}); "
            "give the API's metrics a directory of their own."
        )
    for pattern in METRIC_FILES:
        for stale in directory.glob(pattern):
            stale.unlink()
