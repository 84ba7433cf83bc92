"""seqbook.models.counting against the layers PyTorch builds and the FLOPs it counts."""

import itertools

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seqbook.models import counting
from seqbook.models.transformer import FeedForward, SwiGLUFeedForward


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "dim, num_heads, hidden_dim, bias, decoder",
    [
        (dim, heads, hidden, bias, decoder)
        for (dim, heads), hidden, bias, decoder in itertools.product(
            [(8, 1), (12, 3), (32, 8)], [7, 64], [True, False], [False, True]
        )
    ],
)
def test_layer_count_equals_pytorch(dim, num_heads, hidden_dim, bias, decoder):
    cls = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
    layer = cls(dim, num_heads, hidden_dim, bias=bias, batch_first=True, device="meta")
    assert counting.transformer_layer_parameters(
        dim, num_heads, hidden_dim, bias=bias, decoder=decoder
    ) == numel(layer)


def test_layer_count_ignores_heads_and_works_at_huge_sizes():
    counts = {
        counting.transformer_layer_parameters(96, h, 384) for h in (1, 2, 3, 8, 96)
    }
    assert len(counts) == 1
    huge = counting.transformer_layer_parameters(100_000, 8, 400_000)
    assert huge == 12 * 100_000**2 + 9 * 100_000 + 400_000
    assert isinstance(huge, int)


def test_layer_count_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        counting.transformer_layer_parameters(10, 3, 40)


def test_parts_add_up_to_the_layer():
    dim, hidden = 48, 192
    for bias in (True, False):
        assert counting.transformer_layer_parameters(dim, 4, hidden, bias=bias) == (
            counting.attention_parameters(dim, bias)
            + counting.feed_forward_parameters(dim, hidden, bias)
            + 2 * counting.layer_norm_parameters(dim, bias)
        )
    assert counting.attention_parameters(dim) == numel(nn.MultiheadAttention(dim, 4))
    assert counting.layer_norm_parameters(dim, False) == numel(
        nn.LayerNorm(dim, bias=False)
    )


def test_feed_forward_and_swiglu_counts():
    assert counting.feed_forward_parameters(6, 24) == numel(FeedForward(6, 24))
    assert counting.feed_forward_parameters(6, 24) == 2 * 6 * 24 + 24 + 6
    assert counting.swiglu_parameters(16, 44) == numel(SwiGLUFeedForward(16, 44))
    hidden = counting.swiglu_hidden_dim(16, 64)
    assert hidden == 44  # 2128 / 48 = 44.3
    gap = abs(
        counting.swiglu_parameters(16, hidden)
        - counting.feed_forward_parameters(16, 64)
    )
    assert gap <= 3 * 16 / 2


@pytest.mark.parametrize("dim, hidden_dim, lead", [(8, 32, (3, 5)), (20, 7, (11,))])
def test_feed_forward_flops_equal_the_counter(dim, hidden_dim, lead):
    ffn = FeedForward(dim, hidden_dim)
    x = torch.randn(*lead, dim)
    with FlopCounterMode(display=False) as counter:
        ffn(x)
    positions = 1
    for size in lead:
        positions *= size
    assert counter.get_total_flops() == counting.feed_forward_flops(
        dim, hidden_dim, positions
    )
