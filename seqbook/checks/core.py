"""Building blocks of the exercise checks: clear failures, tensor expectations,
comparison.

Every failure is a :class:`CheckFailure` whose message says in words what is wrong
(shape, dtype, ``None``, a stub that still raises ``NotImplementedError``, the largest
error and where it is), so a student reads the problem instead of decoding a bare
``AssertionError``. The functions used to compare are captured when this module is
imported, so a submission that later replaces ``torch.allclose`` or friends cannot
change a verdict.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any, Callable, Sequence

import torch

__all__ = [
    "CheckFailure",
    "call_student",
    "expect_tensor",
    "max_abs_error",
    "expect_close",
    "passed",
    "grading_generator",
    "random_int",
]

# Captured at import: the comparisons below never look these names up again.
_abs = torch.abs
_sub = torch.sub
_isnan = torch.isnan
_isfinite = torch.isfinite
_argmax = torch.argmax
_unravel = torch.unravel_index
_print = print


class CheckFailure(AssertionError):
    """A check found a mistake; the message explains it in words."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback through the checking code:
        # the message is what the student needs. It is still an error, so it scores 0.
        text = textwrap.wrap(
            f"{type(self).__name__}: {self}",
            width=76,
            subsequent_indent="  ",
            break_on_hyphens=False,
        )
        return [f"\x1b[1;31m✘\x1b[0m {text[0]}", *text[1:]]


def describe(value: Any) -> str:
    """A short description of a value for error messages."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} items"
    return f"a {type(value).__name__}"


def call_student(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn a stub or a crash into a readable failure."""
    if not callable(fn):
        raise CheckFailure(f"{what}: expected a function, got {describe(fn)}.")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise CheckFailure(
            f"{what} still raises NotImplementedError: replace the line "
            "`raise NotImplementedError()` with your code."
        ) from err
    except CheckFailure:
        raise
    except Exception as err:  # noqa: BLE001 - any crash is the student's to see
        raise CheckFailure(f"{what} raised {type(err).__name__}: {err}") from err


def expect_tensor(
    value: Any,
    name: str,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Fail with a clear message unless ``value`` is a tensor of this shape and
    dtype."""
    if value is None:
        raise CheckFailure(f"{name} is None: did you forget a `return`?")
    if not isinstance(value, torch.Tensor):
        raise CheckFailure(f"{name} should be a torch.Tensor, got {describe(value)}.")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailure(
            f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)}."
        )
    if dtype is not None and value.dtype != dtype:
        raise CheckFailure(f"{name} has dtype {value.dtype}, expected {dtype}.")
    return value


def max_abs_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference (``inf`` where one side is NaN and the other is
    not)."""
    diff = _abs(_sub(actual.detach().double(), expected.detach().double()))
    both_nan = _isnan(actual.detach()) & _isnan(expected.detach())
    diff = diff.masked_fill(both_nan, 0.0).nan_to_num(nan=float("inf"))
    return float(diff.max()) if diff.numel() else 0.0


def expect_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    name: str,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Fail unless ``actual`` matches ``expected`` elementwise; say where it differs
    most."""
    expect_tensor(actual, name, shape=expected.shape)
    a, e = actual.detach().double(), expected.detach().double()
    if bool(_isnan(a).any()) and not bool(_isnan(e).any()):
        index = tuple(
            int(i) for i in _unravel(_argmax(_isnan(a).flatten().int()), a.shape)
        )
        raise CheckFailure(
            f"{name} contains NaN (first at index {index}); expected none."
        )
    tolerance = atol + rtol * _abs(e)
    excess = (_abs(_sub(a, e)) - tolerance).nan_to_num(nan=float("inf"))
    if excess.numel() and float(excess.max()) > 0:
        worst = tuple(int(i) for i in _unravel(_argmax(excess.flatten()), a.shape))
        raise CheckFailure(
            f"{name} differs from the expected value: largest error "
            f"{max_abs_error(actual, expected):.3g} at index {worst} "
            f"(got {float(a[worst]):.6g}, expected {float(e[worst]):.6g})."
        )


def passed(message: str) -> None:
    """Report a passed check."""
    _print(f"✔ {message}")


def grading_generator(hidden: bool) -> torch.Generator:
    """The random generator of a check: seed 0 for the visible check (the same friendly
    cases every time), a fresh seed from the OS for hidden tests
    (drawn at grading time)."""
    seed = int.from_bytes(os.urandom(8), "little") if hidden else 0
    return torch.Generator().manual_seed(seed)


def random_int(g: torch.Generator, low: int, high: int) -> int:
    """A random integer in [low, high], from the check's own generator."""
    return int(torch.randint(low, high + 1, (1,), generator=g))
