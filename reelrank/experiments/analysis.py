"""Analysing a running experiment from the ingested logs: ``reelrank experiment analyze``.

The unit of randomisation is the user, so the logs become one row per user who was served
in the experiment (:func:`per_user_from_lake`): their arm, their slates (distinct request
ids of the served-slate table, ``<lake>/impressions.parquet``), their plays and clicks (the
feedback table's ``play`` and ``click`` rows of those slates, ``<lake>/feedback.parquet``),
and, for CUPED, their activity before the experiment (the source's events, which the
experiment cannot have changed). :func:`reelrank.experiments.abtest.analyse` does the rest:
per-arm rates, the delta-method interval of the difference, CUPED, the sample-ratio check.
Both tables are written by ``reelrank ingest-feedback``; run it first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd

from reelrank import schema as s
from reelrank.exceptions import DataSourceError, ValidationError
from reelrank.experiments.abtest import ARM, CLICKS, PLAYS, PRE, SLATES, AbResult, analyse
from reelrank.loop.feedback import (
    CLICK,
    KIND,
    ORIGIN,
    PLAY,
    REQUEST_ID,
    SOURCE_ORIGIN,
    read_feedback_table,
    read_impressions,
)

EXPERIMENT: Final = "experiment"


@dataclass(frozen=True)
class ExperimentAnalysis:
    """An experiment's analysis: which arms, and the result."""

    name: str
    control: str
    treatment: str
    result: AbResult
    first_served: str
    last_served: str

    def record(self) -> dict[str, Any]:
        return {
            "experiment": self.name,
            "control": self.control,
            "treatment": self.treatment,
            "first_served": self.first_served,
            "last_served": self.last_served,
            **asdict(self.result),
        }


def per_user_from_lake(
    impressions: pd.DataFrame,
    feedback: pd.DataFrame,
    name: str,
    pre_activity: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per user served in experiment ``name``: ``user_id, arm, slates, plays,
    clicks`` (and ``pre_activity`` when given).

    Raises:
        ValidationError: no slate of ``name`` was ingested, or a user was served by two
            arms (the assignment or the logging is broken; no difference can be trusted).
    """
    shown = impressions[impressions[EXPERIMENT] == name]
    if shown.empty:
        known = sorted(str(e) for e in impressions[EXPERIMENT].dropna().unique())
        raise ValidationError(
            f"no served slate of experiment {name!r} in the lake (experiments there: "
            f"{known or 'none'}); run `reelrank ingest-feedback` after the service served it."
        )
    slates = shown.drop_duplicates(REQUEST_ID)[[REQUEST_ID, s.USER_ID, ARM]]
    arms = slates.groupby(s.USER_ID)[ARM].nunique()
    if (arms > 1).any():
        users = arms[arms > 1].index.tolist()
        raise ValidationError(
            f"{len(users)} users were served by more than one arm of {name!r} (e.g. "
            f"{users[:5]}); the assignment changed during the test, so it cannot be analysed."
        )
    acted = feedback[feedback[REQUEST_ID].isin(slates[REQUEST_ID])]
    per_user = slates.groupby(s.USER_ID).agg(arm=(ARM, "first"), slates=(REQUEST_ID, "size"))
    for column, kind in ((PLAYS, PLAY), (CLICKS, CLICK)):
        counts = acted[acted[KIND] == kind].groupby(s.USER_ID).size()
        per_user[column] = counts.reindex(per_user.index, fill_value=0).astype(int)
    frame = per_user.reset_index().rename(columns={"slates": SLATES})
    if pre_activity is not None:
        frame[PRE] = frame[s.USER_ID].map(pre_activity).fillna(0).astype(float)
    return frame


def pre_period_activity(events: pd.DataFrame) -> pd.Series:
    """Each user's events from the source (not from feedback): the CUPED covariate."""
    if ORIGIN in events:
        events = events[events[ORIGIN].fillna(SOURCE_ORIGIN) == SOURCE_ORIGIN]
    return events.groupby(s.USER_ID).size()


def lake_pre_activity(lake_dir: Path) -> pd.Series:
    """:func:`pre_period_activity` of the lake's events (every event, in a lake no feedback
    was ingested into)."""
    events_path = Path(lake_dir) / "events.parquet"
    if not events_path.exists():
        raise DataSourceError(f"no lake at {lake_dir}; run `reelrank data` first.")
    columns = [s.USER_ID, ORIGIN] if _has_origin(events_path) else [s.USER_ID]
    return pre_period_activity(pd.read_parquet(events_path, columns=columns))


def analyse_lake(
    lake_dir: Path,
    name: str,
    control: str | None = None,
    split: Mapping[str, float] | None = None,
    level: float = 0.95,
) -> ExperimentAnalysis:
    """The analysis of experiment ``name`` from the lake's ingested logs.

    Args:
        control: the control arm (default: the first of the two in ``split``, else the
            first by name).
        split: the configured share of each arm (default: equal).
    """
    pre_activity = lake_pre_activity(lake_dir)
    impressions = read_impressions(lake_dir)
    frame = per_user_from_lake(impressions, read_feedback_table(lake_dir), name, pre_activity)
    arms = sorted(str(a) for a in frame[ARM].unique())
    if len(arms) != 2:
        raise ValidationError(f"experiment {name!r} served {len(arms)} arms ({arms}); need 2.")
    ordered = [a for a in (split or {}) if a in arms] or arms
    control = control or ordered[0]
    if control not in arms:
        raise ValidationError(f"--control {control!r} is not an arm of {name!r}: {arms}.")
    treatment = next(a for a in arms if a != control)
    shares = {arm: float((split or {}).get(arm, 1.0)) for arm in arms}
    total = sum(shares.values())
    result = analyse(frame, control, treatment, {a: v / total for a, v in shares.items()}, level)
    served = impressions.loc[impressions[EXPERIMENT] == name, "served_at"]
    return ExperimentAnalysis(
        name, control, treatment, result, served.min().isoformat(), served.max().isoformat()
    )


def _has_origin(path: Path) -> bool:
    import pyarrow.parquet as pq

    return ORIGIN in pq.read_schema(path).names


def render_page(analysis: ExperimentAnalysis) -> str:
    """The analysis as a markdown page (logged to MLflow beside the metrics)."""
    r = analysis.result
    lines = [
        f"# Experiment `{analysis.name}`",
        "",
        f"Written by `reelrank experiment analyze --experiment {analysis.name}` from the "
        f"ingested logs; slates served {analysis.first_served} to {analysis.last_served}. "
        "Unit of analysis: the user (delta method).",
        "",
        "| arm | users | slates | plays | clicks | play rate | se | plays/user | clicks/user |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in (r.control, r.treatment):
        lines.append(
            f"| {arm.arm} | {arm.users:,} | {arm.slates:,} | {arm.plays:,} | {arm.clicks:,} "
            f"| {arm.play_rate:.4f} | {arm.play_rate_se:.4f} | {arm.plays_per_user:.3f} "
            f"| {arm.clicks_per_user:.3f} |"
        )
    d = r.difference
    lines += [
        "",
        f"- difference ({analysis.treatment} - {analysis.control}): {d.estimate:+.4f} plays per "
        f"slate ({d.relative:+.1%}), 95% CI [{d.low:+.4f}, {d.high:+.4f}], p = {d.p_value:.4f}",
    ]
    if r.cuped is not None:
        saved = "" if r.variance_saved is None else f", variance saved {r.variance_saved:.1%}"
        lines.append(
            f"- CUPED (pre-period events): {r.cuped.estimate:+.4f}, 95% CI "
            f"[{r.cuped.low:+.4f}, {r.cuped.high:+.4f}]{saved}"
        )
    srm = r.srm
    verdict = "**mismatch: do not trust the difference**" if srm.mismatch else "no mismatch"
    lines.append(
        f"- sample ratio: users {srm.observed}, chi-square p = {srm.p_value:.4f}: {verdict}"
    )
    return "\n".join(lines) + "\n"
