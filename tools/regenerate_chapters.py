"""Regenerate the student versions in chapters/ from the instructor sources in
solutions/.

    python tools/regenerate_chapters.py              # rewrite chapters/ (make chapters)
    python tools/regenerate_chapters.py --release-dir D --db sqlite:///F   # elsewhere
    python tools/regenerate_chapters.py --only attention   # one part only

Two steps:

1. ``nbgrader generate_assignment`` for every part folder of ``solutions/`` (one
   folder = one nbgrader assignment). It strips solutions and hidden tests, records
   checksums, and registers the assignment in the gradebook (``gradebook.db`` at the
   repo root by default, which instructors then use to autograde).
2. A tagging step: every exercise cell and test cell of a student version gets the cell
   tag ``raises-exception``, so the unanswered notebook still executes top to bottom in
   the book build and under nbval -- only those cells may raise.

The output is deterministic, so ``tests/book/test_sync.py`` can compare a fresh
regeneration with the committed ``chapters/`` byte for byte.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "solutions"
EXERCISE_TAG = "raises-exception"


def assignments(source: Path = SOURCE) -> list[str]:
    """Part folders of ``source`` that contain at least one notebook."""
    return sorted(
        p.name
        for p in source.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.ipynb"))
    )


def course_config(root: Path, release_dir: Path, db_url: str) -> Config:
    """The repository's nbgrader_config.py, pointed at ``root``, ``release_dir`` and
    ``db_url``."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.source_directory = str(SOURCE)
    config.CourseDirectory.release_directory = str(release_dir)
    config.CourseDirectory.db_url = db_url
    return config


def tag_exercise_cells(notebook_path: Path) -> None:
    """Tag solution and test code cells so only they may raise when the book
    executes."""
    notebook = nbformat.read(notebook_path, as_version=4)
    for cell in notebook.cells:
        grading = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (
            grading.get("solution") or grading.get("grade")
        ):
            tags = cell.metadata.setdefault("tags", [])
            if EXERCISE_TAG not in tags:
                tags.append(EXERCISE_TAG)
    nbformat.write(notebook, notebook_path)


def regenerate(
    release_dir: Path, db_url: str, root: Path = REPO, only: list[str] | None = None
) -> list[Path]:
    """Generate every assignment (or those in ``only``) into ``release_dir``; return the
    student notebooks."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = course_config(root, release_dir, db_url)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    written: list[Path] = []
    for assignment in only if only is not None else assignments():
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(
                f"nbgrader could not generate {assignment}:\n"
                f"{result.get('error')}\n{result.get('log')}"
            )
        for notebook_path in sorted((release_dir / assignment).glob("*.ipynb")):
            tag_exercise_cells(notebook_path)
            written.append(notebook_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--release-dir",
        type=Path,
        default=REPO / "chapters",
        help="where to write the student versions (default: chapters/)",
    )
    parser.add_argument(
        "--db",
        default=f"sqlite:///{REPO / 'gradebook.db'}",
        help="gradebook URL (default: gradebook.db at the repo root)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="PART",
        choices=assignments(),
        help="regenerate only these parts (folders of solutions/)",
    )
    args = parser.parse_args(argv)
    release_dir = args.release_dir.resolve()
    # nbgrader's --force deletes whatever else sits in an assignment's release folder;
    # generating into a fresh temporary folder and moving the result avoids surprises.
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "release"
        written = regenerate(staged, args.db, only=args.only)
        for assignment in args.only or assignments():
            target = release_dir / assignment
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(staged / assignment, target)
    for path in written:
        print(f"wrote {release_dir / path.relative_to(staged)}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    # nbgrader runs `alembic` in a subprocess: the environment's bin/ must be on PATH.
    os.environ["PATH"] = (
        str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    )
    sys.exit(main())
