"""The fast path: LightGBM trees split into static and request-time splits.

For a loaded model, only the user's stored row and the cross features change between
requests (``layout.request_time``). :meth:`CompiledScorer.prepare` evaluates every other
split once per candidate set (the "static reach" bitmasks of
:class:`~serving.scoring.trees.PartialScorer`); per request, the compiled loop evaluates
the request-time splits and sums the leaves, bit-identical to ``Booster.predict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from reelrank.models.retrieval import RetrievedBlock
from serving.scoring.inputs import NO_USER_FEATURES, RankerInputs
from serving.scoring.predict import PredictScorer
from serving.scoring.protocol import Candidates
from serving.scoring.trees import CompiledTrees, PartialScorer

PROBE_ROWS: Final = 256
PROBE_SETS: Final = 8


class CompiledScorer:
    """Static masks per candidate set, request-time splits per request."""

    def __init__(self, inputs: RankerInputs, partial: PartialScorer) -> None:
        self.inputs = inputs
        self.partial = partial

    @classmethod
    def build(cls, ranker: Any, inputs: RankerInputs) -> CompiledScorer | None:
        """The compiled scorer of ``ranker``; None when it is not a LightGBM booster the
        trees reproduce exactly (checked on random rows) or reads no features."""
        booster = getattr(ranker, "booster_", None)
        if booster is None or not inputs.uses_features:
            return None
        compiled = CompiledTrees.from_booster(booster)
        if compiled is None:
            return None
        rng = np.random.default_rng(0)
        probe = rng.normal(0.0, 3.0, size=(PROBE_ROWS, booster.num_feature())).astype(np.float32)
        probe[rng.random(probe.shape) < 0.2] = np.nan
        probe[rng.random(probe.shape) < 0.1] = 0.0
        if not np.allclose(compiled.predict(probe), ranker.predict(probe), rtol=0, atol=1e-9):
            return None
        return cls(inputs, compiled.partial(inputs.layout.request_time))

    def prepare(self, block: RetrievedBlock, row: int) -> Candidates:
        if len(block.rows) == 0:
            return Candidates(block)
        X = self.inputs.matrix(block, row, NO_USER_FEATURES)
        return Candidates(block, self.partial.static_reach(X))

    def features(self, candidates: Candidates, row: int, user_row: np.ndarray | None) -> np.ndarray:
        assert user_row is not None
        return self.inputs.dynamic(candidates.block, user_row)

    def score(self, candidates: Candidates, features: np.ndarray) -> np.ndarray:
        assert candidates.static is not None
        return self.partial.score(candidates.static, features)

    def agrees_with(
        self, reference: PredictScorer, probes: Iterable[tuple[RetrievedBlock, int]]
    ) -> bool:
        """Whether this scorer gives exactly ``reference``'s scores on real candidate sets
        with random user rows (``tests/serving/test_parts.py`` proves it in general)."""
        rng = np.random.default_rng(0)
        for n, (block, row) in enumerate(probes):
            if n >= PROBE_SETS:
                break
            if len(block.rows) == 0:
                continue
            user_row = rng.normal(0.0, 2.0, len(NO_USER_FEATURES))
            user_row[rng.random(len(user_row)) < 0.2] = np.nan
            mine = self.prepare(block, row)
            theirs = reference.prepare(block, row)
            fast = self.score(mine, self.features(mine, row, user_row))
            full = reference.score(theirs, reference.features(theirs, row, user_row))
            if not np.array_equal(fast, full):
                return False
        return True
