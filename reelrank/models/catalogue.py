"""What a served answer needs of each item, kept with the model: title, genres, release
date and training popularity.

The fitted recommender carries a :class:`Catalogue` aligned with its interaction matrix's
columns, so the service never reads the offline lake: everything it needs of the items
(to show them, filter them by genre and re-rank them) travels in the registered model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reelrank.models.reranking import ItemAttributes, genre_bits
from reelrank.schema import GENRE_VOCAB, GENRES, ITEM_ID, RELEASE_DATE, TITLE


@dataclass(frozen=True)
class Catalogue:
    """Titles and genre masks over the model's catalogue columns.

    Attributes:
        item_ids: the item id of every column (the interaction matrix's order).
        titles: the title of every column (``None`` when unknown).
        genres: ``{genre in lower case: bool mask over the columns}``.
    """

    item_ids: np.ndarray
    titles: np.ndarray
    genres: dict[str, np.ndarray]
    attributes: ItemAttributes

    @classmethod
    def from_items(
        cls, items: pd.DataFrame, item_ids: np.ndarray, interactions: np.ndarray | None = None
    ) -> Catalogue:
        """Align the items table (``item_id``, optional ``title``, ``genres``,
        ``release_date``) with ``item_ids``; items it lacks get no title, genre or date.
        ``interactions``: training events per column (the popularity percentiles)."""
        titles = np.full(len(item_ids), None, dtype=object)
        genres: dict[str, np.ndarray] = {}
        table = items.drop_duplicates(ITEM_ID, keep="last").set_index(ITEM_ID)
        positions = table.index.get_indexer(pd.Index(item_ids))
        found = positions >= 0
        if TITLE in table.columns:
            raw = table[TITLE].astype(object).where(table[TITLE].notna(), None).to_numpy()
            titles[found] = raw[positions[found]]
        if GENRES in table.columns:
            lists = table[GENRES].to_numpy(dtype=object)
            for column, position in enumerate(positions):
                values = lists[position] if position >= 0 else None
                if values is None or (isinstance(values, float) and np.isnan(values)):
                    continue
                for genre in values:
                    mask = genres.setdefault(str(genre).lower(), np.zeros(len(item_ids), bool))
                    mask[column] = True
        attributes = ItemAttributes(
            genres=genre_bits(_genre_matrix(genres, len(item_ids))),
            release_seconds=_release_seconds(table, positions),
            popularity_percentile=_percentile(interactions, len(item_ids)),
        )
        return cls(np.asarray(item_ids, dtype=np.int64), titles, genres, attributes)

    def genre_mask(self, genre: str) -> np.ndarray:
        """The columns of ``genre`` (case-insensitive); none for an unknown genre."""
        mask = self.genres.get(genre.lower())
        return mask if mask is not None else np.zeros(len(self.item_ids), dtype=bool)


def _genre_matrix(genres: dict[str, np.ndarray], n_items: int) -> np.ndarray:
    """``(n_items, len(GENRE_VOCAB))`` flags, plus any other genre the items carry."""
    names = [g.lower() for g in GENRE_VOCAB] + sorted(
        set(genres) - {g.lower() for g in GENRE_VOCAB}
    )
    empty = np.zeros(n_items, dtype=bool)
    return np.column_stack([genres.get(name, empty) for name in names]) if names else empty[:, None]


def _release_seconds(table: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    out = np.full(len(positions), np.nan)
    if RELEASE_DATE not in table.columns:
        return out
    stamps = pd.to_datetime(table[RELEASE_DATE], utc=True)
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
    found = positions >= 0
    out[found] = seconds[positions[found]]
    return out


def _percentile(counts: np.ndarray | None, n_items: int) -> np.ndarray:
    """Rank of each column's training popularity in [0, 1] (1 = the most popular)."""
    if counts is None or n_items == 0:
        return np.zeros(n_items)
    from scipy.stats import rankdata

    ranks = rankdata(np.asarray(counts, dtype=np.float64), method="max")
    return (ranks / len(ranks)).astype(np.float64)
