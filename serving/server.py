"""``reelrank serve``: run the API under uvicorn."""

from __future__ import annotations

import logging
from typing import Any, Final

import uvicorn

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

    Each worker builds its own app from the factory (and loads the champion itself).
    """
    logger.info("serving on http://%s:%d with %d worker(s)", host, port, workers)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **UVICORN_OPTIONS,
    )
