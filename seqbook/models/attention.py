"""Attention: the reference implementations of Part 2.

Scaled dot-product attention and its masks, multi-head attention, and sinusoidal
positional encodings. The functions here are the *single source* of the solutions to the
exercises of Part 2's sections (``tests/book/test_sync.py`` checks that the solution
cells define exactly these functions). Later sections import them from here instead of
depending on a student's answer.

Mask convention, everywhere in the book: a boolean tensor in which ``True`` means
"this query **may attend** to this key" -- the same convention as the boolean
``attn_mask`` of :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    "project_keys_values",
    "attend_projected",
    "sinusoidal_positional_encoding",
]


def causal_mask(size: int) -> torch.Tensor:
    """Boolean ``(size, size)`` mask: position ``i`` may attend to positions
    ``j <= i``."""
    return torch.ones(size, size, dtype=torch.bool).tril()


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean ``(B, 1, max_len)`` mask: key ``j`` of sequence ``b`` is real iff
    ``j < lengths[b]``.

    The middle axis of size 1 broadcasts over the queries, so the mask applies to
    scores of shape ``(B, T_q, max_len)``.
    """
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return (positions < lengths[:, None])[:, None, :]  # (B, 1, T)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention ``softmax(Q K^T / sqrt(d_k)) V`` over the last two axes.

    Args:
        query: ``(..., T_q, d_k)``.
        key: ``(..., T_k, d_k)``.
        value: ``(..., T_k, d_v)``.
        mask: optional boolean tensor broadcastable to ``(..., T_q, T_k)``;
            ``True`` means "may attend".

    Returns:
        ``(output, weights)`` with output ``(..., T_q, d_v)`` and weights
        ``(..., T_q, T_k)``. A query whose mask row is all ``False`` gets zero weights
        and a zero output (instead of the NaNs of a softmax over nothing).
    """
    d_k = query.size(-1)
    scores = query @ key.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        # A fully masked row is a softmax over nothing: 0/0 = NaN. Zero it instead.
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ value, weights


# --------------------------------------------------------------------- multi-head


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, H, T, D / H)``: feature ``h * D/H + i`` goes to head
    ``h``.

    Each head owns a contiguous block of features, the layout PyTorch's
    ``nn.MultiheadAttention`` uses.
    """
    batch, length, dim = x.shape
    head_dim = dim // num_heads
    return x.reshape(batch, length, num_heads, head_dim).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, d)`` -> ``(B, T, H * d)``: the inverse of :func:`split_heads`."""
    batch, num_heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, num_heads * head_dim)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with the parameters of ``nn.MultiheadAttention``.

    The parameters have the names and shapes of PyTorch's module (``in_proj_weight``
    ``(3D, D)`` stacking the query, key and value projections, ``in_proj_bias``
    ``(3D,)``, ``out_proj.weight`` ``(D, D)``, ``out_proj.bias`` ``(D,)``), so
    ``load_state_dict`` copies weights either way.

    ``forward(query, key, value, mask=None)`` takes batch-first ``(B, T, D)`` tensors
    and a boolean ``mask`` broadcastable to ``(B, H, T_q, T_k)`` in which ``True``
    means "may attend" (a padding mask of shape ``(B, 1, 1, T_k)``, a causal mask of
    shape ``(T_q, T_k)``). PyTorch's module reads a boolean mask the other way round
    (``True`` = "may *not* attend"). Returns ``(output, weights)``: output
    ``(B, T_q, D)`` and the weights of every head, ``(B, H, T_q, T_k)``.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        # The initialisation PyTorch's module uses: Xavier-uniform projections and
        # zero biases.
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, mask=None):
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)  # each (D, D)
        if self.in_proj_bias is None:
            b_q = b_k = b_v = None
        else:
            b_q, b_k, b_v = self.in_proj_bias.chunk(3)  # each (D,)
        q = split_heads(F.linear(query, w_q, b_q), self.num_heads)  # (B, H, T_q, d)
        k = split_heads(F.linear(key, w_k, b_k), self.num_heads)  # (B, H, T_k, d)
        v = split_heads(F.linear(value, w_v, b_v), self.num_heads)  # (B, H, T_k, d)
        heads, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(
            merge_heads(heads)
        ), weights  # (B, T_q, D), (B, H, T_q, T_k)


def project_keys_values(attention: MultiHeadAttention, key, value):
    """The keys and values ``(B, H, T_k, d)`` that ``attention`` computes from ``key``
    and ``value`` ``(B, T_k, D)``: what a key/value cache keeps, so that each position's
    are computed once while a sequence is generated."""
    _, w_k, w_v = attention.in_proj_weight.chunk(3)  # each (D, D)
    b_k = b_v = None
    if attention.in_proj_bias is not None:
        _, b_k, b_v = attention.in_proj_bias.chunk(3)  # each (D,)
    return (
        split_heads(F.linear(key, w_k, b_k), attention.num_heads),
        split_heads(F.linear(value, w_v, b_v), attention.num_heads),
    )


def attend_projected(attention: MultiHeadAttention, query, keys, values, mask=None):
    """``attention(query, key, value, mask)`` with the keys and values already
    projected by :func:`project_keys_values`: the same ``(output, weights)``."""
    w_q = attention.in_proj_weight.chunk(3)[0]  # (D, D)
    b_q = None if attention.in_proj_bias is None else attention.in_proj_bias.chunk(3)[0]
    q = split_heads(F.linear(query, w_q, b_q), attention.num_heads)  # (B, H, T_q, d)
    heads, weights = scaled_dot_product_attention(q, keys, values, mask)
    return attention.out_proj(
        merge_heads(heads)
    ), weights  # (B, T_q, D), (B, H, T_q, T_k)


# ---------------------------------------------------------------------- positions


def sinusoidal_positional_encoding(num_positions: int, dim: int) -> torch.Tensor:
    """The ``(num_positions, dim)`` sinusoidal encodings of Vaswani et al. (2017).

    ``PE[t, 2i] = sin(t / 10000^(2i/dim))`` and
    ``PE[t, 2i+1] = cos(t / 10000^(2i/dim))``: every pair of features is a clock turning
    at its own frequency, from one turn per ``2 pi`` positions down to one per
    ``10000 * 2 pi``.
    """
    positions = torch.arange(num_positions, dtype=torch.float32)[:, None]  # (T, 1)
    even = torch.arange(0, dim, 2, dtype=torch.float32)  # (ceil(dim / 2),)
    angles = positions / 10000.0 ** (even / dim)  # (T, ceil(dim / 2))
    encoding = torch.zeros(num_positions, dim)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return encoding
