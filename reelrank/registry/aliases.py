"""The roles a registered version can hold, and who holds them.

A new version always becomes :attr:`Alias.CHALLENGER`; the promotion gate
(:mod:`reelrank.registry.gate`) decides whether it also becomes :attr:`Alias.CHAMPION`,
the version the service loads. (Cross-validation calls the re-evaluated champion the
*incumbent*, a model label, not an alias: :data:`reelrank.training.config.INCUMBENT`.)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from reelrank.registry.store import client


class Alias(StrEnum):
    """A registry alias (``models:/<name>@<alias>``)."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


def version_by_alias(name: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or ``None`` when nobody holds it."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def set_alias(name: str, alias: Alias, version: str) -> None:
    client().set_registered_model_alias(name, alias.value, version)


def tag_version(name: str, version: str, key: str, value: str) -> None:
    client().set_model_version_tag(name, version, key, value)
