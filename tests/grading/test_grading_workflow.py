"""The instructors' workflow, end to end, with the commands of the instructors' guide.

A temporary course directory holds the repository's ``nbgrader_config.py`` and
``grading/`` tools and reads ``solutions/`` as its source. There, on the command line
exactly as ``front/instructors.md`` prints them (tested below), this module runs:

generate the student versions -> release (the generated folder) -> import a roster ->
collect the submissions from an LMS-style archive (``zip_collect``) -> autograde ->
grade the written answer by hand (nbgrader's gradebook API, what formgrader writes) ->
feedback -> export (``nbgrader export`` and the per-exercise CSV) -> class report plot.

Four students: alice answers everything right, bob gets the attention exercise wrong,
carol hands in the unanswered student version, dave hands in nothing.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from grading_harness import cell_with_id
from test_grading_scaled_dot_product_attention import SECTION

ASSIGNMENT = SECTION.assignment
NOTEBOOK = SECTION.notebook
WRITTEN = "sdpa-why-scale"  # the hand-graded question of the section (2 points)

# The commands, as the guide prints them.
GENERATE = f"nbgrader generate_assignment {ASSIGNMENT} --force"
ROSTER = "nbgrader db student import students.csv"
COLLECT = (
    f"nbgrader zip_collect {ASSIGNMENT} "
    "--FileNameCollectorPlugin.named_regexp="
    "'.*/(?P<student_id>[^/_]+)_(?P<file_id>[^/]+\\.ipynb)$'"
)
AUTOGRADE = f"nbgrader autograde {ASSIGNMENT}"
FEEDBACK = f"nbgrader generate_feedback {ASSIGNMENT}"
EXPORT = "nbgrader export"
REPORT = (
    f"python -m grading.report --assignment {ASSIGNMENT} "
    f"--csv grades-{ASSIGNMENT}.csv --plot report-{ASSIGNMENT}.png"
)
COMMANDS = [GENERATE, ROSTER, COLLECT, AUTOGRADE, FEEDBACK, EXPORT, REPORT]

MANUAL_SCORE, MANUAL_COMMENT = (
    1.5,
    "Right idea; say what happens to the softmax's gradient.",
)
BOB_WRONG = ("sdpa-attention",)


def run(command: str, course: Path) -> subprocess.CompletedProcess:
    environment = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    words = shlex.split(command)
    if words[0] == "python":
        words[0] = sys.executable
    result = subprocess.run(
        words, cwd=course, env=environment, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
        f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course directory taken through the whole workflow; the tests read what it
    left."""
    root = tmp_path_factory.mktemp("workflow")
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copytree(
        REPO / "grading", root / "grading", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "solutions").mkdir()
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT)

    run(GENERATE, root)
    released = root / "chapters" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"

    (root / "students.csv").write_text(
        "id,first_name,last_name,email\n"
        "alice,Alice,A,\nbob,Bob,B,\ncarol,Carol,C,\ndave,Dave,D,\n"
    )
    run(ROSTER, root)

    # Each student starts from the released notebook; the LMS names files
    # <id>_<notebook>.
    archive = root / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    submissions = {
        "alice": SECTION.answered(),
        "bob": SECTION.answered(wrong=BOB_WRONG),
        "carol": nbformat.read(released, as_version=4),
    }
    for student, notebook in submissions.items():
        assert _same_cells(notebook, nbformat.read(released, as_version=4))
        cell_with_id(
            notebook, WRITTEN
        ).source = f"{student}: scaling keeps the scores' variance at 1."
    with zipfile.ZipFile(archive / "submissions.zip", "w") as bundle:
        for student, notebook in submissions.items():
            bundle.writestr(
                f"{ASSIGNMENT}/{student}_{NOTEBOOK}.ipynb", nbformat.writes(notebook)
            )
    run(COLLECT, root)

    run(AUTOGRADE, root)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade(WRITTEN, NOTEBOOK, ASSIGNMENT, "bob")
        grade.manual_score = MANUAL_SCORE
        comment = gradebook.find_comment(WRITTEN, NOTEBOOK, ASSIGNMENT, "bob")
        comment.manual_comment = MANUAL_COMMENT
        gradebook.db.commit()

    run(FEEDBACK, root)
    run(EXPORT, root)
    run(REPORT, root)
    return root


def _same_cells(
    answered: nbformat.NotebookNode, released: nbformat.NotebookNode
) -> bool:
    """The harness's answered notebook is the released one with answer cells filled
    in."""
    ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in answered.cells]
    return ids == [
        cell.metadata.get("nbgrader", {}).get("grade_id") for cell in released.cells
    ]


def test_the_guide_prints_every_command_this_test_runs():
    # Lines continued with a backslash in the guide count as one command.
    guide = re.sub(r"\\\n\s*", "", (REPO / "front" / "instructors.md").read_text())
    for command in COMMANDS:
        assert command in guide, f"the instructors' guide lacks `{command}`"


def test_the_release_is_the_student_version(course):
    released = (course / "chapters" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text()
    assert "### BEGIN SOLUTION" not in released and "HIDDEN TESTS" not in released
    assert "raise NotImplementedError()" in released


def test_collect_put_each_submission_in_place(course):
    for student in ("alice", "bob", "carol"):
        assert (
            course / "submitted" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        ).is_file()
    assert not (course / "submitted" / "dave").exists()


def rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def test_exercise_export_has_one_row_per_student_and_the_right_scores(course):
    table = rows(course / f"grades-{ASSIGNMENT}.csv")
    assert sorted(table) == ["alice", "bob", "carol", "dave"]
    full = SECTION.full_marks_except()
    for test_id, points in full.items():
        column = test_id
        assert float(table["alice"][column]) == points
        assert float(table["bob"][column]) == (
            0 if test_id == "sdpa-attention-tests" else points
        )
        assert float(table["carol"][column]) == 0
        assert table["dave"][column] == ""  # nothing submitted: no score, not 0
    written = WRITTEN
    assert float(table["bob"][written]) == MANUAL_SCORE
    assert table["alice"][written] == ""  # not graded by hand yet


def test_nbgrader_export_totals_include_the_manual_score(course):
    with (course / "grades.csv").open() as handle:
        totals = {
            row["student_id"]: float(row["raw_score"])
            for row in csv.DictReader(handle)
            if row["assignment"] == ASSIGNMENT
        }
    autograded = sum(SECTION.full_marks_except().values())
    assert totals["alice"] == autograded
    assert totals["bob"] == autograded - 5 + MANUAL_SCORE
    assert totals["carol"] == 0
    assert totals["dave"] == 0


def test_class_report_is_a_picture(course):
    plot = course / f"report-{ASSIGNMENT}.png"
    assert (
        plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    )


def test_feedback_shows_scores_and_comments_but_no_hidden_tests(course):
    page = (course / "feedback" / "bob" / ASSIGNMENT / f"{NOTEBOOK}.html").read_text()
    assert MANUAL_COMMENT in page
    assert "hidden=True" not in page and "BEGIN HIDDEN TESTS" not in page
    assert "hidden tests ran here" in page
    solution = (REPO / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text()
    assert (
        "check_attention" in solution and "check_attention" in page
    )  # the visible check
