"""Scoring a user's candidates with the loaded model's ranker, behind one protocol.

:class:`~serving.scoring.protocol.Scorer` splits the work in three: ``prepare`` (once per
candidate set: at model load for precomputed users, else on first use), ``features``
(per request: the request-time inputs) and ``score``. Two implementations:

* :class:`~serving.scoring.predict.PredictScorer`, the default: the model's feature layout
  assembles the full matrix and the ranker's own ``predict`` scores it;
* :class:`~serving.scoring.compiled.CompiledScorer`, the fast path for LightGBM trees:
  splits on features that do not change between requests are evaluated once per candidate
  set, and only the request-time splits per request, in a compiled loop. It is used only
  when it proves, at load, that it gives exactly the ranker's scores
  (:func:`choose_scorer`).
"""

from __future__ import annotations

from serving.scoring.compiled import CompiledScorer
from serving.scoring.inputs import RankerInputs
from serving.scoring.predict import PredictScorer
from serving.scoring.protocol import Candidates, Scorer, choose_scorer

__all__ = [
    "Candidates",
    "CompiledScorer",
    "PredictScorer",
    "RankerInputs",
    "Scorer",
    "choose_scorer",
]
