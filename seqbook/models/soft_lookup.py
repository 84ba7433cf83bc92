"""Attention as a soft dictionary lookup: Nadaraya–Watson kernel regression in 1-D.

The references of the section "Attention as a soft dictionary lookup":

* :func:`make_regression_data` -- a seeded 1-D regression problem (a smooth function
  plus Gaussian noise) with training points and held-out points;
* :func:`gaussian_attention_pooling` -- Nadaraya–Watson regression with a Gaussian
  kernel, written as attention: scalar queries, keys and values, weights
  ``softmax(-(q - k)^2 / (2 w^2))`` over the keys;
* :func:`leave_one_out_mask` -- the boolean mask that stops each training point from
  attending to itself;
* :class:`KernelRegression` -- the same pooling with a learned width (parameterised by
  its logarithm, so it stays positive);
* :func:`training_step` and :func:`fit_width` -- one gradient step on the mean squared
  error, and a loop of them that records the width.

Masks follow the book's convention: boolean, ``True`` means "may attend".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqbook import runtime

__all__ = [
    "RegressionData",
    "true_function",
    "make_regression_data",
    "gaussian_attention_pooling",
    "leave_one_out_mask",
    "KernelRegression",
    "training_step",
    "fit_width",
]

X_RANGE = (0.0, 5.0)


def true_function(x: torch.Tensor) -> torch.Tensor:
    """The smooth function behind the data: ``sin(2x) + 0.3 x``."""
    return torch.sin(2 * x) + 0.3 * x


@dataclass(frozen=True)
class RegressionData:
    """Training and held-out points of a 1-D regression problem, sorted by ``x``."""

    x_train: torch.Tensor  # (n_train,)
    y_train: torch.Tensor  # (n_train,)
    x_test: torch.Tensor  # (n_test,)
    y_test: torch.Tensor  # (n_test,)
    noise: float

    def to(self, device: torch.device | str) -> "RegressionData":
        moved = (
            t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)
        )
        return RegressionData(*moved, self.noise)


def make_regression_data(
    n_train: int = 60, n_test: int = 200, noise: float = 0.3, seed: int = 0
) -> RegressionData:
    """Draw ``x`` uniformly in [0, 5] and ``y = true_function(x) + noise * N(0, 1)``.

    Training and held-out points are independent draws from the same distribution; both
    are noisy, so the best possible held-out mean squared error is ``noise ** 2``.
    """
    if n_train < 2 or n_test < 1:
        raise ValueError("need at least 2 training points and 1 held-out point")
    g = runtime.generator(seed)
    low, high = X_RANGE

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = (low + (high - low) * torch.rand(n, generator=g)).sort().values
        return x, true_function(x) + noise * torch.randn(n, generator=g)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return RegressionData(x_train, y_train, x_test, y_test, noise)


def gaussian_attention_pooling(queries, keys, values, width, mask=None):
    """Nadaraya–Watson regression, Gaussian kernel of standard deviation ``width``.

    ``queries`` is ``(n_q,)``, ``keys`` and ``values`` are ``(n_k,)``; ``width`` is a
    positive float or a 0-dimensional tensor (gradients flow to it); ``mask`` is an
    optional boolean ``(n_q, n_k)`` tensor, ``True`` = may attend. The weight of key
    ``j`` for query ``i`` is ``softmax_j(-(q_i - k_j)^2 / (2 width^2))``. Returns
    ``(predictions (n_q,), weights (n_q, n_k))``.
    """
    scores = -((queries[:, None] - keys[None, :]) ** 2) / (2 * width**2)  # (n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (n_q, n_k), rows sum to 1
    return weights @ values, weights  # (n_q,), (n_q, n_k)


def leave_one_out_mask(n: int, device=None) -> torch.Tensor:
    """``(n, n)`` boolean, ``True`` except on the diagonal: no point sees itself."""
    return ~torch.eye(n, dtype=torch.bool, device=device)


class KernelRegression(nn.Module):
    """Gaussian attention pooling whose width is learned.

    The parameter is ``log_width``; the width is ``exp(log_width)``, positive for every
    value of the parameter. ``forward(queries, keys, values, mask=None)`` returns the
    predictions ``(n_q,)``.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"the width must be positive, got {width}")
        self.log_width = nn.Parameter(torch.tensor(math.log(width)))

    @property
    def width(self) -> float:
        return float(self.log_width.detach().exp())

    def forward(self, queries, keys, values, mask=None):
        width = self.log_width.exp()
        predictions, _ = gaussian_attention_pooling(queries, keys, values, width, mask)
        return predictions

    def extra_repr(self) -> str:
        return f"width={self.width:.4g}"


def training_step(model, optimizer, queries, keys, values, targets, mask=None):
    """One gradient step on the mean squared error; returns the loss before the step."""
    optimizer.zero_grad()
    predictions = model(queries, keys, values, mask)  # (n_q,)
    loss = F.mse_loss(predictions, targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def fit_width(
    model: KernelRegression,
    optimizer: torch.optim.Optimizer,
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    steps: int = 200,
) -> tuple[list[float], list[float]]:
    """Run ``steps`` training steps; return the losses and the widths before each."""
    losses, widths = [], []
    for _ in range(steps):
        widths.append(model.width)
        loss = training_step(model, optimizer, queries, keys, values, targets, mask)
        losses.append(loss)
    return losses, widths
