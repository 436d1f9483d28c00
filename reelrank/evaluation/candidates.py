"""Candidate recall: how much of what users went on to watch the first stage retrieves."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from reelrank.models.retrieval import rank_column
from reelrank.schema import ITEM_ID, USER_ID


def candidate_recall(
    candidates: pd.DataFrame,
    relevant: pd.DataFrame,
    sources: Sequence[str],
    cutoffs: Sequence[int] = (50, 100, 200),
) -> pd.DataFrame:
    """Candidate recall@N per source and for the union of the sources' top N.

    Recall of a user = share of their relevant (``user_id, item_id``) pairs found in the
    candidate set; averaged over users with at least one relevant item. ``candidates`` must
    come from :func:`retrieve` with ``n >= max(cutoffs)``.

    Returns:
        A frame indexed by source name (plus ``union``) with one ``recall@N`` column per N.
    """
    rel = relevant[[USER_ID, ITEM_ID]].drop_duplicates()
    n_relevant = rel.groupby(USER_ID).size()
    joined = rel.merge(candidates, on=[USER_ID, ITEM_ID], how="left")
    out: dict[str, dict[str, float]] = {}

    def _recall(hit: pd.Series) -> float:
        per_user = hit.groupby(joined[USER_ID]).sum() / n_relevant
        return float(per_user.reindex(n_relevant.index, fill_value=0.0).mean())

    for cutoff in cutoffs:
        union_hit = pd.Series(False, index=joined.index)
        for source in sources:
            hit = joined[rank_column(source)].le(cutoff).fillna(False).astype(bool)
            union_hit |= hit
            out.setdefault(source, {})[f"recall@{cutoff}"] = _recall(hit)
        out.setdefault("union", {})[f"recall@{cutoff}"] = _recall(union_hit)
    return pd.DataFrame(out).T
