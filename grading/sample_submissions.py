"""Fabricated submissions of every kind, to check a grading installation end to end.

:func:`fabricate` writes submissions of the section "Attention as a soft dictionary
lookup" (one of the fastest to grade: about 7 s a notebook) into a course's
``submitted/`` folder -- correct, blank, buggy and hostile ones, the kinds of
tests/grading/test_grading_scaled_dot_product_attention.py -- and returns the scores
each must get; :func:`run_workers` registers the assignment in a gradebook and grades
them with ``python -m grading.workers``. Used by tests/grading/test_grading_postgres.py
and tools/grading_benchmark.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from grading.notebook_cells import cell_with_id, solution_code

REPO = Path(__file__).resolve().parent.parent

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
        "    return torch.softmax(scores, dim=-1) @ values, "
        "torch.softmax(scores, dim=-1)\n"
    ),
    STEP: (  # steps before backward: the update uses stale (zero) gradients
        "def training_step(model, optimizer, queries, keys, values, targets, "
        "mask=None):\n"
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


def _solution(grade_id: str) -> str:
    source = nbformat.read(REPO / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    return solution_code(cell_with_id(source, grade_id))


def answered(pooling: str | None = None, step: str | None = None, prefix: str = ""):
    notebook = nbformat.read(REPO / "chapters" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    cell_with_id(notebook, POOLING).source = prefix + (pooling or _solution(POOLING))
    cell_with_id(notebook, STEP).source = prefix + (step or _solution(STEP))
    return notebook


def _kinds() -> list[tuple[str, object, dict[str, float]]]:
    """(name, notebook or raw text, expected autograded scores)."""
    full, none = POINTS, {name: 0.0 for name in POINTS}
    lose_pooling = {**POINTS, f"{POOLING}-tests": 0.0}
    lose_step = {**POINTS, f"{STEP}-tests": 0.0}

    edited = answered(pooling=WRONG[POOLING])
    cell_with_id(edited, f"{POOLING}-tests").source = "pass  # trust me"
    deleted = answered(step=WRONG[STEP])
    deleted.cells.remove(cell_with_id(deleted, f"{STEP}-tests"))
    inflated = answered(pooling=WRONG[POOLING])
    for grade_id in POINTS:
        cell_with_id(inflated, grade_id).metadata["nbgrader"]["points"] = 100
    return [
        ("solution", answered(), full),
        (
            "blank",
            nbformat.read(REPO / "chapters" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4),
            none,
        ),
        ("bug-pooling", answered(pooling=WRONG[POOLING]), lose_pooling),
        ("bug-step", answered(step=WRONG[STEP]), lose_step),
        ("bug-both", answered(WRONG[POOLING], WRONG[STEP]), none),
        ("visible-only", answered(pooling=VISIBLE_ONLY_POOLING), lose_pooling),
        ("edited-test", edited, lose_pooling),
        ("deleted-test", deleted, lose_step),
        ("inflated-points", inflated, lose_pooling),
        (
            "allclose",
            answered(WRONG[POOLING], WRONG[STEP], prefix=COMPARISONS_ALWAYS_TRUE),
            none,
        ),
        ("swallowing", answered(prefix=EXCEPTIONS_SWALLOWED), none),
        ("warning", answered(pooling=_solution(POOLING) + NOISY_WRAPPER), full),
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
    return [
        sys.executable,
        "-m",
        "grading.workers",
        command,
        "--course",
        str(course),
        "--assignment",
        ASSIGNMENT,
        "--source-dir",
        str(REPO / "solutions"),
        *extra,
    ]


def run_workers(
    course: Path, db_url: str, workers: int, report: Path, sandbox: str = "bubblewrap"
) -> float:
    """Register the assignment in ``db_url``, grade with ``workers`` processes, each
    kernel sandboxed or not (``sandbox``: "bubblewrap" or "off"); return the seconds the
    grading took (registration excluded)."""
    environment = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        GRADEBOOK_URL=db_url,
        GRADING_SANDBOX=sandbox,
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    subprocess.run(
        _workers_command("prepare", course),
        cwd=REPO,
        check=True,
        env=environment,
        capture_output=True,
        text=True,
    )
    start = time.monotonic()
    subprocess.run(
        _workers_command(
            "launch", course, "--workers", str(workers), "--report", str(report)
        ),
        cwd=REPO,
        check=True,
        env=environment,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - start
