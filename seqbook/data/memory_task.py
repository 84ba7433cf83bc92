"""A long-gap memory task: remember the first token, answer after ``gap`` more tokens.

Each example is a sequence of ``gap + 1`` tokens drawn uniformly from ``n_symbols``
symbols. The **first** token is the one to remember; the ``gap`` tokens after it are
distractors drawn from the *same* symbols, so the model cannot tell them apart by
identity -- only by position. After reading the whole sequence the model must name the
first token. A model that has forgotten it can do no better than chance,
``1 / n_symbols``.

The gradient that teaches a model to keep the first token has to travel back through
all ``gap`` steps, which is exactly where a plain RNN's gradient vanishes. The section
"Gated units: LSTM and GRU" trains :class:`MemoryClassifier` models on this task with
:func:`train_memory_model` and compares architectures with :func:`memory_accuracy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbook import runtime
from seqbook.train.loop import TrainingLog, train

__all__ = [
    "memory_batch",
    "MemoryClassifier",
    "train_memory_model",
    "memory_accuracy",
]


def memory_batch(
    batch_size: int,
    gap: int,
    n_symbols: int = 8,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of the memory task.

    Returns ``tokens`` of shape ``(B, gap + 1)`` (integers in ``[0, n_symbols)``) and
    ``targets`` of shape ``(B,)``, where ``targets == tokens[:, 0]``. Random numbers
    come from ``generator`` (a CPU generator) so batches are reproducible; the tensors
    are then moved to ``device``.
    """
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    if n_symbols < 2:
        raise ValueError(f"need at least 2 symbols, got {n_symbols}")
    tokens = torch.randint(0, n_symbols, (batch_size, gap + 1), generator=generator)
    targets = tokens[:, 0].clone()
    return tokens.to(device), targets.to(device)


class MemoryClassifier(nn.Module):
    """Embedding -> one recurrent layer -> a linear read-out of the last hidden state.

    ``kind`` is ``"rnn"`` (``nn.RNN`` with tanh), ``"lstm"`` (``nn.LSTM``) or ``"gru"``
    (``nn.GRU``). ``keep_bias`` (gated cells only; ``None`` keeps PyTorch's
    initialisation) sets, at initialisation, the total bias of the gate that decides how
    much of the state is *kept* at each step: the LSTM's forget gate ``f``
    (``b_if + b_hf``) or the GRU's update gate ``z`` (``b_iz + b_hz``). Both are the
    second block of ``H`` rows in PyTorch's gate order (i, f, g, o and r, z, n).
    ``recurrent_init`` (plain RNN only; ``None`` keeps PyTorch's initialisation) starts
    the recurrent weights as the identity (``"identity"``, Le et al. 2015: at first the
    state is carried forward unchanged, up to the tanh) or as a random orthogonal
    matrix (``"orthogonal"``, which preserves the length of what it carries), with zero
    biases.
    """

    kinds = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(
        self,
        kind: str,
        n_symbols: int = 8,
        embedding_size: int = 16,
        hidden_size: int = 32,
        keep_bias: float | None = None,
        recurrent_init: str | None = None,
    ) -> None:
        super().__init__()
        if kind not in self.kinds:
            raise ValueError(f"kind must be one of {sorted(self.kinds)}, got {kind!r}")
        if keep_bias is not None and kind == "rnn":
            raise ValueError("a plain RNN has no gate: keep_bias needs 'lstm' or 'gru'")
        if recurrent_init is not None and kind != "rnn":
            raise ValueError(
                "recurrent_init is for the plain RNN ('rnn'); the gated "
                "cells are set up with keep_bias"
            )
        if recurrent_init not in (None, "identity", "orthogonal"):
            raise ValueError(
                "recurrent_init must be None, 'identity' or 'orthogonal', "
                f"got {recurrent_init!r}"
            )
        self.kind = kind
        self.embedding = nn.Embedding(n_symbols, embedding_size)
        self.recurrent = self.kinds[kind](embedding_size, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, n_symbols)
        if keep_bias is not None:
            keep = slice(
                hidden_size, 2 * hidden_size
            )  # f of (i, f, g, o); z of (r, z, n)
            with torch.no_grad():
                self.recurrent.bias_ih_l0[keep] = keep_bias
                self.recurrent.bias_hh_l0[keep] = 0.0
        if recurrent_init is not None:
            with torch.no_grad():
                if recurrent_init == "identity":
                    self.recurrent.weight_hh_l0.copy_(torch.eye(hidden_size))
                else:
                    nn.init.orthogonal_(self.recurrent.weight_hh_l0)
                self.recurrent.bias_ih_l0.zero_()
                self.recurrent.bias_hh_l0.zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_symbols)`` for the first token of each ``(B, T)`` sequence."""
        outputs, _ = self.recurrent(self.embedding(tokens))  # (B, T, H)
        return self.readout(outputs[:, -1])  # (B, n_symbols)


@torch.no_grad()
def memory_accuracy(
    model: nn.Module,
    gap: int,
    n_examples: int = 1000,
    n_symbols: int = 8,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> float:
    """Fraction of fresh examples with this ``gap`` whose first token ``model``
    names."""
    model.eval()
    tokens, targets = memory_batch(n_examples, gap, n_symbols, generator, device)
    return (model(tokens).argmax(dim=-1) == targets).float().mean().item()


def train_memory_model(
    model: nn.Module,
    gap: int,
    max_steps: int = 600,
    lr: float = 1e-2,
    batch_size: int = 64,
    n_symbols: int = 8,
    check_every: int = 50,
    target_accuracy: float = 0.99,
    clip_norm: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> TrainingLog:
    """Train ``model`` on batches of one ``gap`` with Adam and gradient clipping.

    Every ``check_every`` steps the model is scored on a fresh batch of 256 examples;
    training stops early once that accuracy reaches ``target_accuracy`` (there is
    nothing left to learn), otherwise after ``max_steps`` steps. Returns the
    :class:`~seqbook.train.loop.TrainingLog` (one loss per step taken).
    """
    generator = generator if generator is not None else runtime.generator(0)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        return memory_batch(batch_size, gap, n_symbols, generator, device)

    def loss_fn(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor):
        return F.cross_entropy(model(tokens), targets)

    log = TrainingLog()
    while log.steps < max_steps:
        train(
            model,
            next_batch,
            loss_fn,
            optimizer,
            min(check_every, max_steps - log.steps),
            clip_norm=clip_norm,
            log=log,
        )
        if (
            memory_accuracy(model, gap, 256, n_symbols, generator, device)
            >= target_accuracy
        ):
            break
    return log
