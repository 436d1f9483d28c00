"""CART decision trees from scratch: Gini/entropy classification and MSE regression.

A node holding samples ``S`` is split on the feature ``j`` and threshold ``t``
(``x_j <= t`` goes left) that most lowers the weighted child impurity::

    (j, t) = argmin  |L| * H(L) + |R| * H(R)

with ``H`` the Gini impurity ``1 - sum_c p_c^2``, the entropy ``-sum_c p_c log2 p_c``
or the variance ``mean((y - mean(y))^2)`` (MSE; equivalently maximise
``sum(y_L)^2 / |L| + sum(y_R)^2 / |R|``). For one feature, sorting the node's
values once gives every candidate split's class counts (or target sums) by a
cumulative sum, so all thresholds are scored in ``O(n log n)``; thresholds sit
halfway between consecutive distinct values. Growth stops at ``max_depth``, below
``min_samples_split`` samples, when a child would get fewer than
``min_samples_leaf``, or when the node is pure. Leaves predict class frequencies
(classification) or the mean target (regression).

Ties between equally good splits go to the lowest feature index, then the lowest
threshold (scikit-learn visits features in random order, so trees are identical
whenever no two splits tie exactly). Nodes are numbered depth-first, left before
right, as in scikit-learn's ``tree_``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from reelrank.scratch._validation import (
    FloatArray,
    IntArray,
    ScratchInputError,
    check_array,
    check_is_fitted,
    check_n_features,
    check_x_y,
    encode_labels,
)

Criterion = Literal["gini", "entropy", "squared_error"]
TREE_LEAF = -1
TREE_UNDEFINED = -2
FEATURE_THRESHOLD = 1e-7  # values closer than this are treated as equal
_EPSILON = float(np.finfo(np.float64).eps)


@dataclass
class Tree:
    """Array representation of a fitted tree (node ``i`` described at index ``i``)."""

    feature: IntArray
    threshold: FloatArray
    children_left: IntArray
    children_right: IntArray
    value: FloatArray
    impurity: FloatArray
    n_node_samples: IntArray

    @property
    def node_count(self) -> int:
        """Number of nodes."""
        return int(self.feature.size)

    @property
    def max_depth(self) -> int:
        """Depth of the deepest leaf (root alone = 0)."""
        depth = np.zeros(self.node_count, dtype=np.int64)
        for node in range(self.node_count):  # parents precede children (preorder)
            for child in (self.children_left[node], self.children_right[node]):
                if child != TREE_LEAF:
                    depth[child] = depth[node] + 1
        return int(depth.max())

    def apply(self, X: FloatArray) -> IntArray:
        """Index of the leaf each row of ``X`` falls into."""
        node = np.zeros(X.shape[0], dtype=np.int64)
        active = np.flatnonzero(self.feature[node] >= 0)
        while active.size:
            current = node[active]
            go_left = X[active, self.feature[current]] <= self.threshold[current]
            node[active] = np.where(
                go_left, self.children_left[current], self.children_right[current]
            )
            active = active[self.feature[node[active]] >= 0]
        return node


def _impurity(stats: FloatArray, counts: FloatArray, criterion: str) -> FloatArray:
    """Impurity of groups described by ``stats`` rows (class counts, or [sum, sum of squares])."""
    n = counts[:, None]
    if criterion == "squared_error":
        mean = stats[:, :1] / n
        return (stats[:, 1:2] / n - mean**2)[:, 0]
    p = stats / n
    if criterion == "gini":
        return 1.0 - (p**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return -(p * logs).sum(axis=1)


def _best_split(
    X: FloatArray, targets: FloatArray, criterion: str, min_samples_leaf: int
) -> tuple[int, float, float] | None:
    """Best ``(feature, threshold, proxy)`` for the samples given, or None if none is valid."""
    n = X.shape[0]
    best: tuple[int, float, float] | None = None
    n_left = np.arange(1, n, dtype=np.float64)
    n_right = n - n_left
    for feature in range(X.shape[1]):
        order = np.argsort(X[:, feature], kind="stable")
        values = X[order, feature]
        if values[-1] <= values[0] + FEATURE_THRESHOLD:
            continue  # constant feature in this node
        stats = targets[order]
        if criterion == "squared_error":
            stats = np.column_stack([stats[:, 0], stats[:, 0] ** 2])
        cumulative = np.cumsum(stats, axis=0)
        left, right = cumulative[:-1], cumulative[-1] - cumulative[:-1]
        valid = (values[1:] > values[:-1] + FEATURE_THRESHOLD) & (
            (n_left >= min_samples_leaf) & (n_right >= min_samples_leaf)
        )
        if not valid.any():
            continue
        if criterion == "squared_error":
            proxy = left[:, 0] ** 2 / n_left + right[:, 0] ** 2 / n_right
        else:
            proxy = -n_left * _impurity(left, n_left, criterion) - n_right * _impurity(
                right, n_right, criterion
            )
        proxy = np.where(valid, proxy, -np.inf)
        position = int(np.argmax(proxy))
        if best is None or proxy[position] > best[2]:
            threshold = values[position] / 2.0 + values[position + 1] / 2.0
            best = (feature, float(threshold), float(proxy[position]))
    return best


def build_tree(
    X: FloatArray,
    targets: FloatArray,
    criterion: str,
    max_depth: int | None,
    min_samples_split: int,
    min_samples_leaf: int,
) -> tuple[Tree, FloatArray]:
    """Grow a CART tree depth-first; return it and the (unnormalised) feature importances."""
    depth_limit = np.inf if max_depth is None else max_depth
    min_split = max(min_samples_split, 2 * min_samples_leaf)
    nodes: dict[str, list[Any]] = {
        key: [] for key in ("feature", "threshold", "left", "right", "value", "impurity", "n")
    }
    importances = np.zeros(X.shape[1])
    # Stack of (sample indices, depth, parent id, is_left); pop left child first.
    stack: list[tuple[IntArray, int, int, bool]] = [(np.arange(X.shape[0]), 0, -1, False)]
    while stack:
        rows, depth, parent, is_left = stack.pop()
        node_id = len(nodes["feature"])
        if parent >= 0:
            nodes["left" if is_left else "right"][parent] = node_id
        node_targets = targets[rows]
        n = rows.size
        stats = node_targets.sum(axis=0, keepdims=True)
        if criterion == "squared_error":
            stats = np.array([[node_targets[:, 0].sum(), (node_targets[:, 0] ** 2).sum()]])
            value = stats[:, :1] / n
        else:
            value = stats / n
        impurity = float(_impurity(stats, np.array([float(n)]), criterion)[0])
        split = None
        if depth < depth_limit and n >= min_split and impurity > _EPSILON:
            split = _best_split(X[rows], node_targets, criterion, min_samples_leaf)
        nodes["value"].append(value[0])
        nodes["impurity"].append(impurity)
        nodes["n"].append(n)
        nodes["left"].append(TREE_LEAF)
        nodes["right"].append(TREE_LEAF)
        if split is None:
            nodes["feature"].append(TREE_UNDEFINED)
            nodes["threshold"].append(float(TREE_UNDEFINED))
            continue
        feature, threshold, _ = split
        nodes["feature"].append(feature)
        nodes["threshold"].append(threshold)
        goes_left = X[rows, feature] <= threshold
        left_rows, right_rows = rows[goes_left], rows[~goes_left]
        child_impurity = 0.0
        for child_rows in (left_rows, right_rows):
            child = targets[child_rows]
            child_stats = (
                np.array([[child[:, 0].sum(), (child[:, 0] ** 2).sum()]])
                if criterion == "squared_error"
                else child.sum(axis=0, keepdims=True)
            )
            child_impurity += child_rows.size * float(
                _impurity(child_stats, np.array([float(child_rows.size)]), criterion)[0]
            )
        importances[feature] += n * impurity - child_impurity
        stack.append((right_rows, depth + 1, node_id, False))
        stack.append((left_rows, depth + 1, node_id, True))
    tree = Tree(
        feature=np.asarray(nodes["feature"], dtype=np.int64),
        threshold=np.asarray(nodes["threshold"], dtype=np.float64),
        children_left=np.asarray(nodes["left"], dtype=np.int64),
        children_right=np.asarray(nodes["right"], dtype=np.int64),
        value=np.asarray(nodes["value"], dtype=np.float64),
        impurity=np.asarray(nodes["impurity"], dtype=np.float64),
        n_node_samples=np.asarray(nodes["n"], dtype=np.int64),
    )
    return tree, importances


class _BaseDecisionTree(BaseEstimator):
    _criteria: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        criterion: Criterion,
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
    ) -> None:
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf

    def _grow(self, X: FloatArray, targets: FloatArray) -> None:
        if self.criterion not in self._criteria:
            raise ScratchInputError(
                f"criterion must be one of {self._criteria}; got {self.criterion!r}."
            )
        if self.max_depth is not None and self.max_depth < 1:
            raise ScratchInputError(f"max_depth must be >= 1 or None; got {self.max_depth}.")
        if self.min_samples_split < 2 or self.min_samples_leaf < 1:
            raise ScratchInputError(
                "min_samples_split must be >= 2 and min_samples_leaf >= 1; got "
                f"{self.min_samples_split} and {self.min_samples_leaf}."
            )
        self.n_features_in_ = X.shape[1]
        self.tree_, importances = build_tree(
            X,
            targets,
            self.criterion,
            self.max_depth,
            self.min_samples_split,
            self.min_samples_leaf,
        )
        total = importances.sum()
        self.feature_importances_: FloatArray = importances / total if total > 0 else importances

    def _leaf_values(self, X: ArrayLike) -> FloatArray:
        check_is_fitted(self, "tree_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        return self.tree_.value[self.tree_.apply(X_checked)]

    def apply(self, X: ArrayLike) -> IntArray:
        """Leaf index of each sample."""
        check_is_fitted(self, "tree_")
        X_checked = check_array(X)
        check_n_features(self, X_checked)
        return self.tree_.apply(X_checked)

    def get_depth(self) -> int:
        """Depth of the fitted tree."""
        check_is_fitted(self, "tree_")
        return self.tree_.max_depth

    def get_n_leaves(self) -> int:
        """Number of leaves of the fitted tree."""
        check_is_fitted(self, "tree_")
        return int((self.tree_.children_left == TREE_LEAF).sum())


class DecisionTreeClassifier(ClassifierMixin, _BaseDecisionTree):
    """CART classifier.

    Args:
        criterion: ``"gini"`` or ``"entropy"``.
        max_depth: Maximum depth (``None`` = grow until pure or limited by sample counts).
        min_samples_split: Fewest samples a node needs to be split.
        min_samples_leaf: Fewest samples each child must keep.
    """

    _criteria = ("gini", "entropy")

    def __init__(
        self,
        criterion: Literal["gini", "entropy"] = "gini",
        *,
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
    ) -> None:
        super().__init__(
            criterion=criterion,
            max_depth=max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
        )

    def fit(self, X: ArrayLike, y: ArrayLike) -> DecisionTreeClassifier:
        """Grow the tree on ``X`` and class labels ``y``."""
        X_checked, labels = check_x_y(X, y)
        self.classes_, codes = encode_labels(labels)
        self.n_classes_ = self.classes_.size
        one_hot = np.eye(self.n_classes_)[codes]
        self._grow(X_checked, one_hot)
        return self

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Class frequencies of the leaf each sample lands in."""
        return self._leaf_values(X)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Majority class of the leaf (first in sorted order on ties)."""
        best = self.predict_proba(X).argmax(axis=1)
        return self.classes_[best]


class DecisionTreeRegressor(RegressorMixin, _BaseDecisionTree):
    """CART regressor (squared-error criterion, leaves predict the mean).

    Args:
        criterion: ``"squared_error"``.
        max_depth: Maximum depth (``None`` = unlimited).
        min_samples_split: Fewest samples a node needs to be split.
        min_samples_leaf: Fewest samples each child must keep.
    """

    _criteria = ("squared_error",)

    def __init__(
        self,
        criterion: Literal["squared_error"] = "squared_error",
        *,
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
    ) -> None:
        super().__init__(
            criterion=criterion,
            max_depth=max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
        )

    def fit(self, X: ArrayLike, y: ArrayLike) -> DecisionTreeRegressor:
        """Grow the tree on ``X`` and real targets ``y``."""
        X_checked, target = check_x_y(X, y, numeric_y=True)
        self._grow(X_checked, np.asarray(target, dtype=np.float64)[:, None])
        return self

    def predict(self, X: ArrayLike) -> FloatArray:
        """Mean target of the leaf each sample lands in."""
        return self._leaf_values(X)[:, 0]
