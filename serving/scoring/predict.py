"""The default scorer: the full matrix through the model's layout, the ranker's ``predict``."""

from __future__ import annotations

from typing import Any

import numpy as np

from reelrank.models.retrieval import RetrievedBlock
from serving.scoring.inputs import RankerInputs
from serving.scoring.protocol import Candidates


class PredictScorer:
    """Scores with ``ranker.predict`` on the matrix :class:`RankerInputs` assembles."""

    def __init__(self, ranker: Any, inputs: RankerInputs) -> None:
        self.ranker = ranker
        self.inputs = inputs

    def prepare(self, block: RetrievedBlock, row: int) -> Candidates:
        return Candidates(block)

    def features(self, candidates: Candidates, row: int, user_row: np.ndarray | None) -> np.ndarray:
        return self.inputs.matrix(candidates.block, row, user_row)

    def score(self, candidates: Candidates, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.ranker.predict(features), dtype=np.float64)
