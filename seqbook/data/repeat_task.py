"""The first-token repeat task: does the first token occur again later in the sequence?

A generated classification task that an order-blind model cannot solve *by
construction*. Every sequence, of a random length ``L`` in ``[min_len, max_len]``, holds
``L - 1`` distinct tokens, one of which occurs twice. The label says whether the token
at position 0 is the one that occurs twice:

* label 1: the repeated token sits at position 0 and at one random later position;
* label 0: it sits at two random positions after position 0.

The tokens, and which of them is repeated, are drawn *before* the label and
independently of it; the label only decides where the pair goes. So the multiset of
tokens of a sequence -- everything a bag-of-tokens model can see -- has the same
distribution in both classes, and no function of it can be right more often than
chance (50 %). A model that can compare positions with each other (attention) can.

Sequences are right-padded with ``PAD = 0`` to ``max_len``; token ids are
``1..vocab_size - 1``.
"""

from __future__ import annotations

import torch

__all__ = ["PAD", "first_token_repeats_batch", "classification_accuracy"]

PAD = 0


def first_token_repeats_batch(
    batch_size: int,
    vocab_size: int = 32,
    min_len: int = 6,
    max_len: int = 16,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of the task: ``tokens`` ``(B, max_len)`` (right-padded with ``PAD``),
    ``mask`` ``(B, max_len)`` (True = real token) and ``labels`` ``(B,)`` in {0, 1}.

    Random numbers come from ``generator`` (a CPU generator); the tensors are then moved
    to ``device``.
    """
    if not 3 <= min_len <= max_len:
        raise ValueError(f"need 3 <= min_len <= max_len, got {min_len}, {max_len}")
    if vocab_size - 1 < max_len - 1:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for {max_len - 1} distinct tokens"
        )
    g = generator
    lengths = torch.randint(min_len, max_len + 1, (batch_size,), generator=g)
    labels = torch.randint(0, 2, (batch_size,), generator=g)
    # max_len - 1 distinct tokens per row, in random order: the first is the repeated
    # one, the rest fill the other positions. Drawn without looking at the label.
    shuffled = torch.rand(batch_size, vocab_size - 1, generator=g).argsort(dim=1) + 1
    items = torch.cat([shuffled[:, :1], shuffled[:, : max_len - 1]], dim=1)  # (B, T)
    # A random order of the positions 0..L-1 (padding positions last): item k goes to
    # position order[:, k], so items 0 and 1, the repeated pair, take the first two.
    keys = torch.rand(batch_size, max_len, generator=g)
    keys[torch.arange(max_len)[None, :] >= lengths[:, None]] = 3.0  # padding: last
    keys[:, 0] = torch.where(labels == 1, -1.0, 2.0)  # position 0: first, or after all
    order = keys.argsort(dim=1)  # (B, T)
    tokens = torch.empty(batch_size, max_len, dtype=torch.long).scatter_(
        1, order, items
    )
    mask = torch.arange(max_len)[None, :] < lengths[:, None]  # (B, max_len)
    tokens[~mask] = PAD
    return tokens.to(device), mask.to(device), labels.to(device)


@torch.no_grad()
def classification_accuracy(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
) -> float:
    """Fraction of sequences that ``model(tokens, mask)`` classifies correctly."""
    was_training = model.training
    model.eval()
    predictions = model(tokens, mask).argmax(dim=-1)
    model.train(was_training)
    return (predictions == labels).float().mean().item()
