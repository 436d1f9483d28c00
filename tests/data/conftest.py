"""Fixtures of the data-layer tests: small MovieLens zips built on the fly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.data.movielens_fixtures import write_ml1m_zip, write_ml100k_zip

# A fixed "now" so future-timestamp checks do not depend on the clock.
NOW = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture
def ml100k_zip(tmp_path: Path) -> Path:
    return write_ml100k_zip(tmp_path / "source" / "ml-100k.zip")


@pytest.fixture
def ml1m_zip(tmp_path: Path) -> Path:
    return write_ml1m_zip(tmp_path / "source" / "ml-1m.zip")
