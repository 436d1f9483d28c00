"""Stage 3: re-ranking the row with the rules a product needs, after the ranker.

The ranker orders candidates by predicted relevance only. A home-page row also wants
variety, new titles and some exposure for the long tail, and must never show what cannot
be watched. :func:`rerank` takes one user's scored candidates and returns the row:

1. **hard filters** (never shown): titles released after ``now`` (unreleased), and the
   request's exclusion list;
2. **boosts** on the min-max normalised relevance ``r`` in [0, 1]:
   ``r + freshness * 0.5 ** (days since release / freshness_half_life_days)``
   ``+ long_tail * (1 - popularity percentile)``;
3. **diversity** by maximal marginal relevance (Carbonell & Goldstein 1998) over genres:
   the next item maximises ``(1 - diversity) * boosted - diversity * max similarity`` to the
   items already picked, similarity the Jaccard index of genre sets.

Every strength at 0 (and no filter hit) returns the ranker's order unchanged. The
trade-off against nDCG@10 (intra-list diversity, coverage, novelty per strength) is
measured on the time folds (:mod:`reelrank.training.diagnostics`) and the default chosen
from it is justified on the results pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numba
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from reelrank.exceptions import ValidationError

SECONDS_PER_DAY: Final = 86_400.0
POOL_PER_SLOT: Final = 4
MIN_POOL: Final = 50
"""MMR chooses among the best ``max(4 k, 50)`` candidates by boosted relevance."""


@dataclass(frozen=True)
class RerankConfig:
    """Strengths of the re-ranker (all in [0, 1]) and the hard filters.

    Attributes:
        diversity: MMR trade-off; 0 keeps the ranker's order.
        freshness: boost of new releases (decays with ``freshness_half_life_days``).
        long_tail: boost of less popular titles (by popularity percentile).
        freshness_half_life_days: age at which the freshness boost halves.
        exclude: item ids never to show in this answer.
        exclude_unreleased: drop titles whose release date is after ``now``.
    """

    diversity: float = 0.0
    freshness: float = 0.0
    long_tail: float = 0.0
    freshness_half_life_days: float = 180.0
    exclude: frozenset[int] = field(default_factory=frozenset)
    exclude_unreleased: bool = True

    def __post_init__(self) -> None:
        for name in ("diversity", "freshness", "long_tail"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValidationError(f"re-ranking {name}={value} must be in [0, 1].")
        if self.freshness_half_life_days <= 0:
            raise ValidationError("freshness_half_life_days must be positive.")

    @property
    def reorders(self) -> bool:
        """Whether any strength is on (filters alone keep the ranker's order)."""
        return bool(self.diversity or self.freshness or self.long_tail)

    def with_exclusions(self, items: Iterable[int]) -> RerankConfig:
        return replace(self, exclude=frozenset(int(i) for i in items) | self.exclude)

    def with_strengths(
        self,
        diversity: float | None = None,
        freshness: float | None = None,
        long_tail: float | None = None,
    ) -> RerankConfig:
        """A copy with the strengths that are given (``None`` keeps this one's)."""
        return replace(
            self,
            diversity=self.diversity if diversity is None else diversity,
            freshness=self.freshness if freshness is None else freshness,
            long_tail=self.long_tail if long_tail is None else long_tail,
        )


NO_RERANKING: Final = RerankConfig()
DEFAULT_RERANK: Final = RerankConfig(diversity=0.1, freshness=0.1, long_tail=0.3)
"""What the service applies unless a request says otherwise. The rule, applied to the
trade-off measured on the last time fold of both datasets (the results pages): each
strength at the largest measured value that alone costs at most 2.5 % of nDCG@10 on both
(``design_docs/03-model.md``, "Stage 3")."""


def _strength(default: float, what: str) -> Any:
    return Field(default, ge=0.0, le=1.0, allow_inf_nan=False, description=what)


class RerankStrengths(BaseModel):
    """The re-ranker's strengths as configuration (``REELRANK_RERANK``, as JSON).

    The defaults are :data:`DEFAULT_RERANK`'s; a request may override each strength and
    add an exclusion list (the API's query parameters).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    diversity: float = _strength(DEFAULT_RERANK.diversity, "MMR trade-off over genres.")
    freshness: float = _strength(DEFAULT_RERANK.freshness, "Boost of new releases.")
    long_tail: float = _strength(DEFAULT_RERANK.long_tail, "Boost of less popular titles.")
    freshness_half_life_days: float = Field(
        DEFAULT_RERANK.freshness_half_life_days,
        gt=0.0,
        allow_inf_nan=False,
        description="Age at which the freshness boost halves.",
    )

    def config(self) -> RerankConfig:
        return RerankConfig(
            diversity=self.diversity,
            freshness=self.freshness,
            long_tail=self.long_tail,
            freshness_half_life_days=self.freshness_half_life_days,
        )


@dataclass(frozen=True)
class ItemAttributes:
    """What the re-ranker knows of each catalogue column.

    Attributes:
        genres: each item's genre bit set (:func:`genre_bits`).
        release_seconds: release time in epoch seconds (NaN when unknown: never filtered,
            no freshness boost).
        popularity_percentile: in [0, 1], 1 = the most popular title in training.
    """

    genres: np.ndarray
    release_seconds: np.ndarray
    popularity_percentile: np.ndarray

    def __len__(self) -> int:
        return len(self.release_seconds)


def _normalised(scores: np.ndarray) -> np.ndarray:
    low, high = float(np.min(scores)), float(np.max(scores))
    if high - low <= 0:
        return np.ones_like(scores, dtype=np.float64)
    return (scores - low) / (high - low)


def allowed(
    columns: np.ndarray,
    item_ids: np.ndarray,
    attributes: ItemAttributes,
    config: RerankConfig,
    now_seconds: float,
) -> np.ndarray:
    """The hard filters: a bool mask over the candidates."""
    keep = np.ones(len(columns), dtype=bool)
    if config.exclude:
        keep &= ~np.isin(item_ids[columns], np.fromiter(config.exclude, dtype=np.int64))
    if config.exclude_unreleased:
        released = attributes.release_seconds[columns]
        keep &= ~(released > now_seconds)  # NaN compares False: unknown dates are kept
    return keep


def boosted_relevance(
    scores: np.ndarray,
    columns: np.ndarray,
    attributes: ItemAttributes,
    config: RerankConfig,
    now_seconds: float,
) -> np.ndarray:
    """Normalised relevance plus the freshness and long-tail boosts."""
    value = _normalised(np.asarray(scores, dtype=np.float64))
    if config.freshness:
        age_days = (now_seconds - attributes.release_seconds[columns]) / SECONDS_PER_DAY
        decay = np.power(0.5, np.clip(age_days, 0.0, None) / config.freshness_half_life_days)
        value = value + config.freshness * np.nan_to_num(decay, nan=0.0)
    if config.long_tail:
        value = value + config.long_tail * (1.0 - attributes.popularity_percentile[columns])
    return value


def genre_bits(genres: np.ndarray) -> np.ndarray:
    """Each row's genre flags as one uint64 bit set (at most 64 genres)."""
    flags = np.asarray(genres, dtype=bool)
    if flags.ndim != 2 or flags.shape[1] > 64:
        raise ValidationError("genre flags must be (items, at most 64 genres).")
    weights = np.left_shift(np.uint64(1), np.arange(flags.shape[1], dtype=np.uint64))
    return (flags.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def mmr_order(relevance: np.ndarray, bits: np.ndarray, diversity: float, k: int) -> np.ndarray:
    """Greedy maximal marginal relevance: positions of the ``k`` picks, in order.

    A compiled loop (numba), the same picks as :func:`mmr_order_numpy` (the reference,
    property-tested): on a 50-candidate pool and ``k`` = 10 the numpy version makes about
    a hundred array calls (83 us per row), which the request path cannot afford.

    Args:
        relevance: the candidates' (boosted) relevance.
        bits: their genre bit sets (:func:`genre_bits`); similarity is the Jaccard index.
        diversity: the trade-off in [0, 1]; 0 is the relevance order.
        k: picks.
    """
    n = len(relevance)
    k = min(k, n)
    if diversity == 0.0:
        return np.argsort(-relevance, kind="stable")[:k]
    values = np.ascontiguousarray(relevance, dtype=np.float64)
    return _mmr_loop(values, np.ascontiguousarray(bits, dtype=np.uint64), float(diversity), k)


@numba.njit(nogil=True, error_model="numpy", cache=True)
def _popcount(value: np.uint64) -> int:  # pragma: no cover - compiled
    count = 0
    while value:
        value &= value - np.uint64(1)
        count += 1
    return count


@numba.njit(nogil=True, error_model="numpy", cache=True)
def _mmr_loop(
    relevance: np.ndarray, bits: np.ndarray, diversity: float, k: int
) -> np.ndarray:  # pragma: no cover - compiled
    n = relevance.shape[0]
    sizes = np.empty(n, dtype=np.float64)
    for i in range(n):
        sizes[i] = _popcount(bits[i])
    value = (1.0 - diversity) * relevance
    closest = np.zeros(n)
    taken = np.zeros(n, dtype=np.bool_)
    picked = np.empty(k, dtype=np.int64)
    for step in range(k):
        best, best_value = -1, -np.inf
        for i in range(n):
            if not taken[i]:
                candidate = value[i] - diversity * closest[i]
                if best < 0 or candidate > best_value:
                    best, best_value = i, candidate
        picked[step] = best
        taken[best] = True
        for i in range(n):
            inter = float(_popcount(bits[i] & bits[best]))
            union = sizes[i] + sizes[best] - inter
            similarity = inter / union if union > 0 else 0.0
            if similarity > closest[i]:
                closest[i] = similarity
    return picked


def mmr_order_numpy(
    relevance: np.ndarray, bits: np.ndarray, diversity: float, k: int
) -> np.ndarray:
    """The reference of :func:`mmr_order`, in numpy."""
    n = len(relevance)
    k = min(k, n)
    if diversity == 0.0:
        return np.argsort(-relevance, kind="stable")[:k]
    sizes = np.bitwise_count(bits).astype(np.float64)
    picked = np.empty(k, dtype=np.int64)
    closest = np.zeros(n)
    value = (1.0 - diversity) * np.asarray(relevance, dtype=np.float64)
    for step in range(k):
        best = int(np.argmax(value - diversity * closest))
        picked[step] = best
        value[best] = -np.inf
        inter = np.bitwise_count(bits & bits[best]).astype(np.float64)
        union = sizes + sizes[best] - inter
        similarity = np.divide(inter, union, out=np.zeros(n), where=union > 0)
        np.maximum(closest, similarity, out=closest)
    return picked


def rerank(
    scores: np.ndarray,
    columns: np.ndarray,
    item_ids: np.ndarray,
    attributes: ItemAttributes,
    config: RerankConfig,
    k: int,
    now_seconds: float,
) -> np.ndarray:
    """Positions (into ``scores``/``columns``) of the row's ``k`` items, in display order.

    Args:
        scores: the ranker's scores of one user's candidates.
        columns: the candidates' catalogue columns.
        item_ids: the catalogue's item ids (to apply the exclusion list).
        attributes: the catalogue's genres, release times and popularity.
        config: the strengths and filters.
        k: the row's length.
        now_seconds: the time of the request (epoch seconds), for release filters and ages.
    """
    keep = np.flatnonzero(allowed(columns, item_ids, attributes, config, now_seconds))
    if len(keep) == 0:
        return keep
    if not config.reorders:
        order = np.argsort(-scores[keep], kind="stable")[:k]
        return keep[order]
    relevance = boosted_relevance(scores[keep], columns[keep], attributes, config, now_seconds)
    # MMR over the best candidates by boosted relevance (the ones it can ever pick first).
    best = np.argsort(-relevance, kind="stable")[: max(POOL_PER_SLOT * k, MIN_POOL)]
    picks = mmr_order(relevance[best], attributes.genres[columns[keep[best]]], config.diversity, k)
    return keep[best[picks]]
