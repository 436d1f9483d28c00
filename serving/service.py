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
4. the top ``k`` after the optional genre filter, with titles from the model's catalogue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from reelrank.config import Settings
from reelrank.exceptions import FeatureStoreError, ModelNotFoundError, ReelRankError
from serving.candidates import cache_key, retrieve_one
from serving.precomputed import PrecomputedLists
from serving.scoring import Candidates
from serving.state import ModelState, load_champion_state, snapshot_user_row

logger = logging.getLogger(__name__)

Fallback = Literal["cold_start", "degraded"]
COLD_START: Final = "cold_start"
DEGRADED: Final = "degraded"


@dataclass(frozen=True)
class RecommendedItem:
    item_id: int
    score: float
    rank: int
    title: str | None


@dataclass(frozen=True)
class Recommendation:
    """One user's answer and how it was produced."""

    user_id: int
    items: list[RecommendedItem]
    model_version: str
    fallback: Fallback | None
    stages: dict[str, float]
    reason: str | None = None


class ServiceUnavailableError(ReelRankError):
    """No model is loaded (the reason says why and what to do)."""


class RecommendationService:
    """Holds the current :class:`ModelState` and answers requests from it.

    Args:
        settings: configuration.
        loader: builds a state (default: the registry's champion with the feature store).
        on_load: called with every newly loaded state (e.g. to update a gauge).
    """

    def __init__(
        self,
        settings: Settings,
        loader: Callable[[Settings], ModelState] | None = None,
        on_load: Callable[[ModelState], object] | None = None,
    ) -> None:
        self.settings = settings
        self._loader = loader or load_champion_state
        self._on_load = on_load
        self._state: ModelState | None = None
        self._reason: str = "the model has not been loaded yet"
        self._reload_lock = threading.Lock()
        self._precomputed = (
            PrecomputedLists.from_settings(settings) if settings.serve_precomputed else None
        )

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> ModelState | None:
        return self._state

    @property
    def unavailable_reason(self) -> str:
        return self._reason

    def current(self) -> ModelState:
        """The state to serve this request with (read once per request)."""
        state = self._state
        if state is None:
            raise ServiceUnavailableError(self._reason)
        return state

    def load(self) -> ModelState:
        """Load a fresh state and swap it in; the old one stays until nobody uses it.

        Raises:
            ModelNotFoundError: no champion; the current state (if any) keeps serving.
        """
        with self._reload_lock:
            try:
                new_state = self._loader(self.settings)
            except ModelNotFoundError as error:
                if self._state is None:
                    self._reason = str(error)
                raise
            self._warm_up(new_state)
            self._state = new_state  # one reference swap: atomic for readers
            self._reason = ""
            if self._on_load is not None:
                self._on_load(new_state)
        # The previous state is not closed here: requests that hold it finish with it,
        # and its connections close when it is garbage collected.
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
        """``(ready, reason)``: a model is loaded and its online features are readable."""
        state = self._state
        if state is None:
            return False, self._reason
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
    ) -> Recommendation:
        """Top ``k`` for one user (see the module docstring for the stages)."""
        state = state or self.current()
        stages: dict[str, float] = {}
        started = time.perf_counter()
        stored = self._from_precomputed(state, user_id, k, exclude_seen, genre)
        if stored is not None:  # REELRANK_SERVE_PRECOMPUTED: batch-recommend's list
            stages["retrieval"] = time.perf_counter() - started
            stages["features"] = stages["ranking"] = 0.0
            return Recommendation(user_id, stored, state.info.version, None, stages, None)
        row = state.user_index.get(user_id, -1)
        fallback: Fallback | None = None if row >= 0 else COLD_START
        reason: str | None = None
        genre_mask = state.catalogue.genre_mask(genre) if genre is not None else None
        # With a genre filter every eligible item is ranked, then the genre's top k kept.
        n = state.n_items if genre_mask is not None else max(state.recommender.n_candidates, k)
        candidates = self._candidates(state, user_id, row, n, exclude_seen)
        retrieved = time.perf_counter()
        stages["retrieval"] = retrieved - started
        if len(candidates.block.rows) == 0:
            stages["features"] = stages["ranking"] = 0.0
            return Recommendation(user_id, [], state.info.version, fallback, stages, reason)
        user_row = None
        if state.uses_features:
            user_row, reason = self._user_features(state, user_id)
            if reason is not None:
                fallback = DEGRADED
        inputs = state.scorer.features(candidates, row, user_row)
        featured = time.perf_counter()
        stages["features"] = featured - retrieved
        scores = state.scorer.score(candidates, inputs)
        items = _top_items(state, candidates, scores, k, genre_mask)
        stages["ranking"] = time.perf_counter() - featured
        return Recommendation(user_id, items, state.info.version, fallback, stages, reason)

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


def _top_items(
    state: ModelState,
    candidates: Candidates,
    scores: np.ndarray,
    k: int,
    genre_mask: np.ndarray | None,
) -> list[RecommendedItem]:
    """The ``k`` best candidates (of the genre, when filtered), with their titles."""
    columns_all = candidates.block.item_columns
    if genre_mask is not None:
        scores = np.where(genre_mask[columns_all], scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    if genre_mask is not None:
        order = order[np.isfinite(scores[order])]
    columns = columns_all[order]
    catalogue = state.catalogue
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
