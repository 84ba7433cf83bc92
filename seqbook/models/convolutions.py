"""Causal 1-D convolutions, their receptive field, and a dilated causal CNN forecaster.

The single source of the solutions of the section "Convolutions and time series"
(``tests/book/test_sync.py`` and ``tests/unit/models/test_convolutions.py`` check that
the solution cells define exactly :class:`CausalConv1d` and :func:`receptive_field`).
Later sections import them from here instead of depending on a student's answer.

Convention: sequences are ``(B, C, T)`` (batch, channels, time), as for
:class:`torch.nn.Conv1d`. A causal convolution with kernel size ``k`` and dilation ``d``
computes

    y[:, t] = b + sum_{j=0}^{k-1} W[:, :, j] x[:, t - (k - 1 - j) d],
    x[:, s] = 0 for s < 0,

so output ``t`` depends on inputs ``t, t - d, ..., t - (k - 1) d`` only: it is
``nn.Conv1d`` applied to the input padded with ``(k - 1) d`` zeros **on the left**.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CausalConv1d",
    "receptive_field",
    "measured_receptive_field",
    "DilatedCNNForecaster",
]


class CausalConv1d(nn.Module):
    """A 1-D convolution whose output at time ``t`` sees only inputs at times ``<= t``.

    Input ``(B, in_channels, T)``, output ``(B, out_channels, T)``: the same length. The
    parameters are those of the inner ``nn.Conv1d`` named ``conv`` (no padding of its
    own); the input is padded with ``(kernel_size - 1) * dilation`` zeros on the left.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1
    ) -> None:
        super().__init__()
        self.left_padding = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.left_padding, 0))  # (B, C_in, T + (k - 1) d)
        return self.conv(x)  # (B, C_out, T)


def receptive_field(kernel_sizes: Sequence[int], dilations: Sequence[int]) -> int:
    """Receptive field of a stack of causal convolutions: ``1 + sum_l (k_l - 1) d_l``.

    Layer ``l`` has kernel size ``kernel_sizes[l]`` and dilation ``dilations[l]``; the
    result is the number of consecutive time steps, ending at ``t``, that can influence
    the output at ``t``. An empty stack has receptive field 1. Raises ``ValueError``
    when the two sequences differ in length.
    """
    if len(kernel_sizes) != len(dilations):
        raise ValueError(
            f"{len(kernel_sizes)} kernel sizes but {len(dilations)} dilations: "
            "give one of each per layer"
        )
    return 1 + sum((k - 1) * d for k, d in zip(kernel_sizes, dilations))


def measured_receptive_field(model: nn.Module, length: int, channels: int = 1) -> int:
    """Measure how far back the last output of ``model`` looks, with autograd.

    Feeds a random ``(1, channels, length)`` float64 input to a float64 copy of the
    model, takes the gradient of the sum of the last time step of the output with
    respect to the input, and returns ``length - s`` where ``s`` is the earliest time
    step with a non-zero gradient (the steps from ``s`` to the end, both included). Gaps
    inside that span (inputs that a dilated stack skips) do not shorten it. ``length``
    must exceed the receptive field, or the answer is capped at ``length``.
    """
    model = copy.deepcopy(model).double()  # a float64 copy: the model is untouched
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x = torch.randn(
        1, channels, length, dtype=torch.float64, device=device, requires_grad=True
    )
    output = model(x)  # (1, C_out, length)
    (gradient,) = torch.autograd.grad(output[..., -1].sum(), x)
    reached = (gradient[0] != 0).any(dim=0).nonzero()  # time steps that influence
    return length - int(reached[0]) if len(reached) else 0


class DilatedCNNForecaster(nn.Module):
    """Direct multi-step forecaster: a window ``(B, L)`` -> the next ``horizon`` values
    ``(B, horizon)``.

    A stack of causal convolutions with ReLU and residual connections (the first layer
    maps the single input channel to ``channels``); the features at the **last** time
    step, which see ``receptive_field`` past values, go through a linear layer to all
    ``horizon`` forecasts at once. The window's mean is subtracted on the way in and
    added back on the way out, so a trend that lifts the level of the series does not
    push inputs out of the range seen in training.
    """

    def __init__(
        self,
        horizon: int,
        channels: int = 32,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 2, 4, 8, 16),
    ) -> None:
        super().__init__()
        if not dilations:
            raise ValueError("need at least one layer")
        self.first = CausalConv1d(1, channels, kernel_size, dilations[0])
        self.layers = nn.ModuleList(
            CausalConv1d(channels, channels, kernel_size, d) for d in dilations[1:]
        )
        self.head = nn.Linear(channels, horizon)
        self.receptive_field = receptive_field(
            [kernel_size] * len(dilations), dilations
        )

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        level = window.mean(dim=-1, keepdim=True)  # (B, 1)
        h = torch.relu(self.first((window - level)[:, None, :]))  # (B, C, L)
        for layer in self.layers:
            h = h + torch.relu(layer(h))  # (B, C, L)
        return level + self.head(h[:, :, -1])  # (B, horizon)
