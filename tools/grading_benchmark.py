"""Fabricated submissions, and a benchmark of parallel autograding.

    python tools/grading_benchmark.py                    # 12 submissions, 1 and 2 workers
    python tools/grading_benchmark.py --copies 2 --workers 1 2 4
    GRADEBOOK_URL=postgresql+psycopg2://... python tools/grading_benchmark.py  # a server
    python tools/grading_benchmark.py --workers 1 --sandbox off   # without the sandbox

Builds a temporary course with fabricated submissions of the section "Attention as a soft
dictionary lookup" (one of the fastest to grade: about 7 s a notebook here): correct,
buggy and hostile ones, the kinds of tests/test_grading.py. Then, for each worker count,
registers the assignment in a fresh PostgreSQL database (a throw-away local server from
grading/postgres.py unless GRADEBOOK_URL is set), runs `python -m grading.workers launch`, and
reports submissions graded per minute of wall-clock time.

:func:`fabricate` is also used by tests/test_grading_postgres.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ASSIGNMENT = "attention"
NOTEBOOK = "soft_lookup"
POOLING, STEP = "lookup-pooling", "lookup-training-step"
POINTS = {f"{POOLING}-tests": 4.0, f"{STEP}-tests": 3.0}

WRONG = {
    POOLING: (  # the factor 2 forgotten in the score
        "def gaussian_attention_pooling(queries, keys, values, width, mask=None):\n"
        "    scores = -((queries[:, None] - keys[None, :]) ** 2) / width**2\n"
        "    if mask is not None:\n"
        "        scores = scores.masked_fill(~mask, float('-inf'))\n"
        "    return torch.softmax(scores, dim=-1) @ values, torch.softmax(scores, dim=-1)\n"
    ),
    STEP: (  # steps before backward: the update uses stale (zero) gradients
        "def training_step(model, optimizer, queries, keys, values, targets, mask=None):\n"
        "    optimizer.zero_grad()\n"
        "    loss = F.mse_loss(model(queries, keys, values, mask), targets)\n"
        "    optimizer.step()\n"
        "    loss.backward()\n"
        "    return loss.item()\n"
    ),
}
# Right on every input of the visible check (whose keys all start at 0.0), wrong on the
# random inputs of the hidden tests: knowing the visible check is not enough.
VISIBLE_ONLY_POOLING = (
    "def gaussian_attention_pooling(queries, keys, values, width, mask=None):\n"
    "    spread = 2 * width**2 if float(keys[0]) == 0.0 else 2 * width\n"
    "    scores = -((queries[:, None] - keys[None, :]) ** 2) / spread\n"
    "    if mask is not None:\n"
    "        scores = scores.masked_fill(~mask, float('-inf'))\n"
    "    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)\n"
    "    return weights @ values, weights\n"
)
COMPARISONS_ALWAYS_TRUE = (
    "import numpy, torch\n"
    "torch.allclose = lambda *a, **k: True\n"
    "torch.equal = lambda *a, **k: True\n"
    "torch.testing.assert_close = lambda *a, **k: None\n"
    "numpy.allclose = lambda *a, **k: True\n"
)
EXCEPTIONS_SWALLOWED = (
    "def _silence(lines):\n"
    "    body = ['    ' + line for line in lines]\n"
    "    return ['try:\\n'] + body + ['\\nexcept BaseException:\\n    pass\\n']\n"
    "get_ipython().input_transformers_post.append(_silence)\n"
)
NOISY_WRAPPER = (
    "\n_quiet_pooling = gaussian_attention_pooling\n"
    "def gaussian_attention_pooling(*args, **kwargs):\n"
    "    import warnings\n"
    "    warnings.warn('this warning goes to stderr', UserWarning)\n"
    "    return _quiet_pooling(*args, **kwargs)\n"
)


def _cell(notebook, grade_id: str):
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def _solution(grade_id: str) -> str:
    source = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    return "\n".join(line for line in _cell(source, grade_id).source.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def _answered(pooling: str | None = None, step: str | None = None, prefix: str = ""):
    notebook = nbformat.read(REPO / "chapters" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    _cell(notebook, POOLING).source = prefix + (pooling or _solution(POOLING))
    _cell(notebook, STEP).source = prefix + (step or _solution(STEP))
    return notebook


def _kinds() -> list[tuple[str, object, dict[str, float]]]:
    """(name, notebook or raw text, expected autograded scores)."""
    full, none = POINTS, {name: 0.0 for name in POINTS}
    lose_pooling = {**POINTS, f"{POOLING}-tests": 0.0}
    lose_step = {**POINTS, f"{STEP}-tests": 0.0}

    edited = _answered(pooling=WRONG[POOLING])
    _cell(edited, f"{POOLING}-tests").source = "pass  # trust me"
    deleted = _answered(step=WRONG[STEP])
    deleted.cells.remove(_cell(deleted, f"{STEP}-tests"))
    inflated = _answered(pooling=WRONG[POOLING])
    for grade_id in POINTS:
        _cell(inflated, grade_id).metadata["nbgrader"]["points"] = 100
    return [
        ("solution", _answered(), full),
        ("blank", nbformat.read(REPO / "chapters" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4),
         none),
        ("bug-pooling", _answered(pooling=WRONG[POOLING]), lose_pooling),
        ("bug-step", _answered(step=WRONG[STEP]), lose_step),
        ("bug-both", _answered(WRONG[POOLING], WRONG[STEP]), none),
        ("visible-only", _answered(pooling=VISIBLE_ONLY_POOLING), lose_pooling),
        ("edited-test", edited, lose_pooling),
        ("deleted-test", deleted, lose_step),
        ("inflated-points", inflated, lose_pooling),
        ("allclose", _answered(WRONG[POOLING], WRONG[STEP], prefix=COMPARISONS_ALWAYS_TRUE),
         none),
        ("swallowing", _answered(prefix=EXCEPTIONS_SWALLOWED), none),
        ("warning", _answered(pooling=_solution(POOLING) + NOISY_WRAPPER), full),
        ("not-json", '{"cells": [ this is not a notebook', None),
    ]


def fabricate(course: Path, copies: int = 1) -> dict[str, dict[str, float] | None]:
    """Write ``copies`` of every kind of submission into ``course/submitted/``; return
    the expected autograded scores per student (None: cannot be graded)."""
    expected = {}
    for name, notebook, scores in _kinds():
        for copy in range(copies):
            student = name if copies == 1 else f"{name}-{copy}"
            target = course / "submitted" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(notebook, str):
                target.write_text(notebook, encoding="utf-8")
            else:
                nbformat.write(notebook, target)
            expected[student] = scores
    return expected


def _workers_command(command: str, course: Path, *extra: str) -> list[str]:
    # The URL may hold a password: it travels in the environment (run_workers).
    return [sys.executable, "-m", "grading.workers", command, "--course", str(course),
            "--assignment", ASSIGNMENT, "--source-dir", str(REPO / "solutions"), *extra]


def run_workers(course: Path, db_url: str, workers: int, report: Path,
                sandbox: str = "bubblewrap") -> float:
    """Register the assignment in ``db_url``, grade with ``workers`` processes, each
    kernel sandboxed or not (``sandbox``: "bubblewrap" or "off"); return the seconds the
    grading took (registration excluded)."""
    environment = dict(os.environ, OMP_NUM_THREADS="1", GRADEBOOK_URL=db_url,
                       GRADING_SANDBOX=sandbox,
                       PATH=str(Path(sys.executable).parent) + os.pathsep
                       + os.environ.get("PATH", ""))
    subprocess.run(_workers_command("prepare", course), cwd=REPO, check=True,
                   env=environment, capture_output=True, text=True)
    start = time.monotonic()
    subprocess.run(_workers_command("launch", course, "--workers", str(workers),
                                    "--report", str(report)),
                   cwd=REPO, check=True, env=environment, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    from grading import postgres

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=1,
                        help="copies of each of the 13 kinds of submission (default 1)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sandbox", choices=["bubblewrap", "off"], default="bubblewrap",
                        help="grade each kernel in the sandbox (default) or without it")
    args = parser.parse_args(argv)
    # A PostgreSQL server URL ending in a database name; each run uses a fresh database
    # beside it. From the environment, not the command line: it may hold a password.
    existing = os.environ.get("GRADEBOOK_URL")

    with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as scratch:
        scratch = Path(scratch)
        expected = fabricate(scratch / "course", args.copies)
        server = None
        if existing is None:
            server = postgres.start()  # its own folder: it may run as another user
            base = server.db_url
        else:
            base = existing
        results = []
        try:
            for count in args.workers:
                db_url = postgres.fresh_database(base, f"bench_{count}_{os.getpid()}")
                course = scratch / f"course-{count}"
                shutil.copytree(scratch / "course", course)
                report = scratch / f"report-{count}.jsonl"
                seconds = run_workers(course, db_url, count, report, args.sandbox)
                records = [json.loads(line) for line in report.read_text().splitlines()]
                graded = sum(record["success"] for record in records)
                results.append({"workers": count, "sandbox": args.sandbox,
                                "submissions": len(expected),
                                "graded": graded, "seconds": round(seconds, 1),
                                "per_minute": round(60 * len(expected) / seconds, 1)})
                print(f"{count} worker(s): {len(expected)} submissions ({graded} gradable) "
                      f"in {seconds:.1f} s = {60 * len(expected) / seconds:.1f} per minute",
                      flush=True)
        finally:
            if server is not None:
                server.stop(remove=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
