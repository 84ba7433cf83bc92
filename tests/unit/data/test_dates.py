"""The generated date-normalisation task."""

import datetime
import re

import pytest

from seqbook.data.dates import DATE_FORMATS, date_split, format_date, ordinal


def parse_back(text: str) -> datetime.date:
    """An independent reader of every format (regular expressions), to prove that each
    written form determines its date."""
    months = {
        m.lower()[:3]: i + 1
        for i, m in enumerate(
            [
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
        )
    }

    def year(y):
        return (
            int(y)
            if len(y) == 4
            else (1900 + int(y) if int(y) >= 50 else 2000 + int(y))
        )

    text = text.lower().replace(",", "").replace("'", "")
    if m := re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text):
        return datetime.date(year(m[3]), int(m[2]), int(m[1]))
    if m := re.fullmatch(r"(\d+)/(\d+)/(\d+)", text):
        return datetime.date(year(m[3]), int(m[1]), int(m[2]))
    if m := re.fullmatch(r"(\d{4})-(\d+)-(\d+)", text):
        return datetime.date(int(m[1]), int(m[2]), int(m[3]))
    if m := re.fullmatch(r"(\d+)-([a-z]{3})-(\d{4})", text):
        return datetime.date(int(m[3]), months[m[2]], int(m[1]))
    words = [w for w in text.split() if w not in ("the", "of")]
    words = [re.sub(r"^(\d+)(st|nd|rd|th)$", r"\1", w) for w in words]
    words = [
        w
        for w in words
        if w[:3] not in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        or w[:3] in months
    ]
    numbers = [w for w in words if w.isdigit()]
    month = next(months[w[:3]] for w in words if not w.isdigit())
    return datetime.date(year(numbers[1]), month, int(numbers[0]))


def test_at_least_ten_formats_each_readable():
    assert len(DATE_FORMATS) >= 10
    for date in (
        datetime.date(1950, 1, 1),
        datetime.date(2049, 12, 31),
        datetime.date(2003, 11, 12),
        datetime.date(1999, 2, 28),
    ):
        written = {format_date(date, style) for style in DATE_FORMATS}
        assert len(written) == len(DATE_FORMATS)
        for text in written:
            assert parse_back(text) == date, text


def test_ordinals():
    assert [ordinal(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "31st",
    ]


def test_split_holds_out_whole_dates_and_is_seeded():
    train, test = date_split(2000, 500, formats_per_date=3, seed=1)
    assert len(train) == 6000 and len(test) == 1500
    assert not {iso for _, iso in train} & {iso for _, iso in test}
    assert all(
        parse_back(text).isoformat() == iso for text, iso in train[:500] + test[:500]
    )
    assert date_split(2000, 500, formats_per_date=3, seed=1) == (train, test)
    assert date_split(2000, 500, formats_per_date=3, seed=2) != (train, test)
    assert any("day" in text.lower() for text, _ in train)  # weekday names occur


def test_too_many_dates_is_a_clear_error():
    with pytest.raises(ValueError, match="distinct dates"):
        date_split(40000, 1000)
