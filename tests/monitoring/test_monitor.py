"""The drift monitor's pieces: the served window from the log, the comparison against a
reference, and the gauges /metrics exports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest

from reelrank.exceptions import ValidationError
from reelrank.loop.logs import IMPRESSIONS_PREFIX, append_lines
from reelrank.monitoring.drift import build_profile
from reelrank.monitoring.monitor import compare, gauges, play_rate_test, served_window

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _slate(request_id: str, user: int, version: str, when: datetime, scores: list[float]):
    return orjson.dumps(
        {
            "request_id": request_id, "served_at": when.isoformat(), "user_id": user, "k": 2,
            "exclude_seen": True, "genre": None, "model_version": version, "experiment": None,
            "design": None, "arm": None, "policy": "greedy", "fallback": None,
            "slate_propensity": 1.0, "pool": None,
            "items": [
                {"position": p, "item_id": 10 + p, "score": s, "propensity": 1.0,
                 "marginal_propensity": 1.0, "team": None}
                for p, s in enumerate(scores, start=1)
            ],
        }
    )  # fmt: skip


def test_the_window_holds_the_versions_slates_since_its_start(tmp_path):
    lines = [
        _slate("a", 1, "3", NOW - timedelta(hours=2), [0.9, 0.5]),
        _slate("b", 2, "3", NOW - timedelta(days=3), [0.7, 0.1]),  # before the window
        _slate("c", 3, "2", NOW - timedelta(hours=1), [0.8, 0.2]),  # another version
        b"not json",
    ]
    append_lines(tmp_path, IMPRESSIONS_PREFIX, lines, NOW)
    window = served_window(tmp_path, NOW - timedelta(days=1), "3")
    assert window.to_dict("list") == {
        "request_id": ["a", "a"], "user_id": [1, 1], "score": [0.9, 0.5],
    }  # fmt: skip


def test_a_shifted_feature_and_score_cross_the_threshold_and_a_stable_one_does_not():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"stable": rng.normal(size=5000), "moved": rng.normal(size=5000)})
    scores = pd.DataFrame({"score": rng.normal(size=5000)})
    online = pd.DataFrame({"stable": rng.normal(size=800), "moved": rng.normal(1.0, size=800)})
    served = pd.DataFrame({"user_id": np.arange(800), "score": rng.normal(0.8, size=800)})
    report = compare(
        build_profile(reference), build_profile(scores), served, online, "3", (NOW, NOW)
    )
    assert report.feature_psi["stable"] < 0.05
    assert report.feature_psi["moved"] > 0.2
    assert report.score_psi is not None
    assert report.score_psi > 0.2
    assert report.drifted == ["moved", "score"]
    assert report.record()["drifted"] == ["moved", "score"]
    quiet = compare(build_profile(reference), build_profile(scores), served.assign(
        score=rng.normal(size=800)), online[["stable"]], "3", (NOW, NOW))  # fmt: skip
    assert quiet.drifted == []
    with pytest.raises(ValidationError, match="widen --window"):
        compare(build_profile(reference), build_profile(scores), served.iloc[:0], online, "3",
                (NOW, NOW))  # fmt: skip


def test_the_last_report_is_exported_as_gauges(tmp_path):
    from serving.metrics import ServingMetrics

    path = tmp_path / "latest.json"
    metrics = ServingMetrics(path)
    assert b"reelrank_feature_psi" not in metrics.render()[0]  # no report yet: no gauge
    report = {"feature_psi": {"mean_rating": 0.31, "n_events": 0.02}, "score_psi": 0.12}
    path.write_text(orjson.dumps(report).decode())
    assert next(iter(gauges(report))) == ("reelrank_feature_psi", {"feature": "mean_rating"}, 0.31)
    text = metrics.render()[0].decode()
    assert 'reelrank_feature_psi{feature="mean_rating"} 0.31' in text
    assert "reelrank_score_psi 0.12" in text
    assert "reelrank_play_rate" not in text  # no play-rate test in the report: no gauge
    tested = report | {"play_rate": play_rate_test(50, 1_000, 80, 1_000).record()}
    path.write_text(orjson.dumps(tested).decode())
    text = metrics.render()[0].decode()
    assert "reelrank_play_rate 0.05" in text
    assert "reelrank_play_rate_baseline 0.08" in text
    assert "reelrank_play_rate_alpha 0.01" in text
    (p_value,) = (float(line.split()[1]) for line in text.splitlines()
                  if line.startswith("reelrank_play_rate_p_value "))  # fmt: skip
    assert 0 < p_value < 0.01  # 5 % against 8 % of 1,000 impressions each: z = -2.7
    metrics.count_slate("3", "control")
    metrics.count_feedback("play", "3")
    text = metrics.render()[0].decode()
    assert 'reelrank_slates_served_total{arm="control",model_version="3"} 1.0' in text
    assert 'reelrank_feedback_events_total{kind="play",model_version="3"} 1.0' in text


def test_every_metric_the_dashboard_and_the_alerts_name_is_exported(tmp_path):
    import re
    from pathlib import Path

    from serving.metrics import ServingMetrics

    root = Path(__file__).resolve().parents[2]
    named = set()
    for path in (
        root / "deploy" / "grafana" / "dashboards" / "reelrank.json",
        root / "deploy" / "prometheus" / "rules.yml",
    ):
        named |= set(re.findall(r"reelrank_[a-z_]+", path.read_text()))
    latest = tmp_path / "latest.json"
    play_rate = {"rate": 0.05, "baseline_rate": 0.06, "p_value": 0.2, "alpha": 0.01}
    latest.write_text(orjson.dumps({"feature_psi": {"x": 0.1}, "score_psi": 0.1,
                                    "play_rate": play_rate}).decode())  # fmt: skip
    metrics = ServingMetrics(latest)
    metrics.count_slate("1", None)
    metrics.count_feedback("play", "1")
    metrics.observe_fallback("degraded")
    metrics.observe_request("/recommendations/{user_id}", "GET", 200, 0.01)
    metrics.observe_stages({"retrieval": 0.001})
    metrics.set_model("reelrank", "1", "run")
    text = metrics.render()[0].decode()
    exported = set(re.findall(r"^(reelrank_[a-z_]+)", text, flags=re.MULTILINE))
    suffixes = ("_bucket", "_count", "_sum")
    exported |= {name.removesuffix(s) for name in exported for s in suffixes if name.endswith(s)}
    assert {"reelrank_feature_psi", "reelrank_feedback_events_total"} <= named
    assert named <= exported, f"named but not exported: {sorted(named - exported)}"


def test_a_new_version_inherits_the_baseline_its_first_window_is_far_below():
    from reelrank.monitoring.monitor import new_baseline

    assert new_baseline(60, 1_000, None) == {"plays": 60, "impressions": 1_000}
    previous = {"plays": 60, "impressions": 1_000, "version": "3"}
    assert new_baseline(50, 1_000, previous) == {"plays": 50, "impressions": 1_000}  # chance
    assert new_baseline(80, 1_000, previous) == {"plays": 80, "impressions": 1_000}  # better
    inherited = new_baseline(35, 1_000, previous)  # z = -2.6: the bar is not lowered
    assert inherited == {"plays": 60, "impressions": 1_000, "inherited_from": "3"}
    again = new_baseline(30, 1_000, {**inherited, "version": "4"})
    assert again["inherited_from"] == "3"  # the version that set the level


def test_the_previous_baseline_is_the_latest_earlier_versions(tmp_path):
    from reelrank.monitoring.run import _previous_baseline

    assert _previous_baseline(tmp_path, "3") is None
    for version, plays in (("1", 50), ("2", 60), ("10", 70)):
        (tmp_path / f"baseline-v{version}.json").write_text(
            orjson.dumps({"plays": plays, "impressions": 1_000}).decode()
        )
    (tmp_path / "baseline-vx.json").write_text("{}")  # not a version: ignored
    assert _previous_baseline(tmp_path, "3") == {"version": "2", "plays": 60, "impressions": 1_000}
    assert _previous_baseline(tmp_path, "11")["version"] == "10"  # numbers, not text order
    assert _previous_baseline(tmp_path, "1") is None


def test_the_play_rate_drops_only_when_the_drop_is_beyond_chance(tmp_path):
    from reelrank.loop.logs import FEEDBACK_PREFIX
    from reelrank.monitoring.monitor import play_rate_test, window_plays

    assert play_rate_test(35, 1_000, 60, 1_000).dropped  # 3.5 % vs 6 %: z = -2.6
    assert not play_rate_test(45, 1_000, 60, 1_000).dropped  # z = -1.5: within chance at 1 %
    assert not play_rate_test(80, 1_000, 60, 1_000).dropped  # a rise is no drop
    same = play_rate_test(60, 1_000, 60, 1_000)
    assert same.p_value == pytest.approx(0.5)
    assert same.record()["rate"] == same.record()["baseline_rate"] == 0.06
    assert play_rate_test(0, 0, 60, 1_000).p_value is None  # nothing served: no test
    events = [
        {"event": "play", "user_id": 1, "item_id": 11, "request_id": "a", "position": 1},
        {"event": "play", "user_id": 1, "item_id": 11, "request_id": "a", "position": 1},
        {"event": "click", "user_id": 1, "item_id": 12, "request_id": "a", "position": 2},
        {"event": "play", "user_id": 2, "item_id": 13, "request_id": "z", "position": 1},
    ]
    lines = [orjson.dumps(e | {"received_at": NOW.isoformat()}) for e in events] + [b"{"]
    append_lines(tmp_path, FEEDBACK_PREFIX, lines, NOW)
    assert window_plays(tmp_path, ["a", "b"]) == 1  # a repeat and another slate do not count
