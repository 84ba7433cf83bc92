"""seqbook.models.transformer against PyTorch's layers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqbook.models.transformer import (
    EncoderBlock,
    FeedForward,
    LayerNorm,
    SwiGLUFeedForward,
)


def test_layer_norm_equals_pytorch_with_gradients():
    torch.manual_seed(0)
    ours, theirs = LayerNorm(10, eps=1e-6), nn.LayerNorm(10, eps=1e-6)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 4, 10) * 5 + 2
    torch.testing.assert_close(ours(x), theirs(x))
    ours(x).sin().sum().backward()
    theirs(x).sin().sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad)


@pytest.mark.parametrize("activation, function", [("relu", F.relu), ("gelu", F.gelu)])
def test_feed_forward_acts_per_position(activation, function):
    ffn = FeedForward(6, 24, activation)
    assert sum(p.numel() for p in ffn.parameters()) == 6 * 24 + 24 + 24 * 6 + 6
    x = torch.randn(2, 5, 6)
    expected = (
        function(x @ ffn.up.weight.T + ffn.up.bias) @ ffn.down.weight.T + ffn.down.bias
    )
    torch.testing.assert_close(ffn(x), expected)
    torch.testing.assert_close(ffn(x[:, 3]), ffn(x)[:, 3])


def test_feed_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(4, 8, "tanh")


def test_swiglu_shapes_and_parameters():
    ffn = SwiGLUFeedForward(8, 16)
    assert ffn(torch.randn(2, 3, 8)).shape == (2, 3, 8)
    assert sum(p.numel() for p in ffn.parameters()) == 3 * 8 * 16


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_encoder_block_equals_pytorch_layer(norm_first, padded):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.1, batch_first=True, norm_first=norm_first
    ).eval()
    block = EncoderBlock.from_torch(layer)
    assert not block.training and block.norm_first == norm_first
    x = torch.randn(3, 6, 16)
    real = None
    kwargs = {}
    if padded:
        real = torch.arange(6)[None, :] < torch.tensor([6, 4, 1])[:, None]  # (B, T)
        kwargs["src_key_padding_mask"] = ~real
    for grad_enabled in (True, False):  # without gradients PyTorch takes its fast path
        with torch.set_grad_enabled(grad_enabled):
            torch.testing.assert_close(
                block(x, mask=real), layer(x, **kwargs), atol=1e-5, rtol=1e-5
            )


def test_encoder_block_from_torch_in_training_mode_matches_gradients():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    block = EncoderBlock.from_torch(layer)
    x = torch.randn(2, 5, 8)
    block(x).square().sum().backward()
    layer(x).square().sum().backward()
    torch.testing.assert_close(
        block.attention.in_proj_weight.grad, layer.self_attn.in_proj_weight.grad
    )
    torch.testing.assert_close(
        block.feed_forward.up.weight.grad, layer.linear1.weight.grad
    )


def test_from_torch_rejects_gelu_layers():
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", batch_first=True)
    with pytest.raises(ValueError, match="ReLU"):
        EncoderBlock.from_torch(layer)


def test_causal_block_equals_pytorch_layer_with_a_causal_mask():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, batch_first=True, norm_first=True
    ).eval()
    block = EncoderBlock.from_torch(layer)
    x = torch.randn(2, 5, 8)
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)  # PyTorch: True = hidden
    torch.testing.assert_close(
        block(x, causal=True), layer(x, src_mask=future), atol=1e-5, rtol=1e-5
    )
    # Position t does not depend on later positions.
    changed = x.clone()
    changed[:, 3:] += 1.0
    torch.testing.assert_close(
        block(changed, causal=True)[:, :3], block(x, causal=True)[:, :3]
    )
