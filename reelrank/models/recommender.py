"""The one recommender API: retrieval (several sources) then a learned ranker.

``Recommender().fit(events)`` works on any canonical events frame; ``users``/``items`` add
side information (demographics, genres) through the library feature builders. The fitted
object is what the pipeline trains, MLflow stores and the service loads (it pickles; it holds
numpy arrays, a LightGBM booster, a small latest-value feature snapshot and the catalogue).

Composition, in scikit-learn's style: ``sources`` is a list of ``(name, source)`` steps and
``ranker`` an estimator (or a registered name), so nested hyperparameters work with
``get_params``/``set_params``/``clone`` (``sources__ease__l2``, ``ranker__n_estimators``)
and a new source or ranker is one class plus a registration, no edit here.
``random_state`` seeds every random choice: sampling, and every source or ranker parameter
ending in ``random_state`` that is left ``None``.

How ``fit`` trains the ranker without leakage: :mod:`reelrank.models.training_set`; then
every source is refitted on all events for serving. The ranker's columns are fixed by the
fitted :class:`~reelrank.models.layout.FeatureLayout` (``layout_``), which serving asks for.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from reelrank.exceptions import NotFittedError, ValidationError
from reelrank.features.columns import CATEGORICAL_FEATURES, CROSS_FEATURES
from reelrank.features.protocol import FeatureProvider
from reelrank.models.catalogue import Catalogue
from reelrank.models.interactions import USER_CHUNK, InteractionMatrix
from reelrank.models.layout import FeatureLayout
from reelrank.models.rankers import ReciprocalRankFusion
from reelrank.models.ranking import (
    Ranker,
    make_ranker,
    numeric_columns,
    to_float_matrix,
    uses_features,
)
from reelrank.models.reranking import RerankConfig, rerank
from reelrank.models.retrieval import (
    CandidateSource,
    RetrievedBlock,
    make_source,
    retrieve,
    retrieve_block,
    score_pairs,
)
from reelrank.models.training_set import (
    CUTOFF,
    GROUP,
    LABEL,
    SLATE_ID,
    LabelWindow,
    RankerTrainingSet,
    SlateWindow,
    best_ratings,
    feature_snapshot_end,
    keep_groups_with_positives,
    label_windows,
    pair_labels,
    sample_label_users,
    sample_users,
    slate_window,
)
from reelrank.schema import (
    GENRES,
    ITEM_ID,
    RANK,
    RATING,
    RECOMMENDATION_COLUMNS,
    RELEASE_DATE,
    SCORE,
    TIMESTAMP,
    TITLE,
    USER_ID,
)

logger = logging.getLogger(__name__)

SourceSteps = Sequence[tuple[str, CandidateSource]]
SOURCES_PARAM = "sources"


DEFAULT_SOURCES: Final = ("popularity", "ease", "mf")
DEFAULT_SOURCE_PARAMS: Final[dict[str, dict[str, Any]]] = {
    "mf": {"algorithm": "als", "factors": 32, "regularization": 20.0, "alpha": 4.0},
}
"""ALS tuned on ml-100k (32 factors, strong L2, alpha 4: nDCG@10 0.477 on the public
split against 0.386 with 64 factors, L2 0.05, alpha 2); the others keep their class
defaults. Retuning on a new dataset is ``--param sources__mf__factors=...``."""


def default_sources() -> list[tuple[str, CandidateSource]]:
    """Recency-weighted popularity, EASE and ALS matrix factorisation (fresh objects)."""
    return [
        (name, make_source(name, **DEFAULT_SOURCE_PARAMS.get(name, {}))) for name in DEFAULT_SOURCES
    ]


def default_ranker() -> Ranker:
    """LightGBM LambdaRank (see :class:`~reelrank.models.rankers.LGBMRanker`)."""
    return make_ranker("lgbm-lambdarank")


def library_feature_provider(
    events: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, end: pd.Timestamp | None
) -> FeatureProvider:
    """The library's point-in-time features of ``events``: the daily snapshot values as of
    any time, evaluated from cumulative sums (memory grows with active user-days, not with
    the daily tables; :class:`~reelrank.features.point_in_time.PointInTimeFeatures`)."""
    from reelrank.features.point_in_time import PointInTimeFeatures

    return PointInTimeFeatures(events, users, items, end=end)


def seeded(estimator: Any, seed: int | None) -> Any:
    """A clone of ``estimator`` whose unset (``None``) ``*random_state`` params are ``seed``."""
    out = clone(estimator)
    unset = {
        key: seed
        for key, value in out.get_params(deep=True).items()
        if key.split("__")[-1] == "random_state" and value is None
    }
    return out.set_params(**unset) if unset else out


class Recommender(BaseEstimator):
    """Two-stage recommender: candidate sources, then a learning-to-rank model.

    Args:
        sources: ``(name, source)`` steps (names become feature names, ``<name>_score``);
            ``None``: :func:`default_sources`, built fresh for this instance.
        n_candidates: top items taken from each source (the union goes to the ranker).
        ranker: a ranker estimator or a registered name (``lgbm-lambdarank``,
            ``lgbm-binary``, ``sklearn-logreg``, ``scratch-logreg``, ``scratch-mlp``,
            ``rrf``: no learning); ``None``: LightGBM LambdaRank, built fresh.
        ranker_label_fraction: share of the most recent events used as labels per window.
        ranker_windows: number of stacked label windows (more training groups).
        ranker_max_users: cap on label users per window (sampled with ``random_state``).
        ranker_sample_users: the label windows are cut from the whole histories of at most
            this many users, drawn with ``random_state`` when ``events`` has more (at scale
            the six windows' source fits would dominate training); the sources that serve
            are still fitted on every event. ``None``: every user.
        ranker_holdout: how label windows are cut: ``mixed`` (the default: both kinds
            below, so the ranker learns what a user watches next *and* what else fits their
            taste), ``time`` (the newest events only: "what next") or ``random`` (a random
            share of events only: "what else", as random-split protocols ask); see
            :mod:`reelrank.models.training_set` for why the default mixes them.
        ranker_random_windows / ranker_random_fraction: the random windows of ``mixed`` and
            the share of events each holds out.
        feedback_days: with ``fit(slates=...)``: the served slates of this many days before
            the end of the events are query groups of their own, labelled by what users did
            with what they were shown (:func:`~reelrank.models.training_set.slate_window`).
        feedback_half_life_days / feedback_weight: a slate group of age ``a`` days counts
            ``round(feedback_weight * 0.5 ** (a / feedback_half_life_days))`` times (0
            weight: slates unused).
        label_scheme: ``graded`` (1 seen, 2 rated >= ``relevance_threshold``) or ``binary``.
        relevance_threshold: rating from which an interaction counts as a strong positive.
        use_features: use the user/item/cross features of the feature provider (else the
            ranker sees retrieval scores and history length only).
        random_state: seed for every random choice (see the module docstring).
    """

    def __init__(
        self,
        sources: SourceSteps | None = None,
        n_candidates: int = 100,
        ranker: Ranker | str | None = None,
        ranker_label_fraction: float = 0.07,
        ranker_windows: int = 6,
        ranker_max_users: int | None = 1500,
        ranker_sample_users: int | None = 20_000,
        ranker_holdout: str = "mixed",
        ranker_random_windows: int = 2,
        ranker_random_fraction: float = 0.1,
        feedback_days: float = 7.0,
        feedback_half_life_days: float = 2.0,
        feedback_weight: float = 8.0,
        label_scheme: str = "graded",
        relevance_threshold: float = 4.0,
        use_features: bool = True,
        random_state: int | None = 0,
    ) -> None:
        # None builds fresh defaults per instance: set_params must never edit a shared object.
        self.sources = default_sources() if sources is None else sources
        self.n_candidates = n_candidates
        self.ranker = default_ranker() if ranker is None else ranker
        self.ranker_label_fraction = ranker_label_fraction
        self.ranker_windows = ranker_windows
        self.ranker_max_users = ranker_max_users
        self.ranker_sample_users = ranker_sample_users
        self.ranker_holdout = ranker_holdout
        self.ranker_random_windows = ranker_random_windows
        self.ranker_random_fraction = ranker_random_fraction
        self.feedback_days = feedback_days
        self.feedback_half_life_days = feedback_half_life_days
        self.feedback_weight = feedback_weight
        self.label_scheme = label_scheme
        self.relevance_threshold = relevance_threshold
        self.use_features = use_features
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, giving a model saved before a parameter existed that parameter's
        default: a registry's champion must still load, clone and refit after an upgrade
        (the gate refits the champion from its hyperparameters with today's code)."""
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        super().__setstate__({**defaults, **state})

    # ------------------------------------------------------------- nested parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters; with ``deep``, also ``sources__<name>``, ``sources__<name>__<p>`` and
        ``ranker__<p>``, as scikit-learn's ``Pipeline`` names its steps' parameters."""
        params = super().get_params(deep=deep)
        if deep:
            for name, source in self.sources:
                params[f"{SOURCES_PARAM}__{name}"] = source
                for key, value in source.get_params(deep=True).items():
                    params[f"{SOURCES_PARAM}__{name}__{key}"] = value
        return params

    def set_params(self, **params: Any) -> Self:
        """Set parameters, including ``sources__<name>[__<p>]`` (see :meth:`get_params`)."""
        prefix = f"{SOURCES_PARAM}__"
        nested = {k: params.pop(k) for k in list(params) if k.startswith(prefix)}
        super().set_params(**params)
        if nested:
            steps = dict(self.sources)
            for key, value in nested.items():
                name, _, rest = key.removeprefix(prefix).partition("__")
                if name not in steps:
                    raise ValidationError(
                        f"{key}: no source named {name!r}; sources are {', '.join(steps)}."
                    )
                if rest:
                    steps[name].set_params(**{rest: value})
                else:
                    steps[name] = value
            self.sources = list(steps.items())
        return self

    # ------------------------------------------------------------------ building blocks
    def _check_params(self) -> None:
        if not 0.0 < self.ranker_label_fraction < 0.5:
            raise ValidationError(
                f"ranker_label_fraction={self.ranker_label_fraction} must be in (0, 0.5)."
            )
        if self.ranker_sample_users is not None and self.ranker_sample_users < 1:
            raise ValidationError(
                f"ranker_sample_users={self.ranker_sample_users} must be at least 1 (or None)."
            )
        if self.ranker_windows < 1:
            raise ValidationError(f"ranker_windows={self.ranker_windows} must be at least 1.")
        if self.n_candidates < 1:
            raise ValidationError(f"n_candidates={self.n_candidates} must be at least 1.")
        if not 0.0 < self.ranker_random_fraction < 0.5:
            raise ValidationError(
                f"ranker_random_fraction={self.ranker_random_fraction} must be in (0, 0.5)."
            )
        for name in ("feedback_days", "feedback_half_life_days"):
            if not getattr(self, name) > 0:
                raise ValidationError(f"{name}={getattr(self, name)} must be positive.")
        if not self.feedback_weight >= 0:
            raise ValidationError(
                f"feedback_weight={self.feedback_weight} must be at least 0 (0: slates unused)."
            )
        if self.ranker_random_windows < 0:
            raise ValidationError(
                f"ranker_random_windows={self.ranker_random_windows} must be at least 0."
            )
        names = [name for name, _ in self.sources]
        if not names:
            raise ValidationError("sources is empty; give at least one retrieval source.")
        if len(set(names)) != len(names):
            raise ValidationError(f"source names must be unique, got {names}.")

    def _new_ranker(self) -> Ranker:
        ranker = make_ranker(self.ranker) if isinstance(self.ranker, str) else self.ranker
        return seeded(ranker, self.random_state)

    def _fit_sources(
        self, events: pd.DataFrame, catalogue: np.ndarray | None
    ) -> tuple[InteractionMatrix, dict[str, CandidateSource]]:
        matrix = InteractionMatrix.from_events(events, catalogue=catalogue)
        sources = {name: seeded(source, self.random_state) for name, source in self.sources}
        for source in sources.values():
            source.fit(matrix)
        return matrix, sources

    def _layout(self, provider: FeatureProvider | None, as_of: pd.Timestamp) -> FeatureLayout:
        """The columns the ranker will read: the provider's numeric user and item features
        (asked with no ids, for the columns only) and the cross features."""
        names = tuple(name for name, _ in self.sources)
        if provider is None:
            return FeatureLayout(names)
        user = numeric_columns(provider.user_features([], as_of))
        item = numeric_columns(provider.item_features([], as_of))
        return FeatureLayout(names, tuple(user), tuple(item), CROSS_FEATURES)

    # ------------------------------------------------------------------------ training
    def training_set(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
        feature_provider: FeatureProvider | None = None,
        layout: FeatureLayout | None = None,
        slates: pd.DataFrame | None = None,
    ) -> RankerTrainingSet:
        """Build the ranker's training data from ``events`` (:mod:`.training_set`).

        ``feature_provider``, when given, is queried as of each cutoff (point-in-time, e.g.
        Feast historical retrieval); by default the library provider is built, per window,
        from the events before that window's cutoff only. ``layout``: the columns (default:
        the ones the provider implies). ``slates``: the served slates (one row per shown
        item, :data:`~reelrank.models.training_set.SLATE_COLUMNS`), for the slate window.
        """
        self._check_params()
        events = sample_users(_validate_events(events), self.ranker_sample_users, self.random_state)
        users, items = _side_frames(events, users, items)
        catalogue = items[ITEM_ID].to_numpy(dtype=np.int64)
        rng = np.random.default_rng(self.random_state)
        parts: list[tuple[pd.DataFrame, np.ndarray]] = []
        cutoffs: list[pd.Timestamp] = []
        windows = label_windows(
            events,
            self.ranker_holdout,
            self.ranker_label_fraction,
            self.ranker_windows,
            rng,
            self.ranker_random_windows,
            self.ranker_random_fraction,
        )
        for window in windows:
            if window.history.empty or window.labels.empty:
                continue
            cutoffs.append(window.cutoff)
            provider = self._window_provider(feature_provider, window, users, items)
            layout = layout or self._layout(provider, window.cutoff)
            parts += self._window_parts(window, catalogue, rng, provider, layout)
        slots = self._slate_window(slates, events)
        if slots is not None:
            cutoffs.append(slots.cutoff)
            provider = self._slate_provider(feature_provider, events, users, items)
            layout = layout or self._layout(provider, slots.cutoff)
            parts += self._slate_parts(slots, catalogue, provider, layout)
        names = list(layout.names) if layout is not None else []
        return RankerTrainingSet.concat(parts, names, cutoffs)

    def _slate_window(
        self, slates: pd.DataFrame | None, events: pd.DataFrame
    ) -> SlateWindow | None:
        if slates is None or self.feedback_weight == 0:
            return None
        return slate_window(
            slates,
            events,
            self.feedback_days,
            self.feedback_half_life_days,
            self.feedback_weight,
            self.label_scheme,
            self.relevance_threshold,
        )

    def _slate_provider(
        self,
        feature_provider: FeatureProvider | None,
        events: pd.DataFrame,
        users: pd.DataFrame,
        items: pd.DataFrame,
    ) -> FeatureProvider | None:
        """The slate window's features: the given point-in-time provider, or the library's
        over every event; either is asked as of each slate's day, so it knows only what
        happened before that day."""
        if not self.use_features:
            return None
        if feature_provider is not None:
            return feature_provider
        return library_feature_provider(events, users, items, feature_snapshot_end(events))

    def _slate_parts(
        self,
        window: SlateWindow,
        catalogue: np.ndarray,
        provider: FeatureProvider | None,
        layout: FeatureLayout,
    ) -> list[tuple[pd.DataFrame, np.ndarray]]:
        """The slate window's groups: per day, the shown items of each slate scored by the
        sources fitted before the window and featured as of that day, each group repeated
        as its recency says (distinct group ids, so repeats stay separate groups)."""
        matrix, sources = self._fit_sources(window.history, catalogue)
        slots = window.slots
        parts: list[tuple[pd.DataFrame, np.ndarray]] = []
        slate_codes = pd.factorize(slots[SLATE_ID])[0].astype(np.int64)
        most = int(slots["repeats"].max())
        for day, chunk in _slate_chunks(slots):
            index = chunk.index.to_numpy()
            users, rows = np.unique(chunk[USER_ID].to_numpy(dtype=np.int64), return_inverse=True)
            cols = matrix.item_columns(chunk[ITEM_ID].to_numpy(dtype=np.int64))
            known = cols >= 0  # an item outside the catalogue cannot be scored
            index, rows, cols = index[known], rows[known], cols[known]
            block = score_pairs(sources, matrix, users, rows, cols)
            X = feature_matrix(layout, block, users, matrix, provider, day)
            pairs = pd.DataFrame(
                {
                    USER_ID: users[rows],
                    ITEM_ID: matrix.item_ids[cols],
                    LABEL: slots[LABEL].to_numpy()[index],
                    CUTOFF: day,
                }
            )
            codes, repeats = slate_codes[index], slots["repeats"].to_numpy()[index]
            for copy_number in range(most):
                take = np.flatnonzero(repeats > copy_number)
                if len(take):
                    group = codes[take] * most + copy_number
                    parts.append((pairs.iloc[take].assign(**{GROUP: group}), X[take]))
        return parts

    def _window_provider(
        self,
        feature_provider: FeatureProvider | None,
        window: LabelWindow,
        users: pd.DataFrame,
        items: pd.DataFrame,
    ) -> FeatureProvider | None:
        """Where a window's features come from: none, the given provider (queried as of the
        cutoff), or the library's tables built from the window's history alone (always for
        a randomly held-out window: any other provider knows its labels)."""
        if not self.use_features:
            return None
        if feature_provider is not None and not window.held_out:
            return feature_provider
        return library_feature_provider(window.history, users, items, window.cutoff)

    def _window_parts(
        self,
        window: LabelWindow,
        catalogue: np.ndarray,
        rng: np.random.Generator,
        provider: FeatureProvider | None,
        layout: FeatureLayout,
    ) -> list[tuple[pd.DataFrame, np.ndarray]]:
        """One window's labelled candidate chunks (users with a positive only)."""
        matrix, sources = self._fit_sources(window.history, catalogue)
        label_users = sample_label_users(window.labels, self.ranker_max_users, rng)
        ratings = best_ratings(window.labels)
        parts = []
        for start in range(0, len(label_users), USER_CHUNK):
            chunk = label_users[start : start + USER_CHUNK]
            block = retrieve_block(sources, matrix, chunk, self.n_candidates)
            X = feature_matrix(layout, block, chunk, matrix, provider, window.cutoff)
            pairs = pd.DataFrame(
                {USER_ID: chunk[block.rows], ITEM_ID: matrix.item_ids[block.item_columns]}
            )
            y = pair_labels(pairs, ratings, self.label_scheme, self.relevance_threshold)
            parts.append(keep_groups_with_positives(pairs, y, X, window.cutoff))
        return parts

    def fit(
        self,
        events: pd.DataFrame,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
        feature_provider: FeatureProvider | None = None,
        slates: pd.DataFrame | None = None,
    ) -> Self:
        """Train the ranker on past label windows, then fit every source on all ``events``.

        Args:
            events: canonical events (``user_id, item_id, rating, timestamp``).
            users: optional user side information (demographics).
            items: optional item side information (genres, release date); its ids also
                extend the catalogue.
            feature_provider: point-in-time provider for the ranker's training features
                (e.g. Feast offline); default: built in memory from the library functions.
            slates: the service's served slates, one row per shown item
                (:data:`~reelrank.models.training_set.SLATE_COLUMNS`, e.g.
                :func:`reelrank.loop.feedback.read_slates`): the slate window's groups.
                Only slates shown up to the last event count, labelled by ``events`` alone,
                so a fold's fit cannot learn from its future.
        """
        started = time.perf_counter()
        self._check_params()
        events = _validate_events(events)
        users, items = _side_frames(events, users, items)
        ranker = self._new_ranker()
        reads_features = self.use_features and uses_features(ranker)
        # One point-in-time feature build over all events serves every label window and
        # the serving snapshot: a row stamped D only uses events before D, so querying it
        # as of a window's cutoff equals building it from the pre-cutoff events alone.
        as_of = feature_snapshot_end(events)
        library = library_feature_provider(events, users, items, as_of) if reads_features else None
        provider = (feature_provider or library) if reads_features else None
        layout = self._layout(provider, as_of)
        self.layout_, self.ranker_ = self._fit_ranker(
            ranker, layout, events, users, items, provider, slates
        )
        catalogue = items[ITEM_ID].to_numpy(dtype=np.int64)
        self.interactions_, self.sources_ = self._fit_sources(events, catalogue)
        self.catalogue_ = Catalogue.from_items(
            items, self.interactions_.item_ids, np.diff(self.interactions_.seen.tocsc().indptr)
        )
        self.trained_until_ = pd.Timestamp(events[TIMESTAMP].max())
        self.feature_provider_ = self._snapshot(library, users, as_of)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _fit_ranker(
        self,
        ranker: Ranker,
        layout: FeatureLayout,
        events: pd.DataFrame,
        users: pd.DataFrame,
        items: pd.DataFrame,
        provider: FeatureProvider | None,
        slates: pd.DataFrame | None = None,
    ) -> tuple[FeatureLayout, Ranker]:
        """The fitted layout and ranker; rank fusion when no window has a positive."""
        self.ranker_train_ndcg_ = float("nan")
        self.n_slate_groups_ = 0
        if isinstance(ranker, ReciprocalRankFusion):
            self.ranker_cutoffs_, self.n_ranker_groups_, self.n_ranker_rows_ = [], 0, 0
        else:
            train = self.training_set(events, users, items, provider, layout=layout, slates=slates)
            self.ranker_cutoffs_ = train.cutoffs
            self.n_ranker_groups_, self.n_ranker_rows_ = train.n_groups, len(train.y)
            if GROUP in train.pairs.columns:  # the slate window's groups, repeats included
                self.n_slate_groups_ = int(train.pairs[GROUP].nunique())
            if train.n_groups > 0:
                categorical = [c for c in CATEGORICAL_FEATURES if c in layout.names]
                ranker.fit(train.X, train.y, train.group_sizes, list(layout.names), categorical)
                self.ranker_train_ndcg_ = _training_ndcg(ranker, train)
                return layout, ranker
            logger.warning(
                "no label window with positives (events too few or too short in time); "
                "ranking by reciprocal-rank fusion of the sources instead"
            )
        retrieval_only = FeatureLayout(layout.sources)
        fusion = ReciprocalRankFusion()
        fusion.fit(
            np.empty((0, retrieval_only.width)),
            np.empty(0),
            np.empty(0),
            list(retrieval_only.names),
        )
        return retrieval_only, fusion

    def _snapshot(
        self, library: FeatureProvider | None, users: pd.DataFrame, as_of: pd.Timestamp
    ) -> FeatureProvider | None:
        """The latest feature values of every known user and item (the degraded fallback)."""
        from reelrank.features import SnapshotFeatureProvider

        if library is None or not self.layout_.uses_features:
            return None
        user_ids = np.union1d(self.interactions_.user_ids, users[USER_ID].to_numpy())
        return SnapshotFeatureProvider(
            library.user_features(list(map(int, user_ids)), as_of),
            library.item_features(list(map(int, self.interactions_.item_ids)), as_of),
        )

    def with_ranker(self, ranker: Ranker) -> Self:
        """A copy of this fitted model that ranks with ``ranker`` (fitted on this model's
        layout, e.g. by a regularisation sweep); sources and features are shared."""
        self._check_fitted()
        variant = copy.copy(self)
        variant.ranker_ = ranker
        return variant

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
        names = list(self.layout_.retrieval_names)
        block = RetrievedBlock(rows, cols, to_float_matrix(frame, names), names)
        scores = self.score_block(block, user_ids, feature_provider, as_of)
        out = frame.assign(**{SCORE: scores})
        out = out.sort_values([USER_ID, SCORE], ascending=[True, False], kind="stable")
        out[RANK] = out.groupby(USER_ID, sort=False).cumcount() + 1
        return out.reset_index(drop=True)

    def score_block(
        self,
        block: RetrievedBlock,
        user_ids: np.ndarray,
        feature_provider: FeatureProvider | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> np.ndarray:
        """The ranker's scores of a retrieved block (``feature_provider`` replaces the
        model's own snapshot, e.g. the Feast online store)."""
        provider = (
            (feature_provider or self.feature_provider_) if self.layout_.uses_features else None
        )
        when = as_of if as_of is not None else self.trained_until_
        X = feature_matrix(self.layout_, block, user_ids, self.interactions_, provider, when)
        return np.asarray(self.ranker_.predict(X), dtype=np.float64)

    def recommend(
        self,
        user_ids: Iterable[int],
        k: int = 10,
        exclude_seen: bool = True,
        feature_provider: FeatureProvider | None = None,
        as_of: pd.Timestamp | None = None,
        rerank: RerankConfig | None = None,
        now: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Top ``k`` items per user: ``user_id, item_id, score, rank`` (rank 1..k).

        Unknown users get a non-personalised list (popularity candidates, ranked); a ``k``
        larger than the catalogue returns every eligible item. ``feature_provider`` replaces
        the model's own feature snapshot (e.g. the Feast online store). ``rerank``: the
        third stage (:mod:`reelrank.models.reranking`) as of ``now``, its clock for the
        release filter and the titles' ages (default: ``as_of``, else the end of
        training; ``batch-recommend`` passes its run's time, as the service re-ranks
        at request time);
        ``None`` keeps the ranker's order.
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
            scores = self.score_block(block, chunk, feature_provider, as_of)
            if rerank is None:
                frames.append(self._top_k(block, chunk, scores, k))
            else:
                clock = now if now is not None else as_of
                clock = clock if clock is not None else self.trained_until_
                frames.append(self._reranked(block, chunk, scores, k, rerank, clock))
        if not frames:
            return _empty_recommendations()
        return pd.concat(frames, ignore_index=True)

    def _top_k(
        self, block: RetrievedBlock, user_ids: np.ndarray, scores: np.ndarray, k: int
    ) -> pd.DataFrame:
        order = np.lexsort((-scores, block.rows))
        rows = block.rows[order]
        starts = np.searchsorted(rows, rows, side="left")
        position = np.arange(len(rows)) - starts
        top = order[position < k]
        return pd.DataFrame(
            {
                USER_ID: user_ids[block.rows[top]],
                ITEM_ID: self.interactions_.item_ids[block.item_columns[top]],
                SCORE: scores[top].astype(np.float64),
                RANK: (position[position < k] + 1).astype(np.int64),
            }
        )

    def _reranked(
        self,
        block: RetrievedBlock,
        user_ids: np.ndarray,
        scores: np.ndarray,
        k: int,
        config: RerankConfig,
        now: pd.Timestamp,
    ) -> pd.DataFrame:
        return self._rerank_rows(user_ids[block.rows], block.item_columns, scores, k, config, now)

    def rerank(
        self,
        ranked: pd.DataFrame,
        config: RerankConfig,
        k: int = 10,
        now: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Stage 3 alone: each user's row from scored candidates (as :meth:`rank` returns),
        through the re-ranker as of ``now`` (default: the end of training)."""
        self._check_fitted()
        frame = ranked.sort_values(USER_ID, kind="stable", ignore_index=True)
        columns = self.interactions_.item_columns(frame[ITEM_ID].to_numpy(dtype=np.int64))
        users = frame[USER_ID].to_numpy(dtype=np.int64)
        scores = frame[SCORE].to_numpy(dtype=np.float64)
        return self._rerank_rows(users, columns, scores, k, config, now or self.trained_until_)

    def _rerank_rows(
        self,
        users: np.ndarray,
        columns: np.ndarray,
        scores: np.ndarray,
        k: int,
        config: RerankConfig,
        now: pd.Timestamp,
    ) -> pd.DataFrame:
        """Rows grouped by user (``users`` sorted) through the re-ranker, one user at a time
        (maximal marginal relevance is sequential)."""
        now_seconds = (pd.Timestamp(now) - pd.Timestamp(0, tz="UTC")).total_seconds()
        bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True]) if len(users) else ()
        item_ids = self.interactions_.item_ids
        attributes = self.catalogue_.attributes
        frames = []
        for lo, hi in itertools.pairwise(bounds):
            picks = rerank(
                scores[lo:hi], columns[lo:hi], item_ids, attributes, config, k, now_seconds
            )
            frames.append(
                pd.DataFrame(
                    {
                        USER_ID: np.full(len(picks), users[lo], dtype=np.int64),
                        ITEM_ID: item_ids[columns[lo:hi][picks]],
                        SCORE: scores[lo:hi][picks].astype(np.float64),
                        RANK: np.arange(1, len(picks) + 1, dtype=np.int64),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True) if frames else _empty_recommendations()

    def popular_items(self, k: int = 10) -> pd.DataFrame:
        """The recency-weighted most popular items (a fallback needing no features): the
        model's popularity source when it has one, else a default one."""
        self._check_fitted()
        source = next(
            (s for s in self.sources_.values() if s.name == "popularity"), None
        ) or make_source("popularity").fit(self.interactions_)
        scores = np.asarray(source.scores_for_rows(np.zeros(1, np.int64), exclude_seen=False))[0]
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

    def feature_importances(self) -> pd.Series | None:
        """The ranker's feature importances (gain) when it exposes them, else ``None``."""
        self._check_fitted()
        importances: pd.Series | None = getattr(self.ranker_, "feature_importances_", None)
        return importances


def _slate_chunks(slots: pd.DataFrame) -> Iterable[tuple[pd.Timestamp, pd.DataFrame]]:
    """The slots of each day, at most ``USER_CHUNK`` users at a time (the sources score a
    dense row of the catalogue per user)."""
    for day in pd.DatetimeIndex(slots["day"].unique()).sort_values():
        of_day = slots[slots["day"].eq(day)]
        users = np.unique(of_day[USER_ID].to_numpy(dtype=np.int64))
        for start in range(0, len(users), USER_CHUNK):
            chosen = users[start : start + USER_CHUNK]
            yield day, of_day[of_day[USER_ID].isin(chosen)]


def _training_ndcg(ranker: Ranker, train: RankerTrainingSet) -> float:
    """nDCG@10 of the fitted ranker on its own training groups (its training score)."""
    from reelrank.evaluation.metrics import grouped_ndcg

    return grouped_ndcg(ranker.predict(train.X), train.y, train.group_sizes, k=10)


def feature_matrix(
    layout: FeatureLayout,
    block: RetrievedBlock,
    user_ids: np.ndarray,
    matrix: InteractionMatrix,
    provider: FeatureProvider | None,
    as_of: pd.Timestamp,
) -> np.ndarray:
    """The ranker's matrix of a retrieved block (the same code for training and ``recommend``)."""
    rows_in_matrix = matrix.user_rows(user_ids)
    history = np.diff(matrix.seen.indptr).astype(np.float32)
    history_per_user = np.where(rows_in_matrix >= 0, history[rows_in_matrix], 0.0)
    if not layout.uses_features:
        return layout.assemble(block.features, history_per_user[block.rows])
    if provider is None:
        raise ValidationError("this ranker reads features; pass a feature provider.")
    from reelrank.features import cross_features

    item_cols = np.unique(block.item_columns)
    user_frame = provider.user_features(list(map(int, user_ids)), as_of)
    item_frame = provider.item_features(list(map(int, matrix.item_ids[item_cols])), as_of)
    pairs = pd.DataFrame(
        {USER_ID: user_ids[block.rows], ITEM_ID: matrix.item_ids[block.item_columns]}
    )
    cross = cross_features(user_frame, item_frame, pairs)
    return layout.assemble(
        block.features,
        history_per_user[block.rows],
        user=to_float_matrix(user_frame, layout.user_columns)[block.rows],
        item=to_float_matrix(item_frame, layout.item_columns)[
            np.searchsorted(item_cols, block.item_columns)
        ],
        cross=to_float_matrix(cross, layout.cross_columns),
    )


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


def _unique_ids(user_ids: Iterable[int], keep_order: bool = False) -> np.ndarray:
    values = np.asarray(
        list(user_ids) if not isinstance(user_ids, np.ndarray | pd.Series) else user_ids
    )
    values = values.astype(np.int64)
    if keep_order:
        return np.asarray(pd.unique(values), dtype=np.int64)
    return np.unique(values)


def _empty_recommendations() -> pd.DataFrame:
    dtypes = dict(zip(RECOMMENDATION_COLUMNS, ("int64", "int64", "float64", "int64"), strict=True))
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})
