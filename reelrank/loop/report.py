"""The loop's results page: ``design_docs/results/loop.md`` and its figure, from the study's
raw figures (``loop.json``), never typed.

A study is one ``reelrank loop`` run per policy from copies of the same data dir, so every
run starts from the same lake and champion and sees the same simulated users (the same
seed): the runs differ only in how the service chose its slates. :func:`render_page` and
:func:`plot` are pure functions of the study's JSON, so the committed page can be checked
against its data (``tests/loop/test_report.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

PAGE: Final = "loop.md"
DATA: Final = "loop.json"
FIGURE: Final = "loop.png"
COLUMNS: Final = (
    ("round", "round", "{:d}"),
    ("served_version", "served version", "{}"),
    ("visits", "visits", "{:,.0f}"),
    ("true_play_rate", "true play rate", "{:.4f}"),
    ("observed_play_rate", "observed play rate", "{:.4f}"),
    ("click_through_rate", "CTR", "{:.4f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("exposure_gini", "exposure Gini", "{:.3f}"),
    ("top_decile_share", "top-decile share", "{:.3f}"),
    ("events_added", "events added", "{:,d}"),
    ("promoted", "promoted", "{}"),
)
PANELS: Final = (
    ("true_play_rate", "true play rate per impression"),
    ("coverage", "catalogue coverage"),
    ("exposure_gini", "exposure Gini"),
    ("top_decile_share", "share of impressions on the top 10% most popular"),
)


def _table(rounds: list[dict[str, Any]]) -> list[str]:
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for record in rounds:
        cells = [fmt.format(record[key]) for key, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _change(rounds: list[dict[str, Any]], key: str) -> str:
    first, last = rounds[0][key], rounds[-1][key]
    return f"{first:.3f} -> {last:.3f} ({last - first:+.3f})"


def _comparison(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["From the first round to the last, per run:", ""]
    for run in runs:
        rounds = run["rounds"]
        mean_true = sum(r["true_play_rate"] for r in rounds) / len(rounds)
        lines.append(
            f"- **{run['label']}**: exposure Gini {_change(rounds, 'exposure_gini')}, coverage "
            f"{_change(rounds, 'coverage')}, top-decile share "
            f"{_change(rounds, 'top_decile_share')}, true play rate "
            f"{_change(rounds, 'true_play_rate')} (mean over rounds {mean_true:.4f})."
        )
    return lines


def _world(world: dict[str, Any]) -> str:
    return (
        f"{world['n_users']:,} users, {world['n_items']:,} items, {world['n_events']:,} "
        f"events, seed {world['seed']}"
    )


def render_page(study: dict[str, Any]) -> str:
    """The markdown of the results page."""
    setup = study["setup"]
    lines = [
        "# Results: the feedback loop",
        "",
        f"Written by `reelrank loop-study` (raw figures in `design_docs/results/{DATA}`); not "
        "typed by hand. Command, on a data dir built by the `reelrank run` below:",
        "",
        "```bash",
        *study["commands"],
        "```",
        "",
        f"Each run starts from a copy of the same data dir (the synthetic world of "
        f"{_world(setup['world'])}) and "
        f"runs {setup['rounds']} rounds of: one simulated day ({setup['users_per_day']} "
        f"visits, k={setup['k']}, simulator seed {setup['seed']}; users of "
        "`reelrank/loop/simulator.py`) -> `ingest-feedback` -> features -> train "
        f"({setup['folds']} folds) -> gate (`{setup['gate']}`) -> reload. Round r's row "
        "describes the day served by the champion after round r - 1 (round 1: the "
        "original champion). Metrics: `reelrank/loop/metrics.py`.",
        "",
    ]
    for run in study["runs"]:
        lines += [f"## {run['label']}", "", f"Policy: `{run['policy_label']}`.", ""]
        lines += [*_table(run["rounds"]), ""]
    lines += ["## Over the rounds", "", f"![The loop's metrics per round]({FIGURE})", ""]
    lines += [*_comparison(study["runs"]), ""]
    return "\n".join(lines)


def plot(study: dict[str, Any], path: Path) -> Path:
    """The four metrics per round, one line per run, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for axis, (key, title) in zip(axes.flat, PANELS, strict=True):
        for run in study["runs"]:
            rounds = run["rounds"]
            axis.plot(
                [r["round"] for r in rounds], [r[key] for r in rounds], marker="o",
                label=run["label"],
            )  # fmt: skip
        axis.set_title(title)
        axis.set_xlabel("round")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
    axes.flat[0].legend()
    figure.suptitle("The feedback loop: what each round served")
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    return path
