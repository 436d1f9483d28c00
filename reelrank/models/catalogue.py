"""What a served answer shows of each item: its title and genres, kept with the model.

The fitted recommender carries a :class:`Catalogue` aligned with its interaction matrix's
columns, so the service never reads the offline lake: everything it needs of the items
travels in the registered model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reelrank.schema import GENRES, ITEM_ID, TITLE


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

    @classmethod
    def from_items(cls, items: pd.DataFrame, item_ids: np.ndarray) -> Catalogue:
        """Align the items table (``item_id``, optional ``title`` and ``genres``) with
        ``item_ids``; items it lacks get no title and no genre."""
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
        return cls(np.asarray(item_ids, dtype=np.int64), titles, genres)

    def genre_mask(self, genre: str) -> np.ndarray:
        """The columns of ``genre`` (case-insensitive); none for an unknown genre."""
        mask = self.genres.get(genre.lower())
        return mask if mask is not None else np.zeros(len(self.item_ids), dtype=bool)
