"""Counting parameters and floating-point operations from hyper-parameters alone.

A Transformer's size and cost follow from a handful of numbers: the model width ``dim``,
the hidden width of the feed-forward network ``hidden_dim`` and whether the linear maps
and layer norms carry biases. These functions turn them into counts without building
any layer, so they work for sizes that would not fit in memory. They count the layers as
PyTorch builds them (``nn.TransformerEncoderLayer``, ``nn.TransformerDecoderLayer``,
``nn.MultiheadAttention``), which the tests check.

FLOPs count a multiply-add as two operations, the convention of
``torch.utils.flop_counter.FlopCounterMode``; like it, they count the matrix products
only (biases and activations add a few operations per hidden unit, negligible next to
the products).
"""

from __future__ import annotations

__all__ = [
    "feed_forward_parameters",
    "swiglu_parameters",
    "swiglu_hidden_dim",
    "attention_parameters",
    "layer_norm_parameters",
    "transformer_layer_parameters",
    "feed_forward_flops",
]


def feed_forward_parameters(dim: int, hidden_dim: int, bias: bool = True) -> int:
    """Parameters of ``down(activation(up(x)))``: ``2 * dim * hidden_dim`` weights and,
    with biases, ``hidden_dim + dim`` more."""
    return 2 * dim * hidden_dim + (hidden_dim + dim if bias else 0)


def swiglu_parameters(dim: int, hidden_dim: int) -> int:
    """Parameters of the SwiGLU network: three bias-free ``dim x hidden_dim``
    matrices."""
    return 3 * dim * hidden_dim


def swiglu_hidden_dim(dim: int, hidden_dim: int, bias: bool = True) -> int:
    """The SwiGLU hidden width whose parameter count is closest to that of a two-matrix
    network of width ``hidden_dim`` (about two thirds of ``hidden_dim``)."""
    target = feed_forward_parameters(dim, hidden_dim, bias)
    return max(1, round(target / (3 * dim)))


def attention_parameters(dim: int, bias: bool = True) -> int:
    """Parameters of multi-head attention as ``nn.MultiheadAttention`` builds it: the
    query, key, value and output projections, ``4 * dim * dim`` weights and ``4 * dim``
    biases. The number of heads does not appear: the heads split ``dim`` into slices."""
    return 4 * dim * dim + (4 * dim if bias else 0)


def layer_norm_parameters(dim: int, bias: bool = True) -> int:
    """A layer norm's scale vector, and its shift vector when ``bias`` is true."""
    return 2 * dim if bias else dim


def transformer_layer_parameters(
    dim: int, num_heads: int, hidden_dim: int, bias: bool = True, decoder: bool = False
) -> int:
    """Parameters of
    ``nn.TransformerEncoderLayer(dim, num_heads, hidden_dim, bias=bias)`` or, with
    ``decoder=True``, of ``nn.TransformerDecoderLayer`` (which adds cross-attention and
    a third layer norm). ``bias=False`` removes the biases of the linear maps and of the
    layer norms, as PyTorch does."""
    if dim % num_heads != 0:
        raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
    attention = 4 * dim * dim + (4 * dim if bias else 0)  # Q, K, V and output maps
    feed_forward = 2 * dim * hidden_dim + (hidden_dim + dim if bias else 0)
    layer_norm = 2 * dim if bias else dim  # scale, and shift if bias
    if decoder:  # self-attention, cross-attention, FFN; three layer norms
        return 2 * attention + feed_forward + 3 * layer_norm
    return attention + feed_forward + 2 * layer_norm


def feed_forward_flops(dim: int, hidden_dim: int, positions: int = 1) -> int:
    """Forward FLOPs of the two matrix products of a feed-forward network over
    ``positions`` positions: ``2 * 2 * dim * hidden_dim`` per position."""
    return 4 * dim * hidden_dim * positions
