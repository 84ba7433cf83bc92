"""Autograding with parallel workers that share a PostgreSQL gradebook.

A real PostgreSQL server is started on localhost in a temporary folder
(grading/postgres.py; as the system user `postgres` or `nobody` when the tests run as
root). Thirteen fabricated submissions of "Attention as a soft dictionary lookup"
(tools/grading_benchmark.py: correct, buggy, hostile -- edited, deleted and re-pointed
test cells, redefined comparisons, an exception-swallowing input transformer, a warning,
a file that is not a notebook) are autograded twice:

* sequentially, by one worker process with a SQLite gradebook (nbgrader as usual);
* by two worker processes at the same time, sharing one PostgreSQL database.

The grades must be the expected ones, and identical in both gradebooks. A fourteenth
submission, a *spy*, answers correctly and also hunts for the gradebook's credentials --
in its environment, in every process's command line and environment under ``/proc``, in
the throw-away server's files -- and tries to reach the server on the loopback: in the
sandbox (grading/sandbox.py) it finds nothing and connects nowhere. The workers receive
the URL, password included, in their environment and never on a command line.

Without PostgreSQL (initdb/pg_ctl) or its driver (psycopg2) the test is skipped with the
reason -- unless REQUIRE_POSTGRES=1 (set by .ci/run, which installs both), where it
fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import nbformat
import pytest
from grading_harness import printed_report

from grading import postgres, workers
from grading import sample_submissions as samples

COURSE_ID = "everything-is-a-mapping"


@pytest.fixture(scope="module")
def server():
    reason = postgres.unavailable_reason()
    if reason:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    # Not in pytest's temporary folder: the server may run as another user, who cannot
    # enter it.
    running = postgres.start()
    yield running
    running.stop(remove=True)


SPY = """
import glob, json, os, socket
found = [f"environment {k}" for k, v in os.environ.items() if "postgresql" in v]
for path in glob.glob("/proc/[0-9]*/cmdline") + glob.glob("/proc/[0-9]*/environ"):
    try:
        with open(path, "rb") as file:
            if b"postgresql" in file.read():
                found.append(path)
    except OSError:
        pass
ports = {5432}
for path in glob.glob("/tmp/gradebook-postgres-*/*") + \
glob.glob("/tmp/*/gradebook-postgres-*/*"):
    try:
        with open(path) as file:
            text = file.read().strip()
        found.append(path)
        if text.isdigit():
            ports.add(int(text))
    except OSError:
        pass
connected = []
for port in sorted(ports):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        connected.append(port)
    except OSError:
        pass
print("SPY-REPORT " + json.dumps({"found": found, "connected": connected}))
"""


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    template = tmp_path_factory.mktemp("submissions")
    expected = samples.fabricate(template)
    assert len(expected) >= 12
    spy = samples.answered()
    spy.cells.insert(0, nbformat.v4.new_code_cell(SPY))
    target = (
        template
        / "submitted"
        / "spy"
        / samples.ASSIGNMENT
        / f"{samples.NOTEBOOK}.ipynb"
    )
    target.parent.mkdir(parents=True)
    nbformat.write(spy, target)
    expected["spy"] = dict(samples.POINTS)
    return template, expected


def _records(report):
    return [json.loads(line) for line in report.read_text().splitlines()]


@pytest.fixture(scope="module")
def sequential_sqlite(submissions, tmp_path_factory):
    template, _ = submissions
    course = tmp_path_factory.mktemp("course-sqlite")
    shutil.copytree(template / "submitted", course / "submitted")
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    report = course / "report.jsonl"
    samples.run_workers(course, db_url, 1, report)
    return workers.scores(db_url, samples.ASSIGNMENT, COURSE_ID), _records(report)


@pytest.fixture(scope="module")
def parallel_postgres(server, submissions, tmp_path_factory):
    template, _ = submissions
    course = tmp_path_factory.mktemp("course-postgres")
    shutil.copytree(template / "submitted", course / "submitted")
    db_url = postgres.fresh_database(server.db_url, "parallel_grading")
    assert db_url.startswith("postgresql")
    report = course / "report.jsonl"
    samples.run_workers(course, db_url, 2, report)
    return (
        workers.scores(db_url, samples.ASSIGNMENT, COURSE_ID),
        _records(report),
        course,
    )


def _autograded(table, student):
    return {
        name: auto
        for name, (auto, _) in table[student][samples.NOTEBOOK].items()
        if name in samples.POINTS
    }


def test_sequential_sqlite_grades_are_the_expected_ones(submissions, sequential_sqlite):
    _, expected = submissions
    table, records = sequential_sqlite
    assert set(table) == set(expected)
    for student, scores in expected.items():
        if scores is None:  # not a notebook: nothing could be graded
            assert set(_autograded(table, student).values()) == {None}, student
        else:
            assert _autograded(table, student) == scores, student
    assert {r["student"] for r in records if not r["success"]} == {"not-json"}


def test_two_postgres_workers_give_the_same_grades(
    sequential_sqlite, parallel_postgres
):
    assert parallel_postgres[0] == sequential_sqlite[0]


def test_two_workers_really_ran_in_parallel(submissions, parallel_postgres):
    _, expected = submissions
    _, records, course = parallel_postgres
    assert sorted(r["student"] for r in records) == sorted(expected)  # each graded once
    by_worker = {}
    for record in records:
        by_worker.setdefault((record["worker"], record["pid"]), []).append(record)
    assert sorted(worker for worker, _ in by_worker) == ["0/2", "1/2"]
    assert len({pid for _, pid in by_worker}) == 2  # two processes
    shares = list(by_worker.values())
    assert all(len(share) >= len(expected) // 2 for share in shares)
    # Their grading intervals overlap: both wrote to the gradebook at the same time.
    first, second = (
        [min(r["start"] for r in s), max(r["end"] for r in s)] for s in shares
    )
    assert max(first[0], second[0]) < min(first[1], second[1])
    assert {r["student"] for r in records if not r["success"]} == {"not-json"}
    graded = course / "autograded"
    assert sorted(p.name for p in graded.iterdir()) == sorted(
        set(expected) - {"not-json"}
    )


def test_shares_split_every_student_exactly_once():
    students = [f"s{i:02d}" for i in range(11)] + ["s03"]
    parts = [workers.share(students, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(set(students))
    assert [len(p) for p in parts] == [4, 4, 3]
    with pytest.raises(ValueError):
        workers.share(students, 3, 3)


def spy_report(course) -> dict:
    return printed_report(
        course
        / "autograded"
        / "spy"
        / samples.ASSIGNMENT
        / f"{samples.NOTEBOOK}.ipynb",
        "SPY-REPORT ",
    )


def test_a_submission_finds_no_credentials_and_cannot_reach_the_database(
    server, parallel_postgres
):
    report = spy_report(parallel_postgres[2])
    assert report == {"found": [], "connected": []}
    assert (
        server.password
        not in (parallel_postgres[2] / "autograded" / "spy")
        .joinpath(samples.ASSIGNMENT, f"{samples.NOTEBOOK}.ipynb")
        .read_text()
    )


def test_the_spy_finds_the_credentials_where_nothing_sandboxes_it(server):
    """The control: the same code run as a plain process of this machine finds the
    server's password file and reaches the server, so the sandboxed result means
    something."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", SPY],
        capture_output=True,
        text=True,
        env=dict(os.environ, GRADEBOOK_URL=server.db_url),
        timeout=60,
    )
    report = json.loads(done.stdout.split("SPY-REPORT ", 1)[1])
    assert "environment GRADEBOOK_URL" in report["found"]
    assert any(path.endswith("/password") for path in report["found"])
    assert server.port in report["connected"]


def test_workers_get_the_gradebook_url_in_their_environment_not_their_command_line(
    monkeypatch, tmp_path
):
    url = "postgresql+psycopg2://grader:hunter2@127.0.0.1:5999/gradebook"
    started = []

    class Process:
        def __init__(self, command, **options):
            started.append((command, options["env"]))

        def wait(self):
            return 0

    monkeypatch.setattr(workers.subprocess, "Popen", Process)
    monkeypatch.setenv("GRADEBOOK_URL", url)
    (tmp_path / "submitted" / "ada" / "attention").mkdir(parents=True)
    assert (
        workers.main(
            [
                "launch",
                "--course",
                str(tmp_path),
                "--assignment",
                "attention",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert len(started) == 2
    for command, environment in started:
        assert not any("hunter2" in argument for argument in command)
        assert environment["GRADEBOOK_URL"] == url


def test_a_password_on_the_command_line_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        workers.main(
            [
                "scores",
                "--course",
                str(tmp_path),
                "--assignment",
                "attention",
                "--db",
                "postgresql+psycopg2://grader:hunter2@127.0.0.1/gradebook",
            ]
        )
    assert "GRADEBOOK_URL" in capsys.readouterr().err
    loose = tmp_path / "url"
    loose.write_text("postgresql+psycopg2://grader:hunter2@127.0.0.1/gradebook")
    loose.chmod(0o644)
    with pytest.raises(SystemExit):
        workers.main(
            [
                "scores",
                "--course",
                str(tmp_path),
                "--assignment",
                "attention",
                "--db-file",
                str(loose),
            ]
        )
    assert "chmod 600" in capsys.readouterr().err
