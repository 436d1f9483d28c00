"""The service in process, as the simulator's :class:`~reelrank.loop.simulator.RowClient`.

No HTTP: a visit calls :meth:`RecommendationService.recommend
<serving.service.RecommendationService.recommend>` with its request id and queues the
served slate on the :class:`~serving.impressions.ImpressionLog`, exactly as the route
does; feedback events are kept and appended to the :class:`~serving.feedback.FeedbackLog`
once per simulated day (one durable write instead of one per visit), after the day's
slates are written. This is the fast path for running many simulated days and seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from reelrank.config import Settings
from reelrank.data.synthetic import GroundTruth
from reelrank.exceptions import ReelRankError
from reelrank.experiments.config import Experiment, GreedyPolicy
from reelrank.experiments.offpolicy import LOGGING, LOGGING_POLICY, TARGET, LoggedSlate
from reelrank.loop.policy import marginal_propensities
from reelrank.loop.simulator import Row
from reelrank.models.reranking import RerankConfig
from serving.deployment import ArmState, Deployment, build_experiment
from serving.feedback import FeedbackLog
from serving.impressions import ImpressionLog
from serving.service import RecommendationService
from serving.state import ModelState


class InProcessRowClient:
    """Serves the simulator from ``service``, logging like the API."""

    def __init__(
        self, service: RecommendationService, impressions: ImpressionLog, feedback: FeedbackLog
    ) -> None:
        self.service = service
        self.impressions = impressions
        self.feedback = feedback
        self._pending: list[dict[str, Any]] = []

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        result = self.service.recommend(user_id, k, request_id=request_id)
        self.impressions.log(result)
        return Row(
            request_id=request_id,
            user_id=user_id,
            item_ids=tuple(item.item_id for item in result.items),
            model_version=result.model_version,
            arm=result.arm,
        )

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        self._pending.extend(events)

    def close(self) -> None:
        """Write out the impression log's queue and stop its writer."""
        self.impressions.close()

    def end_day(self) -> None:
        """Write the day's slates, then its feedback."""
        if not self.impressions.flush():
            raise ReelRankError("the impression log did not write the day's slates in time.")
        if self._pending:
            self.feedback.append(self._pending)
        self._pending = []


class ExperimentRowClient:
    """Serves the simulator from ``deployment``'s arms, and keeps, for every visit, the
    slate each arm would have served (:class:`reelrank.experiments.simulation.ArmsClient`).

    Nothing is logged: a simulated experiment is analysed from its visits, and the data
    dir's logs stay those of the real service.
    """

    def __init__(self, service: RecommendationService, deployment: Deployment) -> None:
        self.service = service
        self.deployment = deployment
        self._slates: dict[str, dict[str, tuple[int, ...]]] = {}
        self._teams: dict[str, tuple[str, ...]] = {}

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        result = self.service.recommend(
            user_id, k, deployment=self.deployment, request_id=request_id
        )
        shown = tuple(item.item_id for item in result.items)
        if result.teams is not None:
            self._teams[request_id] = result.teams
        slates: dict[str, tuple[int, ...]] = {}
        for arm in self.deployment.arms:
            if arm.name is None or (arm.name == result.arm and result.teams is None):
                slates[str(arm.name)] = shown
                continue
            other = self.service.recommend_as(user_id, arm, k, request_id)
            slates[arm.name] = tuple(item.item_id for item in other.items)
        self._slates[request_id] = slates
        return Row(request_id, user_id, shown, result.model_version, result.arm)

    def slates(self, request_id: str) -> dict[str, tuple[int, ...]]:
        return self._slates[request_id]

    def teams(self, request_id: str) -> tuple[str, ...] | None:
        return self._teams.get(request_id)

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Feedback stays in the visits (nothing to post)."""

    def end_day(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to close."""


def experiment_client(
    service: RecommendationService, experiment: Experiment
) -> ExperimentRowClient:
    """A client serving ``experiment`` from ``service``'s loaded champion (every arm of a
    simulated experiment names it; see :mod:`reelrank.experiments.simulation`)."""
    champion = service.current()
    deployment = build_experiment(service.settings, experiment, lambda _s, _ref: champion)
    return ExperimentRowClient(service, deployment)


class OffPolicyRowClient:
    """Serves the simulator with ``logging`` (an exploring arm) and keeps, per visit, what
    the logs would hold and ``target``'s row for the same request
    (:class:`reelrank.experiments.offpolicy.LoggedClient`). Nothing is written."""

    def __init__(self, service: RecommendationService, logging: ArmState, target: ArmState):
        self.service, self.logging, self.target = service, logging, target
        self._logged: dict[str, LoggedSlate] = {}

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        served = self.service.recommend_as(user_id, self.logging, k, request_id)
        target = self.service.recommend_as(user_id, self.target, k, request_id)
        shown = tuple(item.item_id for item in served.items)
        if served.drawn is None:
            raise ReelRankError("the logging arm must explore (a stochastic policy).")
        draw = served.drawn.draw
        marginal = marginal_propensities(served.policy, served.drawn.scores, draw)
        if marginal is None:
            raise ReelRankError("the logging policy's marginal propensities are not exact.")
        ids = served.drawn.item_ids
        finite = np.isfinite(served.drawn.scores)
        self._logged[request_id] = LoggedSlate(
            shown=shown,
            marginal=marginal,
            scores=dict(
                zip(ids[finite].tolist(), served.drawn.scores[finite].tolist(), strict=True)
            ),
            pool=frozenset(ids[draw.pool].tolist()),
            target=tuple(item.item_id for item in target.items),
        )
        return Row(request_id, user_id, shown, served.model_version, LOGGING)

    def logged(self, request_id: str) -> LoggedSlate:
        return self._logged[request_id]

    def slates(self, request_id: str) -> dict[str, tuple[int, ...]]:
        logged = self._logged[request_id]
        return {LOGGING: logged.shown, TARGET: logged.target}

    def teams(self, request_id: str) -> tuple[str, ...] | None:
        return None

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Feedback stays in the visits."""

    def end_day(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to close."""


def off_policy_client(
    service: RecommendationService,
    target_state: ModelState,
    target_rerank: RerankConfig | None = None,
) -> OffPolicyRowClient:
    """The champion logging with :data:`~reelrank.experiments.offpolicy.LOGGING_POLICY`,
    and ``target_state`` (greedy, its own re-ranking) as the candidate."""
    logging = ArmState(LOGGING, service.current(), LOGGING_POLICY)
    target = ArmState(TARGET, target_state, GreedyPolicy(), target_rerank)
    return OffPolicyRowClient(service, logging, target)


def simulation_setup(settings: Settings) -> tuple[GroundTruth, RecommendationService, pd.Series]:
    """What every in-process simulation of the synthetic world starts from: the world's
    truth (the simulator's alone), the registry's champion loaded in a service, and the
    users' activity before the simulation (the CUPED covariate)."""
    from reelrank.experiments.analysis import lake_pre_activity
    from reelrank.loop.simulator import world_truth

    truth = world_truth(settings)
    service = RecommendationService(settings)
    service.load()
    return truth, service, lake_pre_activity(settings.lake_path)
