"""Ingest one source into the lake: load, validate, then write everything atomically.

``run_ingest`` reads a source (a MovieLens zip, downloaded once or given with
``--source``, or the synthetic world), validates all three tables, and only
then writes, as one :class:`~reelrank.data.io.AtomicBatch`:

- ``<quarantine_dir>/{events,users,items}.parquet``: rejected rows, original
  content and ``reason`` (always written, possibly empty, so nothing stale stays);
- ``<lake_dir>/{events,users,items}.parquet``: the accepted canonical frames;
- ``<lake_dir>/summary.json`` (written last): per table
  ``{"read", "accepted", "quarantined", "reasons"}`` at the top level, plus
  ``dataset``, ``source``, ``rating_scale``, ``created_at`` and ``data_version``
  (a SHA-256 of the lake's content).

A failure before the renames leaves the previous lake and quarantine untouched.
:func:`read_lake` is how later steps load the lake back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import numpy as np
import pandas as pd

from reelrank import schema as s
from reelrank.config import Settings
from reelrank.data.io import AtomicBatch, remove_stale_temps, sha256_file
from reelrank.data.movielens import fetch_movielens, read_movielens
from reelrank.data.validation import RawTable, TableReport, ValidationResult, validate_tables
from reelrank.exceptions import DataSourceError, ValidationError

if TYPE_CHECKING:
    from reelrank.data.synthetic import SyntheticConfig

logger = logging.getLogger(__name__)

IngestDataset = Literal["ml-100k", "ml-1m", "synthetic"]
INGEST_DATASETS: Final[tuple[str, ...]] = get_args(IngestDataset)
SYNTHETIC: Final = "synthetic"
SUMMARY_FILE: Final = "summary.json"
TABLE_FILES: Final[dict[str, str]] = {table: f"{table}.parquet" for table in s.TABLES}
EVENT_CHUNK_SIZE: Final = 1_000_000
DATA_VERSION_CHARS: Final = 16

Progress = Callable[[str], None]


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest run read, accepted and quarantined, and where it wrote."""

    dataset: str
    source: str
    source_sha256: str | None
    rating_min: float
    rating_max: float
    created_at: str
    data_version: str
    content_sha256: str
    tables: dict[str, TableReport]
    lake_dir: Path
    quarantine_dir: Path
    seconds: float

    @property
    def events(self) -> TableReport:
        return self.tables[s.EVENTS]

    @property
    def users(self) -> TableReport:
        return self.tables[s.USERS]

    @property
    def items(self) -> TableReport:
        return self.tables[s.ITEMS]

    def to_dict(self) -> dict[str, Any]:
        """The content of ``summary.json``: per-table accounting at the top level."""
        return {
            **{name: report.to_dict() for name, report in self.tables.items()},
            "dataset": self.dataset,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "rating_scale": {"min": self.rating_min, "max": self.rating_max},
            "created_at": self.created_at,
            "data_version": self.data_version,
            "content_sha256": self.content_sha256,
            "lake_dir": str(self.lake_dir),
            "quarantine_dir": str(self.quarantine_dir),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Loaded:
    events: RawTable
    users: RawTable
    items: RawTable
    rating_min: float
    rating_max: float
    source: str
    source_sha256: str | None


def _say(progress: Progress | None, message: str) -> None:
    logger.info(message)
    if progress is not None:
        progress(message)


def _load_movielens(
    dataset: IngestDataset, settings: Settings, source: Path | None, progress: Progress | None
) -> _Loaded:
    if source is None:
        _say(progress, f"fetching {dataset} into {settings.raw_path}")
        zip_path = fetch_movielens(dataset, settings.raw_path)  # type: ignore[arg-type]
    else:
        zip_path = Path(source).expanduser()
    _say(progress, f"reading {zip_path}")
    tables = read_movielens(zip_path, dataset)  # type: ignore[arg-type]
    digest = sha256_file(zip_path)
    return _Loaded(
        events=tables.events,
        users=tables.users,
        items=tables.items,
        rating_min=tables.rating_min,
        rating_max=tables.rating_max,
        source=str(zip_path),
        source_sha256=digest,
    )


def _collect_events(
    chunks: Iterator[pd.DataFrame], expected: int, progress: Progress | None
) -> pd.DataFrame:
    """One frame from canonical event chunks, filled into preallocated arrays.

    Concatenating a list of chunks would briefly hold every event twice; filling
    arrays sized for ``expected`` rows holds them once. Chunks with other columns
    or more rows than expected fall back to concatenation.
    """
    columns = s.EVENTS_SCHEMA.columns
    arrays = {
        s.USER_ID: np.empty(expected, dtype=np.int64),
        s.ITEM_ID: np.empty(expected, dtype=np.int64),
        s.RATING: np.empty(expected, dtype=np.float64),
        s.TIMESTAMP: np.empty(expected, dtype="datetime64[ns]"),
    }
    extra: list[pd.DataFrame] = []
    filled = 0
    for chunk in chunks:
        n = len(chunk)
        if list(chunk.columns) == columns and filled + n <= expected and not extra:
            for column in (s.USER_ID, s.ITEM_ID, s.RATING):
                arrays[column][filled : filled + n] = chunk[column].to_numpy()
            stamps = pd.DatetimeIndex(chunk[s.TIMESTAMP])
            if stamps.tz is not None:  # naive stamps are taken as UTC already
                stamps = stamps.tz_convert("UTC").tz_localize(None)
            arrays[s.TIMESTAMP][filled : filled + n] = stamps.to_numpy()
            filled += n
        else:
            extra.append(chunk)
        _say(progress, f"generated {filled + sum(map(len, extra)):,} / {expected:,} events")
    frame = pd.DataFrame(
        {
            s.USER_ID: arrays[s.USER_ID][:filled],
            s.ITEM_ID: arrays[s.ITEM_ID][:filled],
            s.RATING: arrays[s.RATING][:filled],
            s.TIMESTAMP: pd.DatetimeIndex(arrays[s.TIMESTAMP][:filled]).tz_localize("UTC"),
        },
        copy=False,
    )
    if extra:
        frame = pd.concat([frame, *extra], ignore_index=True)
    return frame


def synthetic_truth_dir(settings: Settings, config: SyntheticConfig) -> Path:
    """Where the ground truth of the world ``config`` defines is saved (one folder per config)."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return settings.raw_path / SYNTHETIC / hashlib.sha256(text.encode()).hexdigest()[:12]


def _load_synthetic(
    settings: Settings, config: SyntheticConfig | None, progress: Progress | None
) -> _Loaded:
    from reelrank.data.synthetic import SyntheticConfig, generate_world

    config = config if config is not None else SyntheticConfig()
    _say(
        progress,
        f"generating a synthetic world: {config.n_users:,} users, {config.n_items:,} items, "
        f"{config.n_events:,} events, seed {config.seed}",
    )
    world = generate_world(config)
    truth_dir = synthetic_truth_dir(settings, config)
    _say(progress, f"saving the ground truth to {truth_dir}")
    world.save(truth_dir)
    events = _collect_events(world.iter_events(EVENT_CHUNK_SIZE), config.n_events, progress)
    return _Loaded(
        events=RawTable(s.EVENTS, events),
        users=RawTable(s.USERS, world.users),
        items=RawTable(s.ITEMS, world.items),
        rating_min=float(world.truth.rating_min),
        rating_max=float(world.truth.rating_max),
        source=str(truth_dir),
        source_sha256=None,
    )


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    if s.GENRES not in frame.columns:
        return frame
    genres = frame[s.GENRES].map(lambda g: "|".join(g), na_action="ignore")
    return frame.assign(**{s.GENRES: genres})


def lake_content_hash(dataset: s.Dataset) -> str:
    """SHA-256 of the three canonical frames' content (columns, dtypes, values, order)."""
    digest = hashlib.sha256()
    for table in s.TABLES:
        frame = dataset.table(table)
        digest.update(table.encode())
        digest.update(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
        if len(frame):
            hashes = pd.util.hash_pandas_object(_hashable(frame), index=False)
            digest.update(hashes.to_numpy(dtype="uint64").tobytes())
    return digest.hexdigest()


def _write(
    result: ValidationResult,
    summary: IngestSummary,
    lake_dir: Path,
    quarantine_dir: Path,
) -> None:
    lake_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    for filename in (*TABLE_FILES.values(), SUMMARY_FILE):
        for directory in (lake_dir, quarantine_dir):
            remove_stale_temps(directory / filename)  # left by a run that was killed
    with AtomicBatch() as batch:
        for table, filename in TABLE_FILES.items():
            batch.write_parquet(result.quarantine[table], quarantine_dir / filename)
        for table, filename in TABLE_FILES.items():
            batch.write_parquet(result.dataset.table(table), lake_dir / filename)
        batch.write_json(summary.to_dict(), lake_dir / SUMMARY_FILE)


def run_ingest(
    dataset: IngestDataset,
    settings: Settings,
    source: Path | None = None,
    synthetic: SyntheticConfig | None = None,
    progress: Progress | None = None,
    *,
    now: pd.Timestamp | None = None,
) -> IngestSummary:
    """Load ``dataset``, validate every table, then write lake, quarantine and summary.

    Args:
        dataset: ``ml-100k``, ``ml-1m`` or ``synthetic``.
        settings: where to read and write (``raw_path``, ``lake_path``, ``quarantine_path``).
        source: a local MovieLens zip; when ``None`` the official zip is fetched
            once into ``settings.raw_path``.
        synthetic: the generator's configuration (defaults when ``None``).
        progress: called with a short message at each step (for a progress display).
        now: the instant after which event timestamps count as future (default: now).

    Returns:
        The run's summary, also written to ``<lake_dir>/summary.json``.

    Raises:
        DataSourceError: the source is missing, unreachable or not the expected format.
        ValidationError: a table cannot be validated at all (e.g. a missing column).
    """
    started = time.perf_counter()
    if dataset not in INGEST_DATASETS:
        raise DataSourceError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(INGEST_DATASETS)}."
        )
    if dataset == SYNTHETIC:
        if source is not None:
            raise DataSourceError(
                "--source reads a MovieLens zip and does not apply to --dataset synthetic; "
                "drop --source, or pick --dataset ml-100k / ml-1m."
            )
        loaded = _load_synthetic(settings, synthetic, progress)
    else:
        loaded = _load_movielens(dataset, settings, source, progress)

    _say(progress, "validating users, items and events")
    result = validate_tables(
        loaded.events,
        loaded.users,
        loaded.items,
        rating_min=loaded.rating_min,
        rating_max=loaded.rating_max,
        now=now,
        name=dataset,
    )
    source_text, source_sha256 = loaded.source, loaded.source_sha256
    del loaded  # the raw tables (strings for MovieLens) are no longer needed

    _say(progress, "hashing the lake content")
    content = lake_content_hash(result.dataset)
    summary = IngestSummary(
        dataset=dataset,
        source=source_text,
        source_sha256=source_sha256,
        rating_min=result.dataset.rating_min,
        rating_max=result.dataset.rating_max,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data_version=content[:DATA_VERSION_CHARS],
        content_sha256=content,
        tables=dict(result.reports),
        lake_dir=settings.lake_path,
        quarantine_dir=settings.quarantine_path,
        seconds=time.perf_counter() - started,
    )
    _say(progress, f"writing {settings.lake_path} and {settings.quarantine_path}")
    _write(result, summary, settings.lake_path, settings.quarantine_path)
    _say(progress, f"done in {summary.seconds:.1f} s (data version {summary.data_version})")
    return summary


def read_summary(lake_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` of the lake at ``lake_dir``."""
    path = Path(lake_dir) / SUMMARY_FILE
    if not path.exists():
        raise DataSourceError(
            f"no lake summary at {path}; run `reelrank data --dataset ml-100k` "
            "(or `--dataset synthetic` offline) first."
        )
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return summary


def read_lake(lake_dir: Path) -> s.Dataset:
    """Load the validated lake written by :func:`run_ingest` as a :class:`~schema.Dataset`.

    Raises:
        DataSourceError: the lake (or one of its files) does not exist yet.
    """
    lake_dir = Path(lake_dir)
    summary = read_summary(lake_dir)
    frames: dict[str, pd.DataFrame] = {}
    for table, filename in TABLE_FILES.items():
        path = lake_dir / filename
        if not path.exists():
            raise DataSourceError(
                f"the lake at {lake_dir} lacks {filename}; run `reelrank data` again to rebuild it."
            )
        frames[table] = pd.read_parquet(path, engine="pyarrow")
    items = frames[s.ITEMS]
    items[s.GENRES] = items[s.GENRES].map(lambda g: [str(x) for x in g], na_action="ignore")
    for table, frame in frames.items():
        for column, dtype in s.SCHEMAS[table].dtypes.items():
            if column != s.GENRES and str(frame[column].dtype) != dtype:
                raise ValidationError(
                    f"{lake_dir / TABLE_FILES[table]} column {column!r} is "
                    f"{frame[column].dtype}, expected {dtype}; rebuild the lake with "
                    "`reelrank data`."
                )
    scale = summary.get("rating_scale", {})
    return s.Dataset(
        events=frames[s.EVENTS],
        users=frames[s.USERS],
        items=items,
        rating_min=float(scale.get("min", 1.0)),
        rating_max=float(scale.get("max", 5.0)),
        name=str(summary.get("dataset", "dataset")),
    )
