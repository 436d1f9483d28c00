"""The ranker's feature matrix, laid out once: which column holds what.

A :class:`FeatureLayout` is fitted by :meth:`Recommender.fit
<reelrank.models.recommender.Recommender.fit>` and is the only description of the
ranker's columns. Training builds its matrices with :meth:`FeatureLayout.assemble`, and
the service asks the fitted model's layout where the request-time columns are and how to
assemble a request's matrix, so the two cannot disagree on the order:

``[<source>_score, <source>_rank for every source] + [history_length]
+ [user features] + [item features] + [cross features]``

The retrieval and history columns are always there; the feature-store columns only when
the ranker reads features (``use_features`` and a ranker that uses them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from reelrank.exceptions import ValidationError
from reelrank.models.retrieval import rank_column, score_column

HISTORY_LENGTH: Final = "history_length"
"""Events of the user in the model's training data (0 for unknown users)."""


@dataclass(frozen=True)
class FeatureLayout:
    """Column layout of the ranker's matrix.

    Attributes:
        sources: the retrieval sources' names, in the recommender's order.
        user_columns: stored user features read from the feature provider.
        item_columns: stored item features read from the feature provider.
        cross_columns: user x item features computed at request time.
    """

    sources: tuple[str, ...]
    user_columns: tuple[str, ...] = ()
    item_columns: tuple[str, ...] = ()
    cross_columns: tuple[str, ...] = ()

    @property
    def uses_features(self) -> bool:
        """Whether the matrix has feature-store columns (else retrieval and history only)."""
        return bool(self.user_columns or self.item_columns or self.cross_columns)

    @property
    def retrieval_names(self) -> tuple[str, ...]:
        return tuple(n for s in self.sources for n in (score_column(s), rank_column(s)))

    @property
    def names(self) -> tuple[str, ...]:
        """Every column's name, in matrix order."""
        return (
            *self.retrieval_names,
            HISTORY_LENGTH,
            *self.user_columns,
            *self.item_columns,
            *self.cross_columns,
        )

    @property
    def width(self) -> int:
        return len(self.names)

    @property
    def history(self) -> int:
        """Index of the history-length column."""
        return 2 * len(self.sources)

    @property
    def user(self) -> slice:
        start = self.history + 1
        return slice(start, start + len(self.user_columns))

    @property
    def item(self) -> slice:
        start = self.user.stop
        return slice(start, start + len(self.item_columns))

    @property
    def cross(self) -> slice:
        start = self.item.stop
        return slice(start, start + len(self.cross_columns))

    @property
    def request_time(self) -> np.ndarray:
        """Columns known only at request time: the user's stored features, then the cross
        features (everything else is fixed per candidate for a loaded model)."""
        return np.r_[
            np.arange(self.user.start, self.user.stop), np.arange(self.cross.start, self.cross.stop)
        ]

    def assemble(
        self,
        retrieval: np.ndarray,
        history: np.ndarray | float,
        user: np.ndarray | None = None,
        item: np.ndarray | None = None,
        cross: np.ndarray | None = None,
    ) -> np.ndarray:
        """The ranker's float32 matrix from its parts (one row per candidate).

        Args:
            retrieval: ``(n, 2 * len(sources))`` scores and ranks, as retrieval returns them.
            history: the user's history length per row, or one value for every row.
            user: ``(n, len(user_columns))`` or ``(len(user_columns),)`` broadcast to rows.
            item: ``(n, len(item_columns))``.
            cross: ``(n, len(cross_columns))``.
        """
        n = len(retrieval)
        if retrieval.shape[1] != self.history:
            raise ValidationError(
                f"retrieval block has {retrieval.shape[1]} columns; the layout expects "
                f"{self.history} (score and rank of {', '.join(self.sources)})."
            )
        X = np.empty((n, self.width), dtype=np.float32)
        X[:, : self.history] = retrieval
        X[:, self.history] = history
        for part, where, what in (
            (user, self.user, "user"),
            (item, self.item, "item"),
            (cross, self.cross, "cross"),
        ):
            size = where.stop - where.start
            if size == 0:
                continue
            if part is None:
                raise ValidationError(f"the layout has {size} {what} columns; pass them.")
            X[:, where] = part
        return X

    def check_names(self, names: tuple[str, ...] | list[str]) -> None:
        """Raise if ``names`` (e.g. a trained ranker's) are not this layout's columns."""
        if tuple(names) != self.names:
            raise ValidationError(
                "the ranker was trained on other columns than this layout describes; "
                "retrain the model with this version of ReelRank."
            )
