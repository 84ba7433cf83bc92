"""Build the instructors' edition: the book rendered from solutions/, not for students.

    python tools/instructors_edition.py        # stage and build into _build/instructors
    python tools/instructors_edition.py --stage-only
    python tools/instructors_edition.py --no-execute   # fast: pages without outputs

The public book renders the student versions in chapters/. This edition stages a copy of
the book in which every chapters/<part>/<section>.ipynb is replaced by its source in
solutions/, and in which

* every solution cell and every graded test cell (hidden tests included) is collapsed
  (``hide-input``) under a label saying what it is and that it is for instructors only;
* every hand-graded question shows its model answer and marking rules (from
  ``<section>.marking.md``) in a collapsed block;
* every page carries a banner: instructors' edition, do not publish.

The staged copy lives in _build/instructors/source and the HTML in
_build/instructors/_build/html, never in the public _build/html
(tools/check_public_build.py and tests/book/test_instructors_edition.py check both
sides).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "_build" / "instructors"
BANNER = (
    "Instructors' edition: contains solutions, hidden tests and marking schemes. "
    "Do not publish it or share it with students."
)
# What the public book is built from, besides chapters/ (copied as they are).
BOOK_FILES = ("_config.yml", "_toc.yml", "intro.md", "references.bib")
BOOK_FOLDERS = ("front", "parts", "back", "_ext", "_static")
LABEL = "instructors-only"  # a cell tag, so tests and readers can find these cells


def marking_sections(marking: Path) -> dict[str, str]:
    """``{grade_id: model answer and marking rules}`` from a ``.marking.md`` file."""
    if not marking.is_file():
        return {}
    sections: dict[str, str] = {}
    parts = re.split(r"^## `([^`]+)`[^\n]*\n", marking.read_text(), flags=re.M)
    for grade_id, body in zip(parts[1::2], parts[2::2]):
        sections[grade_id] = body.strip()
    return sections


def _label(text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(
        f"```{{admonition}} Instructors only\n:class: danger\n{text}\n```"
    )
    cell.metadata["tags"] = [LABEL]
    return cell


def instructor_notebook(source: Path) -> nbformat.NotebookNode:
    """The solution notebook with its solutions, tests and mark schemes collapsed."""
    notebook = nbformat.read(source, as_version=4)
    marking = marking_sections(source.with_suffix(".marking.md"))
    cells = []
    for cell in notebook.cells:
        info = cell.metadata.get("nbgrader", {})
        grade_id = info.get("grade_id", "")
        if cell.cell_type == "code" and info.get("solution"):
            cells.append(
                _label(f"Solution of `{grade_id}`: open the cell below to see it.")
            )
            cell.metadata["tags"] = sorted(
                set(cell.metadata.get("tags", [])) | {"hide-input"}
            )
        elif cell.cell_type == "code" and info.get("grade"):
            points = info.get("points", 0)
            cells.append(
                _label(
                    f"Test cell `{grade_id}` ({points:g} points), with the "
                    "hidden tests the students never see: open the cell "
                    "below."
                )
            )
            cell.metadata["tags"] = sorted(
                set(cell.metadata.get("tags", [])) | {"hide-input"}
            )
        elif (
            cell.cell_type == "markdown" and info.get("solution") and info.get("grade")
        ):
            answer = marking.get(
                grade_id, "No mark scheme was written for this question."
            )
            cells.append(cell)
            scheme = nbformat.v4.new_markdown_cell(
                f"````{{dropdown}} Instructors only: model answer and marking for "
                f"`{grade_id}` ({info.get('points', 0):g} points)\n{answer}\n````"
            )
            scheme.metadata["tags"] = [LABEL]
            cells.append(scheme)
            continue
        cells.append(cell)
    notebook.cells = cells
    return notebook


def stage(target: Path, execute: bool = True) -> Path:
    """Write the instructors' book source into ``target`` (emptied first)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(REPO / name, target / name)
    for folder in BOOK_FOLDERS:
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, target / folder)
    for source in sorted((REPO / "solutions").glob("*/*.ipynb")):
        destination = target / "chapters" / source.parent.name / source.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(instructor_notebook(source), destination)
    config = yaml.safe_load((target / "_config.yml").read_text())
    config["title"] = f"{config['title']} (instructors' edition)"
    config.setdefault("html", {})["announcement"] = BANNER
    # Nobody should launch or download these pages from a public site.
    config["html"]["use_download_button"] = False
    config.pop("launch_buttons", None)
    if not execute:
        config["execute"]["execute_notebooks"] = "off"
    (target / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def build(source: Path, output: Path) -> None:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    command = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(source),
        "--path-output",
        str(output),
        "--all",
        "-W",
        "-n",
        "--keep-going",
    ]
    subprocess.run(command, check=True, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stage-only", action="store_true", help="write the source only"
    )
    parser.add_argument(
        "--no-execute",
        action="store_true",
        help="do not run the notebooks (pages without outputs)",
    )
    args = parser.parse_args()
    source = stage(OUTPUT / "source", execute=not args.no_execute)
    print(f"staged the instructors' edition in {source.relative_to(REPO)}")
    if not args.stage_only:
        build(source, OUTPUT)
        print(
            f"built {(OUTPUT / '_build' / 'html').relative_to(REPO)}: not for students"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
