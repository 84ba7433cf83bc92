"""A generated seasonal time series and the helpers to forecast it.

The series of the section "Convolutions and time series" is made by
:func:`seasonal_series`, a documented, seeded generator (nothing is downloaded):

    y_t = level + slope * t
          + amplitude * (sin(2 pi t / period) + harmonic * sin(4 pi t / period + 1))
          + second_amplitude * sin(2 pi t / second_period + phase)
          + noise * e_t,                      e_t ~ N(0, 1) independent,

for t = 0, 1, ..., length - 1: a linear trend, a fast season with a non-sinusoidal shape
(a sine and its first harmonic), a slower second season whose period is *not* a multiple
of the first, and white noise. The default second period is 3.5 fast seasons, so "repeat
the last season" (:func:`seasonal_naive`) copies the slow season at the wrong phase,
and it copies the noise of the past season too: a model that learns the two seasons and
the trend can beat it, but no forecaster can beat the noise floor
``noise * sqrt(2 / pi)``, the mean absolute value of the noise (reached by forecasting
the noise-free signal, which the generator also returns).

The other helpers cut a series into (window, next values) pairs, split it in time, and
measure forecasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seqbook import runtime

__all__ = [
    "SeasonalSeries",
    "seasonal_series",
    "train_test_split",
    "sliding_windows",
    "seasonal_naive",
    "mean_absolute_error",
]


@dataclass(frozen=True)
class SeasonalSeries:
    """A generated series: the observed ``values``, the noise-free ``signal``, the
    periods and the noise standard deviation."""

    values: torch.Tensor  # (length,) float32, what a forecaster sees
    signal: torch.Tensor  # (length,) float32, values without the noise
    period: int
    second_period: float
    noise: float

    def __len__(self) -> int:
        return len(self.values)


def seasonal_series(
    length: int = 3000,
    period: int = 12,
    second_period: float = 42.0,
    amplitude: float = 1.0,
    harmonic: float = 0.5,
    second_amplitude: float = 0.6,
    slope: float = 0.004,
    level: float = 0.0,
    noise: float = 0.25,
    seed: int = 0,
) -> SeasonalSeries:
    """Generate the seasonal series described in the module docstring.

    The result depends only on the arguments: the noise comes from a private
    ``torch.Generator`` seeded with ``seed`` (the global random state is untouched), and
    the phase of the second season is drawn from it too.
    """
    if length < 1 or period < 2 or second_period <= 0 or noise < 0:
        raise ValueError(
            "need length >= 1, period >= 2, second_period > 0 and noise >= 0"
        )
    g = runtime.generator(seed)
    phase = float(torch.rand((), generator=g, dtype=torch.float64)) * 2 * math.pi
    t = torch.arange(length, dtype=torch.float64)
    fast = torch.sin(2 * math.pi * t / period) + harmonic * torch.sin(
        4 * math.pi * t / period + 1.0
    )
    slow = torch.sin(2 * math.pi * t / second_period + phase)
    signal = level + slope * t + amplitude * fast + second_amplitude * slow
    values = signal + noise * torch.randn(length, generator=g, dtype=torch.float64)
    return SeasonalSeries(values.float(), signal.float(), period, second_period, noise)


def train_test_split(
    series: torch.Tensor, test_size: int, context: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a 1-D series in time: ``(train, test)``.

    ``train`` is everything but the last ``test_size`` values. ``test`` is the last
    ``test_size`` values preceded by ``context`` values of the training part, so that
    windows of ``context`` past values can be cut whose *targets* all lie in the
    held-out part (the past may be seen; the future being forecast may not).
    """
    if series.dim() != 1:
        raise ValueError(f"expected a 1-D series, got shape {tuple(series.shape)}")
    if not 0 < test_size < len(series) or not 0 <= context <= len(series) - test_size:
        raise ValueError(
            f"need 0 < test_size < {len(series)} and 0 <= context <= len - test_size, "
            f"got test_size={test_size}, context={context}"
        )
    split = len(series) - test_size
    return series[:split], series[split - context :]


def sliding_windows(
    series: torch.Tensor, window: int, horizon: int, stride: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (past, future) pairs of a 1-D series: inputs ``(N, window)``, targets
    ``(N, horizon)``, where target row ``i`` holds the ``horizon`` values that follow
    input row ``i``. Consecutive pairs start ``stride`` steps apart."""
    if series.dim() != 1:
        raise ValueError(f"expected a 1-D series, got shape {tuple(series.shape)}")
    if window < 1 or horizon < 1 or stride < 1 or len(series) < window + horizon:
        raise ValueError(
            f"cannot cut windows of {window} + {horizon} values from a series of "
            f"length {len(series)}"
        )
    pairs = series.unfold(0, window + horizon, stride)  # (N, window + horizon)
    return pairs[:, :window].clone(), pairs[:, window:].clone()


def seasonal_naive(inputs: torch.Tensor, period: int, horizon: int) -> torch.Tensor:
    """Forecast by repeating the last season: ``y_hat[t + h] = y[t + h - period * m]``
    with ``m`` the smallest whole number of seasons that reaches back into the window.

    ``inputs`` is ``(..., window)`` with ``window >= period``; returns
    ``(..., horizon)``.
    """
    if inputs.shape[-1] < period:
        raise ValueError(
            f"the window ({inputs.shape[-1]}) is shorter than the period ({period})"
        )
    last_season = inputs[..., -period:]  # (..., period)
    repeats = math.ceil(horizon / period)
    return last_season.tile((repeats,))[..., :horizon]  # (..., horizon)


def mean_absolute_error(forecast: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error of a forecast, as a Python float."""
    if forecast.shape != target.shape:
        raise ValueError(
            f"forecast {tuple(forecast.shape)} and target {tuple(target.shape)} differ "
            "in shape"
        )
    return float((forecast - target).abs().mean())
