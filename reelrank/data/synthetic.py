"""A seeded synthetic streaming service whose ground truth is kept.

The world has users with latent tastes (over :data:`~reelrank.schema.GENRE_VOCAB`
and over ``n_factors`` latent factors) and side information that is mildly
correlated with those tastes; items with one to three genres, latent factors,
a quality bias, a power-law popularity and a release date (a share of the
catalogue predates the span). The *true preference* of user ``u`` for item
``i`` is a standardised score (mean 0, standard deviation 1 over all pairs)::

    pref(u, i) = (b_u + b_i + genre_weight * taste_u . genres_i
                  + factor_weight * p_u . q_i / sqrt(n_factors) - mean) / sd

Each user is active in a window of whole days inside the span and rates
``n_u`` distinct items, ``n_u`` heavy-tailed (log-normal activity). The items
are drawn *without replacement* with probability proportional to::

    popularity_i * exp(preference_strength * pref(u, i)) * availability(u, i)

where ``availability`` is the share of the user's window during which the item
was already released (zero for items released after the window). This is the
Gumbel-top-k form of successive sampling, done for a block of users at a time
with numpy. Each chosen item gets a timestamp uniform (``time_skew`` = 1) in the
part of the window after its release, and a rating::

    rating = clip(round(rating_intercept + rating_slope * pref + N(0, rating_noise)), 1, 5)

So a user never rates an item twice, never before its release, and never
outside the span; (user, item, timestamp) is unique.

Events are generated per fixed block of users, each block from its own seed,
so the stream is identical for any ``chunk_size``; it is ordered by
``user_id`` then ``timestamp`` (not globally by time). Memory is bounded by
one block (about :data:`BLOCK_CELLS` user-item cells) plus one output chunk.

:class:`GroundTruth` keeps every parameter so later steps can compute any
user's true relevance for any item (oracle rankings, an online simulator).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from reelrank.data import domains
from reelrank.data.io import AtomicBatch
from reelrank.exceptions import DataSourceError, ReelRankError, ValidationError
from reelrank.schema import (
    AGE,
    EARLIEST_TIMESTAMP,
    EVENTS_SCHEMA,
    GENDER,
    GENRE_VOCAB,
    GENRES,
    ITEM_ID,
    OCCUPATION,
    RANK,
    RATING,
    RELEASE_DATE,
    SCORE,
    TIMESTAMP,
    TITLE,
    USER_ID,
    Dataset,
)

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

RATING_MIN: Final = 1.0
RATING_MAX: Final = 5.0
DATASET_NAME: Final = "synthetic"

#: User-item cells scored at once when generating events (bounds memory: ~16 MB per float32 array).
BLOCK_CELLS: Final = 1 << 22
#: Pairs scored at once by :meth:`GroundTruth.relevance`.
PAIR_CHUNK: Final = 1 << 20
DEFAULT_CHUNK_SIZE: Final = 500_000

SECONDS_PER_DAY: Final = 86_400
NS_PER_SECOND: Final = 1_000_000_000
DAYS_PER_YEAR: Final = 365.25

CONFIG_FILE: Final = "config.json"
TRUTH_ARRAYS_FILE: Final = "truth.npz"
TRUTH_META_FILE: Final = "truth.json"
FORMAT_VERSION: Final = 1

# Independent random streams, one per part of the world (SeedSequence([seed, stream, ...])).
_STREAM_USERS: Final = 1
_STREAM_ITEMS: Final = 2
_STREAM_ACTIVITY: Final = 3
_STREAM_EVENTS: Final = 4

# Relative genre frequencies (MovieLens-100K counts), used to give items genres.
_GENRE_FREQUENCY: Final[Mapping[str, float]] = {
    "Action": 251, "Adventure": 135, "Animation": 42, "Children's": 122, "Comedy": 505,
    "Crime": 109, "Documentary": 50, "Drama": 725, "Fantasy": 22, "Film-Noir": 24,
    "Horror": 92, "Musical": 56, "Mystery": 61, "Romance": 247, "Sci-Fi": 101,
    "Thriller": 251, "War": 71, "Western": 27,
}  # fmt: skip
# Population-wide taste per genre (some genres are liked more on average).
_GENRE_MEAN_TASTE: Final[Mapping[str, float]] = {
    "Film-Noir": 0.3, "Documentary": 0.2, "War": 0.2, "Drama": 0.15, "Mystery": 0.1,
    "Horror": -0.3, "Children's": -0.2, "Fantasy": -0.1,
}  # fmt: skip
# Taste shift of men relative to women (half applied to each, with opposite signs).
_GENDER_EFFECT: Final[Mapping[str, float]] = {
    "Action": 0.5, "Sci-Fi": 0.4, "War": 0.4, "Western": 0.3, "Crime": 0.2,
    "Romance": -0.5, "Musical": -0.4, "Drama": -0.2, "Children's": -0.2,
}  # fmt: skip
# Taste shift per standard deviation of age.
_AGE_EFFECT: Final[Mapping[str, float]] = {
    "Film-Noir": 0.25, "Drama": 0.15, "War": 0.2, "Documentary": 0.1, "Western": 0.15,
    "Horror": -0.25, "Animation": -0.2, "Sci-Fi": -0.1, "Comedy": -0.1, "Children's": -0.1,
}  # fmt: skip
_OCCUPATION_EFFECT_SD: Final = 0.15
_GENRE_COUNT_PROBS: Final = (0.45, 0.35, 0.20)  # P(item has 1, 2, 3 genres)

# Side information is drawn inside the declared domains (reelrank/data/domains.py):
# MovieLens-100K's occupations, with their relative frequencies; genders; ages in years.
OCCUPATIONS: Final = domains.OCCUPATIONS
_OCCUPATION_FREQUENCY: Final = (
    79, 28, 7, 95, 67, 18, 32, 16, 7, 12, 51, 26, 9, 105, 66, 14, 12, 31, 196, 27, 45,
)  # fmt: skip
GENDERS: Final = domains.GENDERS
_MALE_SHARE: Final = 0.71
_AGE_MEAN, _AGE_SD, _AGE_MIN, _AGE_MAX = 33.0, 12.0, 7, 73
_STUDENT_AGE, _STUDENT_SHARE_YOUNG = 23, 0.7
_RETIRED_AGE, _RETIRED_SHARE_OLD = 62, 0.6

_TITLE_ADJECTIVES: Final = (
    "Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Electric", "Lost",
    "Wild", "Frozen", "Secret", "Burning", "Distant", "Quiet", "Savage", "Bright", "Hollow",
    "Iron", "Velvet", "Restless", "Forgotten", "Endless", "Little", "Dark", "Paper", "Glass",
    "Northern", "Final", "Sweet",
)  # fmt: skip
_TITLE_NOUNS: Final = (
    "Harbor", "Empire", "Garden", "River", "Kingdom", "Promise", "Horizon", "Witness", "Summer",
    "Stranger", "Frontier", "Letter", "Machine", "Island", "Station", "Orchard", "Storm", "Mirror",
    "Journey", "Detective", "Symphony", "Border", "Highway", "Lantern", "Circus", "Winter",
    "Legacy", "Galaxy", "Canyon", "Heist",
)  # fmt: skip


class SyntheticConfigError(ReelRankError, ValueError):
    """A :class:`SyntheticConfig` is inconsistent or cannot produce the requested world."""


def _seed_rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines a synthetic world; the same config gives the same world.

    Attributes:
        n_users: Number of users (ids ``1..n_users``).
        n_items: Number of items (ids ``1..n_items``).
        n_events: Exact number of rating events generated.
        seed: Root seed of every random stream.
        start_date: First day of the span, ISO date (UTC), not before 1995-01-01.
        span_days: Length of the span; every event falls in ``[start, start + span_days)``.
        n_factors: Dimension of the latent user/item factors.
        popularity_exponent: Zipf exponent of item popularity (weight ``rank ** -exponent``).
        popularity_quality_corr: Correlation between an item's popularity rank and its quality.
        preference_strength: How strongly true preference drives which items users pick
            (0 = popularity only).
        genre_weight: Scale of the genre-taste part of preference.
        factor_weight: Scale of the latent-factor part of preference.
        user_bias_sd: Spread of user biases (generous vs harsh raters).
        item_bias_sd: Spread of item quality.
        side_info_strength: Scale of how much age, gender and occupation shift genre tastes.
        activity_sigma: Log-normal sigma of user activity (heavier tail when larger).
        min_events_per_user: Floor on events per user (lowered when ``n_events`` is too small).
        max_user_coverage: Largest share of the items available to a user that they rate.
        new_user_share: Share of users who join during the span (the rest exist at its start).
        churn_share: Share of users who stop before the span ends.
        catalog_share_before_start: Share of items released before the span.
        catalog_history_years: How far back before the span those items were released.
        time_skew: Timestamps are ``lo + (hi - lo) * U ** time_skew`` inside the part of a
            user's window after the item's release (1 = uniform, > 1 = soon after).
        rating_intercept: Rating of an average (pref = 0) pair before noise and rounding.
        rating_slope: Rating points per standard deviation of true preference.
        rating_noise: Standard deviation of the Gaussian rating noise.
    """

    n_users: int = 2_000
    n_items: int = 1_500
    n_events: int = 200_000
    seed: int = 42
    start_date: str = "2015-01-01"
    span_days: int = 365
    n_factors: int = 8
    popularity_exponent: float = 2.0
    popularity_quality_corr: float = 0.3
    preference_strength: float = 4.0
    genre_weight: float = 1.0
    factor_weight: float = 1.0
    user_bias_sd: float = 0.3
    item_bias_sd: float = 0.5
    side_info_strength: float = 1.0
    activity_sigma: float = 1.0
    min_events_per_user: int = 5
    max_user_coverage: float = 0.5
    new_user_share: float = 0.6
    churn_share: float = 0.3
    catalog_share_before_start: float = 0.6
    catalog_history_years: int = 30
    time_skew: float = 1.0
    rating_intercept: float = 2.5
    rating_slope: float = 0.9
    rating_noise: float = 0.6

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("n_users", "n_items", "span_days", "n_factors"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("n_events", "seed", "min_events_per_user", "catalog_history_years"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        for name in ("new_user_share", "churn_share", "catalog_share_before_start"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        if not 0.0 < self.max_user_coverage <= 1.0:
            problems.append(f"max_user_coverage must be in (0, 1] (got {self.max_user_coverage})")
        if not -1.0 <= self.popularity_quality_corr <= 1.0:
            problems.append(
                f"popularity_quality_corr must be in [-1, 1] (got {self.popularity_quality_corr})"
            )
        for name in (
            "popularity_exponent", "preference_strength", "genre_weight", "factor_weight",
            "user_bias_sd", "item_bias_sd", "side_info_strength", "activity_sigma",
            "rating_noise",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.time_skew <= 0:
            problems.append(f"time_skew must be > 0 (got {self.time_skew})")
        try:
            start = self.start
        except (ValueError, TypeError):
            problems.append(
                f"start_date must be an ISO date like 2015-01-01 (got {self.start_date!r})"
            )
        else:
            if start < EARLIEST_TIMESTAMP:
                problems.append(
                    f"start_date must be on or after {EARLIEST_TIMESTAMP.date()} "
                    f"(got {self.start_date})"
                )
            oldest = start - pd.Timedelta(days=round(self.catalog_history_years * DAYS_PER_YEAR))
            if oldest < domains.EARLIEST_RELEASE_DATE:
                problems.append(
                    f"catalog_history_years={self.catalog_history_years} puts release dates "
                    f"back to {oldest.date()}, before {domains.EARLIEST_RELEASE_DATE.date()} "
                    "(validation would quarantine those items); choose fewer years"
                )
            if self.end > pd.Timestamp.now(tz="UTC"):
                problems.append(
                    f"the span ends on {self.end.date()}, in the future (validation would "
                    "quarantine those events); choose an earlier start_date or fewer span_days"
                )
        if problems:
            raise SyntheticConfigError("Invalid SyntheticConfig: " + "; ".join(problems) + ".")

    @property
    def start(self) -> pd.Timestamp:
        """First instant of the span (midnight UTC of ``start_date``)."""
        return pd.Timestamp(self.start_date, tz="UTC").normalize()

    @property
    def end(self) -> pd.Timestamp:
        """End of the span (exclusive)."""
        return self.start + pd.Timedelta(days=self.span_days)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SyntheticConfig:
        """Build a config from a mapping, refusing keys that are not config fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SyntheticConfigError(
                f"Unknown SyntheticConfig field(s) {unknown}; valid fields are {sorted(known)}."
            )
        return cls(**dict(values))


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The parameters of a synthetic world and the true preference they imply.

    Users and items are addressed by their ids (1-based); row ``id - 1`` of each
    user/item array belongs to that id. Days are counted from the span start
    (``release_day < 0``: released before the span).
    """

    start: pd.Timestamp
    span_days: int
    genre_weight: float
    factor_weight: float
    preference_strength: float
    pref_mean: float
    pref_sd: float
    rating_intercept: float
    rating_slope: float
    rating_noise: float
    user_taste: FloatArray  # (n_users, n_genres) genre tastes
    user_factors: FloatArray  # (n_users, n_factors)
    user_bias: FloatArray  # (n_users,)
    item_genres: FloatArray  # (n_items, n_genres) genre weights, each row sums to 1
    item_factors: FloatArray  # (n_items, n_factors)
    item_bias: FloatArray  # (n_items,) quality
    item_log_popularity: FloatArray  # (n_items,) log of popularity probabilities
    item_release_day: IntArray  # (n_items,)
    user_activity: FloatArray  # (n_users,) relative activity weights
    user_start_day: IntArray  # (n_users,) first active day
    user_end_day: IntArray  # (n_users,) end of activity (exclusive)
    user_event_counts: IntArray  # (n_users,) events generated per user
    rating_min: float = RATING_MIN
    rating_max: float = RATING_MAX

    @property
    def n_users(self) -> int:
        return int(self.user_bias.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_bias.shape[0])

    @property
    def n_factors(self) -> int:
        return int(self.user_factors.shape[1])

    @property
    def item_popularity(self) -> FloatArray:
        """Popularity probabilities (sum to 1), indexed by ``item_id - 1``."""
        return np.exp(self.item_log_popularity)

    @cached_property
    def item_release_dates(self) -> pd.DatetimeIndex:
        """Release date (midnight UTC) of every item, indexed by ``item_id - 1``."""
        offsets = pd.to_timedelta(self.item_release_day, unit="D")
        return pd.DatetimeIndex(self.start + offsets).as_unit("ns")

    @cached_property
    def _user_matrix(self) -> FloatArray:
        return _augment_users(
            self.user_taste, self.user_factors, self.user_bias, self.genre_weight,
            self.factor_weight, self.pref_mean, self.pref_sd,
        )  # fmt: skip

    @cached_property
    def _item_matrix(self) -> FloatArray:
        return _augment_items(self.item_genres, self.item_factors, self.item_bias)

    def user_index(self, user_ids: ArrayLike) -> IntArray:
        """Row indices of ``user_ids``; raises when an id is not a user of this world."""
        return _to_index(user_ids, self.n_users, "user")

    def item_index(self, item_ids: ArrayLike) -> IntArray:
        """Row indices of ``item_ids``; raises when an id is not an item of this world."""
        return _to_index(item_ids, self.n_items, "item")

    def relevance(self, user_ids: ArrayLike, item_ids: ArrayLike) -> FloatArray:
        """True preference of each (user, item) pair (arrays broadcast together).

        Standardised: mean 0 and standard deviation 1 over all user-item pairs.
        """
        users, items = np.broadcast_arrays(self.user_index(user_ids), self.item_index(item_ids))
        users, items = users.ravel(), items.ravel()
        out = np.empty(users.shape[0], dtype=np.float64)
        for lo in range(0, users.shape[0], PAIR_CHUNK):
            hi = lo + PAIR_CHUNK
            out[lo:hi] = np.einsum(
                "ij,ij->i", self._user_matrix[users[lo:hi]], self._item_matrix[items[lo:hi]]
            )
        return out

    def relevance_matrix(self, user_ids: ArrayLike) -> FloatArray:
        """True preference of each given user (rows) for every item (column ``item_id - 1``)."""
        return self._user_matrix[self.user_index(user_ids)] @ self._item_matrix.T

    def expected_rating(self, user_ids: ArrayLike, item_ids: ArrayLike) -> FloatArray:
        """Expected rating of each pair under the rating model (rounding and clipping included)."""
        return self.expected_rating_from_relevance(self.relevance(user_ids, item_ids))

    def expected_rating_from_relevance(self, relevance: ArrayLike) -> FloatArray:
        """Expected rating for given true-preference values."""
        location = self.rating_intercept + self.rating_slope * np.asarray(relevance, np.float64)
        expected = np.full(location.shape, self.rating_min)
        # E[R] = min + sum_r P(R > r) for each step r of the integer scale.
        for step in np.arange(self.rating_min, self.rating_max):
            threshold = step + 0.5
            if self.rating_noise > 0:
                expected += ndtr((location - threshold) / self.rating_noise)
            else:
                expected += location >= threshold
        return expected

    def sample_ratings(
        self, user_ids: ArrayLike, item_ids: ArrayLike, rng: np.random.Generator
    ) -> FloatArray:
        """Draw ratings for pairs, as the generator does (integers in [1, 5], as floats)."""
        return self.ratings_from_relevance(self.relevance(user_ids, item_ids), rng)

    def ratings_from_relevance(self, relevance: FloatArray, rng: np.random.Generator) -> FloatArray:
        noise = rng.standard_normal(relevance.shape[0]) * self.rating_noise
        raw = self.rating_intercept + self.rating_slope * relevance + noise
        return np.clip(np.rint(raw), self.rating_min, self.rating_max)

    def released_mask(self, as_of: pd.Timestamp | None = None) -> NDArray[np.bool_]:
        """Which items (column ``item_id - 1``) are released at ``as_of`` (all when None)."""
        if as_of is None:
            return np.ones(self.n_items, dtype=bool)
        as_of = _as_utc(as_of, "as_of")
        return np.asarray(self.item_release_dates <= as_of)

    def oracle_ranking(
        self,
        user_ids: ArrayLike,
        k: int = 10,
        exclude: pd.DataFrame | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Top-``k`` items per user by true preference.

        Args:
            user_ids: Users to rank for (output keeps their order; duplicates are ranked once).
            k: Items per user (fewer when fewer items are eligible).
            exclude: Rows with ``user_id`` and ``item_id``; those pairs are never returned
                (e.g. the training interactions).
            as_of: Only items released on or before this instant are eligible.

        Returns:
            ``DataFrame[user_id, item_id, score, rank]``, score = true preference, rank from 1.
        """
        if k < 1:
            raise ValidationError(f"oracle_ranking needs k >= 1 (got {k}).")
        users = pd.unique(self.user_index(user_ids))
        k = min(k, self.n_items)
        released = self.released_mask(as_of)
        excluded_rows, excluded_cols = self._excluded_pairs(users, exclude)
        batch = max(1, BLOCK_CELLS // self.n_items)
        parts: list[pd.DataFrame] = []
        for lo in range(0, users.shape[0], batch):
            block = users[lo : lo + batch]
            scores = self._user_matrix[block] @ self._item_matrix.T
            scores[:, ~released] = -np.inf
            in_block = (excluded_rows >= lo) & (excluded_rows < lo + block.shape[0])
            scores[excluded_rows[in_block] - lo, excluded_cols[in_block]] = -np.inf
            top = _top_k_sorted(scores, k)
            top_scores = np.take_along_axis(scores, top, axis=1)
            keep = np.isfinite(top_scores)
            parts.append(
                pd.DataFrame(
                    {
                        USER_ID: np.repeat(block + 1, k).reshape(-1, k)[keep].astype(np.int64),
                        ITEM_ID: (top[keep] + 1).astype(np.int64),
                        SCORE: top_scores[keep].astype(np.float64),
                        RANK: np.broadcast_to(np.arange(1, k + 1), top.shape)[keep].astype(
                            np.int64
                        ),
                    }
                )
            )
        if not parts:
            return _empty_ranking()
        return pd.concat(parts, ignore_index=True)

    def _excluded_pairs(
        self, users: IntArray, exclude: pd.DataFrame | None
    ) -> tuple[IntArray, IntArray]:
        """(position in ``users``, item index) of every excluded pair for those users."""
        empty = np.empty(0, dtype=np.int64)
        if exclude is None or exclude.empty:
            return empty, empty
        missing = [c for c in (USER_ID, ITEM_ID) if c not in exclude.columns]
        if missing:
            raise ValidationError(
                f"exclude must have columns {USER_ID!r} and {ITEM_ID!r}; missing {missing}."
            )
        position = np.full(self.n_users, -1, dtype=np.int64)
        position[users] = np.arange(users.shape[0])
        ex_users = self.user_index(exclude[USER_ID].to_numpy())
        ex_items = self.item_index(exclude[ITEM_ID].to_numpy())
        rows = position[ex_users]
        keep = rows >= 0
        return rows[keep], ex_items[keep]

    def save(self, directory: str | Path) -> Path:
        """Write ``truth.npz`` (arrays) and ``truth.json`` (scalars) atomically to ``directory``."""
        directory = Path(directory)
        with AtomicBatch() as batch:
            self._write(batch, directory)
        return directory

    def _write(self, batch: AtomicBatch, directory: Path) -> None:
        arrays, scalars = self._split_fields()
        with open(batch.path(directory / TRUTH_ARRAYS_FILE), "wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
        batch.write_json({"format_version": FORMAT_VERSION, **scalars}, directory / TRUTH_META_FILE)

    def _split_fields(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            elif isinstance(value, pd.Timestamp):
                scalars[f.name] = value.isoformat()
            else:
                scalars[f.name] = value
        return arrays, scalars

    @classmethod
    def load(cls, directory: str | Path) -> GroundTruth:
        """Read a ground truth written by :meth:`save`."""
        directory = Path(directory)
        arrays_path, meta_path = directory / TRUTH_ARRAYS_FILE, directory / TRUTH_META_FILE
        for path in (arrays_path, meta_path):
            if not path.is_file():
                raise DataSourceError(
                    f"No ground truth at {path}; write one with GroundTruth.save(directory) or "
                    "SyntheticWorld.save(directory) first."
                )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = meta.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise DataSourceError(
                f"{meta_path} has format_version {version}, this code reads {FORMAT_VERSION}; "
                "regenerate the world with the current code."
            )
        meta["start"] = pd.Timestamp(meta["start"])
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        expected = {f.name for f in fields(cls)}
        present = set(meta) | set(arrays)
        if expected - present:
            raise DataSourceError(
                f"Ground truth in {directory} lacks {sorted(expected - present)}; "
                "it was not written by GroundTruth.save or is damaged. Regenerate it."
            )
        return cls(**{name: (arrays | meta)[name] for name in expected})

    def equals(self, other: GroundTruth) -> bool:
        """True when every parameter is identical."""
        mine, theirs = self._split_fields(), other._split_fields()
        if mine[1] != theirs[1] or mine[0].keys() != theirs[0].keys():
            return False
        return all(np.array_equal(mine[0][name], theirs[0][name]) for name in mine[0])


def _augment_users(
    taste: FloatArray,
    factors: FloatArray,
    bias: FloatArray,
    genre_weight: float,
    factor_weight: float,
    mean: float,
    sd: float,
) -> FloatArray:
    """User rows whose dot product with :func:`_augment_items` rows is the true preference."""
    n_factors = factors.shape[1]
    ones = np.ones((bias.shape[0], 1))
    matrix = np.hstack(
        [
            genre_weight * taste,
            factor_weight * factors / math.sqrt(n_factors),
            (bias - mean)[:, None],
            ones,
        ]
    )
    return matrix / sd


def _augment_items(genres: FloatArray, factors: FloatArray, bias: FloatArray) -> FloatArray:
    ones = np.ones((bias.shape[0], 1))
    return np.hstack([genres, factors, ones, bias[:, None]])


def _to_index(ids: ArrayLike, n: int, what: str) -> IntArray:
    values = np.asarray(ids)
    if values.dtype.kind not in "iu":
        integral = values.dtype.kind == "f" and bool(
            np.all(np.isfinite(values)) and np.all(values % 1 == 0)
        )
        if integral or values.size == 0:
            values = values.astype(np.int64)
        else:
            raise ValidationError(f"{what} ids must be integers (got dtype {values.dtype}).")
    index = values.astype(np.int64) - 1
    bad = (index < 0) | (index >= n)
    if np.any(bad):
        examples = (values[bad][:5]).tolist()
        raise ValidationError(f"Unknown {what} id(s) {examples}: this world has {what} ids 1..{n}.")
    return index


def _as_utc(value: pd.Timestamp, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValidationError(f"{name} must be timezone-aware (UTC); got naive {stamp}.")
    return stamp.tz_convert("UTC")


def _top_k_sorted(scores: FloatArray, k: int) -> IntArray:
    """Column indices of the ``k`` largest values per row, best first."""
    n = scores.shape[1]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else np.argsort(-scores, axis=1)
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def _empty_ranking() -> pd.DataFrame:
    return pd.DataFrame(
        {
            USER_ID: pd.Series(dtype=np.int64),
            ITEM_ID: pd.Series(dtype=np.int64),
            SCORE: pd.Series(dtype=np.float64),
            RANK: pd.Series(dtype=np.int64),
        }
    )


def _genre_vector(values: Mapping[str, float]) -> FloatArray:
    return np.array([values.get(genre, 0.0) for genre in GENRE_VOCAB], dtype=np.float64)


@dataclass(frozen=True)
class _Users:
    frame: pd.DataFrame
    taste: FloatArray
    factors: FloatArray
    bias: FloatArray


@dataclass(frozen=True)
class _Items:
    frame: pd.DataFrame
    genres: FloatArray
    factors: FloatArray
    bias: FloatArray
    log_popularity: FloatArray
    release_day: IntArray


def _make_users(config: SyntheticConfig) -> _Users:
    rng = _seed_rng(config.seed, _STREAM_USERS)
    n, n_genres = config.n_users, len(GENRE_VOCAB)
    age = np.clip(np.rint(rng.normal(_AGE_MEAN, _AGE_SD, n)), _AGE_MIN, _AGE_MAX).astype(np.int64)
    is_male = rng.random(n) < _MALE_SHARE
    occupation_p = np.asarray(_OCCUPATION_FREQUENCY, dtype=np.float64)
    occupation = rng.choice(len(OCCUPATIONS), size=n, p=occupation_p / occupation_p.sum())
    draw = rng.random(n)
    occupation = np.where(
        (age < _STUDENT_AGE) & (draw < _STUDENT_SHARE_YOUNG), OCCUPATIONS.index("student"),
        np.where(
            (age >= _RETIRED_AGE) & (draw < _RETIRED_SHARE_OLD), OCCUPATIONS.index("retired"),
            occupation,
        ),
    )  # fmt: skip
    occupation_effect = rng.normal(0.0, _OCCUPATION_EFFECT_SD, (len(OCCUPATIONS), n_genres))
    side = (
        np.where(is_male, 0.5, -0.5)[:, None] * _genre_vector(_GENDER_EFFECT)[None, :]
        + ((age - _AGE_MEAN) / _AGE_SD)[:, None] * _genre_vector(_AGE_EFFECT)[None, :]
        + occupation_effect[occupation]
    )
    taste = (
        _genre_vector(_GENRE_MEAN_TASTE)[None, :]
        + config.side_info_strength * side
        + rng.standard_normal((n, n_genres))
    )
    factors = rng.standard_normal((n, config.n_factors))
    bias = rng.normal(0.0, config.user_bias_sd, n)
    frame = pd.DataFrame(
        {
            USER_ID: np.arange(1, n + 1, dtype=np.int64),
            AGE: age,
            GENDER: pd.array(np.where(is_male, GENDERS[0], GENDERS[1]), dtype="string"),
            OCCUPATION: pd.array(np.asarray(OCCUPATIONS)[occupation], dtype="string"),
        }
    )
    return _Users(frame=frame, taste=taste, factors=factors, bias=bias)


def _make_items(config: SyntheticConfig) -> _Items:
    rng = _seed_rng(config.seed, _STREAM_ITEMS)
    n, n_genres = config.n_items, len(GENRE_VOCAB)
    # 1-3 distinct genres per item, drawn by frequency (Gumbel top-k without replacement).
    n_item_genres = rng.choice(len(_GENRE_COUNT_PROBS), size=n, p=_GENRE_COUNT_PROBS) + 1
    keys = np.log(_genre_vector(_GENRE_FREQUENCY))[None, :] + rng.gumbel(size=(n, n_genres))
    order = np.argsort(-keys, axis=1)
    chosen = np.zeros((n, n_genres), dtype=bool)
    np.put_along_axis(
        chosen, order[:, : len(_GENRE_COUNT_PROBS)],
        np.arange(len(_GENRE_COUNT_PROBS))[None, :] < n_item_genres[:, None], axis=1,
    )  # fmt: skip
    genres = chosen / chosen.sum(axis=1, keepdims=True)
    factors = rng.standard_normal((n, config.n_factors))
    bias = rng.normal(0.0, config.item_bias_sd, n)
    # Power-law popularity; its rank is mildly correlated with quality.
    rho = config.popularity_quality_corr
    quality_z = (bias - bias.mean()) / (bias.std() or 1.0)
    appeal = rho * quality_z + math.sqrt(1.0 - rho * rho) * rng.standard_normal(n)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-appeal, kind="stable")] = np.arange(1, n + 1)
    log_weight = -config.popularity_exponent * np.log(rank.astype(np.float64))
    log_popularity = log_weight - np.logaddexp.reduce(log_weight)
    # Release days: some before the span (back catalogue), the rest during it.
    before = rng.random(n) < config.catalog_share_before_start
    history_days = max(1, round(config.catalog_history_years * DAYS_PER_YEAR))
    release_day = np.where(
        before,
        -rng.integers(1, history_days + 1, n),
        rng.integers(0, config.span_days, n),
    ).astype(np.int64)
    release = config.start + pd.to_timedelta(release_day, unit="D")
    adjective = np.asarray(_TITLE_ADJECTIVES)[rng.integers(0, len(_TITLE_ADJECTIVES), n)]
    noun = np.asarray(_TITLE_NOUNS)[rng.integers(0, len(_TITLE_NOUNS), n)]
    years = release.year.astype(str).to_numpy()
    titles = np.char.add(
        np.char.add(np.char.add(np.char.add("The ", adjective), " "), noun),
        np.char.add(np.char.add(" (", years), ")"),
    )
    vocab = np.asarray(GENRE_VOCAB, dtype=object)
    genre_lists = [list(vocab[row]) for row in chosen]
    frame = pd.DataFrame(
        {
            ITEM_ID: np.arange(1, n + 1, dtype=np.int64),
            TITLE: pd.array(titles, dtype="string"),
            GENRES: pd.Series(genre_lists, dtype=object),
            RELEASE_DATE: pd.DatetimeIndex(release).as_unit("ns"),
        }
    )
    return _Items(
        frame=frame,
        genres=genres,
        factors=factors,
        bias=bias,
        log_popularity=log_popularity,
        release_day=release_day,
    )


def _preference_moments(user_matrix: FloatArray, item_matrix: FloatArray) -> tuple[float, float]:
    """Exact mean and standard deviation of ``u . i`` over all user-item pairs."""
    mean = float(user_matrix.mean(axis=0) @ item_matrix.mean(axis=0))
    second_users = user_matrix.T @ user_matrix / user_matrix.shape[0]
    second_items = item_matrix.T @ item_matrix / item_matrix.shape[0]
    variance = float(np.sum(second_users * second_items)) - mean * mean
    return mean, math.sqrt(max(variance, 1e-12))


def _user_windows(config: SyntheticConfig) -> tuple[IntArray, IntArray, FloatArray]:
    """Active window [start, end) in whole days and the activity weight of each user."""
    rng = _seed_rng(config.seed, _STREAM_ACTIVITY)
    n, span = config.n_users, config.span_days
    joins = rng.random(n) < config.new_user_share
    start = np.where(joins, rng.integers(0, span, n), 0).astype(np.int64)
    churns = rng.random(n) < config.churn_share
    length = span - start
    churned_length = np.maximum(1, np.ceil(length * rng.uniform(0.1, 1.0, n))).astype(np.int64)
    end = start + np.where(churns, churned_length, length)
    activity = rng.lognormal(0.0, config.activity_sigma, n)
    return start, end, activity


def _allocate_events(total: int, weights: FloatArray, capacity: IntArray, floor: int) -> IntArray:
    """Split ``total`` events across users proportionally to ``weights`` within [floor, capacity].

    Water-filling: find ``scale`` such that ``sum(clip(scale * w, floor, capacity)) == total``,
    then round (largest remainders first) so the sum is exact.
    """
    low = np.minimum(floor, capacity).astype(np.float64)
    high = capacity.astype(np.float64)

    def filled(scale: float) -> FloatArray:
        return np.clip(scale * weights, low, high)

    lo_scale, hi_scale = 0.0, 1.0
    while filled(hi_scale).sum() < total and hi_scale < 1e300:
        hi_scale *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo_scale + hi_scale)
        if filled(mid).sum() < total:
            lo_scale = mid
        else:
            hi_scale = mid
    target = filled(hi_scale)
    counts = np.floor(target).astype(np.int64)
    shortfall = total - int(counts.sum())
    if shortfall > 0:
        room = counts < capacity
        remainder = np.where(room, target - counts, -1.0)
        order = np.argsort(-remainder, kind="stable")[:shortfall]
        counts[order] += 1
    elif shortfall < 0:
        over = counts > low
        remainder = np.where(over, target - counts, 2.0)
        order = np.argsort(remainder, kind="stable")[:-shortfall]
        counts[order] -= 1
    return counts


def _plan_activity(
    config: SyntheticConfig, release_day: IntArray
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    start, end, activity = _user_windows(config)
    available = np.searchsorted(np.sort(release_day), end, side="left").astype(np.int64)
    capacity = np.floor(config.max_user_coverage * available).astype(np.int64)
    total_capacity = int(capacity.sum())
    if config.n_events > total_capacity:
        raise SyntheticConfigError(
            f"n_events={config.n_events:,} is more than this world can hold: each of the "
            f"{config.n_users:,} users rates at most max_user_coverage="
            f"{config.max_user_coverage} of the items released before they leave "
            f"({total_capacity:,} events in all). Raise n_items or n_users (or "
            "max_user_coverage), or lower n_events."
        )
    floor = min(config.min_events_per_user, config.n_events // config.n_users)
    # Events accrue at the user's own rate over their window: weight = rate * length.
    counts = _allocate_events(config.n_events, activity * (end - start), capacity, floor)
    return start, end, activity, counts


class SyntheticWorld:
    """A generated world: users and items frames, the ground truth, and a lazy event stream."""

    def __init__(
        self,
        config: SyntheticConfig,
        users: pd.DataFrame,
        items: pd.DataFrame,
        truth: GroundTruth,
    ) -> None:
        self.config = config
        self.users = users
        self.items = items
        self.truth = truth

    @property
    def n_events(self) -> int:
        return int(self.truth.user_event_counts.sum())

    @property
    def block_users(self) -> int:
        """Users generated together in one block (fixed by the config, not by chunk size)."""
        return max(1, min(self.config.n_users, BLOCK_CELLS // self.config.n_items))

    @cached_property
    def _release_order(self) -> tuple[IntArray, int]:
        """Item indices by release day, and the position of the first released in the span."""
        order = np.argsort(self.truth.item_release_day, kind="stable").astype(np.int64)
        first_new = int(np.searchsorted(self.truth.item_release_day[order], 0, side="right"))
        return order, first_new

    @cached_property
    def _item_matrix_by_release(self) -> NDArray[np.float32]:
        return self.truth._item_matrix[self._release_order[0]].astype(np.float32)

    @cached_property
    def _log_popularity_by_release(self) -> NDArray[np.float32]:
        return self.truth.item_log_popularity[self._release_order[0]].astype(np.float32)

    def iter_events(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        """Yield the events as canonical frames of ``chunk_size`` rows (the last may be shorter).

        The concatenated stream is the same for every ``chunk_size``; it is ordered by
        ``user_id`` then ``timestamp``.
        """
        if chunk_size < 1:
            raise SyntheticConfigError(f"chunk_size must be >= 1 (got {chunk_size}).")
        pending: list[pd.DataFrame] = []
        pending_rows = 0
        for lo in range(0, self.config.n_users, self.block_users):
            block = self._generate_block(lo, min(lo + self.block_users, self.config.n_users))
            if block.empty:
                continue
            pending.append(block)
            pending_rows += len(block)
            if pending_rows < chunk_size:
                continue
            merged = pd.concat(pending, ignore_index=True) if len(pending) > 1 else block
            cut = 0
            while len(merged) - cut >= chunk_size:
                yield merged.iloc[cut : cut + chunk_size].reset_index(drop=True)
                cut += chunk_size
            rest = merged.iloc[cut:]
            pending, pending_rows = ([rest], len(rest)) if len(rest) else ([], 0)
        if pending_rows:
            yield pd.concat(pending, ignore_index=True)

    def events(self) -> pd.DataFrame:
        """All events in one frame (for small worlds; use :meth:`iter_events` for large ones)."""
        chunks = list(self.iter_events(chunk_size=max(1, self.n_events)))
        if not chunks:
            return _empty_events()
        return chunks[0]

    def to_dataset(self) -> Dataset:
        """The world as a :class:`~reelrank.schema.Dataset` (materialises every event)."""
        return Dataset(
            events=self.events(),
            users=self.users.copy(),
            items=self.items.copy(),
            rating_min=self.truth.rating_min,
            rating_max=self.truth.rating_max,
            name=DATASET_NAME,
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and the ground truth into ``directory``, atomically as a unit."""
        directory = Path(directory)
        with AtomicBatch() as batch:
            self.truth._write(batch, directory)
            batch.write_json(
                {"format_version": FORMAT_VERSION, **self.config.to_dict()},
                directory / CONFIG_FILE,
            )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SyntheticWorld:
        """Regenerate a saved world from its config and check it matches the saved truth."""
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise DataSourceError(
                f"No synthetic world at {directory} ({CONFIG_FILE} missing); "
                "write one with SyntheticWorld.save(directory)."
            )
        values = json.loads(config_path.read_text(encoding="utf-8"))
        values.pop("format_version", None)
        world = generate_world(SyntheticConfig.from_dict(values))
        saved = GroundTruth.load(directory)
        if not world.truth.equals(saved):
            raise DataSourceError(
                f"The ground truth saved in {directory} differs from what this code generates "
                "from its config (the generator changed); regenerate and save the world again."
            )
        return cls(world.config, world.users, world.items, saved)

    def _generate_block(self, lo: int, hi: int) -> pd.DataFrame:
        """Events of users ``lo..hi-1`` (0-based), from the block's own random stream."""
        truth, config = self.truth, self.config
        rng = _seed_rng(config.seed, _STREAM_EVENTS, lo)
        users = np.arange(lo, hi)
        counts = truth.user_event_counts[lo:hi]
        n_items = truth.n_items
        # Selection keys: log weight minus log(Exp(1)) is Gumbel-perturbed; top-n_u of each row
        # is a draw of n_u distinct items with probability proportional to the weights.
        # Columns are in release order, so only the items released during the span (the tail)
        # need an exposure term: the rest were out before any user arrived.
        columns, first_new = self._release_order
        keys = truth._user_matrix[users].astype(np.float32) @ self._item_matrix_by_release.T
        keys *= np.float32(config.preference_strength)
        keys += self._log_popularity_by_release[None, :]
        if first_new < n_items:
            start = truth.user_start_day[lo:hi].astype(np.float32)[:, None]
            end = truth.user_end_day[lo:hi].astype(np.float32)[:, None]
            release = truth.item_release_day[columns[first_new:]].astype(np.float32)[None, :]
            exposure = (end - np.maximum(start, release)) / (end - start)
            with np.errstate(divide="ignore"):
                keys[:, first_new:] += np.log(np.maximum(exposure, np.float32(0.0)))
            del exposure
        noise = rng.standard_exponential(size=keys.shape, dtype=np.float32)
        np.maximum(noise, np.finfo(np.float32).tiny, out=noise)
        keys -= np.log(noise)
        del noise
        rows, selected = _select_top_counts(keys, counts, n_items)
        del keys
        items = columns[selected]
        user_index = users[rows]
        # Timestamps inside the part of the user's window after the release.
        window_lo = np.maximum(
            truth.user_start_day[user_index], truth.item_release_day[items]
        ).astype(np.float64)
        window_hi = truth.user_end_day[user_index].astype(np.float64)
        position = rng.random(user_index.shape[0]) ** config.time_skew
        seconds = np.floor(
            (window_lo + (window_hi - window_lo) * position) * SECONDS_PER_DAY
        ).astype(np.int64)
        relevance = truth.relevance(user_index + 1, items + 1)
        ratings = truth.ratings_from_relevance(relevance, rng)
        order = np.lexsort((seconds, user_index))
        epoch = config.start.value // NS_PER_SECOND
        stamps = (epoch + seconds[order]) * NS_PER_SECOND
        return pd.DataFrame(
            {
                USER_ID: (user_index[order] + 1).astype(np.int64),
                ITEM_ID: (items[order] + 1).astype(np.int64),
                RATING: ratings[order].astype(np.float64),
                TIMESTAMP: pd.DatetimeIndex(stamps.view("datetime64[ns]")).tz_localize("UTC"),
            }
        )


def _select_top_counts(
    keys: NDArray[np.float32], counts: IntArray, n_items: int
) -> tuple[IntArray, IntArray]:
    """(row, column) of the ``counts[row]`` largest keys of each row, rows in order.

    Rows are grouped by the power of two of their count so each group's partial sort
    is at most twice as wide as needed.
    """
    out_rows: list[IntArray] = []
    out_cols: list[IntArray] = []
    active = np.flatnonzero(counts > 0)
    bucket = np.floor(np.log2(counts[active])).astype(np.int64)
    for level in np.unique(bucket):
        rows = active[bucket == level]
        wanted = counts[rows]
        width = int(wanted.max())
        sub = keys[rows]
        if width < n_items:
            top = np.argpartition(sub, n_items - width, axis=1)[:, n_items - width :]
        else:
            top = np.broadcast_to(np.arange(n_items), sub.shape)
        values = np.take_along_axis(sub, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        take = np.arange(width)[None, :] < wanted[:, None]
        out_rows.append(np.repeat(rows, wanted))
        out_cols.append(top[take].astype(np.int64))
    if not out_rows:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    rows_all = np.concatenate(out_rows)
    cols_all = np.concatenate(out_cols)
    return rows_all, cols_all


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {name: pd.Series(dtype=dtype) for name, dtype in EVENTS_SCHEMA.dtypes.items()}
    )


def generate_world(config: SyntheticConfig | None = None) -> SyntheticWorld:
    """Build users, items and the ground truth (events are generated lazily).

    Raises:
        SyntheticConfigError: ``n_events`` exceeds what the users can rate.
    """
    config = config or SyntheticConfig()
    users = _make_users(config)
    items = _make_items(config)
    user_start, user_end, activity, counts = _plan_activity(config, items.release_day)
    raw_users = _augment_users(
        users.taste, users.factors, users.bias, config.genre_weight, config.factor_weight, 0.0, 1.0
    )
    raw_items = _augment_items(items.genres, items.factors, items.bias)
    mean, sd = _preference_moments(raw_users, raw_items)
    truth = GroundTruth(
        start=config.start,
        span_days=config.span_days,
        genre_weight=config.genre_weight,
        factor_weight=config.factor_weight,
        preference_strength=config.preference_strength,
        pref_mean=mean,
        pref_sd=sd,
        rating_intercept=config.rating_intercept,
        rating_slope=config.rating_slope,
        rating_noise=config.rating_noise,
        user_taste=users.taste,
        user_factors=users.factors,
        user_bias=users.bias,
        item_genres=items.genres,
        item_factors=items.factors,
        item_bias=items.bias,
        item_log_popularity=items.log_popularity,
        item_release_day=items.release_day,
        user_activity=activity,
        user_start_day=user_start,
        user_end_day=user_end,
        user_event_counts=counts,
    )
    logger.info(
        "synthetic world: %d users, %d items, %d events planned (seed %d)",
        config.n_users, config.n_items, config.n_events, config.seed,
    )  # fmt: skip
    return SyntheticWorld(config, users.frame, items.frame, truth)
