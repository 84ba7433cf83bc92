"""The checks of the section "Residual connections and layer normalisation": they accept
correct answers written in several ways (repeatedly, in hidden mode), reject each
classic mistake with a message that names it, survive stubs and bad input, and refuse
the built-ins and the book's references."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqbook.checks import residual_connections_and_layer_norm as ln_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall
from seqbook.models import transformer as reference

# ------------------------------------------------------------- layer norm answers
# Written out independently of seqbook.models.transformer (forbidden while answers run).


def layer_norm_answer(
    variance="biased",
    epsilon="inside",
    axis=-1,
    affine="w*x+b",
    names=("weight", "bias"),
    use_given_eps=True,
    start=(1.0, 0.0),
):
    class LayerNorm(nn.Module):
        def __init__(self, dim, eps=1e-5):
            super().__init__()
            self.eps = eps if use_given_eps else 1e-5
            if names:
                setattr(self, names[0], nn.Parameter(torch.full((dim,), start[0])))
                setattr(self, names[1], nn.Parameter(torch.full((dim,), start[1])))

        def forward(self, x):
            mean = x.mean(dim=axis, keepdim=True)
            if variance == "biased":
                var = x.var(dim=axis, keepdim=True, unbiased=False)
            else:
                var = x.var(dim=axis, keepdim=True)
            if epsilon == "inside":
                normalised = (x - mean) / torch.sqrt(var + self.eps)
            elif epsilon == "outside":
                normalised = (x - mean) / (var.sqrt() + self.eps)
            else:
                normalised = (x - mean) / var.sqrt()
            if not names or affine == "none":
                return normalised
            weight, bias = getattr(self, names[0]), getattr(self, names[1])
            if affine == "w*x+b":
                return normalised * weight + bias
            return (normalised + bias) * weight

    return LayerNorm


class LayerNormRsqrt(nn.Module):
    """A correct answer in another style: rsqrt and a variance from squares."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        inverse = torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.bias + self.weight * centred * inverse


class LayerNormBuiltin(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return torch.nn.functional.layer_norm(
            x, x.shape[-1:], self.weight, self.bias, self.eps
        )


class LayerNormStub(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        raise NotImplementedError()


@pytest.mark.parametrize("answer", [layer_norm_answer(), LayerNormRsqrt])
def test_correct_layer_norms_pass_repeatedly(answer, capsys):
    ln_checks.check_layer_norm(answer)
    for _ in range(20):
        ln_checks.check_layer_norm(answer, hidden=True)
    assert capsys.readouterr().out.count("✔") == 21


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "answer, words",
    [
        (layer_norm_answer(variance="unbiased"), "unbiased"),
        (layer_norm_answer(epsilon="outside"), "inside the square root"),
        (layer_norm_answer(use_given_eps=False), "ignored"),
        (layer_norm_answer(axis=0), "batch axis"),
        (layer_norm_answer(axis=-2), "time axis"),
        (layer_norm_answer(affine="none"), "not applied"),
        (layer_norm_answer(affine="b first"), "bias is added before"),
        (layer_norm_answer(names=()), "no parameters"),
        (layer_norm_answer(names=("gamma", "beta")), "['beta', 'gamma']"),
        (layer_norm_answer(start=(0.0, 0.0)), "should start at 1"),
    ],
)
def test_layer_norm_mistakes_are_named(answer, words, hidden):
    for _ in range(5 if hidden else 1):
        with pytest.raises(CheckFailure, match=None) as info:
            ln_checks.check_layer_norm(answer, hidden=hidden)
        assert words in str(info.value), str(info.value)


def test_layer_norm_without_eps_is_caught():
    with pytest.raises(CheckFailure) as info:
        ln_checks.check_layer_norm(layer_norm_answer(epsilon="none"), hidden=True)
    message = str(info.value)
    assert "eps" in message and (
        "inside the square root" in message or "NaN" in message
    )


def test_layer_norm_builtins_and_reference_are_refused():
    with pytest.raises(ForbiddenCall, match="layer_norm"):
        ln_checks.check_layer_norm(LayerNormBuiltin)
    with pytest.raises(ForbiddenCall, match="seqbook.models.transformer.LayerNorm"):
        ln_checks.check_layer_norm(reference.LayerNorm)
    with pytest.raises(ForbiddenCall):
        ln_checks.check_layer_norm(nn.LayerNorm)

    class Wrapper(nn.Module):  # an alias captured before the check
        inner = reference.LayerNorm

        def __init__(self, dim, eps=1e-5):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))
            self.bias = nn.Parameter(torch.zeros(dim))
            self.eps = eps

        def forward(self, x):
            helper = self.inner.__new__(self.inner)
            nn.Module.__init__(helper)
            helper.weight, helper.bias, helper.eps = self.weight, self.bias, self.eps
            return type(helper).forward(helper, x)

    with pytest.raises(ForbiddenCall, match="seqbook.models.transformer.LayerNorm"):
        ln_checks.check_layer_norm(Wrapper)


def test_layer_norm_stub_and_bad_input_give_clear_messages():
    with pytest.raises(CheckFailure, match="NotImplementedError"):
        ln_checks.check_layer_norm(LayerNormStub)
    with pytest.raises(CheckFailure, match="class derived from nn.Module"):
        ln_checks.check_layer_norm(None)
    with pytest.raises(CheckFailure, match="class derived from nn.Module"):
        ln_checks.check_layer_norm(lambda dim: None)


# ---------------------------------------------------------------- block answers


def block_answer(kind="pre"):
    def pre_ln_block(x, self_attention, feed_forward, norm1, norm2):
        if kind == "pre":
            x = x + self_attention(norm1(x))
            return x + feed_forward(norm2(x))
        if kind == "pre-inplace":
            x += self_attention(norm1(x))
            return x + feed_forward(norm2(x))
        if kind == "post":
            x = norm1(x + self_attention(x))
            return norm2(x + feed_forward(x))
        if kind == "sum":
            return norm1(x + self_attention(x)) + norm2(x + feed_forward(x))
        if kind == "parallel":
            return x + self_attention(norm1(x)) + feed_forward(norm2(x))
        if kind == "normalised-residual":
            h = norm1(x)
            x = h + self_attention(h)
            h = norm2(x)
            return h + feed_forward(h)
        if kind == "no-attention-residual":
            x = self_attention(norm1(x))
            return x + feed_forward(norm2(x))
        if kind == "no-ffn-residual":
            x = x + self_attention(norm1(x))
            return feed_forward(norm2(x))
        if kind == "final-ln":
            x = x + self_attention(norm1(x))
            return norm2(x + feed_forward(norm2(x)))
        if kind == "ln-again":
            x = x + self_attention(norm1(x))
            x = x + feed_forward(norm2(x))
            return norm2(x)
        if kind == "swapped-norms":
            x = x + self_attention(norm2(x))
            return x + feed_forward(norm1(x))
        if kind == "ffn-first":
            x = x + feed_forward(norm2(x))
            return x + self_attention(norm1(x))
        raise NotImplementedError()

    return pre_ln_block


def test_correct_block_passes_repeatedly(capsys):
    ln_checks.check_pre_ln_block(block_answer())
    for _ in range(20):
        ln_checks.check_pre_ln_block(block_answer(), hidden=True)
    assert capsys.readouterr().out.count("✔") == 21


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "kind, words",
    [
        ("post", "post-LN wiring"),
        ("sum", "residual counted twice"),
        ("parallel", "in sequence"),
        ("normalised-residual", "adds the normalised input"),
        ("no-attention-residual", "attention step has no residual"),
        ("no-ffn-residual", "feed-forward step has no residual"),
        ("final-ln", "applied again"),
        ("ln-again", "applied again"),
        ("swapped-norms", "swapped"),
        ("ffn-first", "runs before the attention"),
        ("pre-inplace", "in place"),
    ],
)
def test_block_mistakes_are_named(kind, words, hidden):
    for _ in range(5 if hidden else 1):
        with pytest.raises(CheckFailure) as info:
            ln_checks.check_pre_ln_block(block_answer(kind), hidden=hidden)
        assert words in str(info.value), str(info.value)


def test_block_stub_reference_and_bad_input():
    with pytest.raises(CheckFailure, match="NotImplementedError"):
        ln_checks.check_pre_ln_block(block_answer("stub"))
    with pytest.raises(ForbiddenCall, match="seqbook.models.transformer.pre_ln_block"):
        ln_checks.check_pre_ln_block(reference.pre_ln_block)
    with pytest.raises(CheckFailure, match="None"):
        ln_checks.check_pre_ln_block(lambda *args: None)
    with pytest.raises(CheckFailure, match="expected a function"):
        ln_checks.check_pre_ln_block(None)


def test_rounding_in_a_correct_answer_is_never_named_a_mistake():
    # Regression: a nearly constant float32 row far from 0 made a correct answer differ
    # from nn.LayerNorm by rounding, and the diagnosis called it "eps ignored" (with eps
    # at its default, that variant *is* the right answer).
    from seqbook.checks import residual_connections_and_layer_norm as module
    from seqbook.models.transformer import LayerNorm as Reference

    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        x = torch.randn(3, 3, 4, generator=generator) * 8 - 5
        x[0, 0] = -5 + 1e-3 * torch.randn(4, generator=generator)
        weight, bias = (
            torch.randn(4, generator=generator),
            torch.randn(4, generator=generator),
        )
        layer = Reference(4)
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        assert (
            module._diagnose_layer_norm(layer(x).detach(), x, weight, bias, 1e-5)
            is None
        )
    spread = module._well_conditioned(torch.zeros(5, 2)).std(dim=-1, unbiased=False)
    assert bool((spread >= 0.3).all())
