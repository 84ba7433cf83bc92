"""The checks of "Pretraining objectives": correct answers written in several ways pass
repeatedly in hidden mode, each classic mistake is rejected with a message that names
it, stubs are explained, and the book's reference is refused."""

from __future__ import annotations

import pytest
import torch

from seqbook.checks import pretraining_objectives as pre_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall

check_mask = pre_checks.check_mask_tokens
check_shift = pre_checks.check_causal_lm_inputs_and_labels


# ------------------------------------------------------------ masking answers
# Written independently of seqbook.models.pretraining_objectives (forbidden while
# answers run).


def mask_bernoulli(
    ids, mask_id, vocab_size, special_ids, probability=0.15, generator=None
):
    special = torch.zeros(ids.shape, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    selected = ~special & (torch.rand(ids.shape, generator=generator) < probability)
    labels = ids.clone()
    labels[~selected] = -100
    inputs = ids.clone()
    u = torch.rand(ids.shape, generator=generator)
    inputs[selected & (u < 0.8)] = mask_id
    ordinary = [i for i in range(vocab_size) if i not in set(special_ids)]
    random_positions = selected & (u >= 0.8) & (u < 0.9)
    picks = torch.randint(
        len(ordinary), (int(random_positions.sum()),), generator=generator
    )
    inputs[random_positions] = torch.tensor(ordinary)[picks]
    return inputs, labels


def mask_exact_share(
    ids, mask_id, vocab_size, special_ids, probability=0.15, generator=None
):
    """Selects round(p * n) ordinary tokens of every row, then three nested draws."""
    inputs, labels = ids.clone(), torch.full_like(ids, -100)
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in special_ids])
    for row in range(ids.size(0)):
        candidates = [
            t for t in range(ids.size(1)) if int(ids[row, t]) not in special_ids
        ]
        k = round(probability * len(candidates))
        order = torch.randperm(len(candidates), generator=generator)[:k]
        for j in order.tolist():
            t = candidates[j]
            labels[row, t] = ids[row, t]
            u = float(torch.rand(1, generator=generator))
            if u < 0.8:
                inputs[row, t] = mask_id
            elif u < 0.9:
                inputs[row, t] = ordinary[
                    torch.randint(len(ordinary), (1,), generator=generator)
                ]
    return inputs, labels


def mask_mistake(kind):
    def mask_tokens(
        ids, mask_id, vocab_size, special_ids, probability=0.15, generator=None
    ):
        special = torch.isin(ids, torch.tensor(list(special_ids)))
        p = 0.15 if kind == "hard_coded_p" else probability
        draw = torch.rand(ids.shape, generator=generator)
        selected = draw < p if kind == "specials_selected" else ~special & (draw < p)
        u = torch.rand(ids.shape, generator=generator)
        if kind == "all_mask":
            u = torch.zeros(ids.shape)
        if kind == "ignores_generator":
            u = torch.rand(ids.shape)
        vocab = torch.arange(vocab_size)
        ordinary = (
            vocab
            if kind == "random_special"
            else vocab[~torch.isin(vocab, torch.tensor(list(special_ids)))]
        )
        pick = ordinary[torch.randint(len(ordinary), ids.shape, generator=generator)]
        target = ids if kind == "in_place" else ids.clone()
        target[selected & (u < 0.8)] = mask_id
        randomised = selected & (u >= 0.8) & (u < 0.9)
        if kind == "wrong_split":  # "10 %" drawn again among the rest: 2 % random
            randomised = (
                selected
                & (u >= 0.8)
                & (torch.rand(ids.shape, generator=generator) < 0.1)
            )
        target[randomised] = pick[randomised]
        if kind == "in_place":
            labels = torch.where(
                selected, torch.full_like(ids, 0), torch.full_like(ids, -100)
            )
            return target.clone(), labels
        if kind == "labels_everywhere":
            return target, ids.clone()
        if kind == "labels_zero":
            return target, torch.where(selected, ids, torch.zeros_like(ids))
        if kind == "kept_unlabelled":
            return target, torch.where(
                selected & (target != ids), ids, torch.full_like(ids, -100)
            )
        if kind == "float_labels":
            return target, torch.where(selected, ids, -100).float()
        if kind == "stub":
            raise NotImplementedError()
        if kind == "one_tensor":
            return target
        return target, torch.where(selected, ids, torch.full_like(ids, -100))

    return mask_tokens


def test_correct_masking_passes_repeatedly(capsys):
    for answer in (mask_bernoulli, mask_exact_share, mask_mistake("none")):
        check_mask(answer)
        repeats = 4 if answer is mask_exact_share else 25  # the loop version is slow
        for _ in range(repeats):
            check_mask(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind, words",
    [
        ("specials_selected", "special token"),
        ("all_mask", "80/10/10"),
        ("labels_everywhere", "at every position"),
        ("in_place", "in place"),
        ("random_special", "ordinary ids only"),
        ("hard_coded_p", "fraction of ordinary tokens selected"),
        ("wrong_split", "80 % become mask_id"),
        ("kept_unlabelled", "kept its own id"),
        ("labels_zero", "not 0"),
        ("ignores_generator", "generator"),
        ("float_labels", "torch.long"),
        ("one_tensor", "pair"),
        ("stub", "NotImplementedError"),
    ],
)
def test_masking_mistakes_are_named(kind, words):
    for hidden in (False, True, True, True):
        if kind == "hard_coded_p" and not hidden:
            continue  # the visible check's second case (p = 0.3) catches it too
        with pytest.raises(CheckFailure, match=words):
            check_mask(mask_mistake(kind), hidden=hidden)


def test_hard_coded_probability_fails_visibly():
    with pytest.raises(CheckFailure, match="fraction of ordinary tokens selected"):
        check_mask(mask_mistake("hard_coded_p"))


def test_masking_reference_is_forbidden():
    from seqbook.models import pretraining_objectives as pretraining

    def cheat(*args, **kwargs):
        return pretraining.mask_tokens(*args, **kwargs)

    with pytest.raises(ForbiddenCall):
        check_mask(cheat)


def test_z_limit_gives_a_tiny_false_alarm_rate():
    # Two-sided normal tail beyond 6 sd, times a generous 30 comparisons per check.
    import math

    tail = math.erfc(pre_checks.Z_LIMIT / math.sqrt(2))
    assert 30 * tail < 1e-7


# ------------------------------------------------------------ shift answers


def shift_clone(ids, pad_id):
    labels = ids[:, 1:].clone()
    labels[labels == pad_id] = -100
    return ids[:, :-1], labels


def shift_where(ids, pad_id):
    targets = ids[:, 1:]
    return ids[:, :-1].clone(), torch.where(targets == pad_id, -100, targets)


def shift_mistake(kind):
    def causal_lm_inputs_and_labels(ids, pad_id):
        if kind == "no_shift":
            labels = ids[:, :-1].clone()
            labels[labels == pad_id] = -100
            return ids[:, :-1], labels
        if kind == "full_length":
            labels = ids.clone()
            labels[labels == pad_id] = -100
            return ids, labels
        if kind == "wrong_direction":
            labels = ids[:, :-1].clone()
            labels[labels == pad_id] = -100
            return ids[:, 1:], labels
        if kind == "padding_not_ignored":
            return ids[:, :-1], ids[:, 1:]
        if kind == "pad_by_input":
            labels = ids[:, 1:].clone()
            labels[ids[:, :-1] == pad_id] = -100
            return ids[:, :-1], labels
        if kind == "in_place":
            labels = ids[:, 1:]
            labels[labels == pad_id] = -100
            return ids[:, :-1], labels
        if kind == "inputs_ignored":
            inputs, labels = ids[:, :-1].clone(), ids[:, 1:].clone()
            inputs[inputs == pad_id] = -100
            labels[labels == pad_id] = -100
            return inputs, labels
        if kind == "swapped":
            inputs, labels = shift_clone(ids, pad_id)
            return labels, inputs
        if kind == "stub":
            raise NotImplementedError()
        raise ValueError(kind)

    return causal_lm_inputs_and_labels


def test_correct_shifts_pass_repeatedly(capsys):
    for answer in (shift_clone, shift_where):
        check_shift(answer)
        for _ in range(25):
            check_shift(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind, words",
    [
        ("no_shift", "no shift"),
        ("full_length", "T - 1"),
        ("wrong_direction", "wrong way"),
        ("padding_not_ignored", "padding labels are not ignored"),
        ("pad_by_input", "by the \\*input\\*"),
        ("in_place", "in place"),
        ("inputs_ignored", "inputs\\* contain -100"),
        ("swapped", "wrong order"),
        ("stub", "NotImplementedError"),
    ],
)
def test_shift_mistakes_are_named(kind, words):
    for hidden in (False, True, True, True):
        with pytest.raises(CheckFailure, match=words):
            check_shift(shift_mistake(kind), hidden=hidden)


def test_shift_reference_is_forbidden():
    from seqbook.models import pretraining_objectives as pretraining

    def cheat(ids, pad_id):
        return pretraining.causal_lm_inputs_and_labels(ids, pad_id)

    with pytest.raises(ForbiddenCall):
        check_shift(cheat)
