"""One monitoring run: the champion's reference, the serving window, the report.

:func:`run_monitor` loads the reference the champion's training run logged, reads the
served-slate log of the window and the served users' online features (Feast, as the service
reads them), compares them (:func:`reelrank.monitoring.monitor.compare`), logs an MLflow run
(experiment ``reelrank-monitoring``: a metric per PSI, the report as JSON and Evidently's
data-drift report as HTML) and writes the report to ``<data_dir>/monitoring/latest.json``
(atomically), which the service's ``/metrics`` exports as gauges.

**Online quality**: the window's plays per shown item (the feedback log's plays of the
window's slates) against the version's *baseline*, its first monitored window
(``<data_dir>/monitoring/baseline-v<version>.json``, written by that run), or the previous
version's baseline when that first window was already significantly below it
(:func:`reelrank.monitoring.monitor.new_baseline`): a significant drop
(:func:`reelrank.monitoring.monitor.play_rate_test`) counts as drift, ``play_rate``.
Input PSI cannot see a change of what users like until their features move (concept drift:
``P(play | features)`` changes, the features do not); the plays can.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import pandas as pd

from reelrank.config import Settings
from reelrank.data.io import atomic_write_json
from reelrank.exceptions import ModelNotFoundError
from reelrank.monitoring import monitor
from reelrank.monitoring.drift import Profile
from reelrank.registry.aliases import Alias, version_by_alias
from reelrank.registry.store import configure, use_experiment
from reelrank.schema import USER_ID

logger = logging.getLogger(__name__)

MLFLOW_EXPERIMENT: Final = "reelrank-monitoring"
BASELINE_PREFIX: Final = "baseline-v"


def _reference(run_id: str, folder: Path) -> tuple[Profile, Profile, Path]:
    import mlflow

    try:
        path = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=monitor.REFERENCE_DIR, dst_path=str(folder)
            )
        )
    except Exception as error:  # MLflow raises several kinds for a missing artifact
        raise ModelNotFoundError(
            f"the champion's run {run_id} has no monitoring reference (trained before "
            "`reelrank monitor` existed); retrain with `reelrank train`."
        ) from error
    features = Profile.from_dict(json.loads((path / monitor.FEATURES_PROFILE).read_text()))
    scores = Profile.from_dict(json.loads((path / monitor.SCORES_PROFILE).read_text()))
    return features, scores, path


def _online_features(settings: Settings, users: list[int], columns: list[str]) -> pd.DataFrame:
    if not columns or not users:
        return pd.DataFrame(columns=columns)
    from reelrank.features.feast.providers import FeastOnlineProvider
    from reelrank.features.feast.store import get_feature_store

    provider = FeastOnlineProvider(get_feature_store(settings))
    frame = provider.user_features(users, pd.Timestamp.now(tz="UTC"))
    return frame.reindex(columns=columns).reset_index(drop=True)


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, path: Path) -> Path | None:
    """Evidently's data-drift report (PSI per column) as HTML; None if it cannot run."""
    try:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        columns = [c for c in reference.columns if c in current.columns]
        snapshot = Report([DataDriftPreset(method="psi")]).run(
            current_data=current[columns], reference_data=reference[columns]
        )
        snapshot.save_html(str(path))
    except Exception as error:  # a report is a courtesy: never fail the monitor for it
        logger.warning("Evidently report not written: %s", error)
        return None
    return path


def _play_rate(
    settings: Settings, version: str, served: pd.DataFrame, since: datetime
) -> monitor.PlayRate | None:
    """The window's play rate against the version's baseline (this window, the first time)."""
    if served.empty:
        return None
    requests = served[monitor.REQUEST_ID].unique()
    plays = monitor.window_plays(settings.feedback_path, requests, since)
    impressions = len(served)
    folder = settings.data_dir / monitor.REFERENCE_DIR
    path = folder / f"{BASELINE_PREFIX}{version}.json"
    if path.exists():
        baseline = json.loads(path.read_text(encoding="utf-8"))
    else:
        baseline = monitor.new_baseline(plays, impressions, _previous_baseline(folder, version))
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(baseline, path)
    return monitor.play_rate_test(plays, impressions, baseline["plays"], baseline["impressions"])


def _previous_baseline(folder: Path, version: str) -> dict[str, object] | None:
    """The baseline of the latest version before ``version`` that has one (None: none)."""
    earlier: list[tuple[int, Path]] = []
    for path in folder.glob(f"{BASELINE_PREFIX}*.json"):
        number = path.stem.removeprefix(BASELINE_PREFIX)
        if number.isdigit() and (not version.isdigit() or int(number) < int(version)):
            earlier.append((int(number), path))
    if not earlier:
        return None
    latest, path = max(earlier)
    return {"version": str(latest), **json.loads(path.read_text(encoding="utf-8"))}


def run_monitor(
    settings: Settings, window_days: float = 1.0, now: datetime | None = None
) -> monitor.MonitorReport:
    """Monitor the champion over the last ``window_days`` (see the module docstring)."""
    import mlflow

    configure(settings)
    version = version_by_alias(settings.model_name, Alias.CHAMPION)
    if version is None:
        raise ModelNotFoundError("no champion in the registry; run `reelrank run` first.")
    now = now or datetime.now(UTC)
    since = now - timedelta(days=window_days)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        features_ref, scores_ref, ref_dir = _reference(str(version.run_id), folder)
        served = monitor.served_window(settings.impressions_path, since, str(version.version))
        users = sorted(int(u) for u in served[USER_ID].unique())
        online = _online_features(settings, users, list(features_ref.columns))
        play_rate = _play_rate(settings, str(version.version), served, since)
        report = monitor.compare(
            features_ref, scores_ref, served, online, str(version.version), (since, now),
            play_rate=play_rate,
        )  # fmt: skip
        sample = pd.read_parquet(ref_dir / monitor.FEATURES_SAMPLE)  # features: one per user
        html = _evidently(sample, online, folder / "drift_report.html")
        use_experiment(settings, MLFLOW_EXPERIMENT)
        with mlflow.start_run(run_name=f"monitor-v{version.version}"):
            mlflow.set_tags(
                {"model_version": str(version.version), "drifted": ",".join(report.drifted)}
            )
            metrics = {f"psi_{name}": value for name, value in report.feature_psi.items()}
            if report.score_psi is not None:
                metrics["psi_score"] = report.score_psi
            if report.play_rate is not None:
                metrics["play_rate"] = report.play_rate.rate
                metrics["play_rate_baseline"] = report.play_rate.baseline_rate
            mlflow.log_metrics(metrics | {"served_items": float(report.slates_items)})
            mlflow.log_dict(report.record(), "monitoring/report.json")
            if html is not None:
                mlflow.log_artifact(str(html), artifact_path="monitoring")
    target = settings.data_dir / monitor.REFERENCE_DIR / monitor.LATEST
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report.record(), target)
    return report
