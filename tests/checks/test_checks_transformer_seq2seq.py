"""The checks of "The Transformer encoder-decoder": correct answers written in several
ways pass (repeatedly, in hidden mode), each classic mistake is rejected with a message
that names it, stubs get a clear message, and the forbidden built-ins are refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbook.checks import transformer_seq2seq as ed_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall

check_masks = ed_checks.check_seq2seq_masks
check_loss = ed_checks.check_label_smoothed_cross_entropy


# ------------------------------------------------------------------------ masks
# Written out independently of seqbook.models.transformer_seq2seq (forbidden while
# answers run).


def masks_full(source, target, pad_id):
    batch, s_len = source.shape
    t_len = target.size(1)
    s_real = source != pad_id
    t_real = target != pad_id
    i = torch.arange(t_len)
    causal = i[None, :] <= i[:, None]  # (T, T): key j <= query i
    source_mask = s_real[:, None, None, :].expand(batch, 1, s_len, s_len)
    target_mask = causal[None, None] & t_real[:, None, None, :]
    memory_mask = s_real[:, None, None, :].expand(batch, 1, t_len, s_len)
    return source_mask, target_mask, memory_mask


def masks_compact(source, target, pad_id):
    s = (source != pad_id).unsqueeze(1).unsqueeze(2)
    causal = torch.tril(torch.ones(target.size(1), target.size(1))).bool()
    return s, causal & (target != pad_id)[:, None, None, :], s.clone()


def masks_mistake(kind):
    def seq2seq_masks(source, target, pad_id):
        s, t, m = masks_compact(source, target, pad_id)
        length = target.size(1)
        lower = torch.ones(length, length, dtype=torch.bool).tril()
        t_real = (target != pad_id)[:, None, None, :]
        if kind == "triu":
            t = t_real & lower.T
        elif kind == "strict":
            t = t_real & lower.tril(-1)
        elif kind == "no causal":
            t = t_real.expand(-1, -1, length, -1)
        elif kind == "query axis":
            t = (target != pad_id)[:, None, :, None] & lower
        elif kind == "memory from target":
            m = t_real
        elif kind == "pytorch":
            s, t, m = ~s, ~t, ~m
        elif kind == "pad 0":
            s, t, m = masks_compact(source, target, 0)
        elif kind == "source query axis":
            s = (source != pad_id)[:, None, :, None]
        elif kind == "float":
            s = s.float()
        return s, t, m

    return seq2seq_masks


@pytest.mark.parametrize("answer", [masks_full, masks_compact])
def test_correct_masks_pass_visible_and_hidden(answer):
    check_masks(answer)
    for _ in range(25):
        check_masks(answer, hidden=True)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("triu", "transposed"),
        ("strict", "diagonal"),
        ("no causal", "no causal part"),
        ("query axis", "query axis"),
        ("memory from target", "built from the target"),
        ("pytorch", "inverted"),
        ("pad 0", "pad_id"),
        ("source query axis", "query axis"),
        ("float", "boolean"),
    ],
)
def test_mask_mistakes_are_named(kind, words):
    for hidden in (False, True):
        with pytest.raises(CheckFailure, match=words):
            check_masks(masks_mistake(kind), hidden=hidden)


def test_no_padding_in_target_mask_is_named_in_hidden_mode():
    def causal_only(source, target, pad_id):
        s, _, m = masks_compact(source, target, pad_id)
        lower = torch.ones(target.size(1), target.size(1), dtype=torch.bool).tril()
        return s, lower, m

    with pytest.raises(CheckFailure, match="ignores padding"):
        check_masks(causal_only)
    with pytest.raises(CheckFailure, match="ignores padding"):
        check_masks(causal_only, hidden=True)


def test_masks_stub_and_wrong_return():
    def stub(source, target, pad_id):
        raise NotImplementedError

    with pytest.raises(CheckFailure):
        check_masks(stub)
    with pytest.raises(CheckFailure, match="three masks"):
        check_masks(lambda s, t, p: masks_compact(s, t, p)[:2])


def test_masks_reference_is_forbidden():
    from seqbook.models.transformer_seq2seq import seq2seq_masks

    with pytest.raises(ForbiddenCall):
        check_masks(lambda s, t, p: seq2seq_masks(s, t, p))


# ------------------------------------------------------------------------- loss


def loss_logsumexp(logits, targets, smoothing, ignore_index):
    log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    keep = targets != ignore_index
    picked = log_probs[keep].gather(-1, targets[keep][:, None]).squeeze(-1)
    per_position = -(1 - smoothing) * picked - smoothing * log_probs[keep].mean(-1)
    return per_position.mean()


def loss_distribution(logits, targets, smoothing, ignore_index):
    n, classes = logits.shape
    keep = (targets != ignore_index).to(logits.dtype)
    safe = torch.where(targets == ignore_index, torch.zeros_like(targets), targets)
    q = torch.full_like(logits, smoothing / classes)
    q = q + (1 - smoothing) * torch.eye(classes, dtype=logits.dtype)[safe]
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    log_p = shifted - shifted.exp().sum(-1, keepdim=True).log()
    return ((-(q * log_p).sum(-1)) * keep).sum() / keep.sum()


def loss_mistake(kind):
    def label_smoothed_cross_entropy(logits, targets, smoothing, ignore_index):
        n, classes = logits.shape
        log_p = logits.log_softmax(-1)
        if kind == "unstable":
            log_p = torch.log(logits.exp() / logits.exp().sum(-1, keepdim=True))
        keep = targets != ignore_index
        safe = targets.masked_fill(~keep, 0)
        nll = -log_p.gather(-1, safe[:, None]).squeeze(-1)
        uniform = -log_p.mean(-1)
        if kind == "c minus 1":
            uniform = (-log_p.sum(-1) - nll) / (classes - 1)
        loss = (1 - smoothing) * nll + smoothing * uniform
        if kind == "mean over all":
            return loss[keep].sum() / n
        if kind == "smooth ignored":
            return (
                (1 - smoothing) * nll * keep + smoothing * uniform
            ).sum() / keep.sum()
        if kind == "sum":
            return loss[keep].sum()
        if kind == "no smoothing":
            return nll[keep].mean()
        if kind == "per position":
            return loss * keep
        return loss[keep].mean()

    return label_smoothed_cross_entropy


@pytest.mark.parametrize(
    "answer", [loss_logsumexp, loss_distribution, loss_mistake("none")]
)
def test_correct_losses_pass_visible_and_hidden(answer):
    check_loss(answer)
    for _ in range(25):
        check_loss(answer, hidden=True)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("unstable", "unstabl"),
        ("c minus 1", "C - 1"),
        ("mean over all", "counted in the mean"),
        ("smooth ignored", "ignored positions too"),
        ("sum", "sum"),
        ("no smoothing", "smoothing is missing"),
        ("per position", "0-dimensional"),
    ],
)
def test_loss_mistakes_are_named(kind, words):
    for hidden in (False, True):
        with pytest.raises(CheckFailure, match=words):
            check_loss(loss_mistake(kind), hidden=hidden)


@pytest.mark.parametrize(
    "forbidden",
    [
        lambda x, t, s, i: F.cross_entropy(x, t, label_smoothing=s, ignore_index=i),
        lambda x, t, s, i: (1 - s) * F.nll_loss(x.log_softmax(-1), t, ignore_index=i),
        lambda x, t, s, i: torch.nn.CrossEntropyLoss(ignore_index=i, label_smoothing=s)(
            x, t
        ),
    ],
)
def test_builtin_losses_are_forbidden(forbidden):
    with pytest.raises(ForbiddenCall):
        check_loss(forbidden)


def test_loss_reference_is_forbidden():
    from seqbook.models.transformer_seq2seq import label_smoothed_cross_entropy

    with pytest.raises(ForbiddenCall):
        check_loss(lambda x, t, s, i: label_smoothed_cross_entropy(x, t, s, i))


def test_loss_stub():
    def stub(logits, targets, smoothing, ignore_index):
        raise NotImplementedError

    with pytest.raises(CheckFailure):
        check_loss(stub)
