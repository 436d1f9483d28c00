"""ReelRank: a worked, running answer to 'Design the Top-picks-for-you row'."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Recommender", "__version__"]

if TYPE_CHECKING:
    from reelrank.models.recommender import Recommender


def __getattr__(name: str) -> Any:
    # Lazy, so `import reelrank` stays cheap and has no side effects.
    if name == "Recommender":
        from reelrank.models.recommender import Recommender

        return Recommender
    raise AttributeError(f"module 'reelrank' has no attribute {name!r}")
