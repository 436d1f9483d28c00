"""The from-scratch study kit's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import console

app = typer.Typer(help="From-scratch implementations of the classic algorithms.")


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where to write the figures.")] = Path(
        "design_docs/figures"
    ),
) -> None:
    """Draw the learning figures: GD variants, regularisation paths, k-means, learning curve."""
    from reelrank.scratch.demo import make_figures

    for path in make_figures(out):
        console.print(f"wrote {path}")
