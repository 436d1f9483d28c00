"""The ``Server-Timing`` header (stage durations a browser's dev tools can show)."""

from __future__ import annotations

from collections.abc import Mapping


def server_timing(stages: Mapping[str, float]) -> str:
    """``{"retrieval": 0.00012}`` -> ``retrieval;dur=0.120`` (milliseconds), comma-joined."""
    return ", ".join(f"{name};dur={seconds * 1000.0:.3f}" for name, seconds in stages.items())
