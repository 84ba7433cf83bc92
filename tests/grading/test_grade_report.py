"""Grade export (one row per student, one column per exercise) and the class report,
from a small SQLite gradebook filled through nbgrader's own API (no notebooks run)."""

from __future__ import annotations

import csv

import pytest

from grading import report  # noqa: E402

COURSE = "everything-is-a-mapping"


@pytest.fixture
def gradebook(tmp_path):
    from nbgrader.api import Gradebook

    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url, COURSE) as gb:
        gb.update_or_create_assignment("attention")
        gb.update_or_create_notebook("soft_lookup", "attention")
        for name, points, cell_type in (
            ("lookup-pooling-tests", 4, "code"),
            ("lookup-training-step-tests", 3, "code"),
            ("lookup-more-data", 2, "markdown"),
        ):
            gb.update_or_create_grade_cell(
                name, "soft_lookup", "attention", max_score=points, cell_type=cell_type
            )
        for student in ("ann", "bob", "cat", "dan"):  # dan submits nothing
            gb.update_or_create_student(student)
        # (auto pooling, auto step, auto written, manual written)
        given = {
            "ann": (4, 3, 0, 2),
            "bob": (0, 3, 0, None),
            "cat": (None, None, None, 1.5),
        }
        for student, (pool, step, written, manual) in given.items():
            gb.add_submission("attention", student)
            for name, auto in (
                ("lookup-pooling-tests", pool),
                ("lookup-training-step-tests", step),
                ("lookup-more-data", written),
            ):
                grade = gb.find_grade(name, "soft_lookup", "attention", student)
                grade.auto_score = auto
                if name == "lookup-more-data":
                    grade.manual_score = manual
            gb.db.commit()
    return url


def test_csv_has_one_row_per_student_and_one_column_per_exercise(gradebook, tmp_path):
    exercises, table = report.collect(gradebook, ["attention"], COURSE)
    out = tmp_path / "grades.csv"
    report.write_csv(out, exercises, table)
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "student_id",
        "lookup-pooling-tests",
        "lookup-training-step-tests",
        "lookup-more-data",
        "total",
        "max_total",
    ]
    assert rows[1:] == [
        ["ann", "4", "3", "2", "9", "9"],  # the manual score overrides the auto 0
        ["bob", "0", "3", "0", "3", "9"],
        ["cat", "", "", "1.5", "1.5", "9"],  # not autograded: blank, not 0
        ["dan", "", "", "", "0", "9"],  # on the roster, no submission
    ]


def test_summary_and_plot(gradebook, tmp_path):
    exercises, table = report.collect(gradebook, None, COURSE)
    stats = report.summary(exercises, table)
    assert stats["lookup-pooling-tests"] == {
        "full": 1,
        "partial": 0,
        "zero": 1,
        "none": 2,
        "mean_share": pytest.approx(4 / 16),
    }
    assert stats["lookup-more-data"] == {
        "full": 1,
        "partial": 1,
        "zero": 1,
        "none": 1,
        "mean_share": pytest.approx(3.5 / 8),
    }
    out = tmp_path / "report.png"
    report.plot(out, exercises, table, title="attention")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_command_line(gradebook, tmp_path):
    out, figure = tmp_path / "g.csv", tmp_path / "r.svg"
    assert (
        report.main(
            [
                "--db",
                gradebook,
                "--assignment",
                "attention",
                "--csv",
                str(out),
                "--plot",
                str(figure),
            ]
        )
        == 0
    )
    assert out.read_text().splitlines()[1].startswith("ann,4,3,2,9,9")
    assert "lookup-training-step-tests" in figure.read_text()
