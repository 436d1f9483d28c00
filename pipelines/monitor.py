"""The monitor as a Prefect flow, the retrain trigger, and its scheduled deployment.

``reelrank-monitor`` runs :func:`reelrank.monitoring.run.run_monitor` as a task (retried on
I/O) and, when a column drifted over the threshold and ``retrain`` is on, starts the train
flow (``reelrank-train``, gated as usual) as a subflow; the trigger is logged with its reason
and appended to ``<data_dir>/monitoring/triggers.jsonl``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task

from reelrank.config import get_settings
from reelrank.monitoring.monitor import PLAY_RATE, REFERENCE_DIR

MONITOR_DEPLOYMENT = "hourly"
TRIGGERS = "triggers.jsonl"


@task(name="monitor", retries=1, retry_delay_seconds=5)
def monitor_task(window_days: float) -> dict[str, Any]:
    from reelrank.monitoring.run import run_monitor

    return run_monitor(get_settings(), window_days).record()


def _log_trigger(report: dict[str, Any], reason: str) -> None:
    path = get_settings().data_dir / REFERENCE_DIR / TRIGGERS
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(UTC).isoformat(), "reason": reason, "report": report}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


@flow(name="reelrank-monitor")
def monitor_flow(
    window_days: float = 1.0, retrain: bool = False, train_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Monitor the champion; retrain when drift crossed the threshold (if ``retrain``)."""
    report = monitor_task(window_days)
    result: dict[str, Any] = {"monitor": report, "retrained": False}
    if report["drifted"]:
        result |= answer_drift(report, retrain, train_config)
    return result


def answer_drift(
    report: dict[str, Any], retrain: bool, train_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The retrain trigger of a drifted report: its reason logged (and, with ``retrain``,
    appended to ``triggers.jsonl``) and the train flow run, gated as usual."""
    from pipelines.flows import on_engine, train_flow

    reason = f"drift: {_over(report)} (model version {report['model_version']})"
    get_run_logger().warning("retrain trigger: %s", reason)
    result: dict[str, Any] = {"trigger": reason, "retrained": False}
    if retrain:
        _log_trigger(report, reason)
        config = {"dataset": _lake_dataset(), **(train_config or {})}
        result["train"] = on_engine(train_flow)(config)
        result["retrained"] = True
    return result


def _over(report: dict[str, Any]) -> str:
    """What drifted: ``column PSI > threshold`` of each column over its threshold, and the
    play rate's drop against its baseline."""
    psi = dict(report["feature_psi"], score=report.get("score_psi"))
    levels = dict(report.get("feature_thresholds", {}), score=report.get("score_threshold"))
    parts = []
    for name in report["drifted"]:
        if name == PLAY_RATE:
            rate = report["play_rate"]
            parts.append(
                f"play rate {rate['rate']:.4f} < baseline {rate['baseline_rate']:.4f} "
                f"(one-sided p = {rate['p_value']:.2g})"
            )
        else:
            parts.append(
                f"PSI of {name} {psi[name]:.3f} > {levels.get(name) or report['threshold']:.3f}"
            )
    return ", ".join(parts)


def _lake_dataset() -> str:
    from reelrank.data.ingest import read_summary

    return str(read_summary(get_settings().lake_path).get("dataset", "synthetic"))


def deploy_monitor(work_pool: str, cron: str = "0 * * * *") -> str:
    """Register the monitor (with the retrain trigger on) as a scheduled deployment."""
    from prefect.deployments.runner import EntrypointType

    deployment: Any = monitor_flow.to_deployment(
        name=MONITOR_DEPLOYMENT,
        cron=cron,
        parameters={"window_days": 1.0, "retrain": True},
        description="Drift of the served window against the champion's reference; retrain "
        "over the threshold.",
        tags=["reelrank", "monitoring"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return str(deployment.apply(work_pool_name=work_pool))
