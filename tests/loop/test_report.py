"""The loop's results page is generated from its raw figures and stays so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelrank.loop.report import DATA, FIGURE, PAGE, plot, render_page

RESULTS = Path(__file__).resolve().parents[2] / "design_docs" / "results"


def _round(n: int, gini: float) -> dict:
    return {
        "round": n, "served_version": str(n), "visits": 200.0, "impressions": 2000.0,
        "true_play_rate": 0.04, "observed_play_rate": 0.041, "click_through_rate": 0.06,
        "coverage": 0.5, "exposure_gini": gini, "top_decile_share": 0.3, "events_added": 120,
        "promoted": True,
    }  # fmt: skip


STUDY = {
    "commands": ["reelrank run --dataset synthetic", "reelrank loop-study --base DIR"],
    "setup": {
        "world": {"n_users": 300, "n_items": 200, "n_events": 20_000, "seed": 7},
        "rounds": 2,
        "users_per_day": 200,
        "k": 10,
    }
    | {"seed": 0, "gate": "always", "folds": 2},
    "runs": [
        {"label": "greedy", "policy_label": "greedy", "rounds": [_round(1, 0.7), _round(2, 0.75)]},
        {
            "label": "epsilon",
            "policy_label": "epsilon(...)",
            "rounds": [_round(1, 0.6), _round(2, 0.6)],
        },
    ],
}


def test_the_page_shows_each_run_and_the_figure(tmp_path):
    page = render_page(STUDY)
    assert "| round | served version |" in page
    assert "## greedy" in page
    assert "## epsilon" in page
    assert f"![The loop's metrics per round]({FIGURE})" in page
    assert "exposure Gini 0.700 -> 0.750 (+0.050)" in page
    assert "300 users, 200 items, 20,000 events, seed 7" in page
    figure = plot(STUDY, tmp_path / FIGURE)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_committed_page_is_rendered_from_its_data():
    if not (RESULTS / DATA).exists():
        pytest.skip("no loop study committed yet; run `reelrank loop-study`.")
    study = json.loads((RESULTS / DATA).read_text(encoding="utf-8"))
    assert (RESULTS / PAGE).read_text(encoding="utf-8") == render_page(study), (
        "design_docs/results/loop.md is out of date; run `reelrank loop-study --no-run`."
    )
    assert (RESULTS / FIGURE).exists()
