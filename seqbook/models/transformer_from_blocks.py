"""Whole models built from the book's Transformer block, and what they need around it.

The reference code of the section "A Transformer from blocks":

* :func:`causal_lm_loss` -- the language-model loss with its one-token shift: the
  logits at position ``t`` are scored against the token at position ``t + 1``;
* :func:`masked_mean_pool` -- the mean of a padded batch of vectors over the real
  positions only (an all-padding row gives zeros);
* :class:`TransformerLanguageModel` -- a decoder-only character language model: token
  embeddings plus sinusoidal positions, pre-LN
  :class:`~seqbook.models.transformer.EncoderBlock` blocks run with ``causal=True``, a
  final layer norm and an output layer;
* :class:`LSTMLanguageModel` -- Part 1's recurrent language model with ``nn.LSTM``,
  the baseline the Transformer is compared with;
* :class:`TransformerClassifier` -- an encoder-only sequence classifier (blocks with a
  padding mask, a final layer norm, masked mean pooling, a linear head);
* :class:`BagOfEmbeddings` -- the order-blind baseline: the masked mean of the token
  embeddings and a small MLP;
* :func:`parameter_groups` -- a model's parameter count split into embeddings,
  attention, feed-forward, layer norm and output layer, from ``named_parameters``.

The functions :func:`causal_lm_loss` and :func:`masked_mean_pool` are the single source
of the solutions to the section's exercises (``tests/book/test_sync.py`` compares them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbook.models.attention import sinusoidal_positional_encoding
from seqbook.models.transformer import EncoderBlock, LayerNorm

__all__ = [
    "causal_lm_loss",
    "masked_mean_pool",
    "TransformerLanguageModel",
    "LSTMLanguageModel",
    "TransformerClassifier",
    "BagOfEmbeddings",
    "parameter_groups",
]


def causal_lm_loss(
    logits: torch.Tensor, tokens: torch.Tensor, pad_id: int | None = None
) -> torch.Tensor:
    """Mean cross-entropy (nats) of predicting ``tokens[:, 1:]`` from
    ``logits[:, :-1]``.

    ``logits`` is ``(B, T, V)``: the model's scores at every position of the input
    ``tokens`` ``(B, T)``. Position ``t`` predicts token ``t + 1``, so the last position
    predicts nothing and the first token is never a target. Targets equal to ``pad_id``
    are left out of the mean; every other target counts once.
    """
    predictions = logits[:, :-1]  # (B, T-1, V): position t predicts token t+1
    targets = tokens[:, 1:]  # (B, T-1)
    ignore = -100 if pad_id is None else pad_id
    return F.cross_entropy(
        predictions.reshape(-1, predictions.size(-1)),
        targets.reshape(-1),
        ignore_index=ignore,
    )


def masked_mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``hidden`` ``(B, T, D)`` over the positions where ``mask`` ``(B, T)``
    is True (the real tokens): a ``(B, D)`` tensor. A row without real tokens gives
    zeros."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1): 1 real, 0 padding
    total = (hidden * weights).sum(dim=1)  # (B, D)
    count = weights.sum(dim=1).clamp(min=1.0)  # (B, 1): at least 1, no 0/0
    return total / count


class _Embedder(nn.Module):
    """Token embeddings plus fixed sinusoidal positions (Part 2),
    ``(B, T) -> (B, T, D)``."""

    def __init__(self, vocab_size: int, dim: int, max_len: int):
        super().__init__()
        self.token = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.token.weight, std=0.5)
        self.register_buffer(
            "positions", sinusoidal_positional_encoding(max_len, dim), persistent=False
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.size(1) > self.positions.size(0):
            raise ValueError(
                f"sequence of length {ids.size(1)} is longer than max_len="
                f"{self.positions.size(0)}"
            )
        return self.token(ids) + self.positions[: ids.size(1)]  # (B, T, D)


def _pre_ln_blocks(
    dim: int, num_heads: int, hidden_dim: int, num_layers: int, dropout: float
) -> nn.ModuleList:
    """The pre-LN blocks that both models below run their embeddings through."""
    return nn.ModuleList(
        EncoderBlock(dim, num_heads, hidden_dim, dropout=dropout, norm_first=True)
        for _ in range(num_layers)
    )


class TransformerLanguageModel(nn.Module):
    """A decoder-only language model: ``(B, T)`` token ids -> ``(B, T, V)`` logits.

    Embeddings + sinusoidal positions, ``num_layers`` pre-LN blocks with causal
    self-attention, a final :class:`~seqbook.models.transformer.LayerNorm` and a linear
    output layer. The logits at position ``t`` depend on tokens ``0..t`` only.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        hidden_dim: int = 256,
        max_len: int = 256,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embed = _Embedder(vocab_size, dim, max_len)
        self.blocks = _pre_ln_blocks(dim, num_heads, hidden_dim, num_layers, dropout)
        self.norm = LayerNorm(dim)
        self.output = nn.Linear(dim, vocab_size)

    @property
    def max_len(self) -> int:
        return self.embed.positions.size(0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, D)
        for block in self.blocks:
            x = block(x, causal=True)  # (B, T, D)
        return self.output(self.norm(x))  # (B, T, V)


class LSTMLanguageModel(nn.Module):
    """Part 1's recurrent language model with ``nn.LSTM``: embedding -> LSTM -> linear.

    ``forward(ids, state=None)`` returns ``(logits (B, T, V), state)``; passing the
    state back in continues the sequence, one step at a time when generating.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 32,
        hidden_size: int = 128,
        num_layers: int = 1,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        states, state = self.lstm(self.embedding(ids), state)  # (B, T, H)
        return self.output(states), state  # (B, T, V)


class TransformerClassifier(nn.Module):
    """An encoder-only classifier: ``(B, T)`` ids and a ``(B, T)`` mask -> ``(B, C)``.

    Embeddings + sinusoidal positions, ``num_layers`` pre-LN blocks that may not attend
    to padding, a final layer norm, :func:`masked_mean_pool` over the real tokens and a
    linear head.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        hidden_dim: int = 128,
        max_len: int = 64,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embed = _Embedder(vocab_size, dim, max_len)
        self.blocks = _pre_ln_blocks(dim, num_heads, hidden_dim, num_layers, dropout)
        self.norm = LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, D)
        for block in self.blocks:
            x = block(x, mask=mask)  # (B, T, D)
        pooled = masked_mean_pool(self.norm(x), mask)  # (B, D)
        return self.head(pooled)  # (B, C)


class BagOfEmbeddings(nn.Module):
    """The order-blind baseline: masked mean of token embeddings -> MLP -> ``(B, C)``.

    It sees which tokens occur and how often, never where, and no token sees another.
    """

    def __init__(
        self, vocab_size: int, num_classes: int, dim: int = 64, hidden_dim: int = 128
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, num_classes),
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean_pool(self.embedding(ids), mask)  # (B, D)
        return self.mlp(pooled)  # (B, C)


_GROUPS = ("embeddings", "attention", "feed-forward", "layer norm", "output layer")


def parameter_groups(model: nn.Module) -> dict[str, int]:
    """Parameter counts of a Transformer model by role, from ``named_parameters``.

    Names are matched by their parts: ``embed``/``embedding`` -> embeddings,
    ``attention`` -> attention, ``feed_forward`` -> feed-forward, ``norm`` -> layer
    norm, ``output``/``head`` -> output layer. A parameter that fits none raises
    ``ValueError``.
    """
    counts = dict.fromkeys(_GROUPS, 0)
    for name, parameter in model.named_parameters():
        parts = name.split(".")
        if parts[0] in ("embed", "embedding"):
            group = "embeddings"
        elif "attention" in parts:
            group = "attention"
        elif "feed_forward" in parts:
            group = "feed-forward"
        elif any(part.startswith("norm") for part in parts):
            group = "layer norm"
        elif parts[0] in ("output", "head"):
            group = "output layer"
        else:
            raise ValueError(f"parameter {name!r} belongs to no group")
        counts[group] += parameter.numel()
    return counts
