"""Attention at scale: the reference code of the section "Attention at scale".

Attention as Part 2 writes it builds the whole ``T_q x T_k`` matrix of scores, and a
decoder that generates token by token recomputes every earlier key and value at every
step. This module holds the four ideas that remove those costs, each from PyTorch
primitives so that it can be read line by line and checked against PyTorch's fused
kernels:

* :func:`online_softmax`: the softmax in one left-to-right pass that keeps a running
  maximum and a running sum (Milakov and Gimelshein, 2018).
* :func:`tiled_attention`: FlashAttention's forward pass (Dao et al., 2022): the same
  running statistics over blocks of keys, so that only ``T_q x block_size`` scores exist
  at a time.
* :class:`KVCache`, :class:`CachedSelfAttention` and :func:`kv_cache_bytes`: a decoder
  keeps the *projected* keys and values of the positions it has seen and projects only
  the new one.
* :func:`repeat_kv` (grouped-query and multi-query attention, where several query heads
  share one key/value head, shrinking the cache) and :func:`sliding_window_mask` (each
  position sees only the last ``window`` positions, bounding the cache).

Mask convention, as everywhere in the book: boolean, ``True`` means "may attend". A
query that may attend to no key gets a zero output, as from
:func:`seqbook.models.attention.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from seqbook.models.attention import causal_mask, merge_heads, split_heads

__all__ = [
    "online_softmax",
    "tiled_attention",
    "repeat_kv",
    "sliding_window_mask",
    "kv_head_count",
    "KVCache",
    "cached_step",
    "CachedSelfAttention",
    "kv_cache_bytes",
]


def safe_shift(running_max: torch.Tensor) -> torch.Tensor:
    """The running maximum with ``-inf`` replaced by 0, for subtracting from scores.

    While every score seen so far is ``-inf`` the maximum is ``-inf`` too, and
    ``exp(-inf - (-inf))`` would be NaN. Shifting by 0 instead gives ``exp(-inf) = 0``,
    so such a row keeps a running sum of exactly 0 until a finite score arrives.
    """
    return running_max.masked_fill(running_max == -math.inf, 0.0)


# ------------------------------------------------------------------- online softmax


def online_softmax(
    scores: torch.Tensor, dim: int = -1, block_size: int = 1
) -> torch.Tensor:
    """``torch.softmax(scores, dim)``, with its statistics gathered in one pass.

    The textbook softmax reads the scores three times: once for the maximum (subtracted
    so that ``exp`` cannot overflow), once for the sum of exponentials, once to divide.
    Here the maximum ``m`` and the sum ``l`` are built together, left to right,
    ``block_size`` scores at a time: when a block raises the maximum from ``m_old`` to
    ``m_new``, the sum so far was measured against the old maximum and is rescaled by
    ``exp(m_old - m_new)`` before the block's terms are added. A last pass divides.

    Args:
        scores: floating-point tensor of logits; ``-inf`` marks an excluded entry.
        dim: the axis to normalise over.
        block_size: how many scores each step of the pass reads (1: one at a time).

    Returns:
        The probabilities, shaped like ``scores``. A slice whose scores are all ``-inf``
        gives NaN, exactly as ``torch.softmax`` does (a softmax over nothing is 0/0);
        :func:`tiled_attention` turns such rows into zeros instead.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    x = scores.movedim(dim, -1)  # (..., N): the pass runs along the last axis
    running_max = x.new_full((*x.shape[:-1], 1), -math.inf)  # (..., 1)
    running_sum = x.new_zeros((*x.shape[:-1], 1))  # (..., 1)
    for start in range(0, x.size(-1), block_size):
        block = x[..., start : start + block_size]  # (..., b)
        new_max = torch.maximum(running_max, block.amax(dim=-1, keepdim=True))
        shift = safe_shift(new_max)
        # The old terms were exp(s - m_old); exp(m_old - m_new) turns them into
        # exp(s - m_new), the scale of the new terms.
        rescale = torch.exp(running_max - shift)  # (..., 1); 1 if m did not grow
        block_sum = torch.exp(block - shift).sum(dim=-1, keepdim=True)  # (..., 1)
        running_sum = running_sum * rescale + block_sum
        running_max = new_max
    probabilities = torch.exp(x - safe_shift(running_max)) / running_sum
    return probabilities.movedim(-1, dim)


# ----------------------------------------------------------------- tiled attention


def tiled_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    block_size: int = 64,
    is_causal: bool = False,
) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d_k)) V`` computed block of keys by block of keys.

    The forward pass of FlashAttention: each query keeps a running maximum ``m`` of its
    scores, a running denominator ``l`` and an unnormalised output ``acc``. A block of
    keys gives scores ``s`` ``(..., T_q, block_size)``; if it raises the maximum, ``l``
    and ``acc`` are rescaled by ``exp(m_old - m_new)``, then the block adds
    ``exp(s - m_new)`` to ``l`` and ``exp(s - m_new) @ V_block`` to ``acc``. Dividing
    ``acc`` by ``l`` at the end gives the softmax-weighted average without the full
    ``T_q x T_k`` matrix ever existing. (FlashAttention also splits the queries into
    blocks, to fit a GPU's on-chip memory; each query row is independent, so the maths
    is the same.) Under autograd the blocks' intermediates are kept for the backward
    pass; the saving in memory is the forward pass's, e.g. in inference.

    Args:
        query: ``(..., T_q, d_k)``.
        key: ``(..., T_k, d_k)``.
        value: ``(..., T_k, d_v)``.
        mask: optional boolean tensor broadcastable to ``(..., T_q, T_k)``; ``True``
            means "may attend". It is read one block of columns at a time.
        block_size: how many keys each step reads.
        is_causal: also let query ``i`` see only keys ``j <= i`` (aligned at the top
            left, as ``is_causal`` of ``F.scaled_dot_product_attention``). Combined
            with ``mask`` by "and"; key blocks that no query may see are skipped.

    Returns:
        The output ``(..., T_q, d_v)``. A query that may attend to no key gets zeros
        (its ``l`` stays 0 and its ``acc`` stays 0), never NaN.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"mask must be boolean (True = may attend), got {mask.dtype}")
    t_q, t_k = query.size(-2), key.size(-2)
    batch_shape = torch.broadcast_shapes(
        query.shape[:-2], key.shape[:-2], value.shape[:-2]
    )
    if mask is not None:
        batch_shape = torch.broadcast_shapes(batch_shape, mask.shape[:-2])
    scale = 1.0 / math.sqrt(query.size(-1))

    running_max = query.new_full((*batch_shape, t_q, 1), -math.inf)  # (..., T_q, 1)
    running_sum = query.new_zeros((*batch_shape, t_q, 1))  # (..., T_q, 1)
    # (..., T_q, d_v): the softmax-weighted sum of values, not yet divided by l
    accumulator = query.new_zeros((*batch_shape, t_q, value.size(-1)))
    query_positions = torch.arange(t_q, device=query.device)[:, None]  # (T_q, 1)
    # Top-left causal alignment: key j is visible to some query only if j < T_q.
    last_key = min(t_k, t_q) if is_causal else t_k

    for start in range(0, last_key, block_size):
        stop = min(start + block_size, t_k)
        key_block = key[..., start:stop, :]  # (..., b, d_k)
        value_block = value[..., start:stop, :]  # (..., b, d_v)
        scores = (query @ key_block.transpose(-2, -1)) * scale  # (..., T_q, b)
        if mask is not None:
            # A mask whose key axis has size 1 applies to every block as it is.
            visible = mask if mask.size(-1) == 1 else mask[..., start:stop]
            scores = torch.where(visible, scores, -math.inf)
        if is_causal:
            key_positions = torch.arange(start, stop, device=query.device)  # (b,)
            scores = scores.masked_fill(key_positions > query_positions, -math.inf)

        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        shift = safe_shift(new_max)  # (..., T_q, 1)
        rescale = torch.exp(running_max - shift)  # (..., T_q, 1); 1 if m did not grow
        weights = torch.exp(scores - shift)  # (..., T_q, b), unnormalised
        running_sum = running_sum * rescale + weights.sum(dim=-1, keepdim=True)
        accumulator = accumulator * rescale + weights @ value_block
        running_max = new_max

    # A query with no visible key has running_sum 0 and accumulator 0: divide by 1.
    return accumulator / running_sum.masked_fill(running_sum == 0, 1.0)


# ------------------------------------------------------ grouped-query attention, masks


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``(B, H_kv, T, d)`` -> ``(B, H_kv * groups, T, d)``: query head ``h`` gets
    key/value head ``h // groups``.

    Grouped-query attention lets ``groups`` consecutive query heads share one
    key/value head (multi-query attention: a single key/value head for all). Each
    key/value head is repeated in place, ``[k0, k0, k1, k1]`` for two groups of two --
    the order ``F.scaled_dot_product_attention(..., enable_gqa=True)`` uses -- not
    tiled ``[k0, k1, k0, k1]`` as ``x.repeat(1, groups, 1, 1)`` would.
    """
    if groups == 1:
        return x
    batch, kv_heads, length, head_dim = x.shape
    expanded = x[:, :, None].expand(batch, kv_heads, groups, length, head_dim)
    return expanded.reshape(batch, kv_heads * groups, length, head_dim)


def kv_head_count(dim: int, num_heads: int, num_kv_heads: int | None) -> int:
    """The number of key/value heads (``num_heads`` when None), after checking that the
    heads split ``dim`` evenly and the key/value heads split the query heads evenly."""
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if dim % num_heads != 0:
        raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
    if num_heads % num_kv_heads != 0:
        raise ValueError(
            f"num_heads={num_heads} is not divisible by num_kv_heads={num_kv_heads}"
        )
    return num_kv_heads


def sliding_window_mask(size: int, window: int) -> torch.Tensor:
    """Boolean ``(size, size)`` mask: position ``i`` may attend to the ``window``
    positions ``i - window < j <= i``.

    A causal band: with ``window >= size`` it is :func:`causal_mask`. Stacked layers
    still pass information further back (``L`` layers reach ``L * (window - 1)``
    positions), while each layer's cache holds at most ``window`` positions.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    # tril keeps j <= i; triu(-(window - 1)) keeps j >= i - window + 1.
    return causal_mask(size).triu(diagonal=-(window - 1))


# ------------------------------------------------------------------ key/value cache


@dataclass
class KVCache:
    """The projected keys and values of the positions a decoder layer has seen.

    ``keys`` and ``values`` are ``(B, H_kv, T, d)``. :meth:`append` adds new positions
    by concatenation, which copies the cache at every step; serving systems instead
    allocate the cache for the longest sequence once (or in pages) and write into it.
    """

    keys: torch.Tensor
    values: torch.Tensor

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> KVCache:
        """Add the keys and values ``(B, H_kv, t, d)`` of ``t`` new positions; returns
        the cache itself."""
        self.keys = torch.cat([self.keys, keys], dim=2)  # (B, H_kv, T + t, d)
        self.values = torch.cat([self.values, values], dim=2)
        return self

    def keep_last(self, length: int) -> KVCache:
        """Forget all but the last ``length`` positions (a sliding window's cache);
        returns the cache itself."""
        self.keys = self.keys[:, :, -length:]
        self.values = self.values[:, :, -length:]
        return self

    @property
    def length(self) -> int:
        """The number of positions held."""
        return self.keys.size(2)

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values held."""
        return self.keys.nbytes + self.values.nbytes


def kv_cache_bytes(
    num_layers: int,
    seq_len: int,
    num_kv_heads: int,
    head_dim: int,
    bytes_per_element: int,
    batch_size: int = 1,
) -> int:
    """Bytes of the key/value caches of a decoder: ``2 * layers * T * H_kv * d * bytes
    * B`` (the 2: keys and values).

    It grows linearly with the sequence and the batch, and it is what grouped-query
    attention divides (fewer key/value heads) and a sliding window caps (``T`` at most
    ``window``).
    """
    return (
        2
        * num_layers
        * seq_len
        * num_kv_heads
        * head_dim
        * bytes_per_element
        * batch_size
    )


class CachedSelfAttention(nn.Module):
    """Causal multi-head self-attention with grouped-query heads and a key/value cache.

    ``num_heads`` query heads share ``num_kv_heads`` key/value heads (``None``: as many
    as query heads, ordinary multi-head attention; 1: multi-query attention), so the key
    and value projections are ``(num_kv_heads * head_dim, dim)``. With ``window`` set,
    each position sees only the last ``window`` positions (:func:`sliding_window_mask`).

    Three ways in, with the same result position by position:

    * :meth:`forward` ``(B, T, dim)`` -> ``(B, T, dim)``: the whole sequence at once.
    * :meth:`prefill` ``(B, T, dim)`` -> output and a :class:`KVCache`: the same, and
      keep the projected keys and values for generation.
    * :meth:`step` ``(B, 1, dim)`` and a cache -> output ``(B, 1, dim)`` and the cache
      extended by one position: only the new position is projected.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        window: int | None = None,
        bias: bool = True,
    ):
        super().__init__()
        num_kv_heads = kv_head_count(dim, num_heads, num_kv_heads)
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        self.window = window
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, kv_dim, bias=bias)
        self.v_proj = nn.Linear(dim, kv_dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    @property
    def groups(self) -> int:
        """How many query heads share each key/value head."""
        return self.num_heads // self.num_kv_heads

    def project_keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values ``(B, H_kv, T, d)`` of ``x`` ``(B, T, dim)``: what the
        cache holds."""
        keys = split_heads(self.k_proj(x), self.num_kv_heads)  # (B, H_kv, T, d)
        values = split_heads(self.v_proj(x), self.num_kv_heads)  # (B, H_kv, T, d)
        return keys, values

    def attend(self, x, keys, values, mask=None):
        """Project the queries of ``x`` ``(B, T_q, dim)``, attend over ``keys`` and
        ``values`` ``(B, H_kv, T_k, d)``, merge the heads and project the output."""
        queries = split_heads(self.q_proj(x), self.num_heads)  # (B, H, T_q, d)
        # Fused kernels index key/value head h // groups; repeating is the plain way.
        heads = tiled_attention(
            queries,
            repeat_kv(keys, self.groups),  # (B, H, T_k, d)
            repeat_kv(values, self.groups),
            mask=mask,
        )  # (B, H, T_q, d)
        return self.out_proj(merge_heads(heads))  # (B, T_q, dim)

    def _mask(self, size: int) -> torch.Tensor:
        if self.window is None:
            return causal_mask(size)
        return sliding_window_mask(size, self.window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The whole sequence ``x`` ``(B, T, dim)`` -> ``(B, T, dim)``, each position
        attending to itself and the positions before it (the last ``window``)."""
        return self.prefill(x)[0]

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        """Attend over the whole prompt ``x`` ``(B, T, dim)`` at once; returns the
        output ``(B, T, dim)`` and the cache of its keys and values (the last
        ``window`` of them with a sliding window)."""
        keys, values = self.project_keys_values(x)  # (B, H_kv, T, d) each
        mask = self._mask(x.size(1)).to(x.device)  # (T, T)
        output = self.attend(x, keys, values, mask)
        cache = KVCache(keys, values)
        if self.window is not None:
            cache.keep_last(self.window)
        return output, cache

    def step(
        self, x: torch.Tensor, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        """One new position ``x`` ``(B, 1, dim)`` after the positions in ``cache``
        (``None`` before the first). Projects only ``x``, appends its keys and values to
        the cache (in place) and attends over the cache; no mask is needed, since the
        cache holds exactly the positions the new one may see. Returns the output
        ``(B, 1, dim)`` and the cache."""
        return cached_step(self, x, cache)


def cached_step(
    layer: CachedSelfAttention, x: torch.Tensor, cache: KVCache | None = None
) -> tuple[torch.Tensor, KVCache]:
    """One generation step of ``layer``: the new position ``x`` ``(B, 1, dim)`` after
    the positions held in ``cache`` (``None`` before the first).

    Only ``x`` is projected; its keys and values join the cache, which then holds
    exactly the positions the new one may see, so the attention needs no mask.
    """
    if x.size(1) != 1:
        raise ValueError(f"a step takes one position, got {x.size(1)}")
    keys, values = layer.project_keys_values(x)  # (B, H_kv, 1, d) each
    if cache is None:
        cache = KVCache(keys, values)
    else:
        cache.append(keys, values)  # (B, H_kv, T + 1, d)
    if layer.window is not None:
        cache.keep_last(layer.window)
    output = layer.attend(x, cache.keys, cache.values)  # (B, 1, dim)
    return output, cache
