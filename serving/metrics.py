"""Prometheus metrics of one app instance (its own registry, so apps never share counters).

With several uvicorn workers each process counts only what it served, and a scrape reaches
one worker at random. ``reelrank serve --workers N`` (N > 1) therefore runs
prometheus_client's multiprocess mode (``serving/server.py``): before the workers start it
points prometheus_client at a directory (``REELRANK_METRICS_DIR`` or a temporary one),
every worker's values live in files there, and ``/metrics`` aggregates them (counters and
histograms summed over workers; the model-version gauge is the maximum).

Whether ``/metrics`` aggregates files is decided by our own marker,
``REELRANK_METRICS_MULTIPROC_DIR`` (set by ``reelrank serve``), never by
``PROMETHEUS_MULTIPROC_DIR``: importing Feast sets that variable to a temporary directory
of its own in every process, and a single worker that trusted it rendered an empty
``/metrics``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
STAGE_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
STAGES: Final = ("retrieval", "features", "ranking", "reranking", "serialisation")
MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus_client keeps multiprocess values (read when it is imported)."""
OUR_MULTIPROC_DIR: Final = "REELRANK_METRICS_MULTIPROC_DIR"
"""Set by ``reelrank serve --workers N`` (N > 1): render every worker's files from there."""


class DriftCollector:
    """The last ``reelrank monitor`` report as gauges, read at every scrape:
    ``reelrank_feature_psi{feature}`` and ``reelrank_score_psi``, and the threshold each
    must exceed to count as drift (``..._threshold``: 0.2, or the window's noise level when
    higher; the alert rules compare the two), and the play-rate test (``reelrank_play_rate``,
    ``..._baseline``, ``..._p_value`` and ``..._alpha``); none before a report."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from reelrank.monitoring.monitor import GAUGES, gauges

        try:
            report = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        families: dict[str, GaugeMetricFamily] = {}
        for name, labels, value in gauges(report):
            if name not in families:
                families[name] = GaugeMetricFamily(name, GAUGES[name], labels=list(labels))
            families[name].add_metric(list(labels.values()), value)
        yield from families.values()

    def describe(self) -> list[GaugeMetricFamily]:
        return []


class ServingMetrics:
    """Request counts and latencies by route and status, fallbacks, stages, model version,
    served slates and feedback events (online quality), and the last drift report.

    Args:
        monitoring: the monitor's latest report (``<data_dir>/monitoring/latest.json``).
    """

    def __init__(self, monitoring: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._drift = DriftCollector(monitoring) if monitoring is not None else None
        if self._drift is not None:
            self.registry.register(self._drift)
        self.requests = Counter(
            "reelrank_http_requests",
            "HTTP requests by route template, method and status code.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "reelrank_http_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "reelrank_fallbacks",
            "Recommendations answered by a fallback, by kind (cold_start, degraded).",
            ("kind",),
            registry=self.registry,
        )
        self.stage_latency = Histogram(
            "reelrank_stage_duration_seconds",
            "Time per recommendation stage (retrieval, features, ranking, serialisation).",
            ("stage",),
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.feature_errors = Counter(
            "reelrank_online_feature_errors",
            "Online feature reads that failed or timed out, by reason.",
            ("reason",),
            registry=self.registry,
        )
        self.model_info = Gauge(
            "reelrank_model_info",
            "The model version being served (value 1 for the current one).",
            ("name", "version", "run_id"),
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.reloads = Counter(
            "reelrank_model_reloads",
            "Model reloads by outcome (ok, failed).",
            ("outcome",),
            registry=self.registry,
        )
        self.impressions_written = Counter(
            "reelrank_impressions_written",
            "Served slates appended to the impression log.",
            registry=self.registry,
        )
        self.impressions_dropped = Counter(
            "reelrank_impressions_dropped",
            "Served slates the impression log dropped, by reason (queue_full, write_error, "
            "encode_error); the answers were still served.",
            ("reason",),
            registry=self.registry,
        )
        self.slates_served = Counter(
            "reelrank_slates_served",
            "Slates answered, by model version and experiment arm (online quality's base).",
            ("model_version", "arm"),
            registry=self.registry,
        )
        self.feedback_events = Counter(
            "reelrank_feedback_events",
            "Feedback events accepted, by kind (impression, click, play, rating) and the "
            "model version they name.",
            ("kind", "model_version"),
            registry=self.registry,
        )
        # Pre-bound children: labels() is a dict lookup plus a lock; the hot path skips it.
        self._stages = {stage: self.stage_latency.labels(stage) for stage in STAGES}
        self._fallbacks = {kind: self.fallbacks.labels(kind) for kind in ("cold_start", "degraded")}
        self._requests: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._model_labels: tuple[str, str, str] | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        pair = self._requests.get(key)
        if pair is None:
            pair = (self.requests.labels(*key), self.latency.labels(*key))
            self._requests[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def observe_stages(self, stages: dict[str, float]) -> None:
        for stage, seconds in stages.items():
            child = self._stages.get(stage)
            if child is not None:
                child.observe(seconds)

    def observe_fallback(self, kind: str | None) -> None:
        if kind is not None:
            self._fallbacks[kind].inc()

    def count_impressions(self, outcome: str, n: int) -> None:
        """``written`` or a drop reason, for ``n`` slates (called by the log's writer)."""
        if outcome == "written":
            self.impressions_written.inc(n)
        else:
            self.impressions_dropped.labels(outcome).inc(n)

    def count_slate(self, model_version: str, arm: str | None) -> None:
        self.slates_served.labels(model_version, arm or "").inc()

    def count_feedback(self, kind: str, model_version: str | None, n: int = 1) -> None:
        self.feedback_events.labels(kind, model_version or "").inc(n)

    def set_model(self, name: str, version: str, run_id: str) -> None:
        if self._model_labels is not None:
            # 0 first: in multiprocess mode the value outlives remove() in the worker's file.
            self.model_info.labels(*self._model_labels).set(0)
            self.model_info.remove(*self._model_labels)
        self._model_labels = (name, version, run_id)
        self.model_info.labels(*self._model_labels).set(1)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (every worker's, in multiprocess mode)."""
        directory = os.environ.get(OUR_MULTIPROC_DIR)
        if directory:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            if self._drift is not None:
                registry.register(self._drift)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
