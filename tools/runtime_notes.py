"""Write each section's measured run time near its top, from the benchmark's figures.

Every section's first cell has one paragraph that starts with ``**Run time.**``. Its
text is generated here from ``back/runtimes.json`` (written by ``make benchmark``),
never typed by hand, so the figure a reader sees is the one measured:

    python tools/runtime_notes.py            # rewrite the paragraphs in solutions/
    python tools/runtime_notes.py --check    # exit 1 if any paragraph is out of date

``make benchmark`` runs this after measuring; run ``make chapters`` afterwards so the
student versions carry the same paragraph (tests/book/test_config.py checks both).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "back" / "runtimes.json"
PARAGRAPH = re.compile(r"\*\*Run time\.\*\*.*?(?=\n\n|\Z)", re.S)


def load_figures() -> dict:
    return json.loads(FIGURES.read_text())


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def paragraph(section: str, figures: dict) -> str:
    """The generated paragraph for ``section`` (e.g. ``"attention/soft_lookup"``)."""
    machine = figures["machine"]
    measured = figures["sections"].get(section)
    link = "[run times](../../back/runtimes.md)"
    if measured is None:
        return (
            f"**Run time.** Not measured yet: run `make benchmark` (see the {link} "
            "page)."
        )
    student, instructor = measured["student"], measured["instructor"]
    gpu = "a CUDA GPU" if machine["gpu"] else "no GPU"
    peak_gb = max(student["peak_mb"], instructor["peak_mb"]) / 1024
    return (
        f"**Run time.** {_seconds(student['seconds'])} to run top to bottom "
        f"({_seconds(instructor['seconds'])} with the solutions filled in), measured "
        f"on {machine['cores']} CPU cores with {gpu} on {machine['date']}; at most "
        f"{peak_gb:.1f} GB of memory. A CPU is all it needs; a GPU is used when "
        f"present. Every section's figures are on the {link} page."
    )


def solution_notebooks() -> list[Path]:
    return sorted(
        p
        for p in (REPO / "solutions").glob("*/*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


def section_of(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def stale_notebooks(figures: dict) -> list[str]:
    """Sections whose first cell lacks the generated paragraph, or has another one."""
    stale = []
    for path in solution_notebooks():
        first = nbformat.read(path, as_version=4).cells[0].source
        if paragraph(section_of(path), figures) not in first:
            stale.append(section_of(path))
    return stale


def rewrite(figures: dict) -> list[str]:
    changed = []
    for path in solution_notebooks():
        notebook = nbformat.read(path, as_version=4)
        first = notebook.cells[0]
        found = PARAGRAPH.findall(first.source)
        if len(found) != 1:
            raise ValueError(
                f"{path}: the first cell needs exactly one '**Run time.**' "
                f"paragraph, found {len(found)}"
            )
        new = PARAGRAPH.sub(
            lambda _: paragraph(section_of(path), figures), first.source
        )
        if new != first.source:
            first.source = new
            nbformat.write(notebook, path)
            changed.append(section_of(path))
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report stale sections"
    )
    args = parser.parse_args()
    figures = load_figures()
    if args.check:
        stale = stale_notebooks(figures)
        for section in stale:
            print(f"out of date: {section}")
        return 1 if stale else 0
    for section in rewrite(figures):
        print(f"rewrote the run-time paragraph of {section}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
