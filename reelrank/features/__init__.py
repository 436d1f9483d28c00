"""Point-in-time features: builders, request-time cross features and feature providers.

Feast-specific code (``reelrank.features.store`` and the Feast providers) imports Feast
lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from reelrank.features.builders import build_item_features, build_user_features
from reelrank.features.columns import CROSS_FEATURES, ITEM_FEATURES, USER_FEATURES
from reelrank.features.cross import cross_features
from reelrank.features.providers import (
    FeastOfflineProvider,
    FeastOnlineProvider,
    InMemoryFeatureProvider,
)

__all__ = [
    "CROSS_FEATURES",
    "ITEM_FEATURES",
    "USER_FEATURES",
    "FeastOfflineProvider",
    "FeastOnlineProvider",
    "InMemoryFeatureProvider",
    "build_item_features",
    "build_user_features",
    "cross_features",
]
