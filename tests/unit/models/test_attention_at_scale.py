"""The reference code of "Attention at scale" (seqbook.models.attention_at_scale),
against PyTorch's built-ins and properties, and the classic mistakes the comparisons
catch."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqbook.book.measure import peak_tensor_bytes
from seqbook.models.attention import (
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from seqbook.models.attention_at_scale import (
    CachedSelfAttention,
    KVCache,
    kv_cache_bytes,
    online_softmax,
    repeat_kv,
    sliding_window_mask,
    tiled_attention,
)

INF = float("inf")
# enable_gqa of F.scaled_dot_product_attention arrived in PyTorch 2.5.
needs_enable_gqa = pytest.mark.skipif(
    torch.__version__ < (2, 5), reason="enable_gqa needs PyTorch >= 2.5"
)


def tolerances(dtype):
    if dtype == torch.float64:
        return {"atol": 1e-12, "rtol": 1e-10}
    return {"atol": 1e-5, "rtol": 1e-5}


def random_qkv(*batch, t_q=5, t_k=7, d_k=8, d_v=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*batch, t_q, d_k, generator=g, dtype=dtype),
        torch.randn(*batch, t_k, d_k, generator=g, dtype=dtype),
        torch.randn(*batch, t_k, d_v, generator=g, dtype=dtype),
    )


# ------------------------------------------------------------------- online softmax


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_size", [1, 4, 100])
@pytest.mark.parametrize("shape, dim", [((7,), 0), ((3, 10), -1), ((2, 9, 4), 1)])
def test_online_softmax_matches_torch_softmax(shape, dim, block_size, dtype):
    g = torch.Generator().manual_seed(0)
    scores = 5 * torch.randn(*shape, generator=g, dtype=dtype)
    torch.testing.assert_close(
        online_softmax(scores, dim=dim, block_size=block_size),
        torch.softmax(scores, dim=dim),
        **tolerances(dtype),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_size", [1, 2, 5])
def test_online_softmax_on_extreme_and_infinite_logits(block_size, dtype):
    scores = torch.tensor(
        [
            [1e4, -1e4, 0.0, 5.0, 1e4],
            [-INF, -INF, 3.0, -1e4, 2.0],  # the first finite score comes late
            [-1e4, -INF, -1e4 + 1, -INF, -1e4],  # all tiny: exp underflows unshifted
            [0.0, 1e4, -INF, 2e4, 1e4],  # the maximum grows twice by 1e4
            [-INF, -INF, -INF, -INF, -INF],  # nothing to normalise over
        ],
        dtype=dtype,
    )
    ours = online_softmax(scores, block_size=block_size)
    expected = torch.softmax(scores, dim=-1)
    torch.testing.assert_close(ours, expected, equal_nan=True, **tolerances(dtype))
    # The convention: a row of -inf gives NaN, as torch.softmax; the others are finite.
    assert torch.isnan(ours[-1]).all() and torch.isfinite(ours[:-1]).all()


def softmax_forgetting_to_rescale(scores):
    """The classic mistake: add each new term against the new maximum but leave the
    running sum measured against the old one."""
    running_max = torch.full(scores.shape[:-1] + (1,), -INF, dtype=scores.dtype)
    running_sum = torch.zeros(scores.shape[:-1] + (1,), dtype=scores.dtype)
    for j in range(scores.size(-1)):
        running_max = torch.maximum(running_max, scores[..., j : j + 1])
        running_sum = running_sum + torch.exp(scores[..., j : j + 1] - running_max)
    return torch.exp(scores - running_max) / running_sum


def test_the_comparison_catches_a_softmax_that_forgets_to_rescale():
    rising = torch.tensor([[0.0, 1.0, 2.0, 3.0]])  # the maximum grows at every step
    assert not torch.allclose(
        softmax_forgetting_to_rescale(rising), torch.softmax(rising, -1)
    )
    # Where the first score is the maximum the mistake is invisible: test rising inputs.
    falling = rising.flip(-1)
    torch.testing.assert_close(
        softmax_forgetting_to_rescale(falling), torch.softmax(falling, -1)
    )
    torch.testing.assert_close(online_softmax(rising), torch.softmax(rising, -1))


def test_online_softmax_rejects_an_empty_block():
    with pytest.raises(ValueError):
        online_softmax(torch.zeros(3), block_size=0)


# ----------------------------------------------------------------- tiled attention


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "batch, t_q, t_k, block_size",
    [
        ((), 5, 7, 3),
        ((2,), 64, 64, 64),
        ((2, 3), 70, 130, 64),  # T_k not a multiple of the block
        ((2,), 1, 33, 8),
        ((3,), 33, 1, 4),
        ((2,), 16, 16, 1),
        ((2,), 9, 20, 100),  # a single block larger than T_k
    ],
)
def test_tiled_attention_matches_pytorch_without_mask(
    batch, t_q, t_k, block_size, dtype
):
    q, k, v = random_qkv(*batch, t_q=t_q, t_k=t_k, dtype=dtype)
    torch.testing.assert_close(
        tiled_attention(q, k, v, block_size=block_size),
        F.scaled_dot_product_attention(q, k, v),
        **tolerances(dtype),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t_q, t_k", [(20, 20), (7, 20), (20, 7), (65, 65)])
@pytest.mark.parametrize("block_size", [1, 6, 64])
def test_tiled_attention_causal_matches_is_causal(t_q, t_k, block_size, dtype):
    q, k, v = random_qkv(2, 2, t_q=t_q, t_k=t_k, dtype=dtype)
    torch.testing.assert_close(
        tiled_attention(q, k, v, block_size=block_size, is_causal=True),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        **tolerances(dtype),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiled_attention_with_padding_and_causal_masks(dtype):
    q, k, v = random_qkv(3, 2, t_q=12, t_k=12, dtype=dtype)
    padding = padding_mask(torch.tensor([12, 5, 1]), 12)[:, None]  # (B, 1, 1, T_k)
    torch.testing.assert_close(
        tiled_attention(q, k, v, mask=padding, block_size=4),
        F.scaled_dot_product_attention(q, k, v, attn_mask=padding),
        **tolerances(dtype),
    )
    # is_causal and a mask combine by "and" (PyTorch's function takes one or the other).
    both = padding & causal_mask(12)
    torch.testing.assert_close(
        tiled_attention(q, k, v, mask=padding, block_size=5, is_causal=True),
        F.scaled_dot_product_attention(q, k, v, attn_mask=both),
        **tolerances(dtype),
    )


@pytest.mark.parametrize("mask_shape", [(9, 21), (2, 1, 9, 21), (1, 21), (2, 1, 1, 21)])
def test_tiled_attention_with_broadcast_boolean_masks(mask_shape):
    q, k, v = random_qkv(2, 3, t_q=9, t_k=21)
    mask = torch.rand(*mask_shape, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[..., 0] = True  # keep every row non-empty so PyTorch's result is defined
    torch.testing.assert_close(
        tiled_attention(q, k, v, mask=mask, block_size=8),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    )


@pytest.mark.parametrize("block_size", [2, 64])
def test_tiled_attention_fully_masked_rows_give_zeros(block_size):
    q, k, v = (
        t.requires_grad_(True) for t in random_qkv(2, t_q=6, t_k=9, dtype=torch.float64)
    )
    mask = torch.rand(2, 6, 9, generator=torch.Generator().manual_seed(2)) > 0.5
    mask[..., 0] = True
    mask[0, 1] = False  # query 1 of the first sequence sees nothing
    mask[1, 4, :] = False
    output = tiled_attention(q, k, v, mask=mask, block_size=block_size)
    assert torch.all(output[0, 1] == 0) and torch.all(output[1, 4] == 0)
    # The same convention as the book's naive attention, row for row.
    torch.testing.assert_close(output, scaled_dot_product_attention(q, k, v, mask)[0])
    # A mask of whole rows (key axis of size 1) applies to every block.
    rows = torch.tensor([True, False, True, True, False, True])[:, None]  # (T_q, 1)
    torch.testing.assert_close(
        tiled_attention(q, k, v, mask=rows, block_size=block_size),
        scaled_dot_product_attention(q, k, v, rows)[0],
    )
    for grad in torch.autograd.grad(output.sum(), (q, k, v)):
        assert torch.isfinite(grad).all()


def test_tiled_attention_gradients_match_pytorch():
    q, k, v = (
        t.requires_grad_(True)
        for t in random_qkv(2, t_q=11, t_k=11, d_k=4, dtype=torch.float64)
    )
    ours = tiled_attention(q, k, v, block_size=3, is_causal=True)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    weight = torch.randn(ours.shape, generator=torch.Generator().manual_seed(3))
    for a, b in zip(
        torch.autograd.grad((ours * weight).sum(), (q, k, v)),
        torch.autograd.grad((theirs * weight).sum(), (q, k, v)),
    ):
        torch.testing.assert_close(a, b, **tolerances(torch.float64))


def test_tiled_attention_never_holds_the_full_score_matrix():
    def peaks(length):
        q, k, v = random_qkv(1, t_q=length, t_k=length, d_k=16, d_v=16)
        return (
            peak_tensor_bytes(lambda: scaled_dot_product_attention(q, k, v)),
            peak_tensor_bytes(lambda: tiled_attention(q, k, v, block_size=64)),
        )

    naive_256, tiled_256 = peaks(256)
    naive_512, tiled_512 = peaks(512)
    full_scores = 512 * 512 * 4  # one float32 T x T matrix
    assert naive_512 >= full_scores > tiled_512
    # The naive peak grows with T^2, the tiled one with T (block_size fixed).
    assert naive_512 / naive_256 > 3.5 and tiled_512 / tiled_256 < 2.2


def tiled_attention_with_mistakes(q, k, v, block_size, rescale_sum, rescale_output):
    """Tiled attention without masks, able to forget either rescaling by
    exp(m_old - m_new)."""
    scale = 1 / math.sqrt(q.size(-1))
    running_max = torch.full(q.shape[:-1] + (1,), -INF, dtype=q.dtype)
    running_sum = torch.zeros(q.shape[:-1] + (1,), dtype=q.dtype)
    accumulator = torch.zeros(q.shape[:-1] + (v.size(-1),), dtype=q.dtype)
    for start in range(0, k.size(-2), block_size):
        scores = q @ k[..., start : start + block_size, :].transpose(-2, -1) * scale
        new_max = torch.maximum(running_max, scores.amax(-1, keepdim=True))
        rescale = torch.exp(running_max - new_max)
        weights = torch.exp(scores - new_max)
        running_sum = running_sum * (rescale if rescale_sum else 1)
        running_sum = running_sum + weights.sum(-1, keepdim=True)
        accumulator = accumulator * (rescale if rescale_output else 1)
        accumulator = accumulator + weights @ v[..., start : start + block_size, :]
        running_max = new_max
    return accumulator / running_sum


def scores_that_rise_along_the_keys(t_k, rising=True):
    """Queries and keys whose scores grow (or fall) with the key's position, for every
    query: the running maximum then grows in every block (or never after the first)."""
    g = torch.Generator().manual_seed(4)
    q = torch.ones(2, 5, 8) + 0.1 * torch.randn(2, 5, 8, generator=g)
    ramp = torch.linspace(0.0, 3.0, t_k)[:, None]
    k = (ramp if rising else ramp.flip(0)) + 0.1 * torch.randn(2, t_k, 8, generator=g)
    v = torch.randn(2, t_k, 4, generator=g)
    return q, k, v


@pytest.mark.parametrize(
    "rescale_sum, rescale_output", [(True, False), (False, True), (False, False)]
)
def test_the_comparison_catches_a_forgotten_rescale(rescale_sum, rescale_output):
    q, k, v = scores_that_rise_along_the_keys(24)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(
        tiled_attention_with_mistakes(q, k, v, 8, True, True), expected
    )
    wrong = tiled_attention_with_mistakes(q, k, v, 8, rescale_sum, rescale_output)
    assert not torch.allclose(wrong, expected, atol=1e-3)
    # Random inputs catch it too: some query's maximum grows after the first block.
    q, k, v = random_qkv(2, t_q=16, t_k=40)
    wrong = tiled_attention_with_mistakes(q, k, v, 8, rescale_sum, rescale_output)
    assert not torch.allclose(wrong, F.scaled_dot_product_attention(q, k, v), atol=1e-3)


def test_a_forgotten_rescale_hides_when_the_first_block_holds_the_maximum():
    # Why the tests above need inputs whose maximum grows: here it never does, so the
    # mistake changes nothing, and neither does a single block.
    q, k, v = scores_that_rise_along_the_keys(24, rising=False)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(
        tiled_attention_with_mistakes(q, k, v, 8, False, False), expected
    )
    q, k, v = scores_that_rise_along_the_keys(24)
    torch.testing.assert_close(
        tiled_attention_with_mistakes(q, k, v, 24, False, False),
        F.scaled_dot_product_attention(q, k, v),
    )


def test_tiled_attention_rejects_bad_arguments():
    q, k, v = random_qkv()
    with pytest.raises(ValueError):
        tiled_attention(q, k, v, block_size=0)
    with pytest.raises(TypeError):
        tiled_attention(q, k, v, mask=torch.ones(5, 7))  # an additive float mask


# ------------------------------------------------------ grouped-query attention, masks


@pytest.mark.parametrize("kv_heads, groups", [(1, 4), (2, 3), (3, 1)])
def test_repeat_kv_gives_query_head_h_the_kv_head_h_over_groups(kv_heads, groups):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, kv_heads, 5, 3, generator=g)
    repeated = repeat_kv(x, groups)
    assert repeated.shape == (2, kv_heads * groups, 5, 3)
    for h in range(kv_heads * groups):
        assert torch.equal(repeated[:, h], x[:, h // groups])
    assert torch.equal(repeated, x.repeat_interleave(groups, dim=1))


@needs_enable_gqa
@pytest.mark.parametrize("num_heads, kv_heads", [(4, 2), (6, 2), (4, 1)])
def test_repeat_kv_order_is_the_order_of_enable_gqa(num_heads, kv_heads):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, num_heads, 6, 8, generator=g)
    k = torch.randn(2, kv_heads, 6, 8, generator=g)
    v = torch.randn(2, kv_heads, 6, 8, generator=g)
    groups = num_heads // kv_heads
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(
        F.scaled_dot_product_attention(
            q, repeat_kv(k, groups), repeat_kv(v, groups), is_causal=True
        ),
        expected,
    )
    torch.testing.assert_close(
        tiled_attention(
            q, repeat_kv(k, groups), repeat_kv(v, groups), block_size=4, is_causal=True
        ),
        expected,
    )
    if kv_heads > 1:  # with one kv head both orders are the same
        tiled = F.scaled_dot_product_attention(
            q, k.repeat(1, groups, 1, 1), v.repeat(1, groups, 1, 1), is_causal=True
        )
        assert not torch.allclose(tiled, expected, atol=1e-3)


@pytest.mark.parametrize("size", [1, 5, 9])
@pytest.mark.parametrize("window", [1, 2, 4, 9, 20])
def test_sliding_window_mask_is_the_causal_band(size, window):
    mask = sliding_window_mask(size, window)
    assert mask.dtype == torch.bool and mask.shape == (size, size)
    expected = torch.tensor(
        [[i - window < j <= i for j in range(size)] for i in range(size)]
    )
    assert torch.equal(mask, expected)
    assert torch.equal(mask.sum(-1), torch.arange(1, size + 1).clamp(max=window))
    if window >= size:
        assert torch.equal(mask, causal_mask(size))


def test_sliding_window_attention_matches_pytorch_with_the_mask():
    q, k, v = random_qkv(2, t_q=30, t_k=30)
    mask = sliding_window_mask(30, 7)
    torch.testing.assert_close(
        tiled_attention(q, k, v, mask=mask, block_size=8),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    )
    with pytest.raises(ValueError):
        sliding_window_mask(4, 0)


# ------------------------------------------------------------------ key/value cache


def attention_and_input(num_heads, kv_heads, window=None, length=11, seed=0):
    torch.manual_seed(seed)
    attention = CachedSelfAttention(16, num_heads, kv_heads, window=window).eval()
    x = torch.randn(2, length, 16, generator=torch.Generator().manual_seed(seed))
    return attention, x


CONFIGS = [(4, None, None), (4, 2, None), (4, 1, None), (4, 2, 3), (2, 2, 1)]


@pytest.mark.parametrize("num_heads, kv_heads, window", CONFIGS)
def test_step_by_step_equals_the_full_sequence(num_heads, kv_heads, window):
    attention, x = attention_and_input(num_heads, kv_heads, window)
    with torch.no_grad():
        full = attention(x)  # (B, T, dim)
        cache, outputs = None, []
        for t in range(x.size(1)):
            output, cache = attention.step(x[:, t : t + 1], cache)
            outputs.append(output)
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("num_heads, kv_heads, window", CONFIGS)
def test_prefill_then_steps_equals_the_full_sequence(num_heads, kv_heads, window):
    attention, x = attention_and_input(num_heads, kv_heads, window)
    with torch.no_grad():
        first, cache = attention.prefill(x[:, :6])
        outputs = [first]
        for t in range(6, x.size(1)):
            output, cache = attention.step(x[:, t : t + 1], cache)
            outputs.append(output)
        expected = attention(x)
    torch.testing.assert_close(
        torch.cat(outputs, dim=1), expected, atol=1e-6, rtol=1e-6
    )


@pytest.mark.parametrize("kv_heads", [None, 2, 1])
def test_the_cache_holds_projected_keys_and_values(kv_heads):
    attention, x = attention_and_input(4, kv_heads)
    projected_inputs = []
    for layer in (attention.q_proj, attention.k_proj, attention.v_proj):
        layer.register_forward_hook(
            lambda module, inputs, output: projected_inputs.append(inputs[0].shape)
        )
    cache = None
    with torch.no_grad():
        for t in range(x.size(1)):
            _, cache = attention.step(x[:, t : t + 1], cache)
        keys, values = attention.project_keys_values(x)
    # Only the new position is projected at each step.
    assert all(shape[1] == 1 for shape in projected_inputs[: 3 * x.size(1)])
    h_kv = kv_heads or 4
    assert cache.keys.shape == cache.values.shape == (2, h_kv, x.size(1), 4)
    # A cache of the inputs (appended before projection) would differ from these.
    torch.testing.assert_close(cache.keys, split_heads(attention.k_proj(x), h_kv))
    torch.testing.assert_close(cache.values, values)
    torch.testing.assert_close(cache.keys, keys)


def test_a_sliding_window_bounds_the_cache():
    attention, x = attention_and_input(4, 2, window=3)
    cache = None
    with torch.no_grad():
        for t in range(x.size(1)):
            _, cache = attention.step(x[:, t : t + 1], cache)
            assert cache.length == min(t + 1, 3)
        _, prefilled = attention.prefill(x)
        keys, _ = attention.project_keys_values(x)
    assert prefilled.length == 3
    torch.testing.assert_close(cache.keys, keys[:, :, -3:])


@needs_enable_gqa
@pytest.mark.parametrize("num_heads, kv_heads", [(4, None), (4, 2), (4, 1), (6, 3)])
def test_grouped_query_module_matches_enable_gqa(num_heads, kv_heads):
    torch.manual_seed(0)
    attention = CachedSelfAttention(24, num_heads, kv_heads)
    x = torch.randn(3, 10, 24, generator=torch.Generator().manual_seed(1))
    h_kv = kv_heads or num_heads
    q = split_heads(attention.q_proj(x), num_heads)  # (B, H, T, d)
    k = split_heads(attention.k_proj(x), h_kv)  # (B, H_kv, T, d)
    v = split_heads(attention.v_proj(x), h_kv)
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(attention(x), attention.out_proj(merge_heads(heads)))
    assert attention.k_proj.weight.shape == (h_kv * 24 // num_heads, 24)


def test_cached_attention_rejects_bad_arguments():
    with pytest.raises(ValueError):
        CachedSelfAttention(16, 3)
    with pytest.raises(ValueError):
        CachedSelfAttention(16, 4, num_kv_heads=3)
    with pytest.raises(ValueError):
        CachedSelfAttention(16, 4, window=0)
    attention, x = attention_and_input(4, 2)
    with pytest.raises(ValueError):
        attention.step(x[:, :2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_kv_cache_bytes_equals_a_filled_cache(kv_heads, dtype):
    torch.manual_seed(0)
    layers = [CachedSelfAttention(16, 4, kv_heads).to(dtype) for _ in range(3)]
    x = torch.randn(2, 7, 16, dtype=dtype, generator=torch.Generator().manual_seed(1))
    caches = [None] * len(layers)
    with torch.no_grad():
        for t in range(x.size(1)):
            h = x[:, t : t + 1]
            for i, layer in enumerate(layers):
                h, caches[i] = layer.step(h, caches[i])
    element = torch.finfo(dtype).bits // 8
    assert sum(cache.nbytes for cache in caches) == kv_cache_bytes(
        num_layers=3,
        seq_len=7,
        num_kv_heads=kv_heads,
        head_dim=4,
        bytes_per_element=element,
        batch_size=2,
    )
    assert caches[0].nbytes == caches[0].keys.nbytes + caches[0].values.nbytes


def test_kv_cache_bytes_of_a_seven_billion_parameter_model():
    # 32 layers, 4096 positions, 32 heads of 128 in 16-bit floats: 2 GiB per sequence;
    # 8 key/value heads (grouped-query attention) cut it to a quarter.
    assert kv_cache_bytes(32, 4096, 32, 128, 2) == 2 * 1024**3
    assert kv_cache_bytes(32, 4096, 8, 128, 2) == 512 * 1024**2
    assert kv_cache_bytes(32, 4096, 8, 128, 2, batch_size=4) == 2 * 1024**3


def test_kv_cache_append_grows_along_the_positions():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5))
    new_keys, new_values = torch.randn(2, 3, 1, 5), torch.randn(2, 3, 1, 5)
    assert cache.append(new_keys, new_values) is cache
    assert cache.length == 5
    assert torch.equal(cache.keys[:, :, -1:], new_keys)
    assert torch.equal(cache.values[:, :, -1:], new_values)
