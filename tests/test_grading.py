"""The grading round trip, with nbgrader's own API and a real sqlite gradebook.

In a temporary course directory the pilot assignment is generated, submissions are
placed in submitted/<student>/<assignment>/, and each is autograded. Expected scores:

* the solution notebook: full marks on every autograded cell;
* the unanswered student version: 0;
* one buggy exercise: loses exactly that exercise's points;
* hostile submissions (edited or deleted test cells, changed points, a redefined
  torch.allclose, an IPython input transformer that swallows exceptions): gain nothing;
* a correct answer that emits a warning: still full marks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

import regenerate_chapters

ASSIGNMENT = "attention"
NOTEBOOK = "scaled_dot_product_attention"
POINTS = {"sdpa-causal-mask-tests": 2, "sdpa-padding-mask-tests": 2, "sdpa-attention-tests": 5}
ANSWER_CELLS = {"sdpa-causal-mask-tests": "sdpa-causal-mask",
                "sdpa-padding-mask-tests": "sdpa-padding-mask",
                "sdpa-attention-tests": "sdpa-attention"}

WRONG = {
    "sdpa-causal-mask": "def causal_mask(size):\n    return torch.ones(size, size, dtype=torch.bool).triu()\n",
    "sdpa-padding-mask": (
        "def padding_mask(lengths, max_len):\n"
        "    return (torch.arange(max_len) <= lengths[:, None])[:, None, :]\n"
    ),
    "sdpa-attention": (  # forgets the 1/sqrt(d_k)
        "def scaled_dot_product_attention(query, key, value, mask=None):\n"
        "    scores = query @ key.transpose(-2, -1)\n"
        "    if mask is not None:\n"
        "        scores = scores.masked_fill(~mask, float('-inf'))\n"
        "    weights = torch.softmax(scores, dim=-1)\n"
        "    if mask is not None:\n"
        "        weights = weights.masked_fill(~mask, 0.0)\n"
        "    return weights @ value, weights\n"
    ),
}

SWALLOW_EXCEPTIONS = '''
def _wrap_in_try(lines):
    return ["try:\\n"] + ["    " + line for line in lines] + ["\\nexcept BaseException:\\n    pass\\n"]
get_ipython().input_transformers_post.append(_wrap_in_try)
'''

REDEFINE_COMPARISONS = '''
import numpy, torch
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
numpy.allclose = lambda *args, **kwargs: True
'''


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course directory with the pilot assignment generated into its gradebook."""
    root = tmp_path_factory.mktemp("course")
    db_url = f"sqlite:///{root / 'gradebook.db'}"
    regenerate_chapters.regenerate(root / "release", db_url, root=root)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = regenerate_chapters.course_config(root, root / "release", db_url)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    return root, db_url, api


def student_version() -> nbformat.NotebookNode:
    return nbformat.read(REPO / "chapters" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)


def solution_code(grade_id: str) -> str:
    source = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    cell = cell_with_id(source, grade_id)
    return "\n".join(line for line in cell.source.splitlines() if "### " not in line)


def cell_with_id(notebook, grade_id):
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def answered(wrong: tuple[str, ...] = (), prefix: str = "") -> nbformat.NotebookNode:
    """The student version with every exercise answered, those in ``wrong`` wrongly."""
    notebook = student_version()
    for grade_id in ANSWER_CELLS.values():
        code = WRONG[grade_id] if grade_id in wrong else solution_code(grade_id)
        cell_with_id(notebook, grade_id).source = prefix + code
    return notebook


def autograde(course, student: str, notebook: nbformat.NotebookNode | Path) -> dict[str, float]:
    root, db_url, api = course
    target = root / "submitted" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, target)
    else:
        nbformat.write(notebook, target)
    result = api.autograde(ASSIGNMENT, student, force=True, create=True)
    assert result["success"], result.get("log")
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
        scores = {grade.name: grade.auto_score for grade in submission.grades}
        max_scores = {grade.name: grade.max_score for grade in submission.grades}
    assert {k: max_scores[k] for k in POINTS} == POINTS, "points were not reset to the source's"
    return {name: scores[name] for name in POINTS}


def full_marks_except(*lost: str) -> dict[str, float]:
    return {name: (0 if name in lost else points) for name, points in POINTS.items()}


def test_solution_scores_full_marks(course):
    assert autograde(course, "solution", REPO / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb") \
        == full_marks_except()


def test_unanswered_student_version_scores_zero(course):
    assert autograde(course, "blank", student_version()) == full_marks_except(*POINTS)


@pytest.mark.parametrize("test_id", sorted(POINTS))
def test_one_buggy_exercise_loses_exactly_its_points(course, test_id):
    notebook = answered(wrong=(ANSWER_CELLS[test_id],))
    assert autograde(course, f"buggy-{test_id}", notebook) == full_marks_except(test_id)


def test_edited_test_cell_is_restored(course):
    notebook = answered(wrong=("sdpa-attention",))
    cell_with_id(notebook, "sdpa-attention-tests").source = "pass  # all good, trust me"
    assert autograde(course, "edited", notebook) == full_marks_except("sdpa-attention-tests")


def test_deleted_test_cell_is_restored(course):
    notebook = answered(wrong=("sdpa-attention",))
    notebook.cells.remove(cell_with_id(notebook, "sdpa-attention-tests"))
    assert autograde(course, "deleted", notebook) == full_marks_except("sdpa-attention-tests")


def test_changed_points_are_reset(course):
    notebook = answered(wrong=("sdpa-padding-mask",))
    for grade_id in POINTS:
        cell_with_id(notebook, grade_id).metadata["nbgrader"]["points"] = 100
    assert autograde(course, "points", notebook) == full_marks_except("sdpa-padding-mask-tests")


def test_redefined_comparisons_gain_nothing(course):
    notebook = answered(wrong=tuple(ANSWER_CELLS.values()), prefix=REDEFINE_COMPARISONS)
    assert autograde(course, "allclose", notebook) == full_marks_except(*POINTS)


def test_exception_swallowing_input_transformer_gains_nothing(course):
    # Installed again in every answer cell, so every test cell would run wrapped.
    notebook = answered(wrong=tuple(ANSWER_CELLS.values()), prefix=SWALLOW_EXCEPTIONS)
    assert autograde(course, "transformer", notebook) == full_marks_except(*POINTS)


def test_swallowing_transformer_with_correct_answers_is_flagged(course):
    # Even right answers are not credited when the grading environment was tampered with.
    notebook = answered(prefix=SWALLOW_EXCEPTIONS)
    assert autograde(course, "transformer-right", notebook) == full_marks_except(*POINTS)


def test_a_warning_in_passing_code_still_scores(course):
    notebook = answered()
    cell = cell_with_id(notebook, "sdpa-attention")
    cell.source = cell.source.replace(
        "    d_k = query.size(-1)",
        "    import warnings\n    warnings.warn('deprecated-looking warning', UserWarning)\n"
        "    d_k = query.size(-1)")
    assert "warnings.warn" in cell.source
    assert autograde(course, "warning", notebook) == full_marks_except()
