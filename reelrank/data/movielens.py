"""MovieLens-100K and MovieLens-1M: download once (SHA-256 checked) and read into raw tables.

The readers never drop a line. A line that cannot be split into the expected
number of fields becomes a reject with reason ``unparseable_line`` and its
original text; every other line becomes a row whose values are still text,
with its original line (``raw``) and line number (``line``) attached, and the
column domains where MovieLens differs from the canonical declaration
(:data:`reelrank.data.domains.ML100K_DOMAINS`, :data:`~reelrank.data.domains.ML1M_DOMAINS`),
which :func:`reelrank.data.validation.validate_tables` applies.

Official files (GroupLens, https://grouplens.org/datasets/movielens/):

- ``ml-100k.zip``: ``ml-100k/u.data`` (user \\t item \\t rating \\t unix seconds),
  ``u.item`` (id|title|release date ``01-Jan-1995``|video release|IMDb URL|19 genre
  flags), ``u.user`` (id|age|gender|occupation|zip), ``u.occupation`` (the occupations,
  one a line: the users' vocabulary), ``u.genre`` (name|flag index); latin-1.
- ``ml-1m.zip``: ``ml-1m/ratings.dat`` (UserID::MovieID::Rating::Timestamp),
  ``movies.dat`` (MovieID::Title (Year)::Genre|Genre), ``users.dat``
  (UserID::Gender::Age::Occupation code::Zip-code); latin-1.
"""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal, get_args

import pandas as pd

from reelrank import schema as s
from reelrank.data.domains import (
    DOMAINS,
    ML1M_DOMAINS,
    ML100K_DOMAINS,
    ML100K_GENRE_FLAGS,
    OCCUPATIONS,
    Domain,
)
from reelrank.data.io import atomic_path, sha256_file
from reelrank.data.parsers import GENRE_SEPARATOR
from reelrank.data.validation import LINE, RAW, UNPARSEABLE_LINE, RawTable
from reelrank.exceptions import DataSourceError

logger = logging.getLogger(__name__)

MovieLensVariant = Literal["ml-100k", "ml-1m"]
MOVIELENS_VARIANTS: Final[tuple[str, ...]] = get_args(MovieLensVariant)
ENCODING: Final = "latin-1"
RATING_MIN: Final = 1.0
RATING_MAX: Final = 5.0
DOWNLOAD_TIMEOUT_SECONDS: Final = 60.0

_TITLE_YEAR: Final = re.compile(r"\((\d{4})\)\s*$")
# Lists ml-100k ships beside its tables (the documented ones are used if a copy lacks them).
ML100K_OCCUPATIONS_MEMBER: Final = "ml-100k/u.occupation"
ML100K_GENRES_MEMBER: Final = "ml-100k/u.genre"


@dataclass(frozen=True)
class MovieLensRelease:
    """Where an official zip lives and what its bytes hash to."""

    variant: str
    url: str
    sha256: str
    size_bytes: int
    md5: str


# SHA-256 and sizes: TensorFlow Datasets' recorded checksums of the GroupLens files
# (tensorflow_datasets/url_checksums/movielens.txt). MD5: the ``.md5`` files GroupLens
# publishes next to each zip. Kept for cross-checking by hand; only SHA-256 is verified.
RELEASES: Final[dict[str, MovieLensRelease]] = {
    "ml-100k": MovieLensRelease(
        variant="ml-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        size_bytes=4_924_029,
        md5="0e33842e24a9c977be4e0107933c0723",
    ),
    "ml-1m": MovieLensRelease(
        variant="ml-1m",
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        size_bytes=5_917_549,
        md5="c4d9eecfca2ab87c1945afe126590906",
    ),
}


@dataclass(frozen=True)
class _FileLayout:
    member: str
    separator: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class _Layout:
    variant: str
    events: _FileLayout
    users: _FileLayout
    items: _FileLayout

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(f"{self.variant}/{f.member}" for f in (self.events, self.users, self.items))


_ML100K_FLAG_COLUMNS: Final = tuple(f"genre_flag_{i}" for i in range(len(ML100K_GENRE_FLAGS)))
_VIDEO_RELEASE: Final = "video_release_date"

LAYOUTS: Final[dict[str, _Layout]] = {
    "ml-100k": _Layout(
        variant="ml-100k",
        events=_FileLayout("u.data", "\t", (s.USER_ID, s.ITEM_ID, s.RATING, s.TIMESTAMP)),
        users=_FileLayout("u.user", "|", (s.USER_ID, s.AGE, s.GENDER, s.OCCUPATION, s.ZIP_CODE)),
        items=_FileLayout(
            "u.item",
            "|",
            (s.ITEM_ID, s.TITLE, s.RELEASE_DATE, _VIDEO_RELEASE, s.IMDB_URL, *_ML100K_FLAG_COLUMNS),
        ),
    ),
    "ml-1m": _Layout(
        variant="ml-1m",
        events=_FileLayout("ratings.dat", "::", (s.USER_ID, s.ITEM_ID, s.RATING, s.TIMESTAMP)),
        users=_FileLayout(
            "users.dat", "::", (s.USER_ID, s.GENDER, s.AGE, s.OCCUPATION, s.ZIP_CODE)
        ),
        items=_FileLayout("movies.dat", "::", (s.ITEM_ID, s.TITLE, s.GENRES)),
    ),
}


@dataclass(frozen=True)
class MovieLensTables:
    """The three tables of one MovieLens zip, read but not yet validated."""

    variant: str
    events: RawTable
    users: RawTable
    items: RawTable
    rating_min: float = RATING_MIN
    rating_max: float = RATING_MAX


# --------------------------------------------------------------------------- download


def download_url(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> None:
    """Stream ``url`` into ``dest`` (tests replace this to simulate no network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)


def _no_network(variant: str, url: str, error: BaseException) -> DataSourceError:
    return DataSourceError(
        f"Cannot download {variant} from {url}: there is no network connection ({error}). "
        f"Two ways out: pass a local copy of GroupLens' {variant}.zip with "
        f"`--source PATH` (e.g. `reelrank data --dataset {variant} --source ./{variant}.zip`), "
        "or work offline on generated data with `--dataset synthetic`."
    )


def fetch_movielens(
    variant: MovieLensVariant,
    raw_dir: Path,
    *,
    downloader: Callable[[str, Path], None] | None = None,
) -> Path:
    """Return ``raw_dir/<variant>.zip``, downloading it once with a SHA-256 check.

    An existing file is verified, never modified: a mismatch raises instead of
    overwriting. A download goes to a temporary file and is renamed into place
    only after its hash matches.

    Raises:
        DataSourceError: unknown variant, no network (naming ``--source`` and
            ``--dataset synthetic``), or a hash that is not the official one.
    """
    if variant not in RELEASES:
        raise DataSourceError(
            f"unknown MovieLens variant {variant!r}; expected one of {sorted(RELEASES)}."
        )
    release = RELEASES[variant]
    target = Path(raw_dir) / f"{variant}.zip"
    if target.exists():
        digest = sha256_file(target)
        if digest != release.sha256:
            raise DataSourceError(
                f"{target} exists but its SHA-256 is {digest}, not the official "
                f"{release.sha256}. It was left untouched (raw files are never modified). "
                f"Move it away to download a fresh copy, or use it as is with "
                f"`--source {target}`."
            )
        logger.info("using %s (SHA-256 verified)", target)
        return target

    fetch = downloader or download_url
    logger.info("downloading %s to %s", release.url, target)
    with atomic_path(target) as tmp:
        try:
            fetch(release.url, tmp)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            raise _no_network(variant, release.url, error) from error
        digest = sha256_file(tmp)
        if digest != release.sha256:
            raise DataSourceError(
                f"the file downloaded from {release.url} has SHA-256 {digest}, not the "
                f"official {release.sha256}; it was not saved. Retry later, or download it "
                f"yourself and pass it with `--source PATH`."
            )
    return target


# --------------------------------------------------------------------------- reading


def _open_zip(path: Path) -> zipfile.ZipFile:
    expected = " or ".join(f"GroupLens' {v}.zip ({', '.join(LAYOUTS[v].members)})" for v in LAYOUTS)
    if not path.exists():
        raise DataSourceError(f"{path} does not exist; expected {expected}.")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, IsADirectoryError, OSError) as error:
        raise DataSourceError(
            f"{path} is not a zip archive ({error}); expected {expected}."
        ) from error


def _find_member(archive: zipfile.ZipFile, member: str) -> str | None:
    """The archive entry for ``member`` (``ml-100k/u.data``), tolerating another folder name."""
    names = archive.namelist()
    if member in names:
        return member
    basename = member.rsplit("/", 1)[-1]
    matches = [n for n in names if n == basename or n.endswith(f"/{basename}")]
    return matches[0] if len(matches) == 1 else None


def detect_variant(path: Path) -> MovieLensVariant:
    """Which MovieLens layout the zip at ``path`` has."""
    with _open_zip(path) as archive:
        for variant, layout in LAYOUTS.items():
            if all(_find_member(archive, m) for m in layout.members):
                return variant  # type: ignore[return-value]
        found = archive.namelist()[:10]
    raise DataSourceError(
        f"{path} is a zip but not a MovieLens archive: it holds {found}; expected "
        + " or ".join(f"{v} members {list(layout.members)}" for v, layout in LAYOUTS.items())
        + "."
    )


def _read_lines(archive: zipfile.ZipFile, path: Path, member: str, variant: str) -> pd.Series:
    name = _find_member(archive, member)
    if name is None:
        raise DataSourceError(
            f"{path} has no member {member!r}: it is not GroupLens' {variant}.zip "
            f"(expected members {list(LAYOUTS[variant].members)}; found "
            f"{archive.namelist()[:10]})."
        )
    text = archive.read(name).decode(ENCODING)
    lines = pd.Series(text.split("\n"), dtype=object)
    lines.index = pd.RangeIndex(1, len(lines) + 1)  # 1-based line numbers
    lines = lines.str.removesuffix("\r")
    return lines[lines.str.len() > 0]  # empty lines (e.g. the final newline) are no records


def _split(lines: pd.Series, layout: _FileLayout) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split lines into columns; lines with the wrong number of fields become rejects."""
    n_fields = len(layout.columns)
    fits = (lines.str.count(re.escape(layout.separator)) == n_fields - 1).to_numpy(dtype=bool)
    good, bad = lines[fits], lines[~fits]
    if len(good):
        fields = good.str.split(layout.separator, n=n_fields - 1, expand=True, regex=False)
        fields.columns = list(layout.columns)
    else:
        fields = pd.DataFrame(columns=list(layout.columns), index=good.index, dtype=object)
    fields[LINE] = good.index.to_numpy(dtype="int64")
    fields[RAW] = good.astype("string")
    rejects = pd.DataFrame(
        {
            LINE: pd.Series(bad.index.to_numpy(dtype="int64"), dtype="Int64"),
            RAW: pd.Series(bad.to_numpy(), dtype="string"),
            s.REASON: pd.Series([UNPARSEABLE_LINE] * len(bad), dtype="string"),
        }
    )
    return fields.reset_index(drop=True), rejects


def _ml100k_genre_flags(fields: pd.DataFrame) -> pd.Series:
    """The 19 flags of each line as one ``0|1|...`` text, which the ml-100k genres domain parses."""
    flags = fields[list(_ML100K_FLAG_COLUMNS)].astype("string")
    return flags.iloc[:, 0].str.cat(flags.iloc[:, 1:], sep=GENRE_SEPARATOR).astype(object)


def _ml1m_release_year(titles: pd.Series) -> pd.Series:
    return titles.str.extract(_TITLE_YEAR, expand=False)


def _listed(archive: zipfile.ZipFile, member: str) -> list[str] | None:
    """The non-empty lines of an optional member (``None`` when the zip lacks it)."""
    name = _find_member(archive, member)
    if name is None:
        return None
    text = archive.read(name).decode(ENCODING)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _ml100k_occupations(archive: zipfile.ZipFile, path: Path) -> tuple[str, ...]:
    """The occupations ml-100k ships in ``u.occupation`` (the documented list if it lacks one)."""
    listed = _listed(archive, ML100K_OCCUPATIONS_MEMBER)
    if listed is None:
        logger.warning(
            "%s has no %s; using MovieLens-100K's documented occupations",
            path,
            ML100K_OCCUPATIONS_MEMBER,
        )
        return OCCUPATIONS
    return tuple(listed)


def _check_ml100k_genre_flags(archive: zipfile.ZipFile, path: Path) -> None:
    """``u.genre`` must name u.item's flags in the order the reader reads them."""
    listed = _listed(archive, ML100K_GENRES_MEMBER)
    expected = [f"{name}|{index}" for index, name in enumerate(ML100K_GENRE_FLAGS)]
    if listed is not None and listed != expected:
        raise DataSourceError(
            f"{path}: its {ML100K_GENRES_MEMBER} lists the genre flags {listed}, but u.item's 19 "
            f"flags are read as {expected} (GroupLens' ml-100k layout); this zip is another "
            "layout. Use GroupLens' ml-100k.zip, or fix its u.genre."
        )


def _user_domains(archive: zipfile.ZipFile, path: Path, variant: str) -> dict[str, Domain]:
    if variant == "ml-1m":
        return dict(ML1M_DOMAINS[s.USERS])
    occupations = frozenset(_ml100k_occupations(archive, path))
    occupation = replace(DOMAINS[s.USERS][s.OCCUPATION], vocabulary=occupations)
    return {**ML100K_DOMAINS[s.USERS], s.OCCUPATION: occupation}


def _users_table(lines: pd.Series, layout: _FileLayout, domains: dict[str, Domain]) -> RawTable:
    fields, rejects = _split(lines, layout)
    return RawTable(s.USERS, fields, domains=domains, rejects=rejects)


def _items_table(lines: pd.Series, layout: _FileLayout, variant: str) -> RawTable:
    fields, rejects = _split(lines, layout)
    if variant == "ml-100k":
        fields[s.GENRES] = _ml100k_genre_flags(fields)
        fields = fields.drop(columns=[*_ML100K_FLAG_COLUMNS, _VIDEO_RELEASE])
        domains = ML100K_DOMAINS[s.ITEMS]
    else:
        fields[s.RELEASE_DATE] = _ml1m_release_year(fields[s.TITLE].astype("string"))
        domains = ML1M_DOMAINS[s.ITEMS]
    columns = [s.ITEM_ID, s.TITLE, s.GENRES, s.RELEASE_DATE]
    rest = [c for c in fields.columns if c not in columns]
    return RawTable(s.ITEMS, fields[columns + rest], domains=domains, rejects=rejects)


def read_movielens(path: Path, variant: MovieLensVariant | None = None) -> MovieLensTables:
    """Read a GroupLens MovieLens zip into raw tables; raw files are only read.

    Args:
        path: ``ml-100k.zip`` or ``ml-1m.zip`` in GroupLens' layout.
        variant: the expected layout; detected from the members when ``None``.

    Raises:
        DataSourceError: the file is missing, not a zip, or lacks the expected members.
    """
    path = Path(path)
    if variant is None:
        variant = detect_variant(path)
    if variant not in LAYOUTS:
        raise DataSourceError(
            f"unknown MovieLens variant {variant!r}; expected one of {sorted(LAYOUTS)}."
        )
    layout = LAYOUTS[variant]
    with _open_zip(path) as archive:
        event_lines = _read_lines(archive, path, f"{variant}/{layout.events.member}", variant)
        user_lines = _read_lines(archive, path, f"{variant}/{layout.users.member}", variant)
        item_lines = _read_lines(archive, path, f"{variant}/{layout.items.member}", variant)
        if variant == "ml-100k":
            _check_ml100k_genre_flags(archive, path)
        user_domains = _user_domains(archive, path, variant)

    event_fields, event_rejects = _split(event_lines, layout.events)
    events = RawTable(s.EVENTS, event_fields, rejects=event_rejects)
    users = _users_table(user_lines, layout.users, user_domains)
    items = _items_table(item_lines, layout.items, variant)

    logger.info(
        "read %s: %d event, %d user, %d item lines",
        path,
        events.read,
        users.read,
        items.read,
    )
    return MovieLensTables(variant=variant, events=events, users=users, items=items)
