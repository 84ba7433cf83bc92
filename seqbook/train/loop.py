"""The training loop every section's model trains with.

It does what each section's loop would repeat -- sample a batch, forward, loss,
backward, optional clipping by global norm, optimiser and learning-rate scheduler step,
record -- for a fixed number of steps, never for a time, so a run is the same on a fast
and a busy machine. What differs between sections lives in the arguments: how a batch
is drawn (``next_batch``, which may walk through shuffled epochs), the loss, the
schedule, and ``on_step`` for logging or evaluating along the way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["TrainingLog", "train", "language_model_batch"]


@dataclass
class TrainingLog:
    """What happened during training: loss per step and elapsed seconds per step."""

    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.losses)


def train(
    model: torch.nn.Module,
    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int,
    clip_norm: float | None = None,
    log: TrainingLog | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainingLog:
    """Train ``model`` for exactly ``steps`` steps, then leave it in evaluation mode.

    Training length is a step count, never a time: the same run on a fast or a busy
    machine (the benchmark, not the notebook, watches the clock).

    ``next_batch()`` returns ``(inputs, targets)``; ``loss_fn(model, inputs, targets)``
    returns a scalar loss. ``scheduler.step()`` follows every optimiser step;
    ``on_step(step, loss)`` is called after it, with the number of steps of this call
    so far (1, 2, ...); it may evaluate the model. Pass an existing ``log`` to continue
    a run.
    """
    log = log if log is not None else TrainingLog()
    offset = log.seconds[-1] if log.seconds else 0.0
    start = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        inputs, targets = next_batch()
        loss = loss_fn(model, inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        log.losses.append(loss.item())
        log.seconds.append(offset + time.perf_counter() - start)
        if on_step is not None:
            on_step(step, log.losses[-1])
            model.train()  # in case on_step evaluated the model
    model.eval()
    return log


def language_model_batch(
    ids: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D token tensor: inputs ``(B, T)`` and targets shifted by
    one."""
    if ids.dim() != 1 or len(ids) <= seq_len:
        raise ValueError(
            f"need a 1-D tensor longer than seq_len={seq_len}, "
            f"got shape {tuple(ids.shape)}"
        )
    starts = torch.randint(0, len(ids) - seq_len, (batch_size,), generator=generator)
    offsets = torch.arange(seq_len + 1)
    windows = ids[starts[:, None] + offsets]  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]
