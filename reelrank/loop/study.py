"""Running the loop once per policy from copies of one data dir (``reelrank loop-study``).

Every run starts from the same lake, features, registry and champion: :func:`copy_data_dir`
copies the base data dir (without the service's logs, unless the lake has ingested from
them: a watermark names them) and makes the copy self-contained,
so nothing a run does reaches the base or another run: the MLflow store's absolute
artifact locations and the lake summary's paths are rewritten to the copy's
(:func:`reelrank.registry.store.relocate_store`). The study's record (the commands, the
setup and each run's rounds) is what :mod:`reelrank.loop.report` renders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Final

from reelrank.data.ingest import SUMMARY_FILE, read_summary
from reelrank.data.io import atomic_write_json
from reelrank.exceptions import DataSourceError
from reelrank.loop.feedback import STATE_FILE
from reelrank.registry.store import relocate_store

LOGS: Final = ("feedback", "impressions")
MLFLOW_DB: Final = "mlflow.db"
WORLD_FIELDS: Final = ("n_users", "n_items", "n_events", "seed")


def copy_data_dir(source: Path, target: Path) -> Path:
    """A self-contained copy of the data dir ``source`` at ``target`` (replaced if there)."""
    source, target = Path(source).resolve(), Path(target).resolve()
    if not (source / "lake" / SUMMARY_FILE).exists():
        raise DataSourceError(
            f"{source} holds no lake; build one with `reelrank run --dataset synthetic`."
        )
    if target.exists():
        shutil.rmtree(target)
    # A lake that ingested the logs keeps a watermark into them: they are part of its state.
    ingested = (source / "lake" / STATE_FILE).exists()
    shutil.copytree(source, target, ignore=None if ingested else shutil.ignore_patterns(*LOGS))
    if (target / MLFLOW_DB).exists():
        relocate_store(target / MLFLOW_DB, source, target)
    summary = read_summary(target / "lake")
    text = json.dumps(summary).replace(str(source), str(target))
    atomic_write_json(json.loads(text), target / "lake" / SUMMARY_FILE)
    return target


def world_of(data_dir: Path) -> dict[str, Any]:
    """The synthetic world's size and seed, from its saved config."""
    summary = read_summary(Path(data_dir) / "lake")
    if summary.get("dataset") != "synthetic":
        raise DataSourceError(
            f"the loop study needs a synthetic world; {data_dir} holds {summary.get('dataset')!r}."
        )
    config = json.loads((Path(summary["source"]) / "config.json").read_text(encoding="utf-8"))
    return {name: config[name] for name in WORLD_FIELDS}


def build_command(world: dict[str, Any], folds: int) -> str:
    """The ``reelrank run`` that builds such a base data dir."""
    return (
        f"reelrank run --dataset synthetic --users {world['n_users']} --items {world['n_items']} "
        f"--events {world['n_events']} --seed {world['seed']} --folds {folds} --no-diagnostics"
    )


def next_simulated_day(data_dir: Path) -> int:
    """The first simulated day after those whose feedback the data dir's lake holds (0 when
    nothing was simulated on it): where a run on a warmed-up copy must start so its events
    come after the lake's."""
    import pandas as pd

    from reelrank.config import Settings
    from reelrank.data.ingest import read_lake
    from reelrank.loop.simulator import world_truth
    from reelrank.schema import TIMESTAMP

    settings = Settings(data_dir=Path(data_dir))
    events = read_lake(settings.lake_path).events
    truth = world_truth(settings)
    end = truth.start + pd.Timedelta(days=truth.span_days)
    later = events.loc[events[TIMESTAMP] >= end, TIMESTAMP]
    return 0 if later.empty else int((later.max() - end) // pd.Timedelta(days=1)) + 1
