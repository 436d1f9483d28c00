"""``reelrank serve``: run the API under uvicorn."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

import uvicorn

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
METRICS_DIR: Final = "REELRANK_METRICS_DIR"
"""Optional directory for the workers' metric files (``--workers`` > 1)."""
MULTIPROC_VARIABLES: Final = (MULTIPROC_DIR, "PROMETHEUS_MULTIPROCESS_DIR", OUR_MULTIPROC_DIR)


def run_server(host: str, port: int, workers: int) -> None:
    """Serve the API on ``host:port`` with ``workers`` processes (uvloop + httptools).

    Each worker builds its own app from the factory (and loads the champion itself). With
    more than one worker, Prometheus metrics run in multiprocess mode (``serving.metrics``)
    in ``REELRANK_METRICS_DIR`` when set (emptied first, as prometheus_client requires),
    else in a temporary directory removed on exit.
    """
    logger.info("serving on http://%s:%d with %d worker(s)", host, port, workers)
    owned: Path | None = None
    saved = {name: os.environ.get(name) for name in MULTIPROC_VARIABLES}
    if workers > 1:
        configured = os.environ.get(METRICS_DIR)
        if configured:
            directory = Path(configured)
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob("*.db"):
                stale.unlink()
        else:
            directory = owned = Path(tempfile.mkdtemp(prefix="reelrank-metrics-"))
        # Inherited by the worker processes. Both of prometheus_client's names, overriding
        # the temporary directory Feast picks when it is imported (``serving.metrics``).
        for name in MULTIPROC_VARIABLES:
            os.environ[name] = str(directory)
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
        if workers > 1:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
