"""seqbook.set_seed and seqbook.get_device."""

import random

import numpy as np
import pytest
import torch

import seqbook
from seqbook.runtime import GPURequiredError


def test_set_seed_makes_all_generators_repeat():
    seqbook.set_seed(123)
    first = (random.random(), np.random.rand(), torch.rand(3))
    seqbook.set_seed(123)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])


@pytest.mark.parametrize("bad", [1.5, "0", None, True])
def test_set_seed_rejects_non_integers(bad):
    with pytest.raises(TypeError, match="seed must be an int"):
        seqbook.set_seed(bad)


def test_seqbook_seed_shifts_every_seed_the_book_asks_for(monkeypatch):
    monkeypatch.delenv("SEQBOOK_SEED", raising=False)
    assert seqbook.seed_for(5) == 5
    seqbook.set_seed(0)
    unshifted = torch.rand(3)
    from_generator = torch.rand(3, generator=seqbook.generator(7))
    monkeypatch.setenv("SEQBOOK_SEED", "2")
    assert seqbook.seed_for(5) == 7
    seqbook.set_seed(0)
    assert not torch.equal(torch.rand(3), unshifted)
    seqbook.set_seed(-2)  # shifted back to 0: the same draw as before
    assert torch.equal(torch.rand(3), unshifted)
    assert torch.equal(torch.rand(3, generator=seqbook.generator(5)), from_generator)
    assert seqbook.generator(5).device.type == "cpu"


def test_seqbook_seed_must_be_an_integer(monkeypatch):
    monkeypatch.setenv("SEQBOOK_SEED", "one")
    with pytest.raises(ValueError, match="SEQBOOK_SEED must be an integer, got 'one'"):
        seqbook.set_seed(0)


def test_get_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.delenv("REQUIRE_GPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert seqbook.get_device() == torch.device("cpu")


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_get_device_refuses_cpu_when_gpu_required(monkeypatch, value):
    monkeypatch.setenv("REQUIRE_GPU", value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        GPURequiredError, match="REQUIRE_GPU=1 but PyTorch sees no usable CUDA"
    ):
        seqbook.get_device()


def test_get_device_reports_unusable_cuda(monkeypatch):
    monkeypatch.setenv("REQUIRE_GPU", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def broken_zeros(*args, **kwargs):
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(torch, "zeros", broken_zeros)
    with pytest.raises(GPURequiredError, match="cannot be used: CUDA driver"):
        seqbook.get_device()


def test_get_device_uses_cuda_when_present():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    assert seqbook.get_device().type == "cuda"
