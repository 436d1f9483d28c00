"""Classification metrics from scratch: ROC curve, AUC, confusion matrix, precision/recall/F1.

ROC curve: sort samples by decreasing score; at every distinct score ``t`` count
``TP(t) = #{positives with s >= t}`` and ``FP(t) = #{negatives with s >= t}``;
plot ``FPR = FP / N`` against ``TPR = TP / P``. AUC is the trapezoid area under
that curve, which equals the probability that a random positive outscores a
random negative (ties count 1/2), i.e. the Mann-Whitney U statistic ``U / (P N)``.

Confusion matrix ``C[i, j]`` = number of samples of true class ``i`` predicted
as class ``j``. Per class: ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
``F_beta = (1 + beta^2) P R / (beta^2 P + R)`` (F1 for beta = 1).

These follow scikit-learn's conventions exactly (same sort, same intermediate
point dropping, the leading ``(0, 0, inf)`` point), so results are bit-identical.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reelrank.scratch._validation import FloatArray, IntArray, ScratchInputError, check_1d

Average = Literal["binary", "micro", "macro", "weighted"] | None


def _binary_targets(y_true: ArrayLike, pos_label: Any) -> NDArray[np.float64]:
    labels = check_1d(y_true, name="y_true")
    classes = np.unique(labels)
    if classes.size > 2:
        raise ScratchInputError(
            f"y_true has {classes.size} classes; ROC analysis here is binary. "
            "Binarise the labels (one class vs the rest) first."
        )
    if pos_label is None:
        if not (set(classes.tolist()) <= {0, 1} or set(classes.tolist()) <= {-1, 1}):
            raise ScratchInputError(
                f"y_true has labels {classes.tolist()}; pass pos_label= to say which is positive "
                "(labels in {0, 1} or {-1, 1} default to 1)."
            )
        pos_label = 1
    return (labels == pos_label).astype(np.float64)


def binary_clf_curve(
    y_true: ArrayLike, y_score: ArrayLike, *, pos_label: Any = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """False and true positive counts at each distinct score threshold (highest first).

    Returns:
        ``(fps, tps, thresholds)``: counts of negatives and positives scored ``>= threshold``.
    """
    truth = _binary_targets(y_true, pos_label)
    score = np.asarray(check_1d(y_score, name="y_score"), dtype=np.float64)
    if score.shape != truth.shape:
        raise ScratchInputError(
            f"y_true has {truth.size} values but y_score has {score.size}; "
            "pass one score per label."
        )
    if not np.all(np.isfinite(score)):
        raise ScratchInputError("y_score contains NaN or infinite values.")
    # Stable sort then reverse: equal scores keep a fixed order, as in scikit-learn.
    order = np.argsort(score, kind="mergesort")[::-1]
    score = score[order]
    truth = truth[order]
    # Last index of each run of equal scores, plus the very last sample.
    distinct = np.where(np.diff(score))[0]
    threshold_idxs = np.r_[distinct, truth.size - 1]
    tps = np.cumsum(truth)[threshold_idxs]
    fps = 1 + threshold_idxs - tps
    return fps, tps, score[threshold_idxs]


def roc_curve(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    pos_label: Any = None,
    drop_intermediate: bool = True,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Receiver operating characteristic curve.

    Args:
        y_true: Binary labels.
        y_score: Scores, higher means more likely positive.
        pos_label: The positive label; defaults to 1 for labels in {0, 1} or {-1, 1}.
        drop_intermediate: Drop thresholds that lie on a straight segment (collinear
            points do not change the curve or its area).

    Returns:
        ``(fpr, tpr, thresholds)``, starting at ``(0, 0, inf)``.
    """
    fps, tps, thresholds = binary_clf_curve(y_true, y_score, pos_label=pos_label)
    if drop_intermediate and fps.shape[0] > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps = np.r_[0.0, fps]
    tps = np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, thresholds


def auc(x: ArrayLike, y: ArrayLike) -> float:
    """Area under a curve given by points ``(x, y)`` with monotone ``x`` (trapezoid rule)."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1 or xs.size < 2:
        raise ScratchInputError("auc needs two 1-D arrays of the same length, at least 2 points.")
    dx = np.diff(xs)
    direction = 1.0
    if np.any(dx < 0):
        if not np.all(dx <= 0):
            raise ScratchInputError("x must be monotone (increasing or decreasing) for auc.")
        direction = -1.0
    return float(direction * np.trapezoid(ys, xs))


def roc_auc_score(y_true: ArrayLike, y_score: ArrayLike, *, pos_label: Any = None) -> float:
    """Area under the ROC curve (binary). Returns NaN, with a warning, if one class is missing."""
    truth = _binary_targets(y_true, pos_label)
    if np.unique(truth).size != 2:
        warnings.warn(
            "Only one class is present in y_true; ROC AUC is undefined (returning NaN).",
            UserWarning,
            stacklevel=2,
        )
        return float("nan")
    fpr, tpr, _ = roc_curve(truth, y_score)
    return auc(fpr, tpr)


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, labels: ArrayLike | None = None
) -> IntArray:
    """``C[i, j]`` = count of samples with true label ``labels[i]`` predicted as ``labels[j]``.

    Labels default to the sorted union of ``y_true`` and ``y_pred``; samples whose
    labels are not in ``labels`` are ignored.
    """
    truth = check_1d(y_true, name="y_true")
    pred = check_1d(y_pred, name="y_pred")
    if truth.shape != pred.shape:
        raise ScratchInputError(
            f"y_true has {truth.size} labels but y_pred has {pred.size}; they must align."
        )
    label_set = np.unique(np.r_[truth, pred]) if labels is None else np.asarray(labels)
    if label_set.size == 0:
        raise ScratchInputError("labels is empty; give at least one label.")
    n_labels = label_set.size
    index = {label: i for i, label in enumerate(label_set.tolist())}
    true_idx = np.array([index.get(v, -1) for v in truth.tolist()], dtype=np.int64)
    pred_idx = np.array([index.get(v, -1) for v in pred.tolist()], dtype=np.int64)
    keep = (true_idx >= 0) & (pred_idx >= 0)
    flat = true_idx[keep] * n_labels + pred_idx[keep]
    return np.bincount(flat, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def precision_recall_fscore_support(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    average: Average = None,
    pos_label: Any = 1,
    beta: float = 1.0,
    zero_division: float = 0.0,
) -> tuple[Any, Any, Any, Any]:
    """Precision, recall, F-beta and support.

    Args:
        average: ``None`` gives per-class arrays (sorted labels); ``"binary"`` the
            scores of ``pos_label``; ``"micro"`` pools all counts; ``"macro"`` the
            unweighted class mean; ``"weighted"`` the mean weighted by support.
        pos_label: Positive class for ``average="binary"``.
        beta: Weight of recall in the F score.
        zero_division: Value used when a ratio has a zero denominator.

    Returns:
        ``(precision, recall, fbeta, support)``; support is ``None`` when averaged.
    """
    truth = check_1d(y_true, name="y_true")
    pred = check_1d(y_pred, name="y_pred")
    labels = np.unique(np.r_[truth, pred])
    if average == "binary":
        if labels.size > 2:
            raise ScratchInputError(
                f"average='binary' needs two classes; got {labels.size}. "
                "Use average='macro', 'micro', 'weighted' or None."
            )
        labels = np.asarray([pos_label])
        cm = confusion_matrix(truth == pos_label, pred == pos_label, labels=[False, True])
        tp = cm[1:, 1].astype(np.float64)
        pred_pos = cm[:, 1].sum(keepdims=True).astype(np.float64)
        true_pos = cm[1].sum(keepdims=True).astype(np.float64)
    else:
        cm = confusion_matrix(truth, pred, labels=labels)
        tp = np.diag(cm).astype(np.float64)
        pred_pos = cm.sum(axis=0).astype(np.float64)
        true_pos = cm.sum(axis=1).astype(np.float64)
    if average == "micro":
        tp, pred_pos, true_pos = (a.sum(keepdims=True) for a in (tp, pred_pos, true_pos))

    beta2 = beta**2
    precision = _safe_divide(tp, pred_pos, zero_division)
    recall = _safe_divide(tp, true_pos, zero_division)
    # F_beta from counts: (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP).
    fbeta = _safe_divide((1 + beta2) * tp, beta2 * true_pos + pred_pos, zero_division)

    if average is None:
        return precision, recall, fbeta, true_pos.astype(np.int64)
    if average == "weighted":
        weights = true_pos
        if weights.sum() == 0:
            return zero_division, zero_division, zero_division, None
        return (
            float(np.average(precision, weights=weights)),
            float(np.average(recall, weights=weights)),
            float(np.average(fbeta, weights=weights)),
            None,
        )
    if average in ("binary", "micro", "macro"):
        return float(precision.mean()), float(recall.mean()), float(fbeta.mean()), None
    raise ScratchInputError(
        f"average={average!r} is not supported; use None, 'binary', 'micro', 'macro' or 'weighted'."
    )


def _safe_divide(numer: FloatArray, denom: FloatArray, zero_division: float) -> FloatArray:
    out = np.full(numer.shape, float(zero_division))
    nonzero = denom != 0
    out[nonzero] = numer[nonzero] / denom[nonzero]
    return out


def precision_score(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: Any) -> Any:
    """Precision ``TP / (TP + FP)``; options as in :func:`precision_recall_fscore_support`."""
    kwargs.setdefault("average", "binary")
    return precision_recall_fscore_support(y_true, y_pred, **kwargs)[0]


def recall_score(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: Any) -> Any:
    """Recall ``TP / (TP + FN)``; keyword arguments as :func:`precision_recall_fscore_support`."""
    kwargs.setdefault("average", "binary")
    return precision_recall_fscore_support(y_true, y_pred, **kwargs)[1]


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, **kwargs: Any) -> Any:
    """F1, harmonic mean of precision and recall; see :func:`precision_recall_fscore_support`."""
    kwargs.setdefault("average", "binary")
    return precision_recall_fscore_support(y_true, y_pred, **kwargs)[2]


def accuracy_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exact label matches."""
    truth = check_1d(y_true, name="y_true")
    pred = check_1d(y_pred, name="y_pred")
    if truth.shape != pred.shape:
        raise ScratchInputError("y_true and y_pred must have the same length.")
    return float(np.mean(truth == pred))
