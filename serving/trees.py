"""LightGBM trees scored in numpy with bitmasks (QuickScorer), for the request path.

``Booster.predict`` walks every tree for every row; for the ~150 candidates of one
request that per-row walk dominates (about 6 us per row for 100 trees here). QuickScorer
(Lucchese et al., SIGIR 2015) evaluates every split of every tree at once: a split whose
test fails ("go right") removes the leaves of its left subtree from a per-tree bitmask of
reachable leaves (leaves numbered left to right); the exit leaf is the lowest bit left.
In numpy that is one gather and compare over ``(rows, splits)`` and one AND-reduce per
tree instead of a Python-level loop.

Semantics follow LightGBM's ``NumericalDecision``: a NaN value goes to the default side
for ``missing_type=NaN`` and is read as 0.0 for ``None``; and ``CategoricalDecision``:
``int(x)`` in the split's set goes left, NaN, negative or unknown categories go right.
Models with zero-as-missing splits, linear trees, several classes or more than 64 leaves
per tree are not compiled (``from_booster`` returns None and the caller keeps ``Booster.predict``).
``tests/serving/test_trees.py`` checks the scores against ``Booster.predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

MAX_LEAVES: Final = 64
_ALL: Final = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class CompiledTrees:
    """Every split of every tree as flat arrays (split ``j`` belongs to tree ``tree[j]``).

    Attributes:
        feature / threshold: the split's test ``x[feature] <= threshold`` (go left).
        nan_right: a NaN goes right at this split.
        mask: reachable-leaf bitmask after the split goes right (left subtree cleared).
        slot: ``(n_trees, max_splits)`` split indices per tree, padded with ``n_splits``
            (a virtual split that never goes right).
        leaf_value: ``(n_trees, max_leaves)`` leaf values, leaves numbered left to right.
        categorical_split: indices of the categorical splits (``int(x)`` in a set: left;
            NaN, negative or unknown categories: right, as LightGBM decides).
        categorical_left: ``(n_categorical, max_category + 1)`` membership table.
    """

    feature: np.ndarray
    threshold: np.ndarray
    nan_right: np.ndarray
    mask: np.ndarray
    slot: np.ndarray
    leaf_value: np.ndarray
    categorical_split: np.ndarray
    categorical_left: np.ndarray

    @classmethod
    def from_booster(cls, booster: Any) -> CompiledTrees | None:
        """Compile a LightGBM booster; ``None`` when it uses features we do not replicate."""
        model = booster.dump_model()
        trees = model["tree_info"]
        if not trees or model.get("num_class", 1) != 1:
            return None
        if max(t["num_leaves"] for t in trees) > MAX_LEAVES:
            return None
        features: list[int] = []
        thresholds: list[float] = []
        nan_right: list[bool] = []
        masks: list[int] = []
        per_tree: list[list[int]] = []
        leaf_values: list[list[float]] = []
        categorical: dict[int, frozenset[int]] = {}
        for tree in trees:
            if tree.get("is_linear"):
                return None
            splits: list[int] = []
            leaves: list[float] = []

            def walk(node: dict[str, Any], splits: list[int], leaves: list[float]) -> bool:
                """Number leaves left to right; record splits with their left-leaf masks."""
                if "split_index" not in node:
                    leaves.append(float(node["leaf_value"]))
                    return True
                decision = node.get("decision_type", "<=")
                missing = str(node["missing_type"])
                first = len(leaves)
                index = len(features)
                features.append(int(node["split_feature"]))
                if decision == "==":  # categorical: left iff int(x) is in the set
                    categorical[index] = frozenset(
                        int(c) for c in str(node["threshold"]).split("||")
                    )
                    thresholds.append(0.0)
                    nan_right.append(True)
                elif decision == "<=" and missing in {"None", "NaN"}:
                    threshold = float(node["threshold"])
                    thresholds.append(threshold)
                    if missing == "NaN":
                        nan_right.append(not bool(node["default_left"]))
                    else:  # NaN is read as 0.0
                        nan_right.append(not (threshold >= 0.0))
                else:
                    return False
                masks.append(0)
                splits.append(index)
                if not walk(node["left_child"], splits, leaves):
                    return False
                left_leaves = range(first, len(leaves))
                masks[index] = int(_ALL) & ~sum(1 << leaf for leaf in left_leaves)
                return walk(node["right_child"], splits, leaves)

            if not walk(tree["tree_structure"], splits, leaves):
                return None
            per_tree.append(splits)
            leaf_values.append(leaves)
        n_splits = len(features)
        width = max(1, max(len(s) for s in per_tree))
        slot = np.full((len(trees), width), n_splits, dtype=np.int64)
        for t, splits in enumerate(per_tree):
            slot[t, : len(splits)] = splits
        leaf_value = np.zeros((len(trees), max(len(v) for v in leaf_values)), dtype=np.float64)
        for t, values in enumerate(leaf_values):
            leaf_value[t, : len(values)] = values
        max_category = max((max(c) for c in categorical.values()), default=0)
        cat_index = np.asarray(sorted(categorical), dtype=np.int64)
        cat_table = np.zeros((len(cat_index), max_category + 1), dtype=bool)
        for row, split in enumerate(cat_index):
            cat_table[row, sorted(categorical[int(split)])] = True
        return cls(
            categorical_split=cat_index,
            categorical_left=cat_table,
            feature=np.asarray(features, dtype=np.int64),
            threshold=np.asarray(thresholds, dtype=np.float64),
            nan_right=np.asarray(nan_right, dtype=bool),
            mask=np.asarray([*masks, int(_ALL)], dtype=np.uint64),  # + the virtual split
            slot=slot,
            leaf_value=leaf_value,
        )

    def __post_init__(self) -> None:
        n_leaves = self.leaf_value.shape[1]
        dtype = next(
            d for d in (np.uint8, np.uint16, np.uint32, np.uint64) if np.iinfo(d).bits >= n_leaves
        )
        ones = dtype(np.iinfo(dtype).max)
        masks = (self.mask[:-1] & np.uint64(ones)).astype(dtype)
        n_features = int(self.feature.max(initial=0)) + 1
        # The request matrix is float32: for a float32 x and a float64 t, x > t exactly
        # when x > (the largest float32 <= t); compare in float32.
        thresholds = self.threshold.astype(np.float32)
        above = thresholds.astype(np.float64) > self.threshold
        thresholds[above] = np.nextafter(thresholds[above], np.float32(-np.inf))
        extra = {
            "_dtype": dtype,
            "_ones": ones,
            "_left_bits": np.invert(masks).astype(dtype)[:, None],
            "_n_features": n_features,
            # NaN handled by the gather: row f of the doubled matrix holds NaN -> -inf
            # (goes left), row n_features + f holds NaN -> +inf (goes right).
            "_gather": self.feature + n_features * self.nan_right,
            "_threshold32": thresholds[:, None],
            "_leaf_flat": self.leaf_value.ravel(),
            "_leaf_offsets": (np.arange(self.slot.shape[0]) * n_leaves)[:, None],
            "_lowest_bit": _lowest_bit_table() if dtype == np.uint8 else None,
        }
        for name, value in extra.items():
            object.__setattr__(self, name, value)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (sum of every tree's exit leaf), like ``predict(raw_score=True)``.

        Exact for float32 input (what the ranker's feature matrix is); other inputs are
        cast to float32 first.
        """
        n = self._n_features  # type: ignore[attr-defined]
        # (split, row) layout: gathers of whole rows are memory copies.
        columns = np.asarray(X, dtype=np.float32)[:, :n].T
        doubled = np.empty((2 * n, columns.shape[1]), dtype=np.float32)
        doubled[:n] = columns
        doubled[n:] = columns
        nan = np.isnan(columns)
        if nan.any():
            doubled[:n][nan] = -np.inf
            doubled[n:][nan] = np.inf
        goes_right = doubled.take(self._gather, axis=0) > self._threshold32  # type: ignore[attr-defined]
        if len(self.categorical_split):
            goes_right[self.categorical_split] = self._categorical_right(columns)
        split_masks = np.empty((len(self.mask), columns.shape[1]), dtype=self._dtype)  # type: ignore[attr-defined]
        np.bitwise_xor(
            self._ones,  # type: ignore[attr-defined]
            goes_right.view(np.uint8).astype(self._dtype, copy=False) * self._left_bits,  # type: ignore[attr-defined]
            out=split_masks[:-1],
        )
        split_masks[-1] = self._ones  # type: ignore[attr-defined]
        reachable = np.bitwise_and.reduce(split_masks.take(self.slot, axis=0), axis=1)
        table = self._lowest_bit  # type: ignore[attr-defined]
        if table is not None:
            leaf = table.take(reachable)
        else:
            wide = reachable.astype(np.uint64)
            lowest = wide & (~wide + np.uint64(1))
            leaf = np.log2(lowest.astype(np.float64)).astype(np.int64)
        return self._leaf_flat.take(self._leaf_offsets + leaf).sum(axis=0)  # type: ignore[attr-defined]

    def _categorical_right(self, columns: np.ndarray) -> np.ndarray:
        values = columns[self.feature[self.categorical_split]]
        width = self.categorical_left.shape[1]
        with np.errstate(invalid="ignore"):
            outside = np.isnan(values) | (values >= width) | (values <= -1)
        codes = np.where(outside, 0, values).astype(np.int64)  # truncation, like a C cast
        rows = np.arange(len(self.categorical_split))[:, None]
        return outside | ~self.categorical_left[rows, codes]


def _lowest_bit_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    for value in range(1, 256):
        table[value] = (value & -value).bit_length() - 1
    return table
