"""The model card of a registered version, generated from its run report (never typed).

Written with every training run (``<reports_dir>/<dataset>/model_card.md`` and the MLflow
artifact ``evaluation/model_card.md`` of the version's run) and rendered into the design
docs by ``reelrank report`` (``design_docs/results/<dataset>-model-card.md``): what the
model is, the data it was trained on, how it compares with the baseline ladder, where it
is weak (slices), what it is for and what it must not be trusted with.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

from reelrank.training.report import RunReport

INTENDED_USE: Final = (
    "Ordering the *Top picks for you* row of a movie streaming home page for a viewer, "
    "from their past interactions and the catalogue: a teaching and portfolio system that "
    "runs end to end, offline on MovieLens or on a synthetic world with ground truth."
)
NOT_FOR: Final = (
    "Decisions about people (eligibility, pricing, moderation); rows for children without "
    "a maturity filter (the data has none); any catalogue or audience it was not trained "
    "on without retraining and re-evaluating it."
)
STANDING_LIMITS: Final = (
    "User histories are frozen at training time: a title watched since the last retrain is "
    "not excluded until the next one.",
    "Offline metrics judge what users went on to watch, which the old recommendations "
    "themselves influenced; an online test (A/B or interleaving) is the real check.",
    "Ratings are used as interactions (seen or not, and rated 4+ or not): the model does "
    "not predict ratings.",
)


def _ladder(report: RunReport, metric: str) -> pd.DataFrame:
    stats = report.metric_summary([metric])
    return pd.DataFrame(
        {
            "model": stats.index,
            f"{metric} (mean ± std over folds)": [
                f"{stats.loc[m, f'{metric}_mean']:.4f} ± {stats.loc[m, f'{metric}_std']:.4f}"
                for m in stats.index
            ],
        }
    )


def _slices(report: RunReport, model: str) -> pd.DataFrame:
    mine = report.slices[report.slices["model"] == model]
    columns = [c for c in ("n_users", "ndcg", "recall") if c in mine.columns]
    table = mine.groupby("slice", sort=False)[columns].mean().reset_index()
    table["n_users"] = [f"{v:.1f}" for v in table["n_users"]]
    return table


def _measured_limits(report: RunReport, model: str) -> list[str]:
    limits = []
    slices = report.slices[report.slices["model"] == model].groupby("slice")["ndcg"].mean()
    if {"all", "new_users"} <= set(slices.index) and pd.notna(slices["new_users"]):
        limits.append(
            f"New users (no history) get the non-personalised ranking: nDCG@10 "
            f"{slices['new_users']:.3f} against {slices['all']:.3f} for all judged users."
        )
    if {"all", "long_tail_items"} <= set(slices.index):
        limits.append(
            f"Long-tail titles are found less often: nDCG@10 on tail items "
            f"{slices['long_tail_items']:.3f}."
        )
    if not report.summary.promoted:
        limits.append(f"This version was not promoted: {report.summary.reason}")
    return limits


def render_model_card(
    report: RunReport, model: str = "reelrank", metric: str = "ndcg_at_10"
) -> str:
    """The markdown model card of the run's registered version."""
    from reelrank.training.results_page import markdown_table

    summary = report.summary
    params = "\n".join(f"- `{k}` = `{v}`" for k, v in sorted(summary.model.items())) or "-"
    lines = [
        f"# Model card: `{summary.model_name}` version {summary.version} ({report.dataset})",
        "",
        "Generated from the run report by `reelrank report`; do not edit by hand.",
        "",
        "## What it is",
        "",
        "A two-stage recommender (`reelrank/models/recommender.py`): retrieval sources, a "
        "learned ranker over their union with user, item and cross features, then the "
        "re-ranker of the row. Hyperparameters:",
        "",
        params,
        "",
        "## Data",
        "",
        f"Dataset `{report.dataset}`, data version `{summary.data_version}`; MLflow run "
        f"`{summary.run_id}`. Evaluated on {len(summary.folds)} rolling-origin time folds.",
        "",
        "## Against the baseline ladder",
        "",
        markdown_table(_ladder(report, metric)),
        "",
        f"Gate: {summary.reason}",
        "",
        "## Slices (mean over folds, at 10)",
        "",
        markdown_table(_slices(report, model)),
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "Not for: " + NOT_FOR,
        "",
        "## Known limits",
        "",
        *[f"- {limit}" for limit in (*_measured_limits(report, model), *STANDING_LIMITS)],
    ]
    return "\n".join(lines).rstrip() + "\n"
