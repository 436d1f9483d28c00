"""The ``--engine`` and ``--ray-address`` options: where a command's parallel work runs."""

from __future__ import annotations

import os
from typing import Annotated, Final

import typer

from reelrank.config import EngineKind, get_settings, reset_settings

ENGINES: Final[tuple[EngineKind, ...]] = ("local", "ray")

EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="local (this process) or ray (the cluster at --ray-address); default: "
        "REELRANK_ENGINE, else local.",
        show_default=False,
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="host:port of the Ray head (`ray start --head`) for --engine ray; default: "
        "REELRANK_RAY_ADDRESS.",
        show_default=False,
    ),
]


def use_engine(engine: str | None, ray_address: str | None) -> EngineKind:
    """Make the options the settings of this process (and of the Ray workers it starts).

    Raises:
        typer.BadParameter: an unknown engine.
    """
    if engine is not None:
        if engine not in ENGINES:
            raise typer.BadParameter(f"{engine!r}: choose one of {', '.join(ENGINES)}.")
        os.environ["REELRANK_ENGINE"] = engine
    if ray_address is not None:
        os.environ["REELRANK_RAY_ADDRESS"] = ray_address
    reset_settings()
    settings = get_settings()
    if settings.engine == "ray":
        from reelrank.engines import ray_address as cluster_address
        from reelrank.exceptions import EngineError

        try:
            cluster_address(settings)
        except EngineError as error:
            raise typer.BadParameter(str(error), param_hint="--ray-address") from error
    return settings.engine
