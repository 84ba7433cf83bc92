"""Scaled dot-product attention and its masks: the reference implementations.

The functions here are the *single source* of the solutions to the exercises of the
section "Scaled dot-product attention" (``tests/test_sync.py`` checks that the solution
cells define exactly these functions). Later sections import them from here instead of
depending on a student's answer.

Mask convention, everywhere in the book: a boolean tensor in which ``True`` means
"this query **may attend** to this key" -- the same convention as the boolean
``attn_mask`` of :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import torch

__all__ = ["scaled_dot_product_attention", "causal_mask", "padding_mask"]


def causal_mask(size: int) -> torch.Tensor:
    """Boolean ``(size, size)`` mask: position ``i`` may attend to positions ``j <= i``."""
    return torch.ones(size, size, dtype=torch.bool).tril()


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean ``(B, 1, max_len)`` mask: key ``j`` of sequence ``b`` is real iff ``j < lengths[b]``.

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
