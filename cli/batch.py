"""``reelrank batch-recommend``: precompute every active user's top-k for the service."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated

import typer

from cli.engine import EngineOpt, RayAddressOpt, use_engine
from cli.options import JsonOpt
from cli.output import console, fail, print_json
from reelrank.config import get_settings
from reelrank.exceptions import ReelRankError


def batch_recommend(
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="List length stored.")] = 10,
    active_days: Annotated[
        int | None,
        typer.Option(
            "--active-days",
            min=1,
            help="Users with an event in the lake's last N days (default: every user with "
            "an event).",
        ),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Users per recommend() call (and Ray batch).")
    ] = 1000,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Precompute the champion's top-k of every active user into the online store
    (REELRANK_SERVE_PRECOMPUTED=true makes the service answer from it)."""
    from reelrank.batch.inference import batch_recommend as run_batch

    use_engine(engine, ray_address)
    settings = get_settings()
    try:
        # With --json stdout is the JSON: progress and libraries' prints go to stderr.
        with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
            result = run_batch(settings, k, active_days, chunk_size, progress=_progress(as_json))
    except ReelRankError as error:
        raise fail(error) from error
    if as_json:
        print_json(asdict(result) | {"users_per_second": result.users_per_second,
                                     "online_store": settings.online_store})  # fmt: skip
        return
    console.print(
        f"batch-recommend ({result.engine} engine): {result.users:,} users, top {result.k} "
        f"of version {result.version} in {result.compute_seconds:.2f} s "
        f"({result.users_per_second:,.0f} users/s), written in {result.write_seconds:.2f} s "
        f"to the {settings.online_store} online store"
    )


def _progress(as_json: bool) -> Callable[[str], None]:
    """Progress lines: the console's, or stderr's under --json."""
    if not as_json:
        return console.print
    return lambda line: print(line, file=sys.stderr)
