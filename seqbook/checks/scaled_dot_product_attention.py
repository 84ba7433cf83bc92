"""Checks for the exercises of the section "Scaled dot-product attention".

Each ``check_*`` function runs the student's function on small inputs, compares it with
the reference in :mod:`seqbook.models.attention` and, when it differs, recognises the
classic mistakes (no scaling, masking after the softmax, softmax over the wrong axis,
inverted mask convention, NaN for a fully masked row, ...) and names them.

``hidden=False`` is the friendly visible check of the student version. ``hidden=True``
is what the hidden tests call: sizes, values and masks are drawn at grading time from a
fresh random seed, and expected answers are computed by the reference inside the check,
so knowing the test code does not help to pass it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from seqbook.checks import integrity
from seqbook.checks._harness import check, output_and_weights
from seqbook.checks._harness import equal_tensors as _equal
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    expect_close,
    expect_tensor,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.models import attention as _reference_module

__all__ = ["check_causal_mask", "check_padding_mask", "check_attention"]

# Captured at import, before any student code can touch the module.
_reference_attention = _reference_module.scaled_dot_product_attention
_reference_causal = _reference_module.causal_mask
_reference_padding = _reference_module.padding_mask

_ATTENTION_BUILTINS = existing_paths(
    (
        "torch.nn.functional.scaled_dot_product_attention",
        "seqbook.models.attention.scaled_dot_product_attention",
    )
)
_CAUSAL_REFERENCE = existing_paths(("seqbook.models.attention.causal_mask",))
_PADDING_REFERENCE = existing_paths(("seqbook.models.attention.padding_mask",))


_generator = grading_generator
_randint = random_int


# --------------------------------------------------------------------------- masks


@check
def check_causal_mask(causal_mask: Callable[[int], Any], hidden: bool = False) -> str:
    """Check ``causal_mask(size)`` -> boolean ``(size, size)``, True = may attend."""
    sizes = [4, 1]  # largest first: at size 1 several mistakes look alike
    if hidden:
        g = _generator(True)
        sizes = [_randint(g, 3, 40) for _ in range(3)] + [2, 1]
    for size in sizes:
        what = f"causal_mask({size})"
        with forbid_calls(*_CAUSAL_REFERENCE):
            mask = call_student(causal_mask, size, what=what)
        expected = _reference_causal(size)
        expect_tensor(mask, what, shape=(size, size))
        if mask.dtype != torch.bool:
            raise CheckFailure(
                f"{what} has dtype {mask.dtype}; masks in this book are boolean "
                "(dtype=torch.bool) with True meaning 'may attend'."
            )
        if _equal(mask, expected):
            continue
        if size > 1 and _equal(mask, ~expected):
            raise CheckFailure(
                f"{what} is inverted: True must mean 'may attend', so the diagonal and "
                "the entries below it are True."
            )
        if size > 1 and _equal(mask, expected.T):
            raise CheckFailure(
                f"{what} is True above the diagonal: that lets position i attend to "
                "the future positions j > i. Keep the lower triangle instead."
            )
        if _equal(mask, expected.tril(-1)):
            raise CheckFailure(
                f"{what} is False on the diagonal: every position may attend to itself "
                "(otherwise the first query could attend to nothing)."
            )
        row = int((mask != expected).any(dim=1).nonzero()[0])
        raise CheckFailure(
            f"{what}: row {row} is {mask[row].int().tolist()}, "
            f"expected {expected[row].int().tolist()}."
        )
    return f"causal_mask is correct for sizes {sizes}."


@check
def check_padding_mask(
    padding_mask: Callable[[torch.Tensor, int], Any], hidden: bool = False
) -> str:
    """Check ``padding_mask(lengths, max_len)`` -> boolean ``(B, 1, max_len)``."""
    cases = [(torch.tensor([3, 1, 4]), 4)]
    if hidden:
        g = _generator(True)
        cases = [(torch.tensor([0, 2]), 2), (torch.tensor([1]), 1)]
        for _ in range(3):
            max_len = _randint(g, 2, 30)
            batch = _randint(g, 1, 6)
            lengths = torch.randint(1, max_len + 1, (batch,), generator=g)
            lengths[0] = max_len  # one sequence without padding
            cases.append((lengths, max_len))
    for lengths, max_len in cases:
        what = f"padding_mask({lengths.tolist()}, {max_len})"
        with forbid_calls(*_PADDING_REFERENCE):
            mask = call_student(padding_mask, lengths.clone(), max_len, what=what)
        expected = _reference_padding(lengths, max_len)
        batch = len(lengths)
        expect_tensor(mask, what)
        shape_is_wrong = tuple(mask.shape) != (batch, 1, max_len)
        if shape_is_wrong and tuple(mask.shape) == (batch, max_len):
            raise CheckFailure(
                f"{what} has shape {(batch, max_len)}; add an axis for the queries so "
                f"the mask broadcasts over them: expected {(batch, 1, max_len)}."
            )
        if shape_is_wrong and tuple(mask.shape) == (batch, max_len, 1):
            raise CheckFailure(
                f"{what} has shape {(batch, max_len, 1)}: that masks queries. Padding "
                f"hides *keys*: expected {(batch, 1, max_len)}."
            )
        expect_tensor(mask, what, shape=(batch, 1, max_len))
        if mask.dtype != torch.bool:
            raise CheckFailure(
                f"{what} has dtype {mask.dtype}; expected torch.bool "
                "(True = may attend)."
            )
        if _equal(mask, expected):
            continue
        if _equal(mask, ~expected):
            raise CheckFailure(
                f"{what} is inverted: True must mark the real tokens (may attend), "
                "False the padding."
            )
        positions = torch.arange(max_len)
        if _equal(mask, (positions <= lengths[:, None])[:, None, :]):
            raise CheckFailure(
                f"{what} is off by one: a sequence of length n has real tokens at "
                "positions 0..n-1, so position n is already padding (use <, not <=)."
            )
        row = int((mask != expected).flatten(1).any(dim=1).nonzero()[0])
        raise CheckFailure(
            f"{what}: sequence {row} (length {int(lengths[row])}) got "
            f"{mask[row, 0].int().tolist()}, expected "
            f"{expected[row, 0].int().tolist()}."
        )
    return f"padding_mask is correct on {len(cases)} batch(es) of lengths."


# ----------------------------------------------------------------------- attention


def _weights_variants(
    q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Attention weights as the classic mistakes compute them."""
    d_k = q.size(-1)
    raw = q @ k.transpose(-2, -1)
    variants: dict[str, torch.Tensor] = {}

    def masked_softmax(scores: torch.Tensor, m: torch.Tensor | None, dim: int = -1):
        if m is None:
            return torch.softmax(scores, dim=dim)
        weights = torch.softmax(scores.masked_fill(~m, float("-inf")), dim=dim)
        return weights.nan_to_num(0.0)  # fully masked rows: compared as zeros

    variants["no_scale"] = masked_softmax(raw, mask)
    variants["scale_by_dk"] = masked_softmax(raw / d_k, mask)
    variants["wrong_axis"] = masked_softmax(raw / math.sqrt(d_k), mask, dim=-2)
    if mask is not None:
        scaled = raw / math.sqrt(d_k)
        variants["inverted_mask"] = masked_softmax(scaled, ~mask)
        variants["mask_after_softmax"] = torch.softmax(scaled, dim=-1).masked_fill(
            ~mask, 0.0
        )
        variants["mask_with_zero"] = torch.softmax(
            scaled.masked_fill(~mask, 0.0), dim=-1
        )
    return variants


_MISTAKES = {
    "no_scale": "the scores are not divided by sqrt(d_k)",
    "scale_by_dk": "the scores are divided by d_k instead of sqrt(d_k)",
    "wrong_axis": "the softmax runs over the queries (dim=-2) instead of the keys "
    "(dim=-1): each query's weights must sum to 1",
    "inverted_mask": "the mask convention is inverted: True means 'may attend', so the "
    "*False* entries must be removed",
    "mask_after_softmax": "the mask is applied after the softmax: the remaining "
    "weights no longer sum to 1. Set masked scores to -inf before the softmax",
    "mask_with_zero": "masked scores are set to 0, but exp(0) = 1 still gives them "
    "weight: set them to -inf before the softmax",
}


def _diagnose(weights: torch.Tensor, q, k, mask) -> str | None:
    weights = weights.nan_to_num(0.0)
    for name, variant in _weights_variants(q, k, mask).items():
        if weights.shape == variant.shape and max_abs_error(weights, variant) < 1e-5:
            return _MISTAKES[name]
    return None


def _run_case(
    fn: Callable[..., Any],
    label: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    check_gradients: bool = False,
) -> None:
    what = f"scaled_dot_product_attention on {label}"
    inputs = [t.clone().requires_grad_(check_gradients) for t in (q, k, v)]
    originals = [t.detach().clone() for t in inputs]
    with forbid_calls(*_ATTENTION_BUILTINS):
        result = call_student(
            fn, *inputs, mask=None if mask is None else mask.clone(), what=what
        )
    output, weights = output_and_weights(result, what)
    expected_output, expected_weights = _reference_attention(q, k, v, mask)
    if (
        isinstance(output, torch.Tensor)
        and isinstance(weights, torch.Tensor)
        and output.shape == expected_weights.shape
        and weights.shape == expected_output.shape
        and (
            expected_output.shape != expected_weights.shape  # told apart by shape, or
            or (
                max_abs_error(output, expected_weights) < 1e-5  # by value (T_k == d_v)
                and max_abs_error(weights, expected_output) < 1e-5
                and max_abs_error(output, expected_output) > 1e-5
            )
        )
    ):
        raise CheckFailure(f"{what}: return (output, weights), in that order.")
    expect_tensor(
        weights, f"the weights of {what}", shape=expected_weights.shape, dtype=q.dtype
    )
    expect_tensor(
        output, f"the output of {what}", shape=expected_output.shape, dtype=q.dtype
    )
    for before, after, name in zip(originals, inputs, ("query", "key", "value")):
        if max_abs_error(before, after) != 0:
            raise CheckFailure(f"{what} modified its {name} argument in place.")
    if mask is not None:
        empty_rows = ~mask.expand(expected_weights.shape).any(dim=-1)  # (..., T_q)
        if bool(empty_rows.any()) and bool(
            torch.isnan(weights.detach()[empty_rows]).any()
        ):
            raise CheckFailure(
                f"{what}: a query whose mask row is all False (it may attend to "
                "nothing) gets NaN weights -- the softmax of a row of -inf is 0/0. "
                "Give such rows zero weights, e.g. fill the masked positions of the "
                "weights with 0 after the softmax."
            )
        if bool(empty_rows.any()):
            t_k = expected_weights.shape[-1]
            stray = weights.detach()[empty_rows]
            if max_abs_error(stray, torch.zeros_like(stray)) > 1e-6:
                uniform = max_abs_error(stray, torch.full_like(stray, 1.0 / t_k)) < 1e-5
                raise CheckFailure(
                    f"{what}: a query whose mask row is all False must get zero "
                    "weights, "
                    + (
                        f"but it gets uniform weights 1/{t_k}: masked scores were set "
                        "to a large finite number such as -1e9, so a fully masked row "
                        "is a softmax of equal numbers. Use -inf and zero such rows "
                        "after the softmax."
                        if uniform
                        else "but its weights are not all zero."
                    )
                )
    if max_abs_error(weights, expected_weights) > 1e-5:
        mistake = _diagnose(weights.detach(), q, k, mask)
        if mistake is not None:
            raise CheckFailure(f"{what}: the weights are wrong because {mistake}.")
    expect_close(weights, expected_weights, f"the weights of {what}")
    expect_close(output, expected_output, f"the output of {what}")
    if check_gradients:
        upstream = torch.randn(expected_output.shape, dtype=q.dtype)
        try:
            grads = torch.autograd.grad((output * upstream).sum(), inputs)
        except RuntimeError as err:
            raise CheckFailure(
                f"{what}: gradients do not flow back to query, key and value ({err})."
            ) from err
        reference_inputs = [t.clone().requires_grad_(True) for t in (q, k, v)]
        reference_output, _ = _reference_attention(*reference_inputs, mask)
        expected_grads = torch.autograd.grad(
            (reference_output * upstream).sum(), reference_inputs
        )
        for grad, expected_grad, name in zip(
            grads, expected_grads, ("query", "key", "value")
        ):
            expect_close(
                grad, expected_grad, f"the gradient with respect to the {name}"
            )


def _random_case(
    g: torch.Generator,
    batch_shape: tuple[int, ...],
    t_q: int,
    t_k: int,
    d_k: int,
    d_v: int,
    dtype: torch.dtype = torch.float32,
):
    q = torch.randn(*batch_shape, t_q, d_k, generator=g, dtype=dtype)
    k = torch.randn(*batch_shape, t_k, d_k, generator=g, dtype=dtype)
    v = torch.randn(*batch_shape, t_k, d_v, generator=g, dtype=dtype)
    return q, k, v


@check
def check_attention(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(query, key, value, mask=None) -> (output, weights)`` against the
    reference.

    The function is run with ``torch.nn.functional.scaled_dot_product_attention`` and
    ``seqbook.models.attention.scaled_dot_product_attention`` disabled.
    """
    g = _generator(hidden)
    cases: list[tuple[str, tuple, torch.Tensor | None, bool]] = []
    if not hidden:
        q, k, v = _random_case(g, (2,), 3, 4, 8, 5)
        cases.append(
            ("(B=2, T_q=3, T_k=4, d_k=8, d_v=5) without a mask", (q, k, v), None, False)
        )
        lengths = torch.tensor([4, 2])
        cases.append(
            (
                "the same inputs with a padding mask",
                (q, k, v),
                _reference_padding(lengths, 4),
                False,
            )
        )
        q, k, v = _random_case(g, (2,), 5, 5, 16, 16)
        cases.append(
            (
                "self-attention with a causal mask",
                (q, k, v),
                _reference_causal(5),
                False,
            )
        )
        q, k, v = _random_case(g, (2, 3), 4, 4, 6, 6)
        mask = _reference_padding(torch.tensor([3, 4]), 4)[:, None]  # (B, 1, 1, T)
        cases.append(
            (
                "a (B=2, H=3, T=4, d=6) batch of heads with a padding mask",
                (q, k, v),
                mask,
                False,
            )
        )
        q, k, v = _random_case(g, (1,), 3, 4, 8, 5)
        mask = torch.ones(3, 4, dtype=torch.bool)
        mask[1] = False
        cases.append(("a mask whose second row is all False", (q, k, v), mask, False))
    else:
        batch = (_randint(g, 1, 3), _randint(g, 1, 4))
        t_q, t_k = _randint(g, 2, 9), _randint(g, 2, 9)
        d_k, d_v = _randint(g, 64, 256), _randint(g, 2, 12)
        q, k, v = _random_case(g, batch, t_q, t_k, d_k, d_v)
        cases.append(
            (
                f"random {batch + (t_q, d_k)} queries without a mask",
                (q, k, v),
                None,
                False,
            )
        )
        mask = torch.rand(*batch, t_q, t_k, generator=g) < 0.6
        mask[..., 0] = True
        cases.append(
            ("a random mask of shape (B, H, T_q, T_k)", (q, k, v), mask, False)
        )
        row_mask = torch.rand(t_q, t_k, generator=g) < 0.5
        row_mask[:, -1] = True
        cases.append(("a random mask of shape (T_q, T_k)", (q, k, v), row_mask, False))
        t = _randint(g, 3, 10)
        q, k, v = _random_case(g, (2,), t, t, d_k, d_k)
        cases.append(
            (
                "self-attention with a causal mask",
                (q, k, v),
                _reference_causal(t),
                False,
            )
        )
        lengths = torch.randint(1, t + 1, (2,), generator=g)
        cases.append(
            (
                "self-attention with a (B, 1, T) padding mask",
                (q, k, v),
                _reference_padding(lengths, t),
                False,
            )
        )
        empty = torch.ones(t_q, t_k, dtype=torch.bool)
        empty[_randint(g, 0, t_q - 1)] = False
        q, k, v = _random_case(g, (2,), t_q, t_k, 8, d_v)
        cases.append(("a mask with a fully masked row", (q, k, v), empty, False))
        q, k, v = _random_case(g, (2,), t_q, t_k, 16, d_v, dtype=torch.float64)
        cases.append(
            (
                "float64 inputs (gradients checked)",
                (q, k, v),
                torch.rand(t_q, t_k, generator=g) < 0.7,
                True,
            )
        )
    for label, (q, k, v), mask, grads in cases:
        _run_case(fn, label, q, k, v, mask, check_gradients=grads)
        integrity.verify()
    return f"scaled_dot_product_attention matches the reference on {len(cases)} cases."
