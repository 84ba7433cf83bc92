"""Checks for the exercises of the section "Recurrent neural networks".

* :func:`check_rnn_forward` -- ``rnn_forward(inputs, h0, weight_ih, weight_hh, bias_ih,
  bias_hh) -> (outputs (B, T, H), h_n (B, H))`` from primitives, compared with the
  reference in :mod:`seqbook.models.recurrent_networks` and with ``torch.nn.RNN``;
* :func:`check_clip_grad_norm` -- ``clip_grad_norm(parameters, max_norm)``, compared
  with ``torch.nn.utils.clip_grad_norm_``.

Both recognise the classic mistakes (weights not transposed, a missing bias, a state
that is never updated, the wrong activation, time and batch axes swapped; clipping each
tensor separately, clipping by value, scaling below the threshold, returning the norm
after clipping, ...) and name them. ``hidden=True`` draws sizes and values from a fresh
random seed at grading time; expected values are computed inside the check.
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
from seqbook.models import recurrent_networks as _reference_module

__all__ = ["check_rnn_forward", "check_clip_grad_norm"]

# Captured at import, before any student code can touch the modules.
_reference_rnn_forward = _reference_module.rnn_forward
_reference_clip = _reference_module.clip_grad_norm
_torch_clip = torch.nn.utils.clip_grad_norm_
_nn_rnn = torch.nn.RNN

_RNN_BUILTINS = existing_paths(
    (
        "torch.nn.RNN",
        "torch.nn.RNNCell",
        "torch.rnn_tanh",
        "torch.rnn_tanh_cell",
        "torch._VF.rnn_tanh",
        "torch._VF.rnn_tanh_cell",
        "seqbook.models.recurrent_networks.rnn_forward",
        "seqbook.models.recurrent_networks.RNN",
    )
)
_CLIP_BUILTINS = existing_paths(
    (
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_norm",
        "torch.nn.utils.clip_grads_with_norm_",
        "torch.nn.utils.get_total_norm",
        "seqbook.models.recurrent_networks.clip_grad_norm",
    )
)

_generator = grading_generator
_randint = random_int


# ------------------------------------------------------------------- rnn_forward


def _rnn_variant(
    inputs,
    h0,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    *,
    activation=torch.tanh,
    use_b_ih=True,
    use_b_hh=True,
    transpose_ih=True,
    transpose_hh=True,
    update=True,
    start_from_zero=False,
    states_before_update=False,
):
    """The RNN as a classic mistake computes it (all options off = the reference)."""
    a_ih = w_ih.T if transpose_ih else w_ih
    a_hh = w_hh.T if transpose_hh else w_hh
    h = torch.zeros_like(h0) if start_from_zero else h0
    start = h
    states = []
    for t in range(inputs.size(1)):
        previous = h if update else start
        new = inputs[:, t] @ a_ih + previous @ a_hh
        if use_b_ih:
            new = new + b_ih
        if use_b_hh:
            new = new + b_hh
        if states_before_update:
            states.append(h)
        h = activation(new)
        if not states_before_update:
            states.append(h)
    return torch.stack(states, dim=1), h


def _rnn_mistakes(inputs, h0, w_ih, w_hh, b_ih, b_hh) -> dict[str, torch.Tensor]:
    """Outputs ``(B, T, H)`` of the classic mistakes that can be computed on these
    inputs."""
    args = (inputs, h0, w_ih, w_hh, b_ih, b_hh)
    options = {
        "no_transpose": dict(transpose_ih=False, transpose_hh=False),
        "no_transpose_hh": dict(transpose_hh=False),
        "no_transpose_ih": dict(transpose_ih=False),
        "no_bias_ih": dict(use_b_ih=False),
        "no_bias_hh": dict(use_b_hh=False),
        "no_bias": dict(use_b_ih=False, use_b_hh=False),
        "not_updated": dict(update=False),
        "ignores_h0": dict(start_from_zero=True),
        "relu": dict(activation=torch.relu),
        "sigmoid": dict(activation=torch.sigmoid),
        "no_activation": dict(activation=lambda a: a),
        "states_before_update": dict(states_before_update=True),
    }
    variants: dict[str, torch.Tensor] = {}
    for name, option in options.items():
        try:
            variants[name] = _rnn_variant(*args, **option)[0]
        except RuntimeError:  # shapes do not allow this mistake here
            pass
    if inputs.size(0) == inputs.size(1):  # B == T: a loop over dim 0 runs without error
        variants["time_axis"] = _rnn_variant(inputs.transpose(0, 1), *args[1:])[0]
        variants["stacked_time_first"] = _rnn_variant(*args)[0].transpose(0, 1)
    return variants


_RNN_MISTAKES = {
    "no_transpose": "the weights are not transposed: nn.RNN stores weight_ih as (H, D) "
    "and weight_hh as (H, H), so a step is x_t @ weight_ih.T + h @ weight_hh.T",
    "no_transpose_hh": "weight_hh is not transposed: the recurrent term is "
    "h_{t-1} @ weight_hh.T",
    "no_transpose_ih": "weight_ih is not transposed: the input term is x_t @ "
    "weight_ih.T",
    "no_bias_ih": "bias_ih is missing: nn.RNN adds both biases at every step",
    "no_bias_hh": "bias_hh is missing: nn.RNN adds both biases at every step",
    "no_bias": "both biases are missing",
    "not_updated": "the state is never updated: every step uses h0 as the previous "
    "state instead of the state computed at the step before",
    "ignores_h0": "the initial state h0 is ignored (the loop starts from zeros)",
    "relu": "the activation is ReLU; this RNN uses tanh",
    "sigmoid": "the activation is the sigmoid; this RNN uses tanh",
    "no_activation": "the tanh is missing",
    "states_before_update": "outputs[:, t] holds the state *before* step t "
    "(h0, h_1, ..., h_{T-1}); it must be the state after reading x_t (h_1, ..., h_T)",
    "stacked_time_first": "the states are stacked along dim 0 (time first); the book's "
    "RNN is batch-first, so stack them along dim 1: outputs[:, t] is the state after "
    "step t",
    "time_axis": "the loop runs over dim 0, but inputs are batch-first (B, T, D): time "
    "is dim 1, so step t reads inputs[:, t]",
}


def _rnn_reference(inputs, h0, w_ih, w_hh, b_ih, b_hh, grad_upstream=None):
    args = [
        t.detach().clone().requires_grad_(grad_upstream is not None)
        for t in (inputs, h0, w_ih, w_hh, b_ih, b_hh)
    ]
    outputs, h_n = _reference_rnn_forward(*args)
    grads = None
    if grad_upstream is not None:
        up_outputs, up_h = grad_upstream
        grads = torch.autograd.grad(
            (outputs * up_outputs).sum() + (h_n * up_h).sum(), args
        )
    return outputs.detach(), h_n.detach(), grads


def _nn_rnn_outputs(inputs, h0, w_ih, w_hh, b_ih, b_hh):
    """What ``torch.nn.RNN(batch_first=True)`` computes with these weights."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        module = _nn_rnn(w_ih.size(1), w_ih.size(0), batch_first=True).to(inputs.dtype)
    with torch.no_grad():
        for name, value in zip(
            ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
            (w_ih, w_hh, b_ih, b_hh),
        ):
            getattr(module, name).copy_(value)
        outputs, h_n = module(inputs, h0[None])
    return outputs, h_n[0]


_ARGUMENT_NAMES = ("inputs", "h0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _run_rnn_case(
    fn,
    label: str,
    tensors: tuple[torch.Tensor, ...],
    check_gradients: bool,
    compare_builtin: bool,
) -> None:
    what = f"rnn_forward on {label}"
    inputs, h0, w_ih, w_hh, b_ih, b_hh = tensors
    batch, steps, hidden = inputs.size(0), inputs.size(1), w_hh.size(0)
    arguments = [t.clone().requires_grad_(check_gradients) for t in tensors]
    before = [t.detach().clone() for t in arguments]
    with forbid_calls(
        *_RNN_BUILTINS,
        reason="write the recurrence yourself with @, + and "
        "torch.tanh (a loop over the time steps).",
    ):
        try:
            result = call_student(fn, *arguments, what=what)
        except ForbiddenCall:
            raise
        except CheckFailure as failure:
            cause = failure.__cause__
            if isinstance(cause, RuntimeError) and any(
                word in str(cause) for word in ("shape", "size", "dimension")
            ):
                raise CheckFailure(
                    f"{failure} Check the shapes: inputs are batch-first (B, T, D), so "
                    "step t reads inputs[:, t] of shape (B, D); weight_ih is (H, D) "
                    "and weight_hh is (H, H), as in nn.RNN, so multiply by their "
                    "transposes."
                ) from cause
            raise
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailure(
            f"{what} should return a pair (outputs, h_n), got {describe(result)}."
        )
    outputs, h_n = result
    expect_tensor(outputs, f"outputs of {what}")
    expect_tensor(h_n, f"h_n of {what}")
    for name, old, new in zip(_ARGUMENT_NAMES, before, arguments):
        if max_abs_error(old, new) != 0:
            raise CheckFailure(
                f"{what} modified its argument `{name}` in place; "
                "leave the inputs unchanged (use out-of-place operations)."
            )
    full, final = (batch, steps, hidden), (batch, hidden)
    if tuple(outputs.shape) == final and tuple(h_n.shape) == full:
        raise CheckFailure(f"{what}: return (outputs, h_n), in that order.")
    if tuple(outputs.shape) == final:
        raise CheckFailure(
            f"{what}: outputs has shape {final}, the shape of one state. Return the "
            f"states of all {steps} steps stacked along dim 1, shape {full}, and the "
            "last state separately as h_n."
        )
    if tuple(outputs.shape) == (steps, batch, hidden) and steps != batch:
        raise CheckFailure(
            f"{what}: outputs has shape {(steps, batch, hidden)}, time first. The "
            f"book's RNN is batch-first: stack the states along dim 1 to get {full}."
        )
    if tuple(h_n.shape) == (1, batch, hidden):
        raise CheckFailure(
            f"{what}: h_n has shape {(1, batch, hidden)}. rnn_forward returns the last "
            f"state as {final}; only the nn.RNN-like module adds the layer axis."
        )
    expect_tensor(outputs, f"outputs of {what}", shape=full)
    expect_tensor(h_n, f"h_n of {what}", shape=final)
    for name, value in (("outputs", outputs), ("h_n", h_n)):
        if value.dtype != inputs.dtype:
            raise CheckFailure(
                f"{what}: {name} has dtype {value.dtype}, expected {inputs.dtype} like "
                "the inputs (a tensor created with torch.zeros(...) is float32 unless "
                "you pass dtype=inputs.dtype)."
            )
    expected_outputs, expected_h, _ = _rnn_reference(*tensors)
    if max_abs_error(outputs, expected_outputs) > 1e-5:
        for name, variant in _rnn_mistakes(*tensors).items():
            if max_abs_error(outputs, variant) < 1e-5:
                raise CheckFailure(
                    f"{what}: the outputs are wrong because {_RNN_MISTAKES[name]}."
                )
    expect_close(outputs, expected_outputs, f"outputs of {what}")
    if (
        max_abs_error(h_n, expected_h) > 1e-5
        and steps > 1
        and max_abs_error(h_n, expected_outputs[:, 0]) < 1e-6
    ):
        raise CheckFailure(
            f"{what}: h_n is the state after the first step; return the "
            "state after the last step, outputs[:, -1]."
        )
    expect_close(h_n, expected_h, f"h_n of {what} (the state after the last step)")
    if compare_builtin:
        builtin_outputs, builtin_h = _nn_rnn_outputs(*tensors)
        expect_close(
            outputs, builtin_outputs, f"outputs of {what} compared with nn.RNN"
        )
        expect_close(h_n, builtin_h, f"h_n of {what} compared with nn.RNN")
    if check_gradients:
        g = torch.Generator().manual_seed(steps * 1000 + hidden)
        upstream = (
            torch.randn(full, generator=g, dtype=inputs.dtype),
            torch.randn(final, generator=g, dtype=inputs.dtype),
        )
        loss = (outputs * upstream[0]).sum() + (h_n * upstream[1]).sum()
        try:
            grads = torch.autograd.grad(loss, arguments, allow_unused=True)
        except RuntimeError as err:
            raise CheckFailure(
                f"{what}: gradients do not flow back to the inputs and weights "
                f"({err}). Do not use .detach(), .data, .item() or .numpy() inside the "
                "recurrence."
            ) from err
        _, _, expected_grads = _rnn_reference(*tensors, grad_upstream=upstream)
        for name, grad, expected_grad in zip(_ARGUMENT_NAMES, grads, expected_grads):
            if grad is None:
                raise CheckFailure(
                    f"{what}: no gradient reaches `{name}`: it does not "
                    "take part in the computation autograd recorded."
                )
            expect_close(grad, expected_grad, f"the gradient with respect to `{name}`")


def _rnn_case(
    g: torch.Generator,
    batch: int,
    steps: int,
    size_in: int,
    hidden: int,
    dtype: torch.dtype = torch.float32,
    h0_zero: bool = False,
    gain: float = 0.9,
):
    # W_hh has entries of variance gain^2 / H: with gain < 1 the recurrence contracts,
    # so float32 rounding differences between correct implementations stay tiny.
    inputs = torch.randn(batch, steps, size_in, generator=g, dtype=dtype)
    h0 = (
        torch.zeros(batch, hidden, dtype=dtype)
        if h0_zero
        else 0.5 * torch.randn(batch, hidden, generator=g, dtype=dtype)
    )
    w_ih = 0.7 * torch.randn(hidden, size_in, generator=g, dtype=dtype)
    w_hh = (
        gain / math.sqrt(hidden) * torch.randn(hidden, hidden, generator=g, dtype=dtype)
    )
    b_ih = 0.5 * torch.randn(hidden, generator=g, dtype=dtype)
    b_hh = 0.5 * torch.randn(hidden, generator=g, dtype=dtype)
    return inputs, h0, w_ih, w_hh, b_ih, b_hh


@check
def check_rnn_forward(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh)``.

    ``fn`` runs with ``torch.nn.RNN``, ``torch.nn.RNNCell``, ``torch.rnn_tanh`` (and
    ``torch._VF``'s copy), ``torch.rnn_tanh_cell`` and the book's
    ``seqbook.models.recurrent_networks`` reference disabled. The result must equal the
    reference and ``nn.RNN``.
    """
    g = _generator(hidden)
    # (label, tensors, check gradients, compare with nn.RNN)
    cases: list[tuple[str, tuple, bool, bool]] = []
    if not hidden:
        # Square sizes first: every classic mistake runs there and can be named.
        cases.append(
            (
                "B = T = D = H = 3 with a non-zero h0",
                _rnn_case(g, 3, 3, 3, 3),
                False,
                True,
            )
        )
        cases.append(
            (
                "(B=2, T=5, D=3, H=4) from h0 = 0",
                _rnn_case(g, 2, 5, 3, 4, h0_zero=True),
                False,
                True,
            )
        )
        cases.append(
            (
                "(B=3, T=4, D=6, H=5) with a non-zero h0",
                _rnn_case(g, 3, 4, 6, 5),
                False,
                True,
            )
        )
    else:
        n = _randint(g, 2, 6)
        cases.append((f"B = T = D = H = {n}", _rnn_case(g, n, n, n, n), False, True))
        batch, steps = _randint(g, 1, 5), _randint(g, 2, 12)
        size_in, size_h = _randint(g, 1, 10), _randint(g, 2, 12)
        while steps == batch:
            steps = _randint(g, 2, 12)
        cases.append(
            (
                f"random sizes (B={batch}, T={steps}, D={size_in}, H={size_h})",
                _rnn_case(g, batch, steps, size_in, size_h),
                False,
                True,
            )
        )
        cases.append(
            ("one sequence of one step", _rnn_case(g, 1, 1, 3, 4), False, True)
        )
        steps = _randint(g, 25, 40)
        cases.append(
            (
                f"a long float64 sequence (T={steps}) with large recurrent weights",
                _rnn_case(g, 2, steps, 4, 6, dtype=torch.float64, gain=1.5),
                False,
                True,
            )
        )
        batch, steps = _randint(g, 2, 4), _randint(g, 3, 8)
        cases.append(
            (
                f"float64 inputs (B={batch}, T={steps}; gradients checked)",
                _rnn_case(
                    g,
                    batch,
                    steps,
                    _randint(g, 2, 6),
                    _randint(g, 2, 7),
                    dtype=torch.float64,
                ),
                True,
                True,
            )
        )
    for label, tensors, grads, builtin in cases:
        _run_rnn_case(fn, label, tensors, grads, builtin)
        integrity.verify()
    return f"rnn_forward matches the reference and nn.RNN on {len(cases)} cases."


# ---------------------------------------------------------------- clip_grad_norm


def _parameter_set(
    g: torch.Generator,
    shapes,
    grad_scale: float,
    none_grads=(),
    dtype: torch.dtype = torch.float32,
) -> list[torch.Tensor]:
    parameters = []
    for index, shape in enumerate(shapes):
        p = torch.randn(shape, generator=g, dtype=dtype).requires_grad_(True)
        if index not in none_grads:
            p.grad = grad_scale * torch.randn(shape, generator=g, dtype=dtype)
        parameters.append(p)
    return parameters


def _copy(parameters: list[torch.Tensor]) -> list[torch.Tensor]:
    copies = []
    for p in parameters:
        q = p.detach().clone().requires_grad_(True)
        q.grad = None if p.grad is None else p.grad.clone()
        copies.append(q)
    return copies


def _total_norm(grads: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))


def _clip_mistakes(
    grads: list[torch.Tensor], max_norm: float
) -> dict[str, list[torch.Tensor]]:
    """The gradients after each classic clipping mistake."""
    total = _total_norm(grads)
    per_tensor = [
        g * min(1.0, max_norm / (float(g.double().norm()) + 1e-6)) for g in grads
    ]
    return {
        "per_tensor": per_tensor,
        "by_value": [g.clamp(-max_norm, max_norm) for g in grads],
        "always_scaled": [g * (max_norm / (total + 1e-6)) for g in grads],
        "sum_of_norms": [
            g
            * min(1.0, max_norm / (sum(float(h.double().norm()) for h in grads) + 1e-6))
            for g in grads
        ],
    }


_CLIP_MISTAKES = {
    "per_tensor": "each gradient tensor is clipped to max_norm separately. Clipping by "
    "global norm computes ONE norm over all gradients together and scales them all by "
    "the same factor, so the direction of the whole update is kept",
    "by_value": "the gradients are clipped by value (each entry clamped to "
    "[-max_norm, max_norm]); that changes the direction of the update. Scale all "
    "gradients by one factor instead",
    "always_scaled": "the gradients are scaled although their total norm is below "
    "max_norm: clipping only ever scales down (the factor is min(1, ...))",
    "sum_of_norms": "the total norm adds up the norms of the tensors. The global norm "
    "is the square root of the sum of ALL squared entries, i.e. the 2-norm of the "
    "vector of per-tensor norms",
}


def _close_lists(
    a: list[torch.Tensor], b: list[torch.Tensor], tolerance: float
) -> bool:
    return all(
        tuple(x.shape) == tuple(y.shape) and max_abs_error(x, y) <= tolerance
        for x, y in zip(a, b)
    )


def _run_clip_case(
    fn, label: str, parameters: list[torch.Tensor], max_norm: float, pass_as: str
) -> None:
    what = f"clip_grad_norm on {label}"
    theirs, ours = _copy(parameters), _copy(parameters)
    grad_objects = [p.grad for p in theirs]
    values_before = [p.detach().clone() for p in theirs]
    grads_before = [None if p.grad is None else p.grad.clone() for p in theirs]
    expected_total = _torch_clip(ours, max_norm)
    expected_grads = [p.grad for p in ours]
    if pass_as == "tensor":
        argument: Any = theirs[0]
    elif pass_as == "generator":
        argument = (p for p in theirs)
    else:
        argument = theirs
    with forbid_calls(
        *_CLIP_BUILTINS,
        reason="compute the global norm and scale the gradients yourself.",
    ):
        try:
            returned = call_student(fn, argument, max_norm, what=what)
        except ForbiddenCall:
            raise
        except CheckFailure as failure:
            cause = failure.__cause__
            if (
                isinstance(cause, (AttributeError, TypeError))
                and "NoneType" in str(cause)
                and any(grad is None for grad in grads_before)
            ):
                raise CheckFailure(
                    f"{failure} Some parameters have .grad None "
                    "(frozen, or unused in the loss): skip them, as "
                    "torch.nn.utils.clip_grad_norm_ does."
                ) from cause
            if pass_as == "tensor" and cause is not None:
                raise CheckFailure(
                    f"{failure} Here `parameters` was a single tensor, which "
                    "torch.nn.utils.clip_grad_norm_ accepts: wrap it in a list first."
                ) from cause
            if pass_as == "generator" and cause is not None:
                raise CheckFailure(
                    f"{failure} Here `parameters` was a generator "
                    "(model.parameters() is one), which can be iterated only once: "
                    "make a list of it first."
                ) from cause
            raise
    clipped = _total_norm([g for g in grads_before if g is not None]) > max_norm
    present = [i for i, g in enumerate(grads_before) if g is not None]
    if pass_as == "tensor":
        present = [0] if grads_before[0] is not None else []
    for i in range(len(theirs)):
        if max_abs_error(values_before[i], theirs[i].detach()) != 0:
            raise CheckFailure(
                f"{what} changed the parameters themselves (p.data or p); clipping "
                "scales the gradients p.grad and leaves the parameters alone."
            )
        if grads_before[i] is None and theirs[i].grad is not None:
            raise CheckFailure(
                f"{what} gave a gradient to a parameter whose .grad was "
                "None; leave such parameters alone."
            )
    for i in present:
        if theirs[i].grad is not grad_objects[i]:
            raise CheckFailure(
                f"{what} replaced p.grad by a new tensor (p.grad = ...). Scale the "
                "existing gradient in place, e.g. p.grad.mul_(factor), as "
                "torch.nn.utils.clip_grad_norm_ does."
            )
    got = [theirs[i].grad for i in present]
    want = [expected_grads[i] for i in present]
    before = [grads_before[i] for i in present]
    tolerance = 1e-5 * max(1.0, max((float(w.abs().max()) for w in want), default=1.0))
    if not _close_lists(got, want, tolerance):
        if clipped and _close_lists(got, before, 0.0):
            if pass_as == "tensor":
                raise CheckFailure(
                    f"{what} did not change the gradient. `parameters` can be a single "
                    "tensor, which torch.nn.utils.clip_grad_norm_ accepts: wrap it in "
                    "a list first (iterating over a tensor gives its rows, not the "
                    "tensor)."
                )
            if pass_as == "generator":
                raise CheckFailure(
                    f"{what} did not change the gradients. `parameters` can be a "
                    "generator (model.parameters() is one), which can be iterated only "
                    "once: turn it into a list first."
                )
            raise CheckFailure(
                f"{what} did not change the gradients although their total norm "
                f"{float(expected_total):.4g} exceeds max_norm = {max_norm}. Scale "
                "each p.grad in place (p.grad.mul_(factor)); returning new tensors "
                "changes nothing."
            )
        for name, variant in _clip_mistakes(before, max_norm).items():
            if _close_lists(got, variant, tolerance):
                raise CheckFailure(
                    f"{what}: the gradients are wrong because {_CLIP_MISTAKES[name]}."
                )
        for index, (a, b) in zip(present, zip(got, want)):
            expect_close(
                a, b, f"the clipped gradient of parameter {index} after {what}"
            )
    if returned is None:
        raise CheckFailure(
            f"{what} returned None: return the total norm of the gradients "
            "(before clipping) as a tensor."
        )
    if not isinstance(returned, torch.Tensor):
        raise CheckFailure(
            f"{what} returned {describe(returned)}; return the total norm as a tensor "
            "(0-dimensional, like torch.nn.utils.clip_grad_norm_)."
        )
    if returned.dim() != 0:
        raise CheckFailure(
            f"{what} returned a tensor of shape {tuple(returned.shape)}; "
            "the total norm is a single number, a 0-dimensional tensor."
        )
    value = float(returned.detach())
    expected_value = float(expected_total)
    if (
        clipped
        and abs(value - expected_value) > 1e-4 * max(1.0, expected_value)
        and abs(value - max_norm) < 1e-3 * max(1.0, max_norm)
    ):
        raise CheckFailure(
            f"{what} returned {value:.6g}, the norm after clipping. Return the total "
            f"norm before clipping ({expected_value:.6g}), as torch does: it tells you "
            "how large the gradient really was."
        )
    expect_close(
        returned.detach().reshape(()).to(torch.float64),
        expected_total.detach().reshape(()).to(torch.float64),
        f"the total norm returned by {what}",
        rtol=1e-5,
    )


@check
def check_clip_grad_norm(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(parameters, max_norm)`` against ``torch.nn.utils.clip_grad_norm_``.

    ``fn`` runs with ``torch.nn.utils.clip_grad_norm_`` (and its deprecated alias),
    ``clip_grads_with_norm_``, ``get_total_norm`` and the book's
    ``seqbook.models.recurrent_networks.clip_grad_norm`` disabled.
    """
    g = _generator(hidden)
    shapes = [(4, 3), (4,), (3, 3)]
    # (label, parameters, max_norm, passed as "list" / "generator" / "tensor")
    cases: list[tuple[str, list[torch.Tensor], float, str]] = []
    if not hidden:
        cases.append(
            (
                "three gradients of total norm about 9, max_norm = 1",
                _parameter_set(g, shapes, 2.0),
                1.0,
                "list",
            )
        )
        cases.append(
            (
                "the same kind of gradients with max_norm = 100 (no clipping)",
                _parameter_set(g, shapes, 2.0),
                100.0,
                "list",
            )
        )
        cases.append(
            (
                "a list with a parameter whose .grad is None",
                _parameter_set(g, shapes + [(2,)], 2.0, none_grads=(1,)),
                1.0,
                "list",
            )
        )
        cases.append(
            (
                "a generator such as model.parameters()",
                _parameter_set(g, shapes, 2.0),
                1.0,
                "generator",
            )
        )
        cases.append(
            ("a single tensor", _parameter_set(g, [(5, 2)], 3.0), 0.5, "tensor")
        )
    else:
        count = _randint(g, 2, 6)
        random_shapes = [
            tuple(_randint(g, 1, 7) for _ in range(_randint(g, 1, 3)))
            for _ in range(count)
        ]
        parameters = _parameter_set(
            g, random_shapes, float(torch.rand(1, generator=g)) * 5 + 0.5
        )
        total = _total_norm([p.grad for p in parameters])
        # Below the largest entry, so clipping by value or per tensor changes something.
        largest = max(float(p.grad.abs().max()) for p in parameters)
        cases.append(
            (
                f"{count} random gradients of total norm {total:.3g}, max_norm below",
                parameters,
                largest * (0.2 + 0.6 * float(torch.rand(1, generator=g))),
                "list",
            )
        )
        parameters = _parameter_set(g, random_shapes, 1.0)
        total = _total_norm([p.grad for p in parameters])
        cases.append(
            (
                f"random gradients of total norm {total:.3g}, max_norm above",
                parameters,
                total * 1.5,
                "list",
            )
        )
        parameters = _parameter_set(
            g, random_shapes + [(3,), (2, 2)], 2.0, none_grads=(count, 0)
        )
        cases.append(("parameters whose .grad is None", parameters, 0.3, "list"))
        cases.append(
            (
                "a generator of parameters",
                _parameter_set(g, random_shapes, 2.0),
                0.7,
                "generator",
            )
        )
        cases.append(
            (
                "float64 gradients",
                _parameter_set(g, random_shapes, 3.0, dtype=torch.float64),
                1.3,
                "list",
            )
        )
        cases.append(
            (
                "a single tensor",
                _parameter_set(g, [(_randint(g, 2, 9),)], 3.0),
                0.4,
                "tensor",
            )
        )
    for label, parameters, max_norm, pass_as in cases:
        _run_clip_case(fn, label, parameters, max_norm, pass_as)
        integrity.verify()
    return (
        f"clip_grad_norm matches torch.nn.utils.clip_grad_norm_ on {len(cases)} cases."
    )


integrity.protect_module("seqbook.models.recurrent_networks")
integrity.protect_module(__name__)
