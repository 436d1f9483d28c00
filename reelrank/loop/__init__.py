"""The feedback loop: the service's logs as a data source, the policies that decide a slate
(and the propensities they log), simulated users acting on a synthetic world's ground
truth, and the loop's metrics.

* :mod:`~reelrank.loop.logs`: the append-only day files both logs share;
* :mod:`~reelrank.loop.records`: the served-slate record and the feedback event;
* :mod:`~reelrank.loop.policy`: greedy, epsilon and Plackett-Luce slates and propensities;
* :mod:`~reelrank.loop.feedback`: ``reelrank ingest-feedback`` (validation, quarantine,
  lake tables, the watermark, :func:`~reelrank.loop.feedback.read_negatives`);
* :mod:`~reelrank.loop.simulator`: users who examine, click and play by the truth;
* :mod:`~reelrank.loop.metrics`: what a round of the loop served and what it did.
"""
