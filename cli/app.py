"""The ``reelrank`` command line: each stage of the pipeline is one command.

Commands are thin: they parse arguments, call the library (or the Prefect flow) and
print a summary. Heavy imports happen inside the commands so ``--help`` stays fast.
Modules named by ``REELRANK_PLUGINS`` are imported first, so sources and rankers they
register are available to ``--sources`` and ``--ranker``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Annotated

import typer

from cli import experiment, loop, output, pipeline, results, scratch, service
from cli.batch import batch_recommend
from cli.monitor import drift_run, monitor
from cli.output import fail
from reelrank.config import get_settings

app = typer.Typer(
    name="reelrank",
    help="ReelRank: the Top-picks-for-you row, from raw data to a served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(scratch.app, name="scratch")
app.add_typer(experiment.app, name="experiment")
for command in (pipeline.data, pipeline.features, pipeline.train, pipeline.run):
    app.command()(command)
app.command()(results.evaluate)
app.command()(service.serve)
app.command()(service.deploy)
app.command()(results.report)
app.command(name="batch-recommend")(batch_recommend)
app.command(name="ingest-feedback")(loop.ingest_feedback)
app.command()(loop.simulate)
app.command()(loop.loop)
app.command(name="loop-study")(loop.loop_study)
app.command()(monitor)
app.command(name="drift-run")(drift_run)


def load_plugins(modules: list[str]) -> None:
    """Import each plug-in module (it registers its sources and rankers on import)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise fail(
                ImportError(f"REELRANK_PLUGINS names {module!r}, which cannot be imported: {error}")
            ) from error


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """ReelRank: the Top-picks-for-you row, from raw data to a served model."""
    output.VERBOSE = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    load_plugins(get_settings().plugin_modules)


if __name__ == "__main__":
    app()
