"""The scorer protocol, prepared candidates, and choosing a scorer at model load."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from reelrank.models.retrieval import RetrievedBlock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidates:
    """One user's retrieved candidates, prepared for a scorer.

    Attributes:
        block: the candidate union with every source's score and rank.
        static: what the scorer precomputed for this candidate set (None if nothing).
    """

    block: RetrievedBlock
    static: np.ndarray | None = None


class Scorer(Protocol):
    """Scores one user's candidates; see :mod:`serving.scoring`."""

    def prepare(self, block: RetrievedBlock, row: int) -> Candidates:
        """The work that does not depend on the request (``row``: the user's matrix row)."""
        ...

    def features(self, candidates: Candidates, row: int, user_row: np.ndarray | None) -> Any:
        """The request-time inputs (``user_row``: stored user features, USER_FEATURES order)."""
        ...

    def score(self, candidates: Candidates, features: Any) -> np.ndarray:
        """float64 scores, one per candidate, exactly the ranker's."""
        ...


def choose_scorer(ranker: Any, inputs: Any, probes: Iterable[tuple[RetrievedBlock, int]]) -> Scorer:
    """The compiled scorer when it reproduces ``ranker`` exactly on ``probes`` (real
    candidate sets with random user rows), else the ranker's own ``predict``."""
    from serving.scoring.compiled import CompiledScorer
    from serving.scoring.predict import PredictScorer

    default = PredictScorer(ranker, inputs)
    compiled = CompiledScorer.build(ranker, inputs)
    if compiled is None:
        return default
    if not compiled.agrees_with(default, probes):
        logger.warning("compiled tree scores disagree with the ranker; scoring with predict")
        return default
    return compiled
