"""Fail if the public book (_build/html) contains anything meant for instructors only.

    python tools/check_public_build.py [_build/html]

Looks in every built file of the sections (their pages and the notebooks behind the
download button) for nbgrader's solution and hidden-test markers, the hidden checks'
calls and the mark schemes, and in every file for the instructors' edition banner.
Prose pages (the instructors' guide explains the markers) are not searched for markers.
`make book` runs it after building.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = (
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
    "BEGIN SOLUTION",
    "END SOLUTION",
    "hidden=True",
    "Mark schemes:",
    "Instructors' edition: contains solutions",
)
BANNER = FORBIDDEN[-1]
# Where the sections' pages and downloadable notebooks are, relative to the build root.
SECTION_FOLDERS = tuple(
    edition + folder
    for edition in ((), ("zh_CN",))  # the English book and the Chinese one inside it
    for folder in (("chapters",), ("_sources", "chapters"))
)
TEXT_SUFFIXES = {".html", ".ipynb", ".js", ".txt", ".md", ".json"}


def leaks(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in TEXT_SUFFIXES or not path.is_file():
            continue
        if "_static" in path.relative_to(root).parts and path.suffix == ".js":
            continue  # third-party scripts (MathJax, the theme), not the book's text
        text = path.read_text(errors="replace")
        parts = path.relative_to(root).parts
        in_section = any(parts[: len(f)] == f for f in SECTION_FOLDERS)
        markers = FORBIDDEN if in_section else (BANNER,)
        found += [
            f"{path.relative_to(root)}: {marker!r}"
            for marker in markers
            if marker in text
        ]
    return found


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "_build" / "html"
    if not (root / "index.html").is_file():
        print(f"{root} holds no built book")
        return 2
    found = leaks(root)
    for line in found:
        print(f"instructors-only content in the public book: {line}")
    if not found:
        print(f"{root}: no solutions, hidden tests or mark schemes")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
