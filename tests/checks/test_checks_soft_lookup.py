"""The checks of the section "Attention as a soft dictionary lookup": correct answers
pass every time, each classic mistake is named, stubs and bad returns get clear
messages, and the book's references cannot be used."""

import pytest
import torch
import torch.nn.functional as F

import seqbook.checks  # noqa: F401 - records the integrity baseline first
from seqbook.checks import CheckFailure, ForbiddenCall, IntegrityError
from seqbook.checks import soft_lookup as lookup_checks
from seqbook.models import soft_lookup as reference

# --------------------------------------------------------------- pooling answers


def pooling_variant(kind="correct"):
    def pooling(queries, keys, values, width, mask=None):
        diff = queries[:, None] - keys[None, :]
        if kind == "float_width":
            width = float(width)
        if kind == "variance":
            scores = -(diff**2) / (2 * width)
        elif kind == "missing_two":
            scores = -(diff**2) / width**2
        elif kind == "not_squared":
            scores = -diff.abs() / (2 * width**2)
        elif kind == "sign":
            scores = diff**2 / (2 * width**2)
        else:
            scores = -(diff**2) / (2 * width**2)
        if mask is not None and kind not in (
            "mask_ignored",
            "mask_after",
            "mask_zero",
            "unnormalised",
            "naive",
        ):
            scores = scores.masked_fill(
                ~mask if kind != "mask_inverted" else mask, float("-inf")
            )
        if mask is not None and kind == "mask_zero":
            scores = scores.masked_fill(~mask, 0.0)
        if kind == "unnormalised":
            weights = scores.exp()
            if mask is not None:
                weights = weights * mask
        elif kind == "naive":
            kernel = scores.exp() if mask is None else scores.exp() * mask
            weights = kernel / kernel.sum(dim=-1, keepdim=True)
        elif kind == "over_queries":
            weights = torch.softmax(scores, dim=0)
        else:
            weights = torch.softmax(scores, dim=-1)
        if kind == "mask_after" and mask is not None:
            weights = weights.masked_fill(~mask, 0.0)
        predictions = weights @ (keys if kind == "average_keys" else values)
        if kind == "swapped":
            return weights, predictions
        if kind == "column":
            return predictions[:, None], weights
        return predictions, weights

    return pooling


def pooling_with_einsum(queries, keys, values, width, mask=None):
    scores = -torch.einsum("i,j->ij", queries, torch.ones_like(keys))
    scores = -((scores + keys) ** 2) / 2 / width / width
    if mask is not None:
        scores = torch.where(
            mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype)
        )
    weights = F.softmax(scores, dim=1)
    return torch.einsum("ij,j->i", weights, values), weights


def pooling_with_logsumexp(queries, keys, values, width, mask=None):
    scores = (queries.unsqueeze(1) - keys.unsqueeze(0)).pow(2) * (-0.5 / width**2)
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -torch.inf)
    weights = torch.exp(scores - torch.logsumexp(scores, dim=1, keepdim=True))
    return (weights * values).sum(dim=1), weights


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "answer", [pooling_variant(), pooling_with_einsum, pooling_with_logsumexp]
)
def test_correct_pooling_passes(hidden, answer, capsys):
    for _ in range(20 if hidden else 1):
        lookup_checks.check_gaussian_attention_pooling(answer, hidden=hidden)
    assert "✔" in capsys.readouterr().out


POOLING_MISTAKES = {
    "unnormalised": "directly",
    "over_queries": "over the queries",
    "variance": "used as a variance",
    "missing_two": "factor 2 is missing",
    "not_squared": "not squared",
    "sign": "sign of the score",
    "naive": "underflows",
    "mask_ignored": "ignored",
    "mask_inverted": "inverted",
    "mask_after": "after the softmax",
    "mask_zero": "set to 0",
    "swapped": "in that order",
    "average_keys": "average the keys",
    "float_width": "no gradient reaches the width",
    "column": "no extra axis",
}


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("kind, phrase", sorted(POOLING_MISTAKES.items()))
def test_each_pooling_mistake_is_named(kind, phrase, hidden):
    for _ in range(10 if hidden else 1):
        with pytest.raises(CheckFailure) as error:
            lookup_checks.check_gaussian_attention_pooling(
                pooling_variant(kind), hidden
            )
        assert phrase in str(error.value), str(error.value)


def test_pooling_stubs_and_bad_returns_get_clear_messages():
    def stub(queries, keys, values, width, mask=None):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        lookup_checks.check_gaussian_attention_pooling(stub)
    with pytest.raises(CheckFailure, match="pair"):
        lookup_checks.check_gaussian_attention_pooling(
            lambda q, k, v, w, mask=None: None
        )
    with pytest.raises(CheckFailure, match="dtype"):
        lookup_checks.check_gaussian_attention_pooling(
            lambda q, k, v, w, mask=None: tuple(
                t.double() for t in pooling_variant()(q, k, v, w, mask)
            )
        )


def test_pooling_may_not_call_the_reference():
    with pytest.raises(ForbiddenCall):
        lookup_checks.check_gaussian_attention_pooling(
            reference.gaussian_attention_pooling
        )
    alias = reference.gaussian_attention_pooling

    def through_alias(queries, keys, values, width, mask=None):
        return alias(queries, keys, values, width, mask)

    with pytest.raises(ForbiddenCall):
        lookup_checks.check_gaussian_attention_pooling(through_alias, hidden=True)


def test_replacing_a_reference_is_detected():
    original = reference.leave_one_out_mask

    def cheat(queries, keys, values, width, mask=None):
        reference.leave_one_out_mask = lambda n, device=None: None
        return pooling_variant()(queries, keys, values, width, mask)

    with pytest.raises(IntegrityError):
        lookup_checks.check_gaussian_attention_pooling(cheat)
    assert reference.leave_one_out_mask is original


# ------------------------------------------------------------ training-step answers


def step_variant(kind="correct"):
    def training_step(model, optimizer, queries, keys, values, targets, mask=None):
        if kind not in ("no_zero_grad", "step_first_no_zero"):
            optimizer.zero_grad()
        predictions = model(
            queries, keys, values, None if kind == "mask_ignored" else mask
        )
        if kind == "sum_loss":
            loss = ((predictions - targets) ** 2).sum()
        else:
            loss = ((predictions - targets) ** 2).mean()
        if kind in ("step_first", "step_first_no_zero"):
            optimizer.step()
            loss.backward()
        elif kind == "manual_update":
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.5 * p.grad
        else:
            loss.backward()
            if kind != "no_step":
                optimizer.step()
        if kind == "tensor":
            return loss
        if kind == "after_step":
            with torch.no_grad():
                return F.mse_loss(model(queries, keys, values, mask), targets).item()
        if kind == "none":
            return None
        return loss.item()

    return training_step


def step_with_set_to_none_false(
    model, optimizer, queries, keys, values, targets, mask=None
):
    model.zero_grad(set_to_none=False)
    loss = F.mse_loss(
        model(queries, keys, values, mask=mask), targets, reduction="mean"
    )
    loss.backward()
    optimizer.step()
    return float(loss)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("answer", [step_variant(), step_with_set_to_none_false])
def test_correct_training_step_passes(hidden, answer, capsys):
    for _ in range(20 if hidden else 1):
        lookup_checks.check_training_step(answer, hidden=hidden)
    assert "✔" in capsys.readouterr().out


STEP_MISTAKES = {
    "no_zero_grad": "not zeroed",
    "step_first": "did not change",
    "step_first_no_zero": "before loss.backward()",
    "no_step": "did not change",
    "sum_loss": "SUM",
    "mask_ignored": "mask is not passed",
    "tensor": "Python float",
    "after_step": "after optimizer.step()",
    "none": "forget a `return`",
    "manual_update": "optimizer.step()",
}


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("kind, phrase", sorted(STEP_MISTAKES.items()))
def test_each_training_step_mistake_is_named(kind, phrase, hidden):
    for _ in range(5 if hidden else 1):
        with pytest.raises(CheckFailure) as error:
            lookup_checks.check_training_step(step_variant(kind), hidden)
        assert phrase in str(error.value), str(error.value)


def test_training_step_stub_and_reference_are_refused():
    def stub(model, optimizer, queries, keys, values, targets, mask=None):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        lookup_checks.check_training_step(stub)
    with pytest.raises(ForbiddenCall):
        lookup_checks.check_training_step(reference.training_step)


def test_changing_the_model_class_is_detected_and_undone():
    original = reference.KernelRegression.forward

    def cheat(model, optimizer, queries, keys, values, targets, mask=None):
        reference.KernelRegression.forward = lambda self, q, k, v, mask=None: q * 0.0
        return step_variant()(model, optimizer, queries, keys, values, targets, mask)

    with pytest.raises(IntegrityError, match="KernelRegression"):
        lookup_checks.check_training_step(cheat)
    assert reference.KernelRegression.forward is original
    lookup_checks.check_training_step(step_variant())
