"""Claims: the sentences the text makes about a trained or random outcome, checked.

A notebook states what an experiment shows ("two heads solve the task") and checks it
with :func:`expect`. A claim that does not hold stops the notebook with a sentence that
says which statement failed, by how much, and on what kind of run, instead of a bare
``AssertionError``.

With ``SEQBOOK_CLAIMS=<file>`` in the environment every claim is also appended to that
file as one JSON line (name, value, comparison, threshold, whether it held, and the
run's seed shift, CPU kernel, threads and device). ``tools/robustness.py`` runs the
notebooks under many seeds and CPU kernels this way and writes ``back/robustness.md``
from the records. With ``SEQBOOK_CLAIMS_MODE=record`` a failed claim is recorded but
does not stop the notebook, so one run collects every claim.
"""

from __future__ import annotations

import json
import math
import operator
import os
import platform
from numbers import Real

import torch

from seqbook.runtime import seed_shift

__all__ = ["ClaimError", "expect", "expect_all", "COMPARISONS"]

COMPARISONS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class ClaimError(AssertionError):
    """A statement of the text about an experiment's outcome did not hold on this
    run."""


def _as_number(name: str, value) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(
                f"claim {name!r}: the value must be one number, got a tensor "
                f"of shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"claim {name!r}: the value must be a number, got {type(value).__name__}"
        )
    return float(value)


def _run_description() -> dict:
    return {
        "seed_shift": seed_shift(),
        "cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", "native"),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "notebook": os.environ.get("SEQBOOK_NOTEBOOK", ""),
    }


def _record(entry: dict) -> None:
    path = os.environ.get("SEQBOOK_CLAIMS")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps({**entry, **_run_description()}) + "\n")


def _fail(entry: dict, wanted: str) -> None:
    run = _run_description()
    where = (
        f"seed shift {run['seed_shift']}, CPU kernel {run['cpu_capability']}, "
        f"{run['threads']} thread(s), {'a GPU' if run['cuda'] else 'the CPU'}"
    )
    message = (
        f"The text claims that {entry['name']}, which needs {wanted}; on this run "
        f"it does not ({where}). The experiment came out differently from the "
        "book's measured range: please report this run."
    )
    if os.environ.get("SEQBOOK_CLAIMS_MODE") == "record":
        print(f"claim failed (recorded, not raised): {message}")
        return
    raise ClaimError(message)


def expect(name: str, value, comparison: str, threshold) -> float:
    """Check that ``value <comparison> threshold`` and return ``value``.

    ``name`` is the statement the text makes, written to complete "the text claims that
    ...", e.g. ``expect("two heads solve the task", accuracy, ">", 0.97)``.
    """
    if comparison not in COMPARISONS:
        raise ValueError(
            f"claim {name!r}: comparison must be one of "
            f"{', '.join(COMPARISONS)}, got {comparison!r}"
        )
    value = _as_number(name, value)
    threshold = _as_number(name, threshold)
    holds = (not math.isnan(value)) and COMPARISONS[comparison](value, threshold)
    entry = {
        "name": name,
        "value": value,
        "comparison": comparison,
        "threshold": threshold,
        "holds": holds,
    }
    _record(entry)
    if not holds:
        _fail(entry, f"a value {comparison} {threshold:.4g}, measured {value:.4g}")
    return value


def expect_all(name: str, condition: bool, detail: str = "") -> bool:
    """Check a claim that is not one number against a threshold (an ordering, a
    ranking).

    ``detail`` shows the values involved in the failure message.
    """
    if not isinstance(condition, (bool, torch.Tensor)) and condition not in (0, 1):
        raise TypeError(
            f"claim {name!r}: the condition must be true or false, got "
            f"{type(condition).__name__}"
        )
    holds = bool(condition)
    entry = {
        "name": name,
        "value": float(holds),
        "comparison": "is",
        "threshold": 1.0,
        "holds": holds,
        "detail": detail,
    }
    _record(entry)
    if not holds:
        _fail(entry, f"it to be true{f' ({detail})' if detail else ''}")
    return holds
