"""Checks for the exercises of the section "A Transformer from blocks".

``check_causal_lm_loss`` runs the student's ``causal_lm_loss(logits, tokens,
pad_id=None)`` and compares it with the reference in
:mod:`seqbook.models.transformer_from_blocks`; when it differs it recognises the classic
mistakes (no shift, so each position is scored on its own token; the shift in the wrong
direction; ``(B, T, V)`` logits handed to ``cross_entropy`` unflattened, which reads the
time axis as the classes; logits and targets flattened in different orders; a sum
instead of a mean; padding counted; a mean of per-sequence means; padding recognised by
the input instead of the target) and names them.

``check_masked_mean_pool`` does the same for ``masked_mean_pool(hidden, mask)`` (a mean
over all positions, padding included; dividing by ``T`` instead of the number of real
tokens; a sum; the mask broadcast along the feature axis; an inverted mask; ``NaN`` or
anything but zeros for a row without real tokens; an input modified in place).

``hidden=False`` is the friendly visible check. ``hidden=True`` draws sizes, values and
masks from a fresh random seed at grading time and computes the expected answers with
the reference inside the check.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from seqbook.checks import integrity
from seqbook.checks._harness import check
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
from seqbook.models import transformer_from_blocks as _reference_module

__all__ = ["check_causal_lm_loss", "check_masked_mean_pool"]

# Captured at import, before any student code can touch the modules.
_reference_loss = _reference_module.causal_lm_loss
_reference_pool = _reference_module.masked_mean_pool
_cross_entropy = F.cross_entropy
_log_softmax = torch.log_softmax

_LOSS_REFERENCE = existing_paths(
    ("seqbook.models.transformer_from_blocks.causal_lm_loss",)
)
_POOL_REFERENCE = existing_paths(
    ("seqbook.models.transformer_from_blocks.masked_mean_pool",)
)


# ----------------------------------------------------------------- the causal LM loss


def _token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each (position, target) pair: logits (B, n, V), targets
    (B, n)."""
    log_probs = _log_softmax(logits.double(), dim=-1)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, n)


def _loss_variants(
    logits: torch.Tensor, tokens: torch.Tensor, pad_id: int | None
) -> dict[str, float]:
    """The loss as the classic mistakes compute it (on float64 copies)."""
    batch, length, vocab = logits.shape
    variants: dict[str, float] = {}
    real = (
        torch.ones_like(tokens, dtype=torch.bool)
        if pad_id is None
        else tokens != pad_id
    )  # (B, T)
    shifted = _token_losses(logits[:, :-1], tokens[:, 1:])  # (B, T-1)
    keep = real[:, 1:]
    variants["no_shift"] = float(_token_losses(logits, tokens)[real].mean())
    backwards = _token_losses(logits[:, 1:], tokens[:, :-1])
    variants["wrong_direction"] = float(backwards[real[:, :-1]].mean())
    variants["sum"] = float(shifted[keep].sum())
    variants["sum_over_batch"] = float(shifted[keep].sum() / batch)
    variants["mean_over_all_then_pad_ignored_as_zero"] = float(
        (shifted * keep).sum() / shifted.numel()
    )
    if pad_id is not None:
        variants["pads_counted"] = float(shifted.mean())
        by_input = real[:, :-1]
        variants["pad_by_input"] = float(shifted[by_input].mean())
        per_sequence = (shifted * keep).sum(1) / keep.sum(1).clamp(min=1)
        variants["mean_of_means"] = float(per_sequence[keep.any(1)].mean())
    # Logits flattened time-major, targets batch-major (or the other way round).
    time_major = logits[:, :-1].transpose(0, 1).reshape(-1, vocab)
    mixed = _token_losses(
        time_major.reshape(1, -1, vocab), tokens[:, 1:].reshape(1, -1)
    )
    variants["mixed_flatten"] = float(mixed[keep.reshape(1, -1)].mean())
    # (B, T-1, V) straight into cross_entropy: axis 1 (time) read as the classes. It
    # only runs when T - 1 == V, and then scores garbage.
    if length - 1 == vocab:
        targets = tokens[:, 1:]
        raw = _cross_entropy(
            logits[:, :-1].double(), targets.clamp(max=length - 2), reduction="mean"
        )
        variants["unflattened"] = float(raw)
    return variants


_LOSS_MISTAKES = {
    "no_shift": "there is no shift: each position is scored on its *own* token, which "
    "it can see (after training such a loss is close to 0). Position t must predict "
    "token t + 1: compare logits[:, :-1] with tokens[:, 1:]",
    "wrong_direction": "the shift goes the wrong way: logits[:, 1:] are scored against "
    "tokens[:, :-1], so position t 'predicts' the token before it. Use logits[:, :-1] "
    "with tokens[:, 1:]",
    "sum": "the token losses are summed; the loss must be their mean",
    "sum_over_batch": "the token losses are summed over time and averaged over the "
    "batch only; the loss is the mean over all (real) target tokens",
    "mean_over_all_then_pad_ignored_as_zero": "padded targets are zeroed but still "
    "counted in the denominator: divide by the number of real targets",
    "pads_counted": "targets equal to pad_id are counted: leave them out of the mean "
    "(e.g. cross_entropy(..., ignore_index=pad_id))",
    "pad_by_input": "padding is recognised by the *input* token instead of the "
    "*target* token: a position is left out when the token it must predict, "
    "tokens[:, t + 1], is pad_id",
    "mean_of_means": "it averages per-sequence means; every real target token must "
    "weigh the same, so take one mean over all of them",
    "mixed_flatten": "logits and targets are flattened in different orders (one "
    "time-major, the other batch-major), so predictions are scored against the wrong "
    "tokens. Flatten both with .reshape(-1, V) and .reshape(-1) from (B, T-1, ...)",
    "unflattened": "(B, T-1, V) logits were passed to cross_entropy directly: it reads "
    "axis 1, time, as the classes. Flatten to (B*(T-1), V) and (B*(T-1),), or move the "
    "vocabulary to axis 1 with .transpose(1, 2)",
}


def _loss_hint(err: CheckFailure) -> CheckFailure:
    text = str(err)
    if "Expected target size" in text or "Expected input batch_size" in text:
        return CheckFailure(f"{text} -- {_LOSS_MISTAKES['unflattened']}.")
    if "view size is not compatible" in text:
        return CheckFailure(
            f"{text} -- logits[:, :-1] is not contiguous in memory, so "
            ".view fails on it: use .reshape instead."
        )
    return err


def _run_loss_case(
    fn: Callable[..., Any],
    label: str,
    logits: torch.Tensor,
    tokens: torch.Tensor,
    pad_id: int | None,
    check_gradients: bool,
) -> None:
    what = f"causal_lm_loss on {label}"
    student_logits = logits.clone().requires_grad_(check_gradients)
    student_tokens = tokens.clone()
    kwargs = {} if pad_id is None else {"pad_id": pad_id}
    with forbid_calls(*_LOSS_REFERENCE):
        try:
            loss = call_student(fn, student_logits, student_tokens, what=what, **kwargs)
        except CheckFailure as err:
            raise _loss_hint(err) from err
    expected = _reference_loss(logits, tokens, pad_id)
    expect_tensor(loss, what)
    if loss.dim() != 0:
        raise CheckFailure(
            f"{what} returned a tensor of shape {tuple(loss.shape)}; the loss must be "
            "a single number (a 0-dimensional tensor), the mean over all real targets."
        )
    if loss.dtype != logits.dtype:
        raise CheckFailure(
            f"{what} has dtype {loss.dtype}, expected {logits.dtype} "
            "(the dtype of the logits)."
        )
    if (
        max_abs_error(student_tokens, tokens) != 0
        or max_abs_error(student_logits.detach(), logits) != 0
    ):
        raise CheckFailure(f"{what} modified its arguments in place.")
    if max_abs_error(loss, expected) > 1e-6 * max(1.0, abs(float(expected))):
        for name, value in _loss_variants(logits, tokens, pad_id).items():
            if (
                abs(value - float(loss.detach())) < 1e-6 * max(1.0, abs(value))
                and abs(value - float(expected)) > 1e-5
            ):
                raise CheckFailure(
                    f"{what}: wrong value {float(loss):.6g} (expected "
                    f"{float(expected):.6g}) because "
                    f"{_LOSS_MISTAKES[name]}."
                )
        raise CheckFailure(
            f"{what}: got {float(loss):.6g}, expected {float(expected):.6g}."
        )
    if check_gradients:
        if not loss.requires_grad:
            raise CheckFailure(
                f"{what}: the loss is detached from the logits; gradients "
                "must flow back to them."
            )
        (grad,) = torch.autograd.grad(loss, student_logits)
        reference_logits = logits.clone().requires_grad_(True)
        (expected_grad,) = torch.autograd.grad(
            _reference_loss(reference_logits, tokens, pad_id), reference_logits
        )
        expect_close(
            grad,
            expected_grad,
            f"the gradient of {what} with respect to the logits",
            atol=1e-7,
            rtol=1e-5,
        )


def _random_tokens(
    g: torch.Generator, batch: int, length: int, vocab: int, pad_id: int | None
) -> torch.Tensor:
    if pad_id is None:
        return torch.randint(0, vocab, (batch, length), generator=g)
    real_ids = torch.tensor([i for i in range(vocab) if i != pad_id])
    tokens = real_ids[torch.randint(0, vocab - 1, (batch, length), generator=g)]
    lengths = torch.randint(2, length + 1, (batch,), generator=g)
    lengths[0] = length  # one sequence without padding
    if batch > 1:
        lengths[1] = min(length, 2 + length // 3)  # one with a lot of padding
    tokens[torch.arange(length)[None, :] >= lengths[:, None]] = pad_id
    return tokens


@check
def check_causal_lm_loss(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(logits, tokens, pad_id=None)`` -> mean next-token cross-entropy."""
    g = grading_generator(hidden)
    cases: list[tuple[str, torch.Tensor, torch.Tensor, int | None, bool]] = []
    if not hidden:
        logits = torch.randn(2, 5, 7, generator=g)
        tokens = torch.randint(0, 7, (2, 5), generator=g)
        cases.append(
            ("logits (B=2, T=5, V=7) without pad_id", logits, tokens, None, False)
        )
        tokens = _random_tokens(g, 3, 6, 9, pad_id=0)
        logits = torch.randn(3, 6, 9, generator=g)
        cases.append(
            ("a padded batch (B=3, T=6, V=9), pad_id=0", logits, tokens, 0, False)
        )
        logits = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
        tokens = torch.randint(0, 4, (2, 5), generator=g)
        cases.append(
            (
                "float64 logits with T - 1 == V (gradients checked)",
                logits,
                tokens,
                None,
                True,
            )
        )
    else:
        for index in range(4):
            batch, length = random_int(g, 1, 5), random_int(g, 3, 14)
            vocab = random_int(g, 3, 30)
            if index == 2:
                vocab = length - 1  # an unflattened (B, T-1, V) call runs silently
            pad_id = None if index % 2 == 0 else random_int(g, 0, vocab - 1)
            if pad_id is not None:
                batch = max(batch, 2)
            tokens = _random_tokens(g, batch, length, vocab, pad_id)
            dtype = torch.float64 if index == 3 else torch.float32
            logits = 3 * torch.randn(batch, length, vocab, generator=g, dtype=dtype)
            label = (
                f"random logits (B={batch}, T={length}, V={vocab}), "
                f"pad_id={pad_id}, {str(dtype).replace('torch.', '')}"
            )
            cases.append((label, logits, tokens, pad_id, index >= 2))
    for label, logits, tokens, pad_id, grads in cases:
        _run_loss_case(fn, label, logits, tokens, pad_id, grads)
        integrity.verify()
    return f"causal_lm_loss matches the reference on {len(cases)} cases."


# ------------------------------------------------------------------- masked mean pool


def _pool_variants(hidden: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    h = hidden.double()
    m = mask.double().unsqueeze(-1)  # (B, T, 1)
    length = hidden.shape[1]
    count = m.sum(1).clamp(min=1)
    variants = {
        "mean_all": h.mean(1),
        "divide_by_T": (h * m).sum(1) / length,
        "sum": (h * m).sum(1),
        "inverted": (h * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1),
    }
    if hidden.shape[1] == hidden.shape[2]:  # a (B, 1, T) mask broadcasts along D
        along_d = mask.double().unsqueeze(1)  # (B, 1, T)
        variants["feature_axis"] = (h * along_d).sum(1) / count
    return variants


_POOL_MISTAKES = {
    "mean_all": "it averages over all T positions, padding included: average over the "
    "real tokens only (where mask is True)",
    "divide_by_T": "the masked sum is divided by T, the padded length; divide by the "
    "number of real tokens of each sequence, mask.sum(dim=1)",
    "sum": "it returns the masked sum; divide by the number of real tokens to get the "
    "mean",
    "inverted": "it averages the padding positions: True in the mask marks the real "
    "tokens",
    "feature_axis": "the mask is broadcast along the wrong axis: as (B, 1, T) it "
    "multiplies the features, not the positions. Give it a trailing axis, "
    "mask.unsqueeze(-1), of shape (B, T, 1)",
}


def _run_pool_case(
    fn: Callable[..., Any],
    label: str,
    hidden: torch.Tensor,
    mask: torch.Tensor,
    check_gradients: bool,
) -> None:
    what = f"masked_mean_pool on {label}"
    student_hidden = hidden.clone().requires_grad_(check_gradients)
    student_mask = mask.clone()
    with forbid_calls(*_POOL_REFERENCE):
        try:
            pooled = call_student(fn, student_hidden, student_mask, what=what)
        except CheckFailure as err:
            if "must match the size of tensor" in str(err):
                raise CheckFailure(
                    f"{err} -- probably the mask is broadcast along the wrong axis: a "
                    "(B, T) mask against (B, T, D) hidden needs a trailing axis, "
                    "mask.unsqueeze(-1) of shape (B, T, 1)."
                ) from err
            raise
    expected = _reference_pool(hidden, mask)
    batch, _, dim = hidden.shape
    expect_tensor(pooled, what)
    if tuple(pooled.shape) != (batch, dim):
        extra = ""
        if tuple(pooled.shape) == (batch, 1, dim):
            extra = " Drop the pooled axis (no keepdim=True)."
        raise CheckFailure(
            f"{what} has shape {tuple(pooled.shape)}, expected "
            f"{(batch, dim)}: one vector per sequence.{extra}"
        )
    if pooled.dtype != hidden.dtype:
        raise CheckFailure(
            f"{what} has dtype {pooled.dtype}, expected {hidden.dtype} "
            "(the dtype of hidden): convert the boolean mask to "
            "hidden.dtype, not to a fixed float type."
        )
    if max_abs_error(student_hidden.detach(), hidden) != 0 or not bool(
        (student_mask == mask).all()
    ):
        raise CheckFailure(
            f"{what} modified hidden or mask in place; work on new "
            "tensors (e.g. hidden * weights instead of hidden[~mask] = 0)."
        )
    empty = ~mask.any(dim=1)  # (B,)
    if bool(empty.any()):
        rows = pooled.detach()[empty]
        if bool(torch.isnan(rows).any()):
            raise CheckFailure(
                f"{what}: a sequence without real tokens gives NaN, a mean of nothing "
                "(0 / 0). It must give zeros: divide by the count clamped to at least "
                "1."
            )
        if max_abs_error(rows, torch.zeros_like(rows)) > 1e-6:
            raise CheckFailure(
                f"{what}: a sequence without real tokens must give a vector of zeros."
            )
    if max_abs_error(pooled, expected) > 1e-5:
        for name, variant in _pool_variants(hidden, mask).items():
            real_rows = ~empty
            scale = (
                1.0 + float(variant[real_rows].abs().max()) if variant.numel() else 1.0
            )
            if (
                max_abs_error(pooled.detach()[real_rows], variant[real_rows])
                < 1e-5 * scale
            ):
                raise CheckFailure(
                    f"{what}: wrong values because {_POOL_MISTAKES[name]}."
                )
    expect_close(pooled, expected, what)
    if check_gradients:
        upstream = torch.randn(expected.shape, dtype=hidden.dtype)
        try:
            (grad,) = torch.autograd.grad((pooled * upstream).sum(), student_hidden)
        except RuntimeError as err:
            raise CheckFailure(f"{what}: gradients do not flow back to hidden ({err}).")
        reference_hidden = hidden.clone().requires_grad_(True)
        (expected_grad,) = torch.autograd.grad(
            (_reference_pool(reference_hidden, mask) * upstream).sum(), reference_hidden
        )
        expect_close(
            grad, expected_grad, f"the gradient of {what} with respect to hidden"
        )


def _random_mask(
    g: torch.Generator, batch: int, length: int, empty_row: bool
) -> torch.Tensor:
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    if batch > 1:
        lengths[-1] = 1
    if empty_row:
        lengths[random_int(g, 1, batch - 1) if batch > 1 else 0] = 0
    return torch.arange(length)[None, :] < lengths[:, None]  # (B, T)


@check
def check_masked_mean_pool(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(hidden (B, T, D), mask (B, T) bool) -> (B, D)``."""
    g = grading_generator(hidden)
    cases: list[tuple[str, torch.Tensor, torch.Tensor, bool]] = []
    if not hidden:
        x = torch.randn(3, 5, 4, generator=g)
        mask = torch.tensor(
            [[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4]
        )
        cases.append(("hidden (B=3, T=5, D=4) with lengths 5, 3, 1", x, mask, False))
        x = torch.randn(2, 4, 4, generator=g, dtype=torch.float64)
        mask = torch.tensor([[True, True, False, False], [True, False, True, True]])
        cases.append(
            ("float64 hidden (B=2, T=4, D=4), gaps in the mask", x, mask, True)
        )
        x = torch.randn(2, 3, 2, generator=g)
        mask = torch.tensor([[True, True, False], [False, False, False]])
        cases.append(("a batch whose second row is all padding", x, mask, False))
    else:
        for index in range(4):
            batch, length = random_int(g, 2, 6), random_int(g, 2, 12)
            # D = T once, so that pooling over the wrong axis runs and gives wrong
            # values; D >= 2, since with D = 1 that mistake only shows as a wrong shape.
            dim = length if index == 1 else random_int(g, 2, 16)
            dtype = torch.float64 if index >= 2 else torch.float32
            x = 2 * torch.randn(batch, length, dim, generator=g, dtype=dtype) + 1
            mask = _random_mask(g, batch, length, empty_row=index == 3)
            if index == 2:  # holes anywhere, not only at the end
                mask = torch.rand(batch, length, generator=g) < 0.6
                mask[:, 0] = True
            label = (
                f"random hidden (B={batch}, T={length}, D={dim}), "
                f"{str(dtype).replace('torch.', '')}"
                + (", one row all padding" if index == 3 else "")
            )
            cases.append((label, x, mask, index >= 2))
    for label, x, mask, grads in cases:
        _run_pool_case(fn, label, x, mask, grads)
        integrity.verify()
    return f"masked_mean_pool matches the reference on {len(cases)} cases."


integrity.protect_module(__name__)
