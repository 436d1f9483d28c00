"""What a round of the loop served and what it did: the loop's metrics.

Over the shown items of a round (one row per item of each visit's slate,
:func:`reelrank.loop.simulator.visits_frame`):

* **true play rate**: the mean over shown items of their expected plays under the world's
  truth and the users' model (examination x click x play probability): what the served
  slates were worth, free of the simulation's sampling noise;
* **ideal play rate** (when the simulator computed the ideal rows): the same mean for the
  best row each user could have been shown (:meth:`reelrank.loop.simulator.Simulator.ideal_row`),
  and the **share of ideal**, true / ideal: how much of what the world offered the served
  rows took. A change of the world moves the ideal; only the policy moves the share;
* **observed play rate**: plays / shown items, what the logs saw;
* **click-through rate**: clicks / shown items;
* **coverage**: the share of the catalogue's items shown at least once in the round;
* **exposure Gini**: the Gini coefficient of the number of times each catalogue item was
  shown (every catalogue item counts, unshown ones with 0): 0 when every item is shown
  equally often, towards 1 when a few items take every slot. Rising over rounds, it is a
  loop concentrating exposure on what it already showed (popularity amplification);
* **top-decile share**: the share of impressions that went to the 10 % of the catalogue
  that is most popular in the world (its true popularity), the same question asked of
  popularity directly.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

TOP_SHARE: Final = 0.1


def gini(counts: NDArray[Any]) -> float:
    """Gini coefficient of non-negative counts (0: all equal; 0 for an empty or all-zero
    input)."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(values), float(values.sum())
    if n == 0 or total == 0.0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2.0 * np.sum(ranks * values) / (n * total)) - (n + 1.0) / n)


def exposure(shown: pd.DataFrame, n_items: int) -> NDArray[np.int64]:
    """Times each catalogue item (ids ``1..n_items``) was shown."""
    counts = np.bincount(shown["item_id"].to_numpy(dtype=np.int64), minlength=n_items + 1)
    return counts[1 : n_items + 1]


def round_metrics(shown: pd.DataFrame, item_popularity: NDArray[Any]) -> dict[str, float]:
    """The metrics of one round (see the module docstring).

    Args:
        shown: one row per shown item (``item_id``, ``expected_plays``, ``played``,
            ``clicked``, ``request_id``).
        item_popularity: the world's popularity of every item (index ``item_id - 1``).
    """
    n_items = len(item_popularity)
    counts = exposure(shown, n_items)
    impressions = len(shown)
    n_top = max(1, round(TOP_SHARE * n_items))
    top = np.argsort(-np.asarray(item_popularity), kind="stable")[:n_top]

    def per_impression(column: str) -> float:
        return float(shown[column].to_numpy(dtype=np.float64).mean()) if impressions else 0.0

    out = {
        "visits": float(shown["request_id"].nunique()) if impressions else 0.0,
        "impressions": float(impressions),
        "true_play_rate": per_impression("expected_plays"),
        "observed_play_rate": per_impression("played"),
        "click_through_rate": per_impression("clicked"),
        "coverage": float(np.count_nonzero(counts) / n_items),
        "exposure_gini": gini(counts),
        "top_decile_share": float(counts[top].sum() / impressions) if impressions else 0.0,
    }
    ideal = shown.get("ideal_expected_plays")
    if impressions and ideal is not None and not ideal.isna().any():
        out["ideal_play_rate"] = per_impression("ideal_expected_plays")
        out["share_of_ideal"] = (
            out["true_play_rate"] / out["ideal_play_rate"] if out["ideal_play_rate"] else 0.0
        )
    return out
