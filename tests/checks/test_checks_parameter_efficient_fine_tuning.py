"""The checks of the section "Parameter-efficient fine-tuning and prompting": they
accept correct answers written in several ways (repeatedly, in hidden mode), reject each
classic mistake with a message that names it, survive stubs and bad input, and refuse
the book's references."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqbook.checks import parameter_efficient_fine_tuning as lora_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall
from seqbook.models import parameter_efficient_fine_tuning as reference

# ----------------------------------------------------------------- LoRALinear answers
# Written out independently of seqbook.models.parameter_efficient_fine_tuning (forbidden
# while answers run).


def lora_answer(
    scaling="alpha/r",
    b_start="zeros",
    a_start="randn",
    freeze=True,
    guard_forward=True,
    guard_merge=True,
    product="right",
    merge_sign=1.0,
    merge_product="BA",
    copy_base=False,
    a_shape="r,in",
    scaling_attribute=None,
):
    factors = {
        "alpha/r": lambda a, r: a / r,
        "alpha": lambda a, r: a,
        "1/r": lambda a, r: 1 / r,
        "alpha*r": lambda a, r: a * r,
        "none": lambda a, r: 1.0,
    }

    class LoRALinear(nn.Module):
        def __init__(self, base, r=8, alpha=16.0):
            super().__init__()
            self.base = copy.deepcopy(base) if copy_base else base
            self.r, self.alpha = r, alpha
            self.scaling = factors[scaling](alpha, r)
            if scaling_attribute is not None:
                self.scaling = factors[scaling_attribute](alpha, r)
            self._factor = factors[scaling](alpha, r)
            self.merged = False
            if freeze:
                for p in self.base.parameters():
                    p.requires_grad_(False)
            shape = (
                (r, base.in_features) if a_shape == "r,in" else (base.in_features, r)
            )
            a = torch.randn(*shape, dtype=base.weight.dtype) / math.sqrt(
                base.in_features
            )
            if a_start == "zeros":
                a = torch.zeros_like(a)
            self.lora_A = nn.Parameter(a)
            b = torch.zeros(base.out_features, r, dtype=base.weight.dtype)
            if b_start == "randn":
                b = torch.randn_like(b)
            self.lora_B = nn.Parameter(b)

        def forward(self, x):
            out = self.base(x)
            if self.merged and guard_forward:
                return out
            if product == "right":
                update = x @ self.lora_A.T @ self.lora_B.T
            else:  # x B A: the transposed product
                update = x @ self.lora_B @ self.lora_A
            return out + self._factor * update

        def merge(self):
            if self.merged and guard_merge:
                return
            delta = self.lora_B @ self.lora_A
            if merge_product == "(BA)^T":
                delta = delta.T
            with torch.no_grad():
                self.base.weight += merge_sign * self._factor * delta
            self.merged = True

    return LoRALinear


class LoRAFunctional(nn.Module):
    """A correct answer in another style: F.linear with W + s B A, merge that zeroes
    B."""

    def __init__(self, base, r=8, alpha=16.0):
        super().__init__()
        self.base = base
        base.requires_grad_(False)
        self.scaling = alpha / r
        self.merged = False
        self.lora_A = nn.Parameter(
            torch.randn(r, base.in_features, dtype=base.weight.dtype)
        )
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, r, dtype=base.weight.dtype)
        )

    def forward(self, x):
        weight = self.base.weight + self.scaling * self.lora_B @ self.lora_A
        if self.merged:
            weight = self.base.weight
        return F.linear(x, weight, self.base.bias)

    def merge(self):
        if not self.merged:
            self.base.weight.data.add_(
                self.scaling * self.lora_B.data @ self.lora_A.data
            )
            self.merged = True


class LoRAStub(nn.Module):
    def __init__(self, base, r=8, alpha=16.0):
        super().__init__()
        raise NotImplementedError()


class LoRASubclass(reference.LoRALinear):
    pass


class LoRACallsReference(nn.Module):
    def __init__(self, base, r=8, alpha=16.0):
        super().__init__()
        self.inner = reference.LoRALinear(base, r, alpha)


@pytest.mark.parametrize(
    "answer",
    [lora_answer(), LoRAFunctional, reference.LoRALinear],
    ids=["plain", "functional", "reference-source"],
)
def test_correct_lora_passes_visible_and_hidden(answer, capsys):
    if answer is reference.LoRALinear:
        # The reference's own code, redefined outside seqbook (the solution cell).
        namespace = {}
        import inspect

        exec(
            inspect.getsource(reference.LoRALinear),
            {"nn": nn, "torch": torch, "math": math},
            namespace,
        )
        answer = namespace["LoRALinear"]
    lora_checks.check_lora_linear(answer)
    for _ in range(25):
        lora_checks.check_lora_linear(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, words",
    [
        (lora_answer(b_start="randn"), "lora_B is not zero at initialisation"),
        (lora_answer(a_start="zeros"), "lora_A is all zeros"),
        (lora_answer(scaling="alpha"), "alpha alone"),
        (lora_answer(scaling="1/r"), "1 / r"),
        (lora_answer(scaling="alpha*r"), "alpha * r"),
        (lora_answer(scaling="alpha", scaling_attribute="alpha/r"), "alpha alone"),
        (lora_answer(freeze=False), "not frozen"),
        (lora_answer(guard_forward=False), "added twice"),
        (lora_answer(guard_merge=False), "merge() twice"),
        (lora_answer(copy_base=True), "same object"),
        (lora_answer(a_shape="in,r"), "(transposed)"),
        (lora_answer(merge_sign=0.0), "did not change base.weight"),
    ],
)
@pytest.mark.parametrize("hidden", [False, True])
def test_lora_mistakes_are_named(answer, words, hidden):
    for _ in range(5 if hidden else 1):
        with pytest.raises(
            CheckFailure,
            match=words.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*"),
        ):
            lora_checks.check_lora_linear(answer, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
def test_transposed_products_are_named(hidden):
    # The first layer checked is square, so x B A and (B A)^T run and are recognised.
    with pytest.raises(CheckFailure, match="the product is transposed"):
        lora_checks.check_lora_linear(lora_answer(product="transposed"), hidden=hidden)
    with pytest.raises(CheckFailure, match="not its transpose"):
        lora_checks.check_lora_linear(
            lora_answer(merge_product="(BA)^T"), hidden=hidden
        )


def test_transposed_product_variant_on_square_inputs():
    x = torch.randn(3, 5, dtype=torch.float64)
    a, b = (
        torch.randn(2, 5, dtype=torch.float64),
        torch.randn(5, 2, dtype=torch.float64),
    )
    variants = lora_checks._update_variants(x, a, b, 2, 8.0)
    assert any("transposed" in name for name in variants)


def test_lora_stub_and_bad_input_give_clear_messages():
    with pytest.raises(CheckFailure, match="NotImplementedError"):
        lora_checks.check_lora_linear(LoRAStub)
    with pytest.raises(CheckFailure, match="class derived from nn.Module"):
        lora_checks.check_lora_linear(None)
    with pytest.raises(CheckFailure, match="class derived from nn.Module"):
        lora_checks.check_lora_linear(lambda base, r, alpha: None)


def test_lora_reference_is_forbidden():
    with pytest.raises(ForbiddenCall):
        lora_checks.check_lora_linear(LoRASubclass)
    with pytest.raises(
        ForbiddenCall, match="seqbook.models.parameter_efficient_fine_tuning.LoRALinear"
    ):
        lora_checks.check_lora_linear(LoRACallsReference)


# ------------------------------------------------------------------ mean pool answers


def pool_plain(hidden, mask):
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


def pool_einsum(hidden, mask):
    m = mask.to(hidden.dtype)
    return torch.einsum("btd,bt->bd", hidden, m) / m.sum(dim=1, keepdim=True)


def pool_masked_fill(hidden, mask):
    real = mask.bool().unsqueeze(-1)
    total = hidden.masked_fill(~real, 0.0).sum(dim=1)
    return total / real.sum(dim=1).to(hidden.dtype)


@pytest.mark.parametrize(
    "answer", [pool_plain, pool_einsum, pool_masked_fill, reference.mean_pool]
)
def test_correct_mean_pool_passes(answer, capsys):
    if answer is reference.mean_pool:  # its code under another name (not forbidden)

        def answer(hidden, mask):
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            total = (hidden * weights).sum(dim=1)
            return total / weights.sum(dim=1).clamp(min=1e-9)

    lora_checks.check_mean_pool(answer)
    for _ in range(25):
        lora_checks.check_mean_pool(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


def _weights(hidden, mask):
    return mask.unsqueeze(-1).to(hidden.dtype)


@pytest.mark.parametrize(
    "answer, words",
    [
        (lambda h, m: h.mean(dim=1), "padding is averaged in"),
        (lambda h, m: (h * _weights(h, m)).sum(1) / h.shape[1], "padded length T"),
        (lambda h, m: h[:, 0], r"\[CLS\]"),
        (lambda h, m: (h * _weights(h, m)).sum(1), "not divided"),
        (lambda h, m: F.normalize(pool_plain(h, m), dim=-1), "L2-normalised"),
        (lambda h, m: (h * _weights(h, m)).mean(dim=-1), "averaged over the features"),
        (
            lambda h, m: (
                pool_plain(h, m).float()
                if h.dtype == torch.float64
                else pool_plain(h, m).double()
            ),
            "dtype",
        ),
        (lambda h, m: h.masked_fill(_weights(h, m) == 0, -1e9).amax(dim=1), "max"),
    ],
)
@pytest.mark.parametrize("hidden", [False, True])
def test_mean_pool_mistakes_are_named(answer, words, hidden):
    for _ in range(5 if hidden else 1):
        with pytest.raises(CheckFailure, match=words):
            lora_checks.check_mean_pool(answer, hidden=hidden)


def test_integer_division_dtype_error_is_reported():
    def clamped_int(hidden, mask):  # clamps the integer count with a float bound
        weights = mask.unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9).long() // 1

    with pytest.raises(CheckFailure):
        lora_checks.check_mean_pool(clamped_int)


def test_mean_pool_in_place_stub_and_forbidden():
    def in_place(hidden, mask):
        hidden.mul_(mask.unsqueeze(-1).to(hidden.dtype))
        return hidden.sum(1) / mask.sum(1, keepdim=True)

    with pytest.raises(CheckFailure, match="in place"):
        lora_checks.check_mean_pool(in_place)

    def stub(hidden, mask):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        lora_checks.check_mean_pool(stub)
    with pytest.raises(CheckFailure, match="None"):
        lora_checks.check_mean_pool(lambda h, m: None)

    def uses_reference(hidden, mask):
        return reference.mean_pool(hidden, mask)

    with pytest.raises(ForbiddenCall):
        lora_checks.check_mean_pool(uses_reference)

    from seqbook.models.transformer_from_blocks import masked_mean_pool

    with pytest.raises(ForbiddenCall):
        lora_checks.check_mean_pool(lambda h, m: masked_mean_pool(h, m.bool()))


def test_sentence_transformers_pooling_is_forbidden():
    pytest.importorskip("sentence_transformers")
    from sentence_transformers.models import Pooling

    def via_library(hidden, mask):
        pool = Pooling(hidden.shape[-1], pooling_mode="mean")
        features = {"token_embeddings": hidden, "attention_mask": mask}
        return pool(features)["sentence_embedding"]

    with pytest.raises(ForbiddenCall):
        lora_checks.check_mean_pool(via_library)
