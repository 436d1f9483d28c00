"""The model step end to end: cross-validate, log to MLflow, register, gate the promotion.

``train_and_register`` is what ``reelrank train`` and the Prefect training flow call.
Everything it measures is logged to MLflow and written as plain files under
``<reports_dir>/<dataset>/`` (read by ``reelrank evaluate`` and ``reelrank report``).
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from reelrank import plots
from reelrank.config import Settings
from reelrank.crossval import FOLD, MODEL, CVResult, ModelFactory, cross_validate
from reelrank.data.io import atomic_write_bytes
from reelrank.data.schema import ITEM_ID, TIMESTAMP, USER_ID, Dataset
from reelrank.data.synthetic import GroundTruth
from reelrank.evaluation.metrics import NDCG, metric_key
from reelrank.evaluation.splits import build_relevant, rolling_origin_folds
from reelrank.features.provider import FeatureProvider
from reelrank.models.baselines import ItemKNNBaseline, PopularityBaseline
from reelrank.models.recommender import Recommender
from reelrank.models.retrieval import candidate_recall
from reelrank.promotion import CHALLENGER, CHAMPION, Difference, decide_promotion

logger = logging.getLogger(__name__)

MAIN_MODEL: Final = "reelrank"
CHAMPION_MODEL: Final = "champion"
BASELINES: Final = ("popularity", "item_knn")
FEATURE_SERVICE: Final = "ranker_v1"
RECALL_CUTOFFS: Final = (50, 100, 200)
LEARNING_FRACTIONS: Final = (0.25, 0.5, 1.0)
REGULARISATION_STRENGTHS: Final = (0.0, 10.0, 100.0)
SWEEP_MAX_GROUPS: Final = 1000  # label users sampled for the sweep's ranker fits


@dataclass(frozen=True)
class TrainConfig:
    """What ``reelrank train`` runs.

    Attributes:
        dataset: the dataset name (one MLflow experiment per dataset).
        ranker: the main ranker (``lgbm-lambdarank`` by default; ``scratch-logreg`` etc.).
        extra_rankers: rankers cross-validated and reported beside the main one.
        n_folds: rolling-origin folds.
        k: cut-off of the ranking metrics (the gate uses nDCG@k).
        seed: every random choice.
        n_bootstrap: bootstrap resamples for the confidence intervals.
        diagnostics: learning curve and regularisation sweep (extra fits on the last fold).
        recommender_params: hyperparameters for :class:`Recommender`.
    """

    dataset: str = "ml-100k"
    ranker: str = "lgbm-lambdarank"
    extra_rankers: tuple[str, ...] = ()
    n_folds: int = 3
    k: int = 10
    seed: int = 0
    n_bootstrap: int = 1000
    diagnostics: bool = True
    recommender_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainReport:
    run_id: str
    experiment: str
    model_name: str
    version: str
    promoted: bool
    reason: str
    per_fold: pd.DataFrame
    summary: pd.DataFrame
    differences: dict[str, dict[str, float]]
    candidate_recall: pd.DataFrame
    slices: pd.DataFrame
    train_seconds: float
    report_dir: Path


def _params(config: TrainConfig, ranker: str | None = None) -> dict[str, Any]:
    """Recommender hyperparameters of a run: the seed, the overrides, then the ranker."""
    return {
        "random_state": config.seed,
        **config.recommender_params,
        "ranker": ranker or config.ranker,
    }


def _recommender(config: TrainConfig, ranker: str) -> ModelFactory:
    params = _params(config, ranker)
    return lambda: Recommender(**params)


def model_factories(
    config: TrainConfig, champion_params: Mapping[str, Any] | None = None
) -> dict[str, ModelFactory]:
    """The models cross-validated on identical folds: baselines, ours, extras, champion."""
    factories: dict[str, ModelFactory] = {
        "popularity": PopularityBaseline,
        "item_knn": ItemKNNBaseline,
        MAIN_MODEL: _recommender(config, config.ranker),
    }
    for ranker in config.extra_rankers:
        if ranker != config.ranker:
            factories[f"{MAIN_MODEL}:{ranker}"] = _recommender(config, ranker)
    if champion_params is not None:
        params = dict(champion_params)
        factories[CHAMPION_MODEL] = lambda: Recommender(**params)
    return factories


def _difference(cv: CVResult, model: str, reference: str, seed: int) -> Difference:
    result = cv.difference(model, reference, NDCG, seed=seed)
    return Difference(reference=reference, mean=result.mean_diff, low=result.low, high=result.high)


def _ranker_curves(
    model: Recommender, fold_train: pd.DataFrame, relevant: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and ranker scores of the last fold's candidates (the pointwise view)."""
    users = np.sort(relevant[USER_ID].unique())
    ranked = model.rank(model.candidates(users))
    positives = pd.MultiIndex.from_frame(relevant[[USER_ID, ITEM_ID]])
    labels = pd.MultiIndex.from_frame(ranked[[USER_ID, ITEM_ID]]).isin(positives)
    return labels.astype(np.int64), ranked["score"].to_numpy(dtype=np.float64)


def _learning_curve(
    config: TrainConfig, dataset: Dataset, cv_fold: Any, fitted: Recommender
) -> pd.DataFrame:
    """Validation nDCG@k vs training-set size (most recent fraction of the last fold's train)."""
    rows = []
    train = cv_fold.train.sort_values(TIMESTAMP, kind="stable")
    relevant = build_relevant(cv_fold.train, cv_fold.test)
    users = np.sort(relevant[USER_ID].unique())
    key = metric_key(NDCG, config.k)
    from reelrank.evaluation.metrics import ndcg_at_k

    for fraction in LEARNING_FRACTIONS:
        subset = train.iloc[int(len(train) * (1 - fraction)) :]
        for name, factory in (
            (MAIN_MODEL, _recommender(config, config.ranker)),
            ("popularity", PopularityBaseline),
        ):
            try:
                if name == MAIN_MODEL and fraction == 1.0:
                    model = fitted  # already fitted on the whole fold by cross-validation
                else:
                    model = factory().fit(subset, dataset.users, dataset.items)
            except Exception as error:  # a tiny subset may not support every stage
                logger.warning("learning curve: %s at %.2f failed: %s", name, fraction, error)
                continue
            valid = ndcg_at_k(model.recommend(users, k=config.k), relevant, config.k)
            # Training fit: how well the model ranks the last 10% of its own training window.
            cutoff = subset[TIMESTAMP].quantile(0.9)
            inner_train, inner_test = (
                subset[subset[TIMESTAMP] < cutoff],
                subset[subset[TIMESTAMP] >= cutoff],
            )
            inner_relevant = build_relevant(inner_train, inner_test)
            inner_users = np.sort(inner_relevant[USER_ID].unique())
            train_score = ndcg_at_k(
                model.recommend(inner_users, k=config.k, exclude_seen=False),
                inner_relevant,
                config.k,
            )
            rows.append(
                {
                    "model": name,
                    "fraction": fraction,
                    "n_events": len(subset),
                    f"valid_{key}": valid,
                    f"train_{key}": train_score,
                }
            )
    return pd.DataFrame(rows)


def _sample_groups(
    X: np.ndarray, y: np.ndarray, group_sizes: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most ``SWEEP_MAX_GROUPS`` whole query groups (label users), chosen at random."""
    if len(group_sizes) <= SWEEP_MAX_GROUPS:
        return X, y, group_sizes
    chosen = np.sort(
        np.random.default_rng(seed).choice(len(group_sizes), SWEEP_MAX_GROUPS, replace=False)
    )
    starts = np.concatenate([[0], np.cumsum(group_sizes)[:-1]])
    rows = np.concatenate([np.arange(starts[g], starts[g] + group_sizes[g]) for g in chosen])
    return X[rows], y[rows], group_sizes[chosen]


def _regularisation_sweep(
    config: TrainConfig, dataset: Dataset, cv_fold: Any, fitted: Recommender
) -> pd.DataFrame:
    """nDCG@k of the LightGBM ranker for L1 and L2 strengths on the last fold.

    The candidates and features do not depend on the penalty, so the ranker's training set
    is built once and only the ranker is refitted for each strength, on at most
    ``SWEEP_MAX_GROUPS`` label users (the sweep shows a trend; it does not pick the model).
    """
    from reelrank.evaluation.metrics import ndcg_at_k
    from reelrank.models.ranker import make_ranker
    from reelrank.models.recommender import CATEGORICAL_FEATURES

    relevant = build_relevant(cv_fold.train, cv_fold.test)
    users = np.sort(relevant[USER_ID].unique())
    from reelrank.models.recommender import feature_snapshot_end, library_feature_provider

    end = feature_snapshot_end(cv_fold.train)
    provider = library_feature_provider(cv_fold.train, dataset.users, dataset.items, end=end)
    train = fitted.training_set(
        cv_fold.train, dataset.users, dataset.items, feature_provider=provider
    )
    categorical = [c for c in CATEGORICAL_FEATURES if c in train.feature_names]
    X, y, groups = _sample_groups(train.X, train.y, train.group_sizes, config.seed)
    key = metric_key(NDCG, config.k)
    rows = []
    for penalty, param in (("l1", "reg_alpha"), ("l2", "reg_lambda")):
        for strength in REGULARISATION_STRENGTHS:
            params = {**(fitted.ranker_params or {}), param: strength}
            ranker = make_ranker(fitted.ranker, config.seed, params)
            ranker.fit(X, y, groups, train.feature_names, categorical)
            variant = copy.copy(fitted)
            variant.ranker_ = ranker
            score = ndcg_at_k(variant.recommend(users, k=config.k), relevant, config.k)
            rows.append({"penalty": penalty, "strength": strength, key: score})
    return pd.DataFrame(rows)


def train_and_register(
    dataset: Dataset,
    settings: Settings,
    config: TrainConfig,
    *,
    feature_provider: FeatureProvider | None = None,
    data_version: str = "unknown",
    progress: Callable[[str], None] | None = None,
    truth: GroundTruth | None = None,
) -> TrainReport:
    """Cross-validate against baselines, fit on all data, log, register and gate.

    Args:
        dataset: the lake (events, users, items).
        settings: paths and the MLflow store.
        config: what to train.
        feature_provider: where the final model's ranker reads its training features
            (Feast historical retrieval in the pipeline); ``None`` uses the library's
            in-memory point-in-time tables.
        data_version: the lake's content hash, logged with the run.
        truth: the synthetic world's ground truth; adds the comparison with the oracle.
    """
    import mlflow

    from reelrank import tracking

    started = time.perf_counter()
    tracking.configure(settings)
    experiment = tracking.experiment_name(config.dataset)
    tracking.use_experiment(settings, experiment)

    champion = tracking.version_by_alias(settings.model_name, CHAMPION)
    champion_params: dict[str, Any] | None = None
    if champion is not None:
        try:
            recommender, _ = tracking.load_recommender(settings, CHAMPION)
            champion_params = recommender.get_params()
        except Exception as error:
            logger.warning("could not load the champion to re-evaluate it: %s", error)

    folds = rolling_origin_folds(dataset.events, n_folds=config.n_folds)
    factories = model_factories(config, champion_params)
    report_dir = settings.reports_path / config.dataset
    with mlflow.start_run(run_name=f"train-{config.dataset}") as run:
        mlflow.set_tags(
            {
                tracking.TAG_DATASET: config.dataset,
                tracking.TAG_DATA_VERSION: data_version,
                tracking.TAG_GIT_COMMIT: tracking.git_commit(),
                tracking.TAG_FEATURE_SERVICE: FEATURE_SERVICE,
                tracking.TAG_FOLD_SPEC: f"rolling_origin(n_folds={config.n_folds})",
            }
        )
        mlflow.log_params(
            {
                "ranker": config.ranker,
                "n_folds": config.n_folds,
                "k": config.k,
                "seed": config.seed,
                "n_events": len(dataset.events),
                "n_users": dataset.events[USER_ID].nunique(),
                "n_items": len(dataset.items),
                **{f"model.{k}": v for k, v in Recommender(**_params(config)).get_params().items()},
            }
        )
        cv = cross_validate(factories, dataset, folds, k=config.k, progress=progress, truth=truth)
        for fold_info in cv.folds:
            fold = fold_info[FOLD]
            with mlflow.start_run(run_name=f"fold-{fold}", nested=True):
                mlflow.log_params({k: str(v) for k, v in fold_info.items()})
                rows = cv.per_fold[cv.per_fold[FOLD] == fold]
                for _, row in rows.iterrows():
                    mlflow.log_metrics(
                        {
                            f"{row[MODEL]}.{name}": float(value)
                            for name, value in row.items()
                            if name not in (MODEL, FOLD)
                        }
                    )
        summary = cv.summary()
        for model_name, row in summary.iterrows():
            prefix = "cv_" if model_name == MAIN_MODEL else f"{model_name}.cv_"
            mlflow.log_metrics(
                {f"{prefix}{name}": float(v) for name, v in row.items() if pd.notna(v)}
            )

        best_baseline = cv.best_baseline(BASELINES)
        vs_baseline = _difference(cv, MAIN_MODEL, best_baseline, config.seed)
        vs_champion = (
            _difference(cv, MAIN_MODEL, CHAMPION_MODEL, config.seed)
            if CHAMPION_MODEL in cv.per_user
            else None
        )
        differences = {f"vs_{d.reference}": asdict(d) for d in (vs_baseline, vs_champion) if d}
        for name, diff in differences.items():
            mlflow.log_metrics(
                {f"diff_{name}.{k}": v for k, v in diff.items() if isinstance(v, float)}
            )

        # Candidate recall and the ranker's pointwise view, on the last fold.
        last = folds[-1]
        relevant = build_relevant(last.train, last.test)
        fitted: Recommender = cv.fitted[MAIN_MODEL]
        users = np.sort(relevant[USER_ID].unique())
        recall_table = candidate_recall(
            fitted.candidates(users, n=max(RECALL_CUTOFFS)),
            relevant,
            list(fitted.sources_),
            RECALL_CUTOFFS,
        )
        for source, row in recall_table.iterrows():
            mlflow.log_metrics(
                {
                    f"candidate_{str(k).replace('@', '_at_')}.{source}": float(v)
                    for k, v in row.items()
                }
            )

        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch)
            key = metric_key(NDCG, config.k)
            artifacts = [plots.fold_comparison(cv.per_fold, key, out / "fold_comparison.png")]
            labels, scores = _ranker_curves(fitted, last.train, relevant)
            if labels.min() != labels.max():
                from reelrank.evaluation.metrics import auc

                mlflow.log_metric("ranker_auc_last_fold", auc(labels, scores))
                artifacts.append(plots.roc_pr_curves(labels, scores, out / "ranker_roc_pr.png"))
            importances = fitted.feature_importances_
            if importances is not None and len(importances):
                artifacts.append(
                    plots.feature_importance(importances, out / "feature_importance.png")
                )
                importances.rename("importance").to_csv(out / "feature_importance.csv")
                artifacts.append(out / "feature_importance.csv")
            curve = sweep = None
            if config.diagnostics:
                if progress:
                    progress("learning curve")
                curve = _learning_curve(config, dataset, last, fitted)
                artifacts.append(plots.learning_curve(curve, key, out / "learning_curve.png"))
                if config.ranker == "lgbm-lambdarank":
                    if progress:
                        progress("regularisation sweep")
                    sweep = _regularisation_sweep(config, dataset, last, fitted)
                    artifacts.append(
                        plots.regularisation_sweep(sweep, key, out / "regularisation.png")
                    )
            tables = {
                "cv_per_fold.csv": cv.per_fold,
                "cv_summary.csv": summary,
                "candidate_recall.csv": recall_table,
                "slices.csv": cv.slices,
            }
            if curve is not None:
                tables["learning_curve.csv"] = curve
            if cv.oracle is not None:
                tables["oracle.csv"] = cv.oracle
                oracle_means = cv.oracle.groupby("model", sort=False).mean(numeric_only=True)
                mlflow.log_metrics(
                    {
                        f"oracle.{column}.{model}": float(value)
                        for model, row in oracle_means.drop(columns="fold").iterrows()
                        for column, value in row.items()
                    }
                )
            if sweep is not None:
                tables["regularisation.csv"] = sweep
            for name, table in tables.items():
                path = out / name
                table.to_csv(path, index=name in {"cv_summary.csv", "candidate_recall.csv"})
                artifacts.append(path)
            for path in artifacts:
                mlflow.log_artifact(str(path), artifact_path="evaluation")

            # The model that ships: fitted on every event, features through the provider.
            if progress:
                progress("final fit on all events")
            fit_started = time.perf_counter()
            final = Recommender(**_params(config)).fit(
                dataset.events, dataset.users, dataset.items, feature_provider=feature_provider
            )
            mlflow.log_metric("final_fit_seconds", time.perf_counter() - fit_started)
            example_users = [int(u) for u in dataset.events[USER_ID].unique()[:3]]
            registered = tracking.log_recommender(final, example_users, settings.model_name)
            tracking.set_alias(settings.model_name, CHALLENGER, registered.version)
            decision = decide_promotion(key, vs_baseline, vs_champion)
            if decision.promote:
                tracking.set_alias(settings.model_name, CHAMPION, registered.version)
            mlflow.set_tag(tracking.TAG_PROMOTION, decision.reason)
            tracking.client().set_model_version_tag(
                settings.model_name, registered.version, tracking.TAG_PROMOTION, decision.reason
            )
            train_seconds = time.perf_counter() - started
            mlflow.log_metric("train_seconds", train_seconds)

            result = {
                "run_id": run.info.run_id,
                "experiment": experiment,
                "model_name": settings.model_name,
                "version": registered.version,
                "promoted": decision.promote,
                "reason": decision.reason,
                "best_baseline": best_baseline,
                "differences": differences,
                "train_seconds": train_seconds,
                "data_version": data_version,
                "folds": [{k: str(v) for k, v in f.items()} for f in cv.folds],
            }
            report_dir.mkdir(parents=True, exist_ok=True)
            for name in tables:
                atomic_write_bytes((out / name).read_bytes(), report_dir / name)
            if cv.oracle is not None:
                oracle_summary = (
                    cv.oracle.groupby("model", sort=False)
                    .mean(numeric_only=True)
                    .drop(columns="fold")
                    .reset_index()
                )
                atomic_write_bytes(
                    json.dumps(
                        {"rows": oracle_summary.to_dict(orient="records")}, indent=2
                    ).encode(),
                    report_dir / "oracle.json",
                )
            atomic_write_bytes(
                json.dumps(result, indent=2, default=str).encode(), report_dir / "train_result.json"
            )
    logger.info("%s", decision.reason)
    return TrainReport(
        run_id=run.info.run_id,
        experiment=experiment,
        model_name=settings.model_name,
        version=registered.version,
        promoted=decision.promote,
        reason=decision.reason,
        per_fold=cv.per_fold,
        summary=summary,
        differences=differences,
        candidate_recall=recall_table,
        slices=cv.slices,
        train_seconds=train_seconds,
        report_dir=report_dir,
    )


__all__ = ["TrainConfig", "TrainReport", "model_factories", "train_and_register"]
