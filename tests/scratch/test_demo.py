"""The learning figures are produced, are real PNGs and stay small."""

from __future__ import annotations

from reelrank.scratch.demo import make_figures

MAX_PNG_BYTES = 150_000
EXPECTED = {
    "gd_convergence.png",
    "regularization_path.png",
    "kmeans_iterations.png",
    "learning_curve.png",
}


def test_make_figures_writes_small_pngs(tmp_path):
    paths = make_figures(tmp_path / "figures")
    assert {p.name for p in paths} == EXPECTED
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert 10_000 < len(data) < MAX_PNG_BYTES
