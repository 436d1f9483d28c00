"""The drift-injection run: the world changes, the monitor notices, the pipeline retrains.

``drift_flow`` serves the registry's champion in process (as the loop does) for ``days``
simulated days, with a change of :mod:`reelrank.loop.world_change` (a genre's appeal
shifting, or a cohort of lapsed users coming back with tastes of their own) applied by the
simulator from its day on (the ground truth changes; the service and the pipelines never
see it). Each day:

1. **simulate** the day's visits on the (changed) ground truth and measure what was served
   (true and observed play rate, and the ideal rows' play rate: what the world offered);
2. **monitor** the day's served window against the champion's reference
   (:func:`pipelines.monitor.monitor_task`), before the day's feature refresh: the online
   features it reads are the ones the day's requests were served with (read after the
   refresh, a served user's own visit would show in them: a day-0 "drift" of 0.51 on
   ``user_days_since_last_event`` on the 300-user world, every served user having just
   acted);
3. **ingest** the day's logs into the lake and **refresh the features** (the daily feature
   run: offline tables, ``feast apply``, materialization), as production would; then, if
   the monitor found drift, the **retrain trigger** (:func:`pipelines.monitor.answer_drift`:
   logged with its reason, the train flow run, gated as usual);
4. **alerts**: the conditions of ``deploy/prometheus/rules.yml``'s drift and play-rate rules
   on the day's figures (:func:`reelrank.monitoring.timeline.alerts`);
5. **reload** the service when the gate promoted a new champion.

The records (one per day) are what ``reelrank drift-run`` prints and what
:mod:`reelrank.monitoring.timeline` renders as the results page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger

from pipelines.flows import features_flow, ingest_feedback_task
from pipelines.loop import LoopConfig, load_world_task, reload_task, simulate_day_task
from pipelines.loop import start_service_task as loop_service_task
from pipelines.monitor import answer_drift, monitor_task


@dataclass(frozen=True)
class DriftRunConfig:
    """What ``reelrank drift-run`` runs.

    Attributes:
        days: simulated days (the change included).
        change: the change's record (:func:`~reelrank.loop.world_change.world_change`:
            ``kind`` and its fields; no kind: a genre shift), ``day`` counted from the
            run's first day.
        start_day: the run's first simulated day (after the days an earlier loop or
            simulation on this data dir already served; 0: the day after the world's span).
        users_per_day: visits per simulated day.
        k: items per row.
        seed: the simulator's seed.
        retrain: let the monitor's trigger retrain (off: watch the drift go unanswered).
        train: ``TrainConfig`` fields of the retrains.
    """

    days: int = 8
    change: dict[str, Any] = field(
        default_factory=lambda: {"genre": "Drama", "shift": -1.5, "day": 2}
    )
    start_day: int = 0
    users_per_day: int = 200
    k: int = 10
    seed: int = 0
    retrain: bool = True
    train: dict[str, Any] = field(default_factory=dict)


def lake_pairs() -> Any:
    """The lake's ``user_id, item_id`` pairs (what each user had before the run), for the
    simulator's ideal rows."""
    import pandas as pd

    from reelrank.config import get_settings
    from reelrank.data.ingest import TABLE_FILES

    path = get_settings().lake_path / TABLE_FILES["events"]
    return pd.read_parquet(path, columns=["user_id", "item_id"])


@flow(name="reelrank-drift-run")
def drift_flow(config_fields: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``days`` x (simulate -> monitor -> ingest -> features -> retrain on drift -> reload)."""
    from reelrank.loop.simulator import Simulator, user_histories
    from reelrank.loop.world_change import world_change
    from reelrank.monitoring.timeline import day_record

    logger = get_run_logger()
    config = DriftRunConfig(**(config_fields or {}))
    change = world_change(config.change)  # validated, in run days
    in_simulated_days = change.on_day(config.start_day + change.day)
    truth = load_world_task()
    in_simulated_days.members(truth)  # a cohort the world cannot supply fails before serving
    client = loop_service_task(LoopConfig(gate="strict", k=config.k))
    simulator = Simulator(
        truth, client, k=config.k, seed=config.seed, change=in_simulated_days,
        history=user_histories(lake_pairs()), ideal=True,
    )  # fmt: skip
    records: list[dict[str, Any]] = []
    try:
        for day in range(config.days):
            started = time.perf_counter()
            window_start = time.time()
            served = simulate_day_task(simulator, config.start_day + day, config.users_per_day)
            window_days = (time.time() - window_start + 1.0) / 86_400
            monitored: dict[str, Any] = {"monitor": monitor_task(window_days), "retrained": False}
            ingest_feedback_task(grace_seconds=0.0)
            features_flow()
            if monitored["monitor"]["drifted"]:
                monitored |= answer_drift(monitored["monitor"], config.retrain, config.train)
            version = reload_task(client.service) if monitored.get("retrained") else None
            record = day_record(
                day, change, served, monitored, records[-1] if records else None, version
            )
            record["seconds"] = round(time.perf_counter() - started, 1)
            logger.info(
                "day %d: true play rate %.4f, max PSI %.3f (%s), alerts %s%s",
                day, record["true_play_rate"], record["max_psi"], record["max_psi_column"],
                ",".join(record["alerts"]) or "none",
                f", retrained v{record['trained_version']}" if record["retrained"] else "",
            )  # fmt: skip
            records.append(record)
    finally:
        client.impressions.close()
    return records
