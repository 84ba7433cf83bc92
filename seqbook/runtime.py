"""Reproducibility and device selection, used by the set-up cell of every notebook."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = [
    "set_seed",
    "seed_for",
    "seed_shift",
    "generator",
    "get_device",
    "GPURequiredError",
]


class GPURequiredError(RuntimeError):
    """Raised by :func:`get_device` when ``REQUIRE_GPU=1`` but no CUDA device is
    usable."""


def seed_shift() -> int:
    """The shift ``SEQBOOK_SEED`` adds to every seed the book asks for (0 when unset).

    The robustness matrix (``tools/robustness.py``) sets it to rerun each experiment on
    other random draws; a reader never needs it.
    """
    text = os.environ.get("SEQBOOK_SEED", "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"SEQBOOK_SEED must be an integer, got {text!r}") from None


def seed_for(seed: int) -> int:
    """The seed actually used where the book asks for ``seed``: shifted by
    ``SEQBOOK_SEED``."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return seed + seed_shift()


def generator(seed: int) -> torch.Generator:
    """A CPU random generator seeded with ``seed_for(seed)``.

    Random inputs are drawn on the CPU and then moved to the device, so a GPU run sees
    the same numbers as a CPU run.
    """
    return torch.Generator().manual_seed(seed_for(seed))


def set_seed(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators.

    A notebook gives the same numbers every time it runs on the same machine and CPU
    kernel. Other processors, CPU kernels, thread counts and GPUs compute in another
    order and round differently, so trained outcomes vary a little: the book's claims
    are checked over seeds and kernels (``back/robustness.md``). ``SEQBOOK_SEED`` shifts
    the seed (see :func:`seed_for`).
    """
    seed = seed_for(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _gpu_required() -> bool:
    return os.environ.get("REQUIRE_GPU", "").strip().lower() in {"1", "true", "yes"}


def get_device(verbose: bool = False) -> torch.device:
    """Return ``cuda`` when a CUDA device is usable, otherwise ``cpu``.

    With the environment variable ``REQUIRE_GPU=1`` (as on the book's GPU CI runner) a
    missing GPU is an error instead of a silent fall-back to the CPU.
    """
    if torch.cuda.is_available():
        try:
            # is_available() can be true while the driver refuses work; touch the
            # device.
            torch.zeros(1, device="cuda")
            device = torch.device("cuda")
        except RuntimeError as err:
            if _gpu_required():
                raise GPURequiredError(
                    f"REQUIRE_GPU=1 but the CUDA device cannot be used: {err}"
                ) from err
            device = torch.device("cpu")
    elif _gpu_required():
        raise GPURequiredError(
            "REQUIRE_GPU=1 but PyTorch sees no usable CUDA device "
            f"(torch {torch.__version__}, built with CUDA: {torch.version.cuda}). "
            "Install a CUDA build of PyTorch or unset REQUIRE_GPU to run on the CPU."
        )
    else:
        device = torch.device("cpu")
    if verbose:
        print(f"Running on {device}.")
    return device
