"""``reelrank serve``: run the API under uvicorn."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

import uvicorn

from serving.metrics import MULTIPROC_DIR

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


def run_server(host: str, port: int, workers: int) -> None:
    """Serve the API on ``host:port`` with ``workers`` processes (uvloop + httptools).

    Each worker builds its own app from the factory (and loads the champion itself). With
    more than one worker, Prometheus metrics run in multiprocess mode (``serving.metrics``):
    in ``PROMETHEUS_MULTIPROC_DIR`` when set (emptied first, as prometheus_client requires),
    else in a temporary directory removed on exit.
    """
    logger.info("serving on http://%s:%d with %d worker(s)", host, port, workers)
    owned: Path | None = None
    if workers > 1:
        configured = os.environ.get(MULTIPROC_DIR)
        if configured:
            directory = Path(configured)
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob("*.db"):
                stale.unlink()
        else:
            owned = Path(tempfile.mkdtemp(prefix="reelrank-metrics-"))
            os.environ[MULTIPROC_DIR] = str(owned)  # inherited by the worker processes
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
        if owned is not None:
            os.environ.pop(MULTIPROC_DIR, None)
            shutil.rmtree(owned, ignore_errors=True)
