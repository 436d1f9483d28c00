"""Slate policies: the propensities they log are exact, and the samplers draw by them."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from reelrank.experiments.config import EpsilonPolicy, GreedyPolicy, PlackettLucePolicy
from reelrank.loop.policy import (
    draw_slate,
    epsilon_conditionals,
    marginal_propensities,
    plackett_luce_conditionals,
    plackett_luce_marginals,
    plackett_luce_weights,
    policy_seed,
)

SCORES = np.array([2.0, -np.inf, 1.5, 0.2, 1.1, -0.4, 0.9])  # one filtered-out candidate
DRAWS = 20_000


def _slate_probability_pl(weights: np.ndarray, order: tuple[int, ...]) -> float:
    return float(np.prod(plackett_luce_conditionals(weights, np.asarray(order))))


def test_greedy_is_the_top_k_with_propensity_one():
    draw = draw_slate(GreedyPolicy(), SCORES, 3, seed=1)
    assert draw.order.tolist() == [0, 2, 4]
    assert draw.propensity.tolist() == [1.0, 1.0, 1.0]
    assert draw.slate_propensity == 1.0
    assert marginal_propensities(GreedyPolicy(), SCORES, draw).tolist() == [1.0, 1.0, 1.0]


def test_a_filtered_candidate_is_never_shown():
    for seed in range(200):
        for policy in (EpsilonPolicy(epsilon=1.0, pool=7), PlackettLucePolicy(temperature=5.0)):
            assert 1 not in draw_slate(policy, SCORES, 4, seed).order


def test_plackett_luce_step_probabilities_sum_to_one_and_slates_to_one():
    weights = plackett_luce_weights(np.array([1.0, 0.3, -0.5, 2.0, 0.0]), temperature=0.7)
    n = 3
    total = 0.0
    for order in itertools.permutations(range(len(weights)), n):
        for step in range(n):  # each step: a distribution over the remaining candidates
            remaining = [c for c in range(len(weights)) if c not in order[:step]]
            step_total = sum(
                plackett_luce_conditionals(weights, np.array([*order[:step], c]))[step]
                for c in remaining
            )
            assert step_total == pytest.approx(1.0)
        total += _slate_probability_pl(weights, order)
    assert total == pytest.approx(1.0)


def test_plackett_luce_marginals_equal_exact_enumeration():
    weights = plackett_luce_weights(np.array([0.4, 1.2, -0.3, 0.8, 0.1, -1.0]), temperature=0.9)
    n = 3
    expected = np.zeros((len(weights), n))
    for order in itertools.permutations(range(len(weights)), n):
        probability = _slate_probability_pl(weights, order)
        for position, item in enumerate(order):
            expected[item, position] += probability
    marginals = plackett_luce_marginals(weights, n)
    np.testing.assert_allclose(marginals, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(marginals.sum(axis=0), 1.0)  # each position shows one item


@pytest.mark.parametrize(
    "policy", [PlackettLucePolicy(temperature=0.8, pool=5), EpsilonPolicy(epsilon=0.4, pool=5)]
)
def test_the_sampler_draws_slates_with_the_logged_probability(policy):
    """Monte Carlo: each slate's frequency over many seeds matches its slate propensity,
    and the logged propensity is the same whenever the same slate is drawn."""
    scores = np.array([1.0, 0.6, 0.1, -0.2, -0.9])
    frequency: Counter[tuple[int, ...]] = Counter()
    logged: dict[tuple[int, ...], float] = {}
    for seed in range(DRAWS):
        draw = draw_slate(policy, scores, 3, seed)
        key = tuple(draw.order.tolist())
        frequency[key] += 1
        assert logged.setdefault(key, draw.slate_propensity) == pytest.approx(draw.slate_propensity)
        assert np.prod(draw.propensity) == pytest.approx(draw.slate_propensity)
    assert sum(logged.values()) == pytest.approx(1.0, abs=1e-9)  # every slate was drawn
    for key, count in frequency.items():
        p = logged[key]
        tolerance = 5 * np.sqrt(p * (1 - p) / DRAWS) + 1e-3
        assert count / DRAWS == pytest.approx(p, abs=tolerance), key


def test_the_sampler_matches_the_exact_plackett_luce_marginals():
    scores = np.array([1.0, 0.6, 0.1, -0.2, -0.9, 0.3])
    policy = PlackettLucePolicy(temperature=0.5, pool=6)
    counts = np.zeros((6, 3))
    for seed in range(DRAWS):
        draw = draw_slate(policy, scores, 3, seed)
        counts[draw.order, np.arange(3)] += 1
    exact = plackett_luce_marginals(plackett_luce_weights(scores, 0.5), 3)
    np.testing.assert_allclose(counts / DRAWS, exact, atol=0.012)
    draw = draw_slate(policy, scores, 3, seed=7)
    logged = marginal_propensities(policy, scores, draw)
    assert logged is not None
    np.testing.assert_allclose(logged, exact[draw.order, np.arange(3)])


def test_epsilon_probabilities_are_exact():
    epsilon, n, m = 0.3, 4, 3
    total = 1.0 - epsilon  # the greedy slate
    for swap in range(n):
        conditional = epsilon_conditionals(epsilon, n, m, swap)
        assert np.prod(conditional) == pytest.approx(epsilon / (n * m))
        total += m * np.prod(conditional)  # any of the m pool items at that slot
    assert total == pytest.approx(1.0)
    assert np.prod(epsilon_conditionals(epsilon, n, m, -1)) == pytest.approx(1.0 - epsilon)
    # Per step, over what can come next (the greedy item or any pool item), sums to 1.
    unswapped = epsilon_conditionals(epsilon, n, m, -1)
    for position in range(n):
        pool_item = epsilon_conditionals(epsilon, n, m, position)[position]
        assert unswapped[position] + m * pool_item == pytest.approx(1.0)


def test_epsilon_marginals_match_sampling():
    scores = np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    policy = EpsilonPolicy(epsilon=0.5, pool=6)
    counts = np.zeros((6, 3))
    marginal = np.zeros((6, 3))
    for seed in range(DRAWS):
        draw = draw_slate(policy, scores, 3, seed)
        counts[draw.order, np.arange(3)] += 1
        logged = marginal_propensities(policy, scores, draw)
        marginal[draw.order, np.arange(3)] = logged
    np.testing.assert_allclose(counts / DRAWS, marginal, atol=0.01)
    assert marginal[0, 0] == pytest.approx(1 - 0.5 / 3)
    assert marginal[5, 1] == pytest.approx(0.5 / (3 * 3))


def test_draws_are_reproducible_from_the_request_id():
    policy = PlackettLucePolicy(temperature=1.0)
    scores = np.linspace(1, 0, 30)
    first = draw_slate(policy, scores, 10, policy_seed("request-abc"))
    again = draw_slate(policy, scores, 10, policy_seed("request-abc"))
    other = draw_slate(policy, scores, 10, policy_seed("request-abd"))
    assert first.order.tolist() == again.order.tolist()
    assert first.order.tolist() != other.order.tolist()


def test_a_short_pool_shows_what_there_is():
    scores = np.array([1.0, 0.5])
    for policy in (GreedyPolicy(), EpsilonPolicy(epsilon=1.0), PlackettLucePolicy()):
        draw = draw_slate(policy, scores, 10, seed=3)
        assert sorted(draw.order.tolist()) == [0, 1]
        assert len(draw.propensity) == 2
