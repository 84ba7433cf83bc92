"""Checks for the exercises of the section "Convolutions and time series".

* :func:`check_causal_conv1d` -- a ``CausalConv1d(in_channels, out_channels,
  kernel_size, dilation=1)`` module whose parameters live in an inner ``nn.Conv1d``
  named ``conv``: same output length as input, equal to the reference
  :class:`seqbook.models.convolutions.CausalConv1d` with copied weights, gradients that
  flow, and **no peeking**: changing inputs after position ``t`` never changes outputs
  at positions ``<= t``.
* :func:`check_receptive_field` -- ``receptive_field(kernel_sizes, dilations)`` of a
  stack of causal convolutions, compared with the formula *and* with the receptive
  field of a real random stack of causal convolutions, measured with autograd.

The classic mistakes are recognised and named: symmetric ("same") padding that leaks
the future, no padding (a shorter output), padding on the wrong side or cropping the
wrong end, padding that ignores the dilation; forgetting the ``+ 1``, multiplying
instead of adding, ``k * d`` instead of ``(k - 1) * d``, ignoring the dilation, a wrong
single layer, and mismatched lengths not reported.

``hidden=False`` is the friendly visible check; ``hidden=True`` draws sizes, weights and
stacks at grading time from a fresh random seed, and computes the expected answers with
the reference inside the check.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

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
from seqbook.checks.guard import existing_paths, forbid_calls, forbid_code
from seqbook.models import convolutions as _reference_module

__all__ = ["check_causal_conv1d", "check_receptive_field"]

# Captured at import, before any student code can touch the module.
_ReferenceLayer = _reference_module.CausalConv1d
_reference_receptive_field = _reference_module.receptive_field
_measured_receptive_field = _reference_module.measured_receptive_field
_REFERENCE_LAYER_CODE = (
    _ReferenceLayer.__init__.__code__,
    _ReferenceLayer.forward.__code__,
)
_FIELD_REFERENCE = existing_paths(("seqbook.models.convolutions.receptive_field",))
_pad = F.pad
_conv1d = F.conv1d


_generator = grading_generator
_randint = random_int


def _without_reference_layer():
    """Refuse any use of the book's ``CausalConv1d`` (directly, through an alias, or by
    subclassing it) while the student's code runs."""
    return forbid_code(
        _REFERENCE_LAYER_CODE,
        "your layer uses the book's `seqbook.models.convolutions.CausalConv1d`: write "
        "the padding and the call of `self.conv` yourself.",
    )


# ------------------------------------------------------------------- CausalConv1d


def _variant_outputs(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dilation: int
) -> dict[str, torch.Tensor]:
    """Outputs of the classic mistakes that keep the length, with the same weights."""
    total = (weight.shape[-1] - 1) * dilation
    left = total // 2  # what nn.Conv1d(padding="same") does
    return {
        "symmetric": _conv1d(
            _pad(x, (left, total - left)), weight, bias, dilation=dilation
        ),
        "right": _conv1d(_pad(x, (0, total)), weight, bias, dilation=dilation),
    }


_LAYER_MISTAKES = {
    "symmetric": "symmetric padding leaks the future: with padding on both sides (as "
    "nn.Conv1d(padding='same') or padding=(k - 1) * dilation // 2 do), output t sees "
    "inputs after t. Pad all (kernel_size - 1) * dilation zeros on the left",
    "right": "the zeros are padded on the wrong side, or the wrong end is cropped: "
    "output t depends on inputs t, t + dilation, ..., i.e. on the future. Pad on the "
    "left (F.pad(x, (left, 0))), or, after nn.Conv1d(padding=(k - 1) * dilation), "
    "remove the *last* (k - 1) * dilation outputs, not the first",
}


def _layer_cases(g: torch.Generator, hidden: bool) -> list[tuple[int, ...]]:
    """(batch, in_channels, out_channels, kernel_size, dilation, length) per case."""
    if not hidden:
        return [(2, 1, 1, 3, 1, 10), (2, 3, 4, 3, 2, 16), (1, 2, 2, 2, 4, 12)]
    cases = []
    for _ in range(4):
        k, d = _randint(g, 2, 6), _randint(g, 2, 6)
        cases.append(
            (
                _randint(g, 1, 3),
                _randint(g, 1, 4),
                _randint(g, 1, 5),
                k,
                d,
                _randint(g, (k - 1) * d + 2, 48),
            )
        )
    cases.append(
        (
            2,
            _randint(g, 1, 3),
            _randint(g, 1, 3),
            _randint(g, 2, 5),
            1,
            _randint(g, 6, 30),
        )
    )
    k, d = _randint(g, 3, 5), _randint(g, 3, 6)
    cases.append(
        (1, 2, 3, k, d, _randint(g, 1, (k - 1) * d - 1))
    )  # shorter than padding
    cases.append((1, 2, 2, 1, _randint(g, 1, 4), _randint(g, 3, 10)))  # kernel size 1
    return cases


def _inner_conv(
    layer: Any, what: str, c_in: int, c_out: int, k: int, d: int
) -> nn.Conv1d:
    if not isinstance(layer, nn.Module):
        raise CheckFailure(
            f"{what} should create a torch.nn.Module, got {describe(layer)}: write "
            "`class CausalConv1d(nn.Module)` and call `super().__init__()` first."
        )
    conv = getattr(layer, "conv", None)
    if not isinstance(conv, nn.Conv1d):
        raise CheckFailure(
            f"{what} should keep its parameters in an nn.Conv1d stored as `self.conv`, "
            f"but `self.conv` is {describe(conv)}."
        )
    if tuple(conv.weight.shape) != (c_out, c_in, k):
        raise CheckFailure(
            f"{what}: self.conv.weight has shape {tuple(conv.weight.shape)}, expected "
            f"{(c_out, c_in, k)}: create nn.Conv1d(in_channels, out_channels, "
            "kernel_size, dilation=dilation)."
        )
    if tuple(conv.dilation) != (d,):
        raise CheckFailure(
            f"{what}: self.conv has dilation {conv.dilation[0]}, expected {d}: the "
            "inner convolution ignores `dilation` -- pass dilation=dilation to "
            "nn.Conv1d."
        )
    if tuple(conv.stride) != (1,) or conv.groups != 1:
        raise CheckFailure(f"{what}: self.conv should have stride 1 and groups 1.")
    if conv.bias is None:
        raise CheckFailure(
            f"{what}: self.conv has no bias; keep nn.Conv1d's default bias=True."
        )
    return conv


def _length_mistake(got: int, length: int, k: int, d: int) -> str | None:
    total = (k - 1) * d
    if got == 0 and total == 0:
        return (
            "the output is empty: with kernel_size 1 there is nothing to crop, and "
            "y[..., :-0] is y[..., :0], an empty slice"
        )
    if d > 1 and got == length - (k - 1) * (d - 1):
        return (
            f"padding ignores dilation: the output has {got} steps instead of "
            f"{length} because only kernel_size - 1 = {k - 1} zeros were padded. A "
            f"dilated kernel spans (kernel_size - 1) * dilation = {total} steps back"
        )
    if got == length - total:
        return (
            f"output shorter than input (no padding): {got} steps instead of "
            f"{length}. Pad (kernel_size - 1) * dilation = {total} zeros on the left"
        )
    if got == length + total:
        return (
            f"the output has {got} steps instead of {length}: nn.Conv1d(padding="
            f"{total}) pads both sides, so remove the last {total} outputs"
        )
    return None


def _run_layer_case(
    cls: Any, g: torch.Generator, case: tuple[int, ...], n_peeks: int
) -> None:
    batch, c_in, c_out, k, d, length = case
    what = f"CausalConv1d({c_in}, {c_out}, {k}, dilation={d})"
    with _without_reference_layer():
        layer = call_student(cls, c_in, c_out, k, dilation=d, what=what)
    conv = _inner_conv(layer, what, c_in, c_out, k, d)
    reference = _ReferenceLayer(c_in, c_out, k, dilation=d)
    weight = torch.randn(c_out, c_in, k, generator=g) / math.sqrt(c_in * k)
    bias = torch.randn(c_out, generator=g)
    with torch.no_grad():
        for target in (conv, reference.conv):
            target.weight.copy_(weight)
            target.bias.copy_(bias)
    x = torch.randn(batch, c_in, length, generator=g)
    what = f"{what} on an input of shape {(batch, c_in, length)}"

    def run(inputs: torch.Tensor) -> torch.Tensor:
        with _without_reference_layer():
            return call_student(layer, inputs, what=what)

    original = x.clone()
    y = run(x)
    if max_abs_error(x, original) != 0:
        raise CheckFailure(f"{what} modified its input in place.")
    expect_tensor(y, f"the output of {what}")
    if y.dim() == 3 and y.shape[-1] != length:
        mistake = _length_mistake(y.shape[-1], length, k, d)
        if mistake is not None:
            raise CheckFailure(f"{what}: {mistake}.")
    expect_tensor(
        y, f"the output of {what}", shape=(batch, c_out, length), dtype=torch.float32
    )
    with torch.no_grad():
        expected = reference(x)
    if max_abs_error(y, expected) > 1e-5:
        for name, variant in _variant_outputs(x, weight, bias, d).items():
            if max_abs_error(y, variant) < 1e-5:
                raise CheckFailure(f"{what}: {_LAYER_MISTAKES[name]}.")
    # No peeking: perturb everything after t; outputs up to t must not move.
    times = [_randint(g, 0, max(length - 2, 0)) for _ in range(n_peeks)]
    times += [length // 2, length - 2]
    for t in times:
        if t < 0 or t + 1 >= length:
            continue
        perturbed = x.clone()
        perturbed[..., t + 1 :] += 3 * torch.randn(
            batch, c_in, length - t - 1, generator=g
        )
        y_perturbed = run(perturbed)
        expect_tensor(y_perturbed, f"the output of {what}", shape=tuple(y.shape))
        moved = (y_perturbed[..., : t + 1] - y[..., : t + 1]).detach().abs()
        if float(moved.max()) > 1e-5:
            first = int(moved.amax(dim=(0, 1)).gt(1e-5).nonzero()[0])
            raise CheckFailure(
                f"{what} peeks at the future: changing only the inputs after position "
                f"{t} changed the output at position {first} <= {t}. A causal layer's "
                "output t may depend on inputs 0..t only."
            )
    expect_close(y, expected, f"the output of {what}")
    upstream = torch.randn(batch, c_out, length, generator=g)
    if not y.requires_grad:
        raise CheckFailure(
            f"{what}: the output is cut off from autograd, so the layer "
            "could not learn: remove torch.no_grad() or .detach()."
        )
    try:
        grads = torch.autograd.grad(
            (y * upstream).sum(), [conv.weight, conv.bias], allow_unused=True
        )
    except RuntimeError as err:
        raise CheckFailure(
            f"{what}: gradients do not flow to self.conv ({err})."
        ) from err
    reference_out = reference(x)
    expected_grads = torch.autograd.grad(
        (reference_out * upstream).sum(), [reference.conv.weight, reference.conv.bias]
    )
    for grad, expected_grad, name in zip(grads, expected_grads, ("weight", "bias")):
        if grad is None:
            raise CheckFailure(f"{what}: no gradient reaches self.conv.{name}.")
        expect_close(
            grad,
            expected_grad,
            f"the gradient of self.conv.{name} in {what}",
            atol=1e-4,
        )


@check
def check_causal_conv1d(cls: Callable[..., Any], hidden: bool = False) -> str:
    """Check a ``CausalConv1d(in_channels, out_channels, kernel_size, dilation=1)``
    class.

    The layer must map ``(B, in_channels, T)`` to ``(B, out_channels, T)``, keep its
    parameters in an ``nn.Conv1d`` named ``conv``, equal the reference with the same
    weights, and never let an output depend on later inputs. The book's reference layer
    is refused while the student's code runs.
    """
    g = _generator(hidden)
    cases = _layer_cases(g, hidden)
    with torch.random.fork_rng(devices=[]):  # the notebook's random state is untouched
        for case in cases:
            _run_layer_case(cls, g, case, n_peeks=3 if hidden else 0)
            integrity.verify()
    return (
        f"CausalConv1d is causal, keeps the length and matches the reference on "
        f"{len(cases)} layer configurations."
    )


# --------------------------------------------------------------- receptive field


def _random_stack(
    g: torch.Generator, depth: int, min_kernel: int = 1, powers_of_two: bool = False
) -> tuple[list[int], list[int]]:
    kernels = [_randint(g, min_kernel, 6) for _ in range(depth)]
    if powers_of_two:
        dilations = [2**layer for layer in range(depth)]
    else:
        dilations = [_randint(g, 1, 9) for _ in range(depth)]
    return kernels, dilations


def _stack_cases(
    g: torch.Generator, hidden: bool
) -> list[tuple[Sequence[int], Sequence[int]]]:
    if not hidden:
        return [
            ([2, 2, 2, 2], [1, 2, 4, 8]),
            ([3, 3, 3], [1, 1, 1]),
            ([3, 2, 4], [2, 5, 1]),
            ((5,), (4,)),
            ([3], [1]),
        ]
    cases: list[tuple[Sequence[int], Sequence[int]]] = []
    kernels, dilations = _random_stack(g, _randint(g, 3, 6), min_kernel=3)
    dilations[0] = _randint(g, 2, 9)
    cases.append((kernels, dilations))
    cases.append(_random_stack(g, _randint(g, 4, 8), min_kernel=2, powers_of_two=True))
    kernels, dilations = _random_stack(g, 1, min_kernel=2)
    dilations[0] = _randint(g, 2, 9)
    cases.append((tuple(kernels), tuple(dilations)))
    for _ in range(3):
        cases.append(_random_stack(g, _randint(g, 1, 7)))
    cases.append(([], []))
    return cases


def _formula_mistakes(
    kernels: Sequence[int], dilations: Sequence[int]
) -> dict[str, int]:
    pairs = list(zip(kernels, dilations))
    spans = [(k - 1) * d for k, d in pairs]
    wrong = {
        "no_plus_one": sum(spans),
        "k_times_d": 1 + sum(k * d for k, d in pairs),
        "k_times_d_no_one": sum(k * d for k, d in pairs),
        "no_dilation": 1 + sum(k - 1 for k, _ in pairs),
        "multiply": 1 + math.prod(spans),
        "multiply_spans": math.prod(span + 1 for span in spans),
        "multiply_kd": math.prod(k * d for k, d in pairs),
    }
    if pairs:
        wrong["first_dilation"] = kernels[0] + sum(spans[1:])
    return wrong


_FIELD_MISTAKES = {
    "no_plus_one": "it forgets the + 1: the output step t itself is part of its "
    "receptive field (a single 1-tap layer sees 1 step, not 0)",
    "k_times_d": "it uses k * d instead of (k - 1) * d: a kernel of k taps spaced d "
    "apart reaches (k - 1) * d steps back, not k * d",
    "k_times_d_no_one": "it uses k * d instead of (k - 1) * d and forgets the + 1",
    "no_dilation": "it ignores the dilations: a dilated tap reaches d steps per gap, "
    "so layer l adds (k_l - 1) * d_l, not k_l - 1",
    "multiply": "it multiplies the layers' contributions instead of adding them: each "
    "layer extends the span by (k_l - 1) * d_l steps, so R = 1 + sum, not a product",
    "multiply_spans": "it multiplies the layers' spans instead of adding them: each "
    "layer extends the span by (k_l - 1) * d_l steps, so R = 1 + sum, not a product",
    "multiply_kd": "it multiplies k_l * d_l over the layers instead of adding "
    "(k_l - 1) * d_l",
    "first_dilation": "it ignores the first layer's dilation (starting from k_0 "
    "instead of 1 + (k_0 - 1) * d_0)",
}


def _measured(kernels: Sequence[int], dilations: Sequence[int]) -> int:
    """The receptive field of a real random stack of causal convolutions (autograd)."""
    formula = _reference_receptive_field(kernels, dilations)
    layers = [
        _ReferenceLayer(1 if i == 0 else 2, 2, k, dilation=d)
        for i, (k, d) in enumerate(zip(kernels, dilations))
    ]
    measured = _measured_receptive_field(nn.Sequential(*layers), formula + 7)
    if measured != formula:  # pragma: no cover - would be a bug in the book
        raise RuntimeError(f"book bug: formula {formula}, measured {measured}")
    return measured


_OWN_FORMULA = "write the formula yourself."


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, torch.Tensor):
        raise CheckFailure(
            f"{what} returned a tensor ({describe(value)}); return a "
            "Python int, e.g. with int(...) or plain arithmetic."
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if value is None:
            raise CheckFailure(f"{what} returned None: did you forget a `return`?")
        raise CheckFailure(
            f"{what} returned {value!r} ({type(value).__name__}); "
            "the receptive field is a whole number of steps: return an int."
        )
    return int(value)


def _check_mismatch(fn: Callable[..., Any], g: torch.Generator, hidden: bool) -> None:
    kernels, dilations = (
        ([3, 3, 3], [1, 2])
        if not hidden
        else ([_randint(g, 2, 6) for _ in range(4)], [1, 2, 4])
    )
    if hidden and _randint(g, 0, 1):
        kernels, dilations = kernels[:2], [1, 2, 4]
    what = f"receptive_field({kernels}, {dilations})"
    try:
        with forbid_calls(*_FIELD_REFERENCE, reason=_OWN_FORMULA):
            result = fn(list(kernels), list(dilations))
    except ValueError:
        return
    except NotImplementedError as err:
        raise CheckFailure(
            "receptive_field still raises NotImplementedError: replace the line "
            "`raise NotImplementedError()` with your code."
        ) from err
    except CheckFailure:
        raise
    except Exception as err:  # noqa: BLE001
        raise CheckFailure(
            f"{what} should raise ValueError (one kernel size and one "
            f"dilation per layer), but raised {type(err).__name__}: {err}"
        ) from err
    raise CheckFailure(
        f"mismatched lengths not reported: {what} returned {result!r}, but "
        f"{len(kernels)} kernel sizes and {len(dilations)} dilations do not describe a "
        "stack (zip silently drops the extras). Raise ValueError."
    )


@check
def check_receptive_field(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``receptive_field(kernel_sizes, dilations) -> int`` on stacks of causal
    convolutions: against the formula and against a real stack measured with autograd;
    mismatched lengths must raise ``ValueError``."""
    g = _generator(hidden)
    cases = _stack_cases(g, hidden)
    with torch.random.fork_rng(devices=[]):  # the notebook's random state is untouched
        _check_stacks(fn, cases)
    _check_mismatch(fn, g, hidden)
    return (
        f"receptive_field agrees with measured stacks on {len(cases)} cases and "
        "rejects mismatched lengths."
    )


def _check_stacks(
    fn: Callable[..., Any], cases: list[tuple[Sequence[int], Sequence[int]]]
) -> None:
    failures: list[tuple[str, list[str]]] = []  # (message, names of matching mistakes)
    for kernels, dilations in cases:
        what = f"receptive_field({kernels}, {dilations})"
        with forbid_calls(*_FIELD_REFERENCE, reason=_OWN_FORMULA):
            result = call_student(
                fn, type(kernels)(kernels), type(dilations)(dilations), what=what
            )
        integrity.verify()
        got = _as_int(result, what)
        expected = _measured(kernels, dilations)
        if got == expected:
            continue
        matching = [
            name
            for name, value in _formula_mistakes(kernels, dilations).items()
            if value == got
        ]
        explanation = _FIELD_MISTAKES[matching[0]] if matching else None
        if explanation is None and len(kernels) == 1:
            explanation = (
                f"it is wrong for a single layer: k = {kernels[0]} taps spaced "
                f"d = {dilations[0]} apart cover (k - 1) * d + 1 = {expected} "
                "steps"
            )
        failures.append(
            (
                f"{what} returned {got}, but a real stack of these causal "
                f"convolutions, measured with autograd, has receptive field {expected}"
                + (
                    f": {explanation}."
                    if explanation
                    else " (R = 1 + sum over layers of (k_l - 1) * d_l)."
                ),
                matching,
            )
        )
    if failures:
        # Report a case that identifies the mistake unambiguously when there is one
        # (with later dilations all 1, ignoring the first dilation looks like ignoring
        # all).
        first_message, first_matching = failures[0]
        if len(first_matching) > 1:
            unambiguous = [
                message for message, matching in failures if len(matching) == 1
            ]
            first_message = unambiguous[0] if unambiguous else first_message
        raise CheckFailure(first_message)


integrity.protect_module("seqbook.models.convolutions")
integrity.protect_module(__name__)
