"""From-scratch NumPy implementations of the classic interview algorithms.

Each follows the scikit-learn estimator contract and is proven equal to its scikit-learn
counterpart in ``tests/scratch``; see ``design_docs/scratch.md``.
"""

from reelrank.scratch.kmeans import KMeans
from reelrank.scratch.knn import KNeighborsClassifier, KNeighborsRegressor
from reelrank.scratch.linear_regression import LinearRegression
from reelrank.scratch.logistic_regression import LogisticRegression
from reelrank.scratch.metrics import (
    auc,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from reelrank.scratch.mlp import MLPClassifier
from reelrank.scratch.model_selection import KFold, StratifiedKFold
from reelrank.scratch.preprocessing import MinMaxScaler, StandardScaler
from reelrank.scratch.tree import DecisionTreeClassifier, DecisionTreeRegressor

__all__ = [
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "KFold",
    "KMeans",
    "KNeighborsClassifier",
    "KNeighborsRegressor",
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "MinMaxScaler",
    "StandardScaler",
    "StratifiedKFold",
    "auc",
    "confusion_matrix",
    "precision_recall_fscore_support",
    "roc_auc_score",
    "roc_curve",
]
