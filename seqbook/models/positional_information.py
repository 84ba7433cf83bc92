"""Positional information: what attention needs to know about order.

Self-attention without positions treats a sequence as a bag of tokens. This module holds
what the section "Positional information" builds on top of
:func:`seqbook.models.attention.sinusoidal_positional_encoding`:

* :func:`shift_matrix` -- the block-diagonal rotation ``M_k`` with
  ``PE[t + k] = PE[t] @ M_k`` for every position ``t`` (the shift by ``k`` positions is
  a linear map of the encoding, the same for every ``t``);
* :class:`LearnedPositionalEmbedding` -- one trainable vector per position
  (``nn.Embedding`` over positions), added to the token embeddings;
* :func:`rotary_embedding` -- rotary position embeddings (RoPE, Su et al.): queries and
  keys are rotated by position-dependent angles so that their dot product depends only
  on the offset between the two positions;
* a generated task that *needs* order -- :func:`order_batch`: does token ``A`` occur
  before token ``B``? Every sequence holds one ``A``, one ``B`` and filler tokens, so
  the bag of tokens carries no information about the label -- and the small attention
  classifier :class:`OrderClassifier` with :func:`train_order_model` and
  :func:`order_accuracy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbook import runtime
from seqbook.models.attention import MultiHeadAttention, sinusoidal_positional_encoding
from seqbook.train.loop import TrainingLog, train

__all__ = [
    "shift_matrix",
    "LearnedPositionalEmbedding",
    "rotary_embedding",
    "A_TOKEN",
    "B_TOKEN",
    "order_batch",
    "OrderClassifier",
    "train_order_model",
    "order_accuracy",
]


# ----------------------------------------------------------------- the shift matrix


def shift_matrix(k: int, dim: int) -> torch.Tensor:
    """The ``(dim, dim)`` float32 matrix ``M_k`` with ``PE[t + k] = PE[t] @ M_k``.

    ``PE`` is :func:`seqbook.models.attention.sinusoidal_positional_encoding` (row
    vectors). Feature pair ``(2i, 2i + 1)`` holds ``(sin, cos)`` of the angle
    ``t * w_i`` with ``w_i = 1 / 10000^(2i/dim)``; shifting by ``k`` positions adds
    ``k * w_i`` to the angle, a rotation of the pair. ``M_k`` is block diagonal with the
    2 x 2 blocks ``[[cos(k w_i), -sin(k w_i)], [sin(k w_i), cos(k w_i)]]`` (rows 2i,
    2i + 1). ``dim`` must be even: with an odd ``dim`` the last sine has no cosine
    partner and no such matrix exists.
    """
    if dim % 2 != 0:
        raise ValueError(
            f"dim must be even, got {dim}: the last sine has no cosine partner"
        )
    even = torch.arange(0, dim, 2, dtype=torch.float32)  # (dim / 2,)
    angles = k / 10000.0 ** (even / dim)  # (dim / 2,) the angle k * w_i of each pair
    cos, sin = torch.cos(angles), torch.sin(angles)
    matrix = torch.zeros(dim, dim)
    matrix[0::2, 0::2] = torch.diag(cos)  # sin(a + b) = sin a cos b + cos a sin b
    matrix[1::2, 0::2] = torch.diag(sin)
    matrix[0::2, 1::2] = torch.diag(-sin)  # cos(a + b) = cos a cos b - sin a sin b
    matrix[1::2, 1::2] = torch.diag(cos)
    return matrix


# ------------------------------------------------------ learned positional embeddings


class LearnedPositionalEmbedding(nn.Module):
    """Adds one trainable vector per position to ``(B, T, D)`` inputs.

    The table is an ``nn.Embedding(max_positions, dim)``: a sequence longer than
    ``max_positions`` has positions without a vector, which is an error here (with a
    message, instead of ``nn.Embedding``'s bare ``IndexError``).
    """

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.max_positions = max_positions
        self.table = nn.Embedding(max_positions, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-2]
        if length > self.max_positions:
            raise ValueError(
                f"a sequence of length {length} needs positions 0..{length - 1}, but "
                f"this table has vectors for positions 0..{self.max_positions - 1} only"
            )
        positions = torch.arange(length, device=x.device)  # (T,)
        return x + self.table(positions)  # (B, T, D) + (T, D)


# ----------------------------------------------------------------- rotary embeddings


def rotary_embedding(x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Rotate the feature pairs of ``x`` ``(..., T, d)`` by position-dependent angles.

    Pair ``(x[2i], x[2i + 1])`` at position ``t`` (counted from ``offset``) is rotated
    by the angle ``t * w_i`` with ``w_i = 1 / 10000^(2i/d)``:
    ``(x0 cos - x1 sin, x0 sin + x1 cos)``. Applied to queries and keys, the dot product
    of a query at position ``m`` and a key at position ``n`` depends on ``m - n`` only.
    ``d`` must be even.
    """
    length, dim = x.shape[-2], x.shape[-1]
    if dim % 2 != 0:
        raise ValueError(f"rotary embeddings rotate pairs of features: d={dim} is odd")
    positions = torch.arange(
        offset, offset + length, dtype=torch.float32, device=x.device
    )[:, None]  # (T, 1)
    even = torch.arange(0, dim, 2, dtype=torch.float32, device=x.device)  # (d / 2,)
    angles = positions / 10000.0 ** (even / dim)  # (T, d / 2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    first, second = x[..., 0::2], x[..., 1::2]  # (..., T, d / 2) each
    rotated = torch.stack(
        (first * cos - second * sin, first * sin + second * cos), dim=-1
    )
    return rotated.flatten(-2)  # (..., T, d): pairs interleaved again


# ---------------------------------------------------------- a task that needs order

A_TOKEN = 0
B_TOKEN = 1


def order_batch(
    batch_size: int,
    length: int,
    n_fillers: int = 8,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the order task: does ``A`` come before ``B``?

    Every sequence of ``length`` tokens holds exactly one :data:`A_TOKEN` (0) and one
    :data:`B_TOKEN` (1) at two distinct random positions; the other positions hold
    filler tokens drawn uniformly from ``2 .. n_fillers + 1``. The target is 1 when
    ``A`` occurs before ``B``, else 0. Fillers are drawn independently of the target, so
    the *bag* of tokens (which tokens, how many times) says nothing about it: a model
    that ignores order is at chance, 50 %, by construction.

    Returns ``tokens`` ``(B, length)`` (int64) and ``targets`` ``(B,)`` (int64).
    """
    if length < 2:
        raise ValueError(f"length must be at least 2 (one A and one B), got {length}")
    tokens = torch.randint(2, 2 + n_fillers, (batch_size, length), generator=generator)
    # Two distinct random positions per row: the first two entries of a random order.
    order = torch.rand(batch_size, length, generator=generator).argsort(dim=1)
    a_position, b_position = order[:, 0], order[:, 1]  # (B,), (B,)
    rows = torch.arange(batch_size)
    tokens[rows, a_position] = A_TOKEN
    tokens[rows, b_position] = B_TOKEN
    targets = (a_position < b_position).long()
    return tokens.to(device), targets.to(device)


class OrderClassifier(nn.Module):
    """A one-block attention classifier for the order task.

    Token embeddings (plus positional information, see below) -> one residual
    multi-head self-attention layer -> one residual position-wise feed-forward layer ->
    the mean over positions -> a linear layer with 2 logits. ``positions`` is
    ``"none"`` (a bag of tokens), ``"sinusoidal"`` (fixed encodings, defined for any
    length) or ``"learned"`` (a :class:`LearnedPositionalEmbedding` with
    ``max_positions`` vectors).
    """

    kinds = ("none", "sinusoidal", "learned")

    def __init__(
        self,
        positions: str,
        n_tokens: int = 10,
        dim: int = 32,
        num_heads: int = 4,
        max_positions: int = 32,
    ):
        super().__init__()
        if positions not in self.kinds:
            raise ValueError(
                f"positions must be one of {self.kinds}, got {positions!r}"
            )
        self.positions = positions
        self.embedding = nn.Embedding(n_tokens, dim)
        self.learned = (
            LearnedPositionalEmbedding(max_positions, dim)
            if positions == "learned"
            else None
        )
        self.attention = MultiHeadAttention(dim, num_heads)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim)
        )
        self.readout = nn.Linear(dim, 2)

    def add_positions(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` embeddings plus this model's positional information."""
        if self.positions == "sinusoidal":
            length, dim = x.shape[-2:]
            return x + sinusoidal_positional_encoding(length, dim).to(x.device)
        if self.positions == "learned":
            return self.learned(x)
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.add_positions(self.embedding(tokens))  # (B, T, D)
        x = x + self.attention(x, x, x)[0]  # (B, T, D)
        x = x + self.feed_forward(x)  # (B, T, D)
        return self.readout(x.mean(dim=1))  # (B, 2)


@torch.no_grad()
def order_accuracy(
    model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor
) -> float:
    """Fraction of the ``(B, T)`` sequences whose order ``model`` gets right."""
    model.eval()
    return (model(tokens).argmax(dim=-1) == targets).float().mean().item()


def train_order_model(
    model: nn.Module,
    length: int,
    steps: int = 400,
    lr: float = 3e-3,
    batch_size: int = 64,
    n_fillers: int = 8,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> TrainingLog:
    """Train ``model`` with Adam on fresh batches of the order task of this
    ``length``."""
    generator = generator if generator is not None else runtime.generator(0)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        return order_batch(batch_size, length, n_fillers, generator, device)

    def loss_fn(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor):
        return F.cross_entropy(model(tokens), targets)

    return train(model, next_batch, loss_fn, optimizer, steps)
