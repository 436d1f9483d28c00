"""Name -> factory registries: how a new retrieval source or ranker plugs in by addition.

The built-in entries live in their own module (``builtins``), imported on the first
lookup, so registering from outside the package (a test, a plug-in module named by
``REELRANK_PLUGINS``) never needs an edit of the core.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from reelrank.exceptions import ValidationError

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """Factories by name for one kind of component.

    Args:
        kind: what is registered (for error messages), e.g. ``"ranker"``.
        builtins: module that registers the built-in entries when imported.
    """

    def __init__(self, kind: str, builtins: str) -> None:
        self.kind = kind
        self.builtins = builtins
        self._factories: dict[str, F] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.builtins)

    def register(self, name: str, factory: F) -> None:
        """Add (or replace) ``name``."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ValidationError(
                f"{self.kind} name {name!r} must be letters, digits, '-' or '_' (it becomes "
                "part of feature and metric names)."
            )
        self._load()
        self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plug-in's test cleaning up after itself)."""
        self._factories.pop(name, None)

    def get(self, name: str) -> F:
        self._load()
        try:
            return self._factories[name]
        except KeyError:
            raise ValidationError(
                f"unknown {self.kind} {name!r}; choose from {', '.join(sorted(self))}."
            ) from None

    def make(self, name: str, *args: Any, **params: Any) -> Any:
        """Build the component registered as ``name``."""
        return self.get(name)(*args, **params)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._factories))
