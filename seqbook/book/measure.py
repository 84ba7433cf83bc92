"""Measuring what a computation costs: wall-clock time and peak tensor memory.

Both work the same on CPU and GPU, so a notebook's measurements run unchanged on either.
"""

from __future__ import annotations

import statistics
import time
import weakref
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["median_seconds", "peak_tensor_bytes"]


def _synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs, after ``warmup``
    runs."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        fn()
    _synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of tensors created by PyTorch operators while they are alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        result = func(*args, **(kwargs or {}))
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        for output in outputs:
            # A view shares memory with its base: count only tensors with storage of
            # their own.
            if isinstance(output, torch.Tensor) and not output._is_view():
                nbytes = output.untyped_storage().nbytes()
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(output, self._release, nbytes)
        return result


def peak_tensor_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes held by tensors that ``fn()`` creates, counted operator by operator.

    It sees the tensors each PyTorch operator returns (not a fused kernel's private
    scratch space), which is the memory that grows with the problem size.
    """
    with torch.no_grad():
        mode = _LiveTensorBytes()
        with mode:
            result = fn()
        del result
    return mode.peak
