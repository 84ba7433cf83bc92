"""Checks for the exercises of the section "Pretraining objectives".

``check_mask_tokens`` runs the student's ``mask_tokens(ids, mask_id, vocab_size,
special_ids, probability=0.15, generator=None)`` on large batches and tests what must
hold exactly (special tokens never selected or changed, labels ``-100`` exactly where a
position is not selected and the original id where it is, every changed position
labelled, random replacements never special, the input not modified, shapes and dtypes,
the same generator state giving the same output) and, statistically, the proportions:
the selected fraction of the ordinary tokens, and the 80 / 10 / 10 split of the
selected ones into ``mask_id``, a random token and the unchanged token, plus the
uniformity of the random tokens (a chi-square test). Each count is compared with its
binomial distribution and fails only beyond ``Z_LIMIT`` = 6 standard deviations: a
correct answer crosses that line with probability below 2e-9 per count, and a hidden
check makes fewer than 30 such comparisons (chi-square tests use a tail probability of
1e-9), so a correct answer fails a hidden check with probability below 1e-7 (union
bound). Both a Bernoulli selection of each token and an exact share of each row pass.

``check_causal_lm_inputs_and_labels`` runs ``causal_lm_inputs_and_labels(ids, pad_id)``
and names the classic mistakes (no shift, the shift the wrong way, padding labels not
replaced by ``-100``, padding recognised by the input instead of the target, the
inputs' padding replaced by ``-100``, the results returned in the wrong order, ``ids``
modified in place through a view).

``hidden=False`` is the friendly visible check; ``hidden=True`` draws sizes, special
ids, probabilities and tokens from a fresh random seed at grading time and computes the
expected answers with the reference inside the check.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from seqbook.checks import integrity
from seqbook.checks._harness import check
from seqbook.checks._harness import equal_tensors as _equal
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    expect_tensor,
    grading_generator,
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.models import pretraining_objectives as _reference_module

__all__ = ["check_mask_tokens", "check_causal_lm_inputs_and_labels", "Z_LIMIT"]

# Captured at import, before any student code can touch the module.
_reference_shift = _reference_module.causal_lm_inputs_and_labels
_gammaincc = torch.special.gammaincc
_isin = torch.isin

_MASK_REFERENCE = existing_paths(("seqbook.models.pretraining_objectives.mask_tokens",))
_SHIFT_REFERENCE = existing_paths(
    ("seqbook.models.pretraining_objectives.causal_lm_inputs_and_labels",)
)

Z_LIMIT = 6.0  # standard deviations a binomial count may stray before a check fails
CHI2_TAIL = 1e-9  # tail probability below which the random tokens are "not uniform"


def _first_index(where: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in where.nonzero()[0])


def _expect_pair(
    result: Any, what: str, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        kind = type(result).__name__ if result is not None else "None"
        raise CheckFailure(f"{what} must return a pair (inputs, labels); got {kind}.")
    inputs, labels = result
    for name, value in (("inputs", inputs), ("labels", labels)):
        expect_tensor(value, f"{what}: {name}", shape=shape)
        if value.dtype != torch.long:
            raise CheckFailure(
                f"{what}: {name} has dtype {value.dtype}; token ids and "
                "labels are integers (torch.long), as cross_entropy and "
                "nn.Embedding need."
            )
    return inputs, labels


# ------------------------------------------------------------------ MLM masking


def _binomial_check(
    count: int, n: int, p: float, what: str, quantity: str, hint: str
) -> None:
    """Fail when ``count`` is more than ``Z_LIMIT`` standard deviations from ``n p``."""
    if n == 0:
        return
    sd = math.sqrt(n * p * (1 - p))
    tolerance = Z_LIMIT * sd + 0.5
    if abs(count - n * p) > tolerance:
        raise CheckFailure(
            f"{what}: {quantity} is {count / n:.3f} ({count} of {n}), expected "
            f"{p:.3f} ± {tolerance / n:.3f} ({Z_LIMIT:.0f} standard deviations). {hint}"
        )


def _chi_square_tail(counts: torch.Tensor) -> float:
    """Tail probability of Pearson's chi-square statistic for uniform ``counts``."""
    total = float(counts.sum())
    expected = total / len(counts)
    statistic = float(((counts.double() - expected) ** 2 / expected).sum())
    dof = len(counts) - 1
    return float(
        _gammaincc(
            torch.tensor(dof / 2, dtype=torch.float64),
            torch.tensor(statistic / 2, dtype=torch.float64),
        )
    )


def _mask_case(
    fn: Callable[..., Any],
    label: str,
    ids: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    special_ids: list[int],
    probability: float,
    uniform_test: bool,
    g: torch.Generator,
) -> None:
    what = f"mask_tokens on {label}"
    original = ids.clone()
    seed = random_int(g, 0, 2**31 - 1)
    kwargs = dict(
        probability=probability, generator=torch.Generator().manual_seed(seed)
    )
    with forbid_calls(*_MASK_REFERENCE):
        result = call_student(
            fn, ids, mask_id, vocab_size, list(special_ids), what=what, **kwargs
        )
    if not _equal(ids, original):
        raise CheckFailure(
            f"{what} modified `ids` in place: the caller's batch is "
            "changed. Work on a copy (ids.clone(), torch.where, ...)."
        )
    inputs, labels = _expect_pair(result, what, tuple(ids.shape))

    special_tensor = torch.tensor(special_ids)
    special = _isin(ids, special_tensor)  # (B, T)
    ordinary = ~special
    selected = labels != -100
    if bool(selected.all()):
        if _equal(labels, ids):
            raise CheckFailure(
                f"{what}: the labels are the original ids at every "
                "position, so the loss would be computed everywhere. Only "
                "the selected positions carry a label (their original "
                "id); all others must be -100."
            )
        raise CheckFailure(
            f"{what}: no label is -100. Positions that are not selected "
            "get the label -100 (cross_entropy's ignore_index), not 0, "
            "the padding id or another token id."
        )
    if bool((selected & special).any()):
        where = _first_index(selected & special)
        raise CheckFailure(
            f"{what}: a special token (id {int(ids[where])} at index {where}) was "
            "selected. Special tokens (padding, <cls>, <sep>, <mask>, ... : every id "
            "in special_ids) are never selected: their label stays -100 and their "
            "input unchanged."
        )
    if not _equal(inputs[special], ids[special]):
        where = _first_index(special & (inputs != ids))
        raise CheckFailure(
            f"{what}: the special token at index {where} was changed "
            f"(from {int(ids[where])} to {int(inputs[where])}); special "
            "tokens are never selected or replaced."
        )
    wrong_label = selected & (labels != ids)
    if bool(wrong_label.any()):
        where = _first_index(wrong_label)
        hint = ""
        if int(labels[where]) in (0, mask_id) or bool(
            (labels[~selected] == -100).all() and (labels[selected] == 0).any()
        ):
            hint = (
                " Unselected positions must be -100 (cross_entropy's ignore_index), "
                "not 0 or the padding id."
            )
        raise CheckFailure(
            f"{what}: the label at index {where} is {int(labels[where])}, "
            f"but the original token there is {int(ids[where])}. A "
            f"selected position's label is its original id.{hint}"
        )
    changed_unlabelled = ~selected & (inputs != ids)
    if bool(changed_unlabelled.any()):
        where = _first_index(changed_unlabelled)
        raise CheckFailure(
            f"{what}: the token at index {where} was changed (from {int(ids[where])} "
            f"to {int(inputs[where])}) but its label is -100. Every selected position "
            "-- masked, randomised or kept -- gets its original id as its label, and "
            "unselected positions are never changed."
        )
    if bool(((inputs < 0) | (inputs >= vocab_size)).any()):
        where = _first_index((inputs < 0) | (inputs >= vocab_size))
        raise CheckFailure(
            f"{what}: input id {int(inputs[where])} at index {where} is "
            f"outside the vocabulary 0..{vocab_size - 1}."
        )

    is_mask = selected & (inputs == mask_id)
    kept = selected & (inputs == ids)
    randomised = selected & ~is_mask & ~kept
    if bool((randomised & _isin(inputs, special_tensor)).any()):
        where = _first_index(randomised & _isin(inputs, special_tensor))
        raise CheckFailure(
            f"{what}: a selected token became the special id {int(inputs[where])} "
            f"(index {where}). Random replacements are drawn from the ordinary ids "
            "only (those in range(vocab_size) that are not in special_ids)."
        )

    n_ordinary_vocab = vocab_size - len(special_ids)
    n_ord, n_sel = int(ordinary.sum()), int(selected.sum())
    n_mask, n_kept, n_random = (
        int(is_mask.sum()),
        int(kept.sum()),
        int(randomised.sum()),
    )
    if n_sel == n_ord:
        raise CheckFailure(
            f"{what}: every ordinary token was selected; each should be "
            f"selected with probability {probability}."
        )
    if n_mask == n_sel:
        raise CheckFailure(
            f"{what}: every selected token became mask_id. Only 80 % "
            "should; 10 % become a random ordinary token and 10 % stay "
            "unchanged (the 80/10/10 rule), so the model cannot rely on "
            "seeing <mask> wherever it is asked for a prediction."
        )
    # Named before the proportions: leaving the unchanged 10 % unlabelled also lowers
    # the selected fraction, and the message should name the cause. A random token can
    # equal the original, so "almost none" (under a quarter of the 10 % expected; a
    # correct answer is many standard deviations above that) counts as none.
    if n_kept < 0.025 * n_sel:
        raise CheckFailure(
            f"{what}: (almost) no selected token kept its own id "
            f"({n_kept} of {n_sel}). 10 % of the selected tokens stay "
            "unchanged (and still carry their label)."
        )
    if n_random == 0:
        raise CheckFailure(
            f"{what}: no selected token became a random token. 10 % of "
            "the selected tokens are replaced by a random ordinary id."
        )
    _binomial_check(
        n_sel,
        n_ord,
        probability,
        what,
        "the fraction of ordinary tokens selected (label != -100)",
        "Select each non-special token with the given `probability` (or "
        "an exact share of each row).",
    )
    split_hint = (
        "Of the selected tokens 80 % become mask_id, 10 % a random ordinary "
        "token and 10 % stay unchanged: draw one uniform number per position "
        "and compare it with 0.8 and 0.9."
    )
    _binomial_check(
        n_mask,
        n_sel,
        0.8,
        what,
        "the share of selected tokens replaced by mask_id",
        split_hint,
    )
    p_same = 0.1 + 0.1 / n_ordinary_vocab  # a random token may equal the original
    _binomial_check(
        n_kept,
        n_sel,
        p_same,
        what,
        "the share of selected tokens left unchanged",
        split_hint,
    )
    _binomial_check(
        n_random,
        n_sel,
        0.1 - 0.1 / n_ordinary_vocab,
        what,
        "the share of selected tokens replaced by a random token",
        split_hint,
    )
    if uniform_test:
        ordinary_ids = torch.tensor(
            [i for i in range(vocab_size) if i not in special_ids]
        )
        drawn = inputs[randomised]
        counts = (drawn[:, None] == ordinary_ids[None, :]).sum(0)  # (V_ordinary,)
        tail = _chi_square_tail(counts)
        if tail < CHI2_TAIL:
            raise CheckFailure(
                f"{what}: the random replacements are not uniform over the ordinary "
                f"ids (chi-square tail probability {tail:.1e}; counts per id "
                f"{counts.tolist()}). Draw them with torch.randint over the ordinary "
                "ids."
            )

    # The same generator state must give the same result: all randomness comes from it.
    with forbid_calls(*_MASK_REFERENCE):
        again = call_student(
            fn,
            ids.clone(),
            mask_id,
            vocab_size,
            list(special_ids),
            what=what,
            probability=probability,
            generator=torch.Generator().manual_seed(seed),
        )
    again_inputs, again_labels = _expect_pair(again, what, tuple(ids.shape))
    if not (_equal(again_inputs, inputs) and _equal(again_labels, labels)):
        raise CheckFailure(
            f"{what}: two calls with generators seeded alike gave "
            "different results. Draw every random number from "
            "`generator` (torch.rand(..., generator=generator), "
            "torch.randint(..., generator=generator))."
        )


def _mask_batch(
    g: torch.Generator,
    batch: int,
    length: int,
    vocab_size: int,
    special_ids: list[int],
    pad_id: int,
    cls_id: int,
    sep_id: int,
    extra_specials: bool,
) -> torch.Tensor:
    """Sentences ``<cls> words <sep> <pad> ...`` of random lengths; ordinary words
    uniform over the ordinary ids; optionally special ids scattered among the words."""
    ordinary_ids = torch.tensor([i for i in range(vocab_size) if i not in special_ids])
    words = ordinary_ids[torch.randint(len(ordinary_ids), (batch, length), generator=g)]
    lengths = torch.randint(3, length + 1, (batch,), generator=g)
    lengths[0] = length
    positions = torch.arange(length)[None, :]
    ids = torch.where(
        positions < lengths[:, None], words, torch.full_like(words, pad_id)
    )
    ids[:, 0] = cls_id
    ids[torch.arange(batch), lengths - 1] = sep_id
    if extra_specials:  # specials in the middle too (e.g. two segments, or <unk>)
        scatter = torch.rand(batch, length, generator=g) < 0.05
        scatter &= (positions > 0) & (positions < lengths[:, None] - 1)
        picks = torch.tensor(special_ids)[
            torch.randint(len(special_ids), (batch, length), generator=g)
        ]
        ids = torch.where(scatter, picks, ids)
    return ids


@check
def check_mask_tokens(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(ids, mask_id, vocab_size, special_ids, probability=0.15,
    generator=None) -> (inputs, labels)`` against BERT's masking rules."""
    g = grading_generator(hidden)
    cases = []
    if not hidden:
        # The book's ids: <pad>=0, <unk>=1, <cls>=2, <sep>=3, <mask>=4.
        specials = [0, 2, 3, 4]
        ids = _mask_batch(g, 800, 32, 50, specials, 0, 2, 3, False)
        cases.append(
            (
                "800 padded sentences, vocab_size=50, special_ids=[0, 2, 3, 4], "
                "probability=0.15",
                ids,
                4,
                50,
                specials,
                0.15,
                False,
            )
        )
        ids = _mask_batch(g, 600, 24, 14, specials, 0, 2, 3, True)
        cases.append(
            (
                "600 sentences with special ids inside them, vocab_size=14, "
                "probability=0.3",
                ids,
                4,
                14,
                specials,
                0.3,
                True,
            )
        )
    else:
        for index in range(3):
            vocab_size = random_int(g, 12, 16) if index == 2 else random_int(g, 20, 200)
            n_special = random_int(g, 4, 6)
            specials = torch.randperm(vocab_size, generator=g)[:n_special].tolist()
            pad_id, cls_id, sep_id, mask_id = (
                specials[0],
                specials[1],
                specials[2],
                specials[-1],
            )
            probability = (
                0.15,
                round(0.1 + 0.4 * float(torch.rand(1, generator=g)), 3),
                0.25,
            )[index]
            batch, length = random_int(g, 600, 1000), random_int(g, 24, 48)
            ids = _mask_batch(
                g,
                batch,
                length,
                vocab_size,
                specials,
                pad_id,
                cls_id,
                sep_id,
                extra_specials=index != 0,
            )
            cases.append(
                (
                    f"{batch} random sentences of length {length}, "
                    f"vocab_size={vocab_size}, special_ids={specials}, "
                    f"mask_id={mask_id}, probability={probability}",
                    ids,
                    mask_id,
                    vocab_size,
                    specials,
                    probability,
                    index == 2,
                )
            )
    for label, ids, mask_id, vocab_size, specials, probability, uniform in cases:
        _mask_case(
            fn, label, ids, mask_id, vocab_size, specials, probability, uniform, g
        )
        integrity.verify()
    return (
        f"mask_tokens follows the rules on {len(cases)} batches (exact rules, and "
        "proportions within 6 standard deviations)."
    )


# ------------------------------------------------------------------ the causal shift


def _shift_variants(
    ids: torch.Tensor, pad_id: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    def ignore(t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        return t.masked_fill(where, -100)

    inputs, targets = ids[:, :-1], ids[:, 1:]
    return {
        "no_shift": (ids[:, :-1], ignore(ids[:, :-1], ids[:, :-1] == pad_id)),
        "wrong_direction": (ids[:, 1:], ignore(ids[:, :-1], ids[:, :-1] == pad_id)),
        "padding_not_ignored": (inputs, targets),
        "pad_by_input": (inputs, ignore(targets, inputs == pad_id)),
        "inputs_ignored": (
            ignore(inputs, inputs == pad_id),
            ignore(targets, targets == pad_id),
        ),
        "swapped": (ignore(targets, targets == pad_id), inputs),
        "pad_became_zero": (inputs, targets.masked_fill(targets == pad_id, 0)),
    }


_SHIFT_MISTAKES = {
    "no_shift": "there is no shift: the label at position t is the token at position "
    "t, which the model can see. The label is the *next* token: labels come from "
    "ids[:, 1:], inputs from ids[:, :-1]",
    "wrong_direction": "the shift goes the wrong way: position t is asked for the "
    "token *before* it. Inputs are ids[:, :-1] and labels ids[:, 1:]",
    "padding_not_ignored": "padding labels are not ignored: replace every label equal "
    "to pad_id by -100 so cross_entropy skips it",
    "pad_by_input": "padding is recognised by the *input* token instead of the "
    "*label*: a label is ignored when the label itself is pad_id "
    "(the last real token is followed by padding, so its label must be -100), whatever "
    "the input there is",
    "inputs_ignored": "the *inputs* contain -100: an embedding cannot look that id up. "
    "Only the labels get -100; the inputs keep pad_id",
    "swapped": "the pair is returned in the wrong order: return (inputs, labels)",
    "pad_became_zero": "padding labels became 0 instead of -100 (cross_entropy's "
    "ignore_index), so the model is trained to predict token 0 there",
}


def _shift_case(
    fn: Callable[..., Any], label: str, ids: torch.Tensor, pad_id: int
) -> None:
    what = f"causal_lm_inputs_and_labels on {label}"
    original = ids.clone()
    with forbid_calls(*_SHIFT_REFERENCE):
        result = call_student(fn, ids, pad_id, what=what)
    if not _equal(ids, original):
        raise CheckFailure(
            f"{what} modified `ids` in place. ids[:, 1:] is a *view* of ids, so "
            "writing -100 into it changes the caller's batch: use "
            "labels.masked_fill(...) (a new tensor) or clone first."
        )
    batch, length = ids.shape
    if (
        isinstance(result, (tuple, list))
        and len(result) == 2
        and all(isinstance(t, torch.Tensor) for t in result)
    ):
        shapes = [tuple(t.shape) for t in result]
        if (batch, length) in shapes:
            raise CheckFailure(
                f"{what} returned shapes {shapes}; both must be {(batch, length - 1)}. "
                "A sequence of T tokens gives T - 1 (input, next token) pairs: the "
                "last token has no successor and the first is never a label."
            )
    inputs, labels = _expect_pair(result, what, (batch, length - 1))
    expected_inputs, expected_labels = _reference_shift(ids, pad_id)
    if _equal(inputs, expected_inputs) and _equal(labels, expected_labels):
        return
    for name, (v_inputs, v_labels) in _shift_variants(ids, pad_id).items():
        if _equal(inputs, v_inputs) and _equal(labels, v_labels):
            raise CheckFailure(f"{what}: {_SHIFT_MISTAKES[name]}.")
    for name, got, expected in (
        ("inputs", inputs, expected_inputs),
        ("labels", labels, expected_labels),
    ):
        if not _equal(got, expected):
            where = _first_index(got != expected)
            raise CheckFailure(
                f"{what}: {name}{list(where)} is {int(got[where])}, "
                f"expected {int(expected[where])}."
            )


def _shift_batch(
    g: torch.Generator, batch: int, length: int, vocab_size: int, pad_id: int
) -> torch.Tensor:
    ordinary = torch.tensor([i for i in range(vocab_size) if i != pad_id])
    ids = ordinary[torch.randint(len(ordinary), (batch, length), generator=g)]
    lengths = torch.randint(2, length + 1, (batch,), generator=g)
    lengths[0] = length  # one row without padding
    lengths[-1] = max(2, length // 2)
    return ids.masked_fill(torch.arange(length)[None, :] >= lengths[:, None], pad_id)


@check
def check_causal_lm_inputs_and_labels(
    fn: Callable[..., Any], hidden: bool = False
) -> str:
    """Check ``fn(ids (B, T), pad_id) -> (inputs, labels)``, both ``(B, T - 1)``."""
    g = grading_generator(hidden)
    cases = []
    if not hidden:
        ids = torch.tensor([[2, 7, 8, 9, 3, 0], [2, 5, 3, 0, 0, 0]])
        cases.append(("ids [[2, 7, 8, 9, 3, 0], [2, 5, 3, 0, 0, 0]], pad_id=0", ids, 0))
        ids = _shift_batch(g, 4, 9, 12, 11)
        cases.append(("a random padded batch (B=4, T=9), pad_id=11", ids, 11))
    else:
        for _ in range(4):
            # T >= 5: the half-length last row then has padding inside its inputs
            # too, which tells "padding found by the input" from "not ignored".
            batch, length = random_int(g, 2, 8), random_int(g, 5, 20)
            vocab_size = random_int(g, 5, 40)
            pad_id = random_int(g, 0, vocab_size - 1)
            cases.append(
                (
                    f"a random padded batch (B={batch}, T={length}), pad_id={pad_id}",
                    _shift_batch(g, batch, length, vocab_size, pad_id),
                    pad_id,
                )
            )
    for label, ids, pad_id in cases:
        _shift_case(fn, label, ids, pad_id)
        integrity.verify()
    return f"causal_lm_inputs_and_labels matches the reference on {len(cases)} batches."


integrity.protect_module(__name__)
