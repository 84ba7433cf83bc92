"""The reference implementations in seqbook.models.convolutions and the generator and
helpers in seqbook.data.timeseries: against PyTorch, the formulas, and properties
(causality, same length, level equivariance, determinism)."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from torch import nn

from seqbook.data import timeseries
from seqbook.models.convolutions import (
    CausalConv1d,
    DilatedCNNForecaster,
    measured_receptive_field,
    receptive_field,
)

NOTEBOOK = REPO / "solutions" / "sequence_models" / "convolutions.ipynb"


# ------------------------------------------------------------------ CausalConv1d


def by_the_formula(x, weight, bias, dilation):
    """y[:, :, t] = b + sum_j W[:, :, j] x[:, :, t - (k - 1 - j) d], zeros before 0."""
    batch, _, length = x.shape
    c_out, _, k = weight.shape
    y = bias[None, :, None].expand(batch, c_out, length).clone()
    for t in range(length):
        for j in range(k):
            s = t - (k - 1 - j) * dilation
            if s >= 0:
                y[:, :, t] += x[:, :, s] @ weight[:, :, j].T
    return y


@pytest.mark.parametrize(
    "c_in, c_out, k, d, length",
    [
        (1, 1, 3, 1, 10),
        (3, 4, 3, 2, 16),
        (2, 2, 2, 4, 12),
        (2, 3, 1, 3, 5),
        (2, 3, 4, 5, 7),  # sequence shorter than the padding
    ],
)
def test_causal_conv_is_the_formula(c_in, c_out, k, d, length):
    torch.manual_seed(0)
    layer = CausalConv1d(c_in, c_out, k, dilation=d).double()
    x = torch.randn(2, c_in, length, dtype=torch.float64)
    y = layer(x)
    assert y.shape == (2, c_out, length)
    torch.testing.assert_close(
        y, by_the_formula(x, layer.conv.weight, layer.conv.bias, d)
    )


def test_causal_conv_is_conv1d_on_a_left_padded_input():
    layer = CausalConv1d(3, 5, 4, dilation=3)
    x = torch.randn(2, 3, 20)
    expected = nn.functional.conv1d(
        F.pad(x, (9, 0)), layer.conv.weight, layer.conv.bias, dilation=3
    )
    torch.testing.assert_close(layer(x), expected)
    assert layer.left_padding == 9 and isinstance(layer.conv, nn.Conv1d)
    assert layer.conv.padding == (0,) and layer.conv.dilation == (3,)


@pytest.mark.parametrize("k, d", [(2, 1), (3, 2), (5, 3)])
def test_causal_conv_never_peeks(k, d):
    layer = CausalConv1d(2, 2, k, dilation=d)
    x = torch.randn(1, 2, 30)
    y = layer(x)
    for t in range(29):
        changed = x.clone()
        changed[..., t + 1 :] += torch.randn(1, 2, 29 - t)
        assert torch.equal(layer(changed)[..., : t + 1], y[..., : t + 1])


def test_same_padding_does_peek():
    same = nn.Conv1d(1, 1, 3, dilation=2, padding="same")
    x = torch.randn(1, 1, 20)
    changed = x.clone()
    changed[..., 10] += 1
    assert (same(changed) - same(x))[..., :10].abs().max() > 0


# --------------------------------------------------------------- receptive field


@pytest.mark.parametrize(
    "kernels, dilations, expected",
    [
        ([], [], 1),
        ([1], [7], 1),
        ([3], [1], 3),
        ([3], [4], 9),
        ([2] * 4, [1, 2, 4, 8], 16),
        ([3] * 5, [1, 2, 4, 8, 16], 63),
        ((5, 3, 2), (1, 3, 9), 20),
    ],
)
def test_receptive_field_formula(kernels, dilations, expected):
    result = receptive_field(kernels, dilations)
    assert result == expected and type(result) is int


def test_receptive_field_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one of each per layer"):
        receptive_field([3, 3, 3], [1, 2])


def test_doubling_dilations_with_kernel_two_give_powers_of_two():
    for depth in range(1, 12):
        assert receptive_field([2] * depth, [2**i for i in range(depth)]) == 2**depth


@pytest.mark.parametrize("seed", range(5))
def test_measured_receptive_field_matches_the_formula(seed):
    g = torch.Generator().manual_seed(seed)
    depth = int(torch.randint(1, 6, (1,), generator=g))
    kernels = torch.randint(1, 6, (depth,), generator=g).tolist()
    dilations = torch.randint(1, 8, (depth,), generator=g).tolist()
    stack = nn.Sequential(
        *[
            CausalConv1d(1 if i == 0 else 3, 3, k, d)
            for i, (k, d) in enumerate(zip(kernels, dilations))
        ]
    )
    formula = receptive_field(kernels, dilations)
    assert measured_receptive_field(stack, formula + 5) == formula
    assert next(stack.parameters()).dtype == torch.float32  # the model is untouched


def test_measured_receptive_field_ignores_holes():
    stack = nn.Sequential(CausalConv1d(1, 1, 2, 2), CausalConv1d(1, 1, 2, 2))
    assert measured_receptive_field(stack, 12) == 5  # taps at t, t-2, t-4 only


# ------------------------------------------------------------------- forecaster


def test_forecaster_shapes_and_receptive_field():
    model = DilatedCNNForecaster(
        horizon=7, channels=8, kernel_size=3, dilations=(1, 2, 4)
    )
    assert model(torch.randn(5, 30)).shape == (5, 7)
    assert model.receptive_field == 15


def test_forecaster_is_level_equivariant():
    # Adding a constant to the window adds it to every forecast.
    torch.manual_seed(0)
    model = DilatedCNNForecaster(horizon=4, channels=8).double()
    x = torch.randn(3, 40, dtype=torch.float64)
    torch.testing.assert_close(model(x + 5.0), model(x) + 5.0)


def test_forecaster_last_output_sees_the_window_within_its_receptive_field():
    model = DilatedCNNForecaster(
        horizon=2, channels=4, kernel_size=2, dilations=(1, 2, 4)
    )
    x = torch.randn(1, 20, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[0, 0], x)
    # The window mean reaches every input; beyond the mean, only the last 8 steps count.
    assert grad.shape == (1, 20)
    assert torch.allclose(grad[0, :12], grad[0, 0].expand(12))


def test_forecaster_needs_a_layer():
    with pytest.raises(ValueError):
        DilatedCNNForecaster(horizon=2, dilations=())


# ------------------------------------------------------------------- timeseries


def test_series_is_deterministic_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a = timeseries.seasonal_series(length=500, seed=3)
    b = timeseries.seasonal_series(length=500, seed=3)
    c = timeseries.seasonal_series(length=500, seed=4)
    assert torch.equal(a.values, b.values) and not torch.equal(a.values, c.values)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(a) == 500 and a.values.dtype == torch.float32


def test_series_components():
    series = timeseries.seasonal_series(length=20000, noise=0.25, seed=0)
    residual = series.values - series.signal
    assert abs(float(residual.std()) - 0.25) < 0.01
    assert abs(float(residual.abs().mean()) - 0.25 * math.sqrt(2 / math.pi)) < 0.01
    quiet = timeseries.seasonal_series(
        length=1000, noise=0.0, slope=0.0, second_amplitude=0.0, period=12
    )
    torch.testing.assert_close(quiet.values[12:], quiet.values[:-12], atol=1e-5, rtol=0)


def test_series_rejects_bad_arguments():
    with pytest.raises(ValueError):
        timeseries.seasonal_series(period=1)
    with pytest.raises(ValueError):
        timeseries.seasonal_series(noise=-1.0)


def test_train_test_split_keeps_time_order_and_context():
    series = torch.arange(100.0)
    train, test = timeseries.train_test_split(series, 30, context=10)
    assert torch.equal(train, torch.arange(70.0))
    assert torch.equal(test, torch.arange(60.0, 100.0))
    inputs, targets = timeseries.sliding_windows(test, 10, 5)
    assert targets.min() >= 70  # every target is held out
    with pytest.raises(ValueError):
        timeseries.train_test_split(series, 0)
    with pytest.raises(ValueError):
        timeseries.train_test_split(series, 30, context=80)


def test_sliding_windows_pair_past_and_future():
    series = torch.arange(20.0)
    inputs, targets = timeseries.sliding_windows(series, 5, 3)
    assert inputs.shape == (13, 5) and targets.shape == (13, 3)
    assert torch.equal(inputs[4], torch.arange(4.0, 9.0))
    assert torch.equal(targets[4], torch.arange(9.0, 12.0))
    inputs, _ = timeseries.sliding_windows(series, 5, 3, stride=4)
    assert inputs[:, 0].tolist() == [0.0, 4.0, 8.0, 12.0]
    with pytest.raises(ValueError):
        timeseries.sliding_windows(series, 15, 6)


@pytest.mark.parametrize("horizon", [1, 5, 12, 30])
def test_seasonal_naive_repeats_the_last_season(horizon):
    period = 12
    series = torch.randn(200)
    inputs = series[:48][None]  # (1, 48)
    forecast = timeseries.seasonal_naive(inputs, period, horizon)
    assert forecast.shape == (1, horizon)
    for h in range(1, horizon + 1):
        lag = period * math.ceil(h / period)
        assert forecast[0, h - 1] == series[48 + h - 1 - lag]
    with pytest.raises(ValueError):
        timeseries.seasonal_naive(torch.randn(3, 8), 12, 4)


def test_seasonal_naive_is_exact_on_a_purely_periodic_series():
    series = timeseries.seasonal_series(
        length=400, noise=0.0, slope=0.0, second_amplitude=0.0
    )
    inputs, targets = timeseries.sliding_windows(series.values, 48, 12)
    forecast = timeseries.seasonal_naive(inputs, 12, 12)
    assert timeseries.mean_absolute_error(forecast, targets) < 1e-5


def test_mean_absolute_error():
    assert (
        timeseries.mean_absolute_error(
            torch.tensor([1.0, 2.0]), torch.tensor([2.0, 0.0])
        )
        == 1.5
    )
    with pytest.raises(ValueError):
        timeseries.mean_absolute_error(torch.zeros(2), torch.zeros(3))
