"""Shared fixtures: paths of the repository and its notebooks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# tools/ is not a package that gets installed; tests import it from the checkout.
sys.path.insert(0, str(REPO / "tools"))
# nbgrader runs `alembic` in a subprocess: the environment's bin/ must be on PATH.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def solution_notebooks() -> list[Path]:
    return sorted(p for p in (REPO / "solutions").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def chapter_notebooks() -> list[Path]:
    return sorted(p for p in (REPO / "chapters").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
