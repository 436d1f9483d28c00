"""The run report: every result of one training run, and the only owner of its files.

:class:`RunReport` is written by training to ``<reports_dir>/<dataset>/`` (and logged to
MLflow), read back by ``reelrank evaluate`` and ``reelrank report``, and copied into
``design_docs/results/data/<dataset>/`` from which the results pages are rendered. No other
module knows a result file's name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from reelrank.data.io import AtomicBatch
from reelrank.exceptions import ReelRankError

SUMMARY_FILE: Final = "train_result.json"
MODEL_CARD_FILE: Final = "model_card.md"
PER_FOLD_FILE: Final = "cv_per_fold.csv"
TABLE_FILES: Final[dict[str, str]] = {
    "per_fold": PER_FOLD_FILE,
    "candidate_recall": "candidate_recall.csv",
    "slices": "slices.csv",
    "learning_curve": "learning_curve.csv",
    "regularisation": "regularisation.csv",
    "oracle": "oracle.csv",
    "tuning": "baseline_tuning.csv",
    "reranking": "reranking_tradeoff.csv",
}
INDEXED_TABLES: Final = frozenset({"candidate_recall"})
"""Tables whose index is data (the source name of each candidate-recall row)."""
MODEL: Final = "model"
FOLD: Final = "fold"


class ReportNotFoundError(ReelRankError):
    """No run report where one was expected."""


@dataclass(frozen=True)
class RunSummary:
    """The facts of a run: where it was logged, what was registered, the gate's decision.

    Attributes:
        differences: ``{"vs_<reference>": {"reference", "mean", "low", "high"}}`` of the
            gate metric (candidate minus reference, 95% bootstrap interval).
        folds: one description per time fold (cutoff, sizes).
        model: the candidate's hyperparameters (nested names, as logged to MLflow).
    """

    run_id: str
    experiment: str
    model_name: str
    version: str
    promoted: bool
    reason: str
    best_baseline: str
    differences: dict[str, dict[str, Any]]
    train_seconds: float
    data_version: str
    folds: list[dict[str, str]] = field(default_factory=list)
    model: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport:
    """Every table and fact of one training run.

    Attributes:
        dataset: the dataset name (the report's folder name).
        summary: the run's facts and the gate's decision.
        per_fold: one row per (model, fold): metrics at k with intervals, coverage,
            novelty, fit time.
        candidate_recall: recall@N per retrieval source and for the union (last fold).
        slices: one row per (model, fold, slice).
        learning_curve, regularisation: the diagnostics, when they ran.
        oracle: per (model, fold) comparison with the oracle (synthetic worlds only).
        tuning: the ladder's hyperparameter trials on the first fold's inner split.
        reranking: the re-ranker's accuracy/diversity trade-off (last fold).
    """

    dataset: str
    summary: RunSummary
    per_fold: pd.DataFrame
    candidate_recall: pd.DataFrame
    slices: pd.DataFrame
    learning_curve: pd.DataFrame | None = None
    regularisation: pd.DataFrame | None = None
    oracle: pd.DataFrame | None = None
    tuning: pd.DataFrame | None = None
    reranking: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables present, by attribute name."""
        tables = {name: getattr(self, name) for name in TABLE_FILES}
        return {name: table for name, table in tables.items() if table is not None}

    def save(self, directory: Path) -> list[Path]:
        """Write every file at once (all or none) into ``directory``; stale ones removed."""
        directory.mkdir(parents=True, exist_ok=True)
        tables = self.tables()
        with AtomicBatch() as batch:
            for name, table in tables.items():
                text = table.to_csv(index=name in INDEXED_TABLES)
                batch.write_bytes(text.encode("utf-8"), directory / TABLE_FILES[name])
            batch.write_json(asdict(self.summary), directory / SUMMARY_FILE)
            batch.write_bytes(self.model_card().encode("utf-8"), directory / MODEL_CARD_FILE)
        for name, filename in TABLE_FILES.items():
            if name not in tables:
                (directory / filename).unlink(missing_ok=True)
        written = [directory / TABLE_FILES[n] for n in tables]
        return [*written, directory / SUMMARY_FILE, directory / MODEL_CARD_FILE]

    def model_card(self) -> str:
        """The registered version's model card (:mod:`reelrank.training.model_card`)."""
        from reelrank.training.model_card import render_model_card

        return render_model_card(self)

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / PER_FOLD_FILE).exists() and (directory / SUMMARY_FILE).exists()

    @classmethod
    def load(cls, directory: Path, dataset: str | None = None) -> RunReport:
        """Read the report in ``directory``.

        Raises:
            ReportNotFoundError: no report there (with what to run).
        """
        if not cls.exists(directory):
            raise ReportNotFoundError(
                f"no training results in {directory}; run `reelrank train` (or `reelrank run`) "
                "first."
            )
        summary = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
        known = set(RunSummary.__dataclass_fields__)
        tables: dict[str, pd.DataFrame | None] = {}
        for name, filename in TABLE_FILES.items():
            path = directory / filename
            index = 0 if name in INDEXED_TABLES else None
            tables[name] = pd.read_csv(path, index_col=index) if path.exists() else None
        return cls(
            dataset=dataset or directory.name,
            summary=RunSummary(**{k: v for k, v in summary.items() if k in known}),
            **tables,  # type: ignore[arg-type]
        )

    def copy_to(self, directory: Path) -> RunReport:
        """Save this report into ``directory`` (e.g. the committed results data)."""
        self.save(directory)
        return self

    def evaluation_records(self) -> list[dict[str, Any]]:
        """Every per-fold metric as ``{model, fold, metric, value, low, high}`` (``low`` and
        ``high``: the 95% bootstrap interval where one was computed, else ``None``)."""
        frame = self.per_fold
        metrics = [
            c for c in frame.columns if c not in (MODEL, FOLD) and not c.endswith(("_low", "_high"))
        ]
        records = []
        for _, row in frame.iterrows():
            for metric in metrics:
                low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
                records.append(
                    {
                        "model": str(row[MODEL]),
                        "fold": int(row[FOLD]),
                        "metric": metric,
                        "value": float(row[metric]),
                        "low": None if low is None or pd.isna(low) else float(low),
                        "high": None if high is None or pd.isna(high) else float(high),
                    }
                )
        return records

    def metric_summary(self, metrics: list[str]) -> pd.DataFrame:
        """Mean and standard deviation over folds of ``metrics``, one row per model."""
        grouped = self.per_fold.groupby(MODEL, sort=False)[metrics]
        return pd.concat(
            [grouped.mean().add_suffix("_mean"), grouped.std(ddof=1).add_suffix("_std")], axis=1
        )
