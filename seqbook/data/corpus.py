"""The book's English corpus: the help topics that ship with Python
(``pydoc_data.topics``).

Every Python installation carries about half a million characters of English prose in
``pydoc_data.topics`` (the text ``help("if")`` prints), so the corpus needs no download.
That text changes between Python releases, so the book ships a snapshot of Python 3.11's
topics as package data (``seqbook/data/python_help_topics.json.gz``, written by
``tools/freeze_corpus.py``; licence notice in ``seqbook/data/PYTHON_LICENSE.txt``) and
reads it on every Python: the corpus, and every number computed on it, is the same on
Python 3.10 to 3.13.

:func:`clean_text` turns the reStructuredText-flavoured help pages into plain prose:

1. heading underlines (lines made of one repeated punctuation character) and table
   borders (lines made only of ``-`` or ``=`` runs and spaces) are dropped;
2. indented lines (code samples and grammar rules, indented by three or more spaces) are
   dropped, so what remains is mostly English sentences;
3. text is lower-cased, typographic quotes become ASCII quotes, and every character
   outside ``a-z 0-9 space newline . , ; : ! ? ' " ( ) -`` becomes a space;
4. runs of spaces collapse to one, lines are stripped, and runs of blank lines collapse
   to a single blank line (paragraph breaks survive).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path

__all__ = [
    "ALPHABET",
    "help_topics",
    "raw_topics",
    "clean_text",
    "load_corpus",
    "split_text",
]

ALPHABET = set("abcdefghijklmnopqrstuvwxyz0123456789 \n.,;:!?'\"()-")

_UNDERLINE = re.compile(r"^\s*([=*\-~^#+])\1{2,}\s*$")
_TABLE_BORDER = re.compile(r"^[\s=\-+]*[=\-]{2,}[\s=\-+]*$")
_TYPOGRAPHIC = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
    }
)


@functools.lru_cache(maxsize=1)
def _snapshot() -> dict:
    # Read by path (not importlib.resources) so that this module also loads on its own,
    # without torch, as tests/unit/data/test_corpus.py does on other Pythons.
    data = Path(__file__).resolve().parent / "python_help_topics.json.gz"
    return json.loads(gzip.decompress(data.read_bytes()).decode("utf-8"))


def help_topics() -> dict[str, str]:
    """The help topics of the snapshot (Python 3.11): topic name -> text, as in
    ``pydoc_data.topics.topics``. A fresh dict on every call."""
    return dict(_snapshot()["topics"])


def raw_topics() -> str:
    """All help topics of the snapshot, in sorted topic order, separated by blank
    lines."""
    topics = _snapshot()["topics"]
    return "\n\n".join(topics[name] for name in sorted(topics))


def clean_text(text: str) -> str:
    """Plain lower-case prose from help-page text (the four steps in the module
    docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"clean_text expects a str, got {type(text).__name__}")
    kept = []
    for line in text.splitlines():
        if (
            _UNDERLINE.match(line)
            or _TABLE_BORDER.match(line)
            or line.startswith("   ")
        ):
            continue
        kept.append(line)
    text = "\n".join(kept).translate(_TYPOGRAPHIC).lower()
    text = "".join(ch if ch in ALPHABET else " " for ch in text)
    text = re.sub(r" +", " ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def load_corpus() -> str:
    """The cleaned corpus: 246,089 characters on every Python (the 3.11 snapshot)."""
    return clean_text(raw_topics())


def split_text(
    text: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> tuple[str, str, str]:
    """Contiguous train / validation / test pieces of ``text`` (no shuffling, so no
    leakage of a sentence across pieces beyond the two cut points)."""
    if (
        len(fractions) != 3
        or any(f < 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-9
    ):
        raise ValueError(
            "fractions must be three non-negative numbers summing to 1, "
            f"got {fractions}"
        )
    first = int(len(text) * fractions[0])
    second = first + int(len(text) * fractions[1])
    return text[:first], text[first:second], text[second:]
