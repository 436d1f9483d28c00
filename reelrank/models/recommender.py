"""The one recommender API: retrieval (several sources) then a learned ranker.

``Recommender().fit(events)`` works on any canonical events frame; ``users``/``items`` add
side information (demographics, genres) through the library feature builders. The fitted
object is what the pipeline trains, MLflow stores and the service loads (it pickles; it holds
numpy arrays, a LightGBM booster and a small latest-value feature snapshot).

How ``fit`` trains the ranker without leakage (per label window, see ``ranker_windows``):

1. ``cutoff`` = the ``1 - ranker_label_fraction`` time quantile of the events, floored to a
   UTC midnight (features are daily snapshots);
2. the retrieval sources are fitted on events before ``cutoff`` only;
3. candidates are generated for the users active after ``cutoff`` (unseen items only);
4. labels are their interactions after ``cutoff`` (graded by rating, or binary);
5. user/item features are taken as of ``cutoff`` from a feature provider built from events
   before ``cutoff`` only (or the provider passed in, queried point-in-time);
6. the ranker is trained on (candidates, features, labels); then every source is refitted
   on all events for serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from reelrank.data.schema import (
    GENRES,
    ITEM_ID,
    RATING,
    RELEASE_DATE,
    TIMESTAMP,
    TITLE,
    USER_ID,
)
from reelrank.exceptions import NotFittedError, ValidationError
from reelrank.features.provider import FeatureProvider
from reelrank.models.ranker import (
    LABEL,
    Ranker,
    group_sizes,
    make_ranker,
    numeric_columns,
    relevance_labels,
    to_float_matrix,
)
from reelrank.models.retrieval import (
    RANK,
    SCORE,
    USER_CHUNK,
    CandidateSource,
    InteractionMatrix,
    RetrievedBlock,
    make_source,
    retrieve,
    retrieve_block,
)

logger = logging.getLogger(__name__)

HISTORY_LENGTH: Final = "history_length"
RRF: Final = "rrf"
RRF_K: Final = 60.0
DAY: Final = pd.Timedelta(days=1)
CATEGORICAL_FEATURES: Final = ("user_gender", "user_occupation", "user_zip_region")


class SnapshotFeatureProvider:
    """Latest feature values held in memory; ``as_of`` is ignored (like an online store).

    Args:
        user_frame: features indexed by ``user_id``.
        item_frame: features indexed by ``item_id``.
    """

    def __init__(self, user_frame: pd.DataFrame, item_frame: pd.DataFrame) -> None:
        self.user_frame = user_frame
        self.item_frame = item_frame

    def user_features(self, user_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return _lookup(self.user_frame, user_ids, USER_ID)

    def item_features(self, item_ids: Sequence[int], as_of: pd.Timestamp) -> pd.DataFrame:
        return _lookup(self.item_frame, item_ids, ITEM_ID)


def _lookup(frame: pd.DataFrame, ids: Sequence[int], name: str) -> pd.DataFrame:
    """Rows of ``frame`` for ``ids`` in order; unknown ids as NaN rows (fast when all known)."""
    index = pd.Index(np.asarray(ids, dtype=np.int64), name=name)
    positions = frame.index.get_indexer(index)
    if (positions >= 0).all():
        out = frame.iloc[positions]
        out.index = index
        return out
    return frame.reindex(index)


def feature_snapshot_end(events: pd.DataFrame) -> pd.Timestamp:
    """The first snapshot day that knows every event: the midnight after the last one."""
    return pd.Timestamp(events[TIMESTAMP].max()).floor("D") + DAY


def library_feature_provider(
    events: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, end: pd.Timestamp | None
) -> FeatureProvider:
    """The in-memory provider over the library's point-in-time tables (built from ``events``)."""
    from reelrank.features import (
        InMemoryFeatureProvider,
        build_item_features,
        build_user_features,
    )

    user_table = build_user_features(events, users, items, end=end)
    item_table = build_item_features(events, items, end=end)
    return InMemoryFeatureProvider(user_table, item_table)


@dataclass(frozen=True)
class RankerTrainingSet:
    """The ranker's training data: one row per (window, user, candidate item)."""

    pairs: pd.DataFrame  # user_id, item_id, label, cutoff
    X: np.ndarray
    y: np.ndarray
    group_sizes: np.ndarray
    feature_names: list[str]
    cutoffs: list[pd.Timestamp]


def _validate_events(events: pd.DataFrame) -> pd.DataFrame:
    required = [USER_ID, ITEM_ID, RATING, TIMESTAMP]
    missing = [c for c in required if c not in events.columns]
    if missing:
        raise ValidationError(
            f"events frame lacks columns {missing}; expected the canonical events frame "
            f"({', '.join(required)})."
        )
    if events.empty:
        raise ValidationError("events frame is empty; fit needs at least one interaction.")
    frame = events[required].copy()
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    return frame.sort_values([TIMESTAMP, USER_ID, ITEM_ID], kind="stable", ignore_index=True)


def _side_frames(
    events: pd.DataFrame, users: pd.DataFrame | None, items: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The given side frames, or minimal ones (ids only) built from the events."""
    if users is None:
        users = pd.DataFrame({USER_ID: np.unique(events[USER_ID].to_numpy(dtype=np.int64))})
    if items is None:
        ids = np.unique(events[ITEM_ID].to_numpy(dtype=np.int64))
        items = pd.DataFrame(
            {
                ITEM_ID: ids,
                TITLE: pd.Series(pd.NA, index=range(len(ids)), dtype="string"),
                GENRES: [[] for _ in ids],
                RELEASE_DATE: pd.Series(pd.NaT, index=range(len(ids)), dtype="datetime64[ns, UTC]"),
            }
        )
    return users, items


class Recommender(BaseEstimator):
    """Two-stage recommender: candidate sources, then a learning-to-rank model.

    Args:
        sources: retrieval sources by registry name (``popularity``, ``ease``, ``mf``,
            ``itemknn``).
        n_candidates: top items taken from each source (the union goes to the ranker).
        popularity_half_life_days: recency weighting of the popularity source.
        ease_l2: EASE ridge strength.
        mf_algorithm / mf_factors / mf_regularization / mf_alpha / mf_iterations:
            the ``implicit`` matrix factorisation (``als`` or ``bpr``).
        itemknn_neighbours: neighbours kept per item by the item-kNN source.
        ranker: ranker registry name (``lgbm-lambdarank``, ``lgbm-binary``,
            ``sklearn-logreg``, ``scratch-logreg``, ``scratch-mlp``) or ``rrf`` (no learning:
            reciprocal-rank fusion of the sources).
        ranker_params: extra keyword arguments for the ranker.
        ranker_label_fraction: share of the most recent events used as labels per window.
        ranker_windows: number of stacked label windows (more training groups).
        ranker_max_users: cap on label users per window (sampled with ``random_state``).
        ranker_holdout: how label windows are cut: ``time`` (the newest events, for
            "what next" serving and temporal evaluation) or ``random`` (a random share of
            events, matching random-split protocols).
        label_scheme: ``graded`` (1 seen, 2 rated >= ``relevance_threshold``) or ``binary``.
        relevance_threshold: rating from which an interaction counts as a strong positive.
        use_features: use the user/item/cross features of the feature provider (else the
            ranker sees retrieval scores and history length only).
        random_state: seed for every random choice (sources, sampling, ranker).
    """

    def __init__(
        self,
        sources: tuple[str, ...] = ("popularity", "ease", "mf"),
        n_candidates: int = 100,
        popularity_half_life_days: float = 30.0,
        ease_l2: float = 300.0,
        mf_algorithm: str = "als",
        mf_factors: int = 64,
        mf_regularization: float = 0.05,
        mf_alpha: float = 2.0,
        mf_iterations: int = 20,
        itemknn_neighbours: int = 100,
        ranker: str = "lgbm-lambdarank",
        ranker_params: dict[str, Any] | None = None,
        ranker_label_fraction: float = 0.07,
        ranker_windows: int = 6,
        ranker_max_users: int | None = 1500,
        ranker_holdout: str = "time",
        label_scheme: str = "graded",
        relevance_threshold: float = 4.0,
        use_features: bool = True,
        random_state: int | None = 0,
    ) -> None:
        self.sources = sources
        self.n_candidates = n_candidates
        self.popularity_half_life_days = popularity_half_life_days
        self.ease_l2 = ease_l2
        self.mf_algorithm = mf_algorithm
        self.mf_factors = mf_factors
        self.mf_regularization = mf_regularization
        self.mf_alpha = mf_alpha
        self.mf_iterations = mf_iterations
        self.itemknn_neighbours = itemknn_neighbours
        self.ranker = ranker
        self.ranker_params = ranker_params
        self.ranker_label_fraction = ranker_label_fraction
        self.ranker_windows = ranker_windows
        self.ranker_max_users = ranker_max_users
        self.ranker_holdout = ranker_holdout
        self.label_scheme = label_scheme
        self.relevance_threshold = relevance_threshold
        self.use_features = use_features
        self.random_state = random_state

    # ------------------------------------------------------------------ building blocks
    def _make_sources(self) -> dict[str, CandidateSource]:
        params: dict[str, dict[str, Any]] = {
            "popularity": {"half_life_days": self.popularity_half_life_days},
            "ease": {"l2": self.ease_l2},
            "mf": {
                "algorithm": self.mf_algorithm,
                "factors": self.mf_factors,
                "regularization": self.mf_regularization,
                "alpha": self.mf_alpha,
                "iterations": self.mf_iterations,
                "random_state": self.random_state,
            },
            "itemknn": {"neighbours": self.itemknn_neighbours},
        }
        if not self.sources:
            raise ValidationError("sources is empty; give at least one retrieval source.")
        return {name: make_source(name, **params.get(name, {})) for name in self.sources}

    def _fit_sources(
        self, events: pd.DataFrame, catalogue: np.ndarray | None
    ) -> tuple[InteractionMatrix, dict[str, CandidateSource]]:
        matrix = InteractionMatrix.from_events(events, catalogue=catalogue)
        sources = self._make_sources()
        for source in sources.values():
            source.fit(matrix)
        return matrix, sources

    def _check_params(self) -> None:
        if not 0.0 < self.ranker_label_fraction < 0.5:
            raise ValidationError(
                f"ranker_label_fraction={self.ranker_label_fraction} must be in (0, 0.5)."
            )
        if self.ranker_windows < 1:
            raise ValidationError(f"ranker_windows={self.ranker_windows} must be at least 1.")
        if self.n_candidates < 1:
            raise ValidationError(f"n_candidates={self.n_candidates} must be at least 1.")

    def _cutoffs(self, events: pd.DataFrame) -> list[pd.Timestamp]:
        """Label-window starts, newest first, floored to midnight; empty if data is too short."""
        timestamps = events[TIMESTAMP]
        first = timestamps.min()
        cutoffs: list[pd.Timestamp] = []
        for window in range(1, self.ranker_windows + 1):
            quantile = 1.0 - self.ranker_label_fraction * window
            cutoff: pd.Timestamp = pd.Timestamp(timestamps.quantile(quantile)).floor("D")  # type: ignore[arg-type]
            if cutoff <= first or (cutoffs and cutoff >= cutoffs[-1]):
                break
            cutoffs.append(cutoff)
        return cutoffs

    def _label_windows(
        self, events: pd.DataFrame, rng: np.random.Generator
    ) -> Iterator[tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]]:
        """(feature time, events the sources and features see, label events) per window.

        ``time``: the label events are the newest ``ranker_label_fraction`` of events before
        the previous window; ``random``: a random ``ranker_label_fraction`` of all events
        (for random-holdout protocols), features as of the end of the data.
        """
        if self.ranker_holdout == "time":
            cutoffs = self._cutoffs(events)
            for window, cutoff in enumerate(cutoffs):
                after = events[events[TIMESTAMP] >= cutoff]
                if window > 0:
                    after = after[after[TIMESTAMP] < cutoffs[window - 1]]
                yield cutoff, events[events[TIMESTAMP] < cutoff], after
        elif self.ranker_holdout == "random":
            end = pd.Timestamp(events[TIMESTAMP].max()).floor("D") + DAY
            for _ in range(self.ranker_windows):
                held = rng.random(len(events)) < self.ranker_label_fraction
                yield end, events[~held], events[held]
        else:
            raise ValidationError(
                f"unknown ranker_holdout {self.ranker_holdout!r}; use 'time' or 'random'."
            )

    def _features(
        self,
        block: RetrievedBlock,
        user_ids: np.ndarray,
        matrix: InteractionMatrix,
        provider: FeatureProvider | None,
        as_of: pd.Timestamp,
    ) -> tuple[np.ndarray, list[str]]:
        """Feature matrix of a retrieved block (same code for training and serving)."""
        rows_in_matrix = matrix.user_rows(user_ids)
        history = np.diff(matrix.seen.indptr).astype(np.float32)
        history_per_user = np.where(rows_in_matrix >= 0, history[rows_in_matrix], 0.0)
        parts = [block.features, history_per_user[block.rows, None].astype(np.float32)]
        names = [*block.feature_names, HISTORY_LENGTH]
        if provider is not None:
            from reelrank.features import CROSS_FEATURES, cross_features

            item_cols = np.unique(block.item_columns)
            item_ids = matrix.item_ids[item_cols]
            user_frame = provider.user_features(list(map(int, user_ids)), as_of)
            item_frame = provider.item_features(list(map(int, item_ids)), as_of)
            if not hasattr(self, "user_columns_"):
                self.user_columns_ = numeric_columns(user_frame)
                self.item_columns_ = numeric_columns(item_frame)
            U = to_float_matrix(user_frame, self.user_columns_)
            item_matrix = to_float_matrix(item_frame, self.item_columns_)
            item_pos = np.searchsorted(item_cols, block.item_columns)
            pairs = pd.DataFrame(
                {USER_ID: user_ids[block.rows], ITEM_ID: matrix.item_ids[block.item_columns]}
            )
            cross = cross_features(user_frame, item_frame, pairs)
            parts += [U[block.rows], item_matrix[item_pos], to_float_matrix(cross, CROSS_FEATURES)]
            names += [*self.user_columns_, *self.item_columns_, *CROSS_FEATURES]
        return np.hstack(parts), names

    # ------------------------------------------------------------------------ training
    def training_set(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
        feature_provider: FeatureProvider | None = None,
    ) -> RankerTrainingSet:
        """Build the ranker's training data from ``events`` (see the module docstring).

        ``feature_provider``, when given, is queried as of each cutoff (point-in-time, e.g.
        Feast historical retrieval); by default the library provider is built, per window,
        from the events before that window's cutoff only.
        """
        self._check_params()
        events = _validate_events(events)
        users, items = _side_frames(events, users, items)
        catalogue = items[ITEM_ID].to_numpy(dtype=np.int64)
        rng = np.random.default_rng(self.random_state)
        cutoffs: list[pd.Timestamp] = []
        pair_frames, X_parts, y_parts, group_parts = [], [], [], []
        names: list[str] = []
        for cutoff, before, after in self._label_windows(events, rng):
            if before.empty or after.empty:
                continue
            cutoffs.append(cutoff)
            matrix, sources = self._fit_sources(before, catalogue)
            label_users = np.unique(after[USER_ID].to_numpy(dtype=np.int64))
            if self.ranker_max_users is not None and len(label_users) > self.ranker_max_users:
                label_users = np.sort(rng.choice(label_users, self.ranker_max_users, replace=False))
            provider = None
            if self.use_features:
                provider = feature_provider or library_feature_provider(
                    before, users, items, end=cutoff
                )
            labels = after.groupby([USER_ID, ITEM_ID], sort=False)[RATING].max()
            for start in range(0, len(label_users), USER_CHUNK):
                chunk = label_users[start : start + USER_CHUNK]
                block = retrieve_block(sources, matrix, chunk, self.n_candidates)
                X, names = self._features(block, chunk, matrix, provider, cutoff)
                pairs = pd.DataFrame(
                    {
                        USER_ID: chunk[block.rows],
                        ITEM_ID: matrix.item_ids[block.item_columns],
                    }
                )
                rating = labels.reindex(pd.MultiIndex.from_frame(pairs))
                y = np.zeros(len(pairs), dtype=np.int32)
                hit = rating.notna().to_numpy()
                y[hit] = relevance_labels(rating[hit], self.label_scheme, self.relevance_threshold)
                has_positive = pd.Series(y > 0).groupby(pairs[USER_ID].to_numpy()).transform("any")
                keep = has_positive.to_numpy()
                pairs = pairs[keep].assign(**{LABEL: y[keep], "cutoff": cutoff})
                pair_frames.append(pairs)
                X_parts.append(X[keep])
                y_parts.append(y[keep])
                group_parts.append(group_sizes(pairs[USER_ID].to_numpy()))
        if not pair_frames or sum(len(p) for p in pair_frames) == 0:
            return RankerTrainingSet(
                pairs=pd.DataFrame(columns=[USER_ID, ITEM_ID, LABEL]),
                X=np.empty((0, len(names)), dtype=np.float32),
                y=np.empty(0, dtype=np.int32),
                group_sizes=np.empty(0, dtype=np.int64),
                feature_names=names,
                cutoffs=cutoffs,
            )
        return RankerTrainingSet(
            pairs=pd.concat(pair_frames, ignore_index=True),
            X=np.vstack(X_parts),
            y=np.concatenate(y_parts),
            group_sizes=np.concatenate(group_parts),
            feature_names=names,
            cutoffs=cutoffs,
        )

    def fit(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
        feature_provider: FeatureProvider | None = None,
    ) -> Self:
        """Train the ranker on past label windows, then fit every source on all ``events``.

        Args:
            events: canonical events (``user_id, item_id, rating, timestamp``).
            users: optional user side information (demographics).
            items: optional item side information (genres, release date); its ids also
                extend the catalogue.
            feature_provider: point-in-time provider for the ranker's training features
                (e.g. Feast offline); default: built in memory from the library functions.
        """
        started = time.perf_counter()
        self._check_params()
        for attr in ("user_columns_", "item_columns_"):
            if hasattr(self, attr):
                delattr(self, attr)
        events = _validate_events(events)
        users, items = _side_frames(events, users, items)
        self.ranker_: Ranker | None = None
        self.feature_names_: list[str] = []
        # One point-in-time feature build over all events serves every label window and
        # the serving snapshot: a row stamped D only uses events before D, so querying it
        # as of a window's cutoff equals building it from the pre-cutoff events alone.
        as_of = feature_snapshot_end(events)
        library = (
            library_feature_provider(events, users, items, end=as_of) if self.use_features else None
        )
        if self.ranker != RRF:
            train = self.training_set(events, users, items, feature_provider or library)
            self.ranker_cutoffs_ = train.cutoffs
            self.n_ranker_groups_ = len(train.group_sizes)
            self.n_ranker_rows_ = len(train.y)
            if self.n_ranker_groups_ > 0:
                ranker = make_ranker(self.ranker, self.random_state, self.ranker_params or {})
                categorical = [c for c in CATEGORICAL_FEATURES if c in train.feature_names]
                ranker.fit(train.X, train.y, train.group_sizes, train.feature_names, categorical)
                self.ranker_ = ranker
                self.feature_names_ = train.feature_names
            else:
                logger.warning(
                    "no label window with positives (events too few or too short in time); "
                    "ranking by reciprocal-rank fusion of the sources instead"
                )
        catalogue = items[ITEM_ID].to_numpy(dtype=np.int64)
        self.interactions_, self.sources_ = self._fit_sources(events, catalogue)
        self.trained_until_ = pd.Timestamp(events[TIMESTAMP].max())
        self.feature_provider_: FeatureProvider | None = None
        if library is not None and self.ranker_ is not None:
            full = library
            user_ids = np.union1d(self.interactions_.user_ids, users[USER_ID].to_numpy())
            self.feature_provider_ = SnapshotFeatureProvider(
                full.user_features(list(map(int, user_ids)), as_of),
                full.item_features(list(map(int, self.interactions_.item_ids)), as_of),
            )
        self.fit_seconds_ = time.perf_counter() - started
        return self

    # ------------------------------------------------------------------------ serving
    def _check_fitted(self) -> None:
        if not hasattr(self, "sources_"):
            raise NotFittedError("Recommender is not fitted; call fit(events) first.")

    def candidates(
        self, user_ids: Iterable[int], n: int | None = None, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Stage 1 alone: union of every source's top ``n`` (default ``n_candidates``).

        Returns ``user_id, item_id`` and ``<source>_score``, ``<source>_rank`` per source.
        """
        self._check_fitted()
        ids = _unique_ids(user_ids)
        return retrieve(
            self.sources_, self.interactions_, ids, n or self.n_candidates, exclude_seen
        )

    def rank(
        self,
        candidates: pd.DataFrame,
        feature_provider: FeatureProvider | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Stage 2 alone: score a candidate frame (as :meth:`candidates` returns).

        Returns the candidates with ``score`` and per-user ``rank`` (1 = best), sorted.
        """
        self._check_fitted()
        frame = candidates.sort_values(USER_ID, kind="stable", ignore_index=True)
        user_ids = _unique_ids(frame[USER_ID])
        rows = np.searchsorted(user_ids, frame[USER_ID].to_numpy(dtype=np.int64))
        cols = self.interactions_.item_columns(frame[ITEM_ID].to_numpy(dtype=np.int64))
        if (cols < 0).any():
            raise ValidationError(
                "candidates contain items outside the fitted catalogue; generate them with "
                "Recommender.candidates()."
            )
        source_names = [n for s in self.sources_ for n in (f"{s}_{SCORE}", f"{s}_{RANK}")]
        block = RetrievedBlock(
            rows=rows,
            item_columns=cols,
            features=to_float_matrix(frame, source_names),
            feature_names=source_names,
        )
        scores = self._score(block, user_ids, feature_provider, as_of)
        out = frame.assign(**{SCORE: scores})
        out = out.sort_values([USER_ID, SCORE], ascending=[True, False], kind="stable")
        out[RANK] = out.groupby(USER_ID, sort=False).cumcount() + 1
        return out.reset_index(drop=True)

    def _score(
        self,
        block: RetrievedBlock,
        user_ids: np.ndarray,
        feature_provider: FeatureProvider | None,
        as_of: pd.Timestamp | None,
    ) -> np.ndarray:
        if self.ranker_ is None:
            ranks = block.features[:, 1::2]
            return np.nansum(1.0 / (RRF_K + ranks), axis=1)
        provider = feature_provider or self.feature_provider_
        if not self.use_features:
            provider = None
        when = as_of if as_of is not None else self.trained_until_
        X, names = self._features(block, user_ids, self.interactions_, provider, when)
        if names != self.feature_names_:
            raise ValidationError(
                "the features at recommend time differ from those the ranker was trained on; "
                "pass a feature provider serving the same feature service."
            )
        return self.ranker_.predict(X)

    def recommend(
        self,
        user_ids: Iterable[int],
        k: int = 10,
        exclude_seen: bool = True,
        feature_provider: FeatureProvider | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Top ``k`` items per user: ``user_id, item_id, score, rank`` (rank 1..k).

        Unknown users get a non-personalised list (popularity candidates, ranked); a ``k``
        larger than the catalogue returns every eligible item. ``feature_provider`` replaces
        the model's own feature snapshot (e.g. the Feast online store).
        """
        self._check_fitted()
        if k < 1:
            raise ValidationError(f"k={k} must be at least 1.")
        ids = _unique_ids(user_ids, keep_order=True)
        n = max(self.n_candidates, k)
        frames = []
        for start in range(0, len(ids), USER_CHUNK):
            chunk = ids[start : start + USER_CHUNK]
            block = retrieve_block(self.sources_, self.interactions_, chunk, n, exclude_seen)
            if len(block.rows) == 0:
                continue
            scores = self._score(block, chunk, feature_provider, as_of)
            order = np.lexsort((-scores, block.rows))
            rows = block.rows[order]
            starts = np.searchsorted(rows, rows, side="left")
            position = np.arange(len(rows)) - starts
            top = order[position < k]
            frames.append(
                pd.DataFrame(
                    {
                        USER_ID: chunk[block.rows[top]],
                        ITEM_ID: self.interactions_.item_ids[block.item_columns[top]],
                        SCORE: scores[top].astype(np.float64),
                        RANK: (position[position < k] + 1).astype(np.int64),
                    }
                )
            )
        if not frames:
            return pd.DataFrame(
                {
                    USER_ID: pd.Series(dtype="int64"),
                    ITEM_ID: pd.Series(dtype="int64"),
                    SCORE: pd.Series(dtype="float64"),
                    RANK: pd.Series(dtype="int64"),
                }
            )
        return pd.concat(frames, ignore_index=True)

    def popular_items(self, k: int = 10) -> pd.DataFrame:
        """The recency-weighted most popular items (a fallback needing no features)."""
        self._check_fitted()
        pop = make_source("popularity", half_life_days=self.popularity_half_life_days)
        pop.fit(self.interactions_)
        scores = pop.item_scores_
        order = np.argsort(-scores, kind="stable")[:k]
        return pd.DataFrame(
            {
                ITEM_ID: self.interactions_.item_ids[order],
                SCORE: scores[order].astype(np.float64),
                RANK: np.arange(1, len(order) + 1),
            }
        )

    def seen_items(self, user_id: int) -> np.ndarray:
        """Items the user interacted with in the training events (empty if unknown)."""
        self._check_fitted()
        row = self.interactions_.user_rows([user_id])[0]
        if row < 0:
            return np.empty(0, dtype=np.int64)
        seen = self.interactions_.seen
        return self.interactions_.item_ids[seen.indices[seen.indptr[row] : seen.indptr[row + 1]]]

    @property
    def feature_importances_(self) -> pd.Series:
        """Ranker feature importance (gain), when the ranker exposes it."""
        self._check_fitted()
        importances = getattr(self.ranker_, "feature_importances_", None)
        if importances is None:
            raise AttributeError("this ranker exposes no feature importances")
        return importances


def _unique_ids(user_ids: Iterable[int], keep_order: bool = False) -> np.ndarray:
    values = np.asarray(
        list(user_ids) if not isinstance(user_ids, np.ndarray | pd.Series) else user_ids
    )
    values = values.astype(np.int64)
    if keep_order:
        return np.asarray(pd.unique(values), dtype=np.int64)
    return np.unique(values)


def sources_of(model: Recommender) -> Mapping[str, CandidateSource]:
    """The fitted retrieval sources of ``model`` (for per-source evaluation)."""
    model._check_fitted()
    return model.sources_
