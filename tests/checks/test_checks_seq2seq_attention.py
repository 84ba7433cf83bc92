"""The checks of the section "Sequence to sequence with attention": correct answers pass
every time (also in hidden mode, drawn afresh), each classic mistake is rejected with a
message that names it, stubs get clear messages, and the book's reference cannot stand
in for the answer."""

import inspect
import re

import pytest
import torch
from torch import nn

import seqbook.checks  # noqa: F401 - records the integrity baseline first
from seqbook.checks import CheckFailure, ForbiddenCall
from seqbook.checks import seq2seq_attention as s2s_checks
from seqbook.models import seq2seq_attention as reference

ATTENTION_SOURCE = inspect.getsource(reference.AdditiveAttention)
DECODE_SOURCE = inspect.getsource(reference.decode_steps)


def define(source, name, *edits):
    """The reference's source with textual edits applied, executed afresh (so that the
    answer is not the package's own object)."""
    for old, new in edits:
        assert old in source, old
        source = source.replace(old, new)
    namespace = {"torch": torch, "nn": nn}
    exec(source, namespace)  # noqa: S102 - test answers
    return namespace[name]


def attention(*edits):
    return define(ATTENTION_SOURCE, "AdditiveAttention", *edits)


def decode(*edits):
    return define(DECODE_SOURCE, "decode_steps", *edits)


# ------------------------------------------------------------------ correct answers


def test_correct_attention_passes_repeatedly(capsys):
    answer = attention()
    s2s_checks.check_additive_attention(answer)
    for _ in range(20):
        s2s_checks.check_additive_attention(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


def test_attention_with_bmm_and_large_negative_fill_for_real_rows_passes():
    answer = attention(
        (
            "context = (weights[:, :, None] * keys).sum(dim=1)",
            "context = torch.bmm(weights[:, None, :], keys)[:, 0]",
        )
    )
    for _ in range(5):
        s2s_checks.check_additive_attention(answer, hidden=True)


def test_correct_decoding_passes_repeatedly():
    answer = decode()
    s2s_checks.check_decode_steps(answer)
    for _ in range(20):
        s2s_checks.check_decode_steps(answer, hidden=True)


def test_decoding_written_differently_passes():
    def decode_steps(step, state, targets, bos_id, teacher_forcing):
        bos = torch.full_like(targets[:, :1], bos_id)
        gold_inputs = torch.cat([bos, targets[:, :-1]], dim=1)  # (B, T)
        tokens, outputs = gold_inputs[:, 0], []
        for t in range(targets.shape[1]):
            logits, state = step(tokens, state)
            outputs.append(logits[:, None])
            if t + 1 < targets.shape[1]:
                tokens = gold_inputs[:, t + 1] if teacher_forcing else logits.argmax(1)
        return torch.cat(outputs, dim=1)

    for _ in range(5):
        s2s_checks.check_decode_steps(decode_steps, hidden=True)


# ------------------------------------------------------------ attention mistakes

ATTENTION_MISTAKES = {
    "batch axis": (("torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=0)"),),
    "after the softmax": (
        ('scores = scores.masked_fill(~mask, float("-inf"))', "pass"),
    ),
    "ignored": (
        ('scores = scores.masked_fill(~mask, float("-inf"))', "pass"),
        ("weights = weights.masked_fill(~mask, 0.0)", "pass"),
    ),
    "exp(0) = 1": (('float("-inf"))', "0.0)"),),
    "inverted": (
        ("scores.masked_fill(~mask", "scores.masked_fill(mask"),
        ("weights.masked_fill(~mask", "weights.masked_fill(mask"),
    ),
    "tanh is missing": (("torch.tanh(q + k)", "(q + k)"),),
    "dot product": (("torch.tanh(q + k) @ self.score", "(q * k).sum(-1)"),),
    "projected": (("(weights[:, :, None] * keys)", "(weights[:, :, None] * k)"),),
    "NaN": (("weights = weights.masked_fill(~mask, 0.0)", "pass"),),
    "sum to 1": (("torch.softmax(scores, dim=-1)", "torch.sigmoid(scores)"),),
    "query_proj must have no bias": (
        (
            "nn.Linear(query_dim, hidden_dim, bias=False)",
            "nn.Linear(query_dim, hidden_dim)",
        ),
    ),
    "no parameter 'score'": (
        ("self.score = nn.Parameter", "self.v = nn.Parameter"),
        ("@ self.score", "@ self.v"),
    ),
}


@pytest.mark.parametrize("words", sorted(ATTENTION_MISTAKES))
def test_attention_mistakes_are_named(words):
    answer = attention(*ATTENTION_MISTAKES[words])
    with pytest.raises(CheckFailure, match=re.escape(words)):
        for _ in range(3):
            s2s_checks.check_additive_attention(answer, hidden=True)


@pytest.mark.parametrize(
    "words",
    [
        "batch axis",
        "after the softmax",
        "tanh is missing",
        "dot product",
        "query_proj must have no bias",
    ],
)
def test_visible_attention_check_names_mistakes(words):
    with pytest.raises(CheckFailure, match=re.escape(words)):
        s2s_checks.check_additive_attention(attention(*ATTENTION_MISTAKES[words]))


def test_attention_stub_and_reference_are_refused():
    stub = attention(
        ("super().__init__()", "super().__init__(); raise NotImplementedError()")
    )
    with pytest.raises(CheckFailure, match="NotImplementedError"):
        s2s_checks.check_additive_attention(stub)

    class Borrowed(reference.AdditiveAttention):
        pass

    with pytest.raises(ForbiddenCall):
        s2s_checks.check_additive_attention(Borrowed)


# ------------------------------------------------------------- decoding mistakes

DECODE_MISTAKES = {
    "y_t, the very token": (
        (
            "logits, state = step(tokens, state)",
            "logits, state = step(targets[:, t], state)",
        ),
    ),
    "should read bos_id": (
        ("tokens = targets[:, t]", "tokens = targets[:, t]"),
        (  # another valid id: bos_id + 1 is out of range when <bos> is the last id
            "tokens = torch.full((batch,), bos_id,",
            "tokens = torch.full((batch,), abs(bos_id - 1),",
        ),
    ),
    "fed its own predictions": (("if teacher_forcing:", "if False:"),),
    "was fed the gold tokens": (("if teacher_forcing:", "if True:"),),
    "argmax over the vocabulary": (("logits.argmax(dim=-1)", "logits.argmax(dim=0)"),),
    "pass each step's new state": (
        ("logits, state = step(tokens, state)", "logits, _ = step(tokens, state)"),
    ),
    "no gradient": (
        ("torch.stack(all_logits, dim=1)", "torch.stack(all_logits, dim=1).detach()"),
    ),
    "stack the steps along dim=1": (
        ("torch.stack(all_logits, dim=1)", "torch.stack(all_logits, dim=0)"),
    ),
    "token ids (torch.long)": (
        ("logits.argmax(dim=-1).detach()", "logits.softmax(dim=-1).detach()"),
    ),
}


# Hidden sizes are random: when the batch happens to equal the number of steps, steps
# stacked along dim=0 give the right shape and are diagnosed from the values instead
# ("stacks the steps along dim=0; stack them along dim=1").
SAME_MISTAKE = {"stack the steps along dim=1": "stack (the steps|them) along dim=1"}


@pytest.mark.parametrize("words", sorted(DECODE_MISTAKES))
def test_decoding_mistakes_are_named(words):
    answer = decode(*DECODE_MISTAKES[words])
    with pytest.raises(CheckFailure, match=SAME_MISTAKE.get(words, re.escape(words))):
        for _ in range(3):
            s2s_checks.check_decode_steps(answer, hidden=True)


def test_wrapped_shift_reads_the_last_target_first():
    def decode_steps(step, state, targets, bos_id, teacher_forcing):
        outputs, tokens = [], targets[:, -1]
        for t in range(targets.shape[1]):
            if t > 0:
                tokens = (
                    targets[:, t - 1] if teacher_forcing else outputs[-1].argmax(-1)
                )
            logits, state = step(tokens, state)
            outputs.append(logits)
        return torch.stack(outputs, dim=1)

    with pytest.raises(CheckFailure, match="should read bos_id"):
        s2s_checks.check_decode_steps(decode_steps)


def test_decoding_stub_and_reference_are_refused():
    with pytest.raises(CheckFailure, match="NotImplementedError"):
        s2s_checks.check_decode_steps(
            decode(("batch, steps = targets.shape", "raise NotImplementedError()"))
        )
    with pytest.raises(ForbiddenCall):
        s2s_checks.check_decode_steps(reference.decode_steps)
