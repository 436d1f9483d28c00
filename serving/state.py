"""The served model's state, and loading it: every I/O of a model load happens here.

Everything a request needs lives in one immutable :class:`ModelState`, built off to the
side by :func:`build_state` (the registry's model, its online features, the scorer that
proved itself, the precomputed candidates) and swapped in with one reference by
:class:`~serving.service.RecommendationService`. The catalogue (titles, genres) comes with
the model: serving never reads the offline lake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from reelrank.config import Settings
from reelrank.exceptions import FeatureStoreError, ValidationError
from reelrank.features import columns as cols
from reelrank.features.cross import ItemCrossInputs
from reelrank.models.catalogue import Catalogue
from reelrank.registry.aliases import Alias
from reelrank.schema import ITEM_ID, USER_ID
from serving.candidates import COLD_USER_KEY, CacheKey, CandidateCache, precompute_retrieval
from serving.online.protocol import UserFeatureReader
from serving.scoring import RankerInputs, Scorer, choose_scorer

if TYPE_CHECKING:
    from reelrank.models.recommender import Recommender

logger = logging.getLogger(__name__)

FeatureSource = Literal["online", "snapshot", "none"]


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
class ModelState:
    """Everything one model version serves with (never mutated after construction).

    Attributes:
        recommender: the fitted model.
        info: registry facts for ``/model``.
        catalogue: titles and genre masks over the model's catalogue columns.
        inputs: the ranker's fixed inputs (layout, history, item rows).
        scorer: the scorer that proved itself at load.
        user_index: the interaction-matrix row of every known user id (a dict lookup on
            the request path instead of a search).
        snapshot_users: the model's own user features (the degraded fallback), or None.
        user_reader: the online user-feature reader, or None when the store is unavailable.
        user_reader_error: why there is no reader (for ``/ready``).
        candidates: prepared candidates per ``(user, n, exclude_seen)``.
    """

    recommender: Recommender
    info: ModelInfo
    catalogue: Catalogue
    inputs: RankerInputs
    scorer: Scorer
    user_index: dict[int, int]
    snapshot_users: pd.DataFrame | None
    user_reader: UserFeatureReader | None
    user_reader_error: str | None
    candidates: CandidateCache = field(default_factory=CandidateCache)

    @property
    def uses_features(self) -> bool:
        return self.inputs.uses_features

    @property
    def n_items(self) -> int:
        return len(self.recommender.interactions_.item_ids)

    def matrix_row(self, user_id: int) -> int:
        """The user's interaction-matrix row (-1 for unknown users)."""
        return -1 if user_id == COLD_USER_KEY else self.user_index.get(user_id, -1)

    def close(self) -> None:
        if self.user_reader is not None:
            self.user_reader.close()


@dataclass(frozen=True)
class _OnlineParts:
    item_frame: pd.DataFrame | None
    item_source: FeatureSource
    reader: UserFeatureReader | None
    reader_error: str | None


def _online_parts(settings: Settings, model: Recommender, use_store: bool) -> _OnlineParts:
    """Item rows and a user reader from the online store; else the model's snapshot."""
    from serving.online.store import load_item_features, open_user_reader

    item_ids = model.interactions_.item_ids
    if not model.layout_.uses_features:
        return _OnlineParts(None, "none", None, None)
    error = "the feature store is disabled for this service"
    if use_store:
        try:
            return _OnlineParts(
                load_item_features(settings, item_ids), "online", open_user_reader(settings), None
            )
        except FeatureStoreError as failure:
            error = str(failure)
            logger.warning("online features unavailable, serving degraded: %s", failure)
    snapshot = getattr(model.feature_provider_, "item_frame", None)
    if snapshot is None:
        raise FeatureStoreError(
            f"the model reads features but neither the online store nor its own snapshot "
            f"has them ({error}); run `reelrank features`, or retrain the model."
        )
    return _OnlineParts(snapshot, "snapshot", None, error)


def ranker_inputs(model: Recommender, item_frame: pd.DataFrame | None) -> RankerInputs:
    """The fixed inputs of ``model``'s ranker, item rows aligned with its catalogue."""
    layout = model.layout_
    history = np.diff(model.interactions_.seen.indptr).astype(np.float32)
    if item_frame is None:
        return RankerInputs(layout, history)
    unknown = [c for c in layout.user_columns if c not in cols.USER_FEATURES]
    if unknown:
        raise ValidationError(
            f"the model's ranker reads user columns {unknown[:5]} the online store does not "
            f"serve; retrain it on the {cols.FEATURE_SERVICE} feature service."
        )
    items = item_frame.reindex(pd.Index(model.interactions_.item_ids, name=ITEM_ID))
    item_matrix = items.reindex(columns=list(layout.item_columns)).to_numpy(
        dtype=np.float32, na_value=np.nan
    )
    positions = np.array([cols.USER_FEATURES.index(c) for c in layout.user_columns], dtype=int)
    return RankerInputs(layout, history, item_matrix, ItemCrossInputs(items), positions)


def build_state(
    recommender: Recommender,
    version: Any,
    settings: Settings,
    alias: str,
    metrics: dict[str, float] | None = None,
    use_feature_store: bool = True,
) -> ModelState:
    """Assemble a :class:`ModelState` around a loaded recommender (all I/O happens here)."""
    catalogue = getattr(recommender, "catalogue_", None)
    if catalogue is None:
        raise ValidationError(
            "the model carries no catalogue (it was trained by an older ReelRank); retrain it "
            "with `reelrank train`."
        )
    online = _online_parts(settings, recommender, use_feature_store)
    inputs = ranker_inputs(recommender, online.item_frame)
    user_ids = recommender.interactions_.user_ids.tolist()
    user_index = {int(user): row for row, user in enumerate(user_ids)}
    blocks = precompute_retrieval(recommender, max_users=settings.precomputed_users)
    rows = {key: (-1 if key[0] == COLD_USER_KEY else user_index[key[0]]) for key in blocks}
    probes = ((block, rows[key]) for key, block in blocks.items())
    scorer = choose_scorer(recommender.ranker_, inputs, probes)
    state = ModelState(
        recommender=recommender,
        info=_info(recommender, version, settings, alias, metrics, online),
        catalogue=catalogue,
        inputs=inputs,
        scorer=scorer,
        user_index=user_index,
        snapshot_users=getattr(recommender.feature_provider_, "user_frame", None),
        user_reader=online.reader,
        user_reader_error=online.reader_error,
    )
    prepared: dict[CacheKey, Any] = {
        key: scorer.prepare(block, rows[key]) for key, block in blocks.items()
    }
    state.candidates.pin(prepared)
    return state


def _info(
    model: Recommender,
    version: Any,
    settings: Settings,
    alias: str,
    metrics: dict[str, float] | None,
    online: _OnlineParts,
) -> ModelInfo:
    user_source: FeatureSource = "none"
    if model.layout_.uses_features:
        user_source = "online" if online.reader is not None else "snapshot"
    return ModelInfo(
        name=str(getattr(version, "name", settings.model_name)),
        version=str(getattr(version, "version", "unknown")),
        alias=alias,
        run_id=str(getattr(version, "run_id", "") or ""),
        metrics=dict(metrics or {}),
        loaded_at=datetime.now(UTC),
        trained_until=str(getattr(model, "trained_until_", "")) or None,
        item_features=online.item_source,
        user_features=user_source,
    )


def load_champion_state(settings: Settings, alias: str = Alias.CHAMPION) -> ModelState:
    """Load the registry's ``alias`` version and everything it serves with.

    Raises:
        ModelNotFoundError: no version holds the alias.
    """
    from reelrank.registry.models import load_recommender

    recommender, version = load_recommender(settings, alias)
    return build_state(recommender, version, settings, str(alias), _run_metrics(version))


def _run_metrics(version: Any) -> dict[str, float]:
    """The training run's metrics of a registered version (empty when unavailable)."""
    from reelrank.registry.models import run_metrics

    run_id = getattr(version, "run_id", None)
    if not run_id:
        return {}
    try:
        return run_metrics(run_id)
    except Exception as error:  # the tracking server may hold no run for it
        logger.warning("metrics of run %s unavailable: %s", run_id, error)
        return {}


def load_model_state(settings: Settings, ref: str) -> ModelState:
    """Load the model an experiment arm names, ``alias:<name>`` or ``version:<n>``.

    Raises:
        ModelNotFoundError: the registry has no such alias or version.
    """
    kind, _, name = ref.partition(":")
    if kind == "alias":
        return load_champion_state(settings, alias=name)
    from reelrank.registry.models import load_recommender_version

    recommender, version = load_recommender_version(settings, name)
    return build_state(recommender, version, settings, f"version {name}", _run_metrics(version))


def snapshot_user_row(frame: pd.DataFrame | None, user_id: int) -> np.ndarray:
    """The user's row of the model's own feature snapshot (NaN when absent)."""
    row = np.full(len(cols.USER_FEATURES), np.nan, dtype=np.float64)
    if frame is not None:
        position = frame.index.get_indexer(pd.Index([user_id], name=USER_ID))[0]
        if position >= 0:
            row = (
                frame.iloc[position]
                .reindex(list(cols.USER_FEATURES))
                .to_numpy(dtype=np.float64, na_value=np.nan)
            )
    return row
