"""The loop's lake fixtures, for analysing experiments from ingested logs."""

from tests.loop.conftest import lake_settings, small_lake

__all__ = ["lake_settings", "small_lake"]
