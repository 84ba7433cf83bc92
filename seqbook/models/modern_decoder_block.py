"""The modern decoder block: the Transformer block as Llama-style models build it.

The reference code of the section "The modern decoder block". Next to the block of
Part 3 (:class:`~seqbook.models.transformer.EncoderBlock` run with ``causal=True``) it
changes four things and keeps the pre-norm wiring
(:func:`~seqbook.models.transformer.pre_ln_block`):

* :class:`RMSNorm` -- scale each position by the root mean square of its features: no
  mean subtracted, no bias;
* :class:`~seqbook.models.transformer.SwiGLUFeedForward` -- the gated feed-forward
  network, sized by :func:`swiglu_hidden_dim` so that its three matrices hold about as
  many parameters as the two of a plain network;
* rotary position embeddings -- :func:`rotary_frequencies` and :func:`apply_rotary`
  rotate queries and keys (never values) by position-dependent angles, in the
  half-split layout of Hugging Face's Llama: feature ``i`` turns together with feature
  ``i + d/2``;
* grouped-query attention -- :class:`LlamaStyleAttention` has fewer key/value heads than
  query heads; ``repeat_kv`` (from the section on attention at scale) shares each
  key/value head with a group of consecutive query heads.

:class:`ModernDecoderBlock` puts them together and :class:`ModernDecoderLM` stacks the
blocks into a small decoder-only language model with tied input and output embeddings.
:func:`load_llama_layer_weights` and :func:`load_llama_weights` copy the weights of a
``transformers`` ``LlamaDecoderLayer`` or ``LlamaForCausalLM`` (read by attribute name;
this module does not import ``transformers``), so the two can be compared output for
output.
"""

from __future__ import annotations

import torch
from torch import nn

from seqbook.models.attention import (
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)
from seqbook.models.attention_at_scale import kv_head_count, repeat_kv
from seqbook.models.transformer import SwiGLUFeedForward, pre_ln_block

__all__ = [
    "RMSNorm",
    "swiglu_hidden_dim",
    "rotary_frequencies",
    "rotate_half",
    "apply_rotary",
    "LlamaStyleAttention",
    "ModernDecoderBlock",
    "ModernDecoderLM",
    "load_llama_layer_weights",
    "load_llama_weights",
]


# ---------------------------------------------------------------------- RMSNorm


class RMSNorm(nn.Module):
    """Divide each position's features by their root mean square, then scale.

    ``y = x / sqrt(mean(x^2) + eps) * weight`` over the last axis, as
    ``nn.RMSNorm(dim, eps)`` computes it. Unlike layer norm it subtracts no mean and
    adds no bias: it fixes the length of the vector, not its centre.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        mean_square = x.square().mean(dim=-1, keepdim=True)  # (..., 1)
        return x * torch.rsqrt(mean_square + self.eps) * self.weight


# --------------------------------------------------------------------- SwiGLU size


def swiglu_hidden_dim(
    dim: int, ffn_hidden_dim: int | None = None, multiple_of: int = 1
) -> int:
    """The hidden size of a SwiGLU network as large as a plain one of width
    ``ffn_hidden_dim`` (default ``4 * dim``).

    The plain network has two ``dim x ffn_hidden_dim`` matrices, SwiGLU has three
    ``dim x hidden`` ones: equal counts need ``hidden = 2/3 * ffn_hidden_dim``. The
    result is rounded *up* to a multiple of ``multiple_of`` (sizes that suit the
    hardware); Llama-7B: ``swiglu_hidden_dim(4096, 16384, 256) == 11008``.
    """
    if ffn_hidden_dim is None:
        ffn_hidden_dim = 4 * dim
    if dim < 1 or ffn_hidden_dim < 1 or multiple_of < 1:
        raise ValueError(
            f"dim={dim}, ffn_hidden_dim={ffn_hidden_dim} and multiple_of={multiple_of}"
            " must be positive"
        )
    hidden = max(1, 2 * ffn_hidden_dim // 3)  # three matrices instead of two
    return -(-hidden // multiple_of) * multiple_of  # round up


# ---------------------------------------------------------------------------- RoPE


def rotary_frequencies(
    head_dim: int,
    max_len: int,
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(cos, sin)`` tables of rotary embeddings, each ``(max_len, head_dim)``.

    Feature pair ``(i, i + head_dim/2)`` turns at the frequency ``w_i =
    base^(-2i/head_dim)``, so row ``t`` holds ``cos(t w_i)`` and ``sin(t w_i)`` in
    column ``i`` and again in column ``i + head_dim/2`` (the half-split layout). The
    angles are computed in float64, the tables returned in ``dtype``.
    """
    if head_dim % 2 != 0:
        raise ValueError(f"rotary embeddings rotate pairs of features: {head_dim=}")
    # Angles in float64: at position t a float32 product would be off by ~t * 1e-7.
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    frequencies = base**-exponents  # (d/2,)
    positions = torch.arange(max_len, dtype=torch.float64)  # (T,)
    angles = torch.outer(positions, frequencies)  # (T, d/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, d): i and i + d/2 share one
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last axis: every pair
    ``(x[i], x[i + d/2])`` turned by 90 degrees."""
    first, second = x.chunk(2, dim=-1)  # (..., d/2) each
    return torch.cat((-second, first), dim=-1)


def apply_rotary(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rotate queries or keys ``x`` ``(B, H, T, d)`` to their positions.

    ``cos`` and ``sin`` are the ``(max_len, d)`` tables of :func:`rotary_frequencies`.
    ``positions`` (integers) is ``(T,)``, the same for every sequence, or ``(B, T)``;
    by default ``0 .. T-1``. Each pair ``(x[i], x[i + d/2])`` at position ``t`` becomes
    ``(x[i] cos - x[i + d/2] sin, x[i + d/2] cos + x[i] sin)`` with the angle
    ``t w_i``: a rotation, so lengths are kept, and a query at ``m`` and a key at ``n``
    have a dot product that depends on ``m - n`` only.
    """
    if positions is None:
        length = x.size(-2)
        if length > cos.size(0):
            raise ValueError(
                f"sequence of length {length} is longer than the {cos.size(0)} "
                "positions of the rotary tables"
            )
        cos, sin = cos[:length], sin[:length]  # (T, d)
    else:
        cos, sin = cos[positions], sin[positions]  # (T, d) or (B, T, d)
        if positions.dim() == 2:
            cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, d): same for every head
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin  # (B, H, T, d)


# ------------------------------------------------------------- grouped-query attention


class LlamaStyleAttention(nn.Module):
    """Causal self-attention with rotary positions and grouped-query attention.

    Bias-free projections ``q_proj`` ``(H d, dim)``, ``k_proj`` and ``v_proj``
    ``(H_kv d, dim)``, ``o_proj`` ``(dim, H d)`` with ``d = dim / num_heads``, named as
    in Hugging Face's ``LlamaAttention``. Queries and keys are rotated
    (:func:`apply_rotary`); values are not: they carry what a token says, not where it
    stands. ``num_kv_heads`` (default ``num_heads``) must divide ``num_heads``.

    ``forward(x, positions=None)``: ``x`` ``(B, T, dim)``, ``positions`` as in
    :func:`apply_rotary`; returns ``(B, T, dim)``. Position ``t`` attends to positions
    ``0..t`` of the input (by index).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        max_len: int = 256,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        num_kv_heads = kv_head_count(dim, num_heads, num_kv_heads)
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        self.rope_base = rope_base
        self.q_proj = nn.Linear(dim, num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * self.head_dim, dim, bias=False)
        cos, sin = rotary_frequencies(self.head_dim, max_len, rope_base)
        # Fixed tables, rebuilt at construction: not part of the state dict.
        self.register_buffer("cos", cos, persistent=False)  # (max_len, d)
        self.register_buffer("sin", sin, persistent=False)  # (max_len, d)

    def forward(self, x, positions=None):
        q = split_heads(self.q_proj(x), self.num_heads)  # (B, H, T, d)
        k = split_heads(self.k_proj(x), self.num_kv_heads)  # (B, H_kv, T, d)
        v = split_heads(self.v_proj(x), self.num_kv_heads)  # (B, H_kv, T, d)
        q = apply_rotary(q, self.cos, self.sin, positions)
        k = apply_rotary(k, self.cos, self.sin, positions)
        groups = self.num_heads // self.num_kv_heads
        k = repeat_kv(k, groups)  # (B, H, T, d)
        v = repeat_kv(v, groups)  # (B, H, T, d)
        keep = causal_mask(x.size(1)).to(x.device)  # (T, T)
        heads, _ = scaled_dot_product_attention(q, k, v, keep)  # (B, H, T, d)
        return self.o_proj(merge_heads(heads))  # (B, T, dim)


# ---------------------------------------------------------------------- the block


class ModernDecoderBlock(nn.Module):
    """A Llama-style decoder block, pre-norm with RMSNorm::

        h = x + Attn(RMSNorm1(x))        # causal, RoPE, grouped-query
        y = h + SwiGLU(RMSNorm2(h))

    ``forward(x, positions=None)``: ``(B, T, dim) -> (B, T, dim)``. Attribute names
    follow :class:`~seqbook.models.transformer.EncoderBlock` (``attention``,
    ``feed_forward``, ``norm1``, ``norm2``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int,
        hidden_dim: int,
        eps: float = 1e-6,
        max_len: int = 256,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        self.attention = LlamaStyleAttention(
            dim, num_heads, num_kv_heads, max_len=max_len, rope_base=rope_base
        )
        self.feed_forward = SwiGLUFeedForward(dim, hidden_dim)
        self.norm1 = RMSNorm(dim, eps)
        self.norm2 = RMSNorm(dim, eps)

    def forward(self, x, positions=None):
        def self_attention(h):  # (B, T, dim) -> (B, T, dim)
            return self.attention(h, positions)

        return pre_ln_block(
            x, self_attention, self.feed_forward, self.norm1, self.norm2
        )


class ModernDecoderLM(nn.Module):
    """A decoder-only language model of :class:`ModernDecoderBlock` blocks:
    ``(B, T)`` token ids -> ``(B, T, V)`` logits.

    Token embeddings (no position vectors: RoPE inside attention gives the positions),
    ``num_layers`` blocks, a final :class:`RMSNorm` and a bias-free output layer. With
    ``tie_weights=True`` the output layer's weight *is* the embedding matrix (the same
    ``Parameter``), which saves ``vocab_size * dim`` parameters. ``hidden_dim`` defaults
    to ``swiglu_hidden_dim(dim)``.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        num_kv_heads: int = 2,
        hidden_dim: int | None = None,
        tie_weights: bool = True,
        eps: float = 1e-6,
        max_len: int = 256,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        if hidden_dim is None:
            hidden_dim = swiglu_hidden_dim(dim)
        self.embed = nn.Embedding(vocab_size, dim)
        # Vectors of length about 1: with tied weights the logits start near unit size.
        nn.init.normal_(self.embed.weight, std=dim**-0.5)
        self.blocks = nn.ModuleList(
            ModernDecoderBlock(
                dim, num_heads, num_kv_heads, hidden_dim, eps, max_len, rope_base
            )
            for _ in range(num_layers)
        )
        self.norm = RMSNorm(dim, eps)
        self.output = nn.Linear(dim, vocab_size, bias=False)
        if tie_weights:
            self.output.weight = self.embed.weight  # one (V, dim) matrix, two uses

    def forward(self, ids: torch.Tensor, positions=None) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, D)
        for block in self.blocks:
            x = block(x, positions)  # (B, T, D)
        return self.output(self.norm(x))  # (B, T, V)


# ------------------------------------------------------------- weights from Llama


def _checked_pairs(pairs: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``pairs`` maps a name to (our weight, Llama's weight); raise on the first pair
    whose shapes differ, so that nothing is copied when anything would not fit."""
    for name, (ours, theirs) in pairs.items():
        if ours.shape != theirs.shape:
            raise ValueError(
                f"{name}: shape {tuple(theirs.shape)} does not fit {tuple(ours.shape)}"
            )
    return list(pairs.values())


def _llama_layer_pairs(block: ModernDecoderBlock, layer: nn.Module) -> list:
    """The checked (target, source) weight pairs of :func:`load_llama_layer_weights`."""
    attention, mlp = layer.self_attn, layer.mlp
    config = getattr(attention, "config", None)
    if config is not None:
        if getattr(config, "hidden_act", "silu") != "silu":
            raise ValueError(f"the layer uses {config.hidden_act!r}, not SiLU")
        theta = getattr(config, "rope_theta", None)
        if theta is not None and theta != block.attention.rope_base:
            raise ValueError(
                f"rope_theta={theta} differs from rope_base={block.attention.rope_base}"
            )
    if attention.head_dim != block.attention.head_dim:
        raise ValueError(
            f"head_dim={attention.head_dim} differs from {block.attention.head_dim}"
        )
    modules = {
        "q_proj": (block.attention.q_proj, attention.q_proj),
        "k_proj": (block.attention.k_proj, attention.k_proj),
        "v_proj": (block.attention.v_proj, attention.v_proj),
        "o_proj": (block.attention.o_proj, attention.o_proj),
        "gate_proj": (block.feed_forward.gate, mlp.gate_proj),
        "up_proj": (block.feed_forward.up, mlp.up_proj),
        "down_proj": (block.feed_forward.down, mlp.down_proj),
        "input_layernorm": (block.norm1, layer.input_layernorm),
        "post_attention_layernorm": (block.norm2, layer.post_attention_layernorm),
    }
    for name, (_, theirs) in modules.items():
        if getattr(theirs, "bias", None) is not None:
            raise ValueError(f"{name} has a bias; the block's projections have none")
    return _checked_pairs(
        {name: (ours.weight, theirs.weight) for name, (ours, theirs) in modules.items()}
    )


@torch.no_grad()
def load_llama_layer_weights(block: ModernDecoderBlock, layer: nn.Module) -> None:
    """Copy the weights of a ``transformers`` ``LlamaDecoderLayer`` into ``block``.

    The projections keep their names (``q_proj`` ... ``o_proj``); ``gate_proj``,
    ``up_proj``, ``down_proj`` go to ``feed_forward.gate``, ``.up``, ``.down``;
    ``input_layernorm`` and ``post_attention_layernorm`` to ``norm1`` and ``norm2``
    (their ``eps`` too). Layers with biases, another activation than SiLU, another head
    size or another rotary base than ``block``'s raise ``ValueError`` before anything
    is copied.
    """
    for ours, theirs in _llama_layer_pairs(block, layer):
        ours.copy_(theirs)
    block.norm1.eps = layer.input_layernorm.variance_epsilon
    block.norm2.eps = layer.post_attention_layernorm.variance_epsilon


@torch.no_grad()
def load_llama_weights(model: ModernDecoderLM, llama: nn.Module) -> None:
    """Copy a ``transformers`` ``LlamaForCausalLM`` into ``model``: embeddings, every
    layer (as :func:`load_llama_layer_weights`), final norm and output layer.

    A tied ``model`` needs a tied ``llama`` (and the other way round): one matrix
    cannot hold two different ones. Everything is checked before anything is copied.
    """
    body = llama.model
    if len(body.layers) != len(model.blocks):
        raise ValueError(
            f"{len(body.layers)} Llama layers for {len(model.blocks)} blocks"
        )
    ours_tied = model.output.weight is model.embed.weight
    theirs_tied = llama.lm_head.weight is body.embed_tokens.weight
    if ours_tied != theirs_tied:
        raise ValueError(f"tied output weights: model {ours_tied}, Llama {theirs_tied}")
    outer = {
        "embed_tokens": (model.embed.weight, body.embed_tokens.weight),
        "norm": (model.norm.weight, body.norm.weight),
    }
    if not ours_tied:
        outer["lm_head"] = (model.output.weight, llama.lm_head.weight)
    pairs = _checked_pairs(outer)
    for block, layer in zip(model.blocks, body.layers):
        _llama_layer_pairs(block, layer)  # checks only: nothing copied yet
    for ours, theirs in pairs:
        ours.copy_(theirs)
    for block, layer in zip(model.blocks, body.layers):
        load_llama_layer_weights(block, layer)
    model.norm.eps = body.norm.variance_epsilon
