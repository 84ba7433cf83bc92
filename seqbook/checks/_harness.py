"""The scaffolding that the section check modules share, written once.

* :func:`check` -- the decorator of every ``check_*`` function: the integrity test
  (:func:`seqbook.checks.integrity.verify`) runs before the student's code and again
  when the check's body returns; only then is the pass message it returns printed;
  :func:`verify` is that test with a check's own extra one, for use between cases;
* :func:`guarded_call` -- a call of the student's code under the "from primitives"
  guard, whose refusal names module-level aliases by their public paths;
* :func:`close_tensors`, :func:`close_numbers`, :func:`equal_tensors` -- yes-or-no
  comparisons for the diagnoses of classic mistakes (failures come from
  :mod:`seqbook.checks.core`);
* :func:`random_uniform` and :func:`masked_softmax` -- a float drawn from a check's own
  generator, and the softmax over the allowed positions (zeros for a row with none);
* :func:`restore_class` -- puts back the methods of a class that a check grades with,
  and reports the change as the integrity test does.

It is not part of :mod:`seqbook.checks.core` because it builds on the guard and the
integrity test, which both import core. Like the check modules, it is protected: a
submission that replaces one of its functions is caught by the next check.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from typing import Any, Callable, Mapping

import torch

from seqbook.checks import integrity
from seqbook.checks.core import CheckFailure, call_student, max_abs_error, passed
from seqbook.checks.guard import ForbiddenCall, forbid_calls

__all__ = [
    "check",
    "verify",
    "guarded_call",
    "close_tensors",
    "close_numbers",
    "equal_tensors",
    "random_uniform",
    "masked_softmax",
    "restore_class",
    "output_and_weights",
]


def verify(also: Callable[[], None] | None = None) -> None:
    """The integrity test, then ``also`` (a check's own test) when given."""
    integrity.verify()
    if also is not None:
        also()


def check(
    body: Callable[..., str] | None = None, *, also: Callable[[], None] | None = None
) -> Any:
    """Make ``body`` a check: ``@check`` or ``@check(also=verify_something)``.

    The check verifies the grading environment, runs ``body`` (which returns its pass
    message), verifies again, and prints the message. A failure inside ``body``
    propagates at once, without the second verification: the next check's first one
    catches any tampering then. ``also`` runs right after each verification (for
    instance, to put back a grading class's methods). Name, docstring and parameters
    are ``body``'s; the check returns ``None``.
    """

    def decorate(body: Callable[..., str]) -> Callable[..., None]:
        @functools.wraps(body)
        def run(*args: Any, **kwargs: Any) -> None:
            verify(also)
            message = body(*args, **kwargs)
            verify(also)
            passed(message)

        # The body returns its message; the check itself returns nothing.
        run.__signature__ = inspect.signature(body).replace(return_annotation="None")
        return run

    return decorate if body is None else decorate(body)


def guarded_call(
    paths: tuple[str, ...],
    reason: str,
    fn: Callable[..., Any],
    *args: Any,
    what: str,
    aliases: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """``call_student`` under ``forbid_calls(*paths, reason=reason)``.

    ``aliases`` maps module-level copies of methods (which the guard recognises by
    their code, however they are reached) to the public names that a refusal shows.
    """
    try:
        with forbid_calls(*paths, reason=reason):
            return call_student(fn, *args, what=what, **kwargs)
    except ForbiddenCall as err:
        message = str(err)
        for alias, name in (aliases or {}).items():
            message = message.replace(alias, name)
        raise ForbiddenCall(message) from None


def output_and_weights(result: Any, what: str) -> tuple[Any, Any]:
    """The ``(output, weights)`` pair an attention function returns, or a failure that
    says what came back instead."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailure(
            f"{what} should return a pair (output, weights), got "
            f"{'None' if result is None else type(result).__name__}."
        )
    return result


def close_tensors(actual: Any, expected: torch.Tensor, tolerance: float = 1e-5) -> bool:
    """``actual`` is a tensor of ``expected``'s shape, off by less than ``tolerance``
    times (1 + the largest magnitude of ``expected``); NaN is never close."""
    if not isinstance(actual, torch.Tensor) or tuple(actual.shape) != tuple(
        expected.shape
    ):
        return False
    error = max_abs_error(actual, expected)
    scale = 1.0 + float(expected.detach().abs().max())
    return error == error and error < tolerance * scale


def close_numbers(a: float, b: float, rtol: float, atol: float) -> bool:
    """``a`` is finite and within ``atol + rtol * |b|`` of the expected ``b``."""
    return math.isfinite(a) and abs(a - b) <= atol + rtol * abs(b)


def equal_tensors(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and equal everywhere."""
    return tuple(a.shape) == tuple(b.shape) and bool((a == b).all())


def random_uniform(g: torch.Generator, low: float, high: float) -> float:
    """A random float in [low, high), from the check's own generator."""
    return low + (high - low) * float(torch.rand(1, generator=g, dtype=torch.float64))


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1
) -> torch.Tensor:
    """Softmax over the positions where ``mask`` is True; a row with none gets zeros."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=dim).nan_to_num(0.0)


def restore_class(cls: type, originals: Mapping[str, Any], what: str) -> None:
    """Put back the attributes of ``cls`` that differ from ``originals`` (captured at
    import); report them as the integrity test does, ``what`` prefixing their names."""
    changed = [
        name
        for name, original in originals.items()
        if vars(cls).get(name) is not original
    ]
    for name in changed:
        setattr(cls, name, originals[name])
    if changed:
        message = (
            f"{integrity.MARKER}: the grading environment was modified "
            f"({what}{', '.join(changed)} replaced). The originals were restored and "
            "this check gives no credit."
        )
        sys.stderr.write(message + "\n")
        raise integrity.IntegrityError(message)


# A submission that replaces one of these helpers is caught by the next check that runs.
integrity.protect_module(__name__)
