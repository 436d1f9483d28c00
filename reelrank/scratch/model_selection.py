"""Cross-validation splitters from scratch: K-fold and stratified K-fold.

K-fold cuts the (optionally shuffled) indices ``0..n-1`` into ``k`` consecutive
folds; the first ``n mod k`` folds get ``floor(n / k) + 1`` samples, the rest
``floor(n / k)``. Fold ``i`` is the test set of split ``i``; the others train.

Stratified K-fold keeps each class's share roughly equal in every fold: sort the
class codes, deal them round-robin to the folds to get how many samples of each
class every fold receives, then hand out each class's samples to folds in order
(blocks, so the original order is kept as far as possible).

Both reproduce scikit-learn's fold assignment exactly, including with
``shuffle=True`` and an integer ``random_state`` (same ``RandomState`` draws).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from reelrank.scratch._validation import IntArray, ScratchInputError, check_1d


def _n_samples(X: ArrayLike) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)  # type: ignore[arg-type]


class _BaseKFold:
    def __init__(
        self, n_splits: int = 5, *, shuffle: bool = False, random_state: int | None = None
    ) -> None:
        if not isinstance(n_splits, int | np.integer) or n_splits < 2:
            raise ScratchInputError(f"n_splits must be an integer >= 2; got {n_splits!r}.")
        if not shuffle and random_state is not None:
            raise ScratchInputError(
                "random_state only matters with shuffle=True; set shuffle=True or drop it."
            )
        self.n_splits = int(n_splits)
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X: object = None, y: object = None, groups: object = None) -> int:
        """Number of train/test splits."""
        return self.n_splits

    def _test_folds(self, n_samples: int, y: ArrayLike | None) -> IntArray:
        raise NotImplementedError

    def split(
        self, X: ArrayLike, y: ArrayLike | None = None, groups: object = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        """Yield ``(train_indices, test_indices)`` for each of the ``n_splits`` folds."""
        n_samples = _n_samples(X)
        if self.n_splits > n_samples:
            raise ScratchInputError(
                f"Cannot make n_splits={self.n_splits} folds from {n_samples} samples; "
                "lower n_splits."
            )
        test_folds = self._test_folds(n_samples, y)
        indices = np.arange(n_samples)
        for fold in range(self.n_splits):
            mask = test_folds == fold
            yield indices[~mask], indices[mask]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, "
            f"random_state={self.random_state})"
        )


class KFold(_BaseKFold):
    """K consecutive folds (shuffled first if ``shuffle=True``)."""

    def _test_folds(self, n_samples: int, y: ArrayLike | None) -> IntArray:
        indices = np.arange(n_samples)
        if self.shuffle:
            np.random.RandomState(self.random_state).shuffle(indices)
        fold_sizes = np.full(self.n_splits, n_samples // self.n_splits, dtype=np.int64)
        fold_sizes[: n_samples % self.n_splits] += 1
        test_folds = np.empty(n_samples, dtype=np.int64)
        test_folds[indices] = np.repeat(np.arange(self.n_splits), fold_sizes)
        return test_folds


class StratifiedKFold(_BaseKFold):
    """K folds that preserve the class proportions of ``y``."""

    def split(
        self, X: ArrayLike, y: ArrayLike | None = None, groups: object = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        """Yield ``(train_indices, test_indices)``; ``y`` (class labels) is required."""
        if y is None:
            raise ScratchInputError("StratifiedKFold.split needs y (the class labels).")
        return super().split(X, y, groups)

    def _test_folds(self, n_samples: int, y: ArrayLike | None) -> IntArray:
        labels: Any = check_1d(np.asarray(y), name="y")
        if labels.shape[0] != n_samples:
            raise ScratchInputError(f"y has {labels.shape[0]} labels for {n_samples} samples.")
        rng = np.random.RandomState(self.random_state) if self.shuffle else None
        # Encode classes by order of first appearance (0 = first label seen in y).
        _, first_index, inverse = np.unique(labels, return_index=True, return_inverse=True)
        _, class_perm = np.unique(first_index, return_inverse=True)
        encoded = class_perm[inverse]
        n_classes = first_index.size
        counts = np.bincount(encoded)
        if np.all(self.n_splits > counts):
            raise ScratchInputError(
                f"n_splits={self.n_splits} is greater than the size of every class "
                f"({counts.tolist()}); lower n_splits."
            )
        # Round-robin over the sorted codes gives each fold's share of every class.
        sorted_codes = np.sort(encoded)
        allocation = np.asarray(
            [
                np.bincount(sorted_codes[i :: self.n_splits], minlength=n_classes)
                for i in range(self.n_splits)
            ]
        )
        test_folds = np.empty(n_samples, dtype=np.int64)
        for k in range(n_classes):
            folds_for_class = np.arange(self.n_splits).repeat(allocation[:, k])
            if rng is not None:
                rng.shuffle(folds_for_class)
            test_folds[encoded == k] = folds_for_class
        return test_folds
