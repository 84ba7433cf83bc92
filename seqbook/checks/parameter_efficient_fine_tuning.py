"""Checks for the exercises of the section "Parameter-efficient fine-tuning and
prompting".

``check_lora_linear`` builds the student's ``LoRALinear(base, r, alpha)`` around random
``nn.Linear`` layers (with and without bias, float32 and float64, square and not) and
checks the contract of the exercise: the base layer is kept and frozen, ``lora_A`` is
``(r, in)`` and random, ``lora_B`` is ``(out, r)`` and zero, only ``r (in + out)``
parameters are trainable, ``scaling`` is ``alpha / r``, the layer equals its base at
initialisation, computes ``base(x) + scaling * x A^T B^T`` once ``A`` and ``B`` are
set to random values, sends gradients to ``A`` and ``B`` only, and ``merge()`` folds
``scaling * B A`` into ``base.weight`` once (outputs unchanged, no double addition when
``forward`` or ``merge`` is called again). It names the classic mistakes: ``B`` random
at initialisation, ``alpha`` or ``1 / r`` or ``alpha * r`` as the scaling, ``B A``
transposed or in the wrong order, the base not frozen, merge adding the update twice.

``check_mean_pool`` calls ``mean_pool(last_hidden_state, attention_mask)`` on random
padded batches (integer masks as a Hugging Face tokenizer returns them, padding on the
right and on the left, large values at the padded positions) and compares it with the
reference. It names averaging over the padding, dividing by the padded length, the
[CLS] vector, the wrong axis, a normalised or summed result and a dtype taken from the
mask.

``hidden=False`` is the friendly visible check of the student version. ``hidden=True``
is what the hidden tests call: sizes, values and masks are drawn at grading time from a
fresh random seed, and the expected values are computed inside the check.
"""

from __future__ import annotations

import functools
import sys
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
from seqbook.models import parameter_efficient_fine_tuning as _reference_module

__all__ = ["check_lora_linear", "check_mean_pool"]

# Captured at import, before any student code can touch the modules.
_ReferenceLoRA = _reference_module.LoRALinear
_reference_mean_pool = _reference_module.mean_pool
_Linear = nn.Linear
_Parameter = nn.Parameter
# Module-level aliases of the reference's methods, so that forbid_calls recognises their
# code even when they are reached through a subclass or an alias.
_reference_lora_init = _ReferenceLoRA.__init__
_reference_lora_forward = _ReferenceLoRA.forward
_reference_lora_merge = _ReferenceLoRA.merge

_HERE = __name__
_LORA_REFERENCE = existing_paths(
    (
        "seqbook.models.parameter_efficient_fine_tuning.LoRALinear",
        "seqbook.models.parameter_efficient_fine_tuning.add_lora",
        f"{_HERE}._reference_lora_init",
        f"{_HERE}._reference_lora_forward",
        f"{_HERE}._reference_lora_merge",
    )
)
_LORA_REASON = "write the LoRA layer yourself from tensor primitives and nn.Parameter."
_POOL_REFERENCE = existing_paths(
    (
        "seqbook.models.parameter_efficient_fine_tuning.mean_pool",
        "seqbook.models.parameter_efficient_fine_tuning.sentence_embeddings",
        "seqbook.models.transformer_from_blocks.masked_mean_pool",
    )
)
_POOL_REASON = "write the masked mean yourself from tensor primitives."
_FRIENDLY = {
    f"{_HERE}._reference_lora_init": (
        "seqbook.models.parameter_efficient_fine_tuning.LoRALinear"
    ),
    f"{_HERE}._reference_lora_forward": (
        "seqbook.models.parameter_efficient_fine_tuning.LoRALinear"
    ),
    f"{_HERE}._reference_lora_merge": (
        "seqbook.models.parameter_efficient_fine_tuning.LoRALinear"
    ),
}

_generator = grading_generator
_randint = random_int


def _library_paths(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Paths of optional libraries, forbidden only when the library is already imported
    (importing peft or sentence-transformers just to forbid them would cost seconds)."""
    return existing_paths(tuple(p for p in paths if p.split(".")[0] in sys.modules))


# ``call_student`` under ``forbid_calls(paths)``, naming aliases in plain words.
_guarded_call = functools.partial(guarded_call, aliases=_FRIENDLY)


# ------------------------------------------------------------------------ LoRALinear


def _lora_paths() -> tuple[str, ...]:
    return _LORA_REFERENCE + _library_paths(
        (
            "peft.tuners.lora.layer.Linear.forward",
            "peft.tuners.lora.layer.Linear.merge",
            "peft.tuners.lora.layer.LoraLayer.update_layer",
        )
    )


def _scaling_mistake(value: float, r: int, alpha: float) -> str | None:
    """Name the wrong scaling ``value`` (``alpha / r`` is right)."""
    variants = {
        "alpha alone (the division by the rank r is missing)": alpha,
        "1 / r (alpha is missing)": 1.0 / r,
        "alpha * r (multiply by alpha and divide by r)": alpha * r,
        "r / alpha (upside down)": r / alpha,
        "1 (no scaling at all)": 1.0,
    }
    for name, variant in variants.items():
        if abs(variant - alpha / r) > 1e-9 and abs(value - variant) < 1e-9:
            return name
    return None


def _update_variants(
    x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, r: int, alpha: float
) -> dict[str, torch.Tensor]:
    """The low-rank update as the classic mistakes compute it, by name."""
    scaling = alpha / r
    variants: dict[str, torch.Tensor] = {}
    for name, factor in (
        ("the scaling is alpha alone, not alpha / r", alpha),
        ("the scaling is 1 / r, not alpha / r", 1.0 / r),
        ("the scaling is alpha * r, not alpha / r", alpha * r),
        ("the scaling is r / alpha, not alpha / r", r / alpha),
        ("the update is not scaled by alpha / r", 1.0),
    ):
        if abs(factor - scaling) > 1e-9:
            variants[name] = factor * (x @ a.T @ b.T)
    if x.shape[-1] == b.shape[0]:  # a square layer: in == out
        variants[
            "the product is transposed: the update of x is x A^T B^T "
            "(= (B A x^T)^T), not x B A"
        ] = scaling * (x @ b @ a)
    variants["the low-rank update is missing: add scaling * x A^T B^T to base(x)"] = (
        torch.zeros_like(x @ a.T @ b.T)
    )
    return variants


def _build_lora(
    cls: Any, base: nn.Linear, r: int, alpha: float, what: str
) -> nn.Module:
    weight_before = base.weight.detach().clone()
    bias_before = None if base.bias is None else base.bias.detach().clone()
    layer = _guarded_call(_lora_paths(), _LORA_REASON, cls, base, r, alpha, what=what)
    if not isinstance(layer, nn.Module):
        raise CheckFailure(
            f"{what} should create an nn.Module, got {type(layer).__name__}."
        )
    if getattr(layer, "base", None) is not base:
        raise CheckFailure(
            f"{what}: keep the linear layer you are given as `self.base` (the same "
            "object, not a copy), so that merge() updates the model's own weights."
        )
    if max_abs_error(base.weight, weight_before) != 0 or (
        bias_before is not None and max_abs_error(base.bias, bias_before) != 0
    ):
        raise CheckFailure(
            f"{what} changed the pretrained weights of `base`: leave "
            "them as they are (only A and B are new)."
        )
    for name, parameter in base.named_parameters():
        if parameter.requires_grad:
            raise CheckFailure(
                f"{what}: the base layer is not frozen (base.{name} still requires a "
                "gradient). Call requires_grad_(False) on the base layer's parameters: "
                "LoRA trains A and B only."
            )
    infeatures, outfeatures = base.in_features, base.out_features
    for name, shape, other in (
        ("lora_A", (r, infeatures), (infeatures, r)),
        ("lora_B", (outfeatures, r), (r, outfeatures)),
    ):
        value = getattr(layer, name, None)
        if value is None:
            raise CheckFailure(
                f"{what} has no attribute `{name}`: name the two "
                "low-rank factors self.lora_A and self.lora_B."
            )
        if not isinstance(value, _Parameter):
            raise CheckFailure(
                f"{what}: `{name}` should be an nn.Parameter (so that the optimizer "
                f"and model.parameters() see it), got {type(value).__name__}."
            )
        if tuple(value.shape) != shape:
            hint = (
                " (transposed)"
                if tuple(value.shape) == other and shape != other
                else ""
            )
            raise CheckFailure(
                f"{what}: `{name}` has shape {tuple(value.shape)}{hint}, expected "
                f"{shape}: lora_A is (r, in_features), lora_B is (out_features, r)."
            )
        if value.dtype != base.weight.dtype:
            raise CheckFailure(
                f"{what}: `{name}` has dtype {value.dtype}; create it with "
                f"the base weight's dtype ({base.weight.dtype})."
            )
        if not value.requires_grad:
            raise CheckFailure(
                f"{what}: `{name}` does not require a gradient, so it "
                "would never be trained."
            )
    if bool((layer.lora_B != 0).any()):
        raise CheckFailure(
            f"{what}: lora_B is not zero at initialisation, so the new layer does not "
            "compute what the pretrained layer computes. Start B at zero (and A at "
            "random): fine-tuning then starts exactly from the pretrained model."
        )
    a = layer.lora_A.detach()
    if not bool(torch.isfinite(a).all()) or bool((a == 0).all()):
        raise CheckFailure(
            f"{what}: lora_A is all zeros (or not finite). With A = 0 and B = 0 no "
            "gradient reaches either of them and the layer never learns: draw A at "
            "random, e.g. torch.randn(r, in_features) / math.sqrt(in_features)."
        )
    if float(a.std()) == 0.0 and a.numel() > 1:
        raise CheckFailure(
            f"{what}: every entry of lora_A is the same number: draw it at random."
        )
    scaling = getattr(layer, "scaling", None)
    if not isinstance(scaling, (int, float)) or isinstance(scaling, bool):
        raise CheckFailure(
            f"{what}: store the scaling alpha / r as a number in "
            f"`self.scaling`, got {type(scaling).__name__}."
        )
    if abs(scaling - alpha / r) > 1e-9 * max(1.0, alpha / r):
        mistake = _scaling_mistake(scaling, r, alpha)
        extra = f": it is {mistake}" if mistake else ""
        raise CheckFailure(
            f"{what}: self.scaling is {scaling:.6g}, expected alpha / r = "
            f"{alpha / r:.6g}{extra}."
        )
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    if trainable != r * (infeatures + outfeatures):
        raise CheckFailure(
            f"{what} has {trainable} trainable parameters, expected r (in + out) = "
            f"{r} x ({infeatures} + {outfeatures}) = {r * (infeatures + outfeatures)}: "
            "only lora_A and lora_B are trained."
        )
    return layer


def _lora_case(
    cls: Any,
    infeatures: int,
    outfeatures: int,
    r: int,
    alpha: float,
    bias: bool,
    dtype: torch.dtype,
    leading: tuple[int, ...],
    g: torch.Generator,
    check_gradients: bool,
) -> None:
    base = _Linear(infeatures, outfeatures, bias=bias).to(dtype)
    with torch.no_grad():
        base.weight.copy_(
            torch.randn(outfeatures, infeatures, generator=g, dtype=dtype)
        )
        if bias:
            base.bias.copy_(torch.randn(outfeatures, generator=g, dtype=dtype))
    weight0 = base.weight.detach().clone()
    shown = (
        f"LoRALinear(nn.Linear({infeatures}, {outfeatures}, bias={bias}), r={r}, "
        f"alpha={alpha:g})"
    )
    layer = _build_lora(cls, base, r, alpha, shown)
    what = f"{shown} on inputs of shape {(*leading, infeatures)} ({dtype})"
    x = torch.randn(*leading, infeatures, generator=g, dtype=dtype)

    def run(inputs: torch.Tensor, when: str) -> torch.Tensor:
        output = _guarded_call(
            _lora_paths(), _LORA_REASON, layer, inputs, what=f"{what} {when}"
        )
        expect_tensor(
            output,
            f"the output of {what} {when}",
            shape=(*leading, outfeatures),
            dtype=dtype,
        )
        return output

    # 1. A new layer computes what its base computes.
    with torch.no_grad():
        expected = x @ weight0.T + (base.bias if bias else 0.0)
    output = run(x.clone(), "at initialisation")
    if not _close(output, expected):
        raise CheckFailure(
            f"{what}: at initialisation (B = 0) the output should equal base(x), but "
            f"it differs by up to {max_abs_error(output, expected):.3g}."
        )
    # 2. With random A and B: base(x) + (alpha / r) x A^T B^T.
    a = torch.randn(r, infeatures, generator=g, dtype=dtype) / infeatures**0.5
    b = torch.randn(outfeatures, r, generator=g, dtype=dtype)
    with torch.no_grad():
        layer.lora_A.copy_(a)
        layer.lora_B.copy_(b)
    inputs = x.clone().requires_grad_(check_gradients)
    output = run(inputs, "with random A and B")
    if max_abs_error(inputs, x) != 0:
        raise CheckFailure(f"{what} modified its input in place.")
    with torch.no_grad():
        base_out = x @ weight0.T + (base.bias if bias else 0.0)
        expected = base_out + alpha / r * (x @ a.T @ b.T)
    if not _close(output, expected):
        for mistake, update in _update_variants(x, a, b, r, alpha).items():
            if _close(output, base_out + update):
                raise CheckFailure(f"{what} is wrong: {mistake}.")
    expect_close(
        output,
        expected,
        f"the output of {what} with random A and B "
        "(expected base(x) + alpha / r * x A^T B^T)",
        atol=1e-5 if dtype == torch.float32 else 1e-9,
    )
    # 3. Gradients reach A and B (and the input), never the base.
    if check_gradients:
        if not getattr(output, "requires_grad", False):
            raise CheckFailure(
                f"{what}: the output is detached, so no gradient flows "
                "back (avoid .detach(), .item(), numpy)."
            )
        upstream = torch.randn(output.shape, generator=g, dtype=dtype)
        (output * upstream).sum().backward()
        for name, parameter in base.named_parameters():
            if parameter.grad is not None:
                raise CheckFailure(
                    f"{what}: a gradient reached base.{name}; the base "
                    "layer must stay frozen."
                )
        flat_x = x.reshape(-1, infeatures)  # (N, in)
        flat_up = upstream.reshape(-1, outfeatures)  # (N, out)
        scaling = alpha / r
        expected_grads = {
            "lora_B": scaling * flat_up.T @ (flat_x @ a.T),  # (out, r)
            "lora_A": scaling * (flat_up @ b).T @ flat_x,  # (r, in)
            "the input": (upstream @ weight0 + scaling * (upstream @ b @ a)),
        }
        for name, grad in (
            ("lora_B", layer.lora_B.grad),
            ("lora_A", layer.lora_A.grad),
            ("the input", inputs.grad),
        ):
            if grad is None:
                raise CheckFailure(f"{what}: no gradient reaches {name}.")
            expect_close(
                grad,
                expected_grads[name],
                f"the gradient with respect to {name} in {what}",
            )
        layer.zero_grad(set_to_none=True)
    # 4. merge(): the update moves into base.weight once; the outputs do not change.
    with torch.no_grad():
        before = expected.detach()
        merged_weight = weight0 + alpha / r * (b @ a)  # (out, in)
    _guarded_call(
        _lora_paths(),
        _LORA_REASON,
        getattr(layer, "merge", None),
        what=f"{shown}.merge()",
    )
    if layer.base is not base:
        raise CheckFailure(
            f"{shown}.merge() replaced self.base by another layer; add the update to "
            "self.base.weight in place (with torch.no_grad()) instead."
        )
    weight = base.weight.detach()
    if not _close(weight, merged_weight):
        if max_abs_error(weight, weight0) == 0:
            raise CheckFailure(
                f"{shown}.merge() did not change base.weight: it should "
                "add scaling * lora_B @ lora_A to it."
            )
        for factor, name in (
            (alpha, "alpha alone"),
            (1.0 / r, "1 / r"),
            (alpha * r, "alpha * r"),
            (1.0, "no scaling"),
        ):
            if abs(factor - alpha / r) > 1e-9 and _close(
                weight, weight0 + factor * (b @ a)
            ):
                raise CheckFailure(
                    f"{shown}.merge() scales the update by {name}; it "
                    "must add (alpha / r) * lora_B @ lora_A."
                )
        if infeatures == outfeatures and _close(
            weight, weight0 + alpha / r * (b @ a).T
        ):
            raise CheckFailure(
                f"{shown}.merge() adds (B A)^T: base.weight is "
                "(out, in), so add lora_B @ lora_A, not its transpose."
            )
        expect_close(
            weight,
            merged_weight,
            f"base.weight after {shown}.merge() (expected W + alpha / r * B @ A)",
        )
    output = run(x.clone(), "after merge()")
    if not _close(output, before):
        twice = before + alpha / r * (x @ a.T @ b.T)
        if _close(output, twice):
            raise CheckFailure(
                f"{what}: after merge() the update is added twice (once inside "
                "base.weight, once more by forward). After merging, forward must "
                "return base(x) alone: remember that the layer is merged "
                "(self.merged = True)."
            )
        expect_close(
            output, before, f"the output of {what} after merge() (it must not change)"
        )
    _guarded_call(
        _lora_paths(), _LORA_REASON, layer.merge, what=f"{shown}.merge() a second time"
    )
    if not _close(base.weight.detach(), merged_weight):
        raise CheckFailure(
            f"calling {shown}.merge() twice adds the update twice: "
            "merge() must do nothing when the layer is already merged."
        )
    output = run(x.clone(), "after merge() was called twice")
    expect_close(output, before, f"the output of {what} after two merge() calls")


@check
def check_lora_linear(lora_class: Any, hidden: bool = False) -> str:
    """Check a ``LoRALinear(base, r, alpha)`` module class (see the module
    docstring)."""
    if not isinstance(lora_class, type) or not issubclass(lora_class, nn.Module):
        raise CheckFailure(
            "LoRALinear should be a class derived from nn.Module, got "
            f"{'None' if lora_class is None else type(lora_class).__name__}."
        )
    if issubclass(lora_class, _ReferenceLoRA):
        raise ForbiddenCall(
            f"your LoRALinear is (or derives from) "
            "`seqbook.models.parameter_efficient_fine_tuning.LoRALinear`: "
            f"{_LORA_REASON}"
        )
    peft_layer = getattr(sys.modules.get("peft.tuners.lora.layer"), "LoraLayer", None)
    if peft_layer is not None and issubclass(lora_class, peft_layer):
        raise ForbiddenCall(
            f"your LoRALinear derives from peft's LoraLayer: {_LORA_REASON}"
        )
    g = _generator(hidden)
    # (in, out, r, alpha, bias, dtype, leading axes, gradients)
    cases: list[tuple[int, int, int, float, bool, torch.dtype, tuple[int, ...], bool]]
    if not hidden:
        # A square layer first: there a transposed product still runs, and is named.
        cases = [
            (5, 5, 2, 8.0, True, torch.float64, (4,), True),
            (6, 5, 2, 4.0, True, torch.float32, (3,), True),
            (4, 7, 3, 3.0, False, torch.float64, (2, 3), True),
        ]
    else:
        cases = []
        for square in (True, False):  # square first, as above
            r = _randint(g, 2, 6)
            infeatures = _randint(g, r + 1, 40)
            outfeatures = infeatures if square else _randint(g, r + 1, 40)
            while not square and outfeatures == infeatures:
                outfeatures = _randint(g, r + 1, 40)
            alpha = float(_randint(g, 1, 32))
            while abs(alpha / r - 1) < 1e-9 or abs(alpha - r * r) < 1e-9 or alpha == 1:
                alpha = float(_randint(g, 2, 32))  # scaling mistakes must differ
            leading = tuple(_randint(g, 2, 5) for _ in range(_randint(g, 1, 2)))
            cases.append(
                (
                    infeatures,
                    outfeatures,
                    r,
                    alpha,
                    bool(_randint(g, 0, 1)),
                    torch.float64,
                    leading,
                    True,
                )
            )
        cases.append(
            (
                _randint(g, 5, 24),
                _randint(g, 5, 24),
                1,
                2.0,
                True,
                torch.float32,
                (_randint(g, 2, 6),),
                False,
            )
        )  # rank 1
    for infeatures, outfeatures, r, alpha, bias, dtype, leading, grads in cases:
        _lora_case(
            lora_class,
            infeatures,
            outfeatures,
            r,
            alpha,
            bias,
            dtype,
            leading,
            g,
            grads,
        )
        integrity.verify()
    return (
        f"LoRALinear is correct on {len(cases)} layers: equal to its base at "
        "initialisation, alpha / r scaling, gradients to A and B only, merge() "
        "exact and idempotent."
    )


# ------------------------------------------------------------------------ mean pool


def _pool_variants(hidden: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean pooling as the classic mistakes compute it, by name."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (hidden * weights).sum(dim=1)  # (B, D)
    count = weights.sum(dim=1)  # (B, 1)
    last = (mask * torch.arange(mask.shape[1])).argmax(dim=1)  # last real position
    right = total / count
    return {
        "the padding is averaged in (the mean runs over all T positions): multiply by "
        "the mask and divide by the number of real tokens": hidden.mean(dim=1),
        "the masked sum is divided by the padded length T instead of the number of "
        "real tokens (attention_mask.sum(dim=1))": total / hidden.shape[1],
        "this is the vector of the first token ([CLS]); mean pooling averages all the "
        "real tokens": hidden[:, 0],
        "this is the vector of the last real token; mean pooling averages all the real "
        "tokens": hidden[torch.arange(hidden.shape[0]), last],
        "the masked sum is not divided by the number of real tokens": total,
        "the mean is L2-normalised: mean_pool returns the plain mean (sentence "
        "embeddings are normalised afterwards)": torch.nn.functional.normalize(
            right, dim=-1
        ),
        "this is a max over the real tokens, not a mean": hidden.masked_fill(
            weights == 0, float("-inf")
        ).amax(dim=1),
    }


def _pool_case(
    fn: Callable[..., Any],
    hidden: torch.Tensor,
    mask: torch.Tensor,
    label: str,
    check_gradients: bool,
) -> None:
    batch, _, dim = hidden.shape
    what = f"mean_pool on {label}"
    inputs = hidden.clone().requires_grad_(check_gradients)
    mask_in = mask.clone()
    paths = _POOL_REFERENCE + _library_paths(
        (
            "sentence_transformers.models.Pooling.forward",  # where it lives varies
            "sentence_transformers.models.Pooling.Pooling.forward",
            "sentence_transformers.sentence_transformer.modules.pooling.Pooling.forward",
        )
    )
    output = _guarded_call(paths, _POOL_REASON, fn, inputs, mask_in, what=what)
    if max_abs_error(inputs, hidden) != 0 or not bool((mask_in == mask).all()):
        raise CheckFailure(f"{what} modified its arguments in place.")
    expected = _reference_mean_pool(hidden, mask)
    if isinstance(output, torch.Tensor) and tuple(output.shape) == tuple(mask.shape):
        raise CheckFailure(
            f"{what} has shape {tuple(output.shape)} = (B, T): it averaged over the "
            f"features. Average over the tokens (dim=1) to get (B, D) = {(batch, dim)}."
        )
    expect_tensor(output, f"the output of {what}", shape=(batch, dim))
    if output.dtype != hidden.dtype:
        raise CheckFailure(
            f"the output of {what} has dtype {output.dtype}, expected {hidden.dtype} "
            "(the hidden state's): convert the integer mask to the hidden state's "
            "dtype, attention_mask.to(last_hidden_state.dtype), not the other way "
            "round."
        )
    if not _close(output, expected):
        for mistake, variant in _pool_variants(hidden, mask).items():
            if not _close(variant, expected) and _close(output, variant):
                raise CheckFailure(f"{what} is wrong: {mistake}.")
    expect_close(output, expected, f"the output of {what}")
    if check_gradients:
        if not getattr(output, "requires_grad", False):
            raise CheckFailure(
                f"{what}: the output is detached, so no gradient flows "
                "back to the encoder."
            )
        (grad,) = torch.autograd.grad(output.sum(), inputs)
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        expected_grad = (weights / weights.sum(dim=1, keepdim=True)).expand_as(hidden)
        expect_close(grad, expected_grad, f"the gradient of {what}")


def _random_mask(
    g: torch.Generator, batch: int, length: int, left: bool, dtype: torch.dtype
) -> torch.Tensor:
    """A 0/1 mask with a full row, a row with one real token and random lengths."""
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    lengths[-1] = 1
    positions = torch.arange(length)
    if left:  # padding on the left: the real tokens are the last ones
        mask = positions[None, :] >= (length - lengths)[:, None]
    else:
        mask = positions[None, :] < lengths[:, None]
    return mask.to(dtype)  # (B, T)


def _padded_hidden(
    g: torch.Generator, mask: torch.Tensor, dim: int, dtype: torch.dtype
) -> torch.Tensor:
    """Hidden states with large values at the padded positions (padding is not zero in
    a real encoder's output, and averaging it in must show)."""
    batch, length = mask.shape
    hidden = torch.randn(batch, length, dim, generator=g, dtype=dtype)
    padding = (mask == 0).unsqueeze(-1)
    return torch.where(padding, hidden * 5 + 20, hidden)  # (B, T, D)


@check
def check_mean_pool(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``mean_pool(last_hidden_state (B, T, D), attention_mask (B, T)) ->
    (B, D)``, the mean over the real tokens (mask 1) of an integer Hugging Face mask."""
    g = _generator(hidden)
    cases: list[tuple[torch.Tensor, torch.Tensor, str, bool]] = []
    if not hidden:
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
        cases.append(
            (
                _padded_hidden(g, mask, 4, torch.float32),
                mask,
                "a (B=3, T=5, D=4) batch padded on the right",
                False,
            )
        )
        mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
        cases.append(
            (
                _padded_hidden(g, mask, 3, torch.float64),
                mask,
                "a float64 (B=2, T=4, D=3) batch padded on the left",
                True,
            )
        )
    else:
        for left, mask_dtype, dtype in (
            (False, torch.long, torch.float32),
            (True, torch.int32, torch.float64),
            (False, torch.long, torch.float64),
        ):
            batch = _randint(g, 3, 7)
            length = _randint(g, batch + 1, 16)  # B != T != D
            dim = _randint(g, length + 1, 40)
            mask = _random_mask(g, batch, length, left, mask_dtype)
            side = "left" if left else "right"
            cases.append(
                (
                    _padded_hidden(g, mask, dim, dtype),
                    mask,
                    f"a random {dtype} batch of shape {(batch, length, dim)} padded "
                    f"on the {side} ({mask_dtype} mask)",
                    dtype == torch.float64,
                )
            )
    for hidden_state, mask, label, grads in cases:
        _pool_case(fn, hidden_state, mask, label, grads)
        integrity.verify()
    return f"mean_pool matches the reference on {len(cases)} padded batches."


integrity.protect_module(__name__)
