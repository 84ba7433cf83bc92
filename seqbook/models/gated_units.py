"""Gated recurrent cells written from tensor primitives: the LSTM and the GRU.

The functions :func:`lstm_cell` and :func:`gru_cell` are the *single source* of the
solutions to the exercises of the section "Gated units: LSTM and GRU"
(``tests/book/test_sync.py`` checks that the solution cells define exactly these
functions). The modules :class:`LSTMCell` and :class:`GRUCell` wrap them with PyTorch's
parameter names, shapes, gate order and initialisation, so that::

    cell = LSTMCell(8, 16)
    cell.load_state_dict(torch.nn.LSTMCell(8, 16).state_dict())

gives a cell that computes what ``torch.nn.LSTMCell`` computes. The equations, with
``W_ih = [W_ii; W_if; W_ig; W_io]`` stacked in that order (rows), are

LSTM (gate order i, f, g, o)::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         candidate
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g
    h' = o * tanh(c')

GRU (gate order r, z, n)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)      update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   candidate
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["lstm_cell", "gru_cell", "LSTMCell", "GRUCell"]


def lstm_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor | None,
    bias_hh: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step: ``(h_new, c_new)`` from input ``x`` and state ``(h, c)``.

    Args:
        x: ``(B, I)`` or ``(I,)``.
        h, c: ``(B, H)`` or ``(H,)``.
        weight_ih: ``(4H, I)``, weight_hh: ``(4H, H)``, rows in gate order i, f, g, o.
        bias_ih, bias_hh: ``(4H,)``, or ``None`` for a cell without biases.
    """
    gates = x @ weight_ih.T + h @ weight_hh.T  # (B, 4H)
    if bias_ih is not None:
        gates = gates + bias_ih + bias_hh
    i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H)
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    g = torch.tanh(g)
    c_new = f * c + i * g  # the additive memory path
    h_new = o * torch.tanh(c_new)
    return h_new, c_new


def gru_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor | None,
    bias_hh: torch.Tensor | None,
) -> torch.Tensor:
    """One GRU step: ``h_new`` from input ``x`` and state ``h``.

    Args:
        x: ``(B, I)`` or ``(I,)``.
        h: ``(B, H)`` or ``(H,)``.
        weight_ih: ``(3H, I)``, weight_hh: ``(3H, H)``, rows in gate order r, z, n.
        bias_ih, bias_hh: ``(3H,)``, or ``None`` for a cell without biases.
    """
    from_input = x @ weight_ih.T  # (B, 3H)
    from_hidden = h @ weight_hh.T  # (B, 3H)
    if bias_ih is not None:
        from_input = from_input + bias_ih
        from_hidden = from_hidden + bias_hh
    x_r, x_z, x_n = from_input.chunk(3, dim=-1)  # each (B, H)
    h_r, h_z, h_n = from_hidden.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)  # the reset gate scales W_hn h + b_hn
    return (1 - z) * n + z * h


class _GatedCell(nn.Module):
    """Parameters and initialisation shared by the two cells (``n_gates`` blocks)."""

    n_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        rows = self.n_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **factory))
            self.bias_hh = nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, as PyTorch does."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"

    def _check_input(self, input: torch.Tensor) -> None:
        if input.dim() not in (1, 2):
            raise ValueError(
                f"{type(self).__name__}: expected input to be 1-D (unbatched) or 2-D "
                f"(batched), got a {input.dim()}-D tensor"
            )
        if input.size(-1) != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: input has {input.size(-1)} features, "
                f"expected input_size={self.input_size}"
            )

    def _zeros(self, input: torch.Tensor) -> torch.Tensor:
        return torch.zeros(
            *input.shape[:-1], self.hidden_size, dtype=input.dtype, device=input.device
        )


class LSTMCell(_GatedCell):
    """An LSTM cell with the interface of :class:`torch.nn.LSTMCell`.

    ``forward(input, hx=None)`` takes ``input`` of shape ``(B, I)`` or ``(I,)`` and an
    optional state ``hx = (h, c)`` (zeros when ``None``), and returns ``(h', c')``.
    """

    n_gates = 4

    def forward(
        self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_input(input)
        if hx is None:
            hx = (self._zeros(input), self._zeros(input))
        h, c = hx
        return lstm_cell(
            input, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        )


class GRUCell(_GatedCell):
    """A GRU cell with the interface of :class:`torch.nn.GRUCell`.

    ``forward(input, hx=None)`` takes ``input`` of shape ``(B, I)`` or ``(I,)`` and an
    optional state ``hx`` (zeros when ``None``), and returns ``h'``.
    """

    n_gates = 3

    def forward(
        self, input: torch.Tensor, hx: torch.Tensor | None = None
    ) -> torch.Tensor:
        self._check_input(input)
        if hx is None:
            hx = self._zeros(input)
        return gru_cell(
            input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        )
