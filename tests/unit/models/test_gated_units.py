"""seqbook.models.gated_units (LSTM and GRU cells from primitives) against PyTorch, and
the long-gap memory task of seqbook.data.memory_task."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seqbook.data.memory_task import (
    MemoryClassifier,
    memory_accuracy,
    memory_batch,
    train_memory_model,
)
from seqbook.models.gated_units import GRUCell, LSTMCell, gru_cell, lstm_cell

PAIRS = [(LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)]


def twins(
    ours_cls, torch_cls, input_size=5, hidden_size=7, bias=True, dtype=torch.float64
):
    torch.manual_seed(0)
    theirs = torch_cls(input_size, hidden_size, bias=bias, dtype=dtype)
    ours = ours_cls(input_size, hidden_size, bias=bias, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def state(cls, *lead, hidden_size=7, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*lead, hidden_size, generator=g, dtype=dtype)
    if cls is LSTMCell:
        return h, torch.randn(*lead, hidden_size, generator=g, dtype=dtype)
    return h


def as_tuple(output):
    return output if isinstance(output, tuple) else (output,)


@pytest.mark.parametrize("ours_cls, torch_cls", PAIRS)
def test_parameters_have_pytorch_names_shapes_and_order(ours_cls, torch_cls):
    ours, theirs = twins(ours_cls, torch_cls)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    gates = 4 if ours_cls is LSTMCell else 3
    assert ours.weight_ih.shape == (gates * 7, 5) and ours.weight_hh.shape == (
        gates * 7,
        7,
    )
    theirs.load_state_dict(ours.state_dict())  # and the other way round
    no_bias, torch_no_bias = twins(ours_cls, torch_cls, bias=False)
    assert (
        list(no_bias.state_dict())
        == list(torch_no_bias.state_dict())
        == ["weight_ih", "weight_hh"]
    )
    assert no_bias.bias_ih is None and no_bias.bias_hh is None
    assert repr(no_bias).endswith("(5, 7, bias=False)")


@pytest.mark.parametrize("ours_cls, torch_cls", PAIRS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_forward_and_gradients_equal_pytorch(ours_cls, torch_cls, bias, batched):
    ours, theirs = twins(ours_cls, torch_cls, bias=bias)
    lead = (4,) if batched else ()
    x = torch.randn(
        *lead, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    hx = state(ours_cls, *lead)
    results = []
    for cell in (ours, theirs):
        inputs = x.clone().requires_grad_(True)
        hx_leaf = tuple(t.clone().requires_grad_(True) for t in as_tuple(hx))
        out = as_tuple(cell(inputs, hx_leaf if ours_cls is LSTMCell else hx_leaf[0]))
        loss = sum(
            (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum()
            for o in out
        )
        grads = torch.autograd.grad(loss, [inputs, *hx_leaf, *cell.parameters()])
        results.append((out, grads))
    (ours_out, ours_grads), (their_out, their_grads) = results
    assert [o.shape for o in ours_out] == [o.shape for o in their_out]
    for a, b in zip(ours_out + ours_grads, their_out + their_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("ours_cls, torch_cls", PAIRS)
@pytest.mark.parametrize("lead", [(3,), ()])
def test_missing_state_means_zeros(ours_cls, torch_cls, lead):
    ours, theirs = twins(ours_cls, torch_cls)
    x = torch.randn(*lead, 5, dtype=torch.float64)
    for a, b in zip(as_tuple(ours(x)), as_tuple(theirs(x))):
        assert a.shape == (*lead, 7)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("ours_cls, torch_cls", PAIRS)
def test_float32_default_dtype_and_bad_inputs(ours_cls, torch_cls):
    torch.manual_seed(0)
    theirs, ours = torch_cls(3, 4), ours_cls(3, 4)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(6, 3)
    for a, b in zip(as_tuple(ours(x)), as_tuple(theirs(x))):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="1-D"):
        ours(torch.randn(2, 6, 3))
    with pytest.raises(ValueError, match="input_size=3"):
        ours(torch.randn(2, 5))


@pytest.mark.parametrize("ours_cls, torch_cls", PAIRS)
def test_initialisation_is_pytorchs_uniform_distribution(ours_cls, torch_cls):
    torch.manual_seed(0)
    hidden_size = 64
    ours = ours_cls(48, hidden_size)
    bound = 1 / math.sqrt(hidden_size)
    values = torch.cat([p.detach().flatten() for p in ours.parameters()])
    assert values.abs().max() <= bound
    assert abs(values.mean().item()) < 0.05 * bound
    assert values.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    # Same random stream as PyTorch: the same seed gives the same weights.
    torch.manual_seed(5)
    a = ours_cls(4, 6)
    torch.manual_seed(5)
    b = torch_cls(4, 6)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_functions_unrolled_equal_the_sequence_layers():
    torch.manual_seed(0)
    lstm, gru = nn.LSTM(3, 5, dtype=torch.float64), nn.GRU(3, 5, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)  # (T, B, I)

    def weights(layer):
        return [
            getattr(layer, f"{n}_l0")
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]

    h = c = torch.zeros(2, 5, dtype=torch.float64)
    hg = torch.zeros(2, 5, dtype=torch.float64)
    lstm_out, gru_out = [], []
    for t in range(6):
        h, c = lstm_cell(x[t], h, c, *weights(lstm))
        hg = gru_cell(x[t], hg, *weights(gru))
        lstm_out.append(h)
        gru_out.append(hg)
    torch.testing.assert_close(torch.stack(lstm_out), lstm(x)[0])
    torch.testing.assert_close(torch.stack(gru_out), gru(x)[0])


def test_direct_path_jacobian_of_the_cell_state_is_the_forget_gate():
    torch.manual_seed(0)
    cell = LSTMCell(3, 4, dtype=torch.float64)
    x, h, c = (torch.randn(n, dtype=torch.float64) for n in (3, 4, 4))
    jacobian = torch.autograd.functional.jacobian(lambda c_: cell(x, (h, c_))[1], c)
    f = torch.sigmoid(
        (cell.weight_ih @ x + cell.bias_ih + cell.weight_hh @ h + cell.bias_hh)[4:8]
    )
    torch.testing.assert_close(jacobian, torch.diag(f))


# ------------------------------------------------------------------- memory task


def test_memory_batch_shapes_targets_and_reproducibility():
    tokens, targets = memory_batch(
        5, 7, n_symbols=6, generator=torch.Generator().manual_seed(0)
    )
    assert tokens.shape == (5, 8) and targets.shape == (5,)
    assert tokens.dtype == targets.dtype == torch.long
    assert torch.equal(targets, tokens[:, 0])
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 6
    again, _ = memory_batch(
        5, 7, n_symbols=6, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(tokens, again)
    big, _ = memory_batch(
        2000, 3, n_symbols=4, generator=torch.Generator().manual_seed(1)
    )
    counts = torch.bincount(big.flatten(), minlength=4).float() / big.numel()
    assert torch.allclose(
        counts, torch.full((4,), 0.25), atol=0.02
    )  # distractors alike
    assert memory_batch(3, 0)[0].shape == (3, 1)
    with pytest.raises(ValueError):
        memory_batch(3, -1)
    with pytest.raises(ValueError):
        memory_batch(3, 2, n_symbols=1)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_memory_classifier_shapes(kind):
    model = MemoryClassifier(kind, n_symbols=5, embedding_size=4, hidden_size=6)
    tokens, _ = memory_batch(3, 9, n_symbols=5)
    assert model(tokens).shape == (3, 5)
    assert isinstance(model.recurrent, MemoryClassifier.kinds[kind])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_keep_bias_sets_the_total_bias_of_the_keep_gate(kind):
    model = MemoryClassifier(kind, hidden_size=6, keep_bias=4.0)
    total = model.recurrent.bias_ih_l0 + model.recurrent.bias_hh_l0
    keep = total[6:12]  # the forget gate f (i, f, g, o) or the update gate z (r, z, n)
    torch.testing.assert_close(keep, torch.full((6,), 4.0))
    assert not torch.allclose(total[:6], torch.full((6,), 4.0))


def test_bad_model_options_are_refused():
    with pytest.raises(ValueError, match="no gate"):
        MemoryClassifier("rnn", keep_bias=1.0)
    with pytest.raises(ValueError, match="kind"):
        MemoryClassifier("transformer")


def test_memory_accuracy_of_an_oracle_and_of_a_guesser():
    class Oracle(nn.Module):
        def forward(self, tokens):
            return nn.functional.one_hot(tokens[:, 0], 8).float()

    class Constant(nn.Module):
        def forward(self, tokens):
            return torch.zeros(len(tokens), 8).index_fill_(1, torch.tensor([3]), 1.0)

    g = torch.Generator().manual_seed(0)
    assert memory_accuracy(Oracle(), 12, generator=g) == 1.0
    assert memory_accuracy(Constant(), 12, 4000, generator=g) == pytest.approx(
        1 / 8, abs=0.02
    )


def test_an_lstm_learns_a_short_gap_and_stops_early():
    torch.manual_seed(0)
    model = MemoryClassifier("lstm", keep_bias=3.0)
    log = train_memory_model(
        model, gap=3, max_steps=600, generator=torch.Generator().manual_seed(0)
    )
    assert log.steps < 600 and log.steps % 50 == 0
    assert memory_accuracy(model, 3, generator=torch.Generator().manual_seed(1)) > 0.97
    assert not model.training  # left in evaluation mode


def test_cell_modules_equal_torch_with_copied_weights():
    import torch

    from seqbook.models import gated_units

    lstm, torch_lstm = gated_units.LSTMCell(3, 5), torch.nn.LSTMCell(3, 5)
    lstm.load_state_dict(torch_lstm.state_dict())
    x = torch.randn(4, 3)
    for ours, theirs in zip(lstm(x), torch_lstm(x)):
        torch.testing.assert_close(ours, theirs)
    gru, torch_gru = gated_units.GRUCell(3, 5), torch.nn.GRUCell(3, 5)
    gru.load_state_dict(torch_gru.state_dict())
    torch.testing.assert_close(gru(x), torch_gru(x))


def test_plain_rnn_recurrent_initialisations():
    identity = MemoryClassifier("rnn", hidden_size=6, recurrent_init="identity")
    assert torch.equal(identity.recurrent.weight_hh_l0, torch.eye(6))
    orthogonal = MemoryClassifier("rnn", hidden_size=6, recurrent_init="orthogonal")
    w = orthogonal.recurrent.weight_hh_l0.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)
    for model in (identity, orthogonal):
        assert (
            not model.recurrent.bias_ih_l0.any()
            and not model.recurrent.bias_hh_l0.any()
        )
    with pytest.raises(ValueError, match="plain RNN"):
        MemoryClassifier("lstm", recurrent_init="identity")
    with pytest.raises(ValueError, match="identity"):
        MemoryClassifier("rnn", recurrent_init="eye")
