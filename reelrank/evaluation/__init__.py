"""Evaluation: ranking metrics, time-aware splits, bootstrap statistics and slices.

Import from the submodules (``reelrank.evaluation.metrics`` etc.); this package stays empty
so importing it is cheap.
"""
