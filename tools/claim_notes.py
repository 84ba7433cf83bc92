"""Write each section's measured claim ranges into its notebook, from the robustness
matrix.

Numbers about a trained or random outcome are not typed into the text: a run on another
machine would not reproduce them. The text states each claim with its threshold, and one
generated cell before the summary, headed "The claims on other machines", lists the
lowest and highest values the matrix saw (``back/robustness.json``, written by
``make robustness``):

    python tools/claim_notes.py            # rewrite the cells in solutions/
    python tools/claim_notes.py --check    # exit 1 if any cell is out of date

Run ``make chapters`` afterwards so the student versions carry the same cell
(``tests/book/test_robustness.py`` checks it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import robustness

REPO = Path(__file__).resolve().parent.parent
CELL_ID = "claims-across-machines"
HEADING = "## The claims on other machines"


def listed(items) -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = [str(item) for item in items]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def _range(row: dict) -> str:
    if row["comparison"] == "is":
        return "—"
    low, high = robustness._fmt(row["min"]), robustness._fmt(row["max"])
    return low if low == high else f"{low} to {high}"


def cell_text(section: str, records: dict) -> str | None:
    """The generated markdown for ``section``, or None when it makes no claim."""
    results = [r for r in records["results"] if r["section"] == section]
    rows = [r for r in robustness.summarise(results)]
    if not rows:
        return None
    meta = records["meta"]
    seeds = sorted({r["seed_shift"] for r in results})
    kernels = [k for k in meta["kernels"] if any(r["kernel"] == k for r in results)]
    threads = sorted({r["threads"] for r in results})
    all_held = all(row["held"] == row["runs"] for row in rows)
    lines = [
        HEADING,
        "",
        f"The statements this section makes about its experiments were checked in "
        f"{len(results)} runs on {max(r.get('date', meta['date']) for r in results)}, "
        "which between them vary the seed shift "
        f"({', '.join(map(str, seeds))}), the CPU kernel "
        f"({listed([f'`{k}`' for k in kernels])}) and the number of threads "
        f"({listed(threads)}), not in every combination (how, and why: "
        "[Robustness of the claims](../../back/robustness.md)). "
        + (
            "Each held in every run. "
            if all_held
            else "Not all held in every run: see the last column. "
        )
        + "Your run's numbers should fall in these ranges; another machine's may "
        "land anywhere in them.",
        "",
        "| claim | needs | seen in the matrix | held |",
        "|---|---|---|---|",
    ]
    for row in rows:
        needs = (
            "true"
            if row["comparison"] == "is"
            else f"{row['comparison']} {robustness._fmt(row['threshold'])}"
        )
        name = row["name"].replace("|", "\\|")
        lines.append(
            f"| {name} | {needs} | {_range(row)} | {row['held']}/{row['runs']} |"
        )
    return "\n".join(lines)


def _source_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def _update(path: Path, records: dict, write: bool) -> bool:
    """Bring one notebook's cell up to date; return True if it was (or would be)
    changed."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    section = f"{path.parent.name}/{path.stem}"
    text = cell_text(section, records)
    cells = notebook["cells"]
    index = next((i for i, c in enumerate(cells) if c.get("id") == CELL_ID), None)
    if (
        index is not None
        and text is not None
        and "".join(cells[index]["source"]) == text
    ):
        return False
    if index is None and text is None:
        return False
    if not write:
        return True
    if index is not None:
        del cells[index]
    if text is not None:
        summary = next(
            i
            for i, c in enumerate(cells)
            if c["cell_type"] == "markdown"
            and re.search(r"(?m)^## Summary", "".join(c["source"]))
        )
        cells.insert(
            summary,
            {
                "cell_type": "markdown",
                "id": CELL_ID,
                "metadata": {},
                "source": _source_lines(text),
            },
        )
    path.write_text(
        json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return True


def stale_notebooks(records: dict | None = None) -> list[str]:
    records = records or json.loads(robustness.RECORDS.read_text())
    return [
        f"{p.parent.name}/{p.stem}"
        for p in sorted((REPO / "solutions").glob("*/*.ipynb"))
        if _update(p, records, write=False)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    records = json.loads(robustness.RECORDS.read_text())
    if args.check:
        stale = stale_notebooks(records)
        if stale:
            print("out of date: " + ", ".join(stale))
            sys.exit(1)
        return
    for path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        if _update(path, records, write=True):
            print(f"rewrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
