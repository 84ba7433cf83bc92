"""Multi-head attention and positional encodings in seqbook.models.attention, against
PyTorch and properties."""

import math

import pytest
import torch
from torch import nn

from seqbook.models.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    sinusoidal_positional_encoding,
    split_heads,
)


def twin_modules(embed_dim=12, num_heads=3, bias=True, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True)
    ours = MultiHeadAttention(embed_dim, num_heads, bias=bias)
    ours.load_state_dict(theirs.state_dict())
    return ours.eval(), theirs.eval()


def test_parameters_have_pytorchs_names_and_shapes():
    ours, theirs = twin_modules()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    unbiased, _ = twin_modules(bias=False)
    assert set(unbiased.state_dict()) == {"in_proj_weight", "out_proj.weight"}


def test_split_and_merge_heads_are_inverse_and_contiguous_per_head():
    x = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2)
    torch.testing.assert_close(heads[1, 2, 0], x[1, 0, 4:6])
    torch.testing.assert_close(merge_heads(heads), x)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masking", ["none", "padding", "causal", "both"])
def test_equals_nn_multiheadattention(bias, masking):
    ours, theirs = twin_modules(bias=bias)
    g = torch.Generator().manual_seed(1)
    B, T_q, T_k, D = 3, 5, 6, 12
    query = torch.randn(B, T_q, D, generator=g)
    key = torch.randn(B, T_k, D, generator=g)
    value = torch.randn(B, T_k, D, generator=g)
    keep = None  # True = may attend (our convention)
    kwargs = {}
    if masking in ("padding", "both"):
        lengths = torch.tensor([6, 3, 1])
        keep = padding_mask(lengths, T_k)[:, None]  # (B, 1, 1, T_k)
        kwargs["key_padding_mask"] = ~keep[:, 0, 0]  # PyTorch: True = ignore
    if masking in ("causal", "both"):
        causal = torch.ones(T_q, T_k, dtype=torch.bool).tril()
        keep = causal if keep is None else keep & causal
        kwargs["attn_mask"] = ~causal
    out, weights = ours(query, key, value, mask=keep)
    ref_out, ref_weights = theirs(
        query, key, value, average_attn_weights=False, **kwargs
    )
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)
    assert weights.shape == (B, 3, T_q, T_k)


def test_self_attention_with_causal_mask_gradients_match():
    ours, theirs = twin_modules()
    x = torch.randn(2, 4, 12)
    out, _ = ours(x, x, x, mask=causal_mask(4))
    ref, _ = theirs(x, x, x, attn_mask=~causal_mask(4))
    out.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(ours.in_proj_weight.grad, theirs.in_proj_weight.grad)
    torch.testing.assert_close(ours.out_proj.weight.grad, theirs.out_proj.weight.grad)


def test_rejects_indivisible_head_count():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


def test_sinusoidal_encoding_formula():
    pe = sinusoidal_positional_encoding(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == torch.float32
    for t in (0, 7, 49):
        for i in range(8):
            angle = t / 10000 ** (2 * i / 16)
            assert math.isclose(pe[t, 2 * i].item(), math.sin(angle), abs_tol=1e-5)
            assert math.isclose(pe[t, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-5)


def test_sinusoidal_encoding_odd_dimension():
    pe = sinusoidal_positional_encoding(10, 7)
    assert pe.shape == (10, 7)
    for i in range(4):  # the last feature is a sine without its cosine partner
        angle = torch.arange(10.0) / 10000 ** (2 * i / 7)
        torch.testing.assert_close(pe[:, 2 * i], torch.sin(angle))
        if 2 * i + 1 < 7:
            torch.testing.assert_close(pe[:, 2 * i + 1], torch.cos(angle))


def test_shift_is_a_rotation_of_each_frequency_pair():
    dim, k = 16, 5
    pe = sinusoidal_positional_encoding(40, dim)
    for i in range(dim // 2):
        w = 1 / 10000 ** (2 * i / dim)
        rotation = torch.tensor(
            [[math.cos(k * w), -math.sin(k * w)], [math.sin(k * w), math.cos(k * w)]]
        )
        pair = pe[:, 2 * i : 2 * i + 2]  # rows (sin, cos)
        torch.testing.assert_close(pair[:-k] @ rotation, pair[k:], atol=1e-5, rtol=0)
