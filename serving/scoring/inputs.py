"""The ranker's inputs at request time, built with the model's own feature layout.

Everything except the user's stored row is fixed for a loaded model: the retrieval
columns (per candidate set), the history length (per user), the item rows (per item).
:class:`RankerInputs` holds the fixed parts and assembles a request's matrix, or only its
request-time columns, through :class:`~reelrank.models.layout.FeatureLayout`, the same
object training assembles with; serving keeps no copy of the column order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelrank.features import columns as cols
from reelrank.features.cross import ItemCrossInputs, UserCrossInputs, cross_feature_matrix
from reelrank.models.layout import FeatureLayout
from reelrank.models.retrieval import RetrievedBlock

NO_USER_FEATURES = np.full(len(cols.USER_FEATURES), np.nan)
"""A user row with nothing known (the static part of a candidate set is computed with it)."""


@dataclass(frozen=True)
class RankerInputs:
    """The fixed inputs of a loaded model's ranker.

    Attributes:
        layout: the model's fitted feature layout.
        history: the history length of every interaction-matrix row (float32).
        item_matrix: ``(n_items, len(layout.item_columns))`` float32 item rows in catalogue
            column order, or None when the layout reads no features.
        item_cross: the item side of the cross features (None without features).
        user_positions: where each of the layout's user columns sits in ``USER_FEATURES``
            (the order online readers return).
    """

    layout: FeatureLayout
    history: np.ndarray
    item_matrix: np.ndarray | None = None
    item_cross: ItemCrossInputs | None = None
    user_positions: np.ndarray | None = None

    @property
    def uses_features(self) -> bool:
        return self.layout.uses_features

    def history_of(self, row: int) -> float:
        """The history length of a matrix row (0 for unknown users, ``row < 0``)."""
        return float(self.history[row]) if row >= 0 else 0.0

    def matrix(self, block: RetrievedBlock, row: int, user_row: np.ndarray | None) -> np.ndarray:
        """The ranker's full matrix for one user's candidates."""
        history = self.history_of(row)
        if not self.uses_features:
            return self.layout.assemble(block.features, history)
        assert self.item_matrix is not None
        assert user_row is not None
        dynamic = self.dynamic(block, user_row)
        n_user = len(self.layout.user_columns)
        return self.layout.assemble(
            block.features,
            history,
            user=dynamic[:n_user].T,
            item=self.item_matrix[block.item_columns],
            cross=dynamic[n_user:].T,
        )

    def dynamic(self, block: RetrievedBlock, user_row: np.ndarray) -> np.ndarray:
        """The request-time columns, transposed: ``(n_user + n_cross, candidates)`` float32
        (the user's row broadcast, then the cross features), in ``layout.request_time``
        order."""
        assert self.item_cross is not None
        assert self.user_positions is not None
        n_user = len(self.user_positions)
        cross = cross_feature_matrix(
            UserCrossInputs.from_row(user_row), self.item_cross, block.item_columns
        )
        out = np.empty((n_user + cross.shape[1], len(block.rows)), dtype=np.float32)
        out[:n_user] = user_row[self.user_positions].astype(np.float32)[:, None]
        out[n_user:] = cross.T
        return out
