"""Checks for the exercises of the section "Attention at scale".

* :func:`check_online_softmax` -- ``online_softmax(scores, dim, block_size)`` against
  ``torch.softmax`` on ordinary rows, logits of +-1e4, rows that start masked and rows
  masked throughout (NaN, as ``torch.softmax`` gives), along two axes and for several
  block sizes. Named mistakes: the running maximum replaced by the block's maximum, the
  running sum not rescaled (or rescaled by the inverse factor), no maximum subtracted
  (overflow), a NaN where the maximum is still ``-inf``, zeros for fully masked rows.
* :func:`check_tiled_attention` -- ``tiled_attention(q, k, v, mask, block_size,
  is_causal)`` against PyTorch's attention with padding, arbitrary and causal masks,
  block sizes that do and do not divide ``T_k``; the full ``T_q x T_k`` matrix must
  never be built. Named mistakes: the accumulator or the sum not rescaled, the running
  maximum replaced, the same mask columns used for every block, the mask ignored, causal
  positions counted from the block's start, no ``1/sqrt(d)``, NaN for a query that sees
  no key.
* :func:`check_kv_cache` -- ``repeat_kv(x, groups)`` against PyTorch's ``enable_gqa``
  order and ``cached_step(layer, x, cache)`` step by step against the layer run on the
  whole sequence. Named mistakes: heads tiled ``[k0, k1, k0, k1]`` instead of repeated
  in place, the inputs cached before projection, the prefix projected again, repeated
  heads cached, the new position appended after attending, a window not applied.

``hidden=False`` is the friendly visible check; ``hidden=True`` draws sizes, values and
masks from a fresh random seed at grading time.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from seqbook.checks import integrity
from seqbook.checks._harness import check, close_tensors, guarded_call
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    expect_close,
    expect_tensor,
    grading_generator,
    random_int,
)
from seqbook.checks.guard import ForbiddenCall, existing_paths
from seqbook.models import attention_at_scale as _reference_module

__all__ = ["check_online_softmax", "check_tiled_attention", "check_kv_cache"]

# Captured at import, before any student code can touch the modules.
_reference_online = _reference_module.online_softmax
_reference_tiled = _reference_module.tiled_attention
_reference_repeat = _reference_module.repeat_kv
_ReferenceLayer = _reference_module.CachedSelfAttention
_KVCache = _reference_module.KVCache
_sliding = _reference_module.sliding_window_mask
_softmax = torch.softmax
_sdpa = F.scaled_dot_product_attention

_SOFTMAX_BUILTINS = existing_paths(
    (
        "torch.softmax",
        "torch.nn.functional.softmax",
        "torch.Tensor.softmax",
        "seqbook.models.attention_at_scale.online_softmax",
    )
)
_ATTENTION_BUILTINS = existing_paths(
    (
        *_SOFTMAX_BUILTINS,
        "torch.nn.functional.scaled_dot_product_attention",
        "seqbook.models.attention.scaled_dot_product_attention",
        "seqbook.models.attention_at_scale.tiled_attention",
    )
)
_REPEAT_BUILTINS = existing_paths(("seqbook.models.attention_at_scale.repeat_kv",))
_STEP_BUILTINS = existing_paths(
    (
        "seqbook.models.attention_at_scale.cached_step",
        "seqbook.models.attention_at_scale.CachedSelfAttention.step",
        "seqbook.models.attention_at_scale.CachedSelfAttention.forward",
        "seqbook.models.attention_at_scale.CachedSelfAttention.prefill",
    )
)


def _shift(m: torch.Tensor) -> torch.Tensor:
    return m.masked_fill(m == -math.inf, 0.0)


# ------------------------------------------------------------------ online softmax


def _online_variant(
    scores: torch.Tensor, dim: int, block_size: int, mistake: str
) -> torch.Tensor:
    """The online softmax written out with one classic mistake."""
    x = scores.movedim(dim, -1)
    m = x.new_full((*x.shape[:-1], 1), -math.inf)
    total = x.new_zeros((*x.shape[:-1], 1))
    for start in range(0, x.size(-1), block_size):
        block = x[..., start : start + block_size]
        block_max = block.amax(dim=-1, keepdim=True)
        new = block_max if mistake == "max_replaced" else torch.maximum(m, block_max)
        if mistake == "no_max":
            total = total + torch.exp(block).sum(-1, keepdim=True)
            m = new
            continue
        shift = new if mistake == "no_safe_shift" else _shift(new)
        rescale = torch.exp(m - shift)
        if mistake == "no_rescale":
            rescale = torch.ones_like(rescale)
        elif mistake == "inverse_rescale":
            rescale = torch.exp(shift - m).nan_to_num(posinf=0.0)
            rescale = torch.where(m == -math.inf, torch.zeros_like(m), rescale)
        total = total * rescale + torch.exp(block - shift).sum(-1, keepdim=True)
        m = new
    if mistake == "no_max":
        result = torch.exp(x) / total
    else:
        shift = m if mistake == "no_safe_shift" else _shift(m)
        result = torch.exp(x - shift) / total
    if mistake == "zeros_for_masked":
        result = result.nan_to_num(0.0)
    return result.movedim(-1, dim)


_ONLINE_MISTAKES = {
    "max_replaced": "the running maximum is replaced by each block's maximum; keep "
    "the larger of the old running maximum and the block's, "
    "torch.maximum(running_max, block.amax(...))",
    "no_rescale": "the running sum is not rescaled when the maximum grows: the old "
    "terms were measured against the old maximum, so multiply the sum by "
    "exp(m_old - m_new) before adding the block's terms",
    "inverse_rescale": "the running sum is rescaled by exp(m_new - m_old), the inverse "
    "of the right factor exp(m_old - m_new)",
    "no_safe_shift": "while the running maximum is still -inf (every score so far "
    "masked), exp(-inf - (-inf)) is NaN: subtract safe_shift(max) (0 instead of -inf)",
    "zeros_for_masked": "a row whose scores are all -inf should give NaN, as "
    "torch.softmax does (a softmax over nothing is 0/0); do not replace it by zeros",
    "no_max": "the maximum is not subtracted before exp, so large logits overflow to "
    "inf: compute exp(s - m), never exp(s)",
}


def _online_cases(hidden: bool) -> list[tuple[str, torch.Tensor, int, int]]:
    """(label, scores, dim, block_size)."""
    g = grading_generator(hidden)
    if hidden:
        dtype = torch.float64 if random_int(g, 0, 1) else torch.float32
        rows, n = random_int(g, 2, 4), random_int(g, 5, 13)
        other = random_int(g, 2, 3)
        blocks = [1, random_int(g, 2, n - 1), n + random_int(g, 0, 3)]
    else:
        dtype, rows, n, other, blocks = torch.float32, 3, 7, 2, [1, 3, 7]
    ordinary = torch.randn(rows, other, n, generator=g, dtype=dtype) * 3
    # The maximum arrives late, so the running sum must be rescaled.
    rising = ordinary + torch.arange(n, dtype=dtype)
    extreme = torch.randn(rows, other, n, generator=g, dtype=dtype) * 1e4
    masked = torch.randn(rows, other, n, generator=g, dtype=dtype)
    masked[..., : n // 2] = -math.inf  # rows that start masked
    masked[0, 0] = -math.inf  # and one row masked throughout
    cases = []
    for block in blocks:
        cases.append((f"rising scores, block_size={block}", rising, -1, block))
    cases.append(("logits of size 1e4, block_size=1", extreme, -1, 1))
    cases.append(("logits of size 1e4, block_size=2", extreme, -1, 2))
    cases.append(("rows that start with -inf, block_size=2", masked, -1, 2))
    cases.append(("scores along dim=1, block_size=1", rising.transpose(1, 2), 1, 1))
    return cases


def _describe_online_failure(result, scores, dim, block, expected, what) -> None:
    for mistake, text in _ONLINE_MISTAKES.items():
        with torch.no_grad():
            wrong = _online_variant(scores, dim, block, mistake)
        if close_tensors(wrong, expected):
            continue  # this mistake does not show on this case
        if _same_with_nan(result, wrong):
            raise CheckFailure(f"{what} is wrong because {text}.")
    if isinstance(result, torch.Tensor) and tuple(result.shape) == tuple(
        expected.shape
    ):
        other = _softmax(scores, dim=0 if dim != 0 else -1)
        if _same_with_nan(result, other):
            raise CheckFailure(
                f"{what} normalises along the wrong axis: use dim={dim} (move it to "
                "the end with movedim and back)."
            )


def _same_with_nan(a: Any, b: torch.Tensor) -> bool:
    if not isinstance(a, torch.Tensor) or tuple(a.shape) != tuple(b.shape):
        return False
    a, b = a.detach().double(), b.detach().double()
    if not torch.equal(a.isnan(), b.isnan()):
        return False
    return close_tensors(a.nan_to_num(), b.nan_to_num())


def _expect_raises(call: Callable[[], Any], error: type, what: str, why: str) -> None:
    """Fail unless ``call()`` raises ``error`` (the input it gets is invalid)."""
    try:
        call()
    except error:
        return
    except NotImplementedError:
        raise CheckFailure(f"{what} still raises NotImplementedError.") from None
    except Exception as err:  # noqa: BLE001
        raise CheckFailure(
            f"{what} should raise {error.__name__}, raised {err!r}"
        ) from None
    raise CheckFailure(f"{what} should raise {error.__name__} ({why}).")


@check
def check_online_softmax(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``online_softmax(scores, dim=-1, block_size=1)`` against ``torch.softmax``,
    NaN for rows masked throughout included."""
    cases = _online_cases(hidden)
    for label, scores, dim, block in cases:
        what = f"online_softmax on {label}"
        result = guarded_call(
            _SOFTMAX_BUILTINS,
            "compute it with exp and running statistics, not a softmax.",
            fn,
            scores.clone(),
            dim=dim,
            block_size=block,
            what=what,
        )
        expected = _softmax(scores, dim=dim)
        expect_tensor(result, what, shape=expected.shape, dtype=scores.dtype)
        if not _same_with_nan(result, expected):
            _describe_online_failure(result, scores, dim, block, expected, what)
            if bool(result.isnan().any()) != bool(expected.isnan().any()):
                nan_rows = expected.isnan().all(dim=dim).sum().item()
                raise CheckFailure(
                    f"{what}: NaN in the wrong places (torch.softmax gives NaN exactly "
                    f"in the {nan_rows} row(s) whose scores are all -inf)."
                )
            expect_close(result.nan_to_num(), expected.nan_to_num(), what)
        integrity.verify()
    _expect_raises(
        lambda: fn(cases[0][1].clone(), dim=-1, block_size=0),
        ValueError,
        "online_softmax(scores, block_size=0)",
        "block_size must be >= 1",
    )
    return (
        f"online_softmax equals torch.softmax on {len(cases)} cases, extreme logits "
        "and fully masked rows included."
    )


# ----------------------------------------------------------------- tiled attention


def _tiled_variant(q, k, v, mask, block_size, is_causal, mistake) -> torch.Tensor:
    """Tiled attention written out with one classic mistake."""
    t_q, t_k = q.size(-2), k.size(-2)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if mask is not None:
        batch = torch.broadcast_shapes(batch, mask.shape[:-2])
    scale = 1.0 if mistake == "no_scale" else 1.0 / math.sqrt(q.size(-1))
    m = q.new_full((*batch, t_q, 1), -math.inf)
    total = q.new_zeros((*batch, t_q, 1))
    acc = q.new_zeros((*batch, t_q, v.size(-1)))
    rows = torch.arange(t_q)[:, None]
    last = min(t_k, t_q) if is_causal else t_k
    for start in range(0, last, block_size):
        stop = min(start + block_size, t_k)
        s = (q @ k[..., start:stop, :].transpose(-2, -1)) * scale
        if mask is not None and mistake != "mask_ignored":
            if mask.size(-1) == 1:
                visible = mask
            elif mistake == "mask_same_columns":
                visible = mask[..., : stop - start]
            else:
                visible = mask[..., start:stop]
            s = torch.where(visible, s, -math.inf)
        if is_causal:
            first = 0 if mistake == "causal_local" else start
            cols = torch.arange(first, first + stop - start)
            s = s.masked_fill(cols > rows, -math.inf)
        block_max = s.amax(-1, keepdim=True)
        new = block_max if mistake == "max_replaced" else torch.maximum(m, block_max)
        shift = _shift(new)
        rescale = torch.exp(m - shift)
        w = torch.exp(s - shift)
        total = total * (1.0 if mistake == "no_rescale_sum" else rescale) + w.sum(
            -1, keepdim=True
        )
        acc = (
            acc * (1.0 if mistake == "no_rescale_acc" else rescale)
            + w @ v[..., start:stop, :]
        )
        m = new
    if mistake == "nan_rows":
        return acc / total
    return acc / total.masked_fill(total == 0, 1.0)


_TILED_MISTAKES = {
    "no_rescale_acc": "the accumulator is not rescaled when the maximum grows: "
    "multiply it by exp(m_old - m_new), like the running sum, before adding the "
    "block's "
    "weights @ values",
    "no_rescale_sum": "the running sum is not rescaled when the maximum grows: "
    "multiply it by exp(m_old - m_new) before adding the block's weights",
    "max_replaced": "the running maximum is replaced by each block's maximum; keep "
    "torch.maximum(running_max, block maximum)",
    "mask_same_columns": "the mask is not applied per block: every block uses the "
    "mask's first columns; block start:stop needs the mask's columns start:stop",
    "mask_ignored": "the mask is not applied",
    "causal_local": "with is_causal, key positions are counted from the block's start; "
    "the keys of block start:stop are at positions start, ..., stop - 1",
    "no_scale": "the scores are not divided by sqrt(d_k)",
    "nan_rows": "a query that may attend to no key gets NaN (0/0); it should get "
    "zeros: divide by 1 where the running sum is 0",
}


class _LargestScores(TorchDispatchMode):
    """Records whether any floating-point operator output ends in (T_q, T_k)."""

    def __init__(self, t_q: int, t_k: int):
        super().__init__()
        self.shapes = {(t_q, t_k), (t_k, t_q)}
        self.found = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if (
                isinstance(leaf, torch.Tensor)
                and leaf.is_floating_point()
                and leaf.dim() >= 2
                and tuple(leaf.shape[-2:]) in self.shapes
            ):
                self.found = True
        return out


def _attention_expected(q, k, v, mask, is_causal) -> torch.Tensor:
    """PyTorch's attention, with zeros for queries that see no key."""
    full = mask
    if is_causal:
        causal = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).tril()
        full = causal if full is None else full & causal
    if full is None:
        return _sdpa(q, k, v)
    out = _sdpa(q, k, v, attn_mask=full)
    seen = full.expand(*out.shape[:-1], k.size(-2)).any(-1, keepdim=True)
    return torch.where(seen, out, torch.zeros_like(out))


def _tiled_cases(hidden: bool):
    g = grading_generator(hidden)
    if hidden:
        batch, heads = random_int(g, 1, 3), random_int(g, 1, 3)
        d = random_int(g, 2, 6)
        t_q = random_int(g, 3, 8)
        t_k = random_int(g, 9, 17)  # larger than t_q, d: no shape coincidences
        block = random_int(g, 2, 5)
        dtype = torch.float64 if random_int(g, 0, 1) else torch.float32
    else:
        batch, heads, d, t_q, t_k, block, dtype = 2, 2, 4, 5, 11, 4, torch.float32
    q = torch.randn(batch, heads, t_q, d, generator=g, dtype=dtype) * 2
    k = torch.randn(batch, heads, t_k, d, generator=g, dtype=dtype) * 2
    # Later keys score higher, so the maximum grows from block to block.
    k = k + torch.linspace(0, 2, t_k, dtype=dtype)[:, None]
    v = torch.randn(batch, heads, t_k, d + 1, generator=g, dtype=dtype)
    lengths = torch.randint(1, t_k + 1, (batch,), generator=g)
    lengths[0] = min(block + 1, t_k)  # one sequence padded from its second block on
    padding = (torch.arange(t_k) < lengths[:, None])[:, None, None]  # (B, 1, 1, T_k)
    arbitrary = torch.rand(t_q, t_k, generator=g) < 0.6
    arbitrary[:, -1] = True  # the last block always has a visible key ...
    arbitrary[1] = False  # ... except for query 1, which sees none
    square = torch.randn(batch, heads, t_k, d, generator=g, dtype=dtype)
    # One flag per query, applied to every key: the mask's last axis has size 1.
    per_query = torch.rand(batch, 1, t_q, 1, generator=g) < 0.7  # (B, 1, T_q, 1)
    per_query[:, :, 0] = True
    per_query[0, 0, -1] = False  # a query that sees no key
    return [
        (f"no mask, T_q={t_q}, T_k={t_k}, block_size={block}", q, k, v, None, block, 0),
        ("no mask, block_size=1", q, k, v, None, 1, False),
        (f"no mask, block_size={t_k + 3} (one block)", q, k, v, None, t_k + 3, False),
        ("a (B, 1, 1, T_k) padding mask", q, k, v, padding, block, False),
        (
            "a (T_q, T_k) mask with a query that sees no key",
            q,
            k,
            v,
            arbitrary,
            block,
            0,
        ),
        ("a (B, 1, T_q, 1) mask (one flag per query)", q, k, v, per_query, block, 0),
        (f"is_causal=True, T_q=T_k={t_k}", square, k, v, None, block, True),
        (f"is_causal=True, T_q={t_q} < T_k={t_k}", q, k, v, None, block, True),
        ("is_causal=True and a padding mask", square, k, v, padding, block, True),
    ]


@check
def check_tiled_attention(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``tiled_attention(query, key, value, mask, block_size, is_causal)``
    against PyTorch's attention, and that it never builds the T_q x T_k scores."""
    cases = _tiled_cases(hidden)
    for index, (label, q, k, v, mask, block, causal) in enumerate(cases):
        what = f"tiled_attention with {label}"
        watch = _LargestScores(q.size(-2), k.size(-2))
        inputs = (q.clone(), k.clone(), v.clone())
        given_mask = None if mask is None else mask.clone()
        with watch:
            result = guarded_call(
                _ATTENTION_BUILTINS,
                "compute it from matrix products and exp, one block of keys at a time.",
                fn,
                *inputs,
                mask=given_mask,
                block_size=block,
                is_causal=bool(causal),
                what=what,
            )
        expected = _attention_expected(q, k, v, mask, bool(causal))
        expect_tensor(result, what, shape=expected.shape, dtype=q.dtype)
        if not close_tensors(result, expected):
            for mistake, text in _TILED_MISTAKES.items():
                with torch.no_grad():
                    wrong = _tiled_variant(q, k, v, mask, block, causal, mistake)
                if not _same_with_nan(wrong, expected) and _same_with_nan(
                    result, wrong
                ):
                    raise CheckFailure(f"{what} is wrong because {text}.")
            expect_close(result, expected, what)
        if index == 0 and block < k.size(-2) and watch.found:
            raise CheckFailure(
                f"{what} builds a whole (T_q, T_k) = {(q.size(-2), k.size(-2))} matrix "
                "of scores or weights; the point of tiling is that only "
                f"(T_q, block_size) = {(q.size(-2), block)} scores exist at a time."
            )
        integrity.verify()
    q, k, v = cases[0][1:4]
    _expect_raises(
        lambda: fn(q.clone(), k.clone(), v.clone(), block_size=0),
        ValueError,
        "tiled_attention(..., block_size=0)",
        "block_size >= 1",
    )
    _expect_raises(
        lambda: fn(q.clone(), k.clone(), v.clone(), mask=torch.ones(q.shape[-2:])),
        TypeError,
        "tiled_attention with a float mask",
        "a mask is boolean, True = may attend",
    )
    return (
        f"tiled_attention equals PyTorch's attention on {len(cases)} cases (padding, "
        "causal and arbitrary masks) without building the T_q x T_k matrix."
    )


# ------------------------------------------------------------ repeat_kv and the cache


def _check_repeat(repeat_kv, g: torch.Generator, hidden: bool) -> int:
    configs = (
        [(2, 3, 4), (1, 4, 2), (3, 1, 5)]
        if not hidden
        else [  # grouped (the order shows) and multi-query (a single head)
            (random_int(g, 2, 4), random_int(g, 2, 4), random_int(g, 2, 5)),
            (1, random_int(g, 2, 4), random_int(g, 2, 5)),
        ]
    )
    for kv_heads, groups, length in configs:
        x = torch.randn(2, kv_heads, length, 3, generator=g)
        what = f"repeat_kv(x of shape {tuple(x.shape)}, groups={groups})"
        result = guarded_call(
            _REPEAT_BUILTINS,
            "write it with expand and reshape (or repeat_interleave).",
            repeat_kv,
            x.clone(),
            groups,
            what=what,
        )
        expected = _reference_repeat(x, groups)
        expect_tensor(result, what)
        if tuple(result.shape) == (2, kv_heads, groups, length, 3):
            raise CheckFailure(
                f"{what} has shape {tuple(result.shape)}: merge the new axis into the "
                f"heads with reshape to {tuple(expected.shape)}."
            )
        expect_tensor(result, what, shape=expected.shape, dtype=x.dtype)
        if (
            kv_heads > 1
            and groups > 1
            and close_tensors(result, x.repeat(1, groups, 1, 1))
        ):
            raise CheckFailure(
                f"{what} tiles the heads [k0, k1, ..., k0, k1, ...]; query head h "
                "must get key/value head h // groups, [k0, k0, ..., k1, k1, ...], "
                "the order of F.scaled_dot_product_attention(..., enable_gqa=True). "
                "x.repeat(1, groups, 1, 1) gives the wrong one."
            )
        expect_close(result, expected, what, atol=0.0, rtol=0.0)
        integrity.verify()
    return len(configs)


def _step_outputs(cached_step, layer, x, label):
    """Run the student's step over x; returns outputs and caches, raising on misuse."""
    projected: list[int] = []

    def record(module, inputs):
        projected.append(inputs[0].size(-2))

    hooks = [
        layer.k_proj.register_forward_pre_hook(record),
        layer.v_proj.register_forward_pre_hook(record),
    ]
    outputs, caches, cache = [], [], None
    try:
        for t in range(x.size(1)):
            what = f"cached_step at position {t} ({label})"
            projected.clear()
            try:
                result = guarded_call(
                    _STEP_BUILTINS,
                    "use layer.project_keys_values, the cache and layer.attend.",
                    cached_step,
                    layer,
                    x[:, t : t + 1].clone(),
                    cache,
                    what=what,
                )
            except ForbiddenCall:
                raise
            except CheckFailure as failure:
                if "unpack" not in str(failure):
                    raise
                raise CheckFailure(
                    f"{failure} -- layer.attend expects keys and values of shape "
                    "(B, H_kv, T, d): cache what layer.project_keys_values(x) returns, "
                    "not the inputs x."
                ) from None
            if not isinstance(result, tuple) or len(result) != 2:
                raise CheckFailure(
                    f"{what} should return a pair (output, cache), got "
                    f"{'None' if result is None else type(result).__name__}."
                )
            if any(n > 1 for n in projected):
                raise CheckFailure(
                    f"{what} projects {max(projected)} positions with the key/value "
                    "projections: it re-projects the whole prefix. Project only the "
                    "new position; the earlier keys and values are in the cache."
                )
            output, cache = result
            if not isinstance(cache, _KVCache):
                raise CheckFailure(
                    f"{what} returned a {type(cache).__name__} as its cache; return "
                    "the KVCache (reference.KVCache) holding the keys and values."
                )
            outputs.append(output)
            caches.append((cache.keys.detach().clone(), cache.values.detach().clone()))
            integrity.verify()
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, caches


def _check_cache_contents(layer, x, t, cached, what) -> None:
    keys, values = layer.project_keys_values(x[:, : t + 1])  # (B, H_kv, t + 1, d)
    if layer.window is not None:
        keys, values = keys[:, :, -layer.window :], values[:, :, -layer.window :]
    got_keys, got_values = cached
    if (
        tuple(got_keys.shape) == tuple(keys.shape)
        and close_tensors(got_keys, keys)
        and close_tensors(got_values, values)
    ):
        return
    if got_keys.dim() == 3 and close_tensors(got_keys, x[:, : got_keys.size(1)]):
        raise CheckFailure(
            f"{what}: the cache holds the inputs x, not their keys and values: "
            "project first (layer.project_keys_values(x)), then append the projections."
        )
    if (
        got_keys.dim() == 4
        and got_keys.size(1) == layer.num_heads != layer.num_kv_heads
    ):
        raise CheckFailure(
            f"{what}: the cache holds {layer.num_heads} heads, the key/value heads "
            f"repeated for every query head; cache the {layer.num_kv_heads} key/value "
            "heads and repeat them only when attending (that is what saves memory)."
        )
    if (
        layer.window is not None
        and got_keys.dim() == 4
        and got_keys.size(2) > layer.window
    ):
        raise CheckFailure(
            f"{what}: the cache holds {got_keys.size(2)} positions with a window of "
            f"{layer.window}: keep only the last layer.window (cache.keep_last)."
        )
    raise CheckFailure(
        f"{what}: the cache should hold keys and values of shape "
        f"{tuple(keys.shape)} (B, H_kv, positions so far, d), the projections of every "
        f"position so far; it holds keys of shape {tuple(got_keys.shape)}."
    )


def _check_steps(cached_step, layer, x, label) -> None:
    with torch.no_grad():
        whole = layer(x)  # (B, T, dim)
        outputs, caches = _step_outputs(cached_step, layer, x, label)
        for t, (output, cached) in enumerate(zip(outputs, caches)):
            what = f"cached_step at position {t} ({label})"
            _check_cache_contents(layer, x, t, cached, what)
            expected = whole[:, t : t + 1]
            expect_tensor(output, f"the output of {what}", shape=expected.shape)
            if close_tensors(output, expected, 1e-4):
                continue
            if t > 0:
                keys, values = layer.project_keys_values(x[:, :t])
                if layer.window is not None:
                    keys = keys[:, :, -layer.window :]
                    values = values[:, :, -layer.window :]
                before = layer.attend(x[:, t : t + 1], keys, values)
                if close_tensors(output, before, 1e-4):
                    raise CheckFailure(
                        f"{what}: the output attends over the earlier positions only: "
                        "append the new position's keys and values to the cache "
                        "before attending (a position may attend to itself)."
                    )
            expect_close(output, expected, f"the output of {what}", atol=1e-4)


@check
def check_kv_cache(
    repeat_kv: Callable[..., Any],
    cached_step: Callable[..., Any],
    hidden: bool = False,
) -> str:
    """Check ``repeat_kv(x, groups)`` and ``cached_step(layer, x, cache)`` (one
    position at a time gives what the layer gives on the whole sequence)."""
    g = grading_generator(hidden)
    repeats = _check_repeat(repeat_kv, g, hidden)
    if hidden:
        configs = []
        for _ in range(2):
            kv_heads, groups = random_int(g, 1, 3), random_int(g, 2, 3)
            window = random_int(g, 2, 4) if random_int(g, 0, 1) else None
            configs.append((kv_heads * groups, kv_heads, random_int(g, 2, 5), window))
        length = random_int(g, 5, 9)
    else:
        configs = [(4, 2, 3, None), (4, 1, 2, 3)]
        length = 6
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    for heads, kv_heads, head_dim, window in configs:
        layer = _ReferenceLayer(heads * head_dim, heads, kv_heads, window=window)
        layer.eval()
        x = torch.randn(2, length, heads * head_dim, generator=g)
        label = f"H={heads}, H_kv={kv_heads}, window={window}"
        _check_steps(cached_step, layer, x, label)
        integrity.verify()
    layer = _ReferenceLayer(8, 2, 1)
    what = "cached_step(layer, x with 2 positions)"
    try:
        call_student(cached_step, layer, torch.zeros(1, 2, 8), None, what=what)
    except CheckFailure as failure:
        if "ValueError" not in str(failure):
            raise
    else:
        raise CheckFailure(
            f"{what} should raise ValueError: a step takes one position."
        )
    return (
        f"repeat_kv matches the enable_gqa order on {repeats} shapes, and cached_step "
        f"reproduces the whole-sequence layer on {len(configs)} layers, position by "
        "position, projecting only the new position."
    )


integrity.protect_module(__name__)
