"""The recommendation service: the loaded champion, its online features and the hot path.

Everything a request needs lives in one immutable :class:`ModelState`. ``/admin/reload``
builds a complete new state off to the side and swaps one reference; a request reads the
reference once at its start, so requests in flight finish on the state they began with
and no request ever sees a half-loaded model.

The hot path (one user) mirrors ``Recommender.recommend`` stage by stage, in arrays:

1. retrieval: ``retrieve_block`` over the model's in-memory sources (the candidate union
   with every source's score and rank), computed at load for unknown users and the most
   active known users (``Settings.precomputed_users``; other users and variants on
   demand, kept in an LRU), together with the ranker's static tree masks;
2. features: the user's stored row from the online store (deadline; on failure the
   model's snapshot row and ``fallback="degraded"``) and the cross features from
   ``reelrank.features.cross.cross_feature_matrix`` (the function training uses);
3. ranking: the splits on those request-time features, combined with the candidates'
   static masks in a compiled loop (``serving.trees.PartialScorer``; bit-identical to
   scoring the matrix ``Recommender`` builds), or the ranker on the full matrix when it
   is not compiled;
4. the top ``k`` after the optional genre filter, with titles.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from reelrank.config import Settings
from reelrank.data.schema import GENRES, ITEM_ID, ITEMS, TITLE
from reelrank.exceptions import (
    FeatureStoreError,
    ModelNotFoundError,
    ReelRankError,
    ValidationError,
)
from reelrank.features import columns as cols
from reelrank.features.cross import ItemCrossInputs, UserCrossInputs, cross_feature_matrix
from reelrank.models.recommender import HISTORY_LENGTH, RRF_K
from reelrank.models.retrieval import RetrievedBlock, retrieve_block
from serving.features import (
    FeastUserFeatureReader,
    RedisUserFeatureReader,
    SqliteUserFeatureReader,
    UserFeatureReader,
)
from serving.trees import CompiledTrees, PartialScorer

if TYPE_CHECKING:
    from reelrank.models.recommender import Recommender

logger = logging.getLogger(__name__)

Fallback = Literal["cold_start", "degraded"]
COLD_START: Final = "cold_start"
DEGRADED: Final = "degraded"
RETRIEVAL_CACHE_SIZE: Final = 4096
FeatureSource = Literal["online", "snapshot", "none"]


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


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    alias: str
    run_id: str
    metrics: dict[str, float]
    loaded_at: datetime
    trained_until: str | None
    item_features: FeatureSource
    user_features: FeatureSource


@dataclass(frozen=True)
class Candidates:
    """One user's retrieved candidates, prepared for ranking.

    Attributes:
        block: the candidate union with every source's score and rank.
        static_reach: the ranker's tree masks from every feature that does not change
            between requests for this model (retrieval scores, history, item features;
            :meth:`serving.trees.PartialScorer.static_reach`), or None when the ranker is
            not a compiled tree ensemble.
    """

    block: RetrievedBlock
    static_reach: np.ndarray | None = None


CacheKey = tuple[int, int, bool]


class _LruCache:
    """A thread-safe LRU map of prepared candidates, plus pinned precomputed entries.

    Args:
        size: entries kept beyond the pinned ones (other ``n``/``exclude_seen``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._pinned: dict[CacheKey, Candidates] = {}
        self._data: OrderedDict[CacheKey, Candidates] = OrderedDict()
        self._lock = threading.Lock()

    def pin(self, entries: dict[CacheKey, Candidates]) -> None:
        """Add entries that are never evicted (done while the state is built)."""
        self._pinned.update(entries)

    def get(self, key: CacheKey) -> Candidates | None:
        pinned = self._pinned.get(key)
        if pinned is not None:
            return pinned
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: CacheKey, value: Candidates) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.size:
                self._data.popitem(last=False)


@dataclass(frozen=True)
class ModelState:
    """Everything one model version serves with (never mutated after construction).

    Attributes:
        recommender: the fitted champion.
        info: registry facts for ``/model``.
        titles: title per catalogue column (``None`` when unknown).
        genres: the catalogue's genres as a ``{genre: bool mask over columns}`` map.
        item_frame: item features indexed by ``item_id`` (catalogue order), the cache.
        item_matrix: the same as float32 in the ranker's item column order.
        item_cross: the item side of the cross features.
        user_positions: where each of the ranker's user columns sits in ``USER_FEATURES``.
        user_index: the interaction-matrix row of every known user id (a dict lookup on
            the request path instead of a search).
        snapshot_users: the model's own user features (the degraded fallback), or None.
        user_reader: the online user-feature reader, or None when the store is unavailable.
        user_reader_error: why there is no reader (for ``/ready``).
        score: the ranker's raw scores for a feature matrix (compiled trees when the
            ranker is a LightGBM booster they reproduce, else the ranker's ``predict``).
        partial: the compiled trees split into static and per-request splits (None when
            the ranker is not compiled); candidates carry their static part.
        retrieval_cache: prepared candidates per ``(user, n, exclude_seen)``.
    """

    recommender: Recommender
    info: ModelInfo
    titles: np.ndarray
    genres: dict[str, np.ndarray]
    item_frame: pd.DataFrame | None
    item_matrix: np.ndarray | None
    item_cross: ItemCrossInputs | None
    user_positions: np.ndarray
    user_index: dict[int, int]
    snapshot_users: pd.DataFrame | None
    user_reader: UserFeatureReader | None
    user_reader_error: str | None
    score: Callable[[np.ndarray], np.ndarray] | None
    partial: PartialScorer | None = None
    retrieval_cache: _LruCache = field(default_factory=lambda: _LruCache(RETRIEVAL_CACHE_SIZE))

    @property
    def uses_features(self) -> bool:
        model = self.recommender
        has_items = self.item_frame is not None
        return bool(model.use_features and model.ranker_ is not None and has_items)

    @property
    def n_items(self) -> int:
        return len(self.recommender.interactions_.item_ids)

    def close(self) -> None:
        if self.user_reader is not None:
            self.user_reader.close()


# --------------------------------------------------------------------------- loading
def _read_titles_and_genres(
    settings: Settings, item_ids: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Titles and genre masks of the catalogue from the lake's items table (best effort)."""
    from reelrank.data.ingest import TABLE_FILES

    titles = np.full(len(item_ids), None, dtype=object)
    genres: dict[str, np.ndarray] = {}
    path = settings.lake_path / TABLE_FILES[ITEMS]
    try:
        items = pd.read_parquet(path, columns=[ITEM_ID, TITLE, GENRES])
    except (OSError, ValueError, KeyError) as error:
        logger.warning("item titles unavailable (%s): answers carry no titles", error)
        return titles, genres
    items = items.drop_duplicates(ITEM_ID, keep="last").set_index(ITEM_ID)
    positions = items.index.get_indexer(pd.Index(item_ids))
    found = positions >= 0
    raw_titles = items[TITLE].astype(object).where(items[TITLE].notna(), None).to_numpy()
    titles[found] = raw_titles[positions[found]]
    raw_genres = items[GENRES].to_numpy(dtype=object)
    for column, position in enumerate(positions):
        if position < 0:
            continue
        values = raw_genres[position]
        if values is None or (isinstance(values, float) and np.isnan(values)):
            continue
        for genre in values:
            mask = genres.setdefault(str(genre).lower(), np.zeros(len(item_ids), dtype=bool))
            mask[column] = True
    return titles, genres


COLD_USER_KEY: Final = -1
"""Cache key of every unknown user (their retrieval does not depend on the id)."""


def precompute_retrieval(
    recommender: Recommender, max_users: int | None = None, chunk: int = 1024
) -> dict[CacheKey, RetrievedBlock]:
    """The default request's candidates (``n_candidates``, unseen) for known users and for
    unknown users, computed in batches at load: the in-memory candidate index.

    Args:
        recommender: the fitted model.
        max_users: at most this many known users, those with the longest histories (the
            most active, most likely to come back); None: every known user.
        chunk: users per retrieval batch.
    """
    matrix = recommender.interactions_
    n = recommender.n_candidates
    index: dict[CacheKey, RetrievedBlock] = {}
    user_ids = matrix.user_ids
    # An id no known user has (taken before the cap: a capped-out user is still known).
    unknown = np.array([int(user_ids.max(initial=0)) + 1], dtype=np.int64)
    if max_users is not None and max_users < len(user_ids):
        history = np.diff(matrix.seen.indptr)
        most_active = np.argsort(-history, kind="stable")[:max_users]
        user_ids = user_ids[np.sort(most_active)]
    for start in range(0, len(user_ids), chunk):
        ids = user_ids[start : start + chunk]
        block = retrieve_block(recommender.sources_, matrix, ids, n, True)
        bounds = np.searchsorted(block.rows, np.arange(len(ids) + 1))
        for offset, user in enumerate(ids.tolist()):
            lo, hi = bounds[offset], bounds[offset + 1]
            index[(user, n, True)] = RetrievedBlock(
                rows=np.zeros(hi - lo, dtype=block.rows.dtype),
                item_columns=block.item_columns[lo:hi],
                features=block.features[lo:hi],
                feature_names=block.feature_names,
            )
    index[(COLD_USER_KEY, n, True)] = retrieve_block(recommender.sources_, matrix, unknown, n, True)
    return index


ITEM_LOAD_TIMEOUT_MS = 60_000.0


def _feature_store_parts(
    settings: Settings, item_ids: np.ndarray
) -> tuple[pd.DataFrame, UserFeatureReader]:
    """Item features for the catalogue from the online store, and a user reader."""
    from reelrank.features.feast_config import PROJECT, sqlite_path
    from reelrank.features.providers import FeastOnlineProvider
    from reelrank.features.store import get_feature_store

    try:
        store = get_feature_store(settings)
        # A one-off read of the whole catalogue at load, off the request path: Feast's SDK
        # needs seconds for thousands of items (one row per entity x feature in SQLite).
        provider = FeastOnlineProvider(
            store, timeout_ms=max(settings.online_timeout_ms, ITEM_LOAD_TIMEOUT_MS)
        )
        item_frame = provider.item_features(list(map(int, item_ids)), pd.Timestamp.now(tz="UTC"))
    except FeatureStoreError:
        raise
    except Exception as error:  # Feast / SQLite / Redis errors of every kind
        raise FeatureStoreError(f"the Feast online store cannot be read: {error}") from error
    if item_frame.isna().all(axis=None):
        raise FeatureStoreError(
            "the Feast online store holds no item features for the model's catalogue; "
            "run `reelrank features` (materialize) first."
        )
    reader: UserFeatureReader
    if settings.online_store == "sqlite":
        reader = SqliteUserFeatureReader(
            sqlite_path(settings),
            f"{PROJECT}_{cols.USER_VIEW}",
            timeout_ms=settings.online_timeout_ms,
        )
    elif settings.online_store == "redis":
        reader = RedisUserFeatureReader(
            settings.redis_url,
            PROJECT,
            cols.USER_VIEW,
            timeout_ms=settings.online_timeout_ms,
        )
    else:  # any other store Feast supports, through its SDK
        reader = FeastUserFeatureReader(
            FeastOnlineProvider(store, timeout_ms=settings.online_timeout_ms)
        )
    return item_frame, reader


def build_state(
    recommender: Recommender,
    version: Any,
    settings: Settings,
    alias: str,
    metrics: dict[str, float] | None = None,
    use_feature_store: bool = True,
) -> ModelState:
    """Assemble a :class:`ModelState` around a loaded recommender (all I/O happens here)."""
    item_ids = recommender.interactions_.item_ids
    titles, genres = _read_titles_and_genres(settings, item_ids)
    snapshot = getattr(recommender, "feature_provider_", None)
    snapshot_users = getattr(snapshot, "user_frame", None)
    snapshot_items = getattr(snapshot, "item_frame", None)
    item_frame: pd.DataFrame | None = None
    reader: UserFeatureReader | None = None
    reader_error: str | None = None
    item_source: FeatureSource = "none"
    wants_features = recommender.use_features and recommender.ranker_ is not None
    if wants_features:
        if use_feature_store:
            try:
                item_frame, reader = _feature_store_parts(settings, item_ids)
                item_source = "online"
            except FeatureStoreError as error:
                reader_error = str(error)
                logger.warning("online features unavailable, serving degraded: %s", error)
        else:
            reader_error = "the feature store is disabled for this service"
        if item_frame is None and snapshot_items is not None:
            item_frame = snapshot_items.reindex(pd.Index(item_ids, name=ITEM_ID))
            item_source = "snapshot"
    item_matrix = None
    item_cross = None
    if item_frame is not None:
        item_frame = item_frame.reindex(pd.Index(item_ids, name=ITEM_ID))
        columns = list(getattr(recommender, "item_columns_", cols.ITEM_FEATURES))
        item_matrix = item_frame.reindex(columns=columns).to_numpy(
            dtype=np.float32, na_value=np.nan
        )
        item_cross = ItemCrossInputs(item_frame)
    user_columns = list(getattr(recommender, "user_columns_", cols.USER_FEATURES))
    unknown_columns = [c for c in user_columns if c not in cols.USER_FEATURES]
    if unknown_columns:
        raise ValidationError(
            f"the model's ranker reads user columns {unknown_columns[:5]} the online store "
            "does not serve; retrain it on the ranker_v1 feature service."
        )
    if expected_feature_names(recommender) != list(recommender.feature_names_):
        raise ValidationError(
            "the service cannot rebuild the ranker's feature matrix (feature names differ "
            "from the model's); retrain the model with this version of ReelRank."
        )
    user_source: FeatureSource = "none"
    if wants_features:
        user_source = "online" if reader is not None else "snapshot"
    info = ModelInfo(
        name=str(getattr(version, "name", settings.model_name)),
        version=str(getattr(version, "version", "unknown")),
        alias=alias,
        run_id=str(getattr(version, "run_id", "") or ""),
        metrics=dict(metrics or {}),
        loaded_at=datetime.now(UTC),
        trained_until=str(getattr(recommender, "trained_until_", "")) or None,
        item_features=item_source,
        user_features=user_source,
    )
    score, compiled = ranker_scorer(recommender)
    user_index = {
        int(user): row for row, user in enumerate(recommender.interactions_.user_ids.tolist())
    }
    state = ModelState(
        recommender=recommender,
        info=info,
        titles=titles,
        genres=genres,
        item_frame=item_frame,
        item_matrix=item_matrix,
        item_cross=item_cross,
        user_positions=np.array([cols.USER_FEATURES.index(c) for c in user_columns], dtype=int),
        user_index=user_index,
        snapshot_users=snapshot_users,
        user_reader=reader,
        user_reader_error=reader_error,
        score=score,
        partial=(
            compiled.partial(dynamic_feature_indices(recommender, len(user_columns)))
            if compiled is not None and item_matrix is not None
            else None
        ),
    )
    blocks = precompute_retrieval(recommender, max_users=settings.precomputed_users)
    if not _partial_scores_agree(state, blocks):
        logger.warning("partial tree scores disagree with the full scorer; not using them")
        state = dataclasses.replace(state, partial=None)
    state.retrieval_cache.pin(
        {
            key: prepare_candidates(state, block, _matrix_row(state, key))
            for key, block in blocks.items()
        }
    )
    return state


def _partial_scores_agree(state: ModelState, blocks: dict[CacheKey, RetrievedBlock]) -> bool:
    """Load-time check of the partial scorer on real candidates with random user rows
    (``tests/serving/test_parts.py`` proves the equality in general)."""
    if state.partial is None or state.score is None or not state.uses_features:
        return True
    rng = np.random.default_rng(0)
    for key, block in list(blocks.items())[:8]:
        if len(block.rows) == 0:
            continue
        row = _matrix_row(state, key)
        user_row = rng.normal(0.0, 2.0, len(cols.USER_FEATURES))
        user_row[rng.random(len(user_row)) < 0.2] = np.nan
        candidates = prepare_candidates(state, block, row)
        assert candidates.static_reach is not None
        partial = state.partial.score(
            candidates.static_reach, dynamic_columns(state, block, user_row)
        )
        full = state.score(feature_matrix(state, block, row, user_row))
        if not np.array_equal(partial, np.asarray(full, dtype=np.float64)):
            return False
    return True


def _matrix_row(state: ModelState, key: CacheKey) -> int:
    """The interaction-matrix row of a cache key's user (-1 for unknown users)."""
    return -1 if key[0] == COLD_USER_KEY else state.user_index[key[0]]


def dynamic_feature_indices(recommender: Recommender, n_user: int) -> np.ndarray:
    """Columns of the ranker's matrix known only at request time: the online user
    features, then the cross features (the layout ``feature_matrix`` writes)."""
    at_user = 2 * len(recommender.sources_) + 1
    width = len(recommender.feature_names_)
    n_cross = len(cols.CROSS_FEATURES)
    return np.r_[np.arange(at_user, at_user + n_user), np.arange(width - n_cross, width)]


NO_USER_FEATURES: Final = np.full(len(cols.USER_FEATURES), np.nan)


def prepare_candidates(state: ModelState, block: RetrievedBlock, row: int) -> Candidates:
    """A block with its static tree masks (when the ranker is compiled and uses features)."""
    if state.partial is None or not state.uses_features or len(block.rows) == 0:
        return Candidates(block)
    X = feature_matrix(state, block, row, NO_USER_FEATURES)
    return Candidates(block, state.partial.static_reach(X))


def ranker_scorer(
    recommender: Recommender,
) -> tuple[Callable[[np.ndarray], np.ndarray] | None, CompiledTrees | None]:
    """The fastest exact scorer of the model's ranker (checked against it on random rows),
    and the compiled trees when it is them."""
    ranker = recommender.ranker_
    if ranker is None:
        return None, None
    booster = getattr(ranker, "booster_", None)
    if booster is None:
        return ranker.predict, None
    compiled = CompiledTrees.from_booster(booster)
    if compiled is None:
        return ranker.predict, None
    rng = np.random.default_rng(0)
    probe = rng.normal(0.0, 3.0, size=(256, booster.num_feature())).astype(np.float32)
    probe[rng.random(probe.shape) < 0.2] = np.nan
    probe[rng.random(probe.shape) < 0.1] = 0.0
    if not np.allclose(compiled.predict(probe), ranker.predict(probe), rtol=0, atol=1e-9):
        logger.warning("compiled trees disagree with LightGBM; scoring with LightGBM")
        return ranker.predict, None
    return compiled.predict, compiled


def load_champion_state(settings: Settings, alias: str = "champion") -> ModelState:
    """Load the registry's ``alias`` version and everything it serves with.

    Raises:
        ModelNotFoundError: no version holds the alias.
    """
    from reelrank import tracking

    recommender, version = tracking.load_recommender(settings, alias)
    metrics: dict[str, float] = {}
    run_id = getattr(version, "run_id", None)
    if run_id:
        try:
            metrics = tracking.run_metrics(run_id)
        except Exception as error:  # the tracking server may hold no run for it
            logger.warning("metrics of run %s unavailable: %s", run_id, error)
    return build_state(recommender, version, settings, alias, metrics)


# --------------------------------------------------------------------------- serving
class ServiceUnavailableError(ReelRankError):
    """No model is loaded (the reason says why and what to do)."""


class RecommendationService:
    """Holds the current :class:`ModelState` and answers requests from it.

    Args:
        settings: configuration.
        loader: builds a state (default: the registry's champion with the feature store).
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
        model = state.recommender
        stages: dict[str, float] = {}
        fallback: Fallback | None = None
        reason: str | None = None

        started = time.perf_counter()
        row = state.user_index.get(user_id, -1)
        known = row >= 0
        if not known:
            fallback = COLD_START
        genre_mask = None
        if genre is not None:
            genre_mask = state.genres.get(genre.lower())
            if genre_mask is None:
                genre_mask = np.zeros(state.n_items, dtype=bool)
        n = max(model.n_candidates, k)
        if genre_mask is not None:
            n = state.n_items  # rank every eligible item, then keep the genre's top k
        candidates = self._candidates(state, user_id, row, n, exclude_seen)
        block = candidates.block
        now = time.perf_counter()
        stages["retrieval"] = now - started

        if len(block.rows) == 0:
            stages["features"] = stages["ranking"] = 0.0
            return Recommendation(user_id, [], state.info.version, fallback, stages, reason)
        if state.uses_features:
            user_row, degraded_reason = self._user_features(state, user_id)
            if degraded_reason is not None:
                fallback, reason = DEGRADED, degraded_reason
            if candidates.static_reach is not None and state.partial is not None:
                dynamic = dynamic_columns(state, block, user_row)
                after_features = time.perf_counter()
                stages["features"] = after_features - now
                scores = state.partial.score(candidates.static_reach, dynamic)
            else:
                X = feature_matrix(state, block, row, user_row)
                after_features = time.perf_counter()
                stages["features"] = after_features - now
                assert state.score is not None
                scores = np.asarray(state.score(X), dtype=np.float64)
        else:
            after_features = time.perf_counter()
            stages["features"] = after_features - now
            scores = self._score_without_features(state, block, row)
        if genre_mask is not None:
            keep = genre_mask[block.item_columns]
            scores = np.where(keep, scores, -np.inf)
        order = np.argsort(-scores, kind="stable")[:k]
        if genre_mask is not None:
            order = order[np.isfinite(scores[order])]
        item_ids = model.interactions_.item_ids
        columns = block.item_columns[order]
        items = [
            RecommendedItem(int(item), float(score), rank, title)
            for rank, (item, score, title) in enumerate(
                zip(
                    item_ids[columns].tolist(),
                    scores[order].tolist(),
                    state.titles[columns].tolist(),
                    strict=True,
                ),
                start=1,
            )
        ]
        stages["ranking"] = time.perf_counter() - after_features
        return Recommendation(user_id, items, state.info.version, fallback, stages, reason)

    @staticmethod
    def _candidates(
        state: ModelState, user_id: int, row: int, n: int, exclude_seen: bool
    ) -> Candidates:
        key = (user_id, n, exclude_seen) if row >= 0 else (COLD_USER_KEY, n, True)
        candidates = state.retrieval_cache.get(key)
        if candidates is None:
            model = state.recommender
            ids = np.array([user_id], dtype=np.int64)
            block = retrieve_block(model.sources_, model.interactions_, ids, n, exclude_seen)
            candidates = prepare_candidates(state, block, row)
            state.retrieval_cache.put(key, candidates)
        return candidates

    def _user_features(self, state: ModelState, user_id: int) -> tuple[np.ndarray, str | None]:
        """The user's stored features and, when the store failed, why."""
        reason: str | None = None
        if state.user_reader is not None:
            try:
                return state.user_reader.read(user_id), None
            except FeatureStoreError as error:
                reason = str(error)
        else:
            reason = f"online feature store unavailable: {state.user_reader_error}"
        return snapshot_user_row(state.snapshot_users, user_id), reason

    @staticmethod
    def _score_without_features(state: ModelState, block: RetrievedBlock, row: int) -> np.ndarray:
        model = state.recommender
        if model.ranker_ is None:
            ranks = block.features[:, 1::2]
            return np.asarray(np.nansum(1.0 / (RRF_K + ranks), axis=1), dtype=np.float64)
        history = np.diff(model.interactions_.seen.indptr).astype(np.float32)
        value = history[row] if row >= 0 else 0.0
        X = np.hstack([block.features, np.full((len(block.rows), 1), value, dtype=np.float32)])
        return np.asarray(model.ranker_.predict(X), dtype=np.float64)


def feature_matrix(
    state: ModelState, block: RetrievedBlock, row: int, user_row: np.ndarray
) -> np.ndarray:
    """The ranker's matrix, column for column as ``Recommender._features`` builds it (the
    request-time columns are ``dynamic_columns``, so both scorers read the same values)."""
    assert state.item_matrix is not None
    matrix = state.recommender.interactions_
    history = float(matrix.seen.indptr[row + 1] - matrix.seen.indptr[row]) if row >= 0 else 0.0
    dynamic = dynamic_columns(state, block, user_row)
    n_user, n_item = len(state.user_positions), state.item_matrix.shape[1]
    at = block.features.shape[1]
    X = np.empty((len(block.rows), at + 1 + n_user + n_item + len(dynamic) - n_user), np.float32)
    X[:, :at] = block.features
    X[:, at] = history
    at += 1
    X[:, at : at + n_user] = dynamic[:n_user].T
    at += n_user
    X[:, at : at + n_item] = state.item_matrix[block.item_columns]
    X[:, at + n_item :] = dynamic[n_user:].T
    return X


def dynamic_columns(state: ModelState, block: RetrievedBlock, user_row: np.ndarray) -> np.ndarray:
    """The request-time columns of the ranker's matrix, transposed: ``(n_user + n_cross,
    candidates)`` float32 (user features broadcast, then cross features), the input of
    :meth:`PartialScorer.score` (``dynamic_feature_indices`` gives their columns)."""
    assert state.item_cross is not None
    n_user = len(state.user_positions)
    cross = cross_feature_matrix(
        UserCrossInputs.from_row(user_row), state.item_cross, block.item_columns
    )
    out = np.empty((n_user + cross.shape[1], len(block.rows)), dtype=np.float32)
    out[:n_user] = user_row[state.user_positions].astype(np.float32)[:, None]
    out[n_user:] = cross.T
    return out


def snapshot_user_row(frame: pd.DataFrame | None, user_id: int) -> np.ndarray:
    """The user's row of the model's own feature snapshot (NaN when absent)."""
    row = np.full(len(cols.USER_FEATURES), np.nan, dtype=np.float64)
    if frame is not None:
        position = frame.index.get_indexer(pd.Index([user_id]))[0]
        if position >= 0:
            row = (
                frame.iloc[position]
                .reindex(list(cols.USER_FEATURES))
                .to_numpy(dtype=np.float64, na_value=np.nan)
            )
    return row


def expected_feature_names(model: Recommender) -> list[str]:
    """The names the service's matrix carries (checked against the ranker's at load)."""
    sources = [n for s in model.sources_ for n in (f"{s}_score", f"{s}_rank")]
    names = [*sources, HISTORY_LENGTH]
    if model.use_features and model.ranker_ is not None:
        names += [
            *getattr(model, "user_columns_", cols.USER_FEATURES),
            *getattr(model, "item_columns_", cols.ITEM_FEATURES),
            *cols.CROSS_FEATURES,
        ]
    return names
