"""Small MovieLens-format zips (GroupLens layouts) that the tests build themselves.

The clean tables are tiny but realistic: a latin-1 title (``Café``), an item
with the ``unknown`` genre flag and no release date (like ml-100k's item 267),
users at the edges of the official files (ages 7 and 73, Canadian-style and
ZIP+4 zip codes, ml-1m's 7-digit zip) and events spread over 1997-1998. Each
``*_CASES`` entry is one malformed line, the file it goes into, and the reason
validation must give it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reelrank.data import domains as d
from reelrank.data import validation as v

LATIN1_TITLE = "Café Society (1995)"

_FLAGS_NONE = ["0"] * 19


def _flags(*genres: int) -> str:
    flags = list(_FLAGS_NONE)
    for index in genres:
        flags[index] = "1"
    return "|".join(flags)


# ml-100k: u.user id|age|gender|occupation|zip
ML100K_USERS: tuple[str, ...] = (
    "1|24|M|technician|85711",
    "2|53|F|other|94043",
    "3|23|M|writer|32067",
    "4|24|M|technician|43537",
    "20|73|F|retired|V3N4P",  # the oldest user of ml-100k; a Canadian-style zip
    "21|7|M|student|E2A4H",  # the youngest
)
# u.item id|title|release|video release|IMDb URL|19 flags (unknown, Action, Adventure, ...)
ML100K_ITEMS: tuple[str, ...] = (
    f"1|Toy Story (1995)|01-Jan-1995||http://imdb/1|{_flags(3, 4, 5)}",
    f"2|{LATIN1_TITLE}|05-Mar-1995||http://imdb/2|{_flags(8, 14)}",
    f"3|unknown||||{_flags(0)}",
)
# u.data user \t item \t rating \t unix seconds (1997-1998)
ML100K_EVENTS: tuple[str, ...] = (
    "1\t1\t5\t881250949",
    "1\t2\t3\t881251000",
    "2\t1\t4\t891717742",
    "2\t3\t1\t878887116",
    "3\t2\t2\t880606923",
    "4\t1\t3\t886397596",
)

# ml-1m: users.dat UserID::Gender::Age::Occupation::Zip
ML1M_USERS: tuple[str, ...] = (
    "1::F::1::10::48067",
    "2::M::56::16::70072",
    "3::M::25::15::55117",
    "20::F::45::16::98107-2117",  # ZIP+4, as in ml-1m
    "21::M::18::4::5849574",  # ml-1m has 6-, 7- and 9-digit zips too
)
# movies.dat MovieID::Title (Year)::Genres
ML1M_ITEMS: tuple[str, ...] = (
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    f"2::{LATIN1_TITLE}::Drama|Romance",
    "3::Heat (1995)::Action|Crime|Thriller",
)
# ratings.dat UserID::MovieID::Rating::Timestamp (2000)
ML1M_EVENTS: tuple[str, ...] = (
    "1::1::5::978300760",
    "1::2::3::978302109",
    "2::3::4::978298413",
    "3::1::2::978220179",
)


@dataclass(frozen=True)
class BadLine:
    """One malformed line, the table it goes into and the reason it must get."""

    name: str
    table: str
    line: str
    reason: str


ML100K_CASES: tuple[BadLine, ...] = (
    BadLine("bad_rating", "events", "1\t3\t6\t881250949", v.RATING_OUT_OF_RANGE),
    BadLine("zero_rating", "events", "3\t1\t0\t881250949", v.RATING_OUT_OF_RANGE),
    BadLine("unknown_user", "events", "99\t1\t3\t881250949", v.UNKNOWN_USER),
    BadLine("unknown_item", "events", "1\t99\t3\t881250949", v.UNKNOWN_ITEM),
    BadLine("duplicate_event", "events", ML100K_EVENTS[0], v.DUPLICATE_EVENT),
    BadLine("future_timestamp", "events", "1\t3\t4\t4102444800", v.FUTURE_TIMESTAMP),
    BadLine("before_1995", "events", "1\t3\t4\t700000000", v.TIMESTAMP_BEFORE_1995),
    BadLine("null_user_key", "events", "\t3\t4\t881250949", v.NULL_KEY),
    BadLine("null_timestamp_key", "events", "1\t3\t4\t ", v.NULL_KEY),
    BadLine("missing_rating", "events", "1\t3\t\t881250949", v.MISSING_VALUE),
    BadLine("rating_not_a_number", "events", "1\t3\tfive\t881250949", v.INVALID_VALUE),
    BadLine("fractional_user_id", "events", "1.5\t3\t4\t881250949", v.INVALID_VALUE),
    BadLine("timestamp_not_a_number", "events", "1\t3\t4\tyesterday", v.INVALID_VALUE),
    BadLine("garbage_event", "events", "<html>this is not a rating</html>", v.UNPARSEABLE_LINE),
    BadLine("too_many_fields", "events", "1\t3\t4\t881250949\t7", v.UNPARSEABLE_LINE),
    BadLine("garbage_user", "users", "garbage", v.UNPARSEABLE_LINE),
    BadLine("duplicate_user", "users", "1|30|F|artist|00000", v.DUPLICATE_KEY),
    BadLine("null_user_id", "users", "|30|F|artist|00000", v.NULL_KEY),
    BadLine("age_not_a_number", "users", "5|old|F|artist|00000", v.INVALID_VALUE),
    BadLine("missing_age", "users", "6||F|artist|00000", v.MISSING_VALUE),
    BadLine("negative_age", "users", "7|-5|F|artist|00000", v.OUT_OF_RANGE),
    BadLine("age_200", "users", "8|200|M|artist|00000", v.OUT_OF_RANGE),
    BadLine("gender_x", "users", "9|30|X|artist|00000", v.NOT_IN_VOCABULARY),
    BadLine("lowercase_gender", "users", "10|30|m|artist|00000", v.NOT_IN_VOCABULARY),
    BadLine("astronaut", "users", "11|30|F|astronaut|00000", v.NOT_IN_VOCABULARY),
    BadLine("junk_zip", "users", "12|30|F|artist|<html>", v.BAD_FORMAT),
    BadLine("short_zip", "users", "13|30|F|artist|12", v.BAD_FORMAT),
    BadLine("blank_zip", "users", "14|30|F|artist| ", v.MISSING_VALUE),
    BadLine("blank_gender", "users", "15|30||artist|00000", v.MISSING_VALUE),
    # Several rules at once: the first in rule order (range before vocabulary) decides.
    BadLine("old_astronaut", "users", "16|200|X|astronaut|<html>", v.OUT_OF_RANGE),
    BadLine("garbage_item", "items", "4|Too|few|fields", v.UNPARSEABLE_LINE),
    BadLine(
        "duplicate_item", "items", f"1|Toy Story again (1995)|||u|{_flags(5)}", v.DUPLICATE_KEY
    ),
    BadLine("null_item_id", "items", f"|Nameless (1995)|||u|{_flags(5)}", v.NULL_KEY),
    BadLine("bad_release_date", "items", f"4|Later (1996)|soon||u|{_flags(5)}", v.INVALID_VALUE),
    BadLine(
        "bad_genre_flag",
        "items",
        "4|Flagged (1996)|01-Jan-1996||u|" + "|".join(["0"] * 18 + ["x"]),
        v.INVALID_VALUE,
    ),
    BadLine(
        "genre_flag_2", "items", f"5|Two (1996)|01-Jan-1996||u|{_flags(5)[:-1]}2", v.INVALID_VALUE
    ),
    BadLine(
        "missing_genre_flag",
        "items",
        "6|Short (1996)|01-Jan-1996||u|" + "|".join(["0"] * 18),
        v.UNPARSEABLE_LINE,
    ),
    BadLine("empty_title", "items", f"7|  |01-Jan-1996||u|{_flags(5)}", v.MISSING_VALUE),
    BadLine("released_1850", "items", f"8|Early (1850)|01-Jan-1850||u|{_flags(5)}", v.OUT_OF_RANGE),
    # 1500 is a date, but not one pandas' datetime64[ns] can hold: unreadable, not out of range.
    BadLine(
        "released_1500", "items", f"9|Medieval (1500)|01-Jan-1500||u|{_flags(5)}", v.INVALID_VALUE
    ),
    BadLine(
        "released_2100", "items", f"10|Future (2100)|01-Jan-2100||u|{_flags(5)}", v.OUT_OF_RANGE
    ),
)

ML1M_CASES: tuple[BadLine, ...] = (
    BadLine("garbage_event", "events", "1:2:3:4", v.UNPARSEABLE_LINE),
    BadLine("bad_rating", "events", "2::1::9::978300760", v.RATING_OUT_OF_RANGE),
    BadLine("unknown_item", "events", "2::42::3::978300760", v.UNKNOWN_ITEM),
    BadLine("duplicate_event", "events", ML1M_EVENTS[1], v.DUPLICATE_EVENT),
    BadLine("zero_rating", "events", "2::2::0::978300760", v.RATING_OUT_OF_RANGE),
    BadLine("missing_rating", "events", "2::2::::978300760", v.MISSING_VALUE),
    BadLine("future_timestamp", "events", "2::2::4::4102444800", v.FUTURE_TIMESTAMP),
    BadLine("before_1995", "events", "2::2::4::700000000", v.TIMESTAMP_BEFORE_1995),
    BadLine("event_of_an_unaccepted_user", "events", "9::1::4::978300760", v.UNKNOWN_USER),
    BadLine("null_user_id", "users", "::F::25::12::55117", v.NULL_KEY),
    BadLine("duplicate_user", "users", "1::M::25::12::55117", v.DUPLICATE_KEY),
    BadLine("unknown_occupation", "users", "4::M::25::99::55117", v.NOT_IN_VOCABULARY),
    BadLine("astronaut", "users", "5::M::25::astronaut::55117", v.NOT_IN_VOCABULARY),
    BadLine("negative_age", "users", "6::M::-5::12::55117", v.OUT_OF_RANGE),
    BadLine("age_200", "users", "7::M::200::12::55117", v.OUT_OF_RANGE),
    BadLine("age_not_a_code", "users", "8::M::30::12::55117", v.NOT_IN_VOCABULARY),
    BadLine("gender_x", "users", "9::X::25::12::55117", v.NOT_IN_VOCABULARY),
    BadLine("junk_zip", "users", "10::F::25::12::55117!!", v.BAD_FORMAT),
    BadLine("blank_zip", "users", "11::F::25::12::", v.MISSING_VALUE),
    BadLine("empty_title", "items", "6:: ::Drama", v.MISSING_VALUE),
    BadLine("released_1850", "items", "7::Early (1850)::Drama", v.OUT_OF_RANGE),
    BadLine("released_2100", "items", "8::Future (2100)::Drama", v.OUT_OF_RANGE),
    BadLine("unknown_genre", "items", "4::Odd (1999)::Action|Cooking", v.INVALID_VALUE),
    BadLine("garbage_item", "items", "5::No genres field (1999)", v.UNPARSEABLE_LINE),
)


def _zip(path: Path, members: dict[str, Sequence[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, lines in members.items():
            archive.writestr(name, ("\n".join(lines) + "\n").encode("latin-1"))
    return path


# The lists ml-100k ships beside its tables, as GroupLens writes them.
ML100K_OCCUPATIONS: tuple[str, ...] = d.OCCUPATIONS
ML100K_GENRES: tuple[str, ...] = tuple(
    f"{name}|{index}" for index, name in enumerate(d.ML100K_GENRE_FLAGS)
)


def write_ml100k_zip(
    path: Path,
    events: Sequence[str] = ML100K_EVENTS,
    users: Sequence[str] = ML100K_USERS,
    items: Sequence[str] = ML100K_ITEMS,
    occupations: Sequence[str] | None = ML100K_OCCUPATIONS,
    genres: Sequence[str] | None = ML100K_GENRES,
) -> Path:
    """Write ``path`` in GroupLens' ml-100k layout (latin-1); ``None`` leaves a list out."""
    members = {"ml-100k/u.data": events, "ml-100k/u.user": users, "ml-100k/u.item": items}
    if occupations is not None:
        members["ml-100k/u.occupation"] = occupations
    if genres is not None:
        members["ml-100k/u.genre"] = genres
    return _zip(path, members)


def write_ml1m_zip(
    path: Path,
    events: Sequence[str] = ML1M_EVENTS,
    users: Sequence[str] = ML1M_USERS,
    items: Sequence[str] = ML1M_ITEMS,
) -> Path:
    """Write ``path`` in GroupLens' ml-1m layout (latin-1, ``::``-separated)."""
    return _zip(
        path,
        {"ml-1m/ratings.dat": events, "ml-1m/users.dat": users, "ml-1m/movies.dat": items},
    )


def with_bad_line(
    case: BadLine, events: Sequence[str], users: Sequence[str], items: Sequence[str]
) -> tuple[list[str], list[str], list[str], int]:
    """The three tables with ``case.line`` appended; also its 1-based line number."""
    tables = {"events": list(events), "users": list(users), "items": list(items)}
    tables[case.table].append(case.line)
    return tables["events"], tables["users"], tables["items"], len(tables[case.table])
