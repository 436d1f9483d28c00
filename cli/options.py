"""Options shared by several commands, and turning them into library objects."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from reelrank.config import DatasetName

if TYPE_CHECKING:
    from reelrank.data.synthetic import SyntheticConfig

DATASETS: Final[tuple[DatasetName, ...]] = ("ml-100k", "ml-1m", "synthetic")

DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        help="ml-100k, ml-1m (GroupLens zips) or synthetic (generated offline, with ground truth).",
    ),
]
SourceOpt = Annotated[
    Path | None,
    typer.Option(
        "--source",
        "-s",
        help="A local MovieLens zip to read instead of downloading.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]
UsersOpt = Annotated[int | None, typer.Option("--users", min=1, help="Synthetic: users.")]
ItemsOpt = Annotated[int | None, typer.Option("--items", min=1, help="Synthetic: items.")]
EventsOpt = Annotated[int | None, typer.Option("--events", min=1, help="Synthetic: events.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Synthetic: random seed.")]
RankerOpt = Annotated[
    str,
    typer.Option(
        "--ranker",
        help="Stage-2 ranker: lgbm-lambdarank, lgbm-binary, sklearn-logreg, scratch-logreg, "
        "scratch-mlp, rrf, or any registered ranker.",
    ),
]
CompareOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--compare",
        help="Extra rankers cross-validated and logged beside the main one (repeatable).",
    ),
]
SourcesOpt = Annotated[
    str | None,
    typer.Option(
        "--sources",
        help="Retrieval sources, comma-separated registered names (default: popularity,ease,mf).",
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="A model hyperparameter KEY=VALUE, nested with __ (sources__ease__l2=500, "
        "ranker__n_estimators=200); VALUE is read as JSON, else as text. Repeatable.",
    ),
]
FoldsOpt = Annotated[int, typer.Option("--folds", min=1, help="Rolling-origin time folds.")]
DiagnosticsOpt = Annotated[
    bool,
    typer.Option(
        "--diagnostics/--no-diagnostics",
        help="Learning curve and regularisation sweep (extra fits on the last fold).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
OffPolicyGateOpt = Annotated[
    bool,
    typer.Option(
        "--offpolicy-gate/--no-offpolicy-gate",
        help="Also require the candidate's off-policy value (SNIPS on the lake's exploring "
        "logs) to reach the champion's before promotion.",
    ),
]


def dataset_name(value: str) -> DatasetName:
    for name in DATASETS:
        if value == name:
            return name
    raise typer.BadParameter(f"unknown dataset {value!r}; choose one of {', '.join(DATASETS)}.")


def synthetic_config(
    users: int | None, items: int | None, events: int | None, seed: int | None
) -> SyntheticConfig:
    from reelrank.data.synthetic import SyntheticConfig

    overrides: dict[str, Any] = {"n_users": users, "n_items": items, "n_events": events}
    overrides["seed"] = seed
    return replace(SyntheticConfig(), **{k: v for k, v in overrides.items() if v is not None})


def model_params(values: list[str] | None) -> dict[str, Any]:
    """``["sources__ease__l2=500", ...]`` -> ``{"sources__ease__l2": 500}``."""
    params: dict[str, Any] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--param {item!r}: expected KEY=VALUE.")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def train_fields(
    dataset: str,
    ranker: str,
    compare: list[str] | None,
    folds: int,
    diagnostics: bool,
    sources: str | None = None,
    params: list[str] | None = None,
    offpolicy_gate: bool = False,
) -> dict[str, Any]:
    """The :class:`~reelrank.training.TrainConfig` fields of the training options."""
    fields: dict[str, Any] = {
        "dataset": dataset,
        "ranker": ranker,
        "extra_rankers": tuple(compare or ()),
        "n_folds": folds,
        "diagnostics": diagnostics,
        "recommender_params": model_params(params),
        "offpolicy_gate": offpolicy_gate,
    }
    if sources:
        fields["sources"] = tuple(name.strip() for name in sources.split(",") if name.strip())
    return fields
