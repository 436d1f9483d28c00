"""What the service serves at one moment: a model state per experiment arm, and the policy.

Without an experiment a deployment has one arm (the registry's champion and
``REELRANK_POLICY``). With ``REELRANK_EXPERIMENT`` it has every arm's model, each loaded
once (arms naming the same alias or version share one :class:`~serving.state.ModelState`),
and each request is served by the arm its user is assigned to
(:mod:`reelrank.experiments.assignment`: a hash of the salt and the user, so a reload,
which builds a new deployment, keeps every user in their arm). A deployment never changes
after it is built; a reload swaps in a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reelrank.config import Settings
from reelrank.experiments.assignment import Assigner
from reelrank.experiments.config import Arm, Experiment, PolicyConfig
from reelrank.models.reranking import RerankConfig
from serving.state import ModelState

ModelLoader = Callable[[Settings, str], ModelState]
"""Loads the model an arm names: ``(settings, "alias:<name>" | "version:<n>")``."""


@dataclass(frozen=True)
class ArmState:
    """One arm as served: its name (None without an experiment), model state and policy."""

    name: str | None
    state: ModelState
    policy: PolicyConfig
    rerank: RerankConfig | None = None
    """The arm's re-ranking (None: ``REELRANK_RERANK``); a request's own overrides win."""


@dataclass(frozen=True)
class Deployment:
    """Every arm of the running experiment (or the one default arm) and who gets which."""

    primary: ArmState
    experiment: Experiment | None = None
    arms: tuple[ArmState, ...] = ()
    assigner: Assigner | None = None

    @classmethod
    def single(cls, state: ModelState, policy: PolicyConfig) -> Deployment:
        """No experiment: one model, one policy."""
        arm = ArmState(None, state, policy)
        return cls(primary=arm, arms=(arm,))

    def for_user(self, user_id: int) -> ArmState:
        """The arm that serves ``user_id``."""
        if self.assigner is None:
            return self.primary
        chosen = self.assigner.arm(user_id).name
        for arm in self.arms:
            if arm.name == chosen:
                return arm
        raise AssertionError(f"arm {chosen!r} has no state")  # built together: impossible

    @property
    def states(self) -> list[ModelState]:
        """The distinct model states (one per alias or version the arms name)."""
        distinct: dict[int, ModelState] = {}
        for arm in self.arms:
            distinct.setdefault(id(arm.state), arm.state)
        return list(distinct.values())

    @property
    def design(self) -> str | None:
        return self.experiment.design if self.experiment is not None else None


def build_experiment(settings: Settings, experiment: Experiment, load: ModelLoader) -> Deployment:
    """Load every arm's model (once per alias or version) and assemble the deployment.

    Raises:
        ModelNotFoundError: an arm names an alias or version the registry does not have.
    """
    loaded: dict[str, ModelState] = {}
    arms: list[ArmState] = []
    for arm in experiment.arms:
        if arm.model_ref not in loaded:
            loaded[arm.model_ref] = load(settings, arm.model_ref)
        rerank = arm.rerank.config() if arm.rerank is not None else None
        arms.append(ArmState(arm.name, loaded[arm.model_ref], _policy(arm, settings), rerank))
    return Deployment(
        primary=arms[0], experiment=experiment, arms=tuple(arms), assigner=Assigner(experiment)
    )


def _policy(arm: Arm, settings: Settings) -> PolicyConfig:
    return arm.policy if arm.policy is not None else settings.policy
