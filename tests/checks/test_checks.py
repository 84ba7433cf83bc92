"""The exercise checks: they accept the reference, reject each classic mistake with a
message that names it, survive bad input, and refuse forbidden or tampered code."""

import math
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

from seqbook import checks
from seqbook.checks import CheckFailure, ForbiddenCall, IntegrityError, forbid_calls
from seqbook.models import attention as reference

# ------------------------------------------------------------------ wrong answers


def attention_variant(
    scale=True,
    dim=-1,
    invert=False,
    after_softmax=False,
    zero_fill=False,
    nan_rows=False,
    swap=False,
):
    def attend(query, key, value, mask=None):
        scores = query @ key.transpose(-2, -1)
        if scale:
            scores = scores / math.sqrt(query.size(-1))
        if mask is not None and invert:
            mask = ~mask
        if mask is not None and not after_softmax:
            scores = scores.masked_fill(~mask, 0.0 if zero_fill else float("-inf"))
        weights = torch.softmax(scores, dim=dim)
        if mask is not None and (after_softmax or not (nan_rows or zero_fill)):
            weights = weights.masked_fill(~mask, 0.0)
        output = weights @ value
        return (weights, output) if swap else (output, weights)

    return attend


# The reference itself is forbidden while a student's answer runs, so correct answers
# here are written out independently.
correct_attention = attention_variant()


def correct_causal_mask(size):
    return torch.ones(size, size, dtype=torch.bool).tril()


def correct_padding_mask(lengths, max_len):
    return (torch.arange(max_len) < lengths[:, None])[:, None, :]


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    checks.check_attention(correct_attention, hidden=hidden)
    checks.check_causal_mask(correct_causal_mask, hidden=hidden)
    checks.check_padding_mask(correct_padding_mask, hidden=hidden)
    assert capsys.readouterr().out.count("✔") == 3


def test_submitting_the_reference_itself_is_refused():
    with pytest.raises(ForbiddenCall):
        checks.check_attention(reference.scaled_dot_product_attention)
    with pytest.raises(ForbiddenCall):
        checks.check_causal_mask(reference.causal_mask)
    with pytest.raises(ForbiddenCall):
        checks.check_padding_mask(reference.padding_mask)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "variant, message",
    [
        (dict(scale=False), "not divided by sqrt"),
        (dict(dim=-2), "over the queries"),
        (dict(invert=True), "inverted"),
        (dict(after_softmax=True), "after the softmax"),
        (dict(zero_fill=True), "exp(0) = 1"),
        (dict(nan_rows=True), "NaN"),
        (dict(swap=True), "in that order"),
    ],
)
def test_attention_mistakes_are_named(variant, message, hidden):
    with pytest.raises(
        CheckFailure, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        checks.check_attention(attention_variant(**variant), hidden=hidden)


def test_large_negative_fill_is_named():
    def attend(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        if mask is not None:
            scores = scores.masked_fill(~mask, -1e9)
        w = torch.softmax(scores, -1)
        return w @ v, w

    with pytest.raises(CheckFailure, match="uniform weights"):
        checks.check_attention(attend)


def other_correct_implementations():
    def prescaled_einsum(q, k, v, mask=None):
        scores = torch.einsum("...qd,...kd->...qk", q / math.sqrt(q.shape[-1]), k)
        if mask is not None:
            scores = torch.where(
                mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype)
            )
        w = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        return torch.einsum("...qk,...kd->...qd", w, v), w

    def manual_softmax(q, k, v, mask=None):
        scores = q.matmul(k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        if mask is not None:
            scores = scores.masked_fill(mask.logical_not(), float("-inf"))
        scores = scores - scores.amax(dim=-1, keepdim=True).clamp_min(-1e30)
        e = scores.exp()
        w = e / e.sum(-1, keepdim=True).clamp_min(1e-30)
        return w.matmul(v), w

    return [prescaled_einsum, manual_softmax]


@pytest.mark.parametrize(
    "implementation", other_correct_implementations(), ids=lambda f: f.__name__
)
def test_other_correct_implementations_pass_repeatedly(implementation):
    for _ in range(30):  # hidden inputs are fresh every time: no flaky verdicts
        checks.check_attention(implementation, hidden=True)


def test_attention_scaled_by_dk_is_named():
    def attend(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / q.size(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        w = torch.softmax(scores, -1)
        if mask is not None:
            w = w.masked_fill(~mask, 0.0)
        return w @ v, w

    with pytest.raises(CheckFailure, match=r"divided by d_k instead of sqrt\(d_k\)"):
        checks.check_attention(attend, hidden=True)


def test_hidden_attention_checks_gradients_and_dtype():
    def detached(q, k, v, mask=None):
        out, w = correct_attention(q.detach(), k.detach(), v.detach(), mask)
        return out, w

    with pytest.raises(CheckFailure, match="gradients do not flow"):
        checks.check_attention(detached, hidden=True)

    def single_precision(q, k, v, mask=None):
        out, w = correct_attention(q.float(), k.float(), v.float(), mask)
        return out, w

    with pytest.raises(
        CheckFailure, match="dtype torch.float32, expected torch.float64"
    ):
        checks.check_attention(single_precision, hidden=True)


def test_hidden_attention_rejects_only_2d_support():
    def two_dims_only(q, k, v, mask=None):
        return correct_attention(q, k.t(), v, mask)  # .t() fails beyond 2-D

    with pytest.raises(CheckFailure, match="raised"):
        checks.check_attention(two_dims_only, hidden=True)


def test_in_place_modification_is_reported():
    def in_place(q, k, v, mask=None):
        q /= math.sqrt(q.size(-1))
        out, w = correct_attention(q * math.sqrt(q.size(-1)), k, v, mask)
        return out, w

    with pytest.raises(CheckFailure, match="modified its query argument in place"):
        checks.check_attention(in_place)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "above the diagonal"),
        (
            lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1),
            "False on the diagonal",
        ),
        (lambda n: ~torch.ones(n, n, dtype=torch.bool).tril(), "inverted"),
        (lambda n: torch.ones(n, n).tril(), "dtype torch.float32"),
        (lambda n: torch.ones(n, dtype=torch.bool), "shape"),
        (lambda n: None, "None: did you forget a `return`"),
        (lambda n: [[True]], "should be a torch.Tensor, got a list"),
    ],
)
def test_causal_mask_mistakes_are_named(answer, message, hidden):
    with pytest.raises(CheckFailure, match=message.replace("(", r"\(")):
        checks.check_causal_mask(answer, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "answer, message",
    [
        (
            lambda lengths, t: torch.arange(t) < lengths[:, None],
            "add an axis for the queries",
        ),
        (
            lambda lengths, t: (torch.arange(t) < lengths[:, None])[:, :, None],
            "masks queries",
        ),
        (
            lambda lengths, t: (torch.arange(t) <= lengths[:, None])[:, None],
            "off by one",
        ),
        (lambda lengths, t: (torch.arange(t) >= lengths[:, None])[:, None], "inverted"),
        (
            lambda lengths, t: (torch.arange(t) < lengths[:, None])[:, None].float(),
            "dtype",
        ),
    ],
)
def test_padding_mask_mistakes_are_named(answer, message, hidden):
    with pytest.raises(CheckFailure, match=message):
        checks.check_padding_mask(answer, hidden=hidden)


def test_stub_gets_a_friendly_message():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    for check in (
        checks.check_attention,
        checks.check_causal_mask,
        checks.check_padding_mask,
    ):
        with pytest.raises(CheckFailure, match="still raises NotImplementedError"):
            check(stub)


@pytest.mark.parametrize("not_a_function", [None, 3, "attention"])
def test_non_callables_are_reported(not_a_function):
    with pytest.raises(CheckFailure, match="expected a function"):
        checks.check_attention(not_a_function)


def test_a_warning_does_not_fail_a_correct_answer():
    def noisy(q, k, v, mask=None):
        warnings.warn("this is only a warning", UserWarning)
        return correct_attention(q, k, v, mask)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checks.check_attention(noisy, hidden=True)


# ------------------------------------------------------------------ forbidden calls


def test_builtin_is_forbidden_by_path():
    def uses_builtin(q, k, v, mask=None):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out, torch.zeros(*out.shape[:-1], k.shape[-2])

    with pytest.raises(CheckFailure, match="not allowed here"):
        checks.check_attention(uses_builtin)


def test_builtin_is_forbidden_through_an_alias():
    alias = F.scaled_dot_product_attention  # captured before the guard starts

    def uses_alias(q, k, v, mask=None):
        _, weights = reference_alias(q, k, v, mask)
        return alias(q, k, v, attn_mask=mask), weights

    reference_alias = correct_attention
    with pytest.raises(ForbiddenCall, match="possibly through another name"):
        checks.check_attention(uses_alias)


def test_reference_is_forbidden_through_an_alias():
    captured = reference.scaled_dot_product_attention
    with pytest.raises(
        ForbiddenCall, match="seqbook.models.attention.scaled_dot_product_attention"
    ):
        checks.check_attention(lambda q, k, v, mask=None: captured(q, k, v, mask))


def test_multihead_module_reaching_the_builtin_is_caught():
    alias = torch._C._nn.scaled_dot_product_attention
    with forbid_calls("torch.nn.functional.scaled_dot_product_attention"):
        pass  # nothing called: no error
    with pytest.raises(ForbiddenCall):
        with forbid_calls("torch.nn.functional.scaled_dot_product_attention"):
            alias(torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.randn(1, 2, 4))


def test_switching_off_the_guard_is_reported():
    def sneaky(q, k, v, mask=None):
        sys.setprofile(None)
        return reference_alias(q, k, v, mask)

    reference_alias = correct_attention
    with pytest.raises(ForbiddenCall, match="switched off the grading guard"):
        checks.check_attention(sneaky)


def test_guard_restores_everything_afterwards():
    before = (
        F.scaled_dot_product_attention,
        reference.scaled_dot_product_attention,
        sys.getprofile(),
    )
    with pytest.raises(CheckFailure):
        checks.check_attention(
            lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v)
        )
    assert (
        F.scaled_dot_product_attention,
        reference.scaled_dot_product_attention,
        sys.getprofile(),
    ) == before


# ------------------------------------------------------------------ tampering


@pytest.mark.parametrize(
    "module, name",
    [
        (torch, "allclose"),
        (torch, "equal"),
        (torch.testing, "assert_close"),
        (torch, "abs"),
    ],
)
def test_replaced_comparison_is_detected_and_restored(module, name, monkeypatch):
    import io

    from seqbook.checks import integrity

    notebook_stderr = io.StringIO()
    monkeypatch.setattr(integrity, "_stderr", notebook_stderr)
    original = getattr(module, name)
    setattr(module, name, lambda *args, **kwargs: True)
    with pytest.raises(IntegrityError, match=f"{name}` was replaced"):
        checks.check_causal_mask(correct_causal_mask)
    assert getattr(module, name) is original
    # The marker on stderr is what makes nbgrader give 0 even if the exception is
    # swallowed.
    assert notebook_stderr.getvalue().startswith("SEQBOOK-INTEGRITY")


def test_replaced_tensor_method_is_detected():
    original = torch.Tensor.max
    torch.Tensor.max = lambda self, *a, **k: torch.tensor(0.0)
    with pytest.raises(IntegrityError, match="Tensor.max` was replaced"):
        checks.check_attention(correct_attention)
    assert torch.Tensor.max is original


def test_patched_check_helper_is_detected():
    import seqbook.checks.core as core

    original = core.expect_close
    core.expect_close = lambda *args, **kwargs: None
    with pytest.raises(
        IntegrityError, match="seqbook.checks.core.expect_close` was replaced"
    ):
        checks.check_causal_mask(correct_causal_mask)
    assert core.expect_close is original


def test_replaced_builtin_is_detected():
    import builtins

    original = builtins.abs
    try:
        with pytest.raises(IntegrityError, match="abs` was replaced"):
            builtins.abs = lambda value: 0
            checks.check_causal_mask(correct_causal_mask)
        assert builtins.abs is original
    finally:
        builtins.abs = original


def test_trace_function_is_detected():
    previous = sys.gettrace()
    sys.settrace(lambda *args: None)
    try:
        with pytest.raises(IntegrityError, match="sys.settrace"):
            checks.check_causal_mask(correct_causal_mask)
        assert sys.gettrace() is previous
    finally:
        sys.settrace(previous)


def test_failures_render_as_short_wrapped_lines_in_ipython():
    with pytest.raises(CheckFailure) as caught:
        checks.check_causal_mask(lambda size: None)
    lines = caught.value._render_traceback_()
    assert "did you forget" in " ".join(lines) and all(len(line) < 90 for line in lines)


def test_methods_are_forbidden_by_path_and_through_aliases():
    from torch import nn

    class Subclass(nn.LayerNorm):
        pass

    layer = nn.LayerNorm(4)
    captured = nn.LayerNorm.forward  # an alias taken before the guard starts
    x = torch.randn(2, 4)
    with pytest.raises(ForbiddenCall, match="torch.nn.LayerNorm.forward"):
        with forbid_calls("torch.nn.LayerNorm.forward"):
            layer(x)
    with pytest.raises(ForbiddenCall, match="possibly through another name"):
        with forbid_calls("torch.nn.LayerNorm.forward"):
            captured(layer, x)
    with pytest.raises(ForbiddenCall):  # a subclass inherits the refusal
        with forbid_calls("torch.nn.modules.normalization.LayerNorm.forward"):
            Subclass(4)(x)
    assert nn.LayerNorm.forward is captured and "forward" not in vars(Subclass)
    # A method the named class inherits is refused there and removed afterwards.
    with pytest.raises(ForbiddenCall, match="zero_grad"):
        with forbid_calls("torch.nn.LayerNorm.zero_grad"):
            layer.zero_grad()
    assert "zero_grad" not in vars(nn.LayerNorm)
    layer(x)  # works again
    layer.zero_grad()


def test_static_and_class_methods_are_restored_as_they_were():
    import sacrebleu.metrics.bleu as bleu_module

    bleu = bleu_module.BLEU
    raw = vars(bleu)["compute_bleu"]
    assert isinstance(raw, staticmethod)
    with pytest.raises(ForbiddenCall, match="compute_bleu"):
        with forbid_calls("sacrebleu.metrics.bleu.BLEU.compute_bleu"):
            bleu.compute_bleu([1, 1, 1, 1], [1, 1, 1, 1], 4, 4)
    assert (
        vars(bleu)["compute_bleu"] is raw
    )  # still a staticmethod, not a plain function
    # Callable on an instance again without a stray `self`.
    score = bleu(tokenize="none").corpus_score(["a b c d"], [["a b c d"]]).score
    assert score == pytest.approx(100.0)


def test_existing_paths_keeps_only_what_this_pytorch_has():
    from seqbook.checks.guard import existing_paths

    assert existing_paths(
        (
            "torch.nn.functional.relu",
            "torch.nn.LayerNorm.forward",
            "torch.no_such_function",
            "no_such_module.f",
        )
    ) == ("torch.nn.functional.relu", "torch.nn.LayerNorm.forward")
