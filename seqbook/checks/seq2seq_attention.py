"""Checks for the exercises of the section "Sequence to sequence with attention".

* :func:`check_additive_attention` -- the student's ``AdditiveAttention`` class gets the
  reference's parameters copied in and is compared with
  :class:`seqbook.models.seq2seq_attention.AdditiveAttention` on padded batches; the
  classic mistakes (softmax over the batch, mask after the softmax or not at all,
  missing tanh, a dot-product score, a context built from the projected keys, NaN for a
  fully masked row, ...) are named.
* :func:`check_decode_steps` -- the student's decoding loop drives a small hand-built
  decoder that records every input it is given, so a wrong input (the answer ``y_t``
  instead of ``y_{t-1}``, no ``<bos>``, gold tokens when the model should read its own
  predictions or the reverse) is reported at the step where it happens.

``hidden=True`` draws sizes, weights and masks from a fresh random seed at grading time;
the expected answers are computed by the reference inside the check.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from seqbook.checks import integrity
from seqbook.checks._harness import check, masked_softmax
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
from seqbook.models import seq2seq_attention as _reference_module

__all__ = ["check_additive_attention", "check_decode_steps"]

# Captured at import, before any student code can touch the module.
_ReferenceAttention = _reference_module.AdditiveAttention
_reference_decode = _reference_module.decode_steps
_FORBIDDEN_ATTENTION = existing_paths(
    ("seqbook.models.seq2seq_attention.AdditiveAttention.forward",)
)
_FORBIDDEN_DECODE = existing_paths(("seqbook.models.seq2seq_attention.decode_steps",))


# ------------------------------------------------------------------ additive attention


def _reference_parts(ref: nn.Module, query, keys, mask):
    """Scores and projections of the reference, for the mistake variants."""
    with torch.no_grad():
        q = ref.query_proj(query)[:, None, :]
        k = ref.key_proj(keys)
        return q, k, torch.tanh(q + k) @ ref.score, (q + k) @ ref.score


def _weight_variants(ref, query, keys, mask) -> dict[str, torch.Tensor]:
    q, k, scores, no_tanh = _reference_parts(ref, query, keys, mask)
    zero_filled = torch.softmax(scores.masked_fill(~mask, 0.0), -1)
    return {
        "the softmax runs over the batch axis (dim=0) instead of the source positions "
        "(dim=-1): each example's weights must sum to 1": masked_softmax(
            scores, mask, 0
        ),
        "the padding mask is ignored: padded positions get weight": torch.softmax(
            scores, -1
        ),
        "the mask is applied after the softmax, so the remaining weights no longer sum "
        "to 1: set masked scores to -inf before the softmax": torch.softmax(
            scores, -1
        ).masked_fill(~mask, 0.0),
        "masked scores are set to 0, but exp(0) = 1 still gives padding weight: "
        "use -inf": zero_filled,
        "masked scores are set to 0, but exp(0) = 1 still takes a share of the "
        "softmax, so the real positions' weights do not sum to 1: "
        "use -inf": zero_filled.masked_fill(~mask, 0.0),
        "the mask convention is inverted: True marks the real positions, so remove the "
        "False ones": masked_softmax(scores, ~mask),
        "the tanh is missing: the score is v^T tanh(W_q q + W_k k_j)": masked_softmax(
            no_tanh, mask
        ),
        "the score is a dot product of the projected query and key; additive attention "
        "scores with v^T tanh(W_q q + W_k k_j)": masked_softmax((q * k).sum(-1), mask),
    }


_EXPECTED_PARAMETERS = (
    "query_proj.weight",
    "key_proj.weight",
    "key_proj.bias",
    "score",
)


def _build(cls, dims: tuple[int, int, int]) -> nn.Module:
    query_dim, key_dim, hidden_dim = dims
    what = f"AdditiveAttention({query_dim}, {key_dim}, {hidden_dim})"
    module = call_student(cls, query_dim, key_dim, hidden_dim, what=what)
    if not isinstance(module, nn.Module):
        raise CheckFailure(f"{what} should be an nn.Module, got {describe(module)}.")
    params = dict(module.named_parameters())
    expected = {
        "query_proj.weight": (hidden_dim, query_dim),
        "key_proj.weight": (hidden_dim, key_dim),
        "key_proj.bias": (hidden_dim,),
        "score": (hidden_dim,),
    }
    if "query_proj.bias" in params:
        raise CheckFailure(
            f"{what}: query_proj must have no bias (nn.Linear(..., "
            "bias=False)); key_proj's bias is the only one."
        )
    missing = [name for name in expected if name not in params]
    if missing:
        raise CheckFailure(
            f"{what} has no parameter {missing[0]!r}; expected exactly "
            f"{list(expected)} (it has {list(params)})."
        )
    extra = [name for name in params if name not in expected]
    if extra:
        raise CheckFailure(
            f"{what} has unexpected parameters {extra}; expected exactly "
            f"{list(expected)}."
        )
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise CheckFailure(
                f"{what}: {name} has shape {tuple(params[name].shape)}, "
                f"expected {shape}."
            )
    return module


def _case(cls, g, dims, lengths, label, dtype=torch.float32, grads=False) -> None:
    query_dim, key_dim, hidden_dim = dims
    batch, steps = len(lengths), max(max(lengths), 1)
    ref = _ReferenceAttention(query_dim, key_dim, hidden_dim).to(dtype)
    with torch.no_grad():
        for param in ref.parameters():
            param.copy_(torch.randn(param.shape, generator=g, dtype=dtype))
    student = _build(cls, dims).to(dtype)
    with torch.no_grad():
        params = dict(student.named_parameters())
        for name, value in ref.named_parameters():
            params[name].copy_(value)
    query = torch.randn(batch, query_dim, generator=g, dtype=dtype)
    keys = torch.randn(batch, steps, key_dim, generator=g, dtype=dtype)
    mask = torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]
    what = f"AdditiveAttention{dims} on {label}"
    inputs = (query.clone().requires_grad_(grads), keys.clone().requires_grad_(grads))
    with forbid_calls(*_FORBIDDEN_ATTENTION):
        result = call_student(student, *inputs, mask.clone(), what=what)
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailure(
            f"{what} should return a pair (context, weights), got {describe(result)}."
        )
    context, weights = result
    expected_context, expected_weights = ref(query, keys, mask)
    expect_tensor(weights, f"the weights of {what}")
    expect_tensor(context, f"the context of {what}")
    if tuple(context.shape) == (batch, hidden_dim) and hidden_dim != key_dim:
        raise CheckFailure(
            f"{what}: the context has shape {(batch, hidden_dim)}: it is "
            "a weighted sum of the *projected* keys. Sum the keys "
            f"themselves, to get shape {(batch, key_dim)}."
        )
    expect_tensor(weights, f"the weights of {what}", shape=(batch, steps), dtype=dtype)
    expect_tensor(
        context, f"the context of {what}", shape=(batch, key_dim), dtype=dtype
    )
    empty = ~mask.any(dim=1)
    if bool(empty.any()) and bool(torch.isnan(weights.detach()[empty]).any()):
        raise CheckFailure(
            f"{what}: an example with no real source position gets NaN "
            "weights (a softmax over only -inf is 0/0). Give it zero "
            "weights, e.g. fill the masked weights with 0 after the softmax."
        )
    if max_abs_error(weights, expected_weights) > 1e-5:
        got = weights.detach().nan_to_num(0.0)
        for mistake, variant in _weight_variants(ref, query, keys, mask).items():
            if max_abs_error(got, variant) < 1e-5:
                raise CheckFailure(f"{what}: the weights are wrong because {mistake}.")
        sums = got[~empty].sum(dim=-1)
        if sums.numel() and max_abs_error(sums, torch.ones_like(sums)) > 1e-4:
            raise CheckFailure(
                f"{what}: the weights of an example do not sum to 1 "
                f"(sums {[round(float(s), 4) for s in sums]}): normalise "
                "with a softmax over the source positions."
            )
    expect_close(weights, expected_weights, f"the weights of {what}")
    if max_abs_error(context, expected_context) > 1e-4:
        with torch.no_grad():
            projected = (expected_weights[:, :, None] * ref.key_proj(keys)).sum(1)
        if (
            projected.shape == context.shape
            and max_abs_error(context, projected) < 1e-4
        ):
            raise CheckFailure(
                f"{what}: the context is a weighted sum of the projected "
                "keys; sum the keys themselves."
            )
    expect_close(context, expected_context, f"the context of {what}", atol=1e-4)
    if grads:
        upstream = torch.randn(expected_context.shape, generator=g, dtype=dtype)
        try:
            got_grads = torch.autograd.grad((context * upstream).sum(), inputs)
        except RuntimeError as err:
            raise CheckFailure(
                f"{what}: gradients do not flow back to the query and the keys ({err})."
            ) from err
        ref_inputs = [t.clone().requires_grad_(True) for t in (query, keys)]
        ref_context, _ = ref(*ref_inputs, mask)
        expected_grads = torch.autograd.grad((ref_context * upstream).sum(), ref_inputs)
        for got, expected, name in zip(got_grads, expected_grads, ("query", "keys")):
            expect_close(
                got, expected, f"the gradient of {what} with respect to the {name}"
            )


@check
def check_additive_attention(cls: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``AdditiveAttention(query_dim, key_dim, hidden_dim)`` against the
    reference: parameter names and shapes, then ``forward(query, keys, mask) ->
    (context, weights)`` with the reference's parameters copied in."""
    g = grading_generator(hidden)
    if not hidden:
        cases = [
            (
                (6, 4, 7),
                [5, 3, 1],
                "a padded batch (lengths 5, 3, 1)",
                torch.float32,
                False,
            )
        ]
    else:
        cases = []
        for _ in range(3):
            key_dim = random_int(g, 2, 12)
            dims = (random_int(g, 2, 12), key_dim, key_dim + random_int(g, 1, 8))
            batch = random_int(g, 2, 6)
            lengths = [random_int(g, 1, 12) for _ in range(batch)]
            lengths[0] = max(lengths)
            cases.append(
                (dims, lengths, f"random lengths {lengths}", torch.float32, False)
            )
        cases.append(
            (
                (3, 5, 4),
                [4, 0, 2],
                "a batch with an empty source (length 0)",
                torch.float32,
                False,
            )
        )
        cases.append(
            (
                (5, 6, 9),
                [7, 2, 5],
                "float64 inputs (gradients checked)",
                torch.float64,
                True,
            )
        )
    for dims, lengths, label, dtype, grads in cases:
        _case(cls, g, dims, lengths, label, dtype, grads)
        integrity.verify()
    return f"AdditiveAttention matches the reference on {len(cases)} padded batch(es)."


# ------------------------------------------------------------------------- decoding


class _ToyDecoder:
    """A tiny recurrent decoder whose every call is recorded: ``step(tokens, state) ->
    (logits, state)`` with ``state = tanh(state A + E[tokens])``, ``logits = state
    W``."""

    def __init__(self, g: torch.Generator, vocab: int, width: int, what: str) -> None:
        self.E = torch.randn(vocab, width, generator=g, dtype=torch.float64) * 1.5
        self.A = torch.randn(width, width, generator=g, dtype=torch.float64) * 0.6
        self.W = (
            torch.randn(width, vocab, generator=g, dtype=torch.float64) * 3
        ).requires_grad_(True)
        self.vocab, self.what = vocab, what
        self.inputs: list[torch.Tensor] = []

    def __call__(self, tokens: Any, state: Any):
        t = len(self.inputs)
        if not isinstance(tokens, torch.Tensor):
            raise CheckFailure(
                f"{self.what}: at step {t} the decoder was given "
                f"{describe(tokens)} as its input; expected a tensor of ids."
            )
        if tokens.dtype != torch.long:
            raise CheckFailure(
                f"{self.what}: at step {t} the input has dtype {tokens.dtype}; "
                "feed token ids (torch.long), e.g. the argmax of the logits."
            )
        if tuple(tokens.shape) != (state.shape[0],):
            raise CheckFailure(
                f"{self.what}: at step {t} the input has shape "
                f"{tuple(tokens.shape)}, expected {(state.shape[0],)} (one id "
                "per example). Take the argmax over the vocabulary (dim=-1), "
                "not over the batch."
            )
        self.inputs.append(tokens.detach().clone())
        state = torch.tanh(state @ self.A + self.E[tokens])
        return state @ self.W, state

    def fresh(self) -> "_ToyDecoder":
        twin = object.__new__(_ToyDecoder)
        twin.__dict__.update(self.__dict__)
        twin.inputs = []
        return twin


def _decode_case(fn, g, batch, steps, vocab, bos, teacher_forcing, label) -> None:
    what = f"decode_steps on {label} with teacher_forcing={teacher_forcing}"
    for _ in range(50):  # a case where the two modes feed different inputs
        decoder = _ToyDecoder(g, vocab, 6, what)
        targets = torch.randint(0, vocab, (batch, steps), generator=g)
        targets[targets == bos] = (bos + 1) % vocab
        state = torch.randn(batch, 6, generator=g, dtype=torch.float64)
        gold, greedy = decoder.fresh(), decoder.fresh()
        _reference_decode(gold, state, targets, bos, True)
        _reference_decode(greedy, state, targets, bos, False)
        if steps < 2 or not torch.equal(
            torch.stack(gold.inputs), torch.stack(greedy.inputs)
        ):
            break
    expected_inputs = torch.stack(
        (gold if teacher_forcing else greedy).inputs
    )  # (T, B)
    reference = decoder.fresh()
    expected = _reference_decode(reference, state, targets, bos, teacher_forcing)
    student = decoder.fresh()
    student.what = what
    with forbid_calls(*_FORBIDDEN_DECODE):
        logits = call_student(
            fn, student, state.clone(), targets.clone(), bos, teacher_forcing, what=what
        )
    expect_tensor(logits, f"the logits returned by {what}")
    if tuple(logits.shape) == (steps, batch, vocab) and steps != batch:
        raise CheckFailure(
            f"{what} returns logits of shape {(steps, batch, vocab)}; stack "
            f"the steps along dim=1 to get {(batch, steps, vocab)}."
        )
    got = student.inputs
    if len(got) != steps:
        raise CheckFailure(
            f"{what} called the decoder {len(got)} times; expected one call "
            f"per target position, {steps}."
        )
    expect_tensor(logits, f"the logits returned by {what}", shape=(batch, steps, vocab))
    got_inputs = torch.stack(got)  # (T, B)
    if not torch.equal(got_inputs, expected_inputs):
        t = int((got_inputs != expected_inputs).any(dim=1).nonzero()[0])
        answer = targets.T  # (T, B): y_t at row t
        if torch.equal(got_inputs, answer):
            raise CheckFailure(
                f"{what}: at step t the decoder is fed y_t, the very token "
                "it must predict. Step 0 reads <bos> and step t reads "
                "y_{t-1}."
            )
        if steps > 1 and torch.equal(got_inputs[1:], expected_inputs[1:]):
            raise CheckFailure(
                f"{what}: step 0 should read bos_id ({bos}) but read "
                f"{got_inputs[0].tolist()}."
            )
        if teacher_forcing and torch.equal(got_inputs, torch.stack(greedy.inputs)):
            raise CheckFailure(
                f"{what}: with teacher forcing the decoder must read the gold "
                "tokens y_{t-1}, but it was fed its own predictions."
            )
        if not teacher_forcing and torch.equal(got_inputs, torch.stack(gold.inputs)):
            raise CheckFailure(
                f"{what}: without teacher forcing the decoder must read its "
                "own previous prediction (the argmax of its logits), but it "
                "was fed the gold tokens."
            )
        raise CheckFailure(
            f"{what}: at step {t} the decoder was fed "
            f"{got_inputs[t].tolist()}, expected "
            f"{expected_inputs[t].tolist()}."
        )
    if max_abs_error(logits, expected) > 1e-6:
        swapped = logits.detach().transpose(0, 1)
        if swapped.shape == expected.shape and max_abs_error(swapped, expected) < 1e-6:
            raise CheckFailure(
                f"{what} stacks the steps along dim=0; stack them along "
                f"dim=1 to get logits of shape {(batch, steps, vocab)}."
            )
        raise CheckFailure(
            f"{what}: the decoder received the right inputs but the logits "
            "differ: pass each step's new state on to the next step and "
            "return the logits of every step in order."
        )
    if teacher_forcing and not logits.requires_grad:
        raise CheckFailure(
            f"{what}: the returned logits carry no gradient (detached or "
            "computed under no_grad); training needs it."
        )


@check
def check_decode_steps(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``decode_steps(step, state, targets, bos_id, teacher_forcing)`` with a
    recording toy decoder, in both modes."""
    g = grading_generator(hidden)
    if not hidden:
        cases = [(3, 4, 7, 1, "3 sequences of 4 targets")]
    else:
        cases = [
            (
                random_int(g, 2, 5),
                random_int(g, 3, 9),
                random_int(g, 6, 12),
                random_int(g, 0, 5),
                "random sizes",
            )
            for _ in range(2)
        ]
        cases.append((2, 1, 5, 0, "a single target step"))
    count = 0
    for batch, steps, vocab, bos, label in cases:
        for teacher_forcing in (True, False):
            _decode_case(fn, g, batch, steps, vocab, bos, teacher_forcing, label)
            integrity.verify()
            count += 1
    return f"decode_steps feeds the right inputs in both modes ({count} cases)."


integrity.protect_module(__name__)
