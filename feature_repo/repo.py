"""ReelRank's Feast repo: the objects ``feast apply`` registers.

The definitions themselves (typed, described fields, ttl, owner, tags and the versioned
``ranker_v1`` FeatureService) live in ``reelrank/features/feast/definitions.py`` so the library
applies the very same objects. Here they are bound to the offline parquet under
``REELRANK_DATA_DIR/features`` (``REELRANK_FEATURES_DIR``); relative paths are read from the
project root, the parent of this directory.

Usage, from the project root:
    feast -c feature_repo feature-views list
    feast -c feature_repo feature-services describe ranker_v1
"""

from pathlib import Path

from reelrank.config import Settings
from reelrank.features.feast.definitions import build_definitions
from reelrank.features.feast.repo_config import offline_dir

_definitions = build_definitions(
    offline_dir(Settings(), root=Path(__file__).resolve().parent.parent)
)

user = _definitions.user
item = _definitions.item
user_features_source = _definitions.user_source
item_features_source = _definitions.item_source
user_features = _definitions.user_view
item_features = _definitions.item_view
ranker_v1 = _definitions.ranker_v1
