"""Autograding with parallel workers that share a PostgreSQL gradebook.

A real PostgreSQL server is started on localhost in a temporary folder (grading/postgres.py;
as the system user `postgres` or `nobody` when the tests run as root). Thirteen fabricated
submissions of "Attention as a soft dictionary lookup" (tools/grading_benchmark.py:
correct, buggy, hostile -- edited, deleted and re-pointed test cells, redefined
comparisons, an exception-swallowing input transformer, a warning, a file that is not a
notebook) are autograded twice:

* sequentially, by one worker process with a SQLite gradebook (nbgrader as usual);
* by two worker processes at the same time, sharing one PostgreSQL database.

The grades must be the expected ones, and identical in both gradebooks.

Without PostgreSQL (initdb/pg_ctl) or its driver (psycopg2) the test is skipped with the
reason -- unless REQUIRE_POSTGRES=1 (set by .ci/run, which installs both), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO))
import grading_benchmark as bench  # noqa: E402  (tools/ is on sys.path, see conftest)
from grading import postgres, workers  # noqa: E402

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


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    template = tmp_path_factory.mktemp("submissions")
    expected = bench.fabricate(template)
    assert len(expected) >= 12
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
    bench.run_workers(course, db_url, 1, report)
    return workers.scores(db_url, bench.ASSIGNMENT, COURSE_ID), _records(report)


@pytest.fixture(scope="module")
def parallel_postgres(server, submissions, tmp_path_factory):
    template, _ = submissions
    course = tmp_path_factory.mktemp("course-postgres")
    shutil.copytree(template / "submitted", course / "submitted")
    db_url = postgres.fresh_database(server.db_url, "parallel_grading")
    assert db_url.startswith("postgresql")
    report = course / "report.jsonl"
    bench.run_workers(course, db_url, 2, report)
    return workers.scores(db_url, bench.ASSIGNMENT, COURSE_ID), _records(report), course


def _autograded(table, student):
    return {name: auto for name, (auto, _) in table[student][bench.NOTEBOOK].items()
            if name in bench.POINTS}


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


def test_two_postgres_workers_give_the_same_grades(sequential_sqlite, parallel_postgres):
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
    first, second = ([min(r["start"] for r in s), max(r["end"] for r in s)] for s in shares)
    assert max(first[0], second[0]) < min(first[1], second[1])
    assert {r["student"] for r in records if not r["success"]} == {"not-json"}
    graded = course / "autograded"
    assert sorted(p.name for p in graded.iterdir()) == sorted(set(expected) - {"not-json"})


def test_shares_split_every_student_exactly_once():
    students = [f"s{i:02d}" for i in range(11)] + ["s03"]
    parts = [workers.share(students, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(set(students))
    assert [len(p) for p in parts] == [4, 4, 3]
    with pytest.raises(ValueError):
        workers.share(students, 3, 3)
