"""Drift of what is served against what the model was trained on: ``reelrank monitor``.

**Reference** (logged with every model, :func:`reference_frames`): the population of
requests the model was trained for: as many draws of training users as there are (at most
:data:`MAX_REFERENCE_USERS`), in proportion to their events in the last 30 days of
training (who comes back is who was active: a uniform sample of all training users,
churned ones included, differs from any day's visitors by a PSI of 1.8 on
``user_events_30d`` with no drift at all, measured on the 300-user world), their stored
user features as of the end of training (the model's own snapshot, the ranker's inputs)
and the ranker's scores of their top-10 rows (one value per shown item). Their profiles
(:mod:`reelrank.monitoring.drift`) and the sample itself (for Evidently's report) are
MLflow artifacts of the version's run.

**Current** (:func:`served_window`): the served-slate log of the last ``window`` days for
the champion's version (the scores of every shown item), and the *online* features of the
users served in it, read from the feature store as the service reads them.

:func:`compare` gives the PSI of every user feature and of the score distribution, the
threshold of each (:func:`~reelrank.monitoring.drift.effective_threshold`: 0.2, or the
window's sampling noise when that is higher) and the columns over it.
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
from reelrank.features.columns import USER_EVENTS_30D, USER_EVENTS_TOTAL
from reelrank.loop.logs import FEEDBACK_PREFIX, IMPRESSIONS_PREFIX, log_files
from reelrank.loop.records import RecordError, parse_event, parse_slate
from reelrank.monitoring.drift import (
    DRIFT_THRESHOLD,
    Profile,
    build_profile,
    drift,
    effective_threshold,
)
from reelrank.schema import SCORE, USER_ID

REQUEST_ID: Final = "request_id"

MAX_REFERENCE_USERS: Final = 5_000
REFERENCE_DIR: Final = "monitoring"
FEATURES_PROFILE: Final = "reference_features.json"
SCORES_PROFILE: Final = "reference_scores.json"
FEATURES_SAMPLE: Final = "reference_features.parquet"
SCORES_SAMPLE: Final = "reference_scores.parquet"
NOT_MONITORED: Final[tuple[str, ...]] = (USER_EVENTS_TOTAL,)
"""Cumulative columns: they grow with every event by construction, so every later window
"drifts" from training (on the 300-user world, PSI 2.3 on the first served day after
training, from users past the training maximum), and PSI says nothing about them."""
PLAY_RATE_ALPHA: Final = 0.01
"""One-sided significance of a play-rate drop against the version's baseline window."""
PLAY_RATE: Final = "play_rate"
"""The drifted-column name of a significant play-rate drop."""
LATEST: Final = "latest.json"
"""``<data_dir>/monitoring/latest.json``: the last report, which ``/metrics`` exports."""


def reference_frames(
    model: Any, max_users: int = MAX_REFERENCE_USERS, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(user features, scores)`` of as many seeded draws (at most ``max_users``) of
    ``model``'s training users as there are, in proportion to their events in the last 30
    days (uniform when the model has no stored user features or nobody was active)."""
    users = np.asarray(model.interactions_.user_ids, dtype=np.int64)
    columns = list(model.layout_.user_columns)
    provider = getattr(model, "feature_provider_", None)
    stored = None
    if columns and provider is not None:
        frame = provider.user_frame
        stored = frame[~frame.index.duplicated(keep="last")].reindex(users)
    weights = np.ones(len(users))
    if stored is not None and USER_EVENTS_30D in stored:
        recent = stored[USER_EVENTS_30D].fillna(0).to_numpy(dtype=np.float64)
        if recent.sum() > 0:
            weights = recent
    rng = np.random.default_rng(seed)
    # As many draws as there are users, at most max_users: the bootstrap of the noise level
    # (drift.noise_threshold) takes the reference's rows as independent.
    size = min(max_users, len(users))
    drawn = np.sort(rng.choice(len(users), size, p=weights / weights.sum()))
    sample = users[drawn]
    if stored is not None:
        features = stored[columns].iloc[drawn]
    else:
        features = pd.DataFrame(index=pd.Index(sample, name=USER_ID))
    distinct = np.unique(sample)
    rows = model.recommend(distinct.tolist(), k=10)[[USER_ID, SCORE]]
    per_user = rows.groupby(USER_ID, sort=False)[SCORE].apply(list)
    scores = pd.DataFrame({USER_ID: sample, SCORE: per_user.reindex(sample).to_numpy()})
    scores = scores.explode(SCORE).dropna(subset=[SCORE]).astype({SCORE: "float64"})
    return features.reset_index(drop=True), scores.reset_index(drop=True)


def reference_profiles(features: pd.DataFrame, scores: pd.DataFrame) -> tuple[Profile, Profile]:
    return build_profile(features), build_profile(scores[[SCORE]])


def served_window(
    impressions_dir: Path, since: datetime, version: str | None = None
) -> pd.DataFrame:
    """``request_id, user_id, score`` of every item shown since ``since`` (by ``version``
    only, when given), from the served-slate log; unparseable lines are skipped here
    (``reelrank ingest-feedback`` quarantines them)."""
    requests, users, scores = [], [], []
    for path in _files_since(impressions_dir, IMPRESSIONS_PREFIX, since):
        for line in path.read_bytes().splitlines():
            try:
                slate = parse_slate(line)
            except RecordError:
                continue
            if slate.served_at < since or (version is not None and slate.model_version != version):
                continue
            for item in slate.items:
                requests.append(slate.request_id)
                users.append(slate.user_id)
                scores.append(item.score)
    return pd.DataFrame(
        {REQUEST_ID: requests, USER_ID: pd.Series(users, dtype="int64"), SCORE: scores}
    )


def _files_since(directory: Path, prefix: str, since: datetime | None) -> list[Path]:
    """The day files of one log that can hold lines written since ``since`` (all when None).

    A day file holds the batches whose first line was written that UTC day (a batch can
    cross midnight): files from the day before ``since`` on."""
    files = log_files(directory, prefix)
    if since is None:
        return files
    first_day = f"{prefix}{since.astimezone(UTC) - timedelta(days=1):%Y-%m-%d}"
    return [path for path in files if path.name >= first_day]


def window_plays(
    feedback_dir: Path, request_ids: Iterable[str], since: datetime | None = None
) -> int:
    """Distinct ``(request, position)`` slots played among the given requests' slates, from
    the feedback log (from ``since``'s files on, when given: a play of a slate served
    since then is received after it; unparseable lines are skipped, as in
    :func:`served_window`)."""
    wanted = set(request_ids)
    played: set[tuple[str, int | None]] = set()
    for path in _files_since(feedback_dir, FEEDBACK_PREFIX, since):
        for line in path.read_bytes().splitlines():
            try:
                event = parse_event(line)
            except RecordError:
                continue
            if event.event == "play" and event.request_id in wanted:
                played.add((event.request_id, event.position))
    return len(played)


@dataclass(frozen=True)
class PlayRate:
    """Plays per shown item of a window against the version's baseline window (its first
    monitored one, or the one it inherited: :func:`new_baseline`): a one-sided
    two-proportion z-test of a drop."""

    plays: int
    impressions: int
    baseline_plays: int
    baseline_impressions: int
    p_value: float | None
    alpha: float = PLAY_RATE_ALPHA

    @property
    def rate(self) -> float:
        return self.plays / self.impressions if self.impressions else 0.0

    @property
    def baseline_rate(self) -> float:
        return self.baseline_plays / self.baseline_impressions if self.baseline_impressions else 0.0

    @property
    def dropped(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha

    def record(self) -> dict[str, Any]:
        return asdict(self) | {
            "rate": self.rate, "baseline_rate": self.baseline_rate, "dropped": self.dropped,
        }  # fmt: skip


def play_rate_test(
    plays: int, impressions: int, baseline_plays: int, baseline_impressions: int,
    alpha: float = PLAY_RATE_ALPHA,
) -> PlayRate:  # fmt: skip
    """The window's play rate against the baseline's (see :class:`PlayRate`); no p-value
    when either window is empty or nothing was played in both."""
    from scipy.stats import norm

    p_value = None
    if impressions and baseline_impressions:
        pooled = (plays + baseline_plays) / (impressions + baseline_impressions)
        spread = np.sqrt(pooled * (1 - pooled) * (1 / impressions + 1 / baseline_impressions))
        if spread > 0:
            z = (plays / impressions - baseline_plays / baseline_impressions) / spread
            p_value = float(norm.cdf(z))
    return PlayRate(plays, impressions, baseline_plays, baseline_impressions, p_value, alpha)


def new_baseline(
    plays: int, impressions: int, previous: dict[str, Any] | None, alpha: float = PLAY_RATE_ALPHA
) -> dict[str, Any]:
    """A new version's play-rate baseline, from its first monitored window.

    The window becomes the baseline unless it is itself significantly below the previous
    version's baseline (``previous``: its ``plays``, ``impressions`` and ``version``): then
    the new version inherits that baseline (``inherited_from``). One bad first window (a
    model promoted into a changed world, or a noisy day) must not lower the bar every later
    window is held to; a retrain that did not restore the level is then flagged again."""
    own = {"plays": int(plays), "impressions": int(impressions)}
    if previous is None:
        return own
    test = play_rate_test(
        plays, impressions, int(previous["plays"]), int(previous["impressions"]), alpha
    )
    if not test.dropped:
        return own
    return {
        "plays": int(previous["plays"]),
        "impressions": int(previous["impressions"]),
        "inherited_from": str(previous.get("inherited_from") or previous.get("version")),
    }


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
    feature_thresholds: dict[str, float]
    score_threshold: float | None
    play_rate: PlayRate | None = None

    @property
    def drifted(self) -> list[str]:
        """Columns over their threshold (``score`` for the ranker's scores), and
        ``play_rate`` when the play rate dropped significantly below the baseline's."""
        columns = [
            name
            for name, value in self.feature_psi.items()
            if value > self.feature_thresholds.get(name, self.threshold)
        ]
        if self.score_psi is not None and self.score_psi > (self.score_threshold or 0.0):
            columns.append(SCORE)
        if self.play_rate is not None and self.play_rate.dropped:
            columns.append(PLAY_RATE)
        return columns

    def record(self) -> dict[str, Any]:
        play_rate = None if self.play_rate is None else self.play_rate.record()
        return asdict(self) | {"drifted": self.drifted, "play_rate": play_rate}


def compare(
    features_reference: Profile,
    scores_reference: Profile,
    served: pd.DataFrame,
    online_features: pd.DataFrame,
    model_version: str,
    window: tuple[datetime, datetime],
    threshold: float = DRIFT_THRESHOLD,
    play_rate: PlayRate | None = None,
) -> MonitorReport:
    """PSI of the served users' online features and of the served scores, and the
    threshold of each (``threshold`` or the window's noise level; the family of columns
    compared shares one false-alarm rate). A served user counts once, in the features and
    the scores alike (the items of one row are not independent draws)."""
    if served.empty:
        raise ValidationError(
            f"no slate of version {model_version} was served from {window[0]:%Y-%m-%d %H:%M} "
            "on; widen --window or serve traffic first."
        )
    users = int(served[USER_ID].nunique())
    monitored = online_features.drop(columns=list(NOT_MONITORED), errors="ignore")
    feature_psi = drift(features_reference, monitored)
    score_psi = drift(scores_reference, served[[SCORE]]).get(SCORE)
    compared = len(feature_psi) + (score_psi is not None)

    def level(profile: Profile, name: str) -> float:
        column = profile.columns[name]
        return effective_threshold(column, users, threshold, comparisons=compared)

    return MonitorReport(
        model_version=model_version,
        window_start=window[0].isoformat(),
        window_end=window[1].isoformat(),
        slates_items=len(served),
        users=users,
        feature_psi=feature_psi,
        score_psi=score_psi,
        threshold=threshold,
        feature_thresholds={name: level(features_reference, name) for name in feature_psi},
        score_threshold=None if score_psi is None else level(scores_reference, SCORE),
        play_rate=play_rate,
    )


GAUGES: Final[dict[str, str]] = {
    "reelrank_feature_psi": "PSI of a served feature against the model's reference.",
    "reelrank_feature_psi_threshold": "The PSI a feature must exceed to count as drift "
    "(0.2, or the window's noise level when higher).",
    "reelrank_score_psi": "PSI of the served scores against the model's reference.",
    "reelrank_score_psi_threshold": "The PSI the scores must exceed to count as drift.",
    "reelrank_play_rate": "Plays per shown item in the monitor's window.",
    "reelrank_play_rate_baseline": "Plays per shown item of the serving version's baseline.",
    "reelrank_play_rate_p_value": "One-sided p-value of the window's play rate being below "
    "the baseline's (two-proportion z-test).",
    "reelrank_play_rate_alpha": "The level under which that p-value counts as a drop.",
}
"""The gauges of a report (:func:`gauges`), with their help texts."""


def gauges(report: dict[str, Any]) -> Iterable[tuple[str, dict[str, str], float]]:
    """``(metric, labels, value)`` of a report: what ``/metrics`` exports (:data:`GAUGES`).
    The play-rate test's gauges only when it has a p-value (both windows had impressions)."""
    thresholds = report.get("feature_thresholds", {})
    for feature, value in report.get("feature_psi", {}).items():
        yield "reelrank_feature_psi", {"feature": feature}, float(value)
        level = thresholds.get(feature, report.get("threshold", DRIFT_THRESHOLD))
        yield "reelrank_feature_psi_threshold", {"feature": feature}, float(level)
    if report.get("score_psi") is not None:
        yield "reelrank_score_psi", {}, float(report["score_psi"])
        level = report.get("score_threshold") or report.get("threshold", DRIFT_THRESHOLD)
        yield "reelrank_score_psi_threshold", {}, float(level)
    play_rate = report.get(PLAY_RATE) or {}
    if play_rate.get("p_value") is not None:
        yield "reelrank_play_rate", {}, float(play_rate["rate"])
        yield "reelrank_play_rate_baseline", {}, float(play_rate["baseline_rate"])
        yield "reelrank_play_rate_p_value", {}, float(play_rate["p_value"])
        yield "reelrank_play_rate_alpha", {}, float(play_rate["alpha"])
