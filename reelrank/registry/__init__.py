"""The MLflow model registry: the store, the aliases, the promotion gate, loading models.

``store`` points MLflow at the configured tracking and registry store; ``aliases`` names
the roles a version can hold (:class:`Alias`); ``gate`` decides whether a new version may
become champion (a pure function); ``models`` is the registered model's format and how a
version is registered and loaded back. Everything MLflow *logs* during training lives in
:mod:`reelrank.training.tracking`.
"""

from __future__ import annotations

from reelrank.registry.aliases import Alias

__all__ = ["Alias"]
