"""The reference implementations in seqbook.models.attention, against PyTorch and
properties."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqbook.models.attention import (
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)


def random_qkv(*batch, t_q=5, t_k=7, d_k=8, d_v=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*batch, t_q, d_k, generator=g, dtype=dtype),
        torch.randn(*batch, t_k, d_k, generator=g, dtype=dtype),
        torch.randn(*batch, t_k, d_v, generator=g, dtype=dtype),
    )


def test_causal_mask_is_lower_triangular_and_boolean():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert bool(mask[i, j]) == (j <= i)


def test_padding_mask_marks_real_tokens():
    mask = padding_mask(torch.tensor([3, 0, 2]), 3)
    assert mask.shape == (3, 1, 3) and mask.dtype == torch.bool
    assert mask[:, 0].tolist() == [
        [True, True, True],
        [False, False, False],
        [True, True, False],
    ]


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_matches_pytorch_without_mask(batch):
    q, k, v = random_qkv(*batch)
    output, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(output, F.scaled_dot_product_attention(q, k, v))
    assert weights.shape == (*batch, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch, 5))


def test_matches_pytorch_with_boolean_masks():
    q, k, v = random_qkv(2, 3)
    g = torch.Generator().manual_seed(1)
    for mask in (
        torch.rand(5, 7, generator=g) > 0.3,
        torch.rand(2, 1, 5, 7, generator=g) > 0.5,
        padding_mask(torch.tensor([7, 2]), 7)[:, None],
    ):
        mask = mask.clone()
        mask[..., 0] = True  # keep every row non-empty so PyTorch's result is defined
        output, _ = scaled_dot_product_attention(q, k, v, mask)
        torch.testing.assert_close(
            output, F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        )


def test_causal_matches_is_causal():
    q, k, v = random_qkv(2, t_q=6, t_k=6)
    output, weights = scaled_dot_product_attention(q, k, v, causal_mask(6))
    torch.testing.assert_close(
        output, F.scaled_dot_product_attention(q, k, v, is_causal=True)
    )
    assert torch.all(weights.triu(1) == 0)


def test_weights_follow_the_formula():
    q, k, v = random_qkv(t_q=2, t_k=3, d_k=4)
    _, weights = scaled_dot_product_attention(q, k, v)
    scores = torch.tensor(
        [
            [sum(q[i, c] * k[j, c] for c in range(4)) / 2.0 for j in range(3)]
            for i in range(2)
        ]
    )
    expected = scores.exp() / scores.exp().sum(-1, keepdim=True)
    torch.testing.assert_close(weights, expected)


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    q, k, v = (
        t.requires_grad_(True) for t in random_qkv(t_q=3, t_k=4, dtype=torch.float64)
    )
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    output, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.all(weights[1] == 0) and torch.all(output[1] == 0)
    assert torch.isfinite(weights).all()
    for grad in torch.autograd.grad(output.sum(), (q, k, v)):
        assert torch.isfinite(grad).all()


def test_gradients_match_finite_differences():
    q, k, v = (
        t.requires_grad_(True)
        for t in random_qkv(2, t_q=3, t_k=4, d_k=5, dtype=torch.float64)
    )
    mask = torch.rand(3, 4, generator=torch.Generator().manual_seed(3)) > 0.4
    assert torch.autograd.gradcheck(
        lambda a, b, c: scaled_dot_product_attention(a, b, c, mask)[0], (q, k, v)
    )


def test_scaling_keeps_score_variance_near_one():
    g = torch.Generator().manual_seed(0)
    d_k = 512
    q = torch.randn(4000, 1, d_k, generator=g)
    k = torch.randn(4000, 1, d_k, generator=g)
    raw = (q @ k.transpose(-2, -1)).flatten()
    assert raw.var().item() == pytest.approx(d_k, rel=0.1)
    assert (raw / math.sqrt(d_k)).var().item() == pytest.approx(1.0, rel=0.1)
