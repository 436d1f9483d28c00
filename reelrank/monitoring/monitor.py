"""Drift of what is served against what the model was trained on: ``reelrank monitor``.

**Reference** (logged with every model, :func:`reference_frames`): a seeded sample of up to
:data:`MAX_REFERENCE_USERS` training users, their stored user features as of the end of
training (the model's own snapshot, the ranker's inputs) and the ranker's scores of their
top-10 rows (one value per shown item). Their profiles (:mod:`reelrank.monitoring.drift`)
and the sample itself (for Evidently's report) are MLflow artifacts of the version's run.

**Current** (:func:`served_window`): the served-slate log of the last ``window`` days for
the champion's version (the scores of every shown item), and the *online* features of the
users served in it, read from the feature store as the service reads them.

:func:`compare` gives the PSI of every user feature and of the score distribution, and the
columns over :data:`~reelrank.monitoring.drift.DRIFT_THRESHOLD`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from reelrank.exceptions import ValidationError
from reelrank.loop.logs import IMPRESSIONS_PREFIX, log_files
from reelrank.loop.records import RecordError, parse_slate
from reelrank.monitoring.drift import DRIFT_THRESHOLD, Profile, build_profile, drift
from reelrank.schema import SCORE, USER_ID

MAX_REFERENCE_USERS: Final = 5_000
REFERENCE_DIR: Final = "monitoring"
FEATURES_PROFILE: Final = "reference_features.json"
SCORES_PROFILE: Final = "reference_scores.json"
FEATURES_SAMPLE: Final = "reference_features.parquet"
SCORES_SAMPLE: Final = "reference_scores.parquet"
LATEST: Final = "latest.json"
"""``<data_dir>/monitoring/latest.json``: the last report, which ``/metrics`` exports."""


def reference_frames(
    model: Any, max_users: int = MAX_REFERENCE_USERS, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(user features, scores)`` of a seeded sample of ``model``'s training users."""
    users = np.asarray(model.interactions_.user_ids, dtype=np.int64)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    columns = list(model.layout_.user_columns)
    provider = getattr(model, "feature_provider_", None)
    if columns and provider is not None:
        frame = provider.user_frame
        features = frame[~frame.index.duplicated(keep="last")].reindex(users)[columns]
    else:
        features = pd.DataFrame(index=pd.Index(users, name=USER_ID))
    scores = model.recommend(users.tolist(), k=10)[[USER_ID, SCORE]]
    return features.reset_index(drop=True), scores.reset_index(drop=True)


def reference_profiles(features: pd.DataFrame, scores: pd.DataFrame) -> tuple[Profile, Profile]:
    return build_profile(features), build_profile(scores[[SCORE]])


def served_window(
    impressions_dir: Path, since: datetime, version: str | None = None
) -> pd.DataFrame:
    """``user_id, score`` of every item shown since ``since`` (by ``version`` only, when
    given), from the served-slate log; unparseable lines are skipped here (``reelrank
    ingest-feedback`` quarantines them)."""
    users, scores = [], []
    # A day file holds the batches whose first slate was served that UTC day (a batch can
    # cross midnight): files from the day before ``since`` on can hold the window.
    first_day = f"{IMPRESSIONS_PREFIX}{since.astimezone(UTC) - timedelta(days=1):%Y-%m-%d}"
    for path in log_files(impressions_dir, IMPRESSIONS_PREFIX):
        if path.name < first_day:
            continue
        for line in path.read_bytes().splitlines():
            try:
                slate = parse_slate(line)
            except RecordError:
                continue
            if slate.served_at < since or (version is not None and slate.model_version != version):
                continue
            for item in slate.items:
                users.append(slate.user_id)
                scores.append(item.score)
    return pd.DataFrame({USER_ID: pd.Series(users, dtype="int64"), SCORE: scores})


@dataclass(frozen=True)
class MonitorReport:
    """One monitoring window against the serving model's reference."""

    model_version: str
    window_start: str
    window_end: str
    slates_items: int
    users: int
    feature_psi: dict[str, float]
    score_psi: float | None
    threshold: float

    @property
    def drifted(self) -> list[str]:
        """Columns over the threshold (``score`` for the ranker's scores)."""
        columns = [name for name, value in self.feature_psi.items() if value > self.threshold]
        if self.score_psi is not None and self.score_psi > self.threshold:
            columns.append(SCORE)
        return columns

    def record(self) -> dict[str, Any]:
        return asdict(self) | {"drifted": self.drifted}


def compare(
    features_reference: Profile,
    scores_reference: Profile,
    served: pd.DataFrame,
    online_features: pd.DataFrame,
    model_version: str,
    window: tuple[datetime, datetime],
    threshold: float = DRIFT_THRESHOLD,
) -> MonitorReport:
    """PSI of the served users' online features and of the served scores."""
    if served.empty:
        raise ValidationError(
            f"no slate of version {model_version} was served from {window[0]:%Y-%m-%d %H:%M} "
            "on; widen --window or serve traffic first."
        )
    score_psi = drift(scores_reference, served[[SCORE]]).get(SCORE)
    return MonitorReport(
        model_version=model_version,
        window_start=window[0].isoformat(),
        window_end=window[1].isoformat(),
        slates_items=len(served),
        users=int(served[USER_ID].nunique()),
        feature_psi=drift(features_reference, online_features),
        score_psi=score_psi,
        threshold=threshold,
    )


def gauges(report: dict[str, Any]) -> Iterable[tuple[str, dict[str, str], float]]:
    """``(metric, labels, value)`` of a report: what ``/metrics`` exports."""
    for feature, value in report.get("feature_psi", {}).items():
        yield "reelrank_feature_psi", {"feature": feature}, float(value)
    if report.get("score_psi") is not None:
        yield "reelrank_score_psi", {}, float(report["score_psi"])
