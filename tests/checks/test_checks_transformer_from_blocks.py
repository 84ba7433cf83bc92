"""The checks of "A Transformer from blocks": they accept correct answers written in
several ways (repeatedly, in hidden mode), reject each classic mistake with a message
that names it, explain stubs and crashes, and refuse the book's reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbook.checks import transformer_from_blocks as tfm_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall

check_loss = tfm_checks.check_causal_lm_loss
check_pool = tfm_checks.check_masked_mean_pool


# ---------------------------------------------------------------- loss answers
# Written out independently of seqbook.models.transformer_from_blocks (forbidden while
# answers run).


def loss_flatten(logits, tokens, pad_id=None):
    vocab = logits.size(-1)
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab),
        tokens[:, 1:].reshape(-1),
        ignore_index=-100 if pad_id is None else pad_id,
    )


def loss_transpose(logits, tokens, pad_id=None):
    losses = F.cross_entropy(
        logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none"
    )  # (B, T-1)
    keep = (
        torch.ones_like(losses, dtype=torch.bool)
        if pad_id is None
        else tokens[:, 1:] != pad_id
    )
    return losses[keep].mean()


def loss_by_hand(logits, tokens, pad_id=None):
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
    keep = (
        torch.ones_like(picked)
        if pad_id is None
        else (tokens[:, 1:] != pad_id).to(picked.dtype)
    )
    return -(picked * keep).sum() / keep.sum()


def loss_mistake(kind):
    def causal_lm_loss(logits, tokens, pad_id=None):
        vocab = logits.size(-1)
        ignore = -100 if pad_id is None else pad_id
        if kind == "no_shift":
            return F.cross_entropy(
                logits.reshape(-1, vocab), tokens.reshape(-1), ignore_index=ignore
            )
        if kind == "wrong_direction":
            return F.cross_entropy(
                logits[:, 1:].reshape(-1, vocab),
                tokens[:, :-1].reshape(-1),
                ignore_index=ignore,
            )
        if kind == "unflattened":
            return F.cross_entropy(logits[:, :-1], tokens[:, 1:], ignore_index=ignore)
        if kind == "sum":
            return F.cross_entropy(
                logits[:, :-1].reshape(-1, vocab),
                tokens[:, 1:].reshape(-1),
                ignore_index=ignore,
                reduction="sum",
            )
        if kind == "pads_counted":
            return F.cross_entropy(
                logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1)
            )
        if kind == "view":
            return F.cross_entropy(
                logits[:, :-1].view(-1, vocab),
                tokens[:, 1:].view(-1),
                ignore_index=ignore,
            )
        if kind == "mixed_flatten":
            return F.cross_entropy(
                logits[:, :-1].transpose(0, 1).reshape(-1, vocab),
                tokens[:, 1:].reshape(-1),
                ignore_index=ignore,
            )
        if kind == "detached":
            return loss_flatten(logits.detach(), tokens, pad_id)
        if kind == "stub":
            raise NotImplementedError()
        raise ValueError(kind)

    return causal_lm_loss


def test_correct_losses_pass_repeatedly(capsys):
    for answer in (loss_flatten, loss_transpose, loss_by_hand):
        check_loss(answer)
        for _ in range(25):
            check_loss(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind, words",
    [
        ("no_shift", "no shift"),
        ("wrong_direction", "wrong way"),
        ("sum", "summed"),
        ("pads_counted", "pad_id are counted"),
        ("mixed_flatten", "different orders"),
        ("unflattened", "time, as the classes"),
        ("view", "use .reshape"),
        ("detached", "detached"),
        ("stub", "NotImplementedError"),
    ],
)
def test_loss_mistakes_are_named(kind, words):
    for hidden in (False, True, True, True):
        with pytest.raises(CheckFailure, match=words):
            check_loss(loss_mistake(kind), hidden=hidden)


def test_loss_reference_is_forbidden():
    from seqbook.models import transformer_from_blocks as transformer_models

    def cheat(logits, tokens, pad_id=None):
        return transformer_models.causal_lm_loss(logits, tokens, pad_id)

    with pytest.raises(ForbiddenCall):
        check_loss(cheat)


def test_loss_returning_a_vector_is_explained():
    def per_token(logits, tokens, pad_id=None):
        return F.cross_entropy(
            logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none"
        )

    with pytest.raises(CheckFailure, match="single number"):
        check_loss(per_token)


# ---------------------------------------------------------------- pool answers


def pool_weights(hidden, mask):
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def pool_where(hidden, mask):
    kept = torch.where(mask[..., None], hidden, torch.zeros_like(hidden))
    count = mask.sum(dim=1, keepdim=True)
    return torch.where(count > 0, kept.sum(1) / count.clamp(min=1), 0.0).to(
        hidden.dtype
    )


def pool_mistake(kind):
    def masked_mean_pool(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if kind == "mean_all":
            return hidden.mean(1)
        if kind == "divide_by_T":
            return (hidden * m).sum(1) / hidden.shape[1]
        if kind == "sum":
            return (hidden * m).sum(1)
        if kind == "nan":
            return (hidden * m).sum(1) / m.sum(1)
        if kind == "inverted":
            return (hidden * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1)
        if kind == "feature_axis":
            along = mask[:, None, :].to(hidden.dtype)
            return (hidden * along).sum(1) / m.sum(1).clamp(min=1)
        if kind == "float32":
            m32 = mask.unsqueeze(-1).float()
            return ((hidden * m32).sum(1) / m32.sum(1).clamp(min=1)).float()
        if kind == "in_place":
            hidden[~mask] = 0
            return hidden.sum(1) / m.sum(1).clamp(min=1)
        if kind == "keepdim":
            return (hidden * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(
                min=1
            )
        raise ValueError(kind)

    return masked_mean_pool


def test_correct_pools_pass_repeatedly(capsys):
    for answer in (pool_weights, pool_where):
        check_pool(answer)
        for _ in range(25):
            check_pool(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind, words, hidden_too",
    [
        ("mean_all", "padding included", True),
        ("divide_by_T", "divided by T", True),
        ("sum", "masked sum", True),
        ("nan", "NaN", True),
        ("inverted", "padding positions", True),
        ("feature_axis", "wrong axis", True),
        ("float32", "dtype", True),
        ("in_place", "in place", True),
        ("keepdim", "keepdim", True),
    ],
)
def test_pool_mistakes_are_named(kind, words, hidden_too):
    for hidden in (False, True, True, True):
        with pytest.raises(CheckFailure, match=words):
            check_pool(pool_mistake(kind), hidden=hidden)


def test_pool_reference_is_forbidden():
    from seqbook.models import transformer_from_blocks as transformer_models

    with pytest.raises(ForbiddenCall):
        check_pool(lambda h, m: transformer_models.masked_mean_pool(h, m))
