"""The partial top-n and per-cell ranks of retrieval equal the full stable ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelrank.models.interactions import rank_rows, ranks_at, top_n_mask

SPECIALS = (0.0, -0.0, 1.0, np.inf, -np.inf, np.nan)


@st.composite
def score_blocks(draw):
    """Small score blocks full of ties, infinities and NaN, in float32 or float64."""
    n_rows = draw(st.integers(1, 6))
    n_cols = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    values = draw(
        st.lists(
            st.one_of(st.sampled_from(SPECIALS), st.integers(-3, 3).map(float)),
            min_size=n_rows * n_cols,
            max_size=n_rows * n_cols,
        )
    )
    return np.array(values, dtype=dtype).reshape(n_rows, n_cols)


@settings(max_examples=300, deadline=None)
@given(scores=score_blocks(), n=st.integers(0, 45))
def test_top_n_mask_and_ranks_at_equal_the_full_ranking(scores, n):
    reference = rank_rows(scores)
    mask = top_n_mask(scores, n)
    np.testing.assert_array_equal(mask, reference <= n)
    rows, cols = np.nonzero(np.ones(scores.shape, dtype=bool))  # every cell, NaN ones too
    np.testing.assert_array_equal(ranks_at(scores, rows, cols), reference[rows, cols])


def test_large_block_with_ties_equals_the_full_ranking():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 3000)).astype(np.float32)
    scores[:, 2000:] = 0.0  # a tied tail (items a source cannot score)
    scores[:, 10:40] = 1.5  # ties inside the top
    scores[rng.random(scores.shape) < 0.01] = -np.inf  # seen items
    reference = rank_rows(scores)
    mask = top_n_mask(scores, 150)
    np.testing.assert_array_equal(mask, reference <= 150)
    rows, cols = np.nonzero(mask | (rng.random(scores.shape) < 0.05))
    np.testing.assert_array_equal(ranks_at(scores, rows, cols), reference[rows, cols])


def test_ranks_at_refuses_unsorted_rows():
    with pytest.raises(ValueError, match="ascending"):
        ranks_at(np.zeros((2, 3)), np.array([1, 0]), np.array([0, 0]))
