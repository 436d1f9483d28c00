"""LightGBM trees scored with bitmasks (QuickScorer), for the request path.

``Booster.predict`` walks every tree for every row; for the ~150 candidates of one
request that per-row walk dominates (about 6 us per row for 100 trees here). QuickScorer
(Lucchese et al., SIGIR 2015) evaluates every split of every tree at once: a split whose
test fails ("go right") removes the leaves of its left subtree from a per-tree bitmask of
reachable leaves (leaves numbered left to right); the exit leaf is the lowest bit left.
In numpy that is one gather and compare over ``(rows, splits)`` and one AND-reduce per
tree instead of a Python-level loop (``CompiledTrees``, used at model load and when a
model cannot be split); per request, :class:`PartialScorer` evaluates only the splits on
request-time features, in a numba loop.

Semantics follow LightGBM's ``NumericalDecision``: a NaN value goes to the default side
for ``missing_type=NaN`` and is read as 0.0 for ``None``; and ``CategoricalDecision``:
``int(x)`` in the split's set goes left, NaN, negative or unknown categories go right.
Models with zero-as-missing splits, linear trees, several classes or more than 64 leaves
per tree are not compiled (``from_booster`` returns None and the caller keeps ``Booster.predict``).
``tests/serving/test_parts.py`` checks the scores against ``Booster.predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numba
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
        n_trees = self.slot.shape[0]
        extra: dict[str, Any] = {
            "_dtype": dtype,
            "_ones": ones,
            "_left_bits": np.invert(masks).astype(dtype),
            "_threshold32": thresholds,
            "_n_features": n_features,
            "_leaf_flat": self.leaf_value.ravel(),
            "_leaf_offsets": (np.arange(n_trees) * n_leaves)[:, None],
            "_leaf_by_mask": None,
        }
        if dtype == np.uint8:
            # Up to 8 leaves: a (tree, reachable mask) -> exit-leaf value table; one gather
            # replaces "lowest set bit" and the leaf lookup.
            padded = np.zeros((n_trees, 8), dtype=np.float64)
            padded[:, :n_leaves] = self.leaf_value  # masks past the last leaf never occur
            extra["_leaf_by_mask"] = padded[:, _lowest_bit_table()].ravel()
            extra["_mask_offsets"] = (np.arange(n_trees) * 256)[:, None]
        for name, value in extra.items():
            object.__setattr__(self, name, value)
        every = np.arange(len(self.feature))
        object.__setattr__(self, "_all", self._split_set(every, np.arange(n_features)))

    def _split_set(self, splits: np.ndarray, columns: np.ndarray) -> _SplitSet:
        """The ``splits`` (global indices), reading an input whose column ``c`` holds
        feature ``columns[c]``."""
        size = max(self._n_features, int(columns.max(initial=-1)) + 1)  # type: ignore[attr-defined]
        column_of = np.full(size, -1, dtype=np.int64)
        column_of[columns] = np.arange(len(columns))
        features = column_of[self.feature[splits]]
        if (features < 0).any():
            raise ValueError("a split reads a feature the input layout does not hold")
        position = np.full(len(self.feature) + 1, len(splits), dtype=np.int64)
        position[splits] = np.arange(len(splits))
        categorical_rows = np.flatnonzero(np.isin(self.categorical_split, splits))
        categorical = self.categorical_split[categorical_rows]
        slot = position[self.slot]  # other splits and padding -> the virtual split
        slot.sort(axis=1)
        width = max(1, int((slot < len(splits)).sum(axis=1).max(initial=0)))
        return _SplitSet(
            n_columns=len(columns),
            # NaN handled by the gather: row c of the doubled input holds NaN -> -inf (goes
            # left), row n_columns + c holds NaN -> +inf (goes right).
            gather=features + len(columns) * self.nan_right[splits],
            threshold=self._threshold32[splits][:, None],  # type: ignore[attr-defined]
            left_bits=self._left_bits[splits][:, None],  # type: ignore[attr-defined]
            slot=slot[:, :width],
            dtype=self._dtype,  # type: ignore[attr-defined]
            ones=self._ones,  # type: ignore[attr-defined]
            categorical=position[categorical],
            categorical_column=column_of[self.feature[categorical]],
            categorical_left=self.categorical_left[categorical_rows],
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (sum of every tree's exit leaf), like ``predict(raw_score=True)``.

        Exact for float32 input (what the ranker's feature matrix is); other inputs are
        cast to float32 first.
        """
        # (split, row) layout: gathers of whole rows are memory copies.
        n_features: int = self._n_features  # type: ignore[attr-defined]
        columns = np.asarray(X, dtype=np.float32)[:, :n_features].T
        split_set: _SplitSet = self._all  # type: ignore[attr-defined]
        return self.leaf_sum(split_set.reach(split_set.goes_right(columns)))

    def leaf_sum(self, reachable: np.ndarray) -> np.ndarray:
        """Scores from ``(n_trees, rows)`` reachable-leaf masks (exit leaf = lowest bit)."""
        by_mask = self._leaf_by_mask  # type: ignore[attr-defined]
        if by_mask is not None:
            values = by_mask.take(self._mask_offsets + reachable)  # type: ignore[attr-defined]
        else:
            wide = reachable.astype(np.uint64)
            lowest = wide & (~wide + np.uint64(1))
            leaf = np.log2(lowest.astype(np.float64)).astype(np.int64)
            values = self._leaf_flat.take(self._leaf_offsets + leaf)  # type: ignore[attr-defined]
        # Tree after tree, as LightGBM adds them: a cumulative sum is sequential for any
        # shape, where sum(axis=0) of a single row switches to pairwise summation.
        return np.asarray(np.cumsum(values, axis=0)[-1])

    def leaf_by_mask_table(self) -> np.ndarray:
        """``(n_trees, 256)`` exit-leaf values by reachable mask (up to 8 leaves per tree),
        else an empty ``(0, 0)`` table."""
        by_mask = self._leaf_by_mask  # type: ignore[attr-defined]
        if by_mask is None:
            return np.zeros((0, 0), dtype=np.float64)
        return np.ascontiguousarray(by_mask.reshape(-1, 256))

    def partial(self, dynamic_features: Sequence[int] | np.ndarray) -> PartialScorer:
        """A scorer that evaluates the splits on every other feature ahead of time.

        ``dynamic_features`` are the features known only at request time (the online user
        features and the cross features); every split on another feature is "static" and
        can be evaluated once per (user, candidate) when the candidates are prepared.
        """
        dynamic = np.asarray(dynamic_features, dtype=np.int64)
        is_dynamic = np.isin(self.feature, dynamic)
        static_splits = np.flatnonzero(~is_dynamic)
        dynamic_splits = np.flatnonzero(is_dynamic)
        used = np.arange(self._n_features)  # type: ignore[attr-defined]
        return PartialScorer(
            trees=self,
            dynamic_features=dynamic,
            static=self._split_set(static_splits, used),
            dynamic=self._split_set(dynamic_splits, dynamic),
        )


@dataclass(frozen=True)
class _SplitSet:
    """Some of the ensemble's splits, ready to evaluate on a ``(column, row)`` float32 input.

    Attributes:
        n_columns: columns of the input layout.
        gather: per split, its row in the doubled input (NaN handling, see ``goes_right``).
        threshold: ``(n_splits, 1)`` float32 thresholds.
        left_bits: ``(n_splits, 1)`` the left subtree's leaf bits (cleared when going right).
        slot: ``(n_trees, width)`` the set's splits per tree, padded with ``n_splits`` (a
            virtual split that never clears a bit).
        categorical: the set's categorical splits (positions in the set), the input
            column each reads and their ``(n, max_category + 1)`` membership table.
    """

    n_columns: int
    gather: np.ndarray
    threshold: np.ndarray
    left_bits: np.ndarray
    slot: np.ndarray
    dtype: Any
    ones: Any
    categorical: np.ndarray
    categorical_column: np.ndarray
    categorical_left: np.ndarray

    def goes_right(self, columns: np.ndarray) -> np.ndarray:
        """``(n_splits, rows)``: the split's test fails (``x > t``, or NaN on the right side)."""
        n = self.n_columns
        doubled = np.empty((2 * n, columns.shape[1]), dtype=np.float32)
        doubled[:n] = columns
        doubled[n:] = columns
        nan = np.isnan(columns)
        if nan.any():
            doubled[:n][nan] = -np.inf
            doubled[n:][nan] = np.inf
        goes_right = np.asarray(doubled.take(self.gather, axis=0) > self.threshold)
        if len(self.categorical):
            goes_right[self.categorical] = self._categorical_right(columns)
        return goes_right

    def _categorical_right(self, columns: np.ndarray) -> np.ndarray:
        values = columns[self.categorical_column]
        width = self.categorical_left.shape[1]
        with np.errstate(invalid="ignore"):
            outside = np.isnan(values) | (values >= width) | (values <= -1)
        codes = np.where(outside, 0, values).astype(np.int64)  # truncation, like a C cast
        rows = np.arange(len(self.categorical))[:, None]
        return np.asarray(outside | ~self.categorical_left[rows, codes])

    def reach(self, goes_right: np.ndarray) -> np.ndarray:
        """``(n_trees, rows)``: leaves still reachable after this set's splits."""
        masks = np.empty((len(self.gather) + 1, goes_right.shape[1]), dtype=self.dtype)
        np.bitwise_xor(
            self.ones,
            goes_right.view(np.uint8).astype(self.dtype, copy=False) * self.left_bits,
            out=masks[:-1],
        )
        masks[-1] = self.ones
        return np.asarray(np.bitwise_and.reduce(masks.take(self.slot, axis=0), axis=1))


@dataclass(frozen=True)
class PartialScorer:
    """Tree scores split into a part known ahead of the request and a per-request part.

    A tree's exit leaf is the lowest bit of the AND of its splits' masks, and AND does not
    care about order: the masks of the static splits (retrieval scores, history, item
    features) are combined once per (user, candidate) by :meth:`static_reach`, and a request
    only evaluates the few splits on its dynamic features (:meth:`score`), in a compiled
    loop (numba): at ~50 splits and ~150 candidates, a dozen numpy calls cost more in call
    overhead than in arithmetic. Trees are summed one after the other in tree order, as
    LightGBM does, so the result is bit-identical to ``Booster.predict(raw_score=True)``
    and to :meth:`CompiledTrees.predict` on the full matrix (``tests/serving/test_parts.py``).
    """

    trees: CompiledTrees
    dynamic_features: np.ndarray
    static: _SplitSet
    dynamic: _SplitSet

    def __post_init__(self) -> None:
        dynamic = self.dynamic
        n_splits = len(dynamic.gather)
        tree = np.zeros(n_splits, dtype=np.int64)
        for t, row in enumerate(dynamic.slot):
            tree[row[row < n_splits]] = t
        categorical_row = np.full(n_splits, -1, dtype=np.int64)
        categorical_row[dynamic.categorical] = np.arange(len(dynamic.categorical))
        kernel = _DynamicSplits(
            column=dynamic.gather % max(dynamic.n_columns, 1),
            nan_right=dynamic.gather >= dynamic.n_columns,
            threshold=dynamic.threshold[:, 0].astype(np.float32),
            keep=(dynamic.ones ^ dynamic.left_bits[:, 0]).astype(dynamic.dtype),
            tree=tree,
            categorical_row=categorical_row,
            categorical_left=np.ascontiguousarray(dynamic.categorical_left),
            leaf_value=np.ascontiguousarray(self.trees.leaf_value),
            by_mask=self.trees.leaf_by_mask_table(),
        )
        object.__setattr__(self, "_kernel", kernel)

    def static_reach(self, X: np.ndarray) -> np.ndarray:
        """``(n_trees, rows)`` masks of the static splits for a full feature matrix (the
        dynamic columns are ignored and may hold anything)."""
        columns = np.asarray(X, dtype=np.float32)[:, : self.static.n_columns].T
        return self.static.reach(self.static.goes_right(columns))

    def score(self, static_reach: np.ndarray, dynamic_columns: np.ndarray) -> np.ndarray:
        """Raw scores from the static masks and the dynamic features as a
        ``(len(dynamic_features), rows)`` float32 matrix."""
        k: _DynamicSplits = self._kernel  # type: ignore[attr-defined]
        # The compiled loop does not check bounds: refuse what it would read past.
        n_trees, n_rows = static_reach.shape
        if n_trees != len(k.leaf_value):
            raise ValueError(f"static masks for {n_trees} trees; the model has {len(k.leaf_value)}")
        if dynamic_columns.shape != (len(self.dynamic_features), n_rows):
            raise ValueError(
                f"dynamic columns of shape {dynamic_columns.shape}; expected "
                f"({len(self.dynamic_features)}, {n_rows}): one row per dynamic feature, one "
                "column per candidate"
            )
        out = np.empty(n_rows, dtype=np.float64)
        static = np.ascontiguousarray(static_reach)
        _score_dynamic(static, np.ascontiguousarray(dynamic_columns, dtype=np.float32), *k, out)
        return out

    def score_numpy(self, static_reach: np.ndarray, dynamic_columns: np.ndarray) -> np.ndarray:
        """:meth:`score` in numpy (the reference the compiled loop is tested against)."""
        dynamic = self.dynamic.reach(self.dynamic.goes_right(dynamic_columns))
        return self.trees.leaf_sum(np.bitwise_and(static_reach, dynamic))


class _DynamicSplits(NamedTuple):
    """The dynamic splits as flat arrays, in the order :func:`_score_dynamic` takes them.

    Attributes:
        column: the input row (dynamic feature) each split reads.
        nan_right: a NaN goes right.
        threshold: float32 threshold (``x > threshold`` goes right).
        keep: the tree's reachable-leaf mask after going right (left subtree cleared).
        tree: the tree each split belongs to.
        categorical_row: row of ``categorical_left`` (-1: a numerical split).
        categorical_left: ``(n_categorical, max_category + 1)`` membership table.
        leaf_value: ``(n_trees, max_leaves)``.
        by_mask: ``(n_trees, 256)`` exit-leaf value per reachable mask for trees of up to
            8 leaves; ``(0, 0)`` for wider trees (the loop finds the lowest bit).
    """

    column: np.ndarray
    nan_right: np.ndarray
    threshold: np.ndarray
    keep: np.ndarray
    tree: np.ndarray
    categorical_row: np.ndarray
    categorical_left: np.ndarray
    leaf_value: np.ndarray
    by_mask: np.ndarray


@numba.njit(nogil=True)
def _score_dynamic(
    static_reach: np.ndarray,
    columns: np.ndarray,
    column: np.ndarray,
    nan_right: np.ndarray,
    threshold: np.ndarray,
    keep: np.ndarray,
    tree: np.ndarray,
    categorical_row: np.ndarray,
    categorical_left: np.ndarray,
    leaf_value: np.ndarray,
    by_mask: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested through PartialScorer.score
    n_trees, n_rows = static_reach.shape
    n_categories = categorical_left.shape[1]
    reach = static_reach.copy()
    for s in range(column.shape[0]):
        c, t, k = column[s], tree[s], categorical_row[s]
        for r in range(n_rows):
            x = columns[c, r]
            if k >= 0:  # LightGBM's CategoricalDecision: int(x) in the set goes left
                right = True
                if not np.isnan(x) and x > -1.0 and x < n_categories:
                    right = not categorical_left[k, int(x)]
            elif np.isnan(x):
                right = nan_right[s]
            else:
                right = x > threshold[s]
            if right:
                reach[t, r] &= keep[s]
    out[:] = 0.0
    for t in range(n_trees):  # every row adds its trees' leaves in tree order, like LightGBM
        if by_mask.shape[0]:  # up to 8 leaves: (tree, reachable mask) -> exit-leaf value
            for r in range(n_rows):
                out[r] += by_mask[t, reach[t, r]]
        else:
            for r in range(n_rows):
                mask = reach[t, r]
                leaf = 0
                while not (mask >> leaf) & 1:  # the exit leaf: the lowest bit left
                    leaf += 1
                out[r] += leaf_value[t, leaf]


def _lowest_bit_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    for value in range(1, 256):
        table[value] = (value & -value).bit_length() - 1
    return table
