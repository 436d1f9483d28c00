"""``reelrank batch-recommend``: precompute every active user's top-k for the service."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.engine import EngineOpt, RayAddressOpt, use_engine
from cli.output import console, fail
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
) -> None:
    """Precompute the champion's top-k of every active user into the online store
    (REELRANK_SERVE_PRECOMPUTED=true makes the service answer from it)."""
    from reelrank.batch.inference import batch_recommend as run_batch

    use_engine(engine, ray_address)
    settings = get_settings()
    try:
        result = run_batch(settings, k, active_days, chunk_size, progress=console.print)
    except ReelRankError as error:
        raise fail(error) from error
    console.print(
        f"batch-recommend ({result.engine} engine): {result.users:,} users, top {result.k} "
        f"of version {result.version} in {result.compute_seconds:.2f} s "
        f"({result.users_per_second:,.0f} users/s), written in {result.write_seconds:.2f} s "
        f"to the {settings.online_store} online store"
    )
