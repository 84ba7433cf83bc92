"""The checks of the multi-head attention exercises: they accept correct answers written
in several ways (repeatedly, in hidden mode), reject each classic mistake with a message
that names it, survive bad input, and refuse PyTorch's module and the book's
reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqbook.checks import multi_head_attention as mha_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall
from seqbook.models import attention as reference

check_split_merge = mha_checks.check_split_merge
check_multi_head_attention = mha_checks.check_multi_head_attention


# ------------------------------------------------------------ split and merge heads
# Written out independently of seqbook.models.attention (which is forbidden while
# answers run).


def split_ok(x, num_heads):
    b, t, d = x.shape
    return x.reshape(b, t, num_heads, d // num_heads).transpose(1, 2)


def merge_ok(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def split_permute(x, num_heads):
    b, t, d = x.shape
    return x.view(b, t, num_heads, -1).permute(0, 2, 1, 3)


def merge_contiguous_view(x):
    b, h, t, d = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(b, t, -1)


def split_straight(x, num_heads):
    b, t, d = x.shape
    return x.view(b, num_heads, t, d // num_heads)


def split_interleaved(x, num_heads):
    b, t, d = x.shape
    return x.reshape(b, t, d // num_heads, num_heads).permute(0, 3, 1, 2)


def split_no_transpose(x, num_heads):
    b, t, d = x.shape
    return x.reshape(b, t, num_heads, d // num_heads)


def split_wrong_axes(x, num_heads):
    b, t, d = x.shape
    return x.reshape(b, t, num_heads, d // num_heads).permute(0, 2, 3, 1)


def merge_view_after_transpose(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).view(b, t, h * d)


def merge_straight(x):
    b, h, t, d = x.shape
    return x.reshape(b, t, h * d)


def merge_interleaved(x):
    b, h, t, d = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, t, h * d)


def stub(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize(
    "split, merge", [(split_ok, merge_ok), (split_permute, merge_contiguous_view)]
)
def test_correct_split_merge_pass_repeatedly(split, merge, capsys):
    check_split_merge(split, merge)
    for _ in range(30):
        check_split_merge(split, merge, hidden=True)
    assert capsys.readouterr().out.count("✔") == 31


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "split, merge, message",
    [
        (split_straight, merge_ok, "heads mix positions"),
        (split_interleaved, merge_ok, "every H-th"),
        (split_no_transpose, merge_ok, "transpose"),
        (split_wrong_axes, merge_ok, "swapped"),
        (split_ok, merge_view_after_transpose, "reshape"),
        (split_ok, merge_straight, "not the inverse"),
        (split_ok, merge_interleaved, "interleaves"),
        (stub, merge_ok, "NotImplementedError"),
        (split_ok, stub, "NotImplementedError"),
        (lambda x, h: None, merge_ok, "None"),
    ],
)
def test_split_merge_mistakes_are_named(split, merge, message, hidden):
    for _ in range(5 if hidden else 1):
        with pytest.raises(CheckFailure, match=message):
            check_split_merge(split, merge, hidden=hidden)


def test_view_after_transpose_gets_the_reshape_hint():
    with pytest.raises(CheckFailure, match=r"\.view.*reshape"):
        check_split_merge(split_ok, merge_view_after_transpose)


def test_submitting_the_reference_split_merge_is_refused():
    with pytest.raises(ForbiddenCall):
        check_split_merge(reference.split_heads, merge_ok)
    with pytest.raises(ForbiddenCall):
        check_split_merge(split_ok, reference.merge_heads)


# ------------------------------------------------------------- multi-head attention


def attend_ok(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights


def make_mha(
    scale="head",
    out_proj=True,
    split="ok",
    average=False,
    invert=False,
    order=(0, 1, 2),
    in_bias=True,
    swap=False,
    names="ok",
    use_mask=True,
    use_book_attention=False,
    init="xavier",
):
    """A student's MultiHeadAttention class, with the named mistake switched on."""

    class MultiHeadAttention(nn.Module):
        def __init__(self, embed_dim, num_heads, bias=True):
            super().__init__()
            self.embed_dim, self.num_heads = embed_dim, num_heads
            self.head_dim = embed_dim // num_heads
            weight_name = "qkv_weight" if names == "renamed" else "in_proj_weight"
            setattr(
                self, weight_name, nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
            )
            if bias:
                self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
            elif names == "bias_kept":
                self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
            else:
                self.register_parameter("in_proj_bias", None)
            self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
            if init == "xavier":
                nn.init.xavier_uniform_(getattr(self, weight_name))
            else:
                nn.init.zeros_(getattr(self, weight_name))

        def forward(self, query, key, value, mask=None):
            b, t_q, d_model = query.shape
            h, d = self.num_heads, self.head_dim
            weights = self.in_proj_weight.chunk(3)
            biases = (
                self.in_proj_bias.chunk(3)
                if self.in_proj_bias is not None and in_bias
                else (None,) * 3
            )
            weights = [weights[i] for i in order]
            biases = [biases[i] for i in order]

            def project(x, w, bb):
                y = F.linear(x, w, bb)
                if split == "straight":
                    return y.reshape(x.shape[0], h, x.shape[1], d)
                return y.reshape(x.shape[0], x.shape[1], h, d).transpose(1, 2)

            q, k, v = (
                project(x, w, bb)
                for x, w, bb in zip((query, key, value), weights, biases)
            )
            if scale == "model":
                q = q * math.sqrt(d) / math.sqrt(d_model)
            m = None if mask is None or not use_mask else (~mask if invert else mask)
            if use_book_attention:
                heads, attn = reference.scaled_dot_product_attention(q, k, v, m)
            else:
                heads, attn = attend_ok(q, k, v, m)
            merged = heads.transpose(1, 2).reshape(b, t_q, d_model)
            output = self.out_proj(merged) if out_proj else merged
            if average:
                attn = attn.mean(dim=1)
            return (attn, output) if swap else (output, attn)

    return MultiHeadAttention


@pytest.mark.parametrize(
    "variant",
    [{}, {"use_book_attention": True}],
    ids=["own attention", "book's scaled_dot_product_attention"],
)
def test_correct_module_passes_repeatedly(variant, capsys):
    module_class = make_mha(**variant)
    check_multi_head_attention(module_class)
    for _ in range(20):
        check_multi_head_attention(module_class, hidden=True)
    assert capsys.readouterr().out.count("✔") == 21


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "variant, message",
    [
        (dict(scale="model"), r"sqrt\(D\) \(the model width\)"),
        (dict(out_proj=False), "output projection out_proj is not applied"),
        (dict(split="straight"), "mixes positions"),
        (dict(average=True), "averaged"),
        (dict(invert=True), "other way round"),
        (dict(order=(1, 0, 2)), "wrong order"),
        (dict(order=(0, 2, 1)), "wrong order"),
        (dict(in_bias=False), "in_proj_bias is not added"),
        (dict(swap=True), "in that order"),
        (dict(use_mask=False), "mask is not used"),
        (dict(names="renamed"), r"Missing: \['in_proj_weight'\]"),
        (dict(names="bias_kept"), "register in_proj_bias as None"),
        (dict(init="zeros"), "initialise it"),
    ],
)
def test_module_mistakes_are_named(variant, message, hidden):
    for _ in range(3 if hidden else 1):
        with pytest.raises(CheckFailure, match=message):
            check_multi_head_attention(make_mha(**variant), hidden=hidden)


def test_pytorchs_module_and_the_reference_are_refused():
    class Wrapper(nn.MultiheadAttention):  # the right names, PyTorch's forward
        def __init__(self, embed_dim, num_heads, bias=True):
            super().__init__(embed_dim, num_heads, bias=bias, batch_first=True)

        def forward(self, query, key, value, mask=None):
            out, w = super().forward(query, key, value, average_attn_weights=False)
            return out, w

    with pytest.raises(ForbiddenCall, match="MultiheadAttention.forward"):
        check_multi_head_attention(Wrapper)

    class Functional(make_mha()):
        def forward(self, query, key, value, mask=None):
            q, k, v = (t.transpose(0, 1) for t in (query, key, value))
            out, w = F.multi_head_attention_forward(
                q,
                k,
                v,
                self.embed_dim,
                self.num_heads,
                self.in_proj_weight,
                self.in_proj_bias,
                None,
                None,
                False,
                0.0,
                self.out_proj.weight,
                self.out_proj.bias,
                average_attn_weights=False,
            )
            return out.transpose(0, 1), w

    with pytest.raises(ForbiddenCall, match="multi_head_attention_forward"):
        check_multi_head_attention(Functional)
    with pytest.raises(
        ForbiddenCall, match="seqbook.models.attention.MultiHeadAttention"
    ):
        check_multi_head_attention(reference.MultiHeadAttention)

    captured = reference.MultiHeadAttention.forward  # an alias taken before the guard

    class Alias(reference.MultiHeadAttention):
        def forward(self, query, key, value, mask=None):
            return captured(self, query, key, value, mask)

    with pytest.raises(ForbiddenCall, match="another name"):
        check_multi_head_attention(Alias)


def test_guard_restores_everything():
    before = (
        nn.MultiheadAttention.forward,
        reference.MultiHeadAttention.forward,
        F.multi_head_attention_forward,
    )
    with pytest.raises(ForbiddenCall):
        check_multi_head_attention(reference.MultiHeadAttention)
    assert (
        nn.MultiheadAttention.forward,
        reference.MultiHeadAttention.forward,
        F.multi_head_attention_forward,
    ) == before
    import sys

    assert sys.getprofile() is None


def test_module_bad_inputs_give_clear_messages():
    with pytest.raises(CheckFailure, match="NotImplementedError"):
        check_multi_head_attention(stub)
    with pytest.raises(CheckFailure, match="nn.Module"):
        check_multi_head_attention(lambda d, h, bias=True: "not a module")

    class NoneForward(make_mha()):
        def forward(self, query, key, value, mask=None):
            return None

    with pytest.raises(CheckFailure, match="pair"):
        check_multi_head_attention(NoneForward)


def test_hidden_module_check_needs_gradients():
    class Detached(make_mha()):
        def forward(self, query, key, value, mask=None):
            out, w = super().forward(query, key, value, mask)
            return out.detach(), w.detach()

    with pytest.raises(CheckFailure, match="gradient"):
        check_multi_head_attention(Detached, hidden=True)
