"""Checks for the exercises of the section "The modern decoder block".

``check_rms_norm`` builds the student's ``RMSNorm(dim, eps=1e-6)`` class, gives it
random gains and compares it with ``torch.nn.RMSNorm`` (outputs and gradients); when it
differs it names the classic mistakes (the mean subtracted, as layer norm does; ``eps``
added outside the square root; the gain forgotten; the standard deviation instead of
the root mean square; the wrong axis). The built-in and the book's reference are
disabled while the student's code runs.

``check_apply_rotary`` runs ``apply_rotary(x, cos, sin, positions=None)`` against the
reference in :mod:`seqbook.models.modern_decoder_block` and recognises the interleaved
layout (pairs ``2i, 2i + 1``) where the half-split one (``i, i + d/2``) is expected,
the rotation turned the wrong way, positions offset by one, and the ``positions``
argument ignored.

``check_block_forward`` runs ``modern_block_forward(block, x, positions=None)`` on
reference blocks (``ModernDecoderBlock``) with random weights and gains, grouped
key/value heads and positions with gaps (a uniform shift of all positions changes no
score), against the reference forward pass captured at import; it names RoPE applied to
the values, no rotation, ``positions`` ignored, no causal mask, key/value heads tiled
instead of repeated in place, post-norm wiring, the norms swapped, the parallel sum of
the seed article, a missing residual and a missing output projection. Calling the block,
its attention module or ``pre_ln_block`` is refused while the student's code runs.

``hidden=False`` is the friendly visible check; ``hidden=True`` draws sizes and values
from a fresh seed at grading time.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from seqbook.checks import integrity
from seqbook.checks._harness import check, close_tensors, guarded_call, verify
from seqbook.checks.core import (
    CheckFailure,
    describe,
    expect_close,
    expect_tensor,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import ForbiddenCall, existing_paths
from seqbook.models import attention as _attention
from seqbook.models import attention_at_scale as _at_scale
from seqbook.models import modern_decoder_block as _reference_module

__all__ = ["check_rms_norm", "check_apply_rotary", "check_block_forward"]

# Captured at import, before any student code can touch the modules.
_ReferenceRMSNorm = _reference_module.RMSNorm
_reference_rotary = _reference_module.apply_rotary
_rotary_frequencies = _reference_module.rotary_frequencies
_TorchRMSNorm = nn.RMSNorm
_ReferenceBlock = _reference_module.ModernDecoderBlock
_reference_block_forward = _reference_module.ModernDecoderBlock.forward
_split_heads = _attention.split_heads
_merge_heads = _attention.merge_heads
_causal_mask = _attention.causal_mask
_attend = _attention.scaled_dot_product_attention
_repeat_kv = _at_scale.repeat_kv

_RMS_BUILTINS = existing_paths(
    (
        "torch.nn.RMSNorm.forward",
        "torch.nn.functional.rms_norm",
        "torch.rms_norm",
        "seqbook.models.modern_decoder_block.RMSNorm.forward",
    )
)
_RMS_REASON = (
    "write RMSNorm from tensor operations (square, mean, rsqrt or sqrt); the built-in "
    "and the book's reference are disabled while it is checked"
)
_ROTARY_REFERENCE = existing_paths(
    ("seqbook.models.modern_decoder_block.apply_rotary",)
)
_ROTARY_REASON = "the book's apply_rotary is disabled while yours is checked"
_BLOCK_REFERENCE = existing_paths(
    (
        "seqbook.models.modern_decoder_block.ModernDecoderBlock.forward",
        "seqbook.models.modern_decoder_block.LlamaStyleAttention.forward",
        "seqbook.models.transformer.pre_ln_block",
    )
)
_BLOCK_REASON = (
    "write the block's forward pass from its parts (block.norm1, block.attention's "
    "projections, block.feed_forward, ...); calling the block, its attention module "
    "or pre_ln_block is disabled while your function is checked"
)


# ------------------------------------------------------------------------ RMSNorm


def _rms_variants(
    x: torch.Tensor, weight: torch.Tensor, eps: float
) -> dict[str, torch.Tensor]:
    """RMSNorm as the classic mistakes compute it (float64)."""
    x, weight = x.double(), weight.double()
    mean_square = x.square().mean(-1, keepdim=True)
    centred = x - x.mean(-1, keepdim=True)
    variants = {
        "mean_subtracted": centred
        * torch.rsqrt(centred.square().mean(-1, keepdim=True) + eps)
        * weight,
        "eps_outside": x / (mean_square.sqrt() + eps) * weight,
        "no_weight": x * torch.rsqrt(mean_square + eps),
        "std": x * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * weight,
        "no_eps": x * torch.rsqrt(mean_square) * weight,
    }
    if x.dim() >= 2 and x.shape[-2] == x.shape[-1]:
        wrong_axis = x.square().mean(-2, keepdim=True)
        variants["wrong_axis"] = x * torch.rsqrt(wrong_axis + eps) * weight
    return variants


_RMS_MISTAKES = {
    "mean_subtracted": "it subtracts the mean first, as layer norm does. RMSNorm "
    "divides x itself by sqrt(mean(x^2) + eps): no centring, no bias",
    "eps_outside": "eps is added outside the square root, x / (sqrt(mean(x^2)) + eps); "
    "it belongs inside, x / sqrt(mean(x^2) + eps), as torch.nn.RMSNorm has it",
    "no_weight": "the learned gain self.weight is never applied",
    "std": "it divides by the standard deviation (the mean is subtracted inside the "
    "variance); RMSNorm uses the root mean square of x itself",
    "no_eps": "eps is missing: x / sqrt(mean(x^2)) without it (a zero row gives NaN)",
    "wrong_axis": "the mean of squares is taken over the wrong axis; RMSNorm averages "
    "over the last axis, the features of one position",
}


def _build(cls: Any, dim: int, eps: float | None, what: str) -> nn.Module:
    kwargs = {} if eps is None else {"eps": eps}
    try:
        module = cls(dim, **kwargs)
    except NotImplementedError as err:
        raise CheckFailure(
            f"{what}: the constructor still raises NotImplementedError."
        ) from err
    except Exception as err:  # noqa: BLE001 - the student's error, shown in words
        raise CheckFailure(
            f"{what}: RMSNorm({dim}{', eps=' + str(eps) if eps else ''}) raised "
            f"{type(err).__name__}: {err}"
        ) from err
    weight = getattr(module, "weight", None)
    if not isinstance(weight, nn.Parameter) or tuple(weight.shape) != (dim,):
        raise CheckFailure(
            f"{what}: RMSNorm({dim}) should have a parameter `weight` of shape "
            f"({dim},), got {describe(weight)}."
        )
    if getattr(module, "bias", None) is not None:
        raise CheckFailure(f"{what}: RMSNorm has no bias; remove `self.bias`.")
    return module


def _run_rms_case(
    cls: Any,
    dim: int,
    eps: float | None,
    x: torch.Tensor,
    g: torch.Generator,
    grads: bool,
    label: str,
) -> None:
    what = f"RMSNorm on {label}"
    module = _build(cls, dim, eps, what).to(x.dtype)
    builtin = _TorchRMSNorm(dim, eps=1e-6 if eps is None else eps).to(x.dtype)
    with torch.no_grad():
        gains = 1.0 + 0.5 * torch.randn(dim, generator=g, dtype=x.dtype)
        module.weight.copy_(gains)
        builtin.weight.copy_(gains)
    student_x = x.clone().requires_grad_(grads)
    out = guarded_call(_RMS_BUILTINS, _RMS_REASON, module, student_x, what=what)
    expected = builtin(x)
    expect_tensor(out, what, shape=expected.shape, dtype=x.dtype)
    if not close_tensors(out, expected, 1e-5):
        for name, value in _rms_variants(x, gains, builtin.eps).items():
            if close_tensors(out, value, 1e-5) and not close_tensors(
                value, expected, 1e-4
            ):
                raise CheckFailure(
                    f"{what}: wrong values because {_RMS_MISTAKES[name]}."
                )
        expect_close(out, expected, what)
    if grads:
        upstream = torch.randn(expected.shape, generator=g, dtype=x.dtype)
        grad_x, grad_w = torch.autograd.grad(
            (out * upstream).sum(), [student_x, module.weight], allow_unused=True
        )
        reference_x = x.clone().requires_grad_(True)
        expected_grads = torch.autograd.grad(
            (builtin(reference_x) * upstream).sum(), [reference_x, builtin.weight]
        )
        for name, grad, wanted in zip(
            ("the input", "weight"), (grad_x, grad_w), expected_grads
        ):
            if grad is None:
                raise CheckFailure(f"{what}: no gradient reaches {name}.")
            expect_close(grad, wanted, f"the gradient with respect to {name} in {what}")


@check
def check_rms_norm(rms_norm_class: Any, hidden: bool = False) -> str:
    """Check an ``RMSNorm(dim, eps=1e-6)`` module class against ``torch.nn.RMSNorm``."""
    if not isinstance(rms_norm_class, type) or not issubclass(
        rms_norm_class, nn.Module
    ):
        raise CheckFailure(
            "RMSNorm should be a class derived from nn.Module, got "
            f"{describe(rms_norm_class)}."
        )
    for forbidden, name in (
        (_ReferenceRMSNorm, "seqbook.models.modern_decoder_block.RMSNorm"),
        (_TorchRMSNorm, "torch.nn.RMSNorm"),
    ):
        if issubclass(rms_norm_class, forbidden):
            raise ForbiddenCall(
                f"your RMSNorm is (or derives from) `{name}`: {_RMS_REASON}."
            )
    g = grading_generator(hidden)
    cases: list[tuple[int, float | None, torch.Tensor, bool, str]] = []
    if not hidden:
        cases += [
            (
                6,
                None,
                torch.randn(2, 3, 6, generator=g) + 2.0,
                False,
                "a (B=2, T=3, D=6) batch with a mean far from 0",
            ),
            (
                5,
                0.5,
                torch.randn(4, 5, generator=g) * 0.3,
                False,
                "a (4, 5) batch with a large eps=0.5",
            ),
            (
                4,
                None,
                torch.randn(3, 4, generator=g, dtype=torch.float64) + 1.0,
                True,
                "a float64 (3, 4) batch (gradients checked)",
            ),
        ]
    else:
        for index in range(3):
            dim = random_int(g, 2, 40)
            leading = tuple(random_int(g, 2, 5) for _ in range(random_int(g, 1, 3)))
            if index == 0 and len(leading) >= 1:
                leading = (*leading[:-1], dim)  # T == D: a wrong axis runs silently
            eps = None if index == 1 else float(10 ** -random_int(g, 0, 3))
            dtype = torch.float64 if index == 2 else torch.float32
            x = torch.randn(*leading, dim, generator=g, dtype=dtype) * random_int(
                g, 1, 4
            ) + random_int(g, -3, 3)
            cases.append(
                (
                    dim,
                    eps,
                    x,
                    True,
                    f"a random {tuple(x.shape)} input, "
                    f"eps={eps}, {str(dtype).replace('torch.', '')}",
                )
            )
    zero = torch.zeros(2, 8)
    zero[1] = torch.randn(8, generator=g)
    cases.append((8, None, zero, False, "a batch whose first row is all zeros"))
    for dim, eps, x, grads, label in cases:
        _run_rms_case(rms_norm_class, dim, eps, x, g, grads, label)
        verify()
    return f"RMSNorm matches torch.nn.RMSNorm on {len(cases)} cases."


# ------------------------------------------------------------------------- RoPE


def _interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotation of the pairs (2i, 2i + 1) with the angles of the half-split tables."""
    half = x.size(-1) // 2
    c, s = cos[..., :half], sin[..., :half]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.stack((even * c - odd * s, odd * c + even * s), dim=-1)
    return out.flatten(-2)


def _rotary_variants(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    positions: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    length = x.size(-2)
    if positions is None:
        positions = torch.arange(length)
    variants = {
        "wrong_sign": _reference_rotary(x, cos, -sin, positions),
        "not_rotated": x,
    }
    if int(positions.max()) + 1 < cos.size(0):
        variants["offset"] = _reference_rotary(x, cos, sin, positions + 1)
    if int(positions.min()) >= 1:
        variants["offset_down"] = _reference_rotary(x, cos, sin, positions - 1)
    if positions.dim() == 1 and not torch.equal(positions, torch.arange(length)):
        variants["positions_ignored"] = _reference_rotary(x, cos, sin)
    if positions.dim() == 2:
        variants["positions_ignored"] = _reference_rotary(x, cos, sin)
    c, s = cos[positions], sin[positions]
    if positions.dim() == 2:
        c, s = c[:, None], s[:, None]
    variants["interleaved"] = _interleaved(x, c, s)
    return variants


_ROTARY_MISTAKES = {
    "interleaved": "it rotates the interleaved pairs (x[2i], x[2i+1]); the book (and "
    "Hugging Face's Llama) uses the half-split layout: feature i turns with feature "
    "i + d/2, which is what rotate_half and the tables of rotary_frequencies encode",
    "wrong_sign": "the rotation turns the wrong way: the result is x * cos + "
    "rotate_half(x) * sin, with rotate_half(x) = (-x2, x1)",
    "not_rotated": "x comes back unrotated",
    "offset": "the positions are offset by one: without `positions` the first token "
    "is at position 0 and uses row 0 of the tables (cos = 1, sin = 0)",
    "offset_down": "the positions are offset by one: position t uses row t of the "
    "tables",
    "positions_ignored": "the `positions` argument is ignored: when it is given, row "
    "positions[t] (or positions[b, t]) of the tables must be used, not row t",
}


def _run_rotary_case(
    fn: Callable[..., Any],
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    positions: torch.Tensor | None,
    label: str,
) -> None:
    what = f"apply_rotary on {label}"
    args = [x.clone(), cos.clone(), sin.clone()]
    kwargs = {} if positions is None else {"positions": positions.clone()}
    out = guarded_call(
        _ROTARY_REFERENCE, _ROTARY_REASON, fn, *args, what=what, **kwargs
    )
    expected = _reference_rotary(x, cos, sin, positions)
    expect_tensor(out, what, shape=expected.shape, dtype=x.dtype)
    if max_abs_error(args[0], x) != 0:
        raise CheckFailure(f"{what} modified x in place.")
    if not close_tensors(out, expected, 1e-5):
        for name, value in _rotary_variants(x, cos, sin, positions).items():
            if close_tensors(out, value, 1e-5) and not close_tensors(
                value, expected, 1e-4
            ):
                raise CheckFailure(
                    f"{what}: wrong values because {_ROTARY_MISTAKES[name]}."
                )
        expect_close(out, expected, what)


@check
def check_apply_rotary(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(x, cos, sin, positions=None)`` -> ``x`` rotated to its positions."""
    g = grading_generator(hidden)
    cases = []
    if not hidden:
        cos, sin = _rotary_frequencies(8, 16)
        x = torch.randn(2, 3, 5, 8, generator=g)
        cases.append((x, cos, sin, None, "(B=2, H=3, T=5, d=8), default positions"))
        cases.append(
            (x, cos, sin, torch.tensor([3, 4, 5, 6, 7]), "the same x at positions 3..7")
        )
        x64 = torch.randn(2, 1, 4, 6, generator=g, dtype=torch.float64)
        cos64, sin64 = _rotary_frequencies(6, 10, dtype=torch.float64)
        cases.append(
            (
                x64,
                cos64,
                sin64,
                torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]]),
                "float64 (2, 1, 4, 6) with positions per sequence (B, T)",
            )
        )
    else:
        for index in range(3):
            head_dim = 2 * random_int(g, 2, 12)
            batch, heads, length = (
                random_int(g, 1, 3),
                random_int(g, 1, 4),
                random_int(g, 2, 9),
            )
            max_len = length + random_int(g, 2, 20)
            base = float(random_int(g, 10, 10000))
            dtype = torch.float64 if index == 2 else torch.float32
            cos, sin = _rotary_frequencies(head_dim, max_len, base, dtype=dtype)
            x = torch.randn(batch, heads, length, head_dim, generator=g, dtype=dtype)
            if index == 0:
                positions = None
            elif index == 1:
                start = random_int(g, 1, max_len - length)
                positions = torch.arange(start, start + length)
            else:
                starts = torch.randint(1, max_len - length + 1, (batch, 1), generator=g)
                positions = starts + torch.arange(length)
            cases.append(
                (
                    x,
                    cos,
                    sin,
                    positions,
                    f"random {tuple(x.shape)}, base {base:g}, positions "
                    f"{'default' if positions is None else tuple(positions.shape)}",
                )
            )
    for x, cos, sin, positions, label in cases:
        _run_rotary_case(fn, x, cos, sin, positions, label)
        integrity.verify()
    return f"apply_rotary matches the reference on {len(cases)} cases."


# -------------------------------------------------------------- the block's forward

# The block as each classic mistake computes it (the first two names: correct).
_BLOCK_MISTAKES = {
    "rope_on_values": "the values are rotated too. RoPE turns queries and keys only: "
    "values carry what a token says, not where it stands",
    "no_rope": "queries and keys are never rotated: apply_rotary(q, ...) and "
    "apply_rotary(k, ...) with the block's tables block.attention.cos and .sin",
    "positions_ignored": "the `positions` argument is ignored: pass it on to "
    "apply_rotary for the queries and the keys",
    "no_causal_mask": "there is no causal mask: position t may attend only to "
    "positions 0..t (causal_mask(T) as the mask, or is_causal=True)",
    "kv_tiled": "the key/value heads are tiled [k0, k1, k0, k1] instead of repeated "
    "in place [k0, k0, k1, k1]: use repeat_kv (query head h reads key/value head "
    "h // groups)",
    "post_norm": "it is wired post-norm, norm1(x + attention(x)) then "
    "norm2(h + feed_forward(h)); the modern block is pre-norm: "
    "h = x + attention(norm1(x)), y = h + feed_forward(norm2(h))",
    "norms_swapped": "the two norms are swapped: norm1 goes before attention, norm2 "
    "before the feed-forward network",
    "parallel": "attention and the feed-forward network both read x and are summed "
    "(the seed article's form); they run one after the other: the feed-forward "
    "network reads h = x + attention(norm1(x)), through norm2",
    "no_attention_residual": "the first residual is missing: h = x + "
    "attention(norm1(x)), not attention(norm1(x))",
    "no_ffn_residual": "the second residual is missing: y = h + "
    "feed_forward(norm2(h)), not feed_forward(norm2(h))",
    "no_o_proj": "the output projection block.attention.o_proj is never applied to "
    "the merged heads",
}


def _block_variant(
    block: nn.Module, x: torch.Tensor, positions: torch.Tensor | None, mistake: str
) -> torch.Tensor:
    """The block's forward pass, with one classic ``mistake`` (or none: "")."""
    attention = block.attention
    cos, sin = attention.cos, attention.sin
    if mistake == "positions_ignored":
        positions = None

    def attend(h):  # (B, T, dim) -> (B, T, dim)
        q = _split_heads(attention.q_proj(h), attention.num_heads)
        k = _split_heads(attention.k_proj(h), attention.num_kv_heads)
        v = _split_heads(attention.v_proj(h), attention.num_kv_heads)
        if mistake != "no_rope":
            q = _reference_rotary(q, cos, sin, positions)
            k = _reference_rotary(k, cos, sin, positions)
        if mistake == "rope_on_values":
            v = _reference_rotary(v, cos, sin, positions)
        groups = attention.num_heads // attention.num_kv_heads
        if mistake == "kv_tiled":
            k, v = k.repeat(1, groups, 1, 1), v.repeat(1, groups, 1, 1)
        else:
            k, v = _repeat_kv(k, groups), _repeat_kv(v, groups)
        mask = None if mistake == "no_causal_mask" else _causal_mask(h.size(1))
        heads, _ = _attend(q, k, v, mask)
        merged = _merge_heads(heads)
        return merged if mistake == "no_o_proj" else attention.o_proj(merged)

    norm1, norm2, ffn = block.norm1, block.norm2, block.feed_forward
    if mistake == "norms_swapped":
        norm1, norm2 = norm2, norm1
    if mistake == "post_norm":
        h = norm1(x + attend(x))
        return norm2(h + ffn(h))
    if mistake == "parallel":
        return x + attend(norm1(x)) + ffn(norm2(x))
    h = attend(norm1(x))
    if mistake != "no_attention_residual":
        h = x + h
    y = ffn(norm2(h))
    return y if mistake == "no_ffn_residual" else h + y


def _random_block(
    dim: int,
    heads: int,
    kv_heads: int,
    hidden: int,
    max_len: int,
    base: float,
    g: torch.Generator,
    dtype: torch.dtype,
) -> nn.Module:
    """A reference block with random weights and gains (so that swapped norms show)."""
    block = _ReferenceBlock(
        dim, heads, kv_heads, hidden, eps=1e-6, max_len=max_len, rope_base=base
    )
    with torch.no_grad():
        for name, parameter in block.named_parameters():
            noise = torch.randn(parameter.shape, generator=g)
            if name.startswith("norm"):
                parameter.copy_(1.0 + 0.5 * noise)
            else:
                parameter.copy_(noise * parameter.shape[-1] ** -0.5)
    return block.to(dtype).eval()


def _run_block_case(
    fn: Callable[..., Any],
    block: nn.Module,
    x: torch.Tensor,
    positions: torch.Tensor | None,
    label: str,
) -> None:
    what = f"modern_block_forward on {label}"
    with torch.no_grad():
        expected = _reference_block_forward(block, x, positions)
        state = {name: value.clone() for name, value in block.state_dict().items()}
    args = (block, x.clone())
    kwargs = {} if positions is None else {"positions": positions.clone()}
    with torch.no_grad():
        out = guarded_call(
            _BLOCK_REFERENCE, _BLOCK_REASON, fn, *args, what=what, **kwargs
        )
    expect_tensor(out, what, shape=expected.shape, dtype=x.dtype)
    if max_abs_error(args[1], x) != 0:
        raise CheckFailure(f"{what} modified x in place.")
    changed = [
        name
        for name, value in block.state_dict().items()
        if max_abs_error(value, state[name]) != 0
    ]
    if changed:
        raise CheckFailure(
            f"{what} changed the block's weights ({', '.join(changed)}); the forward "
            "pass only reads them."
        )
    if not close_tensors(out, expected, 1e-5):
        with torch.no_grad():
            for name in _BLOCK_MISTAKES:
                value = _block_variant(block, x, positions, name)
                if close_tensors(out, value, 1e-5) and not close_tensors(
                    value, expected, 1e-3
                ):
                    raise CheckFailure(
                        f"{what}: wrong values because {_BLOCK_MISTAKES[name]}."
                    )
        expect_close(out, expected, what)


@check
def check_block_forward(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(block, x, positions=None)`` -> the output of the Llama-style
    ``block`` (a ``ModernDecoderBlock``) on ``x`` ``(B, T, dim)``."""
    g = grading_generator(hidden)
    cases = []
    if not hidden:
        block = _random_block(16, 4, 2, 24, 32, 10000.0, g, torch.float32)
        x = torch.randn(2, 5, 16, generator=g)
        cases.append(
            (
                block,
                x,
                None,
                "(B=2, T=5, dim=16), 4 query and 2 key/value heads, default positions",
            )
        )
        cases.append((block, x, torch.arange(7, 12), "the same x at positions 7..11"))
        block64 = _random_block(12, 6, 2, 20, 24, 500.0, g, torch.float64)
        x64 = torch.randn(2, 4, 12, generator=g, dtype=torch.float64)
        cases.append(
            (
                block64,
                x64,
                torch.tensor([[0, 1, 4, 5], [2, 6, 7, 11]]),
                "float64 (2, 4, 12), 6 query and 2 key/value heads, positions "
                "with gaps, per sequence (B, T)",
            )
        )
    else:
        for index in range(3):
            # Groups of at least 2; once 2 or more key/value heads (their order shows).
            kv_heads = random_int(g, 2 if index == 0 else 1, 3)
            groups = random_int(g, 2, 3)
            heads = kv_heads * groups
            head_dim = 2 * random_int(g, 1, 4)
            dim = heads * head_dim
            batch, length = random_int(g, 1, 3), random_int(g, 3, 8)
            max_len = length + random_int(g, 4, 20)
            base = float(random_int(g, 10, 10000))
            dtype = torch.float64 if index == 2 else torch.float32
            block = _random_block(
                dim, heads, kv_heads, random_int(g, 4, 40), max_len, base, g, dtype
            )
            x = torch.randn(batch, length, dim, generator=g, dtype=dtype)
            # Positions with gaps: a shift of all positions changes no score.
            rows = [
                torch.randperm(max_len, generator=g)[:length].sort().values
                for _ in range(batch)
            ]
            positions = (None, rows[0], torch.stack(rows))[index]
            cases.append(
                (
                    block,
                    x,
                    positions,
                    f"random {tuple(x.shape)}, {heads} query and {kv_heads} key/value "
                    f"heads, base {base:g}, positions "
                    f"{'default' if positions is None else tuple(positions.shape)}",
                )
            )
    for block, x, positions, label in cases:
        _run_block_case(fn, block, x, positions, label)
        integrity.verify()
    return f"modern_block_forward matches ModernDecoderBlock on {len(cases)} cases."


integrity.protect_module(__name__)
