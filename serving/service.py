"""The recommendation service: the current model state and the hot path.

``/admin/reload`` builds a complete new :class:`~serving.state.ModelState` off to the
side (:mod:`serving.state`) and swaps one reference; a request reads the reference once at
its start, so requests in flight finish on the state they began with and no request ever
sees a half-loaded model.

The hot path (one user) mirrors ``Recommender.recommend`` stage by stage, in arrays:

1. retrieval: the user's candidates from the candidate cache (:mod:`serving.candidates`:
   precomputed at load for unknown users and the most active known users, else retrieved
   and prepared on first use);
2. features: the user's stored row from the online store (deadline; on failure the
   model's snapshot row and ``fallback="degraded"``), and the scorer's request-time inputs
   (:mod:`serving.scoring`, assembled with the model's own feature layout);
3. ranking: the scorer's scores, exactly the ranker's;
4. re-ranking, the slate: under the greedy policy, the row of ``k`` the re-ranker makes
   of the candidates (:mod:`reelrank.models.reranking`: the request's exclusions and
   unreleased titles filtered, the optional genre kept, freshness and long-tail boosts,
   diversity by MMR; the strengths are ``REELRANK_RERANK`` unless the request overrides
   them), or the ``k`` a stochastic policy draws from the best candidates with the
   propensity of each choice (:mod:`reelrank.loop.policy`, seeded from the request id;
   the filters apply, the strengths do not, so the logged propensities stay those of the
   policy on the ranker's scores), with titles from the model's catalogue.

With an A/B experiment (:mod:`serving.deployment`) the user's arm decides the model state,
the policy and the re-ranking; the answer names the experiment and the arm. With an
interleaving experiment both arms rank every request and their rows are merged by team
draft (:mod:`reelrank.experiments.interleaving`), each item's team kept for the log.
Logging the served slate is the caller's next step
(:class:`serving.impressions.ImpressionLog`), off this path.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from reelrank.config import Settings
from reelrank.exceptions import FeatureStoreError, ModelNotFoundError, ReelRankError
from reelrank.experiments.config import GreedyPolicy, PolicyConfig
from reelrank.experiments.interleaving import team_draft
from reelrank.loop.policy import SlateDraw, draw_slate, policy_seed
from reelrank.models.reranking import RerankConfig, allowed, rerank
from serving.candidates import cache_key, retrieve_one
from serving.deployment import ArmState, Deployment, ModelLoader, build_experiment
from serving.precomputed import PrecomputedLists
from serving.scoring import Candidates
from serving.state import ModelState, load_champion_state, load_model_state, snapshot_user_row

logger = logging.getLogger(__name__)

Fallback = Literal["cold_start", "degraded"]
COLD_START: Final = "cold_start"
DEGRADED: Final = "degraded"
GREEDY: Final = GreedyPolicy()


@dataclass(frozen=True)
class RecommendedItem:
    item_id: int
    score: float
    rank: int
    title: str | None


@dataclass(frozen=True, slots=True)
class Drawn:
    """A stochastic policy's choice: the draw (indices into ``scores``), the candidates'
    scores and item ids it drew from (what the served-slate log needs)."""

    draw: SlateDraw
    scores: np.ndarray
    item_ids: np.ndarray


@dataclass(frozen=True)
class Recommendation:
    """One user's answer and how it was produced.

    ``items`` are in position order (``rank`` is the position). ``drawn`` is set when a
    stochastic policy chose them (else every propensity is 1).
    """

    user_id: int
    items: list[RecommendedItem]
    model_version: str
    fallback: Fallback | None
    stages: dict[str, float]
    reason: str | None = None
    request_id: str | None = None
    experiment: str | None = None
    design: str | None = None
    arm: str | None = None
    policy: PolicyConfig = GREEDY
    drawn: Drawn | None = None
    k: int = 10
    exclude_seen: bool = True
    genre: str | None = None
    rerank: RerankConfig | None = None
    teams: tuple[str, ...] | None = None
    """Under interleaving, each item's team (``a``: the first arm, ``b``: the second)."""


class ServiceUnavailableError(ReelRankError):
    """No model is loaded (the reason says why and what to do)."""


class RecommendationService:
    """Holds the current :class:`ModelState` and answers requests from it.

    Args:
        settings: configuration (``experiment`` and ``policy`` decide the deployment).
        loader: builds a state (default: the registry's champion with the feature store).
        on_load: called with every newly loaded state (e.g. to update a gauge).
        model_loader: builds an experiment arm's state from its ``alias:<name>`` or
            ``version:<n>`` (default: from the registry).
    """

    def __init__(
        self,
        settings: Settings,
        loader: Callable[[Settings], ModelState] | None = None,
        on_load: Callable[[ModelState], object] | None = None,
        model_loader: ModelLoader | None = None,
    ) -> None:
        self.settings = settings
        self._loader = loader or load_champion_state
        self._model_loader = model_loader or load_model_state
        self._on_load = on_load
        self._deployment: Deployment | None = None
        self._reason: str = "the model has not been loaded yet"
        self._reload_lock = threading.Lock()
        self._default_rerank = settings.rerank.config()
        self._precomputed = (
            PrecomputedLists.from_settings(settings) if settings.serve_precomputed else None
        )

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> ModelState | None:
        """The primary state: the champion, or the experiment's first arm."""
        deployment = self._deployment
        return deployment.primary.state if deployment is not None else None

    @property
    def deployment(self) -> Deployment | None:
        return self._deployment

    @property
    def unavailable_reason(self) -> str:
        return self._reason

    def current(self) -> ModelState:
        """The primary state (read once per request by routes that need one state)."""
        return self.current_deployment().primary.state

    def current_deployment(self) -> Deployment:
        """The deployment to serve this request with (read once per request)."""
        deployment = self._deployment
        if deployment is None:
            raise ServiceUnavailableError(self._reason)
        return deployment

    def _build(self) -> Deployment:
        experiment = self.settings.experiment
        if experiment is None:
            return Deployment.single(self._loader(self.settings), self.settings.policy)
        return build_experiment(self.settings, experiment, self._model_loader)

    def load(self) -> ModelState:
        """Load a fresh deployment (every arm's model) and swap it in; the old one stays
        until nobody uses it. Returns the primary state.

        Raises:
            ModelNotFoundError: no champion (or an arm's model is missing); the current
                deployment (if any) keeps serving.
        """
        with self._reload_lock:
            try:
                deployment = self._build()
            except ModelNotFoundError as error:
                if self._deployment is None:
                    self._reason = str(error)
                raise
            for state in deployment.states:
                self._warm_up(state)
            self._deployment = deployment  # one reference swap: atomic for readers
            self._reason = ""
            if self._on_load is not None:
                self._on_load(deployment.primary.state)
        # The previous states are not closed here: requests that hold them finish with
        # them, and their connections close when they are garbage collected.
        new_state = deployment.primary.state
        logger.info("serving %s version %s", new_state.info.name, new_state.info.version)
        return new_state

    def _warm_up(self, state: ModelState) -> None:
        """One request on the new state before it serves (first calls pay lazy imports)."""
        users = state.recommender.interactions_.user_ids
        try:
            self.recommend(int(users[0]) if len(users) else 0, state=state)
        except Exception:  # the real requests will report it
            logger.exception("warm-up request on the new model failed")

    def try_load(self) -> None:
        """Load at startup; a missing champion leaves the service not ready (with the reason)."""
        try:
            self.load()
        except ReelRankError as error:
            self._reason = str(error)
            logger.warning("no model loaded: %s", error)

    def readiness(self) -> tuple[bool, str]:
        """``(ready, reason)``: every arm's model is loaded and its online features are
        readable."""
        deployment = self._deployment
        if deployment is None:
            return False, self._reason
        for state in deployment.states:
            if state.uses_features and state.user_reader is None:
                return False, f"online feature store unavailable: {state.user_reader_error}"
        return True, "ok"

    # ---------------------------------------------------------------- hot path
    def recommend(
        self,
        user_id: int,
        k: int = 10,
        exclude_seen: bool = True,
        genre: str | None = None,
        state: ModelState | None = None,
        *,
        deployment: Deployment | None = None,
        request_id: str | None = None,
        rerank: RerankConfig | None = None,
    ) -> Recommendation:
        """The slate for one user (see the module docstring for the stages).

        Args:
            state: serve with this state and ``REELRANK_POLICY`` (no experiment arm).
            deployment: serve with the user's arm of this deployment (default: the
                current one), unless ``state`` is given.
            request_id: the request's id (seeds a stochastic policy; the log's key).
            rerank: the re-ranking stage's strengths and filters (default:
                ``REELRANK_RERANK``).
        """
        experiment: str | None = None
        if state is not None:
            arm = ArmState(None, state, self.settings.policy)
        else:
            deployment = deployment or self.current_deployment()
            if deployment.design == "interleaving":
                return self._interleaved(deployment, user_id, k, exclude_seen, genre, request_id,
                                         rerank)  # fmt: skip
            arm = deployment.for_user(user_id)
            if deployment.experiment is not None:
                experiment = deployment.experiment.name
        labels = {"request_id": request_id, "experiment": experiment, "arm": arm.name}
        if experiment is not None and deployment is not None:
            labels["design"] = deployment.design
        return self._rank(user_id, k, exclude_seen, genre, arm, labels, self._config(arm, rerank))

    def _config(self, arm: ArmState, rerank: RerankConfig | None) -> RerankConfig:
        """The request's re-ranking, else the arm's, else ``REELRANK_RERANK``."""
        if rerank is not None:
            return rerank
        return arm.rerank if arm.rerank is not None else self._default_rerank

    def _interleaved(
        self,
        deployment: Deployment,
        user_id: int,
        k: int,
        exclude_seen: bool,
        genre: str | None,
        request_id: str | None,
        rerank: RerankConfig | None,
    ) -> Recommendation:
        """Both arms' rows merged by team draft, seeded from the request id."""
        assert deployment.experiment is not None  # an interleaving design has one
        labels: dict[str, str | None] = {"request_id": request_id, "experiment": None}
        first, second = deployment.arms
        ranked = [
            self._rank(user_id, k, exclude_seen, genre, arm, labels | {"arm": arm.name},
                       self._config(arm, rerank))
            for arm in (first, second)
        ]  # fmt: skip
        started = time.perf_counter()
        seed = policy_seed(request_id) if request_id is not None else secrets.randbits(64)
        by_id = {item.item_id: item for result in reversed(ranked) for item in result.items}
        ids, teams = team_draft(
            [item.item_id for item in ranked[0].items],
            [item.item_id for item in ranked[1].items],
            k,
            np.random.default_rng(seed),
        )
        items = [
            RecommendedItem(item, by_id[item].score, rank, by_id[item].title)
            for rank, item in enumerate(ids, start=1)
        ]
        stages = {
            name: ranked[0].stages[name] + ranked[1].stages[name] for name in ranked[0].stages
        }
        stages["reranking"] += time.perf_counter() - started
        versions = dict.fromkeys(result.model_version for result in ranked)
        return Recommendation(
            user_id, items, "+".join(versions), ranked[0].fallback or ranked[1].fallback, stages,
            ranked[0].reason or ranked[1].reason, request_id=request_id,
            experiment=deployment.experiment.name, design="interleaving", arm=None, k=k,
            exclude_seen=exclude_seen, genre=genre, rerank=rerank, teams=tuple(teams),
        )  # fmt: skip

    def recommend_as(
        self, user_id: int, arm: ArmState, k: int = 10, request_id: str | None = None
    ) -> Recommendation:
        """What ``arm`` would serve ``user_id`` (seen items excluded, the default
        re-ranking): the counterfactual slate of an arm the user is not in."""
        labels: dict[str, str | None] = {"request_id": request_id, "experiment": None}
        labels["arm"] = arm.name
        return self._rank(user_id, k, True, None, arm, labels, self._config(arm, None))

    def _rank(
        self,
        user_id: int,
        k: int,
        exclude_seen: bool,
        genre: str | None,
        arm: ArmState,
        labels: dict[str, str | None],
        config: RerankConfig,
    ) -> Recommendation:
        """The stages for one arm; ``labels``: request id, experiment, design, arm."""
        state, policy = arm.state, arm.policy
        stages: dict[str, float] = {}
        started = time.perf_counter()
        # batch-recommend stores the greedy rows of the default re-ranking
        stored = (
            None
            if policy.stochastic or config != self._default_rerank
            else self._from_precomputed(state, user_id, k, exclude_seen, genre)
        )
        if stored is not None:  # REELRANK_SERVE_PRECOMPUTED: batch-recommend's list
            stages["retrieval"] = time.perf_counter() - started
            stages["features"] = stages["ranking"] = stages["reranking"] = 0.0
            plain: dict[str, Any] = {"policy": policy, "k": k, "exclude_seen": exclude_seen}
            plain |= {"genre": genre, "rerank": config, **labels}
            return Recommendation(user_id, stored, state.info.version, None, stages, None, **plain)
        row = state.user_index.get(user_id, -1)
        fallback: Fallback | None = None if row >= 0 else COLD_START
        reason: str | None = None
        genre_mask = state.catalogue.genre_mask(genre) if genre is not None else None
        # With a genre filter every eligible item is ranked, then the genre's top k kept.
        n = state.n_items if genre_mask is not None else max(state.recommender.n_candidates, k)
        candidates = self._candidates(state, user_id, row, n, exclude_seen)
        retrieved = time.perf_counter()
        stages["retrieval"] = retrieved - started
        version = state.info.version
        common: dict[str, Any] = {"policy": policy, "k": k, "exclude_seen": exclude_seen}
        common |= {"genre": genre, "rerank": config, **labels}
        if len(candidates.block.rows) == 0:
            stages["features"] = stages["ranking"] = stages["reranking"] = 0.0
            return Recommendation(user_id, [], version, fallback, stages, reason, **common)
        user_row = None
        if state.uses_features:
            user_row, reason = self._user_features(state, user_id)
            if reason is not None:
                fallback = DEGRADED
        inputs = state.scorer.features(candidates, row, user_row)
        featured = time.perf_counter()
        stages["features"] = featured - retrieved
        scores = state.scorer.score(candidates, inputs)
        scored = time.perf_counter()
        stages["ranking"] = scored - featured
        drawn = None
        now = time.time()
        if policy.stochastic:
            seed_text = labels["request_id"]
            mask = _allowed(state, candidates, genre_mask, config, now)
            items, drawn = _drawn_items(state, candidates, scores, k, mask, policy, seed_text)
        else:
            items = _reranked_items(state, candidates, scores, k, genre_mask, config, now)
        stages["reranking"] = time.perf_counter() - scored
        return Recommendation(
            user_id, items, version, fallback, stages, reason, drawn=drawn, **common
        )

    def _from_precomputed(
        self, state: ModelState, user_id: int, k: int, exclude_seen: bool, genre: str | None
    ) -> list[RecommendedItem] | None:
        """The stored list of the plain request (no genre, seen excluded), or None."""
        if self._precomputed is None or genre is not None or not exclude_seen:
            return None
        found = self._precomputed.lookup(user_id, state.info.version, k, state.catalogue)
        if found is None:
            return None
        columns, scores = found
        catalogue = state.catalogue
        ids, titles = catalogue.item_ids[columns].tolist(), catalogue.titles[columns].tolist()
        return [
            RecommendedItem(int(item), float(score), rank, title)
            for rank, (item, score, title) in enumerate(
                zip(ids, scores.tolist(), titles, strict=True), start=1
            )
        ]

    @staticmethod
    def _candidates(
        state: ModelState, user_id: int, row: int, n: int, exclude_seen: bool
    ) -> Candidates:
        key = cache_key(user_id, row >= 0, n, exclude_seen)
        return state.candidates.get_or_prepare(
            key,
            lambda: state.scorer.prepare(
                retrieve_one(state.recommender, user_id, n, exclude_seen), row
            ),
        )

    @staticmethod
    def _user_features(state: ModelState, user_id: int) -> tuple[np.ndarray, str | None]:
        """The user's stored features and, when the store failed, why."""
        if state.user_reader is not None:
            try:
                return state.user_reader.read(user_id), None
            except FeatureStoreError as error:
                reason = str(error)
        else:
            reason = f"online feature store unavailable: {state.user_reader_error}"
        return snapshot_user_row(state.snapshot_users, user_id), reason


def _drawn_items(
    state: ModelState,
    candidates: Candidates,
    scores: np.ndarray,
    k: int,
    mask: np.ndarray,
    policy: PolicyConfig,
    request_id: str | None,
) -> tuple[list[RecommendedItem], Drawn]:
    """The slate ``policy`` draws (seeded from the request id) from the candidates
    ``mask`` allows, with titles."""
    columns_all = candidates.block.item_columns
    if not mask.all():
        scores = np.where(mask, scores, -np.inf)
    seed = policy_seed(request_id) if request_id is not None else secrets.randbits(64)
    draw = draw_slate(policy, scores, k, seed)
    catalogue = state.catalogue
    columns = columns_all[draw.order]
    items = [
        RecommendedItem(int(item), float(score), rank, title)
        for rank, (item, score, title) in enumerate(
            zip(
                catalogue.item_ids[columns].tolist(),
                scores[draw.order].tolist(),
                catalogue.titles[columns].tolist(),
                strict=True,
            ),
            start=1,
        )
    ]
    return items, Drawn(draw, scores, catalogue.item_ids[columns_all])


def _allowed(
    state: ModelState,
    candidates: Candidates,
    genre_mask: np.ndarray | None,
    config: RerankConfig,
    now_seconds: float,
) -> np.ndarray:
    """The candidates a row may show: the re-ranker's hard filters and the genre."""
    columns = candidates.block.item_columns
    catalogue = state.catalogue
    keep = allowed(columns, catalogue.item_ids, catalogue.attributes, config, now_seconds)
    return keep if genre_mask is None else keep & genre_mask[columns]


def _reranked_items(
    state: ModelState,
    candidates: Candidates,
    scores: np.ndarray,
    k: int,
    genre_mask: np.ndarray | None,
    config: RerankConfig,
    now_seconds: float,
) -> list[RecommendedItem]:
    """The row of ``k`` the re-ranker makes of the candidates (of the genre, when
    filtered), with their titles; every strength at 0 is the ``k`` best by score."""
    columns_all = candidates.block.item_columns
    catalogue = state.catalogue
    keep = (
        np.arange(len(columns_all))
        if genre_mask is None
        else np.flatnonzero(genre_mask[columns_all])
    )
    picks = rerank(
        scores[keep],
        columns_all[keep],
        catalogue.item_ids,
        catalogue.attributes,
        config,
        k,
        now_seconds,
    )
    order = keep[picks]
    columns = columns_all[order]
    return [
        RecommendedItem(int(item), float(score), rank, title)
        for rank, (item, score, title) in enumerate(
            zip(
                catalogue.item_ids[columns].tolist(),
                scores[order].tolist(),
                catalogue.titles[columns].tolist(),
                strict=True,
            ),
            start=1,
        )
    ]
