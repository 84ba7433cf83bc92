"""Freeze the language-model corpus: Python's help topics, as package data.

The book's corpus is the English prose of ``pydoc_data.topics`` (the text ``help("if")``
prints). That text changes between Python releases (after cleaning: 214,505 characters
on 3.10, 246,089 on 3.11, 259,891 on 3.12), so the book ships one snapshot and reads it
on every Python. This script wrote it, from Python 3.11:

    python3.11 tools/freeze_corpus.py

It writes ``seqbook/data/python_help_topics.json.gz`` (gzip with a zero time stamp, so
the bytes depend only on the text) and prints the SHA-256 of the JSON text, which
``tests/unit/data/test_corpus.py`` pins. The text is Python's documentation, under the
Python Software Foundation License: ``seqbook/data/PYTHON_LICENSE.txt`` carries the
notice.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import platform
import sysconfig
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "seqbook" / "data"
SNAPSHOT = DATA / "python_help_topics.json.gz"
NOTICE = DATA / "PYTHON_LICENSE.txt"
HEADER = """\
seqbook/data/python_help_topics.json.gz holds the help topics of Python {version}
(pydoc_data.topics), which are part of Python's documentation. They are distributed
here unchanged, under the Python Software Foundation License Version 2 that Python
{version} ships, reproduced below from that release's LICENSE.txt.
Copyright (c) 2001 Python Software Foundation; All Rights Reserved.

"""


def main() -> None:
    from pydoc_data.topics import topics

    payload = json.dumps(
        {
            "python": platform.python_version(),
            "topics": {name: topics[name] for name in sorted(topics)},
        },
        ensure_ascii=False,
        sort_keys=True,
        indent=0,
    ).encode("utf-8")
    SNAPSHOT.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    NOTICE.write_text(
        HEADER.format(version=platform.python_version())
        + licence.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    print(
        f"wrote {SNAPSHOT} ({SNAPSHOT.stat().st_size:,} bytes) from Python "
        f"{platform.python_version()}; {len(topics)} topics; "
        f"sha256 of the JSON {hashlib.sha256(payload).hexdigest()}"
    )


if __name__ == "__main__":
    main()
