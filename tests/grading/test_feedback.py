"""Feedback returned to students does not contain the hidden tests.

In a temporary course directory (nbgrader's API and command line, a real sqlite
gradebook) a submission of "Attention as a soft dictionary lookup" is autograded whose
pooling answer passes the visible check but fails the hidden tests (it is only right on
the visible check's keys), so the hidden test's traceback would quote the hidden lines.

* Control: nbgrader's default feedback (without grading/feedback.py) does contain the
  hidden-test lines -- so the detector below can find them.
* The course's feedback (``nbgrader generate_feedback`` with nbgrader_config.py)
  contains no hidden-test line and no marker, but does contain the score, the per-cell
  scores and the checks' messages (the visible check's success line, the hidden check's
  explanation).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from grading_harness import Section, autograde, course_fixture

from grading import sample_submissions
from grading.feedback import BEGIN, END, PLACEHOLDER, split_hidden

# Right on the visible check's keys only (they all start at 0.0).
SECTION = Section.of(
    "soft_lookup", wrong={"lookup-pooling": sample_submissions.VISIBLE_ONLY_POOLING}
)
STUDENT = "visible-only"

course = course_fixture(SECTION)


class _Text(HTMLParser):
    """The text a reader sees in an HTML page (styles and scripts left out)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def page_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return "".join(parser.parts)


def hidden_lines() -> list[str]:
    """Every non-blank line inside a hidden block of the section's source notebook."""
    lines = []
    for cell in nbformat.read(SECTION.solution_path, as_version=4).cells:
        if cell.cell_type == "code":
            lines += [
                line.strip() for line in split_hidden(cell.source)[1] if line.strip()
            ]
    assert lines, "the section has no hidden tests to hide"
    return lines


@pytest.fixture(scope="module")
def graded(course):
    scores = autograde(
        SECTION, course, STUDENT, SECTION.answered(wrong=("lookup-pooling",))
    )
    assert scores == SECTION.full_marks_except("lookup-pooling-tests"), (
        "the submission should pass the visible pooling check and fail the hidden one"
    )
    return course


@pytest.fixture(scope="module")
def default_feedback(graded) -> str:
    """Feedback as nbgrader writes it out of the box."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import GetGrades

    config = copy.deepcopy(graded.api.config)
    config.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor]
    config.CourseDirectory.feedback_directory = "feedback-default"
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    result = api.generate_feedback(SECTION.assignment, STUDENT, force=True)
    assert result["success"], result.get("log")
    return page_text(
        graded.root
        / "feedback-default"
        / STUDENT
        / SECTION.assignment
        / f"{SECTION.notebook}.html"
    )


@pytest.fixture(scope="module")
def feedback(graded) -> str:
    """Feedback as an instructor makes it: `nbgrader generate_feedback` run where
    nbgrader_config.py lies, pointed at the temporary course."""
    command = [
        str(Path(sys.executable).parent / "nbgrader"),
        "generate_feedback",
        SECTION.assignment,
        "--student",
        STUDENT,
        "--force",
        f"--CourseDirectory.root={graded.root}",
        f"--CourseDirectory.db_url={graded.db_url}",
    ]
    done = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return page_text(
        graded.root
        / "feedback"
        / STUDENT
        / SECTION.assignment
        / f"{SECTION.notebook}.html"
    )


def test_default_feedback_reveals_hidden_tests(default_feedback):
    # The control: without the filter the hidden lines are there, so the checks below
    # would see them if they leaked.
    assert BEGIN in default_feedback
    assert [line for line in hidden_lines() if line in default_feedback]


def test_feedback_contains_no_hidden_test(feedback):
    leaked = [line for line in hidden_lines() if line in feedback]
    assert not leaked, f"hidden-test lines in the feedback: {leaked}"
    assert BEGIN not in feedback and END not in feedback
    assert "HIDDEN TESTS" not in feedback
    assert PLACEHOLDER in feedback  # the student sees that hidden tests ran


def test_feedback_keeps_scores_and_check_messages(graded, feedback):
    from nbgrader.api import Gradebook

    with Gradebook(graded.db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(
            SECTION.notebook, SECTION.assignment, STUDENT
        )
        total, maximum = notebook.score, notebook.max_score
    assert f"(Score: {round(float(total), 2)} / {round(float(maximum), 2)})" in feedback
    assert "(Score: 0.0 / 4.0)" in feedback and "(Score: 3.0 / 3.0)" in feedback
    # The visible checks' success lines, the hidden check's failure and its explanation.
    assert "gaussian_attention_pooling matches the reference on 5 cases." in feedback
    assert "CheckFailure" in feedback
    # The message is wrapped to the page; where the lines break depends on the drawn
    # width.
    assert "the width is used as a variance" in " ".join(feedback.split())
    # The visible part of the test cell is still shown.
    assert (
        "lookup_checks.check_gaussian_attention_pooling(gaussian_attention_pooling)"
        in feedback
    )


def test_unit_split_hidden_handles_unterminated_block():
    shown, hidden = split_hidden(f"check(f)\n{BEGIN}\nsecret(f, 1)\nsecret(f, 2)")
    assert shown == f"check(f)\n{PLACEHOLDER}" and hidden == [
        "secret(f, 1)",
        "secret(f, 2)",
    ]
