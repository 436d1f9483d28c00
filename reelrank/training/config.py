"""What a training run trains: its configuration and the models cross-validated side by side.

Cross-validation compares models by *label* (:data:`ModelLabel`): the candidate
(:data:`CANDIDATE`), extra rankers (``reelrank:<ranker>``), the baselines and, when there
is a champion, the :data:`INCUMBENT` (the champion refitted on the same folds). Labels are
not registry aliases (:class:`reelrank.registry.Alias`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NewType

from reelrank.models.rankers import LAMBDARANK
from reelrank.models.ranking import make_ranker
from reelrank.models.recommender import Recommender
from reelrank.models.retrieval import make_source
from reelrank.training.crossval import ModelFactory

ModelLabel = NewType("ModelLabel", str)
"""The name of a model in the cross-validation tables."""

CANDIDATE: Final = ModelLabel("reelrank")
INCUMBENT: Final = ModelLabel("incumbent")
POPULARITY: Final = ModelLabel("popularity")
ITEM_KNN: Final = ModelLabel("item_knn")
EASE: Final = ModelLabel("ease")
ALS: Final = ModelLabel("als")
BPR: Final = ModelLabel("bpr")
BASELINES: Final[tuple[ModelLabel, ...]] = (POPULARITY, ITEM_KNN, EASE, ALS, BPR)
"""The ladder (:mod:`reelrank.training.ladder`), simplest first; the gate meets the best."""


def extra_label(ranker: str) -> ModelLabel:
    """The label of the candidate retrained with another ranker."""
    return ModelLabel(f"{CANDIDATE}:{ranker}")


@dataclass(frozen=True)
class TrainConfig:
    """What ``reelrank train`` runs.

    Attributes:
        dataset: the dataset name (one MLflow experiment per dataset).
        ranker: the main ranker's registered name (``lgbm-lambdarank`` by default).
        extra_rankers: rankers cross-validated and reported beside the main one.
        sources: the retrieval sources' registered names (``None``: the default ones).
        n_folds: rolling-origin folds.
        k: cut-off of the ranking metrics (the gate uses nDCG@k).
        seed: every random choice.
        n_bootstrap: bootstrap resamples for the confidence intervals.
        diagnostics: learning curve and regularisation sweep (extra fits on the last fold).
        recommender_params: :class:`Recommender` hyperparameters, nested ones included
            (``sources__ease__l2``, ``ranker__n_estimators``).
        offpolicy_gate: also require the candidate's off-policy value on the lake's
            exploring logs to reach the champion's
            (:func:`~reelrank.registry.gate.decide_offpolicy`).
    """

    dataset: str = "ml-100k"
    ranker: str = LAMBDARANK
    extra_rankers: tuple[str, ...] = ()
    sources: tuple[str, ...] | None = None
    n_folds: int = 3
    k: int = 10
    seed: int = 0
    n_bootstrap: int = 1000
    diagnostics: bool = True
    recommender_params: dict[str, Any] = field(default_factory=dict)
    offpolicy_gate: bool = False

    def recommender(self, ranker: str | None = None) -> Recommender:
        """A fresh, unfitted candidate (or the candidate with another ``ranker``)."""
        sources = None
        if self.sources is not None:
            sources = [(name, make_source(name)) for name in self.sources]
        model = Recommender(
            sources=sources, ranker=make_ranker(ranker or self.ranker), random_state=self.seed
        )
        return model.set_params(**self.recommender_params)


def model_factories(
    config: TrainConfig,
    baselines: Mapping[str, ModelFactory],
    incumbent: Recommender | None = None,
) -> dict[str, ModelFactory]:
    """The models cross-validated on identical folds: baselines, candidate, extras, incumbent.

    Args:
        config: the run's configuration.
        baselines: the ladder's tuned factories (``ladder.ladder_factories``).
        incumbent: the current champion (an unfitted clone is refitted on every fold).
    """
    from sklearn.base import clone

    factories: dict[str, ModelFactory] = {**baselines, CANDIDATE: config.recommender}
    for ranker in config.extra_rankers:
        if ranker != config.ranker:
            factories[extra_label(ranker)] = _with_ranker(config, ranker)
    if incumbent is not None:
        factories[INCUMBENT] = lambda: clone(incumbent)
    return factories


def _with_ranker(config: TrainConfig, ranker: str) -> Callable[[], Recommender]:
    return lambda: config.recommender(ranker)


def logged_params(model: Recommender) -> Mapping[str, Any]:
    """The candidate's hyperparameters as MLflow params (scalars only, nested ones flat)."""
    return {
        f"model.{key}": value
        for key, value in model.get_params(deep=True).items()
        if value is None or isinstance(value, str | int | float | bool)
    }
