"""The Transformer block: layer normalisation, the position-wise feed-forward network
and the encoder block, built from the book's own multi-head attention.

These are the references of Part 3. ``EncoderBlock.from_torch`` copies the weights of an
``nn.TransformerEncoderLayer`` (ReLU activation, ``batch_first=True``) into a new block
so the two can be compared output for output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbook.models.attention import MultiHeadAttention, causal_mask

__all__ = [
    "LayerNorm",
    "FeedForward",
    "SwiGLUFeedForward",
    "EncoderBlock",
    "pre_ln_block",
    "post_ln_block",
]


class LayerNorm(nn.Module):
    """Normalise each position's features to mean 0 and variance 1, then scale and
    shift.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` over the last axis, with the
    *biased* variance (divide by ``dim``), as ``nn.LayerNorm(dim, eps)`` computes it.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        variance = (x - mean).square().mean(dim=-1, keepdim=True)  # (..., 1)
        return (x - mean) / torch.sqrt(variance + self.eps) * self.weight + self.bias


class FeedForward(nn.Module):
    """``down(activation(up(x)))``, applied to every position independently.

    ``up`` maps ``dim -> hidden_dim`` and ``down`` maps back; ``activation`` is
    ``"relu"`` or ``"gelu"`` (the exact, erf-based GELU). ``dropout`` acts on the hidden
    activations, where ``nn.TransformerEncoderLayer`` puts it.
    """

    def __init__(
        self, dim: int, hidden_dim: int, activation: str = "relu", dropout: float = 0.0
    ):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', not {activation!r}")
        self.activation = activation
        self.up = nn.Linear(dim, hidden_dim)  # dim -> hidden_dim
        self.down = nn.Linear(hidden_dim, dim)  # hidden_dim -> dim
        self.dropout = nn.Dropout(dropout)  # acts on the hidden activations

    def forward(self, x):
        hidden = self.up(x)  # (..., hidden_dim)
        if self.activation == "relu":
            hidden = F.relu(hidden)
        else:
            hidden = F.gelu(hidden)  # exact: x * Phi(x), not the tanh approximation
        return self.down(self.dropout(hidden))  # (..., dim)


class SwiGLUFeedForward(nn.Module):
    """The gated variant ``down(silu(gate(x)) * up(x))`` (Shazeer, 2020), no biases.

    It has three matrices instead of two; to compare it with a two-matrix network at an
    equal parameter count, choose ``hidden_dim`` about two thirds as large.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden_dim, bias=False)
        self.up = nn.Linear(dim, hidden_dim, bias=False)
        self.down = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


def pre_ln_block(x, self_attention, feed_forward, norm1, norm2):
    """The wiring of a pre-LN block: each sub-layer reads a normalised copy of the
    residual stream ``x`` and adds its output to it, attention first, then the FFN::

        x = x + self_attention(norm1(x))
        x = x + feed_forward(norm2(x))

    ``self_attention`` and ``feed_forward`` are functions ``(B, T, dim) -> (B, T, dim)``
    (masking and dropout included); ``norm1`` and ``norm2`` are layer norms.
    """
    x = x + self_attention(norm1(x))  # (B, T, dim)
    x = x + feed_forward(norm2(x))  # (B, T, dim)
    return x


def post_ln_block(x, self_attention, feed_forward, norm1, norm2):
    """The wiring of a post-LN block (the original Transformer): each sub-layer reads
    the stream, its output is added, and the sum is normalised::

        x = norm1(x + self_attention(x))
        x = norm2(x + feed_forward(x))
    """
    x = norm1(x + self_attention(x))  # (B, T, dim)
    x = norm2(x + feed_forward(x))  # (B, T, dim)
    return x


class EncoderBlock(nn.Module):
    """A Transformer encoder block: self-attention and a feed-forward network, each in a
    residual branch with layer normalisation.

    Pre-LN (``norm_first=True``)::

        x = x + Dropout(Attn(LN1(x)))
        x = x + Dropout(FFN(LN2(x)))

    Post-LN (``norm_first=False``, the original Transformer)::

        x = LN1(x + Dropout(Attn(x)))
        x = LN2(x + Dropout(FFN(x)))

    ``forward(x, mask=None, causal=False)``: ``x`` is ``(B, T, dim)``; ``mask`` is an
    optional boolean ``(B, T)`` tensor with ``True`` marking real tokens (padding may
    not be attended to); ``causal=True`` also hides later positions, which turns the
    block into the block of a decoder-only language model. The wiring itself is
    :func:`pre_ln_block` or :func:`post_ln_block`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        hidden_dim: int,
        dropout: float = 0.0,
        norm_first: bool = True,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.attention = MultiHeadAttention(dim, num_heads)
        self.feed_forward = FeedForward(dim, hidden_dim, "relu", dropout)
        self.norm1 = LayerNorm(dim)
        self.norm2 = LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _attend(self, x, keep):
        output, _ = self.attention(x, x, x, mask=keep)
        return self.dropout1(output)

    def forward(self, x, mask=None, causal=False):
        keep = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, T)
        if causal:
            future = causal_mask(x.size(1)).to(x.device)  # (T, T)
            keep = future if keep is None else keep & future

        def self_attention(h):  # (B, T, dim) -> (B, T, dim)
            return self._attend(h, keep)

        def feed_forward(h):  # (B, T, dim) -> (B, T, dim)
            return self.dropout2(self.feed_forward(h))

        wiring = pre_ln_block if self.norm_first else post_ln_block
        return wiring(x, self_attention, feed_forward, self.norm1, self.norm2)

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "EncoderBlock":
        """A new block holding a copy of ``layer``'s weights (ReLU,
        ``batch_first=True``)."""
        if layer.activation_relu_or_gelu != 1:
            raise ValueError("from_torch copies layers with the ReLU activation only")
        if not layer.self_attn.batch_first:
            raise ValueError("from_torch expects a layer built with batch_first=True")
        dim = layer.linear1.in_features
        block = cls(
            dim,
            layer.self_attn.num_heads,
            layer.linear1.out_features,
            dropout=layer.dropout.p,
            norm_first=layer.norm_first,
        )
        if layer.norm1.eps != block.norm1.eps:
            block.norm1.eps = block.norm2.eps = layer.norm1.eps
        block.attention.load_state_dict(layer.self_attn.state_dict())
        block.feed_forward.up.load_state_dict(layer.linear1.state_dict())
        block.feed_forward.down.load_state_dict(layer.linear2.state_dict())
        block.norm1.load_state_dict(layer.norm1.state_dict())
        block.norm2.load_state_dict(layer.norm2.state_dict())
        return block.train(layer.training)
