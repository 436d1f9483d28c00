"""Atomic file writes: write aside, fsync, then rename over the target.

An interrupted write never leaves a half-written file at the target path: the
bytes go to a hidden temporary file in the target's directory (same filesystem,
so :func:`os.replace` is atomic), which is flushed to disk before the rename.
On any exception the temporary file is removed and the previous target, if
any, is left untouched.

:class:`AtomicBatch` writes several files as a unit: every file is written
aside first and the renames happen only when the whole block succeeded.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
_HASH_CHUNK_BYTES = 1 << 20


@functools.cache
def _default_file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 minus the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _temp_path_for(target: Path) -> Path:
    """Create (empty) and return a hidden temporary file next to ``target``.

    ``mkstemp`` creates files readable by the owner only; the temporary file gets
    the target's mode (or the usual default) so the renamed file looks normal.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        mode = target.stat().st_mode & 0o777 if target.exists() else _default_file_mode()
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Path(name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    """Persist a rename; directories cannot be opened on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        pass
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    Example:
        >>> with atomic_path("out/model.bin") as tmp:  # doctest: +SKIP
        ...     tmp.write_bytes(b"...")
    """
    target = Path(path)
    tmp = _temp_path_for(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(text: str, path: str | os.PathLike[str], encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(text.encode(encoding), path)


def dumps_json(obj: Any) -> str:
    """Serialise ``obj`` as stable, human-readable JSON (sorted keys, paths as strings)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n"


def atomic_write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically and return the path."""
    return atomic_write_text(dumps_json(obj), path)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` to parquet (pyarrow, no index) at ``path``, non-atomically."""
    df.to_parquet(path, engine="pyarrow", index=False)


def atomic_write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` as parquet to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        write_parquet(df, tmp)
    return Path(path)


def remove_stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files a killed writer left beside ``target``; return what was removed.

    Only call this when no other process is writing ``target`` at the same time.
    """
    target_path = Path(target)
    if not target_path.parent.is_dir():
        return []
    stale = sorted(target_path.parent.glob(f".{glob.escape(target_path.name)}.*{TEMP_SUFFIX}"))
    for path in stale:
        _discard(path)
    if stale:
        logger.info("removed %d stale temporary file(s) beside %s", len(stale), target_path)
    return stale


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


class AtomicBatch:
    """Write several files as a unit: all renames happen only if the block succeeds.

    Every write goes to a temporary file beside its target. Leaving the ``with``
    block normally fsyncs and renames each one in the order written (so write
    the file that marks completion, e.g. a summary, last); leaving it with an
    exception removes every temporary file and leaves all targets untouched.

    Example:
        >>> with AtomicBatch() as batch:  # doctest: +SKIP
        ...     batch.write_parquet(events, lake / "events.parquet")
        ...     batch.write_json(summary, lake / "summary.json")
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self.committed: list[Path] = []

    def __enter__(self) -> AtomicBatch:
        return self

    def path(self, target: str | os.PathLike[str]) -> Path:
        """Reserve a temporary path that will replace ``target`` on commit."""
        target_path = Path(target)
        if any(existing == target_path for existing, _ in self._pending):
            raise ValueError(f"{target_path} is already part of this batch; write it once.")
        tmp = _temp_path_for(target_path)
        self._pending.append((target_path, tmp))
        return tmp

    def write_bytes(self, data: bytes, target: str | os.PathLike[str]) -> None:
        self.path(target).write_bytes(data)

    def write_json(self, obj: Any, target: str | os.PathLike[str]) -> None:
        self.path(target).write_text(dumps_json(obj), encoding="utf-8")

    def write_parquet(self, df: pd.DataFrame, target: str | os.PathLike[str]) -> None:
        write_parquet(df, self.path(target))

    def commit(self) -> list[Path]:
        """Flush and rename every pending file over its target."""
        for _, tmp in self._pending:
            _fsync_file(tmp)
        directories: set[Path] = set()
        for target, tmp in self._pending:
            os.replace(tmp, target)
            self.committed.append(target)
            directories.add(target.parent)
        self._pending.clear()
        for directory in directories:
            _fsync_dir(directory)
        return list(self.committed)

    def abort(self) -> None:
        """Remove every pending temporary file; targets stay as they were."""
        for _, tmp in self._pending:
            _discard(tmp)
        if self._pending:
            logger.debug("aborted atomic batch of %d file(s)", len(self._pending))
        self._pending.clear()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
