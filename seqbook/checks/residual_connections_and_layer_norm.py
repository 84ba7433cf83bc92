"""Checks for the exercises of the section "Residual connections and layer
normalisation".

``check_layer_norm`` builds the student's ``LayerNorm(dim, eps)`` module, gives it the
random weights of an ``nn.LayerNorm`` and compares outputs and gradients, with every
built-in normalisation function and the book's reference disabled (``forbid_calls``).
When it differs it recognises the classic mistakes (the unbiased variance of
``torch.var``, ``eps`` outside the square root or ignored, statistics over the batch or
time axis instead of the features, a missing or misordered affine part, parameters with
other names than ``weight`` and ``bias``) and names them.

``check_pre_ln_block`` calls the student's ``pre_ln_block(x, self_attention,
feed_forward, norm1, norm2)`` with the sub-layers and norms of an
``nn.TransformerEncoderLayer(..., norm_first=True)`` (and of the book's
``EncoderBlock.from_torch`` copy of it), with and without a padding mask, and compares
the result with the PyTorch layer's output. It names the wrong wirings: post-LN, the
"sum of two normalised branches", parallel sub-layers, residuals added to the normalised
input, a missing residual, a layer norm applied again at the end, swapped norms, the
FFN before the attention.

``hidden=False`` is the friendly visible check of the student version. ``hidden=True``
is what the hidden tests call: sizes, weights and inputs are drawn at grading time from
a fresh random seed, and the expected values are computed inside the check.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable

import torch
from torch import nn

from seqbook.checks import integrity
from seqbook.checks._harness import check, guarded_call
from seqbook.checks._harness import close_tensors as _close
from seqbook.checks.core import (
    CheckFailure,
    expect_close,
    expect_tensor,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import ForbiddenCall, existing_paths
from seqbook.models import transformer as _reference_module

__all__ = ["check_layer_norm", "check_pre_ln_block"]

# Captured at import, before any student code can touch the modules.
_ReferenceLayerNorm = _reference_module.LayerNorm
_ReferenceEncoderBlock = _reference_module.EncoderBlock
_reference_pre_ln = _reference_module.pre_ln_block
_TorchLayerNorm = nn.LayerNorm
_TorchEncoderLayer = nn.TransformerEncoderLayer
# Module-level aliases of methods, so that forbid_calls (which takes import paths) can
# recognise them by their code even when they are reached through a subclass or an
# alias.
_reference_layer_norm_forward = _ReferenceLayerNorm.forward
_torch_layer_norm_forward = _TorchLayerNorm.forward
_reference_block_forward = _ReferenceEncoderBlock.forward
_torch_encoder_layer_forward = _TorchEncoderLayer.forward


_HERE = __name__
_LAYER_NORM_BUILTINS = existing_paths(
    (
        "torch.nn.functional.layer_norm",
        "torch.layer_norm",
        "torch.native_layer_norm",
        "torch.nn.functional.group_norm",
        "torch.group_norm",
        "torch.nn.functional.instance_norm",
        "torch.instance_norm",
        "torch.nn.functional.batch_norm",
        "torch.batch_norm",
        "torch.nn.LayerNorm",
        "torch.nn.GroupNorm",
        "seqbook.models.transformer.LayerNorm",
        f"{_HERE}._reference_layer_norm_forward",
        f"{_HERE}._torch_layer_norm_forward",
    )
)
_LAYER_NORM_REASON = (
    "write layer normalisation from tensor primitives (mean, square, "
    "sqrt or rsqrt, and your own weight and bias)."
)
_BLOCK_BUILTINS = existing_paths(
    (
        "torch.nn.TransformerEncoderLayer",
        "torch.nn.TransformerEncoder",
        "seqbook.models.transformer.EncoderBlock",
        "seqbook.models.transformer.pre_ln_block",
        f"{_HERE}._reference_pre_ln",
        f"{_HERE}._reference_block_forward",
        f"{_HERE}._torch_encoder_layer_forward",
    )
)
_BLOCK_REASON = "write the wiring yourself from the sub-layers and norms you are given."
# How the aliases above should be named in a message.
_FRIENDLY = {
    f"{_HERE}._reference_layer_norm_forward": "seqbook.models.transformer.LayerNorm",
    f"{_HERE}._torch_layer_norm_forward": "torch.nn.LayerNorm",
    f"{_HERE}._reference_pre_ln": "seqbook.models.transformer.pre_ln_block",
    f"{_HERE}._reference_block_forward": "seqbook.models.transformer.EncoderBlock",
    f"{_HERE}._torch_encoder_layer_forward": "torch.nn.TransformerEncoderLayer",
}

_generator = grading_generator
_randint = random_int


# ``call_student`` under ``forbid_calls(paths)``, naming aliases in plain words.
_guarded_call = functools.partial(guarded_call, aliases=_FRIENDLY)


# ------------------------------------------------------------------- layer norm


def _normalise_variant(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
    variance: str = "biased",
    epsilon: str = "inside",
    axis: str = "features",
    affine: str = "weight*x+bias",
):
    """Layer normalisation as the classic mistakes compute it."""
    dims = {
        "features": (-1,),
        "batch": (0,),
        "time": (-2,),
        "all": tuple(range(x.dim())),
    }[axis]
    if any(d < -x.dim() or d >= x.dim() for d in dims):
        return None
    mean = x.mean(dim=dims, keepdim=True)
    n = 1
    for d in dims:
        n *= x.shape[d]
    squares = (x - mean).square().sum(dim=dims, keepdim=True)
    if variance == "unbiased":
        if n < 2:
            return None
        var = squares / (n - 1)
    else:
        var = squares / n
    if epsilon == "inside":
        normalised = (x - mean) / torch.sqrt(var + eps)
    elif epsilon == "default":
        normalised = (x - mean) / torch.sqrt(var + 1e-5)
    elif epsilon == "outside":
        normalised = (x - mean) / (torch.sqrt(var) + eps)
    else:  # none
        normalised = (x - mean) / torch.sqrt(var)
    if affine == "weight*x+bias":
        return normalised * weight + bias
    if affine == "none":
        return normalised
    if affine == "(x+bias)*weight":
        return (normalised + bias) * weight
    if affine == "weight only":
        return normalised * weight
    return normalised + bias  # "bias only"


_VARIANCE = {
    "unbiased": "the variance is the unbiased one (divided by n - 1, as "
    "torch.var and torch.std compute by default); layer norm divides by n: use "
    "unbiased=False or square the deviations and take their mean"
}
_EPSILON = {
    "outside": "eps is added to the standard deviation instead of to the variance: "
    "it belongs inside the square root, sqrt(var + eps)",
    "none": "eps is missing: it belongs inside the square root, sqrt(var + eps)",
    "default": "the eps given to the constructor is ignored (1e-5 is used instead): "
    "store it and use it",
}
_AXIS = {
    "batch": "the statistics are taken over the batch axis (dim 0, as batch norm "
    "does); layer norm normalises each position over its own features, the last axis",
    "time": "the statistics are taken over the time axis (dim -2); layer norm "
    "normalises each position over its own features, the last axis",
    "all": "the statistics are taken over all axes at once; layer norm normalises each "
    "position separately, over its features (the last axis, keepdim=True)",
}
_AFFINE = {
    "none": "the learned weight and bias are not applied: return "
    "normalised * self.weight + self.bias",
    "(x+bias)*weight": "the bias is added before multiplying by the weight: the affine "
    "part is normalised * weight + bias",
    "weight only": "the bias is not added: return normalised * self.weight + self.bias",
    "bias only": "the weight is not applied: return normalised * self.weight + "
    "self.bias",
}


def _diagnose_layer_norm(output: torch.Tensor, x, weight, bias, eps) -> str | None:
    correct = ("biased", "inside", "features", "weight*x+bias")
    tables = (_VARIANCE, _EPSILON, _AXIS, _AFFINE)
    choices = itertools.product(
        ("biased", "unbiased"),
        ("inside", "outside", "none", "default"),
        ("features", "batch", "time", "all"),
        ("weight*x+bias", "none", "(x+bias)*weight", "weight only", "bias only"),
    )
    # Variants are told apart from the right answer in float64, where rounding cannot
    # make two different formulas agree or the same formula disagree.
    x64, weight64, bias64 = x.double(), weight.double(), bias.double()
    right64 = _normalise_variant(x64, weight64, bias64, eps, *correct)
    # Fewest mistakes first: the simplest explanation of the output is reported.
    ranked = sorted(
        (c for c in choices if c != correct),
        key=lambda c: sum(a != b for a, b in zip(c, correct)),
    )
    for choice in ranked:
        variant = _normalise_variant(x, weight, bias, eps, *choice)
        if variant is None:
            continue
        # A variant that is the right answer on these inputs ("eps ignored" when eps
        # is the default) explains nothing: never name it.
        variant64 = _normalise_variant(x64, weight64, bias64, eps, *choice)
        if _close(variant64, right64, 1e-9):
            continue
        if _close(output, variant, 1e-6):
            return "; and ".join(
                table[part]
                for table, part, right in zip(tables, choice, correct)
                if part != right
            )
    return None


def _build_layer_norm(cls: Any, dim: int, eps: float | None, what: str) -> nn.Module:
    kwargs = {} if eps is None else {"eps": eps}
    module = _guarded_call(
        _LAYER_NORM_BUILTINS, _LAYER_NORM_REASON, cls, dim, what=what, **kwargs
    )
    if not isinstance(module, nn.Module):
        raise CheckFailure(
            f"{what} should create an nn.Module, got {type(module).__name__}."
        )
    parameters = dict(module.named_parameters())
    if not parameters:
        raise CheckFailure(
            f"{what} has no parameters: layer norm has a learned affine part. Register "
            f"`self.weight = nn.Parameter(torch.ones({dim}))` and "
            f"`self.bias = nn.Parameter(torch.zeros({dim}))`."
        )
    if set(parameters) != {"weight", "bias"}:
        raise CheckFailure(
            f"{what} has parameters named {sorted(parameters)}; expected exactly "
            "['bias', 'weight'] (the names nn.LayerNorm uses, so that weights can be "
            "copied with load_state_dict)."
        )
    for name, start in (("weight", 1.0), ("bias", 0.0)):
        value = parameters[name]
        if tuple(value.shape) != (dim,):
            raise CheckFailure(
                f"{what}: `{name}` has shape {tuple(value.shape)}, expected ({dim},)."
            )
        if max_abs_error(value, torch.full((dim,), start)) != 0:
            raise CheckFailure(
                f"{what}: `{name}` should start at {start:g} everywhere (as in "
                "nn.LayerNorm), so that a new layer norm only normalises."
            )
    return module


def _well_conditioned(x: torch.Tensor) -> torch.Tensor:
    """``x`` with every row's spread at least 0.3: in float32, normalising a nearly
    constant row far from 0 amplifies rounding beyond any fair tolerance, for a correct
    answer as much as for nn.LayerNorm itself (tiny variances are tested in float64)."""
    spread = x.std(dim=-1, unbiased=False, keepdim=True)  # (..., 1)
    ramp = torch.linspace(-1.0, 1.0, x.shape[-1], dtype=x.dtype)  # std about 0.6
    return torch.where(spread < 0.3, x + ramp, x)


def _layer_norm_case(
    cls: Any,
    dim: int,
    eps: float | None,
    x: torch.Tensor,
    g: torch.Generator,
    check_gradients: bool,
    label: str,
) -> None:
    shown_eps = "" if eps is None else f", eps={eps:.3g}"
    what = f"LayerNorm({dim}{shown_eps})"
    module = _build_layer_norm(cls, dim, eps, what).to(x.dtype)
    weight = torch.randn(dim, generator=g, dtype=x.dtype)
    bias = torch.randn(dim, generator=g, dtype=x.dtype)
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    true_eps = 1e-5 if eps is None else eps
    builtin = _TorchLayerNorm(dim, eps=true_eps).to(x.dtype)
    with torch.no_grad():
        builtin.weight.copy_(weight)
        builtin.bias.copy_(bias)
    what = f"{what} on {label}"
    inputs = x.clone().requires_grad_(check_gradients)
    output = _guarded_call(
        _LAYER_NORM_BUILTINS, _LAYER_NORM_REASON, module, inputs, what=what
    )
    if max_abs_error(inputs, x) != 0:
        raise CheckFailure(f"{what} modified its input in place.")
    expected = builtin(x)
    expect_tensor(output, f"the output of {what}", shape=expected.shape, dtype=x.dtype)
    if bool(torch.isnan(output.detach()).any()) or bool(
        torch.isinf(output.detach()).any()
    ):
        raise CheckFailure(
            f"the output of {what} contains NaN or inf"
            + (
                " -- a row with (nearly) equal features has variance 0: add eps inside "
                "the square root, sqrt(var + eps)."
                if "constant" in label
                else "."
            )
        )
    if not _close(output, expected, 1e-6):
        mistake = _diagnose_layer_norm(output.detach(), x, weight, bias, true_eps)
        if mistake is not None:
            raise CheckFailure(f"{what} is wrong: {mistake}.")
    expect_close(output, expected, f"the output of {what} (compared with nn.LayerNorm)")
    if check_gradients:
        upstream = torch.randn(expected.shape, generator=g, dtype=x.dtype)
        if not getattr(output, "requires_grad", False):
            raise CheckFailure(
                f"{what}: the output is detached, so no gradient flows back "
                "(avoid .detach(), .item(), numpy)."
            )
        leaves = [inputs, module.weight, module.bias]
        grads = torch.autograd.grad(
            (output * upstream).sum(), leaves, allow_unused=True
        )
        reference_x = x.clone().requires_grad_(True)
        expected_grads = torch.autograd.grad(
            (builtin(reference_x) * upstream).sum(),
            [reference_x, builtin.weight, builtin.bias],
        )
        for name, grad, expected_grad in zip(
            ("the input", "weight", "bias"), grads, expected_grads
        ):
            if grad is None:
                raise CheckFailure(f"{what}: no gradient reaches {name}.")
            expect_close(
                grad, expected_grad, f"the gradient with respect to {name} in {what}"
            )


@check
def check_layer_norm(layer_norm_class: Any, hidden: bool = False) -> str:
    """Check a ``LayerNorm(dim, eps=1e-5)`` module class against ``nn.LayerNorm``.

    Outputs (and, in hidden mode, gradients) are compared with random weights, inputs
    with any number of leading axes, a large ``eps``, inputs of tiny variance and a
    constant row. Every built-in normalisation and the book's ``LayerNorm`` are disabled
    while the student's code runs.
    """
    if not isinstance(layer_norm_class, type) or not issubclass(
        layer_norm_class, nn.Module
    ):
        raise CheckFailure(
            "LayerNorm should be a class derived from nn.Module, got "
            f"{'None' if layer_norm_class is None else type(layer_norm_class).__name__}"
            "."
        )
    for forbidden, name in (
        (_ReferenceLayerNorm, "seqbook.models.transformer.LayerNorm"),
        (_TorchLayerNorm, "torch.nn.LayerNorm"),
    ):
        if issubclass(layer_norm_class, forbidden):
            raise ForbiddenCall(
                f"your LayerNorm is (or derives from) `{name}`: {_LAYER_NORM_REASON}"
            )
    g = _generator(hidden)
    cases: list[tuple[int, float | None, torch.Tensor, bool, str]] = []
    if not hidden:
        cases.append(
            (
                6,
                None,
                torch.randn(2, 3, 6, generator=g) * 3 + 1,
                False,
                "a (B=2, T=3, D=6) batch",
            )
        )
        cases.append(
            (
                5,
                0.1,
                torch.randn(4, 5, generator=g),
                False,
                "a (4, 5) batch with a large eps",
            )
        )
        cases.append(
            (
                4,
                None,
                torch.randn(3, 4, generator=g, dtype=torch.float64) * 1e-3,
                False,
                "inputs with a tiny variance (float64)",
            )
        )
        cases.append((3, None, torch.randn(3, generator=g), False, "a single vector"))
    else:
        for min_axes in (2, 1):  # first with >= 2 leading axes: batch != time
            dim = _randint(g, 2, 48)
            leading = tuple(_randint(g, 2, 5) for _ in range(_randint(g, min_axes, 3)))
            scale = _randint(g, 1, 8)
            x = _well_conditioned(
                torch.randn(*leading, dim, generator=g)
            ) * scale + _randint(g, -5, 5)
            cases.append(
                (dim, None, x, False, f"random inputs of shape {tuple(x.shape)}")
            )
        dim = _randint(g, 3, 16)
        eps = 10 ** (-3 * float(torch.rand(1, generator=g)))  # between 0.001 and 1
        x = torch.randn(_randint(g, 2, 4), _randint(g, 2, 6), dim, generator=g)
        cases.append((dim, eps, x, False, "inputs with a large eps"))
        x = (
            torch.randn(
                _randint(g, 2, 4),
                _randint(g, 2, 5),
                dim,
                generator=g,
                dtype=torch.float64,
            )
            * 1e-3
        )
        cases.append((dim, None, x, False, "inputs with a tiny variance (float64)"))
        x = torch.randn(3, dim, generator=g, dtype=torch.float64)
        x[1] = 2.5  # a constant row
        cases.append(
            (
                dim,
                None,
                x,
                True,
                "float64 inputs with a constant row (gradients checked)",
            )
        )
        x = (
            torch.randn(
                _randint(g, 2, 3),
                _randint(g, 2, 4),
                _randint(g, 2, 3),
                dim,
                generator=g,
                dtype=torch.float64,
            )
            * 2
            - 1
        )
        cases.append(
            (
                dim,
                0.01,
                x,
                True,
                "float64 inputs with 3 leading axes (gradients checked)",
            )
        )
    for dim, eps, x, grads, label in cases:
        _layer_norm_case(layer_norm_class, dim, eps, x, g, grads, label)
        integrity.verify()
    extra = ", gradients included" if hidden else ""
    return f"LayerNorm matches nn.LayerNorm on {len(cases)} cases{extra}."


# -------------------------------------------------------------- the pre-LN block


def _wirings() -> dict[str, tuple[Callable[..., torch.Tensor], str]]:
    """Wrong wirings of ``(x, self_attention, feed_forward, norm1, norm2)``, by name."""

    def post_ln(x, sa, ff, n1, n2):
        x = n1(x + sa(x))
        return n2(x + ff(x))

    def sum_of_normalised_branches(x, sa, ff, n1, n2):
        return n1(x + sa(x)) + n2(x + ff(x))

    def parallel(x, sa, ff, n1, n2):
        return x + sa(n1(x)) + ff(n2(x))

    def residual_from_normalised(x, sa, ff, n1, n2):
        h = n1(x)
        x = h + sa(h)
        h = n2(x)
        return h + ff(h)

    def no_attention_residual(x, sa, ff, n1, n2):
        x = sa(n1(x))
        return x + ff(n2(x))

    def no_ffn_residual(x, sa, ff, n1, n2):
        x = x + sa(n1(x))
        return ff(n2(x))

    def no_residuals(x, sa, ff, n1, n2):
        return ff(n2(sa(n1(x))))

    def final_norm2_again(x, sa, ff, n1, n2):
        x = x + sa(n1(x))
        x = x + ff(n2(x))
        return n2(x)

    def final_norm1_again(x, sa, ff, n1, n2):
        x = x + sa(n1(x))
        x = x + ff(n2(x))
        return n1(x)

    def swapped_norms(x, sa, ff, n1, n2):
        x = x + sa(n2(x))
        return x + ff(n1(x))

    def norm1_twice(x, sa, ff, n1, n2):
        x = x + sa(n1(x))
        return x + ff(n1(x))

    def ffn_first(x, sa, ff, n1, n2):
        x = x + ff(n2(x))
        return x + sa(n1(x))

    return {
        "post_ln": (
            post_ln,
            "this is the post-LN wiring, x = LN(x + Sublayer(x)); the "
            "pre-LN block normalises the *input* of each sub-layer: "
            "x = x + Sublayer(LN(x))",
        ),
        "sum": (
            sum_of_normalised_branches,
            "this is the wrong form "
            "LN(x + Attn(x)) + LN(x + FFN(x)): two branches on the same x, the "
            "residual counted twice. The sub-layers run in sequence: "
            "x = x + Attn(LN1(x)), then x = x + FFN(LN2(x))",
        ),
        "parallel": (
            parallel,
            "the feed-forward network reads the block's input instead "
            "of the output of the attention step (x + Attn(LN1(x)) + "
            "FFN(LN2(x))): the sub-layers must run in sequence, the FFN on the "
            "updated x",
        ),
        "residual_from_normalised": (
            residual_from_normalised,
            "the residual adds the "
            "normalised input, LN(x) + Sublayer(LN(x)); it must "
            "add the un-normalised x: x + Sublayer(LN(x))",
        ),
        "no_attention_residual": (
            no_attention_residual,
            "the attention step has no residual connection: x = x + Attn(LN1(x))",
        ),
        "no_ffn_residual": (
            no_ffn_residual,
            "the feed-forward step has no residual connection: x = x + FFN(LN2(x))",
        ),
        "no_residuals": (
            no_residuals,
            "there are no residual connections: each step "
            "adds its sub-layer's output to x",
        ),
        "final_norm2_again": (
            final_norm2_again,
            "a layer norm is applied again to the "
            "block's output (the second step normalises the sum, "
            "LN2(x + FFN(LN2(x)))): the pre-LN block returns the "
            "residual stream un-normalised (a final norm comes once, "
            "after the last block of a stack, not in every block)",
        ),
        "final_norm1_again": (
            final_norm1_again,
            "a layer norm is applied again to the "
            "block's output: the pre-LN block returns the residual "
            "stream un-normalised",
        ),
        "swapped_norms": (
            swapped_norms,
            "norm1 and norm2 are swapped: norm1 feeds the "
            "attention, norm2 the feed-forward network",
        ),
        "norm1_twice": (
            norm1_twice,
            "norm1 is used for both sub-layers: norm2 feeds the feed-forward network",
        ),
        "ffn_first": (
            ffn_first,
            "the feed-forward network runs before the attention: "
            "attention first, then the FFN",
        ),
    }


def _torch_sublayers(layer: nn.TransformerEncoderLayer, real: torch.Tensor | None):
    ignored = None if real is None else ~real  # PyTorch: True = padding

    def self_attention(h):
        output = layer.self_attn(h, h, h, key_padding_mask=ignored, need_weights=False)[
            0
        ]
        return layer.dropout1(output)

    def feed_forward(h):
        hidden = layer.dropout(layer.activation(layer.linear1(h)))
        return layer.dropout2(layer.linear2(hidden))

    return self_attention, feed_forward, layer.norm1, layer.norm2


def _book_sublayers(block: nn.Module, real: torch.Tensor | None):
    keep = None if real is None else real[:, None, None, :]  # (B, 1, 1, T)

    def self_attention(h):
        return block.attention(h, h, h, mask=keep)[0]

    return self_attention, block.feed_forward, block.norm1, block.norm2


def _encoder_layer(
    g: torch.Generator, dim: int, heads: int, hidden_dim: int, dtype: torch.dtype
) -> nn.TransformerEncoderLayer:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=g)))
        layer = (
            _TorchEncoderLayer(
                dim, heads, hidden_dim, dropout=0.1, batch_first=True, norm_first=True
            )
            .to(dtype)
            .eval()
        )
    with torch.no_grad():
        # Random affine norms and larger output projections, so that every wrong wiring
        # gives a clearly different result.
        for norm in (layer.norm1, layer.norm2):
            norm.weight.copy_(1 + 0.5 * torch.randn(dim, generator=g, dtype=dtype))
            norm.bias.copy_(0.5 * torch.randn(dim, generator=g, dtype=dtype))
        layer.self_attn.out_proj.weight.mul_(3.0)
        layer.linear2.weight.mul_(3.0)
        layer.linear2.bias.copy_(0.3 * torch.randn(dim, generator=g, dtype=dtype))
    return layer


def _block_case(
    fn: Callable[..., Any],
    layer: nn.TransformerEncoderLayer,
    x: torch.Tensor,
    real: torch.Tensor | None,
    book: bool,
    check_gradients: bool,
    label: str,
    g: torch.Generator,
) -> None:
    what = f"pre_ln_block on {label}"
    if book:
        with torch.random.fork_rng(devices=[]):  # from_torch draws initial weights
            block = _ReferenceEncoderBlock.from_torch(layer).to(x.dtype)
        sublayers = _book_sublayers(block, real)
    else:
        sublayers = _torch_sublayers(layer, real)
    inputs = x.clone().requires_grad_(check_gradients)
    try:
        output = _guarded_call(
            _BLOCK_BUILTINS, _BLOCK_REASON, fn, inputs, *sublayers, what=what
        )
    except CheckFailure as err:
        if type(err) is CheckFailure and "in-place" in str(err):
            raise CheckFailure(
                f"{err} Write x = x + ... instead of x += ...: the caller's "
                "tensor must not change."
            ) from err
        raise
    if max_abs_error(inputs, x) != 0:
        raise CheckFailure(
            f"{what} modified its input x in place (x += ...): write "
            "x = x + ... so the caller's tensor does not change."
        )
    kwargs = {} if real is None else {"src_key_padding_mask": ~real}
    with torch.enable_grad():  # PyTorch's fast path is taken only without gradients
        expected = layer(x, **kwargs).detach()
    expect_tensor(output, f"the output of {what}", shape=expected.shape, dtype=x.dtype)
    if not _close(output, expected):
        for wrong, message in _wirings().values():
            with torch.no_grad():
                variant = wrong(x, *sublayers)
            if _close(output, variant):
                raise CheckFailure(f"{what}: {message}.")
    expect_close(
        output,
        expected,
        f"the output of {what} (compared with "
        "nn.TransformerEncoderLayer(norm_first=True))",
        atol=1e-5,
        rtol=1e-4,
    )
    if check_gradients:
        if not getattr(output, "requires_grad", False):
            raise CheckFailure(
                f"{what}: the output is detached, so no gradient flows back."
            )
        upstream = torch.randn(expected.shape, generator=g, dtype=x.dtype)
        (grad,) = torch.autograd.grad((output * upstream).sum(), [inputs])
        reference_x = x.clone().requires_grad_(True)
        (expected_grad,) = torch.autograd.grad(
            (_reference_pre_ln(reference_x, *sublayers) * upstream).sum(), [reference_x]
        )
        expect_close(grad, expected_grad, f"the gradient with respect to x in {what}")


@check
def check_pre_ln_block(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(x, self_attention, feed_forward, norm1, norm2) -> (B, T, D)``.

    The sub-layers and norms are those of an ``nn.TransformerEncoderLayer(...,
    norm_first=True)`` in eval mode (and of the book's copy of it), with and without a
    padding mask; the result must equal the layer's output.
    """
    g = _generator(hidden)
    cases: list[tuple] = []
    if not hidden:
        layer = _encoder_layer(g, 8, 2, 16, torch.float32)
        x = torch.randn(2, 5, 8, generator=g)
        real = torch.arange(5)[None, :] < torch.tensor([5, 3])[:, None]  # (B, T)
        cases.append(
            (layer, x, None, False, False, "(B=2, T=5, D=8), PyTorch's sub-layers")
        )
        cases.append(
            (
                layer,
                x,
                real,
                False,
                False,
                "the same batch with a padding mask (lengths 5 and 3)",
            )
        )
        cases.append(
            (
                layer,
                x,
                real,
                True,
                False,
                "the same batch and mask, the book's sub-layers",
            )
        )
    else:
        heads = (1, 2, 4)[_randint(g, 0, 2)]
        # At least 4 features: layer norm over 2 maps every vector to +-1, which makes
        # different wirings give the same output and the diagnosis ambiguous.
        dim = heads * _randint(g, 4, 8)
        hidden_dim = _randint(g, dim, 4 * dim)
        batch, length = _randint(g, 2, 4), _randint(g, 3, 10)
        layer = _encoder_layer(g, dim, heads, hidden_dim, torch.float32)
        x = torch.randn(batch, length, dim, generator=g)
        lengths = torch.randint(1, length + 1, (batch,), generator=g)
        lengths[0] = length
        real = torch.arange(length)[None, :] < lengths[:, None]  # (B, T)
        shape = f"(B={batch}, T={length}, D={dim}, H={heads})"
        cases.append((layer, x, None, False, False, f"{shape}, PyTorch's sub-layers"))
        cases.append((layer, x, real, False, False, f"{shape} with a padding mask"))
        cases.append(
            (
                layer,
                x,
                real,
                True,
                False,
                f"{shape} with a padding mask, the book's sub-layers",
            )
        )
        layer = _encoder_layer(g, dim, heads, hidden_dim, torch.float64)
        x = torch.randn(batch, length, dim, generator=g, dtype=torch.float64)
        cases.append(
            (
                layer,
                x,
                real,
                True,
                True,
                f"float64 {shape} with a padding mask (gradients checked)",
            )
        )
    for layer, x, real, book, grads, label in cases:
        _block_case(fn, layer, x, real, book, grads, label, g)
        integrity.verify()
    extra = ", gradients included" if hidden else ""
    return (
        f"pre_ln_block matches nn.TransformerEncoderLayer(norm_first=True) on "
        f"{len(cases)} cases{extra}."
    )


# A submission that replaces a helper of this module (or the reference) is caught by
# the next check that runs.
integrity.protect_module("seqbook.models.transformer")
integrity.protect_module(__name__)
