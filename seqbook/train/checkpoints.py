"""Saving and reading the book's trained models: one format, one pair of functions.

A checkpoint is one file written by :func:`save_checkpoint`: the model's configuration
(``model.config``, the keyword arguments of its class), its weights as float32 CPU
tensors, what else the model needs to be used (its vocabularies, as lists of tokens)
and ``info`` (how, where and how long it was trained). :func:`read_checkpoint` loads it
with ``weights_only=True`` -- tensors and plain containers, never code -- and each model
module rebuilds its model from that
(``seqbook.models.seq2seq_attention.load_checkpoint``,
``seqbook.models.transformer_seq2seq.load_checkpoint``). The checkpoints that ship with
the package live in ``seqbook/checkpoints`` and are named without their suffix.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["CHECKPOINT_DIR", "checkpoint_path", "read_checkpoint", "save_checkpoint"]

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


def checkpoint_path(name_or_path: str | Path) -> Path:
    """A path as given, or the shipped checkpoint called ``name``
    (``"dates_attention"``)."""
    path = Path(name_or_path)
    return path if path.suffix else CHECKPOINT_DIR / f"{name_or_path}.pt"


def save_checkpoint(
    path: str | Path, model: nn.Module, info: dict | None = None, **contents
) -> None:
    """Write ``model`` (configuration and float32 weights), ``contents`` (for example
    ``itos=vocab.itos``) and ``info`` to ``path``."""
    state = {
        name: value.detach().cpu().float()
        if value.is_floating_point()
        else value.detach().cpu()
        for name, value in model.state_dict().items()
    }
    reserved = {"config", "state_dict", "info"} & set(contents)
    if reserved:
        raise ValueError(f"{sorted(reserved)} are written by save_checkpoint itself")
    torch.save(
        {
            "config": model.config,
            "state_dict": state,
            **{name: list(value) for name, value in contents.items()},
            "info": dict(info or {}),
        },
        path,
    )


def read_checkpoint(
    name_or_path: str | Path, device: torch.device | str = "cpu"
) -> dict:
    """The contents of a checkpoint file (a path, or the name of a shipped one), its
    tensors on ``device``."""
    return torch.load(
        checkpoint_path(name_or_path), map_location=device, weights_only=True
    )
