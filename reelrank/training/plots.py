"""Figures logged with each training run (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fold_comparison(per_fold: pd.DataFrame, metric: str, path: Path) -> Path:
    """Grouped bars: ``metric`` per fold for every model."""
    table = per_fold.pivot(index="fold", columns="model", values=metric)
    fig, ax = plt.subplots(figsize=(7, 4))
    table.plot.bar(ax=ax, rot=0)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per time fold, model vs baselines")
    ax.legend(fontsize=8)
    return _save(fig, path)


def roc_pr_curves(y_true: np.ndarray, y_score: np.ndarray, path: Path) -> Path:
    """ROC and precision-recall curves of the ranker's pointwise view."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y_true, y_score)
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.plot(fpr, tpr, label=f"AUC = {auc(fpr, tpr):.3f}")
    left.plot([0, 1], [0, 1], linestyle="--", color="grey")
    left.set_xlabel("false positive rate")
    left.set_ylabel("true positive rate")
    left.set_title("ROC of the ranker on candidates")
    left.legend()
    right.plot(recall, precision, label=f"base rate = {np.mean(y_true):.3f}")
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_title("Precision-recall")
    right.legend()
    return _save(fig, path)


def feature_importance(importances: pd.Series, path: Path, top: int = 25) -> Path:
    top_features = importances.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(top_features))))
    top_features.plot.barh(ax=ax)
    ax.set_xlabel("importance (gain)")
    ax.set_title("Ranker feature importance")
    return _save(fig, path)


def learning_curve(curve: pd.DataFrame, metric: str, path: Path) -> Path:
    """``curve``: columns n_events, train_<metric>, valid_<metric> (and end_to_end_<metric>)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for column, label, style in (
        (f"train_{metric}", "training (the ranker's own groups)", "--"),
        (f"valid_{metric}", "validation (the fold's test window)", "-"),
        (f"end_to_end_{metric}", "validation, end to end", ":"),
    ):
        if column in curve and curve[column].notna().any():
            ax.plot(curve["n_events"], curve[column], marker="o", linestyle=style, label=label)
    ax.set_xlabel("training events")
    ax.set_ylabel(metric)
    ax.set_title("Learning curve: training and validation vs training-set size")
    ax.legend(fontsize=8)
    return _save(fig, path)


def regularisation_sweep(sweep: pd.DataFrame, metric: str, path: Path) -> Path:
    """``sweep``: columns penalty (l1/l2), strength, <metric>."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for penalty, rows in sweep.groupby("penalty"):
        strengths = rows["strength"].replace(0, np.nan)
        ax.plot(strengths, rows[metric], marker="o", label=str(penalty))
    ax.set_xscale("log")
    ax.set_xlabel("regularisation strength (0 omitted on the log axis)")
    ax.set_ylabel(metric)
    ax.set_title("Complexity curve: ranker regularisation (not a learning curve)")
    ax.legend()
    return _save(fig, path)
