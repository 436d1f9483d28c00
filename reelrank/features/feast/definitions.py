"""The Feast objects of ReelRank: entities, file sources, feature views, ``ranker_v1``.

Built by a function from the offline parquet paths, so the library (``apply_definitions``)
and the Feast repo in ``features/`` (for the ``feast`` CLI) declare exactly the same
objects. Every field is typed and described; views carry ttl, owner and tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from reelrank.features import columns as cols
from reelrank.schema import EVENT_TIMESTAMP, GENRE_VOCAB, ITEM_ID, USER_ID

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureView, FileSource

OWNER: Final = "ml-platform@reelrank.example"
USER_FEATURES_FILE: Final = "user_features.parquet"
ITEM_FEATURES_FILE: Final = "item_features.parquet"

_W = cols.WINDOWS_DAYS
DESCRIPTIONS: Final[dict[str, str]] = {
    cols.USER_EVENTS_7D: f"Ratings by the user in the {_W[0]} days before the snapshot.",
    cols.USER_EVENTS_30D: f"Ratings by the user in the {_W[1]} days before the snapshot.",
    cols.USER_EVENTS_90D: f"Ratings by the user in the {_W[2]} days before the snapshot.",
    cols.USER_EVENTS_TOTAL: "Ratings by the user before the snapshot (all history).",
    cols.USER_RATING_MEAN: "Mean rating the user gave (all history).",
    cols.USER_RATING_STD: "Sample standard deviation of the user's ratings (null below 2).",
    cols.USER_RATING_MEAN_30D: "Mean rating the user gave in the last 30 days (null if none).",
    cols.USER_DAYS_SINCE_LAST_EVENT: (
        f"Days since the user's last rating day, capped at {cols.RECENCY_CAP_DAYS}."
    ),
    cols.USER_MEAN_ITEM_LOG_POP: (
        "Mean log(1 + 30-day event count) of the items the user rated, at rating time: "
        "the user's taste for popular titles."
    ),
    cols.USER_AGE: "Age the user gave at sign-up (null if unknown).",
    cols.USER_GENDER: "Gender code: 0 male, 1 female, -1 unknown.",
    cols.USER_OCCUPATION: "Occupation code (index in sorted occupations), -1 unknown.",
    cols.USER_ZIP_REGION: "First digit of the ZIP code (US region), -1 unknown.",
    cols.ITEM_EVENTS_7D: f"Ratings of the item in the {_W[0]} days before the snapshot.",
    cols.ITEM_EVENTS_30D: f"Ratings of the item in the {_W[1]} days before the snapshot.",
    cols.ITEM_EVENTS_90D: f"Ratings of the item in the {_W[2]} days before the snapshot.",
    cols.ITEM_EVENTS_TOTAL: "Ratings of the item before the snapshot (all history).",
    cols.ITEM_TREND_7D: "(ratings in the last 7 days + 1) / (ratings in the 7 days before + 1).",
    cols.ITEM_LOG_POP_30D: "log(1 + ratings in the last 30 days).",
    cols.ITEM_POPULARITY_RANK: (
        "Rank by 30-day ratings among all items (1 = most; null with none in 30 days)."
    ),
    cols.ITEM_RATING_MEAN_BAYES: (
        f"Mean rating shrunk to the global mean with {cols.BAYES_PRIOR_STRENGTH:g} pseudo-ratings."
    ),
    cols.ITEM_DAYS_SINCE_RELEASE: "Days from release to the snapshot (null if unknown).",
}
for _genre, _share, _flag in zip(GENRE_VOCAB, cols.USER_GENRE_SHARE, cols.ITEM_GENRE, strict=True):
    DESCRIPTIONS[_share] = f"Share of the user's ratings (all history) of {_genre} titles."
    DESCRIPTIONS[_flag] = f"The item is tagged {_genre}."

_INT_COLUMNS: Final = frozenset(
    {
        cols.USER_EVENTS_7D,
        cols.USER_EVENTS_30D,
        cols.USER_EVENTS_90D,
        cols.USER_EVENTS_TOTAL,
        cols.USER_DAYS_SINCE_LAST_EVENT,
        cols.USER_GENDER,
        cols.USER_OCCUPATION,
        cols.USER_ZIP_REGION,
        cols.ITEM_EVENTS_7D,
        cols.ITEM_EVENTS_30D,
        cols.ITEM_EVENTS_90D,
        cols.ITEM_EVENTS_TOTAL,
    }
)
_BOOL_COLUMNS: Final = frozenset(cols.ITEM_GENRE)


@dataclass(frozen=True)
class Definitions:
    """Every Feast object of the repo, in apply order."""

    user: Entity
    item: Entity
    user_source: FileSource
    item_source: FileSource
    user_view: FeatureView
    item_view: FeatureView
    ranker_v1: FeatureService

    def objects(self) -> list[Any]:
        return [
            self.user,
            self.item,
            self.user_source,
            self.item_source,
            self.user_view,
            self.item_view,
            self.ranker_v1,
        ]


def _fields(names: tuple[str, ...]) -> list[Any]:
    from feast import Field
    from feast.types import Bool, Float32, Int64

    def dtype(name: str) -> Any:
        if name in _INT_COLUMNS:
            return Int64
        if name in _BOOL_COLUMNS:
            return Bool
        return Float32

    return [Field(name=n, dtype=dtype(n), description=DESCRIPTIONS[n]) for n in names]


def build_definitions(features_dir: Path) -> Definitions:
    """Feast objects whose file sources read ``features_dir``'s parquet files."""
    from feast import Entity, FeatureService, FeatureView, FileSource, ValueType

    user = Entity(
        name="user",
        join_keys=[USER_ID],
        value_type=ValueType.INT64,
        description="A viewer of the streaming service.",
        owner=OWNER,
    )
    item = Entity(
        name="item",
        join_keys=[ITEM_ID],
        value_type=ValueType.INT64,
        description="A title in the catalog.",
        owner=OWNER,
    )
    user_source = FileSource(
        name="user_features_source",
        path=str(features_dir / USER_FEATURES_FILE),
        timestamp_field=EVENT_TIMESTAMP,
        description="Daily point-in-time user snapshots built by reelrank.features.",
        owner=OWNER,
    )
    item_source = FileSource(
        name="item_features_source",
        path=str(features_dir / ITEM_FEATURES_FILE),
        timestamp_field=EVENT_TIMESTAMP,
        description="Daily point-in-time item snapshots built by reelrank.features.",
        owner=OWNER,
    )
    tags = {"team": "recommendations", "granularity": "daily", "pii": "false"}
    user_view = FeatureView(
        name=cols.USER_VIEW,
        entities=[user],
        ttl=cols.USER_TTL,
        schema=_fields(cols.USER_FEATURES),
        source=user_source,
        online=True,
        description=(
            "User activity, taste and side information as of each day (events before "
            "midnight UTC). Snapshots stop once the user's windows are empty; the last "
            "row stays exact, and is trusted for the ttl."
        ),
        owner=OWNER,
        tags={**tags, "pii": "true", "entity": "user"},
    )
    item_view = FeatureView(
        name=cols.ITEM_VIEW,
        entities=[item],
        ttl=cols.ITEM_TTL,
        schema=_fields(cols.ITEM_FEATURES),
        source=item_source,
        online=True,
        description=(
            "Item popularity, trend, Bayesian mean rating, age and genres as of each day "
            "(events before midnight UTC)."
        ),
        owner=OWNER,
        tags={**tags, "entity": "item"},
    )
    ranker_v1 = FeatureService(
        name=cols.FEATURE_SERVICE,
        features=[user_view, item_view],
        description=(
            "Stored features of the ranker, version 1 (cross features are computed at "
            "request time by reelrank.features.cross_features)."
        ),
        owner=OWNER,
        tags={"model": "ranker", "version": "1"},
    )
    return Definitions(user, item, user_source, item_source, user_view, item_view, ranker_v1)
