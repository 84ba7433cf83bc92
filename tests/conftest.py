"""Shared fixtures: paths of the repository and its notebooks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# nbgrader runs `alembic` in a subprocess: the environment's bin/ must be on PATH.
os.environ["PATH"] = (
    str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Start the kernels of the instructor notebooks under a second CPU kernel.

    `make test` sets SEQBOOK_SOLUTIONS_CPU_CAPABILITY=default: nbval then runs
    `solutions/` with PyTorch's portable kernels (ATEN_CPU_CAPABILITY=default) and
    `chapters/` with this processor's own, so a claim that holds on one processor's
    rounding only cannot pass. The kernel inherits the environment when nbval starts it,
    in the set-up of the notebook's first cell; the variable is restored right after.
    """
    capability = os.environ.get("SEQBOOK_SOLUTIONS_CPU_CAPABILITY", "").strip()
    path = Path(str(item.fspath))
    if not capability or path.suffix != ".ipynb" or "solutions" not in path.parts:
        yield
        return
    previous = os.environ.get("ATEN_CPU_CAPABILITY")
    os.environ["ATEN_CPU_CAPABILITY"] = capability
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ATEN_CPU_CAPABILITY", None)
        else:
            os.environ["ATEN_CPU_CAPABILITY"] = previous


# The files that take longest (their notebooks fine-tune a model, or they grade many
# submissions), started first: `make test` hands whole files to two workers in
# collection order (--dist loadfile), so a long file collected last would leave one
# worker alone at the end. Order only; every test still runs.
LONGEST_FIRST = (
    "tests/grading/test_grading_parameter_efficient_fine_tuning.py",
    "tests/grading/test_grading_fine_tuning.py",
    "tests/grading/test_grading_postgres.py",
    "tests/grading/test_grading_hostile.py",
    "tests/grading/test_grading_gated_units.py",
    "tests/grading/test_grading_sandbox.py",
    "tests/grading/test_grading_workflow.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}

    def position(item):
        path = Path(str(item.fspath))
        if not path.is_relative_to(REPO):
            return len(rank)
        return rank.get(path.relative_to(REPO).as_posix(), len(rank))

    items.sort(key=position)  # stable: the order within a file is kept


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def solution_notebooks() -> list[Path]:
    return sorted(
        p
        for p in (REPO / "solutions").glob("*/*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


def chapter_notebooks() -> list[Path]:
    return sorted(
        p
        for p in (REPO / "chapters").glob("*/*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )
