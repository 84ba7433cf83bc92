"""The checks of "The modern decoder block": they accept correct answers written in
several ways (repeatedly, in hidden mode), reject each classic mistake with a message
that names it, explain stubs, wrong shapes and dtypes, and refuse the built-ins."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqbook.checks import modern_decoder_block as modern_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall
from seqbook.models.modern_decoder_block import rotate_half

check_rms = modern_checks.check_rms_norm
check_rotary = modern_checks.check_apply_rotary


# ------------------------------------------------------------------- RMSNorm answers
# Written independently of seqbook.models.modern_decoder_block (forbidden while the
# answers run).


def rms_norm(kind: str = "right") -> type:
    class RMSNorm(nn.Module):
        def __init__(self, dim, eps=1e-6):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            if kind == "stub":
                raise NotImplementedError()
            if kind == "none":
                return None
            if kind == "mean_subtracted":
                x = x - x.mean(-1, keepdim=True)
            mean_square = x.pow(2).mean(-1, keepdim=True)
            if kind == "eps_outside":
                return x / (mean_square.sqrt() + self.eps) * self.weight
            if kind == "no_weight":
                return x / (mean_square + self.eps).sqrt()
            if kind == "float32":
                return (x / (mean_square + self.eps).sqrt() * self.weight).float()
            if kind == "keepdim_lost":
                return x.pow(2).mean(-1)
            return x / (mean_square + self.eps).sqrt() * self.weight

    return RMSNorm


def test_a_correct_rms_norm_passes_visible_and_hidden(capsys):
    check_rms(rms_norm())
    for _ in range(5):
        check_rms(rms_norm(), hidden=True)
    assert "matches torch.nn.RMSNorm" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind, words",
    [
        ("mean_subtracted", "subtracts the mean"),
        ("eps_outside", "outside the square root"),
        ("no_weight", "gain"),
        ("stub", "NotImplementedError"),
        ("none", "None"),
        ("keepdim_lost", "shape"),
    ],
)
def test_rms_norm_mistakes_are_named(kind, words):
    with pytest.raises(CheckFailure, match=words):
        check_rms(rms_norm(kind))


def test_rms_norm_mistakes_are_named_in_hidden_mode_too():
    for _ in range(5):
        with pytest.raises(CheckFailure, match="subtracts the mean"):
            check_rms(rms_norm("mean_subtracted"), hidden=True)


def test_a_float64_input_must_stay_float64():
    with pytest.raises(CheckFailure, match="dtype"):
        check_rms(rms_norm("float32"))


def test_the_builtin_rms_norm_is_refused():
    class Wrapped(nn.Module):
        def __init__(self, dim, eps=1e-6):
            super().__init__()
            self.inner = nn.RMSNorm(dim, eps=eps)
            self.weight = self.inner.weight

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(ForbiddenCall):
        check_rms(Wrapped)
    with pytest.raises(ForbiddenCall):
        check_rms(nn.RMSNorm)


def test_not_a_module_class_is_explained():
    with pytest.raises(CheckFailure, match="class derived from nn.Module"):
        check_rms(None)


# ------------------------------------------------------------------ rotary answers


def rotary(kind: str = "right"):
    def apply_rotary(x, cos, sin, positions=None):
        if kind == "stub":
            raise NotImplementedError()
        if positions is None or kind == "positions_ignored":
            positions = torch.arange(x.size(-2))
        if kind == "offset":
            positions = positions + 1
        c, s = cos[positions].to(x.dtype), sin[positions].to(x.dtype)
        if positions.dim() == 2:
            c, s = c.unsqueeze(1), s.unsqueeze(1)
        if kind == "interleaved":
            half = x.size(-1) // 2
            c, s = c[..., :half], s[..., :half]
            a, b = x[..., 0::2], x[..., 1::2]
            return torch.stack((a * c - b * s, b * c + a * s), -1).flatten(-2)
        if kind == "wrong_sign":
            return x * c - rotate_half(x) * s
        if kind == "float32":
            return (x * c + rotate_half(x) * s).float()
        first, second = x.chunk(2, -1)
        return x * c + torch.cat((-second, first), -1) * s

    return apply_rotary


def test_a_correct_apply_rotary_passes_visible_and_hidden(capsys):
    check_rotary(rotary())
    for _ in range(5):
        check_rotary(rotary(), hidden=True)
    assert "matches the reference" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind, words",
    [
        ("interleaved", "half-split"),
        ("wrong_sign", "wrong way"),
        ("offset", "offset by one"),
        ("positions_ignored", "ignored"),
        ("stub", "NotImplementedError"),
        ("float32", "dtype"),
    ],
)
def test_apply_rotary_mistakes_are_named(kind, words):
    with pytest.raises(CheckFailure, match=words):
        check_rotary(rotary(kind))


@pytest.mark.parametrize("kind", ["interleaved", "wrong_sign", "offset"])
def test_apply_rotary_mistakes_are_named_in_hidden_mode_too(kind):
    words = {
        "interleaved": "half-split",
        "wrong_sign": "wrong way",
        "offset": "offset by one",
    }[kind]
    for _ in range(5):
        with pytest.raises(CheckFailure, match=words):
            check_rotary(rotary(kind), hidden=True)


def test_the_reference_apply_rotary_is_refused():
    from seqbook.models import modern_decoder_block

    def apply_rotary(x, cos, sin, positions=None):
        return modern_decoder_block.apply_rotary(x, cos, sin, positions)

    with pytest.raises(ForbiddenCall):
        check_rotary(apply_rotary)


# ------------------------------------------------------------- block forward answers


def block_forward(kind: str = "right"):
    """A student's ``modern_block_forward``, right or with one classic mistake."""
    from seqbook.models import modern_decoder_block as reference
    from seqbook.models.attention import (
        causal_mask,
        merge_heads,
        scaled_dot_product_attention,
        split_heads,
    )
    from seqbook.models.attention_at_scale import repeat_kv
    from seqbook.models.transformer import pre_ln_block

    def modern_block_forward(block, x, positions=None):
        if kind == "stub":
            raise NotImplementedError()
        if kind == "none":
            return None
        if kind == "calls_block":
            return block(x, positions)
        attention = block.attention
        cos, sin = attention.cos, attention.sin
        if kind == "positions_ignored":
            positions = None

        def attend(h):
            if kind == "calls_attention":
                return attention(h, positions)
            q = split_heads(attention.q_proj(h), attention.num_heads)
            k = split_heads(attention.k_proj(h), attention.num_kv_heads)
            v = split_heads(attention.v_proj(h), attention.num_kv_heads)
            q = reference.apply_rotary(q, cos, sin, positions)
            k = reference.apply_rotary(k, cos, sin, positions)
            if kind == "rope_on_values":
                v = reference.apply_rotary(v, cos, sin, positions)
            if kind == "torch_sdpa":
                heads = torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=True, enable_gqa=True
                )
            else:
                groups = attention.num_heads // attention.num_kv_heads
                if kind == "kv_tiled":
                    k, v = k.repeat(1, groups, 1, 1), v.repeat(1, groups, 1, 1)
                else:
                    k, v = repeat_kv(k, groups), repeat_kv(v, groups)
                mask = None if kind == "no_causal_mask" else causal_mask(h.size(1))
                heads, _ = scaled_dot_product_attention(q, k, v, mask)
            return attention.o_proj(merge_heads(heads))

        norm1, norm2, ffn = block.norm1, block.norm2, block.feed_forward
        if kind == "pre_ln_block":
            return pre_ln_block(x, attend, ffn, norm1, norm2)
        if kind == "post_norm":
            h = norm1(x + attend(x))
            return norm2(h + ffn(h))
        if kind == "norms_swapped":
            norm1, norm2 = norm2, norm1
        if kind == "parallel":
            return x + attend(norm1(x)) + ffn(norm2(x))
        h = attend(norm1(x))
        if kind != "no_attention_residual":
            h = x + h
        y = ffn(norm2(h)) if kind == "no_ffn_residual" else h + ffn(norm2(h))
        if kind == "last_position_lost":
            return y[:, :-1]
        if kind == "float32":
            return y.float()
        return y

    return modern_block_forward


check_block = modern_checks.check_block_forward

BLOCK_MISTAKES = {
    "rope_on_values": "values are rotated too",
    "post_norm": "post-norm",
    "norms_swapped": "norms are swapped",
    "no_attention_residual": "first residual is missing",
    "no_ffn_residual": "second residual is missing",
    "no_causal_mask": "no causal mask",
    "parallel": "seed article",
    "kv_tiled": "tiled",
    "positions_ignored": "`positions` argument is ignored",
}


@pytest.mark.parametrize("kind", ["right", "torch_sdpa"])
def test_a_correct_block_forward_passes_visible_and_hidden(kind, capsys):
    check_block(block_forward(kind))
    for _ in range(5):
        check_block(block_forward(kind), hidden=True)
    assert "matches ModernDecoderBlock" in capsys.readouterr().out


@pytest.mark.parametrize("kind, words", sorted(BLOCK_MISTAKES.items()))
def test_block_forward_mistakes_are_named(kind, words):
    with pytest.raises(CheckFailure, match=words):
        check_block(block_forward(kind))


@pytest.mark.parametrize("kind, words", sorted(BLOCK_MISTAKES.items()))
def test_block_forward_mistakes_are_named_in_hidden_mode_too(kind, words):
    for _ in range(5):
        with pytest.raises(CheckFailure, match=words):
            check_block(block_forward(kind), hidden=True)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("stub", "NotImplementedError"),
        ("none", "None"),
        ("last_position_lost", "shape"),
        ("float32", "dtype"),
    ],
)
def test_block_forward_bad_answers_are_explained(kind, words):
    with pytest.raises(CheckFailure, match=words):
        check_block(block_forward(kind))


def test_block_forward_that_is_not_a_function_is_explained():
    with pytest.raises(CheckFailure, match="expected a function"):
        check_block(None)


@pytest.mark.parametrize("kind", ["calls_block", "calls_attention", "pre_ln_block"])
def test_the_reference_block_and_its_wiring_are_refused(kind):
    with pytest.raises(ForbiddenCall):
        check_block(block_forward(kind))
