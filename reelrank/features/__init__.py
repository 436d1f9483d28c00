"""Point-in-time features: builders, request-time cross features and feature providers.

``builders`` computes the point-in-time tables, ``cross`` the request-time user x item
features, ``protocol`` the :class:`FeatureProvider` seam, ``in_memory`` the providers over
tables held in memory and ``feast/`` everything Feast (definitions, store, providers).
"""

from __future__ import annotations

from reelrank.features.builders import build_item_features, build_user_features
from reelrank.features.columns import CROSS_FEATURES, ITEM_FEATURES, USER_FEATURES
from reelrank.features.cross import cross_features
from reelrank.features.in_memory import InMemoryFeatureProvider, SnapshotFeatureProvider
from reelrank.features.protocol import FeatureProvider

__all__ = [
    "CROSS_FEATURES",
    "ITEM_FEATURES",
    "USER_FEATURES",
    "FeatureProvider",
    "InMemoryFeatureProvider",
    "SnapshotFeatureProvider",
    "build_item_features",
    "build_user_features",
    "cross_features",
]
