"""Checks for the exercises of the section "The Transformer encoder-decoder".

``check_seq2seq_masks`` grades ``seq2seq_masks(source, target, pad_id)`` (the source,
target and memory masks); ``check_label_smoothed_cross_entropy`` grades
``label_smoothed_cross_entropy(logits, targets, smoothing, ignore_index)`` written from
primitives (PyTorch's cross-entropy and negative log-likelihood are disabled while it
runs). Both recognise the classic mistakes and name them.

``hidden=False`` is the friendly visible check; ``hidden=True`` draws sizes, pad ids,
smoothing and values at grading time from a fresh random seed, and computes the expected
answers with the reference inside the check.
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
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.models import transformer_seq2seq as _reference_module

__all__ = ["check_seq2seq_masks", "check_label_smoothed_cross_entropy"]

# Captured at import, before any student code can touch the module.
_reference_masks = _reference_module.seq2seq_masks
_reference_cross_entropy = F.cross_entropy

_MASK_FORBIDDEN = existing_paths(("seqbook.models.transformer_seq2seq.seq2seq_masks",))
_LOSS_FORBIDDEN = existing_paths(
    (
        "torch.nn.functional.cross_entropy",
        "torch.nn.functional.nll_loss",
        "torch.nn.CrossEntropyLoss.forward",
        "seqbook.models.transformer_seq2seq.label_smoothed_cross_entropy",
    )
)


# --------------------------------------------------------------------------- masks
def _tokens(g, lengths, width, pad_id, vocab=9, left=False):
    """``(B, width)`` ids in ``[0, vocab)`` other than ``pad_id``, padded to
    ``width``."""
    ids = torch.randint(0, vocab - 1, (len(lengths), width), generator=g)
    ids = ids + (ids >= pad_id).long()  # skip the pad id
    positions = torch.arange(width)
    if left:
        real = positions >= width - torch.tensor(lengths)[:, None]
    else:
        real = positions < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~real, pad_id)


def _mask_variants(source, target, pad_id):
    """The three masks as the classic mistakes build them."""
    s_real = source != pad_id  # (B, S)
    t_real = target != pad_id  # (B, T)
    length = target.size(1)
    lower = torch.ones(length, length, dtype=torch.bool).tril()
    return {
        "source": {
            "inverted": ~s_real[:, None, None, :],
            "query axis": s_real[:, None, :, None],
            "pad 0": (source != 0)[:, None, None, :],
        },
        "target": {
            "inverted": ~(t_real[:, None, None, :] & lower),
            "pytorch": ~lower & t_real[:, None, None, :],
            "transposed": t_real[:, None, None, :] & lower.T,
            "strict": t_real[:, None, None, :] & lower.tril(-1),
            "no causal": t_real[:, None, None, :].expand(-1, -1, length, -1),
            "no padding": lower[None, None].expand(len(target), 1, -1, -1),
            "query axis": t_real[:, None, :, None] & lower,
            "pad 0": (target != 0)[:, None, None, :] & lower,
        },
        "memory": {
            "inverted": ~s_real[:, None, None, :],
            "query axis": s_real[:, None, :, None],
            "from target": t_real[:, None, None, :],
            "pad 0": (source != 0)[:, None, None, :],
        },
    }


_MASK_MISTAKES = {
    "inverted": "the convention is inverted: in this book True means 'may attend' "
    "(PyTorch's nn.MultiheadAttention reads a boolean mask the other way round)",
    "pytorch": "it is PyTorch's convention, True = 'may NOT attend' "
    "(the upper triangle is True); in this book True means 'may attend'",
    "transposed": "the causal part is transposed: it lets position i attend to the "
    "future positions j > i. Keep the lower triangle (j <= i)",
    "strict": "the diagonal is False: position i must be allowed to attend to itself "
    "(j <= i, not j < i), otherwise the first position attends to nothing",
    "no causal": "it has no causal part: with teacher forcing, position i would see "
    "the target tokens it has to predict. Combine key padding with the lower triangle",
    "no padding": "it ignores padding: a key that is a pad token may not be attended "
    "to, wherever it stands. Combine the causal triangle with the key-padding mask",
    "query axis": "padding is masked on the query axis: a pad token may not be "
    "attended to, so padding hides *keys* (the last axis, T_k), not queries",
    "pad 0": "it compares with 0 instead of pad_id: use the pad_id argument",
    "from target": "the memory mask is built from the target: in cross-attention the "
    "keys are the encoder's outputs, one per *source* position, so hide source padding",
}

_MASK_SHAPES = {
    "source": ("(B, 1, 1, S)", "the encoder's self-attention, scores (B, H, S, S)"),
    "target": ("(B, 1, T, T)", "the decoder's self-attention, scores (B, H, T, T)"),
    "memory": ("(B, 1, 1, S)", "cross-attention, scores (B, H, T, S)"),
}


def _full_shapes(batch, s_len, t_len):
    return {
        "source": (batch, 1, s_len, s_len),
        "target": (batch, 1, t_len, t_len),
        "memory": (batch, 1, t_len, s_len),
    }


def _broadcasts(shape, full):
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), full)) == full
    except RuntimeError:
        return False


def _check_mask_case(fn, source, target, pad_id, label):
    what = f"seq2seq_masks on {label}"
    with forbid_calls(*_MASK_FORBIDDEN):
        result = call_student(fn, source.clone(), target.clone(), pad_id, what=what)
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise CheckFailure(
            f"{what} should return three masks (source_mask, target_mask, "
            f"memory_mask), got {type(result).__name__}."
        )
    batch, s_len = source.shape
    t_len = target.size(1)
    full = _full_shapes(batch, s_len, t_len)
    expected = dict(
        zip(("source", "target", "memory"), _reference_masks(source, target, pad_id))
    )
    variants = _mask_variants(source, target, pad_id)
    for name, mask in zip(("source", "target", "memory"), result):
        shape_text, use = _MASK_SHAPES[name]
        where = f"the {name} mask of {what}"
        expect_tensor(mask, where)
        if mask.dtype != torch.bool:
            raise CheckFailure(
                f"{where} has dtype {mask.dtype}; masks in this book are "
                "boolean (torch.bool), True = 'may attend'."
            )
        if not _broadcasts(mask.shape, full[name]):
            if name == "memory" and _broadcasts(mask.shape, (batch, 1, t_len, t_len)):
                raise CheckFailure(
                    f"{where} has shape {tuple(mask.shape)}: "
                    + _MASK_MISTAKES["from target"]
                    + "."
                )
            raise CheckFailure(
                f"{where} has shape {tuple(mask.shape)}, which does not broadcast to "
                f"{full[name]} ({use}); expected {shape_text} = "
                f"{tuple(expected[name].shape)}."
            )
        got = mask.expand(full[name])
        if bool((got == expected[name].expand(full[name])).all()):
            continue
        for mistake, variant in variants[name].items():
            if _broadcasts(variant.shape, full[name]) and bool(
                (got == variant.expand(full[name])).all()
            ):
                raise CheckFailure(f"{where} is wrong: {_MASK_MISTAKES[mistake]}.")
        want = expected[name].expand(full[name])
        wrong = tuple((got != want).nonzero()[0].tolist())
        raise CheckFailure(
            f"{where} is wrong at index {wrong} (batch, head, query, key): got "
            f"{bool(got[wrong])}, expected {bool(want[wrong])}."
        )


@check
def check_seq2seq_masks(seq2seq_masks: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``seq2seq_masks(source, target, pad_id)`` -> three boolean masks."""
    g = grading_generator(hidden)
    cases = []
    if not hidden:
        source = _tokens(g, [3, 5], 5, 0)
        target = _tokens(g, [4, 2], 4, 0)
        cases.append(("a batch of 2 (S=5, T=4, pad_id=0)", source, target, 0))
        source = _tokens(g, [2, 4, 4], 4, 2)
        target = _tokens(g, [4, 1, 3], 4, 2)
        cases.append(("a batch of 3 (S=T=4, pad_id=2)", source, target, 2))
    else:
        for _ in range(3):
            batch = random_int(g, 2, 5)
            s_len, t_len = random_int(g, 2, 9), random_int(g, 2, 9)
            if s_len == t_len:
                t_len += 1
            pad_id = random_int(g, 1, 6)
            s_lengths = [s_len] + [random_int(g, 1, s_len) for _ in range(batch - 1)]
            t_lengths = [random_int(g, 1, t_len) for _ in range(batch - 1)] + [t_len]
            s_lengths[-1] = min(s_lengths[-1], s_len - 1)  # at least one padded source
            t_lengths[0] = min(t_lengths[0], t_len - 1)  # and one padded target
            cases.append(
                (
                    f"a random batch of {batch} (S={s_len}, T={t_len}, "
                    f"pad_id={pad_id})",
                    _tokens(g, s_lengths, s_len, pad_id),
                    _tokens(g, t_lengths, t_len, pad_id),
                    pad_id,
                )
            )
        length = random_int(g, 3, 7)  # S == T, padding on the left of one target
        source = _tokens(g, [length, length - 1], length, 0)
        target = _tokens(g, [length - 2, length], length, 0, left=True)
        cases.append(
            (f"S=T={length} with a left-padded target (pad_id=0)", source, target, 0)
        )
    for label, source, target, pad_id in cases:
        _check_mask_case(seq2seq_masks, source, target, pad_id, label)
        integrity.verify()
    return f"seq2seq_masks is correct on {len(cases)} batches."


# ---------------------------------------------------------------------------- loss
def _loss_variants(logits, targets, smoothing, ignore_index):
    """The loss as the classic mistakes compute it."""
    log_probs = logits.double().log_softmax(dim=-1)  # (N, C)
    classes = logits.size(-1)
    keep = targets != ignore_index
    safe = targets.masked_fill(~keep, 0)
    nll = -log_probs.gather(-1, safe[:, None]).squeeze(-1)  # (N,)
    uniform = -log_probs.mean(dim=-1)  # (N,)
    others = (-log_probs.sum(dim=-1) - nll) / (classes - 1)  # (N,): over k != y
    good = (1 - smoothing) * nll + smoothing * uniform
    count = keep.sum()
    return {
        "c minus 1": ((1 - smoothing) * nll + smoothing * others)[keep].sum() / count,
        "mean over all": good[keep].sum() / len(targets),
        "smooth ignored": ((1 - smoothing) * (nll * keep) + smoothing * uniform).sum()
        / count,
        "sum": good[keep].sum(),
        "no smoothing": nll[keep].sum() / count,
        "swapped": (smoothing * nll + (1 - smoothing) * uniform)[keep].sum() / count,
    }


_LOSS_MISTAKES = {
    "c minus 1": "the smoothing mass is spread over the C - 1 wrong classes; PyTorch "
    "(and this exercise) spreads smoothing / C over ALL C classes, the target included",
    "mean over all": "the ignored positions are counted in the mean: divide by the "
    "number of targets that are not ignore_index",
    "smooth ignored": "the smoothing term is added at the ignored positions too: an "
    "ignored position contributes nothing at all",
    "sum": "it returns the sum over positions; the loss is the mean over the "
    "non-ignored positions",
    "no smoothing": "the smoothing is missing: the target distribution is "
    "(1 - smoothing) * one_hot + smoothing / C",
    "swapped": "the weights are swapped: (1 - smoothing) goes with the true class's "
    "term and smoothing with the uniform term",
}


def _check_loss_case(
    fn, logits, targets, smoothing, ignore_index, label, check_gradients=False
):
    what = f"label_smoothed_cross_entropy on {label}"
    inputs = logits.clone().requires_grad_(check_gradients)
    with forbid_calls(*_LOSS_FORBIDDEN):
        loss = call_student(
            fn, inputs, targets.clone(), smoothing, ignore_index, what=what
        )
    expected = _reference_cross_entropy(
        logits, targets, label_smoothing=smoothing, ignore_index=ignore_index
    )
    expect_tensor(loss, what)
    if loss.numel() != 1 or loss.dim() != 0:
        raise CheckFailure(
            f"{what} has shape {tuple(loss.shape)}; the loss is one "
            "number, a 0-dimensional tensor (the mean over positions)."
        )
    if not bool(torch.isfinite(loss.detach())):
        raise CheckFailure(
            f"{what} is {loss.item()}: the log-softmax is computed unstably (exp of a "
            "large logit overflows, or log of a probability that underflowed to 0). "
            "Subtract the row maximum, or use torch.log_softmax / torch.logsumexp."
        )
    if abs(loss.item() - expected.item()) > 1e-4 * max(1.0, abs(expected.item())):
        for mistake, value in _loss_variants(
            logits, targets, smoothing, ignore_index
        ).items():
            if abs(loss.item() - value.item()) <= 1e-4 * max(1.0, abs(value.item())):
                raise CheckFailure(f"{what} is wrong: {_LOSS_MISTAKES[mistake]}.")
    expect_close(loss.detach().reshape(()), expected, what, atol=1e-4, rtol=1e-4)
    if check_gradients:
        try:
            (grad,) = torch.autograd.grad(loss, inputs)
        except RuntimeError as err:
            raise CheckFailure(f"{what}: no gradient flows back to the logits ({err}).")
        reference = logits.clone().requires_grad_(True)
        (expected_grad,) = torch.autograd.grad(
            _reference_cross_entropy(
                reference, targets, label_smoothing=smoothing, ignore_index=ignore_index
            ),
            reference,
        )
        expect_close(grad, expected_grad, f"the gradient of {what}", atol=1e-5)


@check
def check_label_smoothed_cross_entropy(
    fn: Callable[..., Any], hidden: bool = False
) -> str:
    """Check ``fn(logits, targets, smoothing, ignore_index)`` against
    ``F.cross_entropy(logits, targets, label_smoothing=smoothing,
    ignore_index=ignore_index)``, with PyTorch's losses disabled."""
    g = grading_generator(hidden)
    cases = []
    if not hidden:
        logits = torch.randn(6, 5, generator=g)
        targets = torch.tensor([1, 0, 4, 2, 2, 3])
        cases.append(
            (
                "6 positions, 5 classes, no smoothing, nothing ignored",
                logits,
                targets,
                0.0,
                -100,
                False,
            )
        )
        cases.append(("the same with smoothing=0.1", logits, targets, 0.1, -100, False))
        targets = torch.tensor([1, 0, 4, 0, 2, 0])
        cases.append(
            (
                "smoothing=0.1, ignore_index=0 (three pad targets)",
                logits,
                targets,
                0.1,
                0,
                True,
            )
        )
        cases.append(
            (
                "large logits (x 1000), smoothing=0.2",
                logits * 1000,
                targets,
                0.2,
                0,
                False,
            )
        )
    else:
        for i in range(3):
            n, classes = random_int(g, 5, 40), random_int(g, 3, 30)
            scale = [1.0, 4.0, 2000.0][i]
            logits = torch.randn(n, classes, generator=g) * scale
            ignore_index = -100 if i == 0 else random_int(g, 0, classes - 1)
            targets = torch.randint(0, classes, (n,), generator=g)
            targets[torch.rand(n, generator=g) < 0.3] = ignore_index
            targets[0] = (ignore_index + 1) % classes  # at least one counted target
            smoothing = round(float(torch.rand((), generator=g)) * 0.4 + 0.05, 3)
            cases.append(
                (
                    f"{n} random positions, {classes} classes, logits x {scale:g}, "
                    f"smoothing={smoothing}, ignore_index={ignore_index}",
                    logits,
                    targets,
                    smoothing,
                    ignore_index,
                    i == 1,
                )
            )
    for label, logits, targets, smoothing, ignore_index, grads in cases:
        _check_loss_case(fn, logits, targets, smoothing, ignore_index, label, grads)
        integrity.verify()
    return (
        f"label_smoothed_cross_entropy matches F.cross_entropy on {len(cases)} cases."
    )


integrity.protect_module("seqbook.models.transformer_seq2seq")
integrity.protect_module(__name__)
