"""seqbook as a student gets it: pip-installed from this repository (in Colab, from its
URL), not imported from the checkout.

That every notebook's cells run without the checkout is tested by the solution round
trip of each section (tests/grading): the grader executes the instructor version, whose
cells are the student version's plus the answers, in its sandbox, which sees the Python
environment and the seqbook package folder only (no chapters, no solutions, no data
beside the package), and checks that every cell ran. What the sandbox cannot see is
packaging: a file in seqbook/ that the installed package lacks. This file checks that
the installed package holds every file of seqbook/ that git tracks, and runs one
notebook against it from an empty folder, end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO, chapter_notebooks
from nbclient import NotebookClient


@pytest.fixture(scope="module")
def installed_seqbook(tmp_path_factory):
    """seqbook installed (not editable) into a folder of its own."""
    site = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    # Build from a copy so no build artefacts land in the checkout.
    source = build / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv",
            "_build",
            ".git",
            "*.egg-info",
            "__pycache__",
            "chapters",
            "solutions",
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
    )
    return site


def test_the_installed_package_holds_every_tracked_file_of_seqbook(installed_seqbook):
    tracked = subprocess.run(
        ["git", "ls-files", "seqbook"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(tracked) > 50, "git lists too few files under seqbook/"
    missing = [path for path in tracked if not (installed_seqbook / path).is_file()]
    assert not missing, f"not in the installed package: {missing}"


# The quickest notebook; every other one runs in the sandboxed solution round trips.
ALONE = [path for path in chapter_notebooks() if path.stem == "soft_lookup"]


@pytest.mark.parametrize("notebook_path", ALONE, ids=lambda p: p.stem)
def test_student_notebook_runs_alone(
    notebook_path, installed_seqbook, tmp_path, monkeypatch
):
    alone = tmp_path / "alone"
    alone.mkdir()
    copy = alone / notebook_path.name
    shutil.copy(notebook_path, copy)
    notebook = nbformat.read(copy, as_version=4)
    notebook.cells.append(
        nbformat.v4.new_code_cell("import seqbook; print(seqbook.__file__)")
    )
    # The kernel sees only the installed copy of seqbook, before the editable install.
    monkeypatch.setenv("PYTHONPATH", str(installed_seqbook))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(alone)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(alone)}},
    ).execute()
    # Only the exercise and test cells (tagged raises-exception) may fail.
    for cell in notebook.cells:
        if cell.cell_type == "code" and "raises-exception" not in cell.metadata.get(
            "tags", []
        ):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, (
                f"{cell.source[:60]!r} raised {errors[0].ename}: {errors[0].evalue}"
            )
    location = notebook.cells[-1].outputs[0]["text"].strip()
    assert location.startswith(str(installed_seqbook)), (
        f"seqbook was imported from {location}"
    )
    assert not location.startswith(str(REPO))
