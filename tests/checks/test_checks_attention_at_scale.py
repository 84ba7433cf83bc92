"""The checks of the "Attention at scale" exercises: they accept correct answers
(repeatedly, in hidden mode), reject each classic mistake with a message that names it,
survive bad input, and refuse the built-ins and the book's reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqbook.checks import attention_at_scale as scale_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall
from seqbook.models import attention_at_scale as reference

check_online_softmax = scale_checks.check_online_softmax
check_tiled_attention = scale_checks.check_tiled_attention
check_kv_cache = scale_checks.check_kv_cache


def _shift(m):
    return torch.where(m == -math.inf, torch.zeros_like(m), m)


# ------------------------------------------------------------------ online softmax
# Written out independently of seqbook.models.attention_at_scale (which is forbidden
# while answers run).


def online(scores, dim=-1, block_size=1, mistake=None):
    if block_size < 1:
        raise ValueError("block_size")
    x = scores.movedim(dim, -1)
    m = torch.full_like(x[..., :1], -math.inf)
    total = torch.zeros_like(m)
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start : start + block_size]
        top = block.max(dim=-1, keepdim=True).values
        new = top if mistake == "max_replaced" else torch.maximum(m, top)
        shift = new if mistake == "no_safe_shift" else _shift(new)
        factor = torch.exp(m - shift)
        if mistake == "no_rescale":
            factor = torch.ones_like(factor)
        if mistake == "no_max":
            total = total + torch.exp(block).sum(-1, keepdim=True)
        else:
            total = total * factor + torch.exp(block - shift).sum(-1, keepdim=True)
        m = new
    if mistake == "no_max":
        out = torch.exp(x) / total
    else:
        out = torch.exp(x - (m if mistake == "no_safe_shift" else _shift(m))) / total
    if mistake == "zeros":
        out = torch.nan_to_num(out, nan=0.0)
    return out.movedim(-1, dim)


def online_two_pass(scores, dim=-1, block_size=1):
    """Correct, written differently: the maximum first, then the sum."""
    if block_size < 1:
        raise ValueError("block_size")
    m = scores.amax(dim=dim, keepdim=True)
    m = torch.where(m == -math.inf, torch.zeros_like(m), m)
    e = torch.exp(scores - m)
    return e / e.sum(dim=dim, keepdim=True)


def test_online_softmax_accepts_correct_answers():
    for fn in (online, online_two_pass):
        check_online_softmax(fn)
        for _ in range(5):
            check_online_softmax(fn, hidden=True)


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("max_replaced", "running maximum is replaced"),
        ("no_rescale", "running sum is not rescaled"),
        ("no_safe_shift", "safe_shift"),
        ("zeros", "should give NaN"),
        ("no_max", "overflow"),
    ],
)
def test_online_softmax_names_the_classic_mistakes(mistake, words):
    def wrong(scores, dim=-1, block_size=1):
        return online(scores, dim, block_size, mistake)

    for hidden in (False, True, True, True):
        with pytest.raises(CheckFailure, match=words):
            check_online_softmax(wrong, hidden=hidden)


def test_online_softmax_reports_stubs_none_shapes_and_builtins():
    def stub(scores, dim=-1, block_size=1):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        check_online_softmax(stub)
    with pytest.raises(CheckFailure, match="None"):
        check_online_softmax(lambda scores, dim=-1, block_size=1: None)
    with pytest.raises(CheckFailure, match="shape"):
        check_online_softmax(lambda s, dim=-1, block_size=1: online(s, dim)[..., :1])
    with pytest.raises(CheckFailure, match="dtype"):
        check_online_softmax(lambda s, dim=-1, block_size=1: online(s, dim).half())
    with pytest.raises(ForbiddenCall):
        check_online_softmax(lambda s, dim=-1, block_size=1: torch.softmax(s, dim))
    with pytest.raises(ForbiddenCall):
        check_online_softmax(lambda s, dim=-1, block_size=1: s.softmax(dim))
    with pytest.raises(ForbiddenCall):
        check_online_softmax(
            lambda s, dim=-1, block_size=1: reference.online_softmax(s, dim)
        )


def test_online_softmax_needs_the_block_size_error():
    def no_error(scores, dim=-1, block_size=1):
        return online(scores, dim, max(block_size, 1))

    with pytest.raises(CheckFailure, match="ValueError"):
        check_online_softmax(no_error)


# ----------------------------------------------------------------- tiled attention


def tiled(q, k, v, mask=None, block_size=64, is_causal=False, mistake=None):
    if block_size < 1:
        raise ValueError("block_size")
    if mask is not None and mask.dtype != torch.bool and mistake != "float_mask":
        raise TypeError("mask must be boolean")
    t_q, t_k = q.shape[-2], k.shape[-2]
    shape = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if mask is not None:
        shape = torch.broadcast_shapes(shape, mask.shape[:-2])
    scale = 1.0 if mistake == "no_scale" else q.shape[-1] ** -0.5
    m = torch.full((*shape, t_q, 1), -math.inf, dtype=q.dtype)
    total = torch.zeros((*shape, t_q, 1), dtype=q.dtype)
    acc = torch.zeros((*shape, t_q, v.shape[-1]), dtype=q.dtype)
    for start in range(0, t_k, block_size):
        stop = min(start + block_size, t_k)
        s = q @ k[..., start:stop, :].transpose(-1, -2) * scale
        if mask is not None:
            if mask.shape[-1] == 1 and mistake != "sliced_flags":
                cols = mask
            elif mistake == "same_columns":
                cols = mask[..., : stop - start]
            else:
                cols = mask[..., start:stop]
            s = s.masked_fill(~cols.bool(), -math.inf)
        if is_causal:
            offset = 0 if mistake == "causal_local" else start
            if mistake == "causal_bottom_right":  # aligned to the last query instead
                offset -= t_k - t_q
            keys = torch.arange(offset, offset + stop - start)
            s = s.masked_fill(keys[None, :] > torch.arange(t_q)[:, None], -math.inf)
        new = torch.maximum(m, s.amax(-1, keepdim=True))
        factor = torch.exp(m - _shift(new))
        w = torch.exp(s - _shift(new))
        sum_factor = 1.0 if mistake == "no_rescale_sum" else factor
        acc_factor = 1.0 if mistake == "no_rescale_acc" else factor
        total = total * sum_factor + w.sum(-1, keepdim=True)
        acc = acc * acc_factor + w @ v[..., start:stop, :]
        m = new
    if mistake == "nan_rows":
        return acc / total
    return acc / torch.where(total == 0, torch.ones_like(total), total)


def test_tiled_attention_accepts_a_correct_answer():
    check_tiled_attention(tiled)
    for _ in range(5):
        check_tiled_attention(tiled, hidden=True)


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("no_rescale_acc", "accumulator is not rescaled"),
        ("no_rescale_sum", "running sum is not rescaled"),
        ("same_columns", "mask is not applied per block"),
        ("causal_local", "counted from the block's start"),
        ("no_scale", "sqrt"),
        ("nan_rows", "no key gets NaN"),
    ],
)
def test_tiled_attention_names_the_classic_mistakes(mistake, words):
    def wrong(q, k, v, mask=None, block_size=64, is_causal=False):
        return tiled(q, k, v, mask, block_size, is_causal, mistake)

    for hidden in (False, True, True, True):
        with pytest.raises(CheckFailure, match=words):
            check_tiled_attention(wrong, hidden=hidden)


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("sliced_flags", r"\(B, 1, T_q, 1\) mask"),
        ("causal_bottom_right", "T_q=.* < T_k="),
        ("float_mask", "should raise TypeError"),
    ],
)
def test_tiled_attention_catches_mask_shapes_alignment_and_dtype(mistake, words):
    def wrong(q, k, v, mask=None, block_size=64, is_causal=False):
        return tiled(q, k, v, mask, block_size, is_causal, mistake)

    for hidden in (False, True, True):
        with pytest.raises(CheckFailure, match=words):
            check_tiled_attention(wrong, hidden=hidden)


def test_tiled_attention_refuses_the_whole_matrix_and_the_builtins():
    def whole(q, k, v, mask=None, block_size=64, is_causal=False):
        if block_size < 1:
            raise ValueError("block_size")
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        full = mask
        if is_causal:
            causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
            full = causal if full is None else full & causal
        if full is not None:
            scores = scores.masked_fill(~full, -math.inf)
        m = _shift(scores.amax(-1, keepdim=True))
        e = torch.exp(scores - m)
        total = e.sum(-1, keepdim=True)
        return e @ v / torch.where(total == 0, torch.ones_like(total), total)

    with pytest.raises(CheckFailure, match="builds a whole"):
        check_tiled_attention(whole)

    def fused(q, k, v, mask=None, block_size=64, is_causal=False):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    with pytest.raises(ForbiddenCall):
        check_tiled_attention(fused)
    with pytest.raises(ForbiddenCall):
        check_tiled_attention(reference.tiled_attention)
    with pytest.raises(CheckFailure, match="None"):
        check_tiled_attention(lambda *a, **k: None)


# ------------------------------------------------------------ repeat_kv and the cache


def repeat_ok(x, groups):
    return x.repeat_interleave(groups, dim=1)


def repeat_tiled(x, groups):
    return x.repeat(1, groups, 1, 1)


def step_ok(layer, x, cache=None, mistake=None):
    if x.shape[1] != 1:
        raise ValueError("one position")
    if mistake == "raw_inputs":
        keys = values = x
    else:
        keys, values = layer.project_keys_values(x)
    if mistake == "repeated":
        keys = repeat_ok(keys, layer.groups)
        values = repeat_ok(values, layer.groups)
    if mistake == "after" and cache is not None:
        output = layer.attend(x, cache.keys, cache.values)
        cache.append(keys, values)
        return output, cache
    if cache is None:
        cache = reference.KVCache(keys, values)
    else:
        cache.keys = torch.cat([cache.keys, keys], dim=-2 if keys.dim() == 4 else 1)
        cache.values = torch.cat(
            [cache.values, values], dim=-2 if keys.dim() == 4 else 1
        )
    if layer.window is not None and mistake != "no_window":
        cache.keep_last(layer.window)
    if mistake == "repeated":
        queries = layer.q_proj(x)
        b = x.shape[0]
        q = queries.view(b, 1, layer.num_heads, layer.head_dim).transpose(1, 2)
        heads = F.softmax(q @ cache.keys.transpose(-1, -2) / layer.head_dim**0.5, -1)
        merged = (heads @ cache.values).transpose(1, 2).reshape(b, 1, -1)
        return layer.out_proj(merged), cache
    return layer.attend(x, cache.keys, cache.values), cache


def test_kv_cache_accepts_correct_answers():
    check_kv_cache(repeat_ok, step_ok)
    for _ in range(3):
        check_kv_cache(repeat_ok, step_ok, hidden=True)


def test_kv_cache_names_the_wrong_head_order():
    for hidden in (False, True, True):
        with pytest.raises(CheckFailure, match="enable_gqa"):
            check_kv_cache(repeat_tiled, step_ok, hidden=hidden)


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("raw_inputs", "not the inputs x"),
        ("repeated", "repeated for every query head"),
        ("after", "append the new position"),
        ("no_window", "keep only the last"),
    ],
)
def test_kv_cache_names_the_classic_mistakes(mistake, words):
    def wrong(layer, x, cache=None):
        return step_ok(layer, x, cache, mistake)

    with pytest.raises(CheckFailure, match=words):
        check_kv_cache(repeat_ok, wrong)


def test_kv_cache_catches_reprojecting_the_prefix():
    prefix = {}

    def reproject(layer, x, cache=None):
        if x.shape[1] != 1:
            raise ValueError("one position")
        key = id(layer)
        prefix[key] = x if cache is None else torch.cat([prefix[key], x], dim=1)
        keys, values = layer.project_keys_values(prefix[key])
        return layer.attend(x, keys, values), reference.KVCache(keys, values)

    with pytest.raises(CheckFailure, match="re-projects the whole prefix"):
        check_kv_cache(repeat_ok, reproject)


def test_kv_cache_reports_stubs_pairs_and_builtins():
    def stub(layer, x, cache=None):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        check_kv_cache(repeat_ok, stub)
    with pytest.raises(CheckFailure, match="pair"):
        check_kv_cache(repeat_ok, lambda layer, x, cache=None: None)
    with pytest.raises(ForbiddenCall):
        check_kv_cache(repeat_ok, lambda layer, x, cache=None: layer.step(x, cache))
    with pytest.raises(ForbiddenCall):
        check_kv_cache(reference.repeat_kv, step_ok)
    with pytest.raises(CheckFailure, match="shape"):
        check_kv_cache(lambda x, groups: x, step_ok)
