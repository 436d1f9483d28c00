"""What can be configured about serving a row: the slate policy and the running experiment.

Both are read by the one :class:`~reelrank.config.Settings` from JSON environment
variables and validated there (a typo is an error at start-up, never a silent default):

``REELRANK_POLICY`` (default ``{"kind": "greedy"}``)::

    {"kind": "greedy"}                                          # the top k by score
    {"kind": "epsilon", "epsilon": 0.1, "pool": 30}             # swap one slot, sometimes
    {"kind": "plackett-luce", "temperature": 0.5, "pool": 16}   # sample the order

``REELRANK_EXPERIMENT`` (default: none)::

    {"name": "ranker-v2", "design": "ab", "salt": "2026-12",
     "arms": [{"name": "control", "alias": "champion", "weight": 0.5},
              {"name": "treatment", "version": "7", "weight": 0.5,
               "policy": {"kind": "plackett-luce", "temperature": 0.5}}]}

An arm names a registry alias or a version (exactly one), a traffic weight (weights are
normalised to a split) and optionally its own policy (else ``REELRANK_POLICY``). Users are
assigned by a stable hash of the salt and their id (:mod:`reelrank.experiments.assignment`).
``design`` is ``ab`` (one arm's ranking per user); the field is there so an interleaving
design (a team-draft merge of two arms' rankings per request, each item's team logged in
the served-slate record's ``team``) can be added beside it without reshaping this.

The policies' mathematics (sampling, propensities) is :mod:`reelrank.loop.policy`; this
module stays free of numpy so reading the settings is cheap.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reelrank.models.reranking import RerankStrengths

NAME_PATTERN: Final = r"^[A-Za-z0-9._-]{1,40}$"
MAX_POOL: Final = 100
DEFAULT_POOL: Final = 20


class GreedyPolicy(BaseModel):
    """The ``k`` best candidates by score, in score order (deterministic: propensity 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["greedy"] = "greedy"

    @property
    def label(self) -> str:
        return "greedy"

    @property
    def stochastic(self) -> bool:
        return False


class EpsilonPolicy(BaseModel):
    """The greedy slate; with probability ``epsilon`` one uniformly chosen slot shows a
    uniformly chosen candidate from ranks ``k + 1 .. pool`` instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["epsilon"] = "epsilon"
    epsilon: float = Field(default=0.1, ge=0.0, le=1.0, allow_inf_nan=False)
    pool: int = Field(default=DEFAULT_POOL, ge=1, le=MAX_POOL)

    @property
    def label(self) -> str:
        return f"epsilon(epsilon={self.epsilon:g},pool={self.pool})"

    @property
    def stochastic(self) -> bool:
        return self.epsilon > 0.0


class PlackettLucePolicy(BaseModel):
    """The slate sampled without replacement from the ``pool`` best candidates, item ``i``
    chosen next with probability ``exp(s_i / temperature)`` over the remaining ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["plackett-luce"] = "plackett-luce"
    temperature: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    pool: int = Field(default=DEFAULT_POOL, ge=1, le=MAX_POOL)

    @property
    def label(self) -> str:
        return f"plackett-luce(temperature={self.temperature:g},pool={self.pool})"

    @property
    def stochastic(self) -> bool:
        return True


PolicyConfig = Annotated[
    GreedyPolicy | EpsilonPolicy | PlackettLucePolicy, Field(discriminator="kind")
]
"""One of the policies above, told apart by ``kind``."""

Design = Literal["ab", "interleaving"]
"""``ab``: each user sees their arm. ``interleaving``: two arms, every row a team draft of
both arms' greedy rankings (:mod:`reelrank.experiments.interleaving`), each item logged
with its team (``a``: the first arm, ``b``: the second)."""


class Arm(BaseModel):
    """One arm: the model it serves (a registry alias or a version), its share, its policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    alias: str | None = Field(default=None, pattern=NAME_PATTERN)
    version: str | None = Field(default=None, pattern=r"^[0-9]{1,12}$")
    weight: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    policy: PolicyConfig | None = None
    rerank: RerankStrengths | None = Field(
        default=None, description="The arm's re-ranking strengths (default: REELRANK_RERANK)."
    )

    @model_validator(mode="after")
    def _one_model(self) -> Self:
        if (self.alias is None) == (self.version is None):
            raise ValueError(
                f'arm {self.name!r} must name exactly one of alias (e.g. "champion") or '
                'version (e.g. "7").'
            )
        return self

    @property
    def model_ref(self) -> str:
        """``alias:<name>`` or ``version:<n>`` (arms with the same ref share one model)."""
        return f"alias:{self.alias}" if self.alias is not None else f"version:{self.version}"


class Experiment(BaseModel):
    """An experiment: its name, design, salt and arms (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN)
    design: Design = "ab"
    salt: str = Field(default="", max_length=64, description="Default: the name.")
    arms: tuple[Arm, ...] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _distinct_arms(self) -> Self:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r} has arms with the same name: {names}.")
        if self.design == "interleaving":
            if len(self.arms) != 2:
                raise ValueError(
                    f"an interleaving experiment has exactly two arms; {self.name!r} has "
                    f"{len(self.arms)}."
                )
            if any(arm.policy is not None and arm.policy.stochastic for arm in self.arms):
                raise ValueError(
                    "interleaving merges the arms' greedy rankings; drop the arms' stochastic "
                    "policies."
                )
        return self

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name

    @property
    def split(self) -> dict[str, float]:
        """Each arm's share of users (weights normalised to sum to 1)."""
        total = sum(arm.weight for arm in self.arms)
        return {arm.name: arm.weight / total for arm in self.arms}
