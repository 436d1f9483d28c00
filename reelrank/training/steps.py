"""Step 3 end to end, as a short sequence: evaluate, fit, register and gate, report.

:func:`train_and_register` runs the steps in order; the Prefect training flow runs the
same functions as separate tasks (data passes between them as return values, so a failed
registration is retried without re-running cross-validation):

1. :func:`start` opens the MLflow run;
2. :func:`evaluate` cross-validates the candidate against the baselines (and the
   incumbent champion) on identical time folds, computes the gate's paired differences
   and runs the diagnostics on the last fold. It is :func:`plan_evaluation` (the folds
   and the models), one :func:`~reelrank.training.crossval.score_fold` per fold (the
   unit an engine distributes), then :func:`conclude_evaluation`;
3. :func:`fit_final` fits the model that ships on every event;
4. :func:`register_and_gate` registers it as challenger and lets the gate decide champion;
5. :func:`finish` assembles the :class:`~reelrank.training.report.RunReport`, writes it and
   logs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from reelrank.config import Settings
from reelrank.evaluation.metrics import NDCG, metric_key
from reelrank.evaluation.oracle import oracle_summary
from reelrank.evaluation.splits import rolling_origin_folds
from reelrank.exceptions import ModelNotFoundError
from reelrank.features.columns import FEATURE_SERVICE
from reelrank.features.protocol import FeatureProvider
from reelrank.models.recommender import Recommender
from reelrank.models.training_set import sample_users
from reelrank.registry import aliases
from reelrank.registry.aliases import Alias
from reelrank.registry.gate import Difference, PromotionDecision, decide_promotion
from reelrank.registry.models import RegisteredVersion, load_recommender, register
from reelrank.registry.store import configure
from reelrank.schema import USER_ID, Dataset
from reelrank.training import tracking
from reelrank.training.config import (
    BASELINES,
    CANDIDATE,
    INCUMBENT,
    TrainConfig,
    logged_params,
    model_factories,
)
from reelrank.training.crossval import FOLD, MODEL, CVResult, ModelFactory, cross_validate
from reelrank.training.diagnostics import Diagnostics, run_diagnostics
from reelrank.training.ladder import Tuning, ladder_factories, tune_ladder
from reelrank.training.report import RunReport, RunSummary
from reelrank.training.tracking import TrainingRun

if TYPE_CHECKING:
    from reelrank.data.synthetic import GroundTruth
    from reelrank.evaluation.splits import TimeFold

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Evaluation:
    """What cross-validation and the diagnostics measured, and the gate's inputs."""

    cv: CVResult
    tuning: Tuning
    best_baseline: str
    vs_baseline: Difference
    vs_incumbent: Difference | None
    diagnostics: Diagnostics
    vs_ladder: tuple[Difference, ...] = ()

    @property
    def differences(self) -> dict[str, dict[str, Any]]:
        """The gate's (the best rung, the incumbent), then every other rung of the ladder."""
        gate = (self.vs_baseline, self.vs_incumbent)
        ordered = [d for d in (*gate, *self.vs_ladder) if d is not None]
        return {f"vs_{d.reference}": asdict(d) for d in ordered}


@dataclass(frozen=True)
class Registration:
    """The registered version and the gate's decision on it."""

    version: RegisteredVersion
    decision: PromotionDecision


def start(
    settings: Settings, config: TrainConfig, dataset: Dataset, data_version: str
) -> TrainingRun:
    """Open the MLflow run of this training run (tags and parameters)."""
    params = logged_params(config.recommender())
    return tracking.start_run(settings, config, dataset, data_version, FEATURE_SERVICE, params)


def incumbent(settings: Settings) -> Recommender | None:
    """The current champion, to be re-evaluated on the same folds (``None`` if none)."""
    configure(settings)
    if aliases.version_by_alias(settings.model_name, Alias.CHAMPION) is None:
        return None
    try:
        model, _ = load_recommender(settings, Alias.CHAMPION)
    except Exception as error:  # an unreadable champion must not block training
        logger.warning("could not load the champion to re-evaluate it: %s", error)
        return None
    return model


def _difference(cv: CVResult, reference: str, seed: int) -> Difference:
    result = cv.difference(CANDIDATE, reference, NDCG, seed=seed)
    return Difference(reference=reference, mean=result.mean_diff, low=result.low, high=result.high)


EVALUATION_MAX_USERS: Final = 5_000
"""Cross-validation, the ladder's tuning and the diagnostics judge models on the whole
histories of at most this many users, drawn at random with the run's seed when the lake has
more (the paired bootstrap needs thousands of users, not millions); the model that ships is
fitted on every event. MovieLens-100K and the default synthetic world are used whole."""


@dataclass(frozen=True)
class EvaluationPlan:
    """What every fold is scored with: the time folds, the tuned ladder, the model factories."""

    folds: list[TimeFold]
    tuning: Tuning
    factories: dict[str, ModelFactory]


def plan_evaluation(
    dataset: Dataset,
    config: TrainConfig,
    incumbent: Recommender | None = None,
    progress: Progress | None = None,
) -> EvaluationPlan:
    """The time folds (of at most ``EVALUATION_MAX_USERS`` users' histories), and the
    ladder tuned on the first fold's training part."""
    events = sample_users(dataset.events, EVALUATION_MAX_USERS, config.seed)
    if progress and len(events) < len(dataset.events):
        progress(
            f"evaluating on the histories of {events[USER_ID].nunique():,} users drawn at "
            f"random (seed {config.seed}): {len(events):,} of {len(dataset.events):,} events"
        )
    folds = rolling_origin_folds(events, n_folds=config.n_folds)
    tuning = tune_ladder(dataset, folds[0], config.k, config.seed, progress=progress)
    baselines = ladder_factories(tuning, config.seed)
    return EvaluationPlan(list(folds), tuning, model_factories(config, baselines, incumbent))


def conclude_evaluation(
    plan: EvaluationPlan,
    cv: CVResult,
    dataset: Dataset,
    config: TrainConfig,
    progress: Progress | None = None,
) -> Evaluation:
    """The gate's differences (against the best rung) and the diagnostics on the last fold."""
    best = cv.best_baseline(BASELINES)
    return Evaluation(
        cv=cv,
        tuning=plan.tuning,
        best_baseline=best,
        vs_baseline=_difference(cv, best, config.seed),
        vs_incumbent=_difference(cv, INCUMBENT, config.seed) if INCUMBENT in cv.per_user else None,
        vs_ladder=tuple(_difference(cv, rung, config.seed) for rung in BASELINES if rung != best),
        diagnostics=run_diagnostics(
            config,
            dataset,
            plan.folds[-1],
            cv.fitted[CANDIDATE],
            progress,
            end_to_end=_last_fold_score(cv, config.k),
        ),
    )


def _last_fold_score(cv: CVResult, k: int) -> float:
    """The candidate's cross-validation nDCG@k on the last fold (the diagnostics' fold)."""
    table = cv.per_fold
    last = (table[MODEL] == CANDIDATE) & (table[FOLD] == cv.folds[-1][FOLD])
    return float(table.loc[last, metric_key(NDCG, k)].iloc[0])


def evaluate(
    dataset: Dataset,
    config: TrainConfig,
    incumbent: Recommender | None = None,
    truth: GroundTruth | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Tune the ladder on the first fold's training part, cross-validate everything on
    identical time folds, the gate's differences (against the best rung), the diagnostics."""
    plan = plan_evaluation(dataset, config, incumbent, progress)
    cv = cross_validate(
        plan.factories, dataset, plan.folds, k=config.k, progress=progress, truth=truth
    )
    return conclude_evaluation(plan, cv, dataset, config, progress)


def log_evaluation(run: TrainingRun, evaluation: Evaluation, config: TrainConfig) -> None:
    """Everything :func:`evaluate` measured, into the run."""
    tracking.log_tuning(run, evaluation.tuning.chosen)
    tracking.log_cross_validation(run, evaluation.cv)
    tracking.log_differences(run, evaluation.differences)
    metric = metric_key(NDCG, config.k)
    tracking.log_diagnostics(run, evaluation.diagnostics, evaluation.cv.per_fold, metric)
    if evaluation.cv.oracle is not None:
        tracking.log_oracle(run, oracle_summary(evaluation.cv.oracle))


def fit_final(
    dataset: Dataset,
    config: TrainConfig,
    feature_provider: FeatureProvider | None = None,
    progress: Progress | None = None,
) -> Recommender:
    """The model that ships: fitted on every event (and the served slates, when the lake
    has them), features through the provider."""
    if progress:
        progress("final fit on all events")
    return config.recommender().fit(
        dataset.events,
        dataset.users,
        dataset.items,
        feature_provider=feature_provider,
        slates=dataset.slates,
    )


def register_and_gate(
    settings: Settings,
    run: TrainingRun,
    model: Recommender,
    evaluation: Evaluation,
    config: TrainConfig,
) -> Registration:
    """Log and register ``model`` as challenger; champion too if the gate says so."""
    uri = tracking.log_model(run, model, getattr(model, "fit_seconds_", float("nan")))
    tracking.log_reference(run, model)
    champion = aliases.version_by_alias(settings.model_name, Alias.CHAMPION)
    newer_data = champion is None or tracking.data_version_of(
        str(champion.run_id)
    ) != tracking.data_version_of(run.run_id)
    version = register(uri, settings.model_name, run.run_id)
    aliases.set_alias(settings.model_name, Alias.CHALLENGER, version.version)
    decision = decide_promotion(
        metric_key(NDCG, config.k), evaluation.vs_baseline, evaluation.vs_incumbent, newer_data
    )
    if config.offpolicy_gate:
        decision = _offpolicy_gate(settings, model, decision)
    if decision.promote:
        aliases.set_alias(settings.model_name, Alias.CHAMPION, version.version)
    aliases.tag_version(
        settings.model_name, version.version, tracking.TAG_PROMOTION, decision.reason
    )
    logger.info("%s", decision.reason)
    return Registration(version, decision)


def _offpolicy_gate(
    settings: Settings, model: Recommender, decision: PromotionDecision
) -> PromotionDecision:
    """The candidate and the current champion valued on the lake's exploring logs."""
    from reelrank.experiments.offpolicy import exploring_rows, lake_value
    from reelrank.loop.feedback import read_feedback_table, read_impressions
    from reelrank.registry.gate import decide_offpolicy

    lake = settings.lake_path
    rows = exploring_rows(read_impressions(lake), read_feedback_table(lake))
    candidate = lake_value(rows, model)
    try:
        champion_model, _ = load_recommender(settings, Alias.CHAMPION)
    except ModelNotFoundError:
        champion_model = None
    champion = lake_value(rows, champion_model) if champion_model is not None else None
    return decide_offpolicy(
        decision,
        None if candidate is None else (candidate.value, candidate.slates),
        None if champion is None else (champion.value, champion.slates),
    )


def finish(
    settings: Settings,
    run: TrainingRun,
    config: TrainConfig,
    evaluation: Evaluation,
    registration: Registration,
    train_seconds: float,
    data_version: str,
) -> RunReport:
    """Assemble, write (``<reports_dir>/<dataset>/``) and log the run report."""
    cv, diagnostics = evaluation.cv, evaluation.diagnostics
    summary = RunSummary(
        run_id=run.run_id,
        experiment=run.experiment,
        model_name=settings.model_name,
        version=registration.version.version,
        promoted=registration.decision.promote,
        reason=registration.decision.reason,
        best_baseline=evaluation.best_baseline,
        differences=evaluation.differences,
        train_seconds=train_seconds,
        data_version=data_version,
        folds=[{k: str(v) for k, v in fold.items()} for fold in cv.folds],
        model={
            k.removeprefix("model."): str(v) for k, v in logged_params(config.recommender()).items()
        },
    )
    report = RunReport(
        dataset=config.dataset,
        summary=summary,
        per_fold=cv.per_fold,
        candidate_recall=diagnostics.candidate_recall,
        slices=cv.slices,
        learning_curve=diagnostics.learning_curve,
        regularisation=diagnostics.regularisation,
        oracle=cv.oracle,
        tuning=evaluation.tuning.trials,
        reranking=diagnostics.reranking,
    )
    tracking.log_outcome(run, registration.decision.reason, train_seconds)
    tracking.log_report(run, report)
    report.save(settings.reports_path / config.dataset)
    return report


def train_and_register(
    dataset: Dataset,
    settings: Settings,
    config: TrainConfig,
    *,
    feature_provider: FeatureProvider | None = None,
    data_version: str = "unknown",
    progress: Progress | None = None,
    truth: GroundTruth | None = None,
) -> RunReport:
    """Cross-validate against baselines, fit on all data, log, register and gate.

    Args:
        dataset: the lake (events, users, items).
        settings: paths and the MLflow store.
        config: what to train.
        feature_provider: where the final model's ranker reads its training features
            (Feast historical retrieval in the pipeline); ``None`` uses the library's
            in-memory point-in-time tables.
        data_version: the lake's content hash, logged with the run.
        progress: called with a short message at each step.
        truth: the synthetic world's ground truth; adds the comparison with the oracle.
    """
    started = time.perf_counter()
    run = start(settings, config, dataset, data_version)
    evaluation = evaluate(dataset, config, incumbent(settings), truth, progress)
    log_evaluation(run, evaluation, config)
    model = fit_final(dataset, config, feature_provider, progress)
    registration = register_and_gate(settings, run, model, evaluation, config)
    elapsed = time.perf_counter() - started
    return finish(settings, run, config, evaluation, registration, elapsed, data_version)


__all__ = [
    "Evaluation",
    "EvaluationPlan",
    "Registration",
    "conclude_evaluation",
    "evaluate",
    "fit_final",
    "plan_evaluation",
    "register_and_gate",
    "train_and_register",
]
