"""The round trip's stand-in for nbval (grading_harness.assert_cells_ran) catches a cell
that raised and lets the cells tagged ``raises-exception`` fail, as nbval --nbval-lax
does."""

from __future__ import annotations

import nbformat
import pytest
from grading_harness import Course, Section, assert_cells_ran

SECTION = Section(
    assignment="part", notebook="section", points={}, answers={}, wrong={}
)


def _error(name: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=name, evalue="it failed", traceback=[])


def _course_with(tmp_path, outputs, tags):
    submitted = nbformat.v4.new_notebook()
    submitted.cells = [
        nbformat.v4.new_code_cell(f"cell_{i}", metadata={"tags": t})
        for i, t in enumerate(tags)
    ]
    graded = nbformat.v4.new_notebook()
    graded.cells = [
        nbformat.v4.new_code_cell(f"cell_{i}", outputs=o) for i, o in enumerate(outputs)
    ]
    path = tmp_path / "autograded" / "student" / "part" / "section.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(graded, path)
    return Course(tmp_path, "", None), submitted


def test_an_error_in_an_untagged_cell_fails_and_names_the_cell(tmp_path):
    course, submitted = _course_with(tmp_path, [[], [_error("ClaimError")]], [[], []])
    with pytest.raises(AssertionError, match="cell 1 .*ClaimError"):
        assert_cells_ran(SECTION, course, "student", submitted)


def test_errors_in_raises_exception_cells_are_allowed(tmp_path):
    course, submitted = _course_with(
        tmp_path, [[_error("NotImplementedError")], []], [["raises-exception"], []]
    )
    assert_cells_ran(SECTION, course, "student", submitted)


def test_a_changed_cell_count_fails(tmp_path):
    course, submitted = _course_with(tmp_path, [[]], [[]])
    submitted.cells.append(nbformat.v4.new_code_cell("extra"))
    with pytest.raises(AssertionError, match="cell count"):
        assert_cells_ran(SECTION, course, "student", submitted)


def test_every_notebook_runs_in_a_round_trip():
    """`make test` executes the notebooks only through the round trips: a notebook
    without one would never run in the tests. Each section of seqbook.book.sections has
    a test module with a RoundTrip class for it."""
    import importlib

    from conftest import REPO
    from grading_harness import RoundTrip

    from seqbook.book.sections import SECTIONS

    declared = set()
    for path in (REPO / "tests").rglob("test_grading*.py"):
        module = importlib.import_module(path.stem)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, RoundTrip)
                and value is not RoundTrip
                and value.__name__.startswith("Test")
            ):
                declared.add(f"{value.section.assignment}/{value.section.notebook}")
    missing = {section.notebook for section in SECTIONS} - declared
    assert len(SECTIONS) >= 17 and not missing, (
        f"sections with no grading round trip: {missing}"
    )
