"""Off-policy evaluation: a candidate's play rate estimated from another policy's logs.

Assumption (stated, and what makes slates tractable): the **position-based model**. A
shown item is examined with a probability that depends on its position only, and its
reward (a play) given examination depends on the user and the item only; so a slate's
expected reward is the sum over positions of ``P(examine p) * P(play | user, item)``, and
each (position, item) pair can be reweighted on its own (Li et al. 2018, "Offline
evaluation of ranking policies with click models"). The logging policy must give every
item the target would put at a position a non-zero chance there (exploration; the
deterministic champion alone cannot be evaluated this way).

For logged rows ``i`` (one per slate and position) with reward ``r``, the logging policy's
probability ``mu`` of showing that item at that position, and the target's probability
``pi`` of the same (0 or 1 for a deterministic target), the importance weight is
``w = pi / mu`` and, over ``n`` slates:

* **IPS**: ``V = sum(w r) / n``;
* **self-normalised IPS**: ``V = sum over positions p of sum_p(w r) / sum_p(w)``
  (each position's weights average 1 in expectation; normalising trades a little bias for
  much less variance);
* **doubly robust**: ``V = (sum over slates and positions of q_target + w (r - q)) / n``,
  with ``q`` a reward model's prediction for the logged item at its position and
  ``q_target`` for the target's item there (the ranker's score, calibrated to a play
  probability on the logs: :func:`calibrated_reward_model`).

Each returns the expected plays per slate under the target policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelrank.exceptions import ValidationError


@dataclass(frozen=True)
class LoggedRows:
    """The logs, one row per shown (slate, position).

    Attributes:
        slate: the slate of each row (any ids; ``n`` = the number of distinct slates).
        position: 1-based position.
        reward: the observed reward (e.g. 1 for a play).
        logging_propensity: the logging policy's probability of this item at this position.
        target_propensity: the target policy's probability of this item at this position.
    """

    slate: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    logging_propensity: np.ndarray
    target_propensity: np.ndarray

    def __post_init__(self) -> None:
        sizes = {
            len(a)
            for a in (
                self.slate,
                self.position,
                self.reward,
                self.logging_propensity,
                self.target_propensity,
            )
        }
        if len(sizes) != 1:
            raise ValidationError("every column of the logged rows must have the same length.")
        if (np.asarray(self.logging_propensity) <= 0).any():
            raise ValidationError(
                "a logged row has logging propensity 0: the logging policy could not have "
                "shown it; off-policy estimates need an exploring logging policy."
            )

    @property
    def n_slates(self) -> int:
        return len(np.unique(self.slate))

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.target_propensity, float) / np.asarray(
            self.logging_propensity, float
        )


def ips(rows: LoggedRows) -> float:
    """Inverse propensity scoring: unbiased under the assumptions, high variance."""
    return float(np.sum(rows.weights * rows.reward) / rows.n_slates)


def snips(rows: LoggedRows) -> float:
    """Self-normalised IPS, position by position."""
    weights = rows.weights
    value = 0.0
    for position in np.unique(rows.position):
        at = rows.position == position
        total = weights[at].sum()
        if total > 0:
            value += float((weights[at] * rows.reward[at]).sum() / total)
    return value


def doubly_robust(
    rows: LoggedRows, predicted: np.ndarray, target_predicted_per_slate: np.ndarray
) -> float:
    """Doubly robust: the reward model's value of the target, corrected by the weighted
    residuals of the logged rows.

    Args:
        rows: the logs.
        predicted: the reward model's prediction for each logged row (its item, position).
        target_predicted_per_slate: per slate, the sum over positions of the reward model's
            prediction for the item the target would show there.
    """
    residual = rows.weights * (rows.reward - np.asarray(predicted, float))
    return float((np.sum(target_predicted_per_slate) + residual.sum()) / rows.n_slates)


def calibrated_reward_model(
    scores: np.ndarray, position: np.ndarray, reward: np.ndarray, n_positions: int
) -> tuple[np.ndarray, np.ndarray]:
    """A play probability from a ranker score and a position: logistic regression of the
    logged rewards on the score and one indicator per position (the position-based model's
    examination). Returns ``(coefficient of the score, intercept per position)``; predict
    with :func:`predict_reward`."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(reward)) < 2:
        raise ValidationError("the logs hold only one kind of reward; nothing to calibrate.")
    onehot = np.zeros((len(scores), n_positions))
    onehot[np.arange(len(scores)), np.asarray(position, int) - 1] = 1.0
    features = np.column_stack([np.asarray(scores, float), onehot])
    model = LogisticRegression(fit_intercept=False, C=1e4, max_iter=1000).fit(features, reward)
    return model.coef_[0][:1], model.coef_[0][1:]


def predict_reward(
    coefficients: tuple[np.ndarray, np.ndarray], scores: np.ndarray, position: np.ndarray
) -> np.ndarray:
    """The calibrated play probability of items with ``scores`` at ``position`` (1-based)."""
    slope, intercepts = coefficients
    logit = np.asarray(scores, float) * float(slope[0]) + intercepts[np.asarray(position, int) - 1]
    return 1.0 / (1.0 + np.exp(-logit))
