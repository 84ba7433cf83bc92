"""Checks for the exercises of the section "Position-wise feed-forward networks".

* :func:`check_feed_forward` -- the module ``FeedForward(dim, hidden_dim,
  activation="relu", dropout=0.0)`` with linear maps ``up`` and ``down`` and dropout on
  the hidden activations, compared with the formula ``down(act(up(x)))`` computed here
  from the same weights;
* :func:`check_transformer_layer_parameters` -- ``transformer_layer_parameters(dim,
  num_heads, hidden_dim, bias=True, decoder=False)``, compared with the parameter
  count of PyTorch's ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``.

Both name the classic mistakes (the activation after the second linear map, no
activation at all, the tanh approximation of GELU, the two widths swapped, dropout on
the output or still active in evaluation mode; forgotten biases, forgotten layer-norm
parameters, a count that grows with the number of heads, a missing output projection,
a decoder without cross-attention, ...). ``hidden=True`` draws sizes and values from a
fresh random seed at grading time; expected values are computed inside the check.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from seqbook.checks import integrity
from seqbook.checks._harness import check
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    describe,
    expect_close,
    expect_tensor,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.models import counting as _counting_module
from seqbook.models import transformer as _transformer_module

__all__ = ["check_feed_forward", "check_transformer_layer_parameters"]

# Captured at import, before any student code can touch the modules.
_ReferenceFeedForward = _transformer_module.FeedForward
_ReferenceSwiGLU = _transformer_module.SwiGLUFeedForward
_reference_layer_parameters = _counting_module.transformer_layer_parameters
_Module = nn.Module
_Linear = nn.Linear
_Dropout = nn.Dropout
_EncoderLayer = nn.TransformerEncoderLayer
_DecoderLayer = nn.TransformerDecoderLayer
_relu = F.relu
_gelu = F.gelu
_sigmoid = torch.sigmoid
_pinv = torch.linalg.pinv

_generator = grading_generator
_randint = random_int

# Modules a FeedForward answer may not be built from: the book's reference, and
# PyTorch's whole Transformer layers (which contain a feed-forward network).
_BORROWED_MODULES = (
    _ReferenceFeedForward,
    _ReferenceSwiGLU,
    _EncoderLayer,
    _DecoderLayer,
)

# Building layers to count their parameters is not counting from hyper-parameters.
_COUNTING_FORBIDDEN = existing_paths(
    (
        "torch.nn.TransformerEncoderLayer",
        "torch.nn.TransformerDecoderLayer",
        "torch.nn.Transformer",
        "torch.nn.MultiheadAttention",
        "torch.nn.Linear",
        "torch.nn.LayerNorm",
        # reached by every nn.Linear, however it is named
        "torch.nn.init.kaiming_uniform_",
        "torch.nn.init.xavier_uniform_",  # reached by every nn.MultiheadAttention
        "seqbook.models.counting.transformer_layer_parameters",
    )
)
_COUNTING_REASON = (
    "count the parameters with your own formula from the hyper-parameters; building "
    "PyTorch layers to count them (impossible at the sizes of real models) or calling "
    "the book's reference is not allowed here."
)


# ===================================================================== FeedForward


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return _relu if name == "relu" else _gelu


def _describe_shape(lead: tuple[int, ...], dim: int) -> str:
    return "x of shape " + str(tuple(lead) + (dim,))


def _build(cls: Any, dim: int, hidden_dim: int, activation: str, dropout: float) -> Any:
    if not isinstance(cls, type):
        raise CheckFailure(
            f"FeedForward should be a class (an nn.Module), got {describe(cls)}."
        )
    if activation == "relu" and dropout == 0.0:  # the defaults
        what = f"FeedForward({dim}, {hidden_dim})"
        module = call_student(cls, dim, hidden_dim, what=what)
    else:
        what = (
            f"FeedForward({dim}, {hidden_dim}, activation={activation!r}, "
            f"dropout={dropout})"
        )
        module = call_student(
            cls, dim, hidden_dim, activation=activation, dropout=dropout, what=what
        )
    if not isinstance(module, _Module):
        raise CheckFailure(
            f"{what} is not an nn.Module: write `class FeedForward(nn.Module)`."
        )
    for sub in module.modules():
        if isinstance(sub, _BORROWED_MODULES):
            raise CheckFailure(
                f"{what} contains a {type(sub).__module__}.{type(sub).__name__}: write "
                "the network yourself from two nn.Linear layers."
            )
    _expect_structure(module, what, dim, hidden_dim, dropout)
    return module, what


def _expect_structure(
    module: Any, what: str, dim: int, hidden_dim: int, dropout: float
) -> None:
    layers = {}
    for name in ("up", "down"):
        layer = getattr(module, name, None)
        if not isinstance(layer, _Linear):
            raise CheckFailure(
                f"{what}: `self.{name}` should be an nn.Linear, got {describe(layer)}. "
                "Name the two linear maps `up` (dim -> hidden_dim) and `down` "
                "(hidden_dim -> dim)."
            )
        layers[name] = layer
    up, down = layers["up"], layers["down"]
    sizes = ((up.in_features, up.out_features), (down.in_features, down.out_features))
    if sizes != ((dim, hidden_dim), (hidden_dim, dim)):
        if sizes == ((hidden_dim, dim), (dim, hidden_dim)):
            raise CheckFailure(
                f"{what}: the widths are swapped: `up` maps {hidden_dim} -> {dim} and "
                f"`down` {dim} -> {hidden_dim}. `up` must expand dim -> hidden_dim "
                "(nn.Linear(dim, hidden_dim)) and `down` map back hidden_dim -> dim."
            )
        raise CheckFailure(
            f"{what}: `up` maps {up.in_features} -> {up.out_features} and `down` maps "
            f"{down.in_features} -> {down.out_features}; expected {dim} -> "
            f"{hidden_dim} and {hidden_dim} -> {dim}."
        )
    for name, layer in layers.items():
        if layer.bias is None:
            raise CheckFailure(
                f"{what}: `self.{name}` has no bias. The feed-forward network's linear "
                "maps have biases (nn.Linear's default bias=True)."
            )
    names = sorted(name for name, _ in module.named_parameters())
    expected_names = ["down.bias", "down.weight", "up.bias", "up.weight"]
    if names != expected_names:
        extra = sorted(set(names) - set(expected_names))
        raise CheckFailure(
            f"{what} has the parameters {names}; expected exactly {expected_names}"
            + (f" (remove {extra})." if extra else ".")
        )
    drop = getattr(module, "dropout", None)
    if not isinstance(drop, _Dropout):
        raise CheckFailure(
            f"{what}: `self.dropout` should be an nn.Dropout, got {describe(drop)}. "
            "Create it in __init__ as nn.Dropout(dropout)."
        )
    if not math.isclose(float(drop.p), dropout):
        raise CheckFailure(
            f"{what}: `self.dropout` has p={drop.p}, expected the `dropout` argument, "
            f"{dropout}."
        )


def _load(module: Any, weights: dict[str, torch.Tensor]) -> None:
    """Put the case's weights into the student's layers (in the layers' dtype)."""
    with torch.no_grad():
        for name, value in weights.items():
            layer_name, _, attribute = name.partition(".")
            target = getattr(getattr(module, layer_name), attribute)
            target.copy_(value.to(target.dtype))


def _random_weights(
    g: torch.Generator, dim: int, hidden_dim: int, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    return {  # pre-activations spread over about [-4, 4], where activations differ
        "up.weight": randn(hidden_dim, dim) * (1.4 / math.sqrt(dim)),
        "up.bias": randn(hidden_dim) * 0.5,
        "down.weight": randn(dim, hidden_dim) / math.sqrt(hidden_dim),
        "down.bias": randn(dim) * 0.5,
    }


def _variants(
    x: torch.Tensor, w: dict[str, torch.Tensor], activation: str
) -> dict[str, torch.Tensor]:
    """The output as the classic mistakes compute it (without dropout)."""
    act = _activation(activation)
    other = _gelu if activation == "relu" else _relu

    def up(v: torch.Tensor, bias: bool = True) -> torch.Tensor:
        return v @ w["up.weight"].T + (w["up.bias"] if bias else 0.0)

    def down(v: torch.Tensor, bias: bool = True) -> torch.Tensor:
        return v @ w["down.weight"].T + (w["down.bias"] if bias else 0.0)

    variants = {
        "after_second": act(down(up(x))),
        "twice": act(down(act(up(x)))),
        "missing": down(up(x)),
        "other_activation": down(other(up(x))),
        "no_up_bias": down(act(up(x, bias=False))),
        "no_down_bias": down(act(up(x)), bias=False),
    }
    if activation == "gelu":
        variants["tanh_gelu"] = down(_gelu(up(x), approximate="tanh"))
        h = up(x)
        variants["sigmoid_gelu"] = down(h * _sigmoid(1.702 * h))
    return variants


def _mistakes(activation: str) -> dict[str, str]:
    other = "GELU" if activation == "relu" else "ReLU"
    return {
        "after_second": "the activation is applied after the second linear map, not "
        "between the two: the FFN is down(activation(up(x)))",
        "twice": "the activation is applied to the output as well: only the hidden "
        "activations go through it, down(activation(up(x)))",
        "missing": "there is no activation between the two linear maps "
        "(two linear maps in a row are just one linear map)",
        "other_activation": f"activation={activation!r} was asked for, but the network "
        f"applies {other}: choose the function from the `activation` argument",
        "no_up_bias": "the bias of `up` is not added (call self.up(x), or add up.bias)",
        "no_down_bias": "the bias of `down` is not added (call self.down(h), or add "
        "down.bias)",
        "tanh_gelu": "this is the tanh approximation of GELU (approximate='tanh'); the "
        "book uses the exact GELU, x * Phi(x) with the normal CDF Phi: F.gelu(x)",
        "sigmoid_gelu": "this is the sigmoid approximation of GELU, x * "
        "sigmoid(1.702 x); the book uses the exact GELU, x * Phi(x): F.gelu(x)",
    }


def _forward(module: Any, x: torch.Tensor, what: str) -> torch.Tensor:
    return call_student(module, x, what=what)


def _compare_output(
    output: Any,
    x: torch.Tensor,
    w: dict[str, torch.Tensor],
    activation: str,
    what: str,
    expected: torch.Tensor,
) -> None:
    expect_tensor(output, what, shape=expected.shape, dtype=expected.dtype)
    error = max_abs_error(output, expected)
    scale = 1.0 + float(expected.detach().abs().max())
    tolerance = (1e-9 if expected.dtype == torch.float64 else 2e-5) * scale
    if error > tolerance:
        mistakes = _mistakes(activation)
        for name, variant in _variants(x, w, activation).items():
            variant_error = max_abs_error(output, variant)
            if variant_error < tolerance and variant_error < error / 10:
                raise CheckFailure(f"{what}: {mistakes[name]}.")
    if expected.dtype == torch.float64:
        expect_close(output, expected, what, atol=1e-9, rtol=1e-9)
    else:
        expect_close(output, expected, what)


def _check_independence(module: Any, x: torch.Tensor, what: str) -> None:
    """Changing one position changes that position's output only."""
    with torch.no_grad():
        before = _forward(module, x, what)
        changed = x.clone()
        position = x.shape[-2] // 2
        changed[..., position, :] += 1.5
        after = _forward(module, changed, what)
    expect_tensor(after, what, shape=before.shape)
    moved = (after - before).abs().amax(dim=-1).reshape(-1, x.shape[-2]).amax(0)  # (T,)
    moved[position] = 0.0
    if bool((moved > 1e-6).any()):
        where = int((moved > 1e-6).nonzero()[0])
        raise CheckFailure(
            f"{what}: changing the input at position {position} changed the output at "
            f"position {where}. A position-wise network must act on each position on "
            "its own (no mixing along the sequence axis)."
        )


def _check_gradients(module: Any, x: torch.Tensor, what: str) -> None:
    module.zero_grad(set_to_none=True)
    output = _forward(module, x, what)
    try:
        (
            output
            * torch.linspace(-1, 1, output.numel(), dtype=output.dtype).reshape(
                output.shape
            )
        ).sum().backward()
    except RuntimeError as err:
        raise CheckFailure(
            f"{what}: backpropagation through the output failed ({err})."
        ) from err
    for name in ("up", "down"):
        grad = getattr(module, name).weight.grad
        if grad is None or float(grad.abs().sum()) == 0.0:
            raise CheckFailure(
                f"{what}: no gradient reaches `{name}.weight`: do not detach tensors "
                "or compute under torch.no_grad() in forward."
            )
    module.zero_grad(set_to_none=True)


def _check_dropout(
    cls: Any,
    g: torch.Generator,
    dim: int,
    hidden_dim: int,
    p: float,
    lead: tuple[int, ...],
) -> None:
    """In training mode the output must be down(m * act(up(x)) / (1 - p)) with a 0/1
    mask m on the hidden units. With hidden_dim < dim, the hidden vector is recovered
    exactly from the output by a pseudo-inverse of `down`, whatever random numbers were
    drawn."""
    module, what = _build(cls, dim, hidden_dim, "gelu", p)
    module = module.double()
    w = _random_weights(g, dim, hidden_dim, torch.float64)
    _load(module, w)
    x = 1.5 * torch.randn(*lead, dim, generator=g, dtype=torch.float64)
    hidden = _gelu(x @ w["up.weight"].T + w["up.bias"])  # (..., hidden_dim)
    expected_eval = hidden @ w["down.weight"].T + w["down.bias"]
    what_train = f"{what} in training mode (module.train())"
    module.train()
    with torch.no_grad():
        output = _forward(module, x.clone(), what_train)
    expect_tensor(output, what_train, shape=expected_eval.shape, dtype=torch.float64)
    shifted = output - w["down.bias"]
    recovered = shifted @ _pinv(w["down.weight"].T)  # (..., hidden_dim)
    residual = shifted - recovered @ w["down.weight"].T
    if float(residual.abs().max()) > 1e-6 * (1 + float(shifted.abs().max())):
        zeros = float((output == 0).double().mean())
        if zeros > 0.05:
            raise CheckFailure(
                f"{what_train}: {100 * zeros:.0f}% of the output entries are exactly "
                "0: dropout is applied to the output. In this module it acts on the "
                "hidden activations, between the activation and `down`."
            )
        raise CheckFailure(
            f"{what_train}: the output is not down(dropout(activation(up(x)))): "
            "apply dropout to the hidden activations only."
        )
    tolerance = 1e-6 * (1 + float(hidden.abs().max()) / (1 - p))
    dropped = recovered.abs() < tolerance
    kept = (recovered - hidden / (1 - p)).abs() < tolerance
    unscaled = (recovered - hidden).abs() < tolerance
    if bool(unscaled.all()):
        raise CheckFailure(
            f"{what_train}: no hidden activation was dropped. In training mode, apply "
            "self.dropout to the hidden activations (after the activation, before "
            "`down`)."
        )
    if not bool((dropped | kept).all()):
        if bool((dropped | unscaled).all()):
            raise CheckFailure(
                f"{what_train}: the kept hidden activations are not scaled by "
                f"1 / (1 - p) = {1 / (1 - p):.3g}; nn.Dropout does this for you."
            )
        raise CheckFailure(
            f"{what_train}: the hidden activations are not activation(up(x)) with some "
            "of them dropped: is dropout applied to the input, or before the "
            "activation? It belongs after the activation, before `down`."
        )
    fraction = float(dropped.double().mean())
    if abs(fraction - p) > 0.25:
        raise CheckFailure(
            f"{what_train}: {100 * fraction:.0f}% of the hidden activations were "
            f"dropped, expected about {100 * p:.0f}% (p={p})."
        )
    what_eval = f"{what} in evaluation mode (module.eval())"
    module.eval()
    with torch.no_grad():
        output = _forward(module, x.clone(), what_eval)
    expect_tensor(output, what_eval, shape=expected_eval.shape, dtype=torch.float64)
    if max_abs_error(output, expected_eval) > 1e-9 * (
        1 + float(expected_eval.abs().max())
    ):
        raise CheckFailure(
            f"{what_eval}: the output changes with dropout although the module is in "
            "evaluation mode. Use the nn.Dropout module self.dropout (or pass "
            "training=self.training to F.dropout): dropout is off after module.eval()."
        )


def _check_case(
    cls: Any,
    g: torch.Generator,
    dim: int,
    hidden_dim: int,
    activation: str,
    lead: tuple[int, ...],
    dtype: torch.dtype,
) -> None:
    module, what = _build(cls, dim, hidden_dim, activation, 0.0)
    if dtype == torch.float64:
        module = module.double()
    module.eval()
    w = _random_weights(g, dim, hidden_dim, dtype)
    _load(module, w)
    x = 1.5 * torch.randn(*lead, dim, generator=g, dtype=dtype)
    with torch.no_grad():
        expected = (
            _activation(activation)(x @ w["up.weight"].T + w["up.bias"])
            @ w["down.weight"].T
            + w["down.bias"]
        )
        output = _forward(module, x.clone(), f"{what} on {_describe_shape(lead, dim)}")
    _compare_output(
        output,
        x,
        w,
        activation,
        f"the output of {what} on {_describe_shape(lead, dim)}",
        expected,
    )
    if len(lead) >= 1 and x.shape[-2] > 1:
        _check_independence(module, x, f"{what} on {_describe_shape(lead, dim)}")
    _check_gradients(module, x, f"{what} on {_describe_shape(lead, dim)}")


@check
def check_feed_forward(FeedForward: Any, hidden: bool = False) -> str:
    """Check the class ``FeedForward(dim, hidden_dim, activation="relu", dropout=0.0)``.

    It must hold ``up = nn.Linear(dim, hidden_dim)``, ``down = nn.Linear(hidden_dim,
    dim)`` and ``dropout = nn.Dropout(dropout)``, and compute
    ``down(dropout(act(up(x))))`` for inputs of shape ``(..., dim)``, with ``act`` the
    ReLU or the exact GELU.
    """
    g = _generator(hidden)
    if not hidden:
        cases = [
            (8, 32, "relu", (2, 5), torch.float32),
            (8, 32, "gelu", (2, 5), torch.float64),
            (6, 20, "relu", (4,), torch.float32),
        ]
        dropout_case = (12, 4, 0.5, (4, 10))
    else:
        cases = []
        for activation in ("relu", "gelu"):
            dim = _randint(g, 3, 24)
            hidden_dim = _randint(g, dim + 1, 4 * dim + 8)
            lead = tuple(_randint(g, 1, 4) for _ in range(_randint(g, 1, 2))) + (
                _randint(g, 2, 7),
            )
            cases.append((dim, hidden_dim, activation, lead, torch.float64))
        dim = _randint(g, 4, 16)
        cases.append(
            (
                dim,
                4 * dim,
                "relu",
                (_randint(g, 2, 5), _randint(g, 2, 6)),
                torch.float32,
            )
        )
        cases.append(
            (_randint(g, 3, 9), _randint(g, 10, 30), "gelu", (), torch.float64)
        )
        dim = _randint(g, 10, 24)
        p = 0.2 + 0.4 * float(torch.rand(1, generator=g))
        dropout_case = (
            dim,
            _randint(g, 3, dim // 2),
            round(p, 2),
            (_randint(g, 3, 5), _randint(g, 8, 12)),
        )
    # The student's layers initialise themselves from the global random generator; fork
    # it so that running the check does not change the numbers of later cells.
    with torch.random.fork_rng(devices=[]):
        for dim, hidden_dim, activation, lead, dtype in cases:
            _check_case(FeedForward, g, dim, hidden_dim, activation, lead, dtype)
            integrity.verify()
        _check_dropout(FeedForward, g, *dropout_case)
    return (
        f"FeedForward matches down(dropout(activation(up(x)))) on {len(cases)} "
        "cases, acts on each position on its own, and drops hidden activations in "
        "training mode only."
    )


# ===================================================== counting a layer's parameters


def _torch_count(
    dim: int, num_heads: int, hidden_dim: int, bias: bool, decoder: bool
) -> int:
    """The parameter count of PyTorch's own layer (built here, outside any guard)."""
    cls = _DecoderLayer if decoder else _EncoderLayer
    layer = cls(dim, num_heads, hidden_dim, bias=bias, batch_first=True, device="meta")
    return sum(p.numel() for p in layer.parameters())


def _pieces(dim: int, hidden_dim: int, bias: bool) -> dict[str, int]:
    b = 1 if bias else 0
    return {
        "attention_weights": 4 * dim * dim,
        "attention_biases": 4 * dim * b,
        "ffn_weights": 2 * dim * hidden_dim,
        "ffn_biases": (hidden_dim + dim) * b,
        "layer_norm": 2 * dim if bias else dim,
    }


def _count_variants(
    dim: int, num_heads: int, hidden_dim: int, bias: bool, decoder: bool
) -> dict[str, int]:
    """The count as the classic mistakes compute it."""
    p = _pieces(dim, hidden_dim, bias)
    n_attention, n_norms = (2, 3) if decoder else (1, 2)
    attention = p["attention_weights"] + p["attention_biases"]
    ffn = p["ffn_weights"] + p["ffn_biases"]

    def total(
        attention_: int = attention,
        ffn_: int = ffn,
        norm: int = p["layer_norm"],
        n_attention_: int = n_attention,
        n_norms_: int = n_norms,
    ) -> int:
        return n_attention_ * attention_ + ffn_ + n_norms_ * norm

    variants = {
        "no_layer_norm": total(norm=0),
        "heads_weights": total(
            attention_=attention + (num_heads - 1) * p["attention_weights"]
        ),
        "heads_all": total(attention_=num_heads * attention),
        "no_output_projection": total(
            attention_=3 * dim * dim + (3 * dim if bias else 0)
        ),
    }
    if bias:
        variants["no_biases"] = total(
            attention_=p["attention_weights"], ffn_=p["ffn_weights"]
        )
        variants["no_biases_at_all"] = total(
            attention_=p["attention_weights"], ffn_=p["ffn_weights"], norm=dim
        )
        variants["layer_norm_one_vector"] = total(norm=dim)
    else:
        variants["linear_biases_kept"] = total(
            attention_=attention + 4 * dim, ffn_=ffn + hidden_dim + dim
        )
        variants["layer_norm_bias_kept"] = total(norm=2 * dim)
        variants["all_biases_kept"] = total(
            attention_=attention + 4 * dim, ffn_=ffn + hidden_dim + dim, norm=2 * dim
        )
    if decoder:
        variants["no_cross_attention"] = total(n_attention_=1)
        variants["decoder_as_encoder"] = total(n_attention_=1, n_norms_=2)
        variants["two_norms"] = total(n_norms_=2)
    return variants


_COUNT_MISTAKES = {
    "no_layer_norm": "the layer norms are not counted: each has a scale vector and, "
    "with bias=True, a shift vector (2 * dim parameters)",
    "heads_weights": "the attention weights are multiplied by the number of heads; the "
    "heads split the dim-wide projections into slices, they add no parameters",
    "heads_all": "the attention parameters are multiplied by the number of heads; the "
    "heads split the dim-wide projections into slices, they add no parameters",
    "no_output_projection": "the output projection of attention (dim x dim, plus dim "
    "biases) is missing: attention has four maps, query, key, value and output",
    "no_biases": "the biases of the linear maps are missing (4 * dim in attention, "
    "hidden_dim + dim in the feed-forward network)",
    "no_biases_at_all": "all biases are missing: with bias=True the linear maps have "
    "biases (4 * dim in attention, hidden_dim + dim in the feed-forward network) and "
    "each layer norm has a shift vector besides its scale",
    "layer_norm_one_vector": "each layer norm is counted as dim parameters, but it has "
    "a scale and a shift vector: 2 * dim",
    "linear_biases_kept": "with bias=False the linear maps have no biases, but they "
    "were counted",
    "layer_norm_bias_kept": "with bias=False PyTorch's layer norms have no shift "
    "vector either (dim parameters each, not 2 * dim)",
    "all_biases_kept": "with bias=False neither the linear maps nor the layer norms "
    "have biases, but they were counted",
    "no_cross_attention": "a decoder layer has a second attention block, "
    "cross-attention to the encoder output, with its own 4 * dim * dim (+ biases) "
    "parameters",
    "decoder_as_encoder": "a decoder layer was counted like an encoder layer: it has "
    "cross-attention (a second attention block) and a third layer norm",
    "two_norms": "a decoder layer has three layer norms (one per sub-layer), not two",
}


def _unambiguous(
    dim: int, num_heads: int, hidden_dim: int, bias: bool, decoder: bool
) -> bool:
    """Whether the mistakes' counts differ from each other and from the right count (a
    mistake that changes nothing at these sizes, like multiplying by one head,
    aside)."""
    expected = _reference_layer_parameters(dim, num_heads, hidden_dim, bias, decoder)
    by_count: dict[int, set[str]] = {}
    for name, value in _count_variants(
        dim, num_heads, hidden_dim, bias, decoder
    ).items():
        if value != expected:
            by_count.setdefault(value, set()).add(_COUNT_MISTAKES[name])
    return all(len(messages) == 1 for messages in by_count.values())


def _as_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or value is None:
        raise CheckFailure(f"{what} returned {describe(value)}; expected an int.")
    if isinstance(value, torch.Tensor):
        raise CheckFailure(
            f"{what} returned {describe(value)}; return a plain Python int (the count "
            "needs only integer arithmetic on the hyper-parameters)."
        )
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise CheckFailure(
        f"{what} returned {value!r} ({describe(value)}); expected an int."
    )


def _call_count(
    fn: Callable[..., Any],
    dim: int,
    num_heads: int,
    hidden_dim: int,
    bias: bool,
    decoder: bool,
) -> tuple[int, str]:
    what = (
        f"transformer_layer_parameters({dim}, {num_heads}, {hidden_dim}, "
        f"bias={bias}, decoder={decoder})"
    )
    with forbid_calls(*_COUNTING_FORBIDDEN, reason=_COUNTING_REASON):
        value = call_student(
            fn, dim, num_heads, hidden_dim, bias=bias, decoder=decoder, what=what
        )
    return _as_count(value, what), what


def _check_count(
    fn: Callable[..., Any],
    dim: int,
    num_heads: int,
    hidden_dim: int,
    bias: bool,
    decoder: bool,
    expected: int,
    source: str,
) -> None:
    got, what = _call_count(fn, dim, num_heads, hidden_dim, bias, decoder)
    if got == expected:
        return
    variants = _count_variants(dim, num_heads, hidden_dim, bias, decoder)
    matches = {
        _COUNT_MISTAKES[name]
        for name, value in variants.items()
        if value == got and value != expected
    }
    if len(matches) == 1:
        raise CheckFailure(
            f"{what} returned {got:,}, expected {expected:,} "
            f"({source}): {matches.pop()}."
        )
    raise CheckFailure(
        f"{what} returned {got:,}, expected {expected:,} ({source}). Add "
        "up the attention block(s), the feed-forward network and the layer "
        "norms, biases included."
    )


def _check_heads(
    fn: Callable[..., Any],
    dim: int,
    heads: tuple[int, int],
    hidden_dim: int,
    bias: bool,
    decoder: bool,
) -> None:
    first, what_first = _call_count(fn, dim, heads[0], hidden_dim, bias, decoder)
    second, what_second = _call_count(fn, dim, heads[1], hidden_dim, bias, decoder)
    if first != second:
        raise CheckFailure(
            f"{what_first} returned {first:,} but {what_second} returned {second:,}: "
            "the count must not depend on the number of heads. The heads split the "
            "dim-wide query, key and value projections into slices of dim // "
            "num_heads; they add no parameters."
        )


@check
def check_transformer_layer_parameters(
    fn: Callable[..., Any], hidden: bool = False
) -> str:
    """Check ``fn(dim, num_heads, hidden_dim, bias=True, decoder=False) -> int`` against
    the parameter counts of ``nn.TransformerEncoderLayer`` and
    ``nn.TransformerDecoderLayer``, and at a size too large to build."""
    g = _generator(hidden)
    if not hidden:
        heads_case = (16, (4, 2), 64, True, False)
        cases = [
            (16, 4, 64, True, False),
            (16, 4, 64, False, False),
            (16, 4, 64, True, True),
            (16, 4, 64, False, True),
        ]
        huge = (100_000, 8, 400_000, True, False)
    else:
        cases = []
        for bias in (True, False):
            for decoder in (False, True):
                while True:  # sizes at which every classic mistake gives its own count
                    num_heads = _randint(g, 1, 8)
                    dim = num_heads * _randint(g, 2, 12)
                    case = (dim, num_heads, _randint(g, 3, 5 * dim), bias, decoder)
                    if _unambiguous(*case):
                        break
                cases.append(case)
        order = torch.randperm(len(cases), generator=g).tolist()
        cases = [cases[i] for i in order]
        dim = 24 * _randint(g, 1, 4)
        heads_case = (
            dim,
            (_randint(g, 1, 3), 8),
            _randint(g, dim, 4 * dim),
            bool(_randint(g, 0, 1)),
            bool(_randint(g, 0, 1)),
        )
        dim = 64 * _randint(g, 1_000, 4_000)
        huge = (
            dim,
            2 ** _randint(g, 2, 6),
            _randint(g, 2 * dim, 4 * dim),
            bool(_randint(g, 0, 1)),
            bool(_randint(g, 0, 1)),
        )
    _check_heads(fn, *heads_case)
    integrity.verify()
    for dim, num_heads, hidden_dim, bias, decoder in cases:
        expected = _torch_count(dim, num_heads, hidden_dim, bias, decoder)
        layer = "TransformerDecoderLayer" if decoder else "TransformerEncoderLayer"
        _check_count(
            fn,
            dim,
            num_heads,
            hidden_dim,
            bias,
            decoder,
            expected,
            f"the parameter count of nn.{layer} with these sizes",
        )
        integrity.verify()
    expected = _reference_layer_parameters(*huge)
    _check_count(
        fn,
        *huge,
        expected=expected,
        source="a layer far too large to build: the count must come from a formula",
    )
    return (
        f"transformer_layer_parameters matches PyTorch's encoder and decoder "
        f"layers on {len(cases)} cases, ignores the number of heads, and works at "
        f"dim={huge[0]:,}."
    )


integrity.protect_module(__name__)
