"""Helpers for grading round-trip tests: a temporary nbgrader course, submissions built
from a section's student version, autograding with nbgrader's API and a real sqlite
gradebook.

A section's test module describes its exercises in a :class:`Section` and gets the
standard round trip (solution = full marks, blank = 0, one bug = exactly that exercise's
points lost) from :class:`RoundTrip`::

    SECTION = Section.of("scaled_dot_product_attention",
                         wrong={"sdpa-causal-mask": "def causal_mask(size): ...", ...})
    course = course_fixture(SECTION)

    class TestRoundTrip(RoundTrip):
        section = SECTION

The round trip also does what nbval did for the section's two notebooks (so `make test`
executes each of them once, not once more under nbval): the solution is graded under the
second CPU kernel of `make test` (SEQBOOK_SOLUTIONS_CPU_CAPABILITY, PyTorch's portable
`default` kernels) and the blank student version under this processor's own, and in both
every cell must have run without an error, except the cells tagged `raises-exception`
(the exercise stubs and their checks, what `pytest --nbval-lax` lets fail too).
"""

from __future__ import annotations

import os
import shutil
import symtable
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
import pytest
import regenerate_chapters
from conftest import REPO

from grading.notebook_cells import cell_with_id, solution_code
from seqbook.book import sections


@dataclass(frozen=True)
class Section:
    assignment: str
    notebook: str
    points: dict[str, float]  # test-cell grade id -> points
    answers: dict[str, str]  # test-cell grade id -> answer-cell grade id
    wrong: dict[str, str]  # answer-cell grade id -> a wrong answer (code)

    @classmethod
    def of(cls, slug: str, wrong: dict[str, str]) -> Section:
        """The section called ``slug`` in seqbook.book.sections: its test cells and
        their points read from the solution notebook (test cell ``<id>-tests`` checks
        the answer cell ``<id>``), with the wrong answers of the test module."""
        section = sections.by_slug(slug)
        notebook = nbformat.read(
            REPO / "solutions" / f"{section.notebook}.ipynb", as_version=4
        )
        points = {}
        for cell in notebook.cells:
            grading = cell.metadata.get("nbgrader", {})
            if (
                cell.cell_type == "code"
                and grading.get("grade")
                and not grading.get("solution")
            ):
                points[grading["grade_id"]] = grading["points"]
        answers = {test: test.removesuffix("-tests") for test in points}
        unknown = set(wrong) - set(answers.values())
        assert not unknown, (
            f"wrong answers for cells that {slug} does not have: {unknown}"
        )
        return cls(section.part, section.slug, points, answers, wrong)

    @property
    def solution_path(self) -> Path:
        return REPO / "solutions" / self.assignment / f"{self.notebook}.ipynb"

    @property
    def student_path(self) -> Path:
        return REPO / "chapters" / self.assignment / f"{self.notebook}.ipynb"

    @property
    def chinese_path(self) -> Path:
        """The Chinese student version (tools/translation.py), same cells and code."""
        return REPO / "zh_CN" / "chapters" / self.assignment / f"{self.notebook}.ipynb"

    def student_version(self, chinese: bool = False) -> nbformat.NotebookNode:
        path = self.chinese_path if chinese else self.student_path
        return nbformat.read(path, as_version=4)

    def solution_code(self, grade_id: str) -> str:
        return solution_code(
            cell_with_id(nbformat.read(self.solution_path, as_version=4), grade_id)
        )

    def answered(
        self, wrong: tuple[str, ...] = (), prefix: str = "", chinese: bool = False
    ) -> nbformat.NotebookNode:
        """The student version (English, or the Chinese one) with every exercise
        answered, those in ``wrong`` wrongly."""
        notebook = self.student_version(chinese)
        for grade_id in self.answers.values():
            code = (
                self.wrong[grade_id]
                if grade_id in wrong
                else self.solution_code(grade_id)
            )
            cell_with_id(notebook, grade_id).source = prefix + code
        return notebook

    def exercises_only(self, notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """``notebook`` (a version of this section) without the code cells no graded
        cell needs: kept are the markdown cells, the cells nbgrader tracks, every code
        cell that does not parse, and every other code cell that binds a name a kept
        cell reads (read from the solution, hidden tests included), and so on.

        For the one-bug round trips, which compare scores only: a score is what a test
        cell printed, and a test cell sees the same names whether or not the dropped
        cells ran. Those are the experiments, which (after each exercise) use the
        book's reference; the solution and blank round trips still run every cell.
        A one-bug round trip then takes seconds instead of the notebook's minute.
        """
        source = nbformat.read(self.solution_path, as_version=4)
        grade_ids = [
            [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells]
            for nb in (source, notebook)
        ]
        assert grade_ids[0] == grade_ids[1], "the cells do not line up with the source"
        names = [_defined_and_used(cell) for cell in source.cells]
        keep = {
            index
            for index, cell in enumerate(source.cells)
            if cell.cell_type != "code"
            or "nbgrader" in cell.metadata
            or names[index] is None
        }
        needed = set().union(*(names[i][1] for i in keep if names[i] is not None))
        changed = True
        while changed:
            changed = False
            for index, bound_and_read in enumerate(names):
                if index not in keep and bound_and_read[0] & needed:
                    keep.add(index)
                    needed |= bound_and_read[1]
                    changed = True
        reduced = nbformat.from_dict(notebook)
        reduced.cells = [c for i, c in enumerate(notebook.cells) if i in keep]
        return reduced

    def full_marks_except(self, *lost: str) -> dict[str, float]:
        return {
            name: (0 if name in lost else points)
            for name, points in self.points.items()
        }


def _defined_and_used(
    cell: nbformat.NotebookNode,
) -> tuple[set[str], set[str]] | None:
    """The global names a code cell binds, and those it reads that it does not bind
    itself (at module level or inside its functions, as Python's symbol table sees
    them); None for a cell that does not parse. Missing a read would make a one-bug
    round trip fail with a NameError, never pass wrongly."""
    if cell.cell_type != "code":
        return set(), set()
    lines = [  # IPython magics and shell lines become ``pass``, indentation kept
        line[: len(line) - len(line.lstrip())] + "pass"
        if line.lstrip().startswith(("%", "!"))
        else line
        for line in cell.source.splitlines()
    ]
    try:
        module = symtable.symtable("\n".join(lines), "<cell>", "exec")
    except SyntaxError:
        return None
    bound, read = set(), set()
    for symbol in module.get_symbols():
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace():
            bound.add(symbol.get_name())
        if symbol.is_referenced():
            read.add(symbol.get_name())
    pending = list(module.get_children())
    while pending:  # functions, classes, comprehensions: their global reads
        scope = pending.pop()
        pending.extend(scope.get_children())
        for symbol in scope.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                read.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                bound.add(symbol.get_name())
    return bound, read - bound


@dataclass
class Course:
    root: Path
    db_url: str
    api: object


def course_fixture(section: Section, **settings: dict[str, object]) -> Callable:
    """A module-scoped fixture: a course directory with ``section``'s assignment
    generated.

    ``settings`` overrides the course configuration by class, for example
    ``GuardedExecute={"timeout": 5}``.
    """

    @pytest.fixture(scope="module")
    def course(tmp_path_factory) -> Course:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        root = tmp_path_factory.mktemp("course")
        db_url = f"sqlite:///{root / 'gradebook.db'}"
        regenerate_chapters.regenerate(
            root / "release", db_url, root=root, only=[section.assignment]
        )
        config = regenerate_chapters.course_config(root, root / "release", db_url)
        for class_name, values in settings.items():
            for name, value in values.items():
                setattr(config[class_name], name, value)
        return Course(
            root, db_url, NbGraderAPI(CourseDirectory(config=config), config=config)
        )

    return course


def autograde(
    section: Section,
    course: Course,
    student: str,
    notebook: nbformat.NotebookNode | Path,
) -> dict[str, float]:
    """Submit ``notebook`` as ``student``, autograde it, return the autograded
    scores."""
    from nbgrader.api import Gradebook

    target = (
        course.root
        / "submitted"
        / student
        / section.assignment
        / f"{section.notebook}.ipynb"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, target)
    else:
        nbformat.write(notebook, target)
    result = course.api.autograde(section.assignment, student, force=True, create=True)
    assert result["success"], result.get("log")
    with Gradebook(course.db_url) as gradebook:
        submission = gradebook.find_submission_notebook(
            section.notebook, section.assignment, student
        )
        scores = {grade.name: grade.auto_score for grade in submission.grades}
        max_scores = {grade.name: grade.max_score for grade in submission.grades}
    assert {k: max_scores[k] for k in section.points} == section.points, (
        "points were not reset to the source's"
    )
    return {name: scores[name] for name in section.points}


def assert_cells_ran(
    section: Section, course: Course, student: str, submitted: nbformat.NotebookNode
) -> None:
    """Every cell of ``student``'s autograded notebook ran without an error, except the
    cells tagged ``raises-exception`` in the notebook that was submitted (nbval's rule
    under ``--nbval-lax``). A failed claim (seqbook.book.claims) is such an error."""
    graded = nbformat.read(
        course.root
        / "autograded"
        / student
        / section.assignment
        / f"{section.notebook}.ipynb",
        as_version=4,
    )
    assert len(graded.cells) == len(submitted.cells), (
        "autograding changed the cell count"
    )
    failures = []
    for index, (cell, source) in enumerate(zip(graded.cells, submitted.cells)):
        if "raises-exception" in source.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                trace = "\n".join(output.get("traceback", []))[-1500:]
                failures.append(
                    f"cell {index} ({cell.source[:60]!r}...): "
                    f"{output.get('ename')}: {output.get('evalue')}\n{trace}"
                )
    assert not failures, (
        f"{section.notebook} ({student}): cells that raised\n" + "\n\n".join(failures)
    )


class RoundTrip:
    """The standard round trip of a section, as a test class to subclass::

        class TestRoundTrip(RoundTrip):
            section = SECTION

    next to a module-level ``course = course_fixture(SECTION)``: the solution scores
    full marks (graded under the second CPU kernel, every cell run in the sandbox and
    checked as nbval would), the blank student version 0, and one wrong answer loses
    exactly its exercise's points. The blank and one-bug submissions keep only the
    cells the graded cells need (:meth:`Section.exercises_only`); the student versions
    run whole, natively, in `make book`. A submission made from the
    Chinese notebook (zh_CN/chapters/) is graded with the same gradebook and must score
    what the same answers score in English.
    """

    section: Section

    def pytest_generate_tests(self, metafunc):
        if "test_id" in metafunc.fixturenames:
            metafunc.parametrize("test_id", sorted(self.section.points))

    def test_solution_scores_full_marks(self, course, monkeypatch):
        section = self.section
        capability = os.environ.get("SEQBOOK_SOLUTIONS_CPU_CAPABILITY", "").strip()
        if capability:  # the kernel (sandboxed or not) inherits it from the grader
            monkeypatch.setenv("ATEN_CPU_CAPABILITY", capability)
        assert (
            autograde(section, course, "solution", section.solution_path)
            == section.full_marks_except()
        )
        assert_cells_ran(
            section,
            course,
            "solution",
            nbformat.read(section.solution_path, as_version=4),
        )

    def test_unanswered_student_version_scores_zero(self, course):
        # Only the cells the graded cells need: the whole student version runs top to
        # bottom under this processor's kernel in `make book` (tools/execute_book.py,
        # where only exercise and test cells may raise), and the solution's full run
        # above already runs every experiment in the sandbox. Running it here too
        # cost CI six minutes for no check the other two do not make.
        section = self.section
        blank = section.exercises_only(section.student_version())
        assert autograde(section, course, "blank", blank) == section.full_marks_except(
            *section.points
        )
        assert_cells_ran(section, course, "blank", blank)

    def test_one_buggy_exercise_loses_exactly_its_points(self, course, test_id):
        section = self.section
        notebook = section.exercises_only(
            section.answered(wrong=(section.answers[test_id],))
        )
        assert autograde(
            section, course, f"buggy-{test_id}", notebook
        ) == section.full_marks_except(test_id)

    def test_chinese_version_grades_like_the_english(self, course):
        # A submission made from the Chinese notebook, graded with the gradebook of
        # the English one: every answer right but the first exercise's, which is
        # wrong, scores what the same answers score in English.
        section = self.section
        first = sorted(section.points)[0]
        notebook = section.exercises_only(
            section.answered(wrong=(section.answers[first],), chinese=True)
        )
        assert any(
            "\u4e00" <= ch <= "\u9fff" for c in notebook.cells for ch in c.source
        )
        assert autograde(
            section, course, "chinese", notebook
        ) == section.full_marks_except(first)


def printed_report(path: Path, prefix: str) -> dict:
    """The JSON a hostile test submission printed after ``prefix`` in any output of the
    autograded notebook at ``path`` (how the attack tests read what the code saw)."""
    import json

    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(prefix):
                    return json.loads(line.removeprefix(prefix))
    raise AssertionError(f"no line starting with {prefix!r} in {path}")
