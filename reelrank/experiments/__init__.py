"""Experiments: what an experiment is (:mod:`~reelrank.experiments.config`) and who is in
which arm (:mod:`~reelrank.experiments.assignment`). A/B analysis, interleaving and
off-policy estimators belong here too."""
