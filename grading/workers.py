"""Autograde one assignment with several worker processes sharing one gradebook.

nbgrader grades one submission after another in one process, with a SQLite gradebook
that only one writer may use at a time. Here the submissions are split among worker
processes -- on one machine or on many -- that all write to the same gradebook database,
a PostgreSQL server in practice (nbgrader's ``CourseDirectory.db_url``). Each worker is
an ordinary nbgrader autograde of its share of the students; re-running a worker is safe
(``--force``), so a crashed or pre-empted worker is simply started again.

Three commands, run from anywhere (paths are explicit), with the gradebook's URL in the
environment variable ``GRADEBOOK_URL`` or in a private file (``--db-file``), never on
the command line (:mod:`grading.credentials`):

    export GRADEBOOK_URL=postgresql+psycopg2://grader:secret@db.example.org/course
    # once: register the assignment (cells, points, hidden tests) and the students
    python -m grading.workers prepare --course DIR --assignment attention
    # each worker: grade share INDEX of COUNT (round robin over the sorted student ids)
    python -m grading.workers run --course DIR --assignment attention --shard 0/4
    # or start COUNT local worker processes and wait for them
    python -m grading.workers launch --course DIR --assignment attention --workers 4

``--students`` limits grading to some students (default: every folder of
``DIR/submitted/``). ``--shard`` defaults to ``$JOB_COMPLETION_INDEX/$SHARD_COUNT`` (a
Kubernetes indexed Job) when those variables are set. The configuration is the course's
``nbgrader_config.py`` (``--config``; default: the file in DIR, else the one beside this
package), with the course root and the database URL replaced by ``--course`` and the
URL. Each submission's kernel runs in the sandbox of :mod:`grading.sandbox`; a worker
checks that it can be made before it grades anything, and stops (status 2) if it cannot.

Every worker prints one JSON line per submission (student, success, seconds, worker,
pid, start and end times) and exits 0 once its whole share was attempted, even when some
submissions could not be graded (a notebook that is not valid JSON, say): those are
student problems, listed with ``"success": false``, not reasons to restart the worker.
It exits 2 only when it could not work at all (no database, no assignment).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from grading import credentials, sandbox

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def load_config(
    course: Path,
    db_url: str,
    config_file: Path | None = None,
    source_dir: Path | None = None,
) -> Config:
    """The course's nbgrader configuration, pointed at ``course`` and ``db_url``."""
    if config_file is None:
        own = Path(course) / "nbgrader_config.py"
        config_file = own if own.exists() else PACKAGE_ROOT / "nbgrader_config.py"
    config_file = Path(config_file).resolve()
    config = PyFileConfigLoader(
        config_file.name, path=str(config_file.parent)
    ).load_config()
    config.CourseDirectory.root = str(Path(course).resolve())
    config.CourseDirectory.db_url = db_url
    if source_dir is not None:
        config.CourseDirectory.source_directory = str(Path(source_dir).resolve())
    return config


def _api(config: Config):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    # nbgrader starts `alembic` in a subprocess: the environment's bin/ must be on PATH.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def submitted_students(course: Path, assignment: str) -> list[str]:
    """Student ids with a submission of ``assignment`` in ``course/submitted/``."""
    submitted = Path(course) / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(
        p.name
        for p in submitted.iterdir()
        if (p / assignment).is_dir() and not p.name.startswith(".")
    )


def share(students: list[str], index: int, count: int) -> list[str]:
    """Share ``index`` of ``count``: every count-th student id in sorted order."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in 0..{count - 1}")
    return sorted(set(students))[index::count]


def prepare(config: Config, assignment: str, students: list[str]) -> None:
    """Register ``assignment`` (from the source folder) and ``students`` in the
    gradebook.

    Run once before the workers start, so that they never race to create the database's
    tables or the assignment. The student versions are written to a scratch folder: the
    course's own release folder is left alone.
    """
    from nbgrader.api import Gradebook

    config = copy.deepcopy(config)
    with tempfile.TemporaryDirectory() as scratch:
        config.CourseDirectory.release_directory = str(Path(scratch) / "release")
        result = _api(config).generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        raise RuntimeError(f"could not register {assignment}:\n{result.get('log')}")
    with Gradebook(
        config.CourseDirectory.db_url, config.CourseDirectory.course_id
    ) as gb:
        for student in students:
            gb.update_or_create_student(student)


def grade(
    config: Config,
    assignment: str,
    students: list[str],
    worker: str = "0/1",
    outs=(sys.stdout,),
) -> list[dict]:
    """Autograde ``students`` one after another; one JSON line per submission.

    Raises before grading anything when the gradebook cannot be opened or does not know
    ``assignment`` (nbgrader would otherwise report every submission as failed)."""
    from nbgrader.api import Gradebook

    with Gradebook(
        config.CourseDirectory.db_url, config.CourseDirectory.course_id
    ) as gb:
        gb.find_assignment(assignment)
    api = _api(config)
    records = []
    for student in students:
        start = time.time()
        result = api.autograde(assignment, student, force=True, create=True)
        record = {
            "student": student,
            "success": bool(result["success"]),
            "seconds": round(time.time() - start, 2),
            "worker": worker,
            "pid": os.getpid(),
            "start": start,
            "end": time.time(),
            "sandbox": config.GuardedExecute.get("sandbox", sandbox.SANDBOX_BUBBLEWRAP),
        }
        if not result["success"]:
            record["error"] = (result.get("error") or result.get("log") or "")[-2000:]
        records.append(record)
        for out in outs:
            print(json.dumps(record), file=out, flush=True)
    return records


def scores(db_url: str, assignment: str, course_id: str) -> dict[str, dict[str, dict]]:
    """``{student: {notebook: {grade id: (auto score, max score)}}}`` of ``assignment``,
    for every student with a submission."""
    from nbgrader.api import Gradebook

    table: dict[str, dict[str, dict]] = {}
    with Gradebook(db_url, course_id) as gb:
        for submission in gb.find_assignment(assignment).submissions:
            table[submission.student.id] = {
                notebook.name: {
                    grade.name: (grade.auto_score, grade.max_score)
                    for grade in notebook.grades
                }
                for notebook in submission.notebooks
            }
    return table


def launch(arguments: list[str], workers: int, db_url: str) -> int:
    """Start ``workers`` local processes of ``run`` and wait for all of them; they get
    the gradebook URL in their environment, not on their command lines."""
    environment = dict(os.environ, **{credentials.ENVIRONMENT_VARIABLE: db_url})
    # One math thread per notebook kernel, or the workers fight over the cores.
    environment.setdefault("OMP_NUM_THREADS", "1")
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "grading.workers",
                "run",
                *arguments,
                "--shard",
                f"{i}/{workers}",
            ],
            cwd=PACKAGE_ROOT,
            env=environment,
        )
        for i in range(workers)
    ]
    codes = [process.wait() for process in processes]
    return max(codes)


def _parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        index = os.environ.get("JOB_COMPLETION_INDEX")
        count = os.environ.get("SHARD_COUNT")
        if index is None or count is None:
            return 0, 1
        return int(index), int(count)
    index, _, count = text.partition("/")
    return int(index), int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Autograde with parallel workers sharing one gradebook database."
    )
    parser.add_argument("command", choices=["prepare", "run", "launch", "scores"])
    parser.add_argument(
        "--course",
        type=Path,
        required=True,
        help="the course directory (holds submitted/)",
    )
    parser.add_argument("--assignment", required=True)
    parser.add_argument(
        "--db",
        help="gradebook URL without a password (e.g. "
        "sqlite:///gradebook.db); one with a password goes in "
        f"${credentials.ENVIRONMENT_VARIABLE} or --db-file",
    )
    parser.add_argument(
        "--db-file",
        type=Path,
        help="a file, readable by its owner only, holding the gradebook URL",
    )
    parser.add_argument("--students", nargs="+", help="default: everyone in submitted/")
    parser.add_argument(
        "--shard",
        help="INDEX/COUNT (run); default: $JOB_COMPLETION_INDEX/$SHARD_COUNT, else 0/1",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes (launch)")
    parser.add_argument("--config", type=Path, help="nbgrader_config.py to use")
    parser.add_argument(
        "--source-dir",
        type=Path,
        help="nbgrader source folder, if not the configuration's",
    )
    parser.add_argument("--report", type=Path, help="also append the JSON lines here")
    args = parser.parse_args(argv)
    try:
        db_url = credentials.gradebook_url(args.db, args.db_file)
    except credentials.CredentialError as error:
        parser.error(str(error))

    students = args.students or submitted_students(args.course, args.assignment)
    if not students and args.command in ("run", "launch"):
        print(f"no submissions of {args.assignment} in {args.course / 'submitted'}")
        return 0
    if args.command == "launch":
        forwarded = [
            "--course",
            str(args.course.resolve()),
            "--assignment",
            args.assignment,
            "--students",
            *students,
        ]
        for flag, value in (
            ("--config", args.config),
            ("--source-dir", args.source_dir),
            ("--report", args.report),
        ):
            if value is not None:
                forwarded += [flag, str(Path(value).resolve())]
        return launch(forwarded, args.workers, db_url)

    config = load_config(args.course, db_url, args.config, args.source_dir)
    if args.command == "prepare":
        prepare(config, args.assignment, students)
        print(
            f"registered {args.assignment} and {len(students)} students "
            "in the gradebook"
        )
        return 0
    if args.command == "scores":
        print(
            json.dumps(
                scores(db_url, args.assignment, config.CourseDirectory.course_id),
                indent=1,
            )
        )
        return 0
    index, count = _parse_shard(args.shard)
    mine = share(students, index, count)
    if (
        config.GuardedExecute.get("sandbox", sandbox.SANDBOX_BUBBLEWRAP)
        != sandbox.SANDBOX_OFF
    ):
        try:
            sandbox.require()
        except sandbox.SandboxUnavailable as error:
            print(f"worker {index}/{count} stopped: {error}", file=sys.stderr)
            return 2
    report = open(args.report, "a", encoding="utf-8") if args.report else None
    try:
        grade(
            config,
            args.assignment,
            mine,
            f"{index}/{count}",
            outs=(sys.stdout, report) if report else (sys.stdout,),
        )
    except Exception as error:  # the database or the assignment is not usable
        print(f"worker {index}/{count} stopped: {error!r}", file=sys.stderr)
        return 2
    finally:
        if report:
            report.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
