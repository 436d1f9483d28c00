"""Slate policies: which ``k`` of the ranked candidates a request shows, in which order, and
the exact probability of that choice (what off-policy evaluation needs).

Every policy looks at the candidates' ranker scores only. Its *pool* is the best
``max(pool, k)`` candidates with a finite score (a filtered-out candidate has ``-inf``),
best first; ``n = min(k, len(pool))`` items are shown. Three probabilities are defined for
the shown item ``a_p`` at position ``p`` (1-based) and are what the served-slate log holds:

* ``propensity``: ``P(a_p at p | a_1 .. a_{p-1} at positions 1 .. p-1)``, the conditional
  choice probability; it is exact for every policy, the choice probabilities over the
  remaining candidates at each step sum to 1, and
* ``slate_propensity``: their product, the probability of the whole ordered slate;
* ``marginal_propensity``: ``P(a_p shown at p)``, integrating over the other positions;
  exact in closed form for greedy and epsilon, and for Plackett-Luce by a dynamic programme
  over subsets of the pool when the pool has at most :data:`MAX_EXACT_POOL` items (else not
  computed: ``None``).

The policies (configured by :mod:`reelrank.experiments.config`):

* **greedy**: the top ``n`` by score. Every propensity is 1.
* **epsilon** (slot swap): the greedy slate; with probability ``epsilon`` one position
  ``j`` (uniform over ``1..n``) shows an item drawn uniformly from the ``m`` pool items
  ranked below ``n`` instead. Slate probability ``1 - epsilon`` (no swap) or
  ``epsilon / (n m)``; marginals ``1 - epsilon / n`` for a greedy item at its own position
  and ``epsilon / (n m)`` for a swapped-in item; conditionals by the chain rule (with
  ``q_p = 1 - epsilon (p - 1) / n`` the chance no swap happened before ``p``: the greedy
  item ``q_{p+1} / q_p`` and each pool item ``epsilon / (n m q_p)`` while no swap has
  happened, the greedy item 1 after one). With ``m = 0`` it is greedy.
* **Plackett-Luce** with temperature ``t``: items drawn one after another without
  replacement, the next one ``i`` with probability ``w_i / sum of the remaining w``,
  ``w_i = exp(s_i / t)``; sampled exactly as the top ``n`` of ``s_i / t + Gumbel`` noise.
  Low ``t`` approaches greedy, high ``t`` uniform over the pool.

Draws are reproducible: the random stream is seeded from the request id
(:func:`policy_seed`), so a logged slate can be drawn again from its record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from reelrank.exceptions import ValidationError
from reelrank.experiments.config import (
    EpsilonPolicy,
    GreedyPolicy,
    PlackettLucePolicy,
    PolicyConfig,
)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

MAX_EXACT_POOL: Final = 16
"""Largest Plackett-Luce pool whose marginals are computed exactly (2**16 subsets)."""
_MIN_LOG_WEIGHT: Final = -700.0  # exp() stays a positive double


def policy_seed(request_id: str) -> int:
    """The policy's random seed for a request: 8 bytes of BLAKE2b of its id."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8, person=b"reelrank").digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class SlateDraw:
    """What a policy chose, as indices into the scores it was given.

    Attributes:
        order: the shown candidates, position order.
        propensity: per position, P(that item there | the items before it).
        slate_propensity: the product of ``propensity``.
        pool: the candidates it could show, best score first.
    """

    order: IntArray
    propensity: FloatArray
    slate_propensity: float
    pool: IntArray


def top_pool(scores: FloatArray, size: int) -> IntArray:
    """Indices of the ``size`` best finite scores, best first (ties: earlier index first)."""
    order = np.argsort(-scores, kind="stable")[:size]
    return order[np.isfinite(scores[order])].astype(np.int64)


def draw_slate(policy: PolicyConfig, scores: FloatArray, k: int, seed: int) -> SlateDraw:
    """The slate ``policy`` shows for candidates with ``scores`` (see the module docstring)."""
    if k < 1:
        raise ValidationError(f"a slate needs k >= 1 (got {k}).")
    if isinstance(policy, GreedyPolicy):
        pool = top_pool(scores, k)
        return SlateDraw(pool, np.ones(len(pool)), 1.0, pool)
    pool = top_pool(scores, max(policy.pool, k))
    rng = np.random.Generator(np.random.PCG64(seed))
    if isinstance(policy, EpsilonPolicy):
        return _epsilon(policy.epsilon, pool, min(k, len(pool)), rng)
    if isinstance(policy, PlackettLucePolicy):
        return _plackett_luce(pool, scores[pool] / policy.temperature, min(k, len(pool)), rng)
    raise ValidationError(f"unknown policy {policy!r}.")


def _epsilon(epsilon: float, pool: IntArray, n: int, rng: np.random.Generator) -> SlateDraw:
    m = len(pool) - n
    order = pool[:n].copy()
    if m == 0 or epsilon == 0.0:
        return SlateDraw(order, np.ones(n), 1.0, pool)
    swap = int(rng.integers(n)) if rng.random() < epsilon else -1
    if swap >= 0:
        order[swap] = pool[n + int(rng.integers(m))]
    return SlateDraw(
        order, epsilon_conditionals(epsilon, n, m, swap), _epsilon_slate(epsilon, n, m, swap), pool
    )


def _epsilon_slate(epsilon: float, n: int, m: int, swap: int) -> float:
    return 1.0 - epsilon if swap < 0 else epsilon / (n * m)


def epsilon_conditionals(epsilon: float, n: int, m: int, swap: int) -> FloatArray:
    """Per position, P(shown item | earlier ones) of an epsilon slate swapped at ``swap``
    (0-based; -1: no swap)."""
    positions = np.arange(1, n + 1, dtype=np.float64)
    unswapped_before = 1.0 - epsilon * (positions - 1.0) / n  # q_p
    greedy_next = (1.0 - epsilon * positions / n) / unswapped_before
    out = greedy_next.copy()
    if swap >= 0:
        out[swap] = epsilon / (n * m) / unswapped_before[swap]
        out[swap + 1 :] = 1.0
    return out


def epsilon_marginals(
    epsilon: float, n: int, m: int, order: IntArray, pool: IntArray
) -> FloatArray:
    """Per position, P(that item shown at that position) under the epsilon policy."""
    if m == 0:
        return np.ones(n)
    greedy = order == pool[:n]
    return np.where(greedy, 1.0 - epsilon / n, epsilon / (n * m))


def _log_weights(logits: FloatArray) -> FloatArray:
    return np.maximum(logits - logits.max(initial=-np.inf), _MIN_LOG_WEIGHT)


def _plackett_luce(
    pool: IntArray, logits: FloatArray, n: int, rng: np.random.Generator
) -> SlateDraw:
    log_w = _log_weights(logits)
    keys = log_w + rng.gumbel(size=len(pool))
    picks = np.argsort(-keys, kind="stable")[:n]
    conditional = plackett_luce_conditionals(np.exp(log_w), picks)
    return SlateDraw(pool[picks], conditional, float(np.prod(conditional)), pool)


def plackett_luce_conditionals(weights: FloatArray, picks: IntArray) -> FloatArray:
    """Per step, ``w[pick] / (sum of w not picked before)``."""
    chosen = weights[picks]
    remaining = weights.sum() - np.concatenate(([0.0], np.cumsum(chosen)[:-1]))
    return chosen / remaining


def plackett_luce_weights(scores: FloatArray, temperature: float) -> FloatArray:
    """The (scaled) Plackett-Luce weights ``exp(s / t)`` of a pool, as the sampler uses them."""
    return np.exp(_log_weights(np.asarray(scores, dtype=np.float64) / temperature))


def plackett_luce_marginals(weights: FloatArray, n: int) -> FloatArray:
    """``P[i, p]`` = probability that pool item ``i`` is shown at position ``p`` (0-based).

    Exact, by a dynamic programme over subsets: ``f(S)``, the probability that the first
    ``|S|`` draws are the set ``S`` in some order, is
    ``sum over j in S of f(S - j) w_j / (W - w(S - j))``, and
    ``P[i, p] = sum over |S| = p, i not in S of f(S) w_i / (W - w(S))``.

    Raises:
        ValidationError: the pool is larger than :data:`MAX_EXACT_POOL`.
    """
    size = len(weights)
    if size > MAX_EXACT_POOL:
        raise ValidationError(
            f"exact Plackett-Luce marginals need a pool of at most {MAX_EXACT_POOL} "
            f"(got {size}); estimate them by drawing again with the logged seed instead."
        )
    n = min(n, size)
    masks = np.arange(1 << size, dtype=np.int64)
    bits = (masks[:, None] >> np.arange(size)) & 1
    mass = bits @ weights
    count = bits.sum(axis=1)
    total = float(weights.sum())
    first = np.zeros(1 << size)
    first[0] = 1.0
    out = np.zeros((size, n))
    for position in range(n):
        layer = masks[count == position]
        reach, rest = first[layer], total - mass[layer]
        for item in range(size):
            free = bits[layer, item] == 0
            step = reach[free] * weights[item] / rest[free]
            out[item, position] = step.sum()
            if position + 1 < n:
                first[layer[free] | (1 << item)] += step
    return out


def marginal_propensities(
    policy: PolicyConfig, scores: FloatArray, draw: SlateDraw
) -> FloatArray | None:
    """Per position, the exact ``P(that item shown at that position)``; ``None`` for a
    Plackett-Luce pool larger than :data:`MAX_EXACT_POOL`."""
    n = len(draw.order)
    if isinstance(policy, GreedyPolicy):
        return np.ones(n)
    if isinstance(policy, EpsilonPolicy):
        m = len(draw.pool) - n
        return epsilon_marginals(policy.epsilon if m else 0.0, n, m, draw.order, draw.pool)
    if len(draw.pool) > MAX_EXACT_POOL:
        return None
    assert isinstance(policy, PlackettLucePolicy)
    weights = plackett_luce_weights(scores[draw.pool], policy.temperature)
    table = plackett_luce_marginals(weights, n)
    where = {int(candidate): row for row, candidate in enumerate(draw.pool)}
    return np.array([table[where[int(c)], p] for p, c in enumerate(draw.order)])
