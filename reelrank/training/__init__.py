"""Step 3, the model step, as a package that reads in order.

1. :mod:`~reelrank.training.config`: what a run trains (``TrainConfig``, the model labels
   and the models cross-validated side by side);
2. :mod:`~reelrank.training.crossval`: time-aware cross-validation on identical folds;
3. :mod:`~reelrank.training.diagnostics`: candidate recall, the ranker's pointwise view,
   the learning curve and the regularisation sweep on the last fold;
4. :mod:`~reelrank.training.report`: the run report, sole owner of the result files;
5. :mod:`~reelrank.training.tracking`: every MLflow ``log_*`` call;
6. :mod:`~reelrank.training.steps`: the entry function, :func:`train_and_register`, and
   the steps the Prefect flow runs as tasks.

Registration, aliases and the promotion gate live in :mod:`reelrank.registry`;
:mod:`~reelrank.training.results_page` renders the design docs' results pages.
"""

from __future__ import annotations

from reelrank.training.config import TrainConfig
from reelrank.training.report import RunReport
from reelrank.training.steps import train_and_register

__all__ = ["RunReport", "TrainConfig", "train_and_register"]
