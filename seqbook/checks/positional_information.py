"""Checks for the exercises of the section "Positional information".

* :func:`check_sinusoidal_positional_encoding` -- ``sinusoidal_positional_encoding(
  num_positions, dim)``: a float32 ``(num_positions, dim)`` tensor with
  ``PE[t, 2i] = sin(t / 10000^(2i/dim))`` and ``PE[t, 2i+1] = cos(t / 10000^(2i/dim))``,
  odd ``dim`` included (the last column is then a sine). Compared with
  :func:`seqbook.models.attention.sinusoidal_positional_encoding`, which is disabled
  while the student's code runs.
* :func:`check_shift_matrix` -- ``shift_matrix(k, dim)``: the float32 block-diagonal
  rotation ``M_k`` with ``PE[t + k] = PE[t] @ M_k``, a ``ValueError`` for odd ``dim``.
  Compared with :func:`seqbook.models.positional_information.shift_matrix`, disabled
  while the student's code runs.

The classic mistakes are recognised and named: sine and cosine swapped, an exponent
``i/dim`` (pair index) or ``j/dim`` (column index) instead of ``2i/dim``, the exponent
doubled, frequencies multiplied instead of divided, halves ``[sin | cos]`` instead of
interleaved pairs, positions counted from 1, another base than 10000, float64, a crash
or a wrong shape for an odd ``dim``; for the shift matrix, the rotation transposed
(which shifts by ``-k``), wrong frequencies, the angle ``k`` without the frequencies,
the angle without ``k``, the halves layout, and no ``ValueError`` for odd ``dim``.

``hidden=False`` is the friendly visible check; ``hidden=True`` draws sizes and shifts
at grading time from a fresh random seed, and computes the expected answers with the
reference inside the check.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from seqbook.checks import integrity
from seqbook.checks._harness import check
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    describe,
    expect_close,
    expect_tensor,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import ForbiddenCall, existing_paths, forbid_calls
from seqbook.models import attention as _attention_module
from seqbook.models import positional_information as _positional_module

__all__ = ["check_sinusoidal_positional_encoding", "check_shift_matrix"]

# Captured at import, before any student code can touch the modules.
_reference_encoding = _attention_module.sinusoidal_positional_encoding
_reference_shift = _positional_module.shift_matrix

_ENCODING_BUILTIN = existing_paths(
    ("seqbook.models.attention.sinusoidal_positional_encoding",)
)
_SHIFT_BUILTIN = existing_paths(("seqbook.models.positional_information.shift_matrix",))
_TOLERANCE = 1e-4  # float32 angles up to ~200 radians are accurate to ~1e-5


# ------------------------------------------------------------ the encodings' variants


def _encoding_variant(
    num_positions: int, dim: int, kind: str = "correct", base: float = 10000.0
) -> torch.Tensor:
    """The encodings as a classic mistake computes them, in float64."""
    start = 1 if kind == "start_at_one" else 0
    t = torch.arange(start, start + num_positions, dtype=torch.float64)[
        :, None
    ]  # (T, 1)
    column = torch.arange(dim, dtype=torch.float64)  # (dim,)
    pair = torch.div(column, 2, rounding_mode="floor")  # i of column 2i and 2i + 1
    exponent = {
        "pair_index": pair / dim,  # i/dim instead of 2i/dim
        "column_index": column / dim,  # each column its own frequency
        "double_exponent": 4 * pair / dim,  # 2j/dim with j = 2i already even
    }.get(kind, 2 * pair / dim)
    frequency = base**-exponent  # (dim,)
    if kind == "multiply":
        frequency = base**exponent
    angles = t * frequency  # (T, dim)
    is_sine = column % 2 == 0
    if kind == "swapped":
        is_sine = ~is_sine
    encoding = torch.where(is_sine, torch.sin(angles), torch.cos(angles))
    if kind == "halves":  # [sin of every pair | cos of every pair]
        n_sines = (dim + 1) // 2
        pair_angles = t * base ** -(
            2 * torch.arange(n_sines, dtype=torch.float64) / dim
        )
        encoding = torch.cat(
            (torch.sin(pair_angles), torch.cos(pair_angles[:, : dim // 2])), dim=1
        )
    return encoding


_ENCODING_MISTAKES = {
    "swapped": "sine and cosine are swapped: even columns 2i hold the sines, odd "
    "columns 2i+1 the cosines",
    "pair_index": "the exponent is i/dim with i the pair index; it must be 2i/dim, so "
    "the frequencies run from 1 down to about 1/10000",
    "column_index": "each column has its own frequency 1/10000^(j/dim) "
    "(j = column index), so the cosine in column 2i+1 does not share the frequency "
    "1/10000^(2i/dim) of its sine partner in column 2i. Use the even index 2i for both "
    "columns of a pair",
    "double_exponent": "the exponent is doubled: with even column indices j = 0, 2, 4, "
    "... (torch.arange(0, dim, 2)) the exponent is j/dim, not 2j/dim",
    "multiply": "the positions are multiplied by 10000^(2i/dim) instead of divided by "
    "it: the frequencies must decrease from 1 to about 1/10000",
    "halves": "the sines and cosines are concatenated as [sin | cos] halves; they must "
    "be interleaved: column 2i holds sin and column 2i+1 holds cos of the same angle",
    "start_at_one": "the positions start at 1; the first position is t = 0, so the "
    "first row is [0, 1, 0, 1, ...]",
}


def _estimated_base(encoding: torch.Tensor, dim: int) -> float | None:
    """The base that the student's frequency of pair 1 implies, if it can be read."""
    if dim < 3 or encoding.shape[0] < 2:
        return None
    value = float(encoding[1, 2])  # sin(w_1) at t = 1, with w_1 = base^(-2/dim)
    if not 0.0 < value < 1.0:
        return None
    return math.asin(value) ** (-dim / 2)


def _moderate_columns(largest_angle: torch.Tensor) -> torch.Tensor | None:
    """Columns whose angles stay small enough for float32 to compute them to ~1e-4.

    Multiplying instead of dividing by the frequencies makes angles of 10^5 radians
    and more, whose float32 sines are rounding noise; such columns cannot be compared.
    ``None`` when too few columns are left to tell the mistake apart (pair 0 is the same
    in every variant)."""
    moderate = largest_angle <= 3000.0
    return moderate if int(moderate.sum()) >= 3 else None


def _diagnose_encoding(
    encoding: torch.Tensor, num_positions: int, dim: int
) -> str | None:
    encoding = encoding.detach().double()
    for kind, mistake in _ENCODING_MISTAKES.items():
        variant = _encoding_variant(num_positions, dim, kind)
        if kind == "multiply":
            pair = torch.div(torch.arange(dim), 2, rounding_mode="floor")
            columns = _moderate_columns(num_positions * 10000.0 ** (2 * pair / dim))
            if columns is None:
                continue
            encoding_part, variant = encoding[:, columns], variant[:, columns]
            if max_abs_error(encoding_part, variant) < 2e-3:
                return mistake
        elif max_abs_error(encoding, variant) < _TOLERANCE:
            return mistake
    base = _estimated_base(encoding, dim)
    if base is not None and abs(base - 10000.0) > 1.0:
        variant = _encoding_variant(num_positions, dim, "correct", base=base)
        if max_abs_error(encoding, variant) < 1e-3:
            return (
                f"the base of the frequencies looks like {base:.4g}, not 10000: "
                "w_i = 1 / 10000^(2i/dim)"
            )
    return None


def _odd_hint(dim: int) -> str:
    if dim % 2 == 0:
        return ""
    return (
        f" With an odd dim ({dim}) there are {(dim + 1) // 2} sine columns but only "
        f"{dim // 2} cosine columns: the last column is a sine without its cosine "
        "partner (e.g. use only the first dim // 2 angles for the cosines)."
    )


def _encoding_case(fn: Callable[..., Any], num_positions: int, dim: int) -> None:
    what = f"sinusoidal_positional_encoding({num_positions}, {dim})"
    try:
        with forbid_calls(
            *_ENCODING_BUILTIN, reason="write the encodings yourself with sin and cos."
        ):
            encoding = call_student(fn, num_positions, dim, what=what)
    except ForbiddenCall:
        raise
    except CheckFailure as failure:
        raise CheckFailure(f"{failure}{_odd_hint(dim)}") from failure
    expected = _reference_encoding(num_positions, dim)
    expect_tensor(encoding, what)
    if tuple(encoding.shape) != (num_positions, dim):
        raise CheckFailure(
            f"{what} has shape {tuple(encoding.shape)}, expected "
            f"{(num_positions, dim)}: one row per position, one column per "
            f"feature.{_odd_hint(dim)}"
        )
    if encoding.dtype != torch.float32:
        hint = ""
        if encoding.dtype == torch.float64:
            hint = (
                " float64 usually comes from math/NumPy values or "
                "torch.tensor(list_of_python_floats, dtype=torch.float64); the "
                "encodings are added to float32 embeddings, so build them in "
                "float32 (e.g. dtype=torch.float32, or .float())."
            )
        elif not encoding.dtype.is_floating_point:
            hint = " An integer tensor cannot hold sines: use dtype=torch.float32."
        raise CheckFailure(
            f"{what} has dtype {encoding.dtype}, expected torch.float32." + hint
        )
    if max_abs_error(encoding, expected) > _TOLERANCE:
        mistake = _diagnose_encoding(encoding, num_positions, dim)
        if mistake is not None:
            raise CheckFailure(f"{what} is wrong: {mistake}.")
    expect_close(encoding, expected, what, atol=_TOLERANCE, rtol=0.0)


@check
def check_sinusoidal_positional_encoding(
    fn: Callable[..., Any], hidden: bool = False
) -> str:
    """Check ``sinusoidal_positional_encoding(num_positions, dim)`` against the
    reference."""
    cases = [(50, 16), (12, 7), (1, 4)]
    if hidden:
        g = grading_generator(True)
        cases = [
            (random_int(g, 30, 128), 2 * random_int(g, 4, 32)),
            (random_int(g, 5, 60), 2 * random_int(g, 2, 31) + 1),
            (random_int(g, 2, 9), 2 * random_int(g, 2, 6)),
            (1, 2 * random_int(g, 1, 5) + 1),
            (random_int(g, 2, 20), 2),
        ]
    for num_positions, dim in cases:
        _encoding_case(fn, num_positions, dim)
        integrity.verify()
    sizes = ", ".join(f"({t}, {d})" for t, d in cases)
    return (
        f"sinusoidal_positional_encoding is correct for (num_positions, dim) = {sizes}."
    )


# ------------------------------------------------------------------ the shift matrix


def _rotation_blocks(angles: torch.Tensor, layout: str = "interleaved") -> torch.Tensor:
    """Block-diagonal rotations ``[[cos, -sin], [sin, cos]]`` by ``angles``, float64."""
    half = angles.numel()
    cos, sin = torch.cos(angles), torch.sin(angles)
    matrix = torch.zeros(2 * half, 2 * half, dtype=torch.float64)
    first = slice(0, 2 * half, 2) if layout == "interleaved" else slice(0, half)
    second = slice(1, 2 * half, 2) if layout == "interleaved" else slice(half, 2 * half)
    matrix[first, first] = torch.diag(cos)
    matrix[second, first] = torch.diag(sin)
    matrix[first, second] = torch.diag(-sin)
    matrix[second, second] = torch.diag(cos)
    return matrix


def _shift_variant(k: int, dim: int, kind: str) -> torch.Tensor:
    pair = torch.arange(dim // 2, dtype=torch.float64)
    exponent = {"pair_index": pair / dim, "double_exponent": 4 * pair / dim}.get(
        kind, 2 * pair / dim
    )
    frequency = 10000.0 ** (exponent if kind == "multiply" else -exponent)
    angles = {
        "backward": -k * frequency,
        "no_frequency": k * torch.ones_like(frequency),
        "ignores_k": frequency,
    }.get(kind, k * frequency)
    return _rotation_blocks(angles, "halves" if kind == "halves" else "interleaved")


_SHIFT_MISTAKES = {
    "backward": "it shifts backwards: PE[t] @ M gives PE[t - k]. The rotation is "
    "transposed (or its angle has the wrong sign). With row vectors on the left, "
    "(sin a, cos a) @ B = (sin(a + b), cos(a + b)) needs the block "
    "B = [[cos b, -sin b], [sin b, cos b]]",
    "pair_index": "the frequency of pair i is 1/10000^(i/dim); it must be "
    "1/10000^(2i/dim), the frequency of columns 2i and 2i+1 of the encoding",
    "double_exponent": "the exponent is doubled: with even column indices j = 0, 2, 4, "
    "... the frequency is 1/10000^(j/dim), not 1/10000^(2j/dim)",
    "multiply": "the frequencies are 10000^(2i/dim) instead of 1/10000^(2i/dim)",
    "no_frequency": "every pair is rotated by the angle k; pair i must be rotated by k "
    "times its own frequency w_i = 1/10000^(2i/dim)",
    "ignores_k": "the angle of pair i is w_i, whatever k is: shifting by k positions "
    "rotates pair i by k * w_i",
    "halves": "the rotation is laid out for features ordered [all sines | all "
    "cosines]; the encoding interleaves them, so each 2 x 2 block sits on the diagonal "
    "at rows and columns (2i, 2i+1)",
}


def _shift_property_error(matrix: torch.Tensor, k: int, dim: int) -> float:
    """Largest error of ``PE[t] @ M`` against ``PE[t + k]`` over 64 positions."""
    encoding = _reference_encoding(64 + abs(k), dim).double()
    start = max(-k, 0)
    return max_abs_error(
        encoding[start : start + 64] @ matrix.detach().double(),
        encoding[start + k : start + k + 64],
    )


def _shift_case(fn: Callable[..., Any], k: int, dim: int) -> None:
    what = f"shift_matrix({k}, {dim})"
    with forbid_calls(*_SHIFT_BUILTIN, reason="build the rotation yourself."):
        matrix = call_student(fn, k, dim, what=what)
    expected = _reference_shift(k, dim)
    expect_tensor(matrix, what, shape=(dim, dim))
    if matrix.dtype != torch.float32:
        raise CheckFailure(
            f"{what} has dtype {matrix.dtype}, expected torch.float32 "
            "(the dtype of the encodings it multiplies)."
        )
    if max_abs_error(matrix, expected) > _TOLERANCE:
        matrix64 = matrix.detach().double()
        for kind, mistake in _SHIFT_MISTAKES.items():
            variant = _shift_variant(k, dim, kind)
            if kind == "multiply":  # huge angles: compare the moderate blocks only
                pair = torch.div(torch.arange(dim), 2, rounding_mode="floor")
                keep = _moderate_columns(abs(k) * 10000.0 ** (2 * pair / dim))
                if (
                    keep is not None
                    and max_abs_error(matrix64[keep][:, keep], variant[keep][:, keep])
                    < 2e-3
                ):
                    raise CheckFailure(f"{what} is wrong: {mistake}.")
            elif max_abs_error(matrix64, variant) < _TOLERANCE:
                raise CheckFailure(f"{what} is wrong: {mistake}.")
        error = _shift_property_error(matrix, k, dim)
        if error > _TOLERANCE:
            raise CheckFailure(
                f"{what} is not the shift by {k}: PE[t] @ M differs from PE[t + {k}] "
                f"by up to {error:.3g}. Check each 2 x 2 block "
                "[[cos(k w_i), -sin(k w_i)], [sin(k w_i), cos(k w_i)]] at rows and "
                "columns (2i, 2i+1), and zeros everywhere else."
            )
    expect_close(matrix, expected, what, atol=_TOLERANCE, rtol=0.0)


def _odd_dim_case(fn: Callable[..., Any], k: int, dim: int) -> None:
    what = f"shift_matrix({k}, {dim})"
    try:
        with forbid_calls(*_SHIFT_BUILTIN, reason="build the rotation yourself."):
            result = fn(k, dim)
    except ValueError:
        return
    except ForbiddenCall:
        raise
    except NotImplementedError as err:
        raise CheckFailure(f"{what} still raises NotImplementedError.") from err
    except Exception as err:  # noqa: BLE001 - any other crash is the student's to see
        raise CheckFailure(
            f"{what} raised {type(err).__name__} ({err}); for an odd dim raise a "
            "ValueError with a message, before building anything."
        ) from err
    raise CheckFailure(
        f"{what} returned {describe(result)}; for an odd dim it must raise a "
        "ValueError: the last sine has no cosine partner, so no matrix maps PE[t] to "
        "PE[t + k]."
    )


@check
def check_shift_matrix(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``shift_matrix(k, dim)`` against the reference and the shift property."""
    cases = [(3, 8), (1, 4), (-5, 16), (0, 6)]
    odd = [(2, 5)]
    if hidden:
        g = grading_generator(True)
        cases = [
            (random_int(g, 2, 60), 2 * random_int(g, 4, 32)),
            (-random_int(g, 2, 40), 2 * random_int(g, 2, 32)),
            (1, 2 * random_int(g, 2, 16)),
            (0, 2 * random_int(g, 1, 16)),
            (random_int(g, 2, 30), 2),
        ]
        odd = [(random_int(g, 1, 20), 2 * random_int(g, 1, 20) + 1)]
    for k, dim in cases:
        _shift_case(fn, k, dim)
        integrity.verify()
    for k, dim in odd:
        _odd_dim_case(fn, k, dim)
        integrity.verify()
    shifts = ", ".join(f"({k}, {d})" for k, d in cases)
    return f"shift_matrix is correct for (k, dim) = {shifts} and refuses an odd dim."


integrity.protect_module("seqbook.models.positional_information")
integrity.protect_module(__name__)
