"""The exception the evaluation package raises for bad inputs."""

from __future__ import annotations

from reelrank.exceptions import ReelRankError


class EvaluationError(ReelRankError, ValueError):
    """Evaluation inputs are unusable: missing columns, bad ``k``, empty targets or folds."""
