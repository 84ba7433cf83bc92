"""Grade export and class report from an nbgrader gradebook (SQLite or PostgreSQL).

    python -m grading.report --db sqlite:///gradebook.db --assignment attention \\
        --csv grades-attention.csv --plot report-attention.png

(for a gradebook with a password, set ``GRADEBOOK_URL`` or pass ``--db-file``).
The report also warns when notebooks of ``--course`` (default: here) were autograded
without the sandbox.

* The CSV has one row per student of the gradebook (those without a submission too) and
  one column per exercise -- every graded cell: the autograded test cells and the
  hand-graded written answers -- in the order of the notebooks, then ``total`` and
  ``max_total``. A cell's value is its score (a manual score overrides the autograded
  one, extra credit included); it is empty when the student did not submit the notebook
  or it could not be graded (neither an autograded nor a manual score exists).
* The plot shows, for each exercise, the share of students with full marks, partial
  marks, zero, and no score, with the class's mean score as a share of the points:
  where the class struggles, at a glance.

Columns are the cells' grade ids (``<section>-<exercise>-tests``); with several
assignments they are prefixed with ``<assignment>/``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from grading import credentials


@dataclass
class Exercise:
    column: str
    assignment: str
    notebook: str
    grade_id: str
    max_score: float


def collect(
    db_url: str,
    assignments: list[str] | None = None,
    course_id: str = "everything-is-a-mapping",
) -> tuple[list[Exercise], dict[str, dict[str, float | None]]]:
    """The exercises, and ``{student: {column: score or None}}`` for every student."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, course_id) as gb:
        chosen = (
            [gb.find_assignment(name) for name in assignments]
            if assignments
            else sorted(gb.assignments, key=lambda a: a.name)
        )
        prefix = len(chosen) > 1
        exercises = []
        for assignment in chosen:
            for notebook in assignment.notebooks:
                for cell in notebook.grade_cells:
                    column = f"{assignment.name}/{cell.name}" if prefix else cell.name
                    exercises.append(
                        Exercise(
                            column,
                            assignment.name,
                            notebook.name,
                            cell.name,
                            float(cell.max_score),
                        )
                    )
        table: dict[str, dict[str, float | None]] = {
            student.id: {exercise.column: None for exercise in exercises}
            for student in gb.students
        }
        by_key = {(e.assignment, e.notebook, e.grade_id): e.column for e in exercises}
        for assignment in chosen:
            for submission in assignment.submissions:
                row = table.setdefault(
                    submission.student.id,
                    {exercise.column: None for exercise in exercises},
                )
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        column = by_key.get(
                            (assignment.name, notebook.name, grade.name)
                        )
                        if column is None:
                            continue
                        if grade.auto_score is None and grade.manual_score is None:
                            continue
                        row[column] = float(grade.score)
    return exercises, table


def graded_without_sandbox(
    course: Path, assignments: list[str] | None = None
) -> list[str]:
    """``student/assignment/notebook`` of each autograded notebook in ``course`` that
    records it was graded with the sandbox off (see ``grading.execution``)."""
    import json

    found = []
    for path in sorted(Path(course).glob("autograded/*/*/*.ipynb")):
        if assignments and path.parent.name not in assignments:
            continue
        try:
            metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, ValueError):
            continue
        if metadata.get("seqbook_grading", {}).get("sandbox") == "off":
            found.append(
                str(path.relative_to(Path(course) / "autograded").with_suffix(""))
            )
    return found


def write_csv(
    path: Path, exercises: list[Exercise], table: dict[str, dict[str, float | None]]
) -> None:
    columns = [exercise.column for exercise in exercises]
    max_total = sum(exercise.max_score for exercise in exercises)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", *columns, "total", "max_total"])
        for student in sorted(table):
            scores = [table[student][column] for column in columns]
            total = sum(score for score in scores if score is not None)
            writer.writerow(
                [
                    student,
                    *("" if s is None else f"{s:g}" for s in scores),
                    f"{total:g}",
                    f"{max_total:g}",
                ]
            )


def summary(
    exercises: list[Exercise], table: dict[str, dict[str, float | None]]
) -> dict[str, dict[str, float]]:
    """Per exercise: how many students have full, partial, zero or no score, and the
    mean score as a share of the points (students without a score count as 0)."""
    result = {}
    for exercise in exercises:
        scores = [row[exercise.column] for row in table.values()]
        counts = {"full": 0, "partial": 0, "zero": 0, "none": 0}
        for score in scores:
            if score is None:
                counts["none"] += 1
            elif score >= exercise.max_score:
                counts["full"] += 1
            elif score > 0:
                counts["partial"] += 1
            else:
                counts["zero"] += 1
        total = sum(score or 0.0 for score in scores)
        mean = (
            total / (len(scores) * exercise.max_score)
            if scores and exercise.max_score
            else 0.0
        )
        result[exercise.column] = {**counts, "mean_share": mean}
    return result


def plot(
    path: Path,
    exercises: list[Exercise],
    table: dict[str, dict[str, float | None]],
    title: str = "",
) -> None:
    """One horizontal bar per exercise, split into full / partial / zero / no score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summary(exercises, table)
    students = max(len(table), 1)
    labels = [f"{e.column} ({e.max_score:g} pt)" for e in exercises]
    kinds = [
        ("full", "full marks", "#2a9d8f"),
        ("partial", "partial", "#e9c46a"),
        ("zero", "zero", "#e76f51"),
        ("none", "no score", "#bbbbbb"),
    ]
    figure, axis = plt.subplots(
        figsize=(8, 0.45 * len(exercises) + 1.6), layout="constrained"
    )
    left = [0.0] * len(exercises)
    for key, label, colour in kinds:
        shares = [stats[e.column][key] / students for e in exercises]
        axis.barh(range(len(exercises)), shares, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, shares)]
    for row, exercise in enumerate(exercises):
        axis.text(
            1.01,
            row,
            f"mean {stats[exercise.column]['mean_share']:.0%}",
            va="center",
            fontsize=8,
        )
    axis.set_yticks(range(len(exercises)), labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel(f"share of the {len(table)} students")
    axis.set_title(title or "Scores per exercise")
    figure.legend(ncol=4, fontsize=8, loc="outside lower center", frameon=False)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export grades as CSV and plot a class report."
    )
    parser.add_argument(
        "--db",
        help="gradebook URL without a password (default: "
        "$GRADEBOOK_URL, else sqlite:///gradebook.db)",
    )
    parser.add_argument(
        "--db-file",
        type=Path,
        help="a file, readable by its owner only, holding the gradebook URL",
    )
    parser.add_argument(
        "--course",
        type=Path,
        default=Path("."),
        help="course directory whose autograded/ notebooks say how they "
        "were graded (default: the current directory)",
    )
    parser.add_argument("--assignment", nargs="+", help="default: every assignment")
    parser.add_argument("--course-id", default="everything-is-a-mapping")
    parser.add_argument("--csv", type=Path, default=Path("grades-by-exercise.csv"))
    parser.add_argument(
        "--plot", type=Path, help="also write the class report (PNG/SVG/PDF)"
    )
    args = parser.parse_args(argv)
    try:
        db_url = credentials.gradebook_url(
            args.db, args.db_file, default="sqlite:///gradebook.db"
        )
    except credentials.CredentialError as error:
        parser.error(str(error))
    exercises, table = collect(db_url, args.assignment, args.course_id)
    write_csv(args.csv, exercises, table)
    print(f"wrote {args.csv}: {len(table)} students, {len(exercises)} exercises")
    unsandboxed = graded_without_sandbox(args.course, args.assignment)
    if unsandboxed:
        print(
            f"WARNING: {len(unsandboxed)} notebook(s) were autograded WITHOUT the "
            "sandbox (GRADING_SANDBOX=off): their code could read and change files of "
            "the course. Trust these scores only if each submission ran in a container "
            "of its own:\n  " + "\n  ".join(unsandboxed)
        )
    if args.plot:
        plot(args.plot, exercises, table, title=", ".join(args.assignment or []))
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
