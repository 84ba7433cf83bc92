"""Checks for the exercises of the section "Attention as a soft dictionary lookup".

* :func:`check_gaussian_attention_pooling` -- ``gaussian_attention_pooling(queries,
  keys, values, width, mask=None) -> (predictions (n_q,), weights (n_q, n_k))``,
  compared with the reference in :mod:`seqbook.models.soft_lookup`;
* :func:`check_training_step` -- ``training_step(model, optimizer, queries, keys,
  values, targets, mask=None) -> float``, compared with one reference step on a copy of
  the model.

Both name the classic mistakes: kernel values used without normalising, normalising over
the queries, the width used as a variance or the factor 2 missing, an unsquared
distance, a sign error, NaN for a query far from every key, a mask ignored, inverted or
applied after the softmax; forgetting ``zero_grad`` (gradients accumulate), stepping
before ``backward``, returning a tensor or the loss after the step, a summed loss.
``hidden=True`` draws sizes and values from a fresh random seed at grading time;
expected values are computed inside the check.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
import torch.nn.functional as F

from seqbook.checks import integrity
from seqbook.checks._harness import check, close_numbers, restore_class, verify
from seqbook.checks._harness import masked_softmax as _masked_softmax
from seqbook.checks._harness import random_uniform as _uniform
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
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.models import soft_lookup as _reference_module

__all__ = ["check_gaussian_attention_pooling", "check_training_step"]

# Captured at import, before any student code can touch the module.
_reference_pooling = _reference_module.gaussian_attention_pooling
_reference_step = _reference_module.training_step
_KernelRegression = _reference_module.KernelRegression
_true_function = _reference_module.true_function
_leave_one_out = _reference_module.leave_one_out_mask
_isnan = torch.isnan
_MODEL_ATTRIBUTES = {
    name: vars(_KernelRegression)[name] for name in ("__init__", "forward", "width")
}

_POOLING_REFERENCES = existing_paths(
    ("seqbook.models.soft_lookup.gaussian_attention_pooling",)
)
_STEP_REFERENCES = existing_paths(
    (
        "seqbook.models.soft_lookup.training_step",
        "seqbook.models.soft_lookup.fit_width",
    )
)

_generator = grading_generator
_randint = random_int


# ----------------------------------------------------------- Gaussian attention pooling


def _weight_variants(q, k, width: float, mask) -> dict[str, torch.Tensor]:
    """The weights as the classic mistakes compute them (the width as a float)."""
    diff = q[:, None] - k[None, :]  # (n_q, n_k)
    scores = -(diff**2) / (2 * width**2)
    kernel = scores.exp() if mask is None else scores.exp().masked_fill(~mask, 0.0)
    variants = {
        "unnormalised": kernel,
        "over_queries": _masked_softmax(scores, mask, dim=0),
        "width_as_variance": _masked_softmax(-(diff**2) / (2 * width), mask),
        "missing_two": _masked_softmax(-(diff**2) / width**2, mask),
        "variance_and_missing_two": _masked_softmax(-(diff**2) / width, mask),
        "not_squared": _masked_softmax(-diff.abs() / (2 * width**2), mask),
        "not_squared_width": _masked_softmax(-diff.abs() / width, mask),
        "sign": _masked_softmax(diff**2 / (2 * width**2), mask),
    }
    if mask is not None:
        variants["mask_ignored"] = torch.softmax(scores, dim=-1)
        variants["mask_inverted"] = _masked_softmax(scores, ~mask)
        variants["mask_after_softmax"] = torch.softmax(scores, dim=-1).masked_fill(
            ~mask, 0
        )
        variants["mask_with_zero"] = torch.softmax(
            scores.masked_fill(~mask, 0.0), dim=-1
        )
    return variants


_POOLING_MISTAKES = {
    "unnormalised": "the kernel values are used as weights directly: divide by their "
    "sum over the keys (a softmax of the scores does it) so that each query's weights "
    "sum to 1",
    "over_queries": "the weights are normalised over the queries (dim=0) instead of "
    "over the keys (dim=-1): each query's row of weights must sum to 1",
    "width_as_variance": "the width is used as a variance: the score is "
    "-(q - k)^2 / (2 width^2), with the width squared",
    "missing_two": "the factor 2 is missing: the score is -(q - k)^2 / (2 width^2)",
    "variance_and_missing_two": "the score is -(q - k)^2 / width: the width must be "
    "squared and the factor 2 kept, -(q - k)^2 / (2 width^2)",
    "not_squared": "the distance is not squared: the score is -(q - k)^2 / "
    "(2 width^2), not -|q - k| / (2 width^2)",
    "not_squared_width": "the distance and the width are not squared: the score is "
    "-(q - k)^2 / (2 width^2)",
    "sign": "the sign of the score is wrong: exp(+(q - k)^2 / ...) gives far keys the "
    "most weight. The score is -(q - k)^2 / (2 width^2)",
    "mask_ignored": "the mask is ignored: set the scores of masked keys (mask False) "
    "to -inf before the softmax",
    "mask_inverted": "the mask convention is inverted: True means 'may attend', so the "
    "keys where the mask is False must get zero weight",
    "mask_after_softmax": "the mask is applied after the softmax, so the remaining "
    "weights no longer sum to 1: set masked scores to -inf before the softmax",
    "mask_with_zero": "masked scores are set to 0, which is the LARGEST possible score "
    "here (all scores are <= 0): set them to -inf before the softmax",
}


def _diagnose_weights(
    weights: torch.Tensor, expected: torch.Tensor, q, k, width: float, mask
) -> str | None:
    """The named mistake that reproduces ``weights``, or None when none does, or when
    two do about equally well (a diagnosis could then be wrong, so none is given).

    Near-saturated softmaxes of large float32 scores differ by up to ~1e-4 between two
    orders of operations, so a mistake matches when it is within 1e-3 of the weights
    and ten times closer to them than the correct weights are."""
    weights = weights.detach().nan_to_num(0.0)
    distance_to_correct = max_abs_error(weights, expected)
    distances = sorted(
        (max_abs_error(weights, variant), name)
        for name, variant in _weight_variants(q, k, width, mask).items()
        if weights.shape == variant.shape
    )
    close = [
        (d, name) for d, name in distances if d < 1e-3 and d < 0.1 * distance_to_correct
    ]
    if not close:
        return None
    names = {name for _, name in close}
    if names == {"mask_ignored", "mask_with_zero"}:  # the diagonal scores are 0
        return (
            "the masked keys still get weight: the mask is ignored, or masked scores "
            "are set to 0 (here the score of a point against itself is already 0). "
            "Set the scores of masked keys to -inf before the softmax"
        )
    if len(close) == 1 or close[0][0] < 0.01 * close[1][0]:
        return _POOLING_MISTAKES[close[0][1]]
    return None


def _run_pooling_case(
    fn, label: str, q, k, v, width: float, mask, as_tensor: bool
) -> None:
    what = f"gaussian_attention_pooling on {label}"
    dtype = q.dtype
    inputs = [t.clone() for t in (q, k, v)]
    width_arg: Any = width
    if as_tensor:
        width_arg = torch.tensor(width, dtype=dtype, requires_grad=True)
    with forbid_calls(*_POOLING_REFERENCES, reason="write the pooling yourself."):
        result = call_student(
            fn,
            *inputs,
            width_arg,
            mask=None if mask is None else mask.clone(),
            what=what,
        )
    n_q, n_k = q.shape[0], k.shape[0]
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailure(
            f"{what} should return a pair (predictions, weights), got "
            f"{describe(result)}."
        )
    predictions, weights = result
    if (
        isinstance(predictions, torch.Tensor)
        and isinstance(weights, torch.Tensor)
        and tuple(predictions.shape) == (n_q, n_k)
        and tuple(weights.shape) == (n_q,)
    ):
        raise CheckFailure(f"{what}: return (predictions, weights), in that order.")
    expect_tensor(predictions, f"the predictions of {what}")
    if tuple(predictions.shape) == (n_q, 1) or tuple(predictions.shape) == (1, n_q):
        raise CheckFailure(
            f"the predictions of {what} have shape {tuple(predictions.shape)}"
            f"; expected {(n_q,)}: one number per query, no extra axis."
        )
    expect_tensor(predictions, f"the predictions of {what}", shape=(n_q,), dtype=dtype)
    expect_tensor(weights, f"the weights of {what}", shape=(n_q, n_k), dtype=dtype)
    for before, after, name in zip((q, k, v), inputs, ("queries", "keys", "values")):
        if max_abs_error(before, after) != 0:
            raise CheckFailure(f"{what} modified its {name} argument in place.")
    expected_predictions, expected_weights = _reference_pooling(q, k, v, width, mask)
    student_nan = bool(_isnan(weights.detach()).any()) or bool(
        _isnan(predictions.detach()).any()
    )
    scores = -((q[:, None] - k[None, :]) ** 2) / (2 * width**2)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    underflow = (scores.exp() == 0).all(dim=-1)  # (n_q,): every kernel value is 0
    nan_rows = _isnan(weights.detach()).any(dim=-1) | _isnan(predictions.detach())
    if student_nan and bool((nan_rows & underflow).any()):
        raise CheckFailure(
            f"{what}: the result contains NaN for query "
            f"{int((nan_rows & underflow).int().argmax())}, which is far from every "
            "key: each of its kernel values exp(-(q - k)^2 / (2 width^2)) underflows "
            "to 0, and 0 / 0 = NaN. "
            "Compute the weights as torch.softmax of the scores -(q - k)^2 / "
            "(2 width^2): it subtracts the largest score first, so the nearest key "
            "gets weight ~1."
        )
    if max_abs_error(weights, expected_weights) > 1e-5:
        mistake = _diagnose_weights(weights, expected_weights, q, k, width, mask)
        if mistake is not None:
            raise CheckFailure(f"{what}: the weights are wrong because {mistake}.")
        if not student_nan:
            sums = weights.detach().double().sum(dim=-1)
            if max_abs_error(sums, torch.ones_like(sums)) > 1e-4:
                raise CheckFailure(
                    f"{what}: each query's weights must sum to 1 over the keys; row "
                    f"sums are {[round(float(s), 4) for s in sums[:4]]}"
                    f"{' ...' if n_q > 4 else ''}."
                )
    # float32 scores of a few hundred carry rounding errors of ~1e-5 relative.
    rtol = 1e-3 if dtype == torch.float32 else 1e-6
    expect_close(weights, expected_weights, f"the weights of {what}", rtol=rtol)
    if max_abs_error(predictions, expected_predictions) > 1e-5:
        if max_abs_error(predictions, expected_weights @ k) < 1e-5:
            raise CheckFailure(
                f"{what}: the predictions average the keys; they must "
                "average the values (weights @ values)."
            )
    expect_close(
        predictions, expected_predictions, f"the predictions of {what}", rtol=rtol
    )
    if as_tensor:
        reference_width = torch.tensor(width, dtype=dtype, requires_grad=True)
        reference_predictions, _ = _reference_pooling(q, k, v, reference_width, mask)
        upstream = torch.randn(
            n_q, dtype=dtype, generator=torch.Generator().manual_seed(1)
        )
        (expected_grad,) = torch.autograd.grad(
            (reference_predictions * upstream).sum(), reference_width
        )
        try:
            (grad,) = torch.autograd.grad((predictions * upstream).sum(), width_arg)
        except RuntimeError as err:
            raise CheckFailure(
                f"{what}: no gradient reaches the width ({err}). The learned model "
                "needs it: compute with tensor operations on `width` "
                "(no float(), .item() or math functions)."
            ) from err
        expect_close(
            grad,
            expected_grad,
            f"the gradient of {what} with respect to the width",
            atol=1e-5,
            rtol=1e-3,
        )


def _points(g: torch.Generator, n: int, low: float, high: float, dtype=torch.float32):
    return (low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)).to(
        dtype
    )


@check
def check_gaussian_attention_pooling(
    fn: Callable[..., Any], hidden: bool = False
) -> str:
    """Check ``fn(queries, keys, values, width, mask=None) -> (predictions, weights)``.

    ``fn`` runs with the book's
    ``seqbook.models.soft_lookup.gaussian_attention_pooling`` disabled.
    """
    g = _generator(hidden)
    # (label, q, k, v, width, mask, width given as a tensor)
    cases: list[tuple] = []
    if not hidden:
        q = torch.tensor([0.5, 1.2, 2.0, 3.3])
        k = torch.tensor([0.0, 0.8, 1.5, 2.1, 2.9, 4.0])
        v = torch.tensor([1.0, -0.5, 2.0, 0.3, -1.2, 0.7])
        cases.append(("4 queries, 6 keys, width 0.7", q, k, v, 0.7, None, False))
        cases.append(
            (
                "the same inputs in float64, width 0.3 given as a tensor "
                "(gradient checked)",
                q.double(),
                k.double(),
                v.double(),
                0.3,
                None,
                True,
            )
        )
        cases.append(
            (
                "6 points attending to each other with the diagonal masked",
                k,
                k,
                v,
                0.7,
                _leave_one_out(6),
                False,
            )
        )
        mask = torch.tensor(
            [
                [1, 1, 0, 1, 1, 1],
                [0, 1, 1, 1, 1, 0],
                [1, 1, 1, 0, 0, 1],
                [1, 0, 1, 1, 0, 1],
            ],
            dtype=torch.bool,
        )
        cases.append(
            (
                "4 queries, 6 keys, some keys masked, width 0.7",
                q,
                k,
                v,
                0.7,
                mask,
                False,
            )
        )
        cases.append(
            (
                "a query at 40, far from every key, width 0.3 (float64)",
                torch.tensor([1.0, 40.0], dtype=torch.float64),
                k.double(),
                v.double(),
                0.3,
                None,
                False,
            )
        )
    else:
        n_q, n_k = _randint(g, 2, 12), _randint(g, 6, 15)
        # Away from 0.5, 1 and 2, where two of the named mistakes give equal weights.
        small, large = _uniform(g, 0.2, 0.35), _uniform(g, 1.3, 1.8)
        q, k = _points(g, n_q, -2, 2), _points(g, n_k, -2, 2)
        v = torch.randn(n_k, generator=g)
        cases.append(
            (
                f"{n_q} random queries, {n_k} keys, width {small:.3f}",
                q,
                k,
                v,
                small,
                None,
                False,
            )
        )
        q64, k64, v64 = (t.double() for t in (q, k, v))
        cases.append(
            (
                f"float64 inputs, width {large:.3f} as a tensor (gradient checked)",
                q64,
                k64,
                v64,
                large,
                None,
                True,
            )
        )
        mask = _leave_one_out(n_k) & (torch.rand(n_k, n_k, generator=g) < 0.8)
        mask[torch.arange(n_k), (torch.arange(n_k) + 1) % n_k] = True  # no empty row
        cases.append(
            (
                f"{n_k} points attending to each other, diagonal and random keys "
                f"masked, width {large:.3f}",
                k,
                k,
                v,
                large,
                mask,
                False,
            )
        )
        cases.append(
            (
                "a single float64 query, width as a tensor",
                q64[:1],
                k64,
                v64,
                small,
                None,
                True,
            )
        )
        # float64: the weights of a far query depend on tiny differences of huge scores,
        # which float32 rounds differently in different (correct) orders of operations.
        far = q64.clone()
        far[_randint(g, 0, n_q - 1)] = _uniform(g, 40, 100) * (
            1 if _randint(g, 0, 1) else -1
        )
        cases.append(
            ("a query far from every key (float64)", far, k64, v64, small, None, False)
        )
    for label, q, k, v, width, mask, as_tensor in cases:
        _run_pooling_case(fn, label, q, k, v, width, mask, as_tensor)
        integrity.verify()
    return f"gaussian_attention_pooling matches the reference on {len(cases)} cases."


# ---------------------------------------------------------------------- training step


def _make_step_variant(kind: str) -> Callable[..., float]:
    """One training step as a classic mistake does it (``kind`` = "reference" for the
    correct one)."""

    def step(model, optimizer, q, k, v, t, mask):
        if kind not in ("no_zero_grad", "step_before_backward_no_zero"):
            optimizer.zero_grad()
        predictions = model(q, k, v, None if kind == "mask_ignored" else mask)
        reduction = "sum" if kind == "sum_loss" else "mean"
        loss = F.mse_loss(predictions, t, reduction=reduction)
        if kind == "step_before_backward_no_zero":
            optimizer.step()
            loss.backward()
        elif kind == "no_step":
            loss.backward()
        else:
            loss.backward()
            optimizer.step()
        if kind == "loss_after_step":
            with torch.no_grad():
                return F.mse_loss(model(q, k, v, mask), t).item()
        return loss.item()

    return step


_STEP_MISTAKES = {
    "no_zero_grad": "the gradients are not zeroed: call optimizer.zero_grad() before "
    "loss.backward(), or the gradients of earlier steps accumulate in .grad and are "
    "applied again",
    "step_before_backward_no_zero": "optimizer.step() runs before loss.backward() and "
    "without zero_grad, so the step applies an old gradient: the order is zero_grad, "
    "forward, loss, backward, step",
    "no_step": "the parameter did not change: optimizer.step() is missing, or it runs "
    "before loss.backward() while .grad is still empty. The order is zero_grad, "
    "forward, loss, backward, step",
    "sum_loss": "the loss is the SUM of the squared errors: use their mean "
    "(F.mse_loss(predictions, targets), whose default reduction is 'mean')",
    "mask_ignored": "the mask is not passed to the model: call "
    "model(queries, keys, values, mask), or every training point also attends to "
    "itself",
    "loss_after_step": "the returned loss is computed after optimizer.step(): return "
    "the loss of the forward pass that the step used (the loss before the step)",
}


def _verify_model_class() -> None:
    """The model class the check trains must be the book's: undo and report changes."""
    restore_class(
        _KernelRegression,
        _MODEL_ATTRIBUTES,
        "seqbook.models.soft_lookup.KernelRegression.",
    )


_close = functools.partial(close_numbers, rtol=1e-5, atol=1e-6)


def _fresh(width: float, dtype, stale: float | None, make_optimizer):
    model = _KernelRegression(width).to(dtype)
    if stale is not None:
        model.log_width.grad = torch.full((), stale, dtype=dtype)
    return model, make_optimizer(model.parameters())


def _trajectory(kind: str, case: dict) -> list[tuple[float, float]]:
    """(loss returned, log-width after) for each call of a variant, from the same
    start."""
    model, optimizer = _fresh(
        case["width"], case["dtype"], case["stale"], case["make_optimizer"]
    )
    step = _make_step_variant(kind)
    path = []
    for _ in range(case["calls"]):
        loss = step(model, optimizer, *case["tensors"], case["mask"])
        path.append((loss, float(model.log_width.detach())))
    return path


def _run_step_case(fn, case: dict) -> None:
    what = f"training_step on {case['label']}"
    reference = _trajectory("reference", case)
    variants = {kind: _trajectory(kind, case) for kind in _STEP_MISTAKES}
    model, optimizer = _fresh(
        case["width"], case["dtype"], case["stale"], case["make_optimizer"]
    )
    tensors = case["tensors"]
    for call, (expected_loss, expected_param) in enumerate(reference):
        call_what = what + (
            f" (call {call + 1} of {case['calls']})" if case["calls"] > 1 else ""
        )
        before_param = float(model.log_width.detach())
        inputs = [t.clone() for t in tensors]
        mask = None if case["mask"] is None else case["mask"].clone()
        try:
            with forbid_calls(
                *_STEP_REFERENCES, reason="write the training step yourself."
            ):
                loss = call_student(
                    fn, model, optimizer, *inputs, mask=mask, what=call_what
                )
        finally:
            _verify_model_class()
        if loss is None:
            raise CheckFailure(f"{call_what} returned None: did you forget a `return`?")
        if isinstance(loss, torch.Tensor):
            raise CheckFailure(
                f"{call_what} returned {describe(loss)}; return the loss as a Python "
                "float with loss.item() (a tensor keeps the whole graph alive)."
            )
        if not isinstance(loss, float):
            raise CheckFailure(
                f"{call_what} returned {describe(loss)}; expected a float "
                "(loss.item())."
            )
        for before, after, name in zip(
            tensors, inputs, ("queries", "keys", "values", "targets")
        ):
            if max_abs_error(before, after) != 0:
                raise CheckFailure(
                    f"{call_what} modified its {name} argument in place."
                )
        param = float(model.log_width.detach())
        if _close(loss, expected_loss) and _close(param, expected_param):
            continue
        found = [
            kind
            for kind, path in variants.items()
            if _close(loss, path[call][0]) and _close(param, path[call][1])
        ]
        if len(found) == 1:
            raise CheckFailure(f"{call_what}: {_STEP_MISTAKES[found[0]]}.")
        if param == before_param:
            raise CheckFailure(f"{call_what}: {_STEP_MISTAKES['no_step']}.")
        if not _close(loss, expected_loss):
            raise CheckFailure(
                f"{call_what} returned the loss {loss:.6g}; expected the mean squared "
                f"error before the step, {expected_loss:.6g}."
            )
        raise CheckFailure(
            f"{call_what}: after the step log_width is {param:.6g}; one step of the "
            f"optimizer you are given leads to {expected_param:.6g}. Use "
            "optimizer.step() (not a hand-written update) after loss.backward()."
        )


def _step_data(g: torch.Generator, n: int, dtype=torch.float32):
    x = _points(g, n, 0, 5, torch.float64).sort().values
    y = _true_function(x) + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def _case(
    label,
    width,
    tensors,
    mask,
    make_optimizer,
    calls=1,
    stale=None,
    dtype=torch.float32,
) -> dict:
    return {
        "label": label,
        "width": width,
        "tensors": tensors,
        "mask": mask,
        "make_optimizer": make_optimizer,
        "calls": calls,
        "stale": stale,
        "dtype": dtype,
    }


@check(also=_verify_model_class)
def check_training_step(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(model, optimizer, queries, keys, values, targets, mask=None) ->
    float``.

    The model is a fresh :class:`seqbook.models.soft_lookup.KernelRegression`; after
    each call its parameter must equal that of a copy trained by one reference step, and
    the returned float must be the loss before the step.
    """
    g = _generator(hidden)
    cases = []
    if not hidden:
        x, y = _step_data(g, 30)
        loo = _leave_one_out(30)

        def sgd(params):
            return torch.optim.SGD(params, lr=0.5)

        def adam(params):
            return torch.optim.Adam(params, lr=0.05)

        cases.append(
            _case(
                "30 training points, leave-one-out mask, SGD (lr 0.5)",
                1.0,
                (x, x, y, y),
                loo,
                sgd,
            )
        )
        cases.append(
            _case(
                "the same, called twice in a row", 1.0, (x, x, y, y), loo, sgd, calls=2
            )
        )
        xq, yq = _step_data(g, 12)
        cases.append(
            _case(
                "12 queries and 30 separate keys, no mask, Adam (lr 0.05), a "
                "stale gradient left in .grad",
                0.5,
                (xq, x, y, yq),
                None,
                adam,
                stale=0.7,
            )
        )
    else:
        n = _randint(g, 15, 40)
        x, y = _step_data(g, n)
        loo = _leave_one_out(n)
        width = _uniform(g, 0.3, 2.0)
        lr = _uniform(g, 0.1, 1.0)
        momentum = _uniform(g, 0.5, 0.9)

        def sgd_momentum(params):
            return torch.optim.SGD(params, lr=lr, momentum=momentum)

        def adam(params):
            return torch.optim.Adam(params, lr=lr / 10)

        def sgd(params):
            return torch.optim.SGD(params, lr=lr)

        cases.append(
            _case(
                f"{n} points, leave-one-out mask, SGD with momentum, 3 calls",
                width,
                (x, x, y, y),
                loo,
                sgd_momentum,
                calls=3,
            )
        )
        stale = _uniform(g, 0.3, 1.0) * (1 if _randint(g, 0, 1) else -1)
        cases.append(
            _case(
                "leave-one-out mask, Adam, a stale gradient, 2 calls",
                width,
                (x, x, y, y),
                loo,
                adam,
                calls=2,
                stale=stale,
            )
        )
        mask = loo & (torch.rand(n, n, generator=g) < 0.7)
        mask[torch.arange(n), (torch.arange(n) + 1) % n] = True
        cases.append(
            _case(
                "a random mask (diagonal masked), SGD", width, (x, x, y, y), mask, sgd
            )
        )
        m = _randint(g, 5, 20)
        x64, y64 = x.double(), y.double()
        xq, yq = _step_data(g, m, torch.float64)
        cases.append(
            _case(
                f"float64, {m} queries and {n} separate keys, no mask, SGD, 2 calls",
                width,
                (xq, x64, y64, yq),
                None,
                sgd,
                calls=2,
                dtype=torch.float64,
            )
        )
    for case in cases:
        _run_step_case(fn, case)
        verify(also=_verify_model_class)
    return f"training_step matches one reference step on {len(cases)} cases."


integrity.protect_module("seqbook.models.soft_lookup")
integrity.protect_module(__name__)
