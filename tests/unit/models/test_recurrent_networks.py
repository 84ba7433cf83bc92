"""The reference RNN of the section "Recurrent neural networks": equal to nn.RNN with
the same weights, parameters named like nn.RNN's, and clipping equal to PyTorch's."""

import math

import pytest
import torch
from torch import nn

from seqbook.models.recurrent_networks import RNN, clip_grad_norm, rnn_forward


def nn_rnn_weights(module: nn.RNN):
    return (
        module.weight_ih_l0,
        module.weight_hh_l0,
        module.bias_ih_l0,
        module.bias_hh_l0,
    )


@pytest.mark.parametrize(
    "batch, steps, size_in, hidden", [(1, 1, 1, 1), (3, 7, 5, 4), (4, 20, 2, 16)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rnn_forward_equals_nn_rnn(batch, steps, size_in, hidden, dtype):
    torch.manual_seed(0)
    builtin = nn.RNN(size_in, hidden, batch_first=True).to(dtype)
    x = torch.randn(batch, steps, size_in, dtype=dtype)
    h0 = torch.randn(batch, hidden, dtype=dtype)
    outputs, h_n = rnn_forward(x, h0, *nn_rnn_weights(builtin))
    expected_outputs, expected_h = builtin(x, h0[None])
    assert outputs.shape == (batch, steps, hidden) and h_n.shape == (batch, hidden)
    assert outputs.dtype == dtype
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    assert (outputs - expected_outputs).abs().max() < tolerance
    assert (h_n - expected_h[0]).abs().max() < tolerance
    assert torch.equal(outputs[:, -1], h_n)


def test_rnn_forward_gradients_equal_nn_rnn():
    torch.manual_seed(1)
    builtin = nn.RNN(3, 5, batch_first=True).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    outputs, h_n = rnn_forward(x, h0, *nn_rnn_weights(builtin))
    ours = torch.autograd.grad(
        outputs.sum() + h_n.square().sum(), (x, h0, *builtin.parameters())
    )
    expected_outputs, expected_h = builtin(x, h0[None])
    theirs = torch.autograd.grad(
        expected_outputs.sum() + expected_h.square().sum(),
        (x, h0, *builtin.parameters()),
    )
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max() < 1e-12


def test_rnn_forward_passes_gradcheck():
    torch.manual_seed(2)
    tensors = [
        torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        for shape in [(2, 4, 3), (2, 5), (5, 3), (5, 5), (5,), (5,)]
    ]
    assert torch.autograd.gradcheck(lambda *a: rnn_forward(*a)[0], tensors)


def test_rnn_module_loads_nn_rnn_state_dict_and_matches():
    torch.manual_seed(3)
    builtin = nn.RNN(6, 8, batch_first=True)
    ours = RNN(6, 8)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in builtin.named_parameters()
    ]
    ours.load_state_dict(builtin.state_dict())
    x = torch.randn(4, 9, 6)
    for h0 in (None, torch.randn(1, 4, 8)):
        (a, ha), (b, hb) = ours(x, h0), builtin(x, h0)
        assert a.shape == b.shape and ha.shape == hb.shape == (1, 4, 8)
        assert (a - b).abs().max() < 1e-6 and (ha - hb).abs().max() < 1e-6
    assert "batch_first=True" in repr(ours)


def test_rnn_module_initialisation_and_errors():
    torch.manual_seed(4)
    module = RNN(3, 25)
    bound = 1 / math.sqrt(25)
    for p in module.parameters():
        assert p.abs().max() <= bound
    with pytest.raises(ValueError, match="inputs of shape"):
        module(torch.randn(4, 3))
    with pytest.raises(ValueError, match="h0 of shape"):
        module(torch.randn(2, 4, 3), torch.randn(2, 25))


def make_parameters(seed, shapes, scale, none=(), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    parameters = []
    for i, shape in enumerate(shapes):
        p = torch.randn(shape, generator=g, dtype=dtype).requires_grad_(True)
        if i not in none:
            p.grad = scale * torch.randn(shape, generator=g, dtype=dtype)
        parameters.append(p)
    copies = []
    for p in parameters:
        q = p.detach().clone().requires_grad_(True)
        q.grad = None if p.grad is None else p.grad.clone()
        copies.append(q)
    return parameters, copies


@pytest.mark.parametrize("max_norm", [0.01, 1.0, 5.0, 1e3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_clip_grad_norm_equals_torch(max_norm, dtype):
    ours, theirs = make_parameters(0, [(4, 3), (4,), (2, 2, 2)], 1.0, dtype=dtype)
    grad_objects = [p.grad for p in ours]
    total = clip_grad_norm(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert isinstance(total, torch.Tensor) and total.dim() == 0
    assert total.dtype == expected.dtype and torch.allclose(total, expected)
    for p, q, grad in zip(ours, theirs, grad_objects):
        assert p.grad is grad  # scaled in place
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_accepts_generators_single_tensors_and_none_grads():
    ours, theirs = make_parameters(1, [(3,), (5, 2), (2,)], 4.0, none=(1,))
    total = clip_grad_norm((p for p in ours), 1.0)
    assert torch.allclose(total, torch.nn.utils.clip_grad_norm_(iter(theirs), 1.0))
    assert ours[1].grad is None
    assert torch.allclose(ours[0].grad, theirs[0].grad)
    ours, theirs = make_parameters(2, [(6,)], 3.0)
    assert torch.allclose(
        clip_grad_norm(ours[0], 0.5), torch.nn.utils.clip_grad_norm_(theirs[0], 0.5)
    )
    assert torch.allclose(ours[0].grad, theirs[0].grad)
    assert float(clip_grad_norm([torch.zeros(2, requires_grad=True)], 1.0)) == 0.0


def test_clip_grad_norm_returns_the_norm_before_clipping():
    ours, _ = make_parameters(3, [(10,)], 10.0)
    before = ours[0].grad.norm()
    total = clip_grad_norm(ours, 1.0)
    assert torch.allclose(total, before)
    assert abs(float(ours[0].grad.norm()) - 1.0) < 1e-5
