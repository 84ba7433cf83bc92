"""Recurrent neural networks from primitives: the reference code of the section
"Recurrent neural networks".

* :func:`rnn_forward` -- a batched single-layer tanh RNN written with matrix products,
  numerically equal to ``torch.nn.RNN(..., batch_first=True)`` with the same weights;
* :class:`RNN` -- the same network as a module whose parameters are named and shaped
  like ``nn.RNN``'s single layer, so ``load_state_dict(nn_rnn.state_dict())`` works;
* :func:`clip_grad_norm` -- clipping by global norm, equal to
  ``torch.nn.utils.clip_grad_norm_`` (2-norm).

The update of one step, with inputs ``x_t`` of shape ``(B, D)`` and state ``h`` of shape
``(B, H)``, is ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["rnn_forward", "RNN", "clip_grad_norm"]


def rnn_forward(
    inputs: torch.Tensor,
    h0: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a tanh RNN over ``inputs`` ``(B, T, D)`` from the state ``h0`` ``(B, H)``.

    ``weight_ih`` is ``(H, D)``, ``weight_hh`` is ``(H, H)``, the biases are ``(H,)``
    (the shapes of ``nn.RNN``). Returns every state, ``(B, T, H)``, and the last one,
    ``(B, H)``.
    """
    input_part = inputs @ weight_ih.T + bias_ih  # (B, T, H): all steps at once
    h = h0  # (B, H)
    states = []
    for t in range(inputs.size(1)):
        h = torch.tanh(input_part[:, t] + h @ weight_hh.T + bias_hh)  # (B, H)
        states.append(h)
    return torch.stack(states, dim=1), h  # (B, T, H), (B, H)


class RNN(nn.Module):
    """A single-layer tanh RNN with batch-first inputs, built on :func:`rnn_forward`.

    Parameters have the names, shapes and initialisation (uniform in
    ``[-1/sqrt(H), 1/sqrt(H)]``) of
    ``nn.RNN(input_size, hidden_size, batch_first=True)``. ``forward(x, h0=None)`` takes
    ``x`` ``(B, T, D)`` and ``h0`` ``(1, B, H)`` and returns
    ``(outputs (B, T, H), h_n (1, B, H))``, like ``nn.RNN``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.size(-1) != self.input_size:
            raise ValueError(
                f"expected inputs of shape (B, T, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        batch = x.size(0)
        if h0 is None:
            h0 = x.new_zeros(1, batch, self.hidden_size)
        if tuple(h0.shape) != (1, batch, self.hidden_size):
            raise ValueError(
                f"expected h0 of shape (1, {batch}, {self.hidden_size}) like nn.RNN, "
                f"got {tuple(h0.shape)}"
            )
        outputs, h_n = rnn_forward(
            x,
            h0[0],
            self.weight_ih_l0,
            self.weight_hh_l0,
            self.bias_ih_l0,
            self.bias_hh_l0,
        )
        return outputs, h_n.unsqueeze(0)  # (B, T, H), (1, B, H)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first=True"


def clip_grad_norm(
    parameters: torch.Tensor | Iterable[torch.Tensor], max_norm: float
) -> torch.Tensor:
    """Scale all gradients in place so that their global 2-norm is at most ``max_norm``.

    The global norm is the norm of all gradient entries seen as one vector. When it
    exceeds ``max_norm`` every gradient is multiplied by
    ``max_norm / (total_norm + 1e-6)``; otherwise nothing changes. Parameters whose
    ``.grad`` is ``None`` are skipped; a single tensor is accepted. Returns the total
    norm *before* clipping, as a tensor.
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]  # a single pass
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([g.norm() for g in grads])  # the norm of each tensor
    total_norm = norms.norm()  # = sqrt(sum of all squared entries)
    scale = (max_norm / (total_norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale)  # in place: p.grad stays the same tensor
    return total_norm
