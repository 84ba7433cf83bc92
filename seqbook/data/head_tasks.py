"""A generated task whose solution needs two kinds of attention, and a small model for
it.

The *previous-minus-first* task: a sequence of random tokens ``x_0, ..., x_{T-1}`` from
``{0, ..., V-1}``; the target at position ``t >= 1`` is ``(x_{t-1} - x_0) mod V``. Every
position needs two tokens at once: the one just before it and the first one of the
sequence. Because the difference is not symmetric, a blend of the two tokens is not
enough: the model must also know which is which. One attention head that looks one
position back and another that looks at the start solve it; the section "Multi-head
attention" trains :class:`HeadTaskModel` on it and plots what its heads learned.
"""

from __future__ import annotations

import torch
from torch import nn

from seqbook.models.attention import MultiHeadAttention, causal_mask

__all__ = ["IGNORE_INDEX", "previous_minus_first_batch", "HeadTaskModel"]

#: Target value of positions that have nothing to predict (the loss ignores them).
IGNORE_INDEX = -100


def previous_minus_first_batch(
    batch_size: int,
    length: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens ``(B, T)`` and targets ``(B, T)``: ``(x[t-1] - x[0]) mod V``.

    Position 0 has no previous token: its target is :data:`IGNORE_INDEX`, which
    ``F.cross_entropy(..., ignore_index=IGNORE_INDEX)`` skips.
    """
    if length < 2 or vocab_size < 2:
        raise ValueError(
            f"need length >= 2 and vocab_size >= 2, got {length}, {vocab_size}"
        )
    tokens = torch.randint(0, vocab_size, (batch_size, length), generator=generator)
    targets = torch.full_like(tokens, IGNORE_INDEX)
    targets[:, 1:] = (tokens[:, :-1] - tokens[:, :1]) % vocab_size  # (B, T - 1)
    return tokens, targets


class HeadTaskModel(nn.Module):
    """Token and learned position embeddings, one causal multi-head attention layer with
    a residual connection, then a two-layer MLP that reads out a class per position.

    ``forward(tokens)`` maps ``(B, T)`` token ids to ``(logits (B, T, V),
    weights (B, H, T, T))``: the attention weights of every head, for plotting.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        embed_dim: int,
        num_heads: int,
        hidden: int = 128,
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, embed_dim)
        self.position_embedding = nn.Embedding(max_len, embed_dim)
        self.attention = MultiHeadAttention(embed_dim, num_heads)
        self.readout = nn.Sequential(
            nn.LayerNorm(embed_dim),
            nn.Linear(embed_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, vocab_size),
        )
        # nn.Embedding draws N(0, 1): scores of size ~D saturate the softmaxes at the
        # start, and about one initialisation in eight then never leaves chance.
        # Smaller embeddings start every head near uniform attention (measured: seed
        # shifts 0-7 all solve the task).
        nn.init.normal_(self.token_embedding.weight, std=0.3)
        nn.init.normal_(self.position_embedding.weight, std=0.3)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(
            positions
        )  # (B, T, D)
        mask = causal_mask(length).to(tokens.device)  # (T, T)
        attended, weights = self.attention(x, x, x, mask=mask)
        return self.readout(x + attended), weights  # (B, T, V), (B, H, T, T)
