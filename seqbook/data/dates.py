"""Human-written dates and their ISO 8601 form, for sequence-to-sequence models.

Each example pairs a date written in one of the formats of :data:`DATE_FORMATS` --
with weekday names, ordinals, abbreviations, several numeric orders and two-digit
years -- with its ISO form ``YYYY-MM-DD``. Dates range over 1950--2049 so that a
two-digit year has one reading (``50``--``99`` -> 19xx, ``00``--``49`` -> 20xx).

:func:`date_split` holds out whole *dates*: a test date never appears in training, in
any format, so a model must read the parts of a date rather than memorise pairs.
Every numeric format marks its order with its own separator (``.`` day first, ``/``
month first, ``-`` year first), so no input is ambiguous.
"""

from __future__ import annotations

import datetime
import random
from typing import Callable

__all__ = [
    "DATE_FORMATS",
    "FIRST_DATE",
    "LAST_DATE",
    "format_date",
    "date_split",
    "ordinal",
]

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_WEEKDAYS = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
]


def ordinal(day: int) -> str:
    """``1 -> "1st"``, ``2 -> "2nd"``, ``11 -> "11th"``, ``23 -> "23rd"``."""
    suffix = (
        "th"
        if 10 <= day % 100 <= 20
        else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    )
    return f"{day}{suffix}"


def _month(d: datetime.date) -> str:
    return _MONTHS[d.month - 1]


def _weekday(d: datetime.date) -> str:
    return _WEEKDAYS[d.weekday()]


DATE_FORMATS: dict[str, Callable[[datetime.date], str]] = {
    "weekday day month year": lambda d: f"{_weekday(d)}, {d.day} {_month(d)} {d.year}",
    "day month year": lambda d: f"{d.day} {_month(d)} {d.year}",
    "month day, year": lambda d: f"{_month(d)} {d.day}, {d.year}",
    "abbreviated month day, year": lambda d: f"{_month(d)[:3]} {d.day}, {d.year}",
    "ordinal of month year": lambda d: f"the {ordinal(d.day)} of {_month(d)} {d.year}",
    "month ordinal, year": lambda d: f"{_month(d)} {ordinal(d.day)}, {d.year}",
    "weekday abbreviated, two-digit year": (
        lambda d: f"{_weekday(d)[:3]} {d.day} {_month(d)[:3]} '{d.year % 100:02d}"
    ),
    "day.month.year": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "day.month.two-digit year": lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}",
    "month/day/year": lambda d: f"{d.month}/{d.day}/{d.year}",
    "month/day/two-digit year": lambda d: (
        f"{d.month:02d}/{d.day:02d}/{d.year % 100:02d}"
    ),
    "year-month-day unpadded": lambda d: f"{d.year}-{d.month}-{d.day}",
    "upper-case day-month-year": lambda d: (
        f"{d.day:02d}-{_month(d)[:3].upper()}-{d.year}"
    ),
    "lower-case month day year": lambda d: f"{_month(d).lower()} {d.day} {d.year}",
}


def format_date(date: datetime.date, style: str) -> str:
    """``date`` written in the format named ``style`` (a key of
    :data:`DATE_FORMATS`)."""
    return DATE_FORMATS[style](date)


def _random_dates(count: int, rng: random.Random) -> list[datetime.date]:
    span = (LAST_DATE - FIRST_DATE).days + 1
    if count > span:
        raise ValueError(
            f"only {span} distinct dates exist between {FIRST_DATE} and {LAST_DATE}"
        )
    return [
        FIRST_DATE + datetime.timedelta(days=k) for k in rng.sample(range(span), count)
    ]


def date_split(
    train_dates: int = 5000,
    test_dates: int = 1000,
    formats_per_date: int = 2,
    seed: int = 0,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, test)`` lists of ``(written, iso)`` pairs over disjoint sets of dates.

    Each date appears ``formats_per_date`` times, in distinct formats drawn at random.
    """
    rng = random.Random(seed)
    dates = _random_dates(train_dates + test_dates, rng)
    styles = list(DATE_FORMATS)

    def examples(chosen: list[datetime.date]) -> list[tuple[str, str]]:
        pairs = []
        for date in chosen:
            for style in rng.sample(styles, formats_per_date):
                pairs.append((format_date(date, style), date.isoformat()))
        rng.shuffle(pairs)
        return pairs

    return examples(dates[:train_dates]), examples(dates[train_dates:])
