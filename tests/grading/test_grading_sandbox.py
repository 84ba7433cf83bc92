"""Grading in an operating-system sandbox: a submission sees only itself
(grading/sandbox.py).

Hostile submissions of the pilot section ("Scaled dot-product attention"), autograded
for real in a course laid out as the instructors' guide sets it up -- the instructor's
``solutions/`` and the SQLite gradebook in the course directory, classmates' submissions
and feedback beside the attacker's:

* a *thief* whose answer cells read the instructor's solution notebook (walking up from
  its folder, and at its absolute path) and ``exec`` the matching solution;
* a *vandal* with one extra cell that rewrites the gradebook (classmates' scores to 0,
  its own to full marks), reads and overwrites a classmate's submission and feedback,
  looks for the grader's secrets in its environment and in ``/proc``, connects to a port
  listening on the grader's loopback, and leaves a detached process and files behind.

Each is graded twice: in the sandbox, where it must gain nothing and change nothing
outside its own folder, and -- the control that shows each attack is real, so that the
test could fail -- with the sandbox off (GRADING_SANDBOX=off), where it succeeds. The
PostgreSQL gradebook's credentials are attacked in
tests/grading/test_grading_postgres.py. Without the sandbox, grading must refuse with a
message naming the reason and the opt-out.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import threading
import uuid
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from grading_harness import autograde, cell_with_id, course_fixture, printed_report
from test_grading_scaled_dot_product_attention import SECTION

from grading import sandbox

pytestmark = pytest.mark.skipif(
    sandbox._probe() is not None and os.environ.get("REQUIRE_SANDBOX") != "1",
    reason=f"no sandbox here: {sandbox._probe()}",
)

SCRATCH = Path(os.environ.get("TMPDIR", "/tmp")) / f"grading-sandbox-test-{os.getpid()}"
# The sandbox is set here, not read from GRADING_SANDBOX: these tests are about it.
course = course_fixture(
    SECTION,
    GuardedExecute={"sandbox": "bubblewrap"},
    SandboxedKernelManager={"scratch_parent": str(SCRATCH)},
)

SECRET = "grader-secret-" + uuid.uuid4().hex  # in the grader's environment only
MARKER = "left-behind-" + uuid.uuid4().hex  # names what the vandal leaves behind
SOLUTION = Path("solutions") / SECTION.assignment / f"{SECTION.notebook}.ipynb"
FULL = SECTION.full_marks_except()
NOTHING = SECTION.full_marks_except(*SECTION.points)


# -- the attacks ----------------------------------------------------------------------

STEAL = '''
import json as _json, os as _os

def _solution_of(grade_id, known={known!r}, relative={relative!r}):
    """The instructor's code for ``grade_id``, from solutions/ \
wherever it can be found."""
    candidates, folder = [known], _os.getcwd()
    while True:
        candidates.append(_os.path.join(folder, relative))
        if _os.path.dirname(folder) == folder:
            break
        folder = _os.path.dirname(folder)
    for path in candidates:
        try:
            with open(path) as file:
                cells = _json.load(file)["cells"]
        except OSError:
            continue
        for cell in cells:
            if cell["metadata"].get("nbgrader", {{}}).get("grade_id") == grade_id:
                return "".join(cell["source"])
    print("the solutions were not found")
    return ""

exec(_solution_of({grade_id!r}), globals())
'''

VANDAL = """
import glob, json, os, socket, sqlite3, subprocess, sys
report = {{"own folder": sorted(os.listdir("."))}}
course, me = {course!r}, {student!r}

# (b) the gradebook: classmates to 0, myself to full marks.
try:
    db = sqlite3.connect("file:" + os.path.join(course, "gradebook.db") + "?mode=rw", \
uri=True)
    mine = ("SELECT sn.id FROM submitted_notebook sn JOIN submitted_assignment sa "
            "ON sn.assignment_id = sa.id WHERE sa.student_id")
    db.execute(\
f"UPDATE grade SET manual_score = 0 WHERE notebook_id IN ({{mine}} != ?)", (me,))
    db.execute(\
f"UPDATE grade SET manual_score = 100 WHERE notebook_id IN ({{mine}} = ?)", (me,))
    db.commit()
    report["gradebook"] = "rewritten"
except Exception as error:
    report["gradebook"] = repr(error)

# (c) a classmate's submission and feedback: read, then overwrite.
report["classmate"] = {{}}
for pattern in ("submitted/*/*/*.ipynb", "feedback/*/*/*.html"):
    for path in glob.glob(os.path.join(course, pattern)):
        if f"/{{me}}/" in path:
            continue
        try:
            with open(path) as file:
                text = file.read()
            with open(path, "w") as file:
                file.write("{{}}")
            report["classmate"][path] = f"read {{len(text)}} characters, overwrote"
        except Exception as error:
            report["classmate"][path] = repr(error)

# (d, in part) the grader's secrets, in my environment and in every process's.
found = [f"environment {{k}}" for k, v in os.environ.items() if {secret!r} in v]
for path in glob.glob("/proc/[0-9]*/cmdline") + glob.glob("/proc/[0-9]*/environ"):
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        continue
    if {secret!r}.encode() in data or b"pytest" in data:
        found.append(path)
report["secrets"] = found
report["processes"] = len(glob.glob("/proc/[0-9]*"))

# (e) the grader's loopback.
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=3) as connection:
        connection.sendall(b"hello from the submission")
    report["network"] = "connected"
except OSError as error:
    report["network"] = repr(error)

# (f) a process and files that outlive grading.
subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(0.5)",
                  {marker!r}], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for folder in (".", "/tmp", course):
    try:
        with open(os.path.join(folder, {marker!r}), "w") as file:
            file.write("still here")
    except OSError:
        pass
print("ATTACK-REPORT " + json.dumps(report))
"""


def thief() -> nbformat.NotebookNode:
    """The student version, each answer cell replaced by code that steals its
    solution."""
    notebook = SECTION.student_version()
    for grade_id in SECTION.answers.values():
        cell_with_id(notebook, grade_id).source = STEAL.format(
            known=str(REPO / SOLUTION), relative=str(SOLUTION), grade_id=grade_id
        )
    return notebook


def vandal(course, student: str, port: int) -> nbformat.NotebookNode:
    """The unanswered student version with one extra cell of attacks, first."""
    notebook = SECTION.student_version()
    code = VANDAL.format(
        course=str(course.root),
        student=student,
        secret=SECRET,
        port=port,
        marker=MARKER,
    )
    notebook.cells.insert(0, nbformat.v4.new_code_cell(code))
    return notebook


# -- what the grader sees -----------------------------------------------------------


class Listener:
    """A TCP port on the grader's loopback that counts the connections it accepts."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.socket.close()


def processes_with(marker: str) -> list[int]:
    """Process ids of this machine whose command line contains ``marker``."""
    pids = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in path.read_bytes():
                pids.append(int(path.parent.name))
        except OSError:
            continue
    return [pid for pid in pids if pid != os.getpid()]


def final_scores(course, student: str) -> dict[str, float]:
    """Scores as the gradebook reports them (a manual score overrides the autograded
    one)."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(
            SECTION.notebook, SECTION.assignment, student
        )
        return {
            grade.name: grade.score
            for grade in notebook.grades
            if grade.name in SECTION.points
        }


def attack_report(course, student: str) -> dict:
    path = (
        course.root
        / "autograded"
        / student
        / SECTION.assignment
        / f"{SECTION.notebook}.ipynb"
    )
    return printed_report(path, "ATTACK-REPORT ")


@contextlib.contextmanager
def sandbox_off(course):
    course.api.config.GuardedExecute.sandbox = "off"
    try:
        yield
    finally:
        course.api.config.GuardedExecute.sandbox = "bubblewrap"


def snapshot(course) -> dict[str, bytes]:
    """Every file of the course except the attacker's own and the gradebook."""
    files = {}
    for path in sorted(course.root.rglob("*")):
        if path.is_file() and path.name != "gradebook.db":
            files[str(path.relative_to(course.root))] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def graded(course):
    """Grade a classmate, then the thief and the vandal in the sandbox, then both again
    with the sandbox off; return what was seen after each stage."""
    SCRATCH.mkdir(exist_ok=True)
    (course.root / SOLUTION).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / SOLUTION, course.root / SOLUTION)  # solutions/ in the course
    saved_secret = os.environ.get("GRADEBOOK_URL")
    os.environ["GRADEBOOK_URL"] = f"postgresql+psycopg2://grader:{SECRET}@127.0.0.1/db"
    listener = Listener()
    seen = {}
    try:
        assert autograde(SECTION, course, "classmate", SECTION.solution_path) == FULL
        feedback = course.root / "feedback" / "classmate" / SECTION.assignment
        feedback.mkdir(parents=True)
        (feedback / f"{SECTION.notebook}.html").write_text("<p>9 of 9</p>")
        before = snapshot(course)

        seen["thief"] = autograde(SECTION, course, "thief", thief())
        seen["vandal"] = autograde(
            SECTION, course, "vandal", vandal(course, "vandal", listener.port)
        )
        seen["vandal report"] = attack_report(course, "vandal")
        seen["classmate after"] = final_scores(course, "classmate")
        seen["vandal final"] = final_scores(course, "vandal")
        seen["connections"] = listener.accepted
        seen["left processes"] = processes_with(MARKER)
        seen["scratch left"] = sorted(p.name for p in SCRATCH.iterdir())
        after = snapshot(course)
        seen["changed files"] = sorted(
            name
            for name in set(before) | set(after)
            if before.get(name) != after.get(name)
            and not re.match(r"(submitted|autograded)/(thief|vandal)/", name)
        )
        seen["marker files"] = sorted(
            str(p)
            for p in [
                Path("/tmp") / MARKER,
                course.root / MARKER,
                *course.root.glob(f"autograded/*/*/{MARKER}"),
            ]
            if p.exists()
        )

        with sandbox_off(course):  # the control: the same attacks, unsandboxed
            seen["control thief"] = autograde(SECTION, course, "thief-2", thief())
            seen["control vandal"] = autograde(
                SECTION, course, "vandal-2", vandal(course, "vandal-2", listener.port)
            )
        seen["control report"] = attack_report(course, "vandal-2")
        seen["control classmate after"] = final_scores(course, "classmate")
        seen["control vandal final"] = final_scores(course, "vandal-2")
        seen["control connections"] = listener.accepted
        seen["control left processes"] = processes_with(MARKER)
        seen["control metadata"] = nbformat.read(
            course.root
            / "autograded"
            / "vandal-2"
            / SECTION.assignment
            / f"{SECTION.notebook}.ipynb",
            as_version=4,
        ).metadata.get("seqbook_grading")
    finally:
        listener.close()
        for pid in processes_with(MARKER):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            (Path("/tmp") / MARKER).unlink()
        shutil.rmtree(SCRATCH, ignore_errors=True)
        if saved_secret is None:
            os.environ.pop("GRADEBOOK_URL", None)
        else:
            os.environ["GRADEBOOK_URL"] = saved_secret
    return seen


# -- (a) the instructor's solutions ---------------------------------------------------


def test_reading_the_solutions_gains_nothing(graded):
    assert graded["thief"] == NOTHING
    assert graded["control thief"] == FULL  # unsandboxed, the theft works


# -- (b) the gradebook ----------------------------------------------------------------


def test_rewriting_the_gradebook_changes_nothing(graded):
    report = graded["vandal report"]
    assert report["gradebook"] != "rewritten", report["gradebook"]
    assert graded["classmate after"] == FULL
    assert graded["vandal"] == NOTHING and graded["vandal final"] == NOTHING
    # Unsandboxed, the same cell drops the classmate to 0 and gives itself full marks.
    assert graded["control report"]["gradebook"] == "rewritten"
    assert set(graded["control classmate after"].values()) == {0}
    assert set(graded["control vandal final"].values()) == {100}


# -- (c) other students' files ---------------------------------------------------------


def test_classmates_submissions_and_feedback_are_out_of_reach(graded):
    assert (
        graded["vandal report"]["classmate"] == {}
    )  # nothing of theirs is even visible
    assert graded["changed files"] == []
    assert f"{SECTION.notebook}.ipynb" in graded["vandal report"]["own folder"]
    control = graded["control report"]["classmate"]
    assert any(
        "/submitted/classmate/" in path and "overwrote" in result
        for path, result in control.items()
    )
    assert any(
        "/feedback/classmate/" in path and "overwrote" in result
        for path, result in control.items()
    )


# -- (d) secrets in the environment and in /proc ---------------------------------------


def test_the_graders_secrets_and_processes_are_invisible(graded):
    assert graded["vandal report"]["secrets"] == []
    assert (
        graded["vandal report"]["processes"] <= 4
    )  # bwrap's init, the kernel, children
    assert any(
        found.startswith("environment") for found in graded["control report"]["secrets"]
    )


# -- (e) the network -------------------------------------------------------------------


def test_the_graders_loopback_cannot_be_reached(graded):
    assert "refused" in graded["vandal report"]["network"].lower()
    assert graded["connections"] == 0
    assert graded["control report"]["network"] == "connected"
    assert graded["control connections"] >= 1


# -- (f) what outlives grading ---------------------------------------------------------


def test_nothing_outlives_grading(graded):
    assert graded["left processes"] == []
    assert graded["marker files"] == []
    assert graded["scratch left"] == []
    assert graded["control left processes"]  # unsandboxed, the process survives


def test_grading_without_the_sandbox_is_recorded_for_the_report(graded, course):
    from grading import report

    assert graded["control metadata"] == {"sandbox": "off"}
    unsandboxed = report.graded_without_sandbox(course.root, [SECTION.assignment])
    assert f"vandal-2/{SECTION.assignment}/{SECTION.notebook}" in unsandboxed
    assert f"vandal/{SECTION.assignment}/{SECTION.notebook}" not in unsandboxed


# -- failing closed --------------------------------------------------------------------


def test_grading_refuses_where_the_sandbox_cannot_be_made(course, monkeypatch):
    monkeypatch.setattr(sandbox, "BUBBLEWRAP", "bwrap-which-is-not-installed")
    target = course.root / "submitted" / "refused" / SECTION.assignment
    target.mkdir(parents=True)
    shutil.copy(SECTION.solution_path, target / f"{SECTION.notebook}.ipynb")
    result = course.api.autograde(
        SECTION.assignment, "refused", force=True, create=True
    )
    assert not result["success"]
    message = result.get("log", "") + str(result.get("error", ""))
    assert "refuses to run submissions outside a sandbox" in message
    assert "bubblewrap" in message and "GRADING_SANDBOX=off" in message
    assert not (
        course.root
        / "autograded"
        / "refused"
        / SECTION.assignment
        / f"{SECTION.notebook}.ipynb"
    ).exists()


def test_the_sandbox_passes_only_harmless_variables():
    arguments = sandbox.bubblewrap_arguments(
        "/private",
        "/sockets",
        {
            "GRADEBOOK_URL": "postgresql://x:y@h/d",
            "AWS_TOKEN": "t",
            "OMP_NUM_THREADS": "1",
            "JPY_PARENT_PID": "7",
        },
    )
    assert "--clearenv" in arguments and "--unshare-all" in arguments
    variables = {
        arguments[i + 1]: arguments[i + 2]
        for i, a in enumerate(arguments)
        if a == "--setenv"
    }
    assert variables["OMP_NUM_THREADS"] == "1"
    assert not {"GRADEBOOK_URL", "AWS_TOKEN", "JPY_PARENT_PID"} & set(variables)
    assert str(REPO) not in [
        arguments[i + 1]
        for i, a in enumerate(arguments)
        if a in ("--bind", "--ro-bind")
    ]  # never the course itself
