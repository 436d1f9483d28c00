"""The drift-injection run's timeline: one record per simulated day, the alerts, the page.

A run (``reelrank drift-run``, :mod:`pipelines.drift`) changes the synthetic world at a
given day and serves, monitors and retrains through it. :func:`day_record` makes one day's
record from what the day served (true and observed play rate), the monitor's report (PSI
per column and its threshold) and what the trigger did (retrain, gate, promotion);
:func:`alerts` evaluates the conditions of ``deploy/prometheus/rules.yml``'s model rules
on the day's figures; :func:`milestones` finds the story's days (the change, the first
alert, the retrain, the promotion, the recovery); :func:`render_page` and :func:`plot`
are pure functions of the run's JSON, so the committed page can be checked against it.

The monitor's trigger is what it found drifted: a PSI over its threshold, or the play rate
significantly below the version's baseline window (``play_rate``,
:func:`reelrank.monitoring.monitor.play_rate_test`).

**Recovery** is the first day after a promotion whose served rows are back within
:data:`RECOVERY_SHARE` of the control arm's on the same day (or, with no control arm, of
the mean before the change), measured by the *share of ideal* when the run recorded it:
the true play rate over the ideal rows' (:meth:`reelrank.loop.simulator.Simulator.ideal_row`,
the best rows the world offered each user that day). A change that makes the world worse
lowers what any policy can reach, so the true play rate itself need not come back; the
share is what a retrain can restore. Runs recorded before the ideal rows were computed are
judged on the true play rate. Both are the ground truth's figures, which only the
evaluation reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from reelrank.loop.world_change import RETURNING_COHORT, describe
from reelrank.monitoring.monitor import PLAY_RATE
from reelrank.schema import SCORE

PLAY_RATE_DROP: Final = 0.8
"""``ReelRankPlayRateDrop``: plays per slate under this share of the day before's."""
RECOVERY_SHARE: Final = 0.95
PAGE: Final = "drift.md"
DATA: Final = "drift.json"
FIGURE: Final = "drift.png"
FEATURE_ALERT: Final = "ReelRankFeatureDrift"
SCORE_ALERT: Final = "ReelRankScoreDrift"
PLAY_ALERT: Final = "ReelRankPlayRateDrop"
BASELINE_ALERT: Final = "ReelRankPlayRateBelowBaseline"


def alerts(
    report: dict[str, Any], served: dict[str, Any], previous: dict[str, Any] | None
) -> list[str]:
    """The model alerts whose condition holds on the day (as ``rules.yml`` states them):
    a feature's or the score's PSI over its threshold, the monitor's play-rate test
    significant (its p-value under its alpha), and plays per slate under
    :data:`PLAY_RATE_DROP` of the day before's."""
    fired = []
    drifted = set(report.get("drifted", []))
    if drifted - {SCORE, PLAY_RATE}:
        fired.append(FEATURE_ALERT)
    if SCORE in drifted:
        fired.append(SCORE_ALERT)
    if PLAY_RATE in drifted:
        fired.append(BASELINE_ALERT)
    before = previous["plays_per_slate"] if previous is not None else 0.0
    if before > 0 and served["plays_per_slate"] < PLAY_RATE_DROP * before:
        fired.append(PLAY_ALERT)
    return fired


def _plays_per_slate(served: dict[str, Any]) -> float:
    visits = served.get("visits", 0.0)
    return float(served["observed_play_rate"] * served["impressions"] / visits) if visits else 0.0


def day_record(
    day: int,
    change: Any,
    served: dict[str, Any],
    monitored: dict[str, Any],
    previous: dict[str, Any] | None,
    reloaded_version: str | None,
) -> dict[str, Any]:
    """One simulated day of the run (see the module docstring)."""
    report = monitored["monitor"]
    psi = dict(report["feature_psi"])
    levels = dict(report.get("feature_thresholds", {}))
    if report.get("score_psi") is not None:
        psi["score"] = report["score_psi"]
        levels["score"] = report.get("score_threshold") or report["threshold"]
    # The column closest to (or furthest over) its threshold.
    column = max(psi, key=lambda name: psi[name] / levels.get(name, report["threshold"]))
    feature = max(report["feature_psi"], key=report["feature_psi"].__getitem__, default=None)
    served_figures = {**served, "plays_per_slate": _plays_per_slate(served)}
    train = monitored.get("train") or {}
    return {
        "day": day,
        "simulated_day": served["day"],
        "change_active": bool(change.active(day)),
        "served_version": served["served_version"],
        "visits": served["visits"],
        "true_play_rate": served["true_play_rate"],
        "ideal_play_rate": served.get("ideal_play_rate"),
        "share_of_ideal": served.get("share_of_ideal"),
        "observed_play_rate": served["observed_play_rate"],
        "plays_per_slate": served_figures["plays_per_slate"],
        "max_psi": psi[column],
        "max_psi_column": column,
        "max_psi_threshold": levels.get(column, report["threshold"]),
        "max_feature_psi": report["feature_psi"][feature] if feature else None,
        "max_feature": feature,
        "score_psi": report.get("score_psi"),
        "score_threshold": report.get("score_threshold"),
        "users_monitored": report["users"],
        "play_rate": (report.get("play_rate") or {}).get("rate"),
        "play_rate_baseline": (report.get("play_rate") or {}).get("baseline_rate"),
        "play_rate_p": (report.get("play_rate") or {}).get("p_value"),
        "drifted": list(report.get("drifted", [])),
        "alerts": alerts(report, served_figures, previous),
        "trigger": monitored.get("trigger"),
        "retrained": bool(monitored.get("retrained")),
        "trained_version": str(train["version"]) if train else None,
        "promoted": bool(train.get("promoted")) if train else False,
        "promotion_reason": train.get("reason") if train else None,
        "next_version": reloaded_version or served["served_version"],
    }


def milestones(
    days: list[dict[str, Any]], change_day: int, control: list[dict[str, Any]] | None = None
) -> dict[str, int | None]:
    """The day of each step of the story (None: it did not happen in the run).

    Recovery is judged on :func:`recovery_measure` against the control arm's on the same
    day when there is one (the days alone move the play rate: users do not replay what they
    played, and the world's own activity leaves the feature windows), else against the mean
    before the change."""

    def first(condition: Any, after: int = -1) -> int | None:
        return next((d["day"] for d in days if d["day"] > after and condition(d)), None)

    measure = recovery_measure(days, control)
    before = [d[measure] for d in days if d["day"] < change_day]
    pre_change = sum(before) / len(before) if before else None
    same_day = {d["day"]: d[measure] for d in control or []}

    def reference(day: dict[str, Any]) -> float | None:
        return same_day.get(day["day"]) if control else pre_change

    def recovered(day: dict[str, Any]) -> bool:
        level = reference(day)
        return level is not None and day[measure] >= RECOVERY_SHARE * level

    alert = first(lambda d: bool(d["alerts"]), change_day - 1)
    trigger = first(lambda d: bool(d["drifted"]), change_day - 1)
    retrain = first(lambda d: d["retrained"], change_day - 1)
    promoted = first(lambda d: d["promoted"], change_day - 1)
    # A model promoted at the end of day p serves from day p + 1.
    back = None if promoted is None else first(recovered, promoted)
    false_alarms = [d["day"] for d in days if d["day"] < change_day and d["alerts"]]
    false_triggers = [d["day"] for d in days if d["day"] < change_day and d["drifted"]]
    return {
        "change": change_day,
        "first_alert": alert,
        "first_trigger": trigger,
        "retrain": retrain,
        "promotion": promoted,
        "recovery": back,
        "false_alarm": false_alarms[0] if false_alarms else None,
        "false_trigger": false_triggers[0] if false_triggers else None,
    }


def recovery_measure(
    days: list[dict[str, Any]], control: list[dict[str, Any]] | None = None
) -> str:
    """``share_of_ideal`` when every record of the arm (and of the control) has it, else
    ``true_play_rate`` (runs recorded before the ideal rows were computed)."""
    records = [*days, *(control or [])]
    if records and all(d.get("share_of_ideal") is not None for d in records):
        return "share_of_ideal"
    return "true_play_rate"


def records_shares(study: dict[str, Any]) -> bool:
    """Whether every day of every arm of ``study`` has the share of ideal."""
    days = [d for run in study["arms"].values() for d in run["days"]]
    return recovery_measure(days) == "share_of_ideal"


def mean_after(
    days: list[dict[str, Any]], day: int | None, key: str = "true_play_rate"
) -> float | None:
    """The mean ``key`` (the true play rate) of the days after ``day`` (None: no such day,
    or a day without the figure)."""
    if day is None:
        return None
    after = [d.get(key) for d in days if d["day"] > day]
    rates = [float(rate) for rate in after if rate is not None]
    if not rates or len(rates) < len(after):
        return None
    return sum(rates) / len(rates)


COLUMNS: Final = (
    ("day", "day", "{:d}"),
    ("change_active", "changed", "{}"),
    ("served_version", "served", "{}"),
    ("visits", "visits", "{:,.0f}"),
    ("true_play_rate", "true play rate", "{:.4f}"),
    ("ideal_play_rate", "ideal rows' play rate", "{:.4f}"),
    ("share_of_ideal", "share of ideal", "{:.3f}"),
    ("plays_per_slate", "plays / slate", "{:.3f}"),
    ("max_psi_column", "largest PSI (threshold)", "{}"),
    ("score_psi", "score PSI", "{:.3f}"),
    ("play_rate", "play rate vs baseline (p)", "{}"),
    ("drifted", "monitor: drifted", "{}"),
    ("alerts", "alerts", "{}"),
    ("trained_version", "retrained", "{}"),
    ("promoted", "promoted", "{}"),
)


IDEAL_KEYS: Final = ("ideal_play_rate", "share_of_ideal")
"""Columns of runs recorded with the ideal rows only."""


def cell(record: dict[str, Any], key: str, fmt: str) -> str:
    value = record.get(key)
    if key == "max_psi_column":
        return f"{value} {record['max_psi']:.3f} ({record['max_psi_threshold']:.3f})"
    if key in ("alerts", "drifted"):
        return ", ".join(value or []) or "-"
    if key == "play_rate":
        if value is None:
            return "-"
        p_value = record["play_rate_p"]
        tested = "" if p_value is None else f" (p = {p_value:.2g})"
        return f"{value:.4f} vs {record['play_rate_baseline']:.4f}{tested}"
    if value is None:
        return "-"
    return fmt.format(value)


def table(days: list[dict[str, Any]]) -> list[str]:
    """One arm's timeline as markdown table lines."""
    columns = [
        column
        for column in COLUMNS
        if column[0] not in IDEAL_KEYS or any(d.get(column[0]) is not None for d in days)
    ]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    lines += ["| " + " | ".join(cell(d, k, f) for k, _, f in columns) + " |" for d in days]
    return lines


def _story_arm(study: dict[str, Any]) -> str:
    arms = study["arms"]
    return "change" if "change" in arms else next(iter(arms))


def story(study: dict[str, Any]) -> dict[str, int | None]:
    """The milestones of the study's story arm (``change`` when it ran)."""
    arms = study["arms"]
    control = arms.get("control", {}).get("days")
    arm = _story_arm(study)
    return milestones(arms[arm]["days"], study["setup"]["change"]["day"], control)


def comparison(study: dict[str, Any]) -> list[str]:
    """Per day, every arm's true play rate and what its monitor did."""
    arms = study["arms"]
    names = list(arms)
    shares = records_shares(study)
    header = ["day", "changed", *[f"{n}: true play rate" for n in names],
              *([f"{n}: share of ideal" for n in names] if shares else []),
              *[f"{n}: monitor, alerts, retrain" for n in names]]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_day = [{d["day"]: d for d in arms[n]["days"]} for n in names]
    first = arms[names[0]]["days"]
    change_day = study["setup"]["change"]["day"]
    for record in first:
        day = record["day"]
        rows = [days.get(day) for days in by_day]
        rates = [f"{r['true_play_rate']:.4f}" if r else "-" for r in rows]
        if shares:
            rates += [f"{r['share_of_ideal']:.3f}" if r else "-" for r in rows]

        def action(r: dict[str, Any] | None) -> str:
            if r is None:
                return "-"
            done = (
                "; ".join(
                    part
                    for part in (
                        "found " + ", ".join(r["drifted"]) if r["drifted"] else "",
                        "alerts " + ", ".join(r["alerts"]) if r["alerts"] else "",
                    )
                    if part
                )
                or "-"
            )
            if r["retrained"]:
                verdict = "promoted" if r["promoted"] else "kept the champion"
                done += f"; v{r['trained_version']} {verdict}"
            return done

        changed = "yes" if day >= change_day else "no"
        lines.append("| " + " | ".join([str(day), changed, *rates, *map(action, rows)]) + " |")
    return lines


def _story_lines(study: dict[str, Any]) -> list[str]:
    change = study["setup"]["change"]
    marks = story(study)
    arm = _story_arm(study)
    days = {d["day"]: d for d in study["arms"][arm]["days"]}
    control = study["arms"].get("control", {}).get("days")
    measure = recovery_measure(list(days.values()), control)
    against = (
        "the control arm's on the same day"
        if "control" in study["arms"]
        else "the mean before the change"
    )
    what = "share of the ideal rows' play rate" if measure == "share_of_ideal" else "true play rate"

    def at(key: str, text: str) -> str:
        day = marks[key]
        return f"- {text}: " + ("not in this run" if day is None else f"day {day}")

    lines = [
        f"- the change (`{arm}` arm): {describe(change)}",
        at("first_trigger", "first drift the monitor found on or after the change"),
        at("first_alert", "first alert on or after the change"),
        at("retrain", "retrain triggered by drift"),
        at("promotion", "new model promoted by the gate (serving from the next day)"),
        at("recovery", f"{what} back within {RECOVERY_SHARE:.0%} of {against}"),
        "- before the change, monitor triggers: "
        + ("none" if marks["false_trigger"] is None else f"first on day {marks['false_trigger']}")
        + "; alerts: "
        + ("none" if marks["false_alarm"] is None else f"first on day {marks['false_alarm']}"),
        *_bought(study, marks["promotion"]),
    ]
    if marks["first_trigger"] is not None:
        found = days[marks["first_trigger"]]
        rate = (
            f"; play rate {found['play_rate']:.4f} against the baseline "
            f"{found['play_rate_baseline']:.4f}, one-sided p = {found['play_rate_p']:.2g}"
            if found.get("play_rate_p") is not None
            else ""
        )
        lines.append(
            f"- what the monitor found first: {', '.join(found['drifted'])} (largest PSI "
            f"{found['max_psi_column']} {found['max_psi']:.3f} against its threshold "
            f"{found['max_psi_threshold']:.3f}{rate})"
        )
    return lines


def _bought(study: dict[str, Any], promotion: int | None) -> list[str]:
    """The story arm's mean true play rate after its first promotion, beside the others'."""
    if promotion is None:
        return []
    lines = []
    for key, text, fmt in (
        ("true_play_rate", "true play rate", "{:.4f}"),
        ("share_of_ideal", "share of ideal", "{:.3f}"),
    ):
        means = {
            name: mean_after(run["days"], promotion, key) for name, run in study["arms"].items()
        }
        shown = ", ".join(
            f"`{name}` {fmt.format(value)}" for name, value in means.items() if value is not None
        )
        if shown:
            lines.append(f"- mean {text} over the days after that first promotion: {shown}")
    return lines


ARM_TEXT: Final = {
    "change": "the change, answered: the monitor's trigger retrains (gated) on drift",
    "control": "the same days with no change, monitor and trigger on (what the days alone do)",
    "no-retrain": "the change with the trigger off (what the retrains bought)",
}


def _ideal_text(study: dict[str, Any]) -> str:
    if not records_shares(study):
        return ""
    return (
        "; the ideal rows' play rate is that of the best row each visit could have had in "
        "the (changed) world, and the share of ideal the served rows' part of it: a change "
        "of the world moves the ideal, a retrain can only restore the share, so recovery is "
        "judged on the share"
    )


def render_page(study: dict[str, Any]) -> str:
    """The markdown of the results page."""
    setup = study["setup"]
    world = setup["world"]
    arms = [f"- `{name}`: {ARM_TEXT.get(name, name)}" for name in study["arms"]]
    title = "drift injected into the synthetic world"
    if setup["change"].get("kind") == RETURNING_COHORT:
        title += ": a cohort of lapsed users comes back"
    lines = [
        f"# Results: {title}",
        "",
        "Generated from `drift.json` by `reelrank drift-run` (re-rendered by `reelrank "
        "drift-run --render FOLDER/drift.json`, FOLDER this page's); do not edit by hand.",
        "",
        "The world changes at a given day; the service, the feature pipeline and the "
        "training pipeline see only what the simulated users then do. Each day: simulate the "
        "day's visits through the in-process service -> `reelrank monitor` on the day's window "
        "(PSI of the served users' online features, read before the day's feature refresh, "
        "and of the served scores against the champion's reference; the play rate against "
        "the version's first window) -> ingest the logs -> refresh the features -> on drift, "
        "the gated retrain -> reload. The true play rate is the ground truth's (expected "
        "plays per impression), which only the simulator and this page read"
        + _ideal_text(study)
        + ". Every arm starts from a copy of the same data dir and sees the same simulated "
        "users.",
        "",
        "Commands:",
        "",
        *[f"    {command}" for command in study["commands"]],
        "",
        f"World: {world['n_users']:,} users, {world['n_items']:,} items, "
        f"{world['n_events']:,} events, seed {world['seed']}; {setup['days']} days of "
        f"{setup['users_per_day']} visits, k = {setup['k']}, simulator seed {setup['seed']}, "
        f"retrains with {setup['folds']} folds, gate `{setup['gate']}`. Arms:",
        "",
        *arms,
        "",
        "## The story, day by day",
        "",
        *_story_lines(study),
        "",
        f"![timeline]({FIGURE})",
        "",
        "## The arms side by side",
        "",
        *comparison(study),
        "",
    ]
    for name, run in study["arms"].items():
        lines += [
            f"## Timeline: `{name}`",
            "",
            "`largest PSI` is the column furthest over (or closest to) its threshold: 0.2, "
            "or on a small window the PSI sampling noise alone exceeds with probability 1 % "
            "over all the columns compared (`reelrank/monitoring/drift.py`).",
            "",
            *table(run["days"]),
            "",
        ]
    return "\n".join(lines)


def plot(study: dict[str, Any], path: Path) -> None:
    """The timeline figure: every arm's true play rate, its share of the ideal rows' (when
    recorded) and its largest PSI against the threshold; the story arm's days marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    marks = story(study)
    arm = _story_arm(study)
    panels = 3 if records_shares(study) else 2
    figure, axes = plt.subplots(panels, 1, figsize=(8, 3 * panels), sharex=True)
    top, bottom = axes[0], axes[-1]
    for name, run in study["arms"].items():
        days = run["days"]
        x = [d["day"] for d in days]
        top.plot(x, [d["true_play_rate"] for d in days], marker="o", label=name)
        if panels == 3:
            axes[1].plot(x, [d["share_of_ideal"] for d in days], marker="o", label=name)
        bottom.plot(x, [d["max_psi"] / d["max_psi_threshold"] for d in days], marker="o",
                    label=name)  # fmt: skip
    if panels == 3:
        axes[1].set_ylabel("share of the ideal rows'")
        axes[1].legend(loc="lower left")
    top.set_ylabel("true play rate (per impression)")
    bottom.axhline(1.0, color="grey", linestyle="--", label="threshold")
    bottom.set_ylabel("largest PSI / its threshold")
    bottom.set_xlabel("day of the run")
    styles = {"change": "red", "first_alert": "orange", "retrain": "purple",
              "promotion": "green", "recovery": "blue"}  # fmt: skip
    on_day: dict[int, list[str]] = {}  # the milestones of each day, in story order
    for key in styles:
        day = marks[key]
        if day is not None:
            on_day.setdefault(day, []).append(key)
    for day, keys in on_day.items():
        colour = styles[keys[0]]  # one line and one label per day (no labels on labels)
        for axis in axes:
            axis.axvline(day, color=colour, alpha=0.4)
        label = ", ".join(key.replace("_", " ") for key in keys)
        top.annotate(f"{label} ({arm})", (day, top.get_ylim()[1]), color=colour,
                     rotation=90, va="top", ha="right", fontsize=8)  # fmt: skip
    top.legend(loc="lower left")
    bottom.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
