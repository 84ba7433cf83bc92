"""The checks of the section "Fine-tuning a pretrained Transformer": correct answers
pass every time (hidden mode draws fresh cases), each classic mistake is named, stubs
and bad returns get clear messages, and the book's references cannot be used."""

from __future__ import annotations

import copy

import pytest
import torch

import seqbook.checks  # noqa: F401 - records the integrity baseline first
from seqbook.checks import CheckFailure, ForbiddenCall, IntegrityError
from seqbook.checks import fine_tuning as ft_checks
from seqbook.train import fine_tuning as reference

# Some wrong answers step the scheduler first, as students do; PyTorch warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of")

# ------------------------------------------------------------------ train_epoch


def train_variant(kind="correct"):
    def train_epoch(model, loader, optimizer, scheduler=None, device="cpu"):
        if kind != "no_train":
            model.train()
        total, count, losses = 0.0, 0, []
        for batch in loader:
            if kind != "not_moved":
                batch = {k: v.to(device) for k, v in batch.items()}
            if kind != "no_zero_grad":
                optimizer.zero_grad()
            if kind == "no_mask":
                output = model(input_ids=batch["input_ids"], labels=batch["labels"])
            else:
                output = model(**batch)
            output.loss.backward()
            if kind == "scheduler_first" and scheduler is not None:
                scheduler.step()
            if kind != "no_step":
                optimizer.step()
            if kind == "correct_zero_at_end":
                optimizer.zero_grad()
            if scheduler is not None and kind not in (
                "scheduler_first",
                "no_scheduler",
                "scheduler_per_epoch",
            ):
                scheduler.step()
            size = batch["labels"].shape[0]
            losses.append(output.loss.item())
            total += output.loss.item() * size
            count += size
        if kind == "scheduler_per_epoch" and scheduler is not None:
            scheduler.step()
        if kind == "tensor":
            return torch.tensor(total / count)
        if kind == "batch_mean":
            return sum(losses) / len(losses)
        if kind == "last":
            return losses[-1]
        if kind == "none":
            return None
        if kind == "dataset_len":
            return total / len(loader.dataset)
        return total / count

    return train_epoch


@pytest.mark.parametrize("kind", ["correct", "correct_zero_at_end", "dataset_len"])
def test_correct_train_epoch_passes_repeatedly(kind):
    ft_checks.check_train_epoch(train_variant(kind))
    for _ in range(20):
        ft_checks.check_train_epoch(train_variant(kind), hidden=True)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("no_zero_grad", "zero_grad"),
        ("no_train", "model.train()"),
        ("scheduler_first", "before optimizer.step()"),
        ("no_scheduler", "never stepped"),
        ("scheduler_per_epoch", "once per epoch"),
        ("batch_mean", "mean of the batch losses"),
        ("last", "last batch"),
        ("tensor", "Python float"),
        ("none", "None"),
        ("not_moved", "move every tensor"),
        ("no_mask", "attention_mask"),
        ("no_step", "did not change"),
    ],
)
def test_train_epoch_mistakes_are_named(kind, words):
    for hidden in (False, True, True):
        with pytest.raises(CheckFailure) as info:
            ft_checks.check_train_epoch(train_variant(kind), hidden=hidden)
        assert words in str(info.value), str(info.value)


def test_train_epoch_stub_and_reference_are_refused():
    def stub(model, loader, optimizer, scheduler=None, device="cpu"):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        ft_checks.check_train_epoch(stub)
    with pytest.raises(ForbiddenCall):
        ft_checks.check_train_epoch(reference.train_epoch)
    alias = reference.fit

    def through_fit(model, loader, optimizer, scheduler=None, device="cpu"):
        alias(model, loader, loader, optimizer, scheduler, device, verbose=False)
        return 0.0

    with pytest.raises(ForbiddenCall):
        ft_checks.check_train_epoch(through_fit)


def test_replacing_the_grading_model_is_detected():
    original = ft_checks._TinyClassifier.forward

    def cheat(model, loader, optimizer, scheduler=None, device="cpu"):
        ft_checks._TinyClassifier.forward = lambda self, **kw: None
        return 0.0

    try:
        with pytest.raises(IntegrityError):
            ft_checks.check_train_epoch(cheat)
    finally:
        ft_checks._TinyClassifier.forward = original
    assert ft_checks._TinyClassifier.forward is original


# --------------------------------------------------------------------- evaluate


def evaluate_variant(kind="correct"):
    def evaluate(model, loader, device):
        if kind != "no_eval":
            model.eval()
        total, correct, count, losses = 0.0, 0, 0, []
        context = torch.enable_grad() if kind == "no_no_grad" else torch.no_grad()
        if kind == "inference_mode":
            context = torch.inference_mode()
        with context:
            for batch in loader:
                if kind != "not_moved":
                    batch = {k: v.to(device) for k, v in batch.items()}
                if kind == "no_mask":
                    output = model(input_ids=batch["input_ids"], labels=batch["labels"])
                else:
                    output = model(**batch)
                size = batch["labels"].shape[0]
                losses.append(output.loss.item())
                total += output.loss.item() * size
                correct += (output.logits.argmax(-1) == batch["labels"]).sum().item()
                count += size
        if kind == "extra_call":
            model(
                **{k: v.to(device) for k, v in next(iter(loader)).items()}
            ).loss.backward()
        accuracy = correct / count
        if kind == "percent":
            accuracy *= 100
        loss = total / count
        if kind == "batch_mean":
            loss = sum(losses) / len(losses)
        if kind == "total":
            loss = total
        if kind == "tensor":
            loss = torch.tensor(loss)
        if kind == "tuple":
            return loss, accuracy
        if kind == "missing_key":
            return {"loss": loss, "acc": accuracy}
        return {"loss": loss, "accuracy": accuracy}

    return evaluate


@pytest.mark.parametrize("kind", ["correct", "inference_mode"])
def test_correct_evaluate_passes_repeatedly(kind):
    ft_checks.check_evaluate(evaluate_variant(kind))
    for _ in range(20):
        ft_checks.check_evaluate(evaluate_variant(kind), hidden=True)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("no_eval", "model.eval()"),
        ("no_no_grad", "torch.no_grad()"),
        ("not_moved", "move every tensor"),
        ("no_mask", "attention_mask"),
        ("percent", "percentage"),
        ("batch_mean", "mean of the batch losses"),
        ("total", "total over the examples"),
        ("tensor", "Python float"),
        ("tuple", "expected a dict"),
        ("missing_key", "'accuracy'"),
        ("extra_call", "once per batch"),
    ],
)
def test_evaluate_mistakes_are_named(kind, words):
    for hidden in (False, True, True):
        with pytest.raises(CheckFailure) as info:
            ft_checks.check_evaluate(evaluate_variant(kind), hidden=hidden)
        assert words in str(info.value), str(info.value)


def test_evaluate_reference_is_refused():
    with pytest.raises(ForbiddenCall):
        ft_checks.check_evaluate(reference.evaluate)


# --------------------------------------------------------------- early stopping


def stopping_variant(kind="correct"):
    class EarlyStopping(reference.EarlyStopping):
        def step(self, score, model):
            if self.best_score is None:
                improved = True
            elif self.mode == "max" or kind == "mode":
                improved = (
                    score >= self.best_score + self.min_delta
                    if kind == "tie"
                    else score > self.best_score + self.min_delta
                )
            else:
                improved = score < self.best_score - self.min_delta
            if kind == "every":
                self.best_state = copy.deepcopy(model.state_dict())
            if improved:
                self.best_score = score
                if kind == "reference":
                    self.best_state = model.state_dict()
                elif kind == "shallow":
                    self.best_state = dict(model.state_dict())
                elif kind == "clone":
                    self.best_state = {
                        k: v.detach().clone() for k, v in model.state_dict().items()
                    }
                elif kind != "every":
                    self.best_state = copy.deepcopy(model.state_dict())
                if kind != "no_reset":
                    self.num_bad_epochs = 0
            else:
                self.num_bad_epochs += 1
            if kind == "late":
                return self.num_bad_epochs > self.patience
            if kind == "tensor":
                return torch.tensor(self.num_bad_epochs >= self.patience)
            return self.num_bad_epochs >= self.patience

    # Defined in this test module, as a student's class is, not in seqbook.
    EarlyStopping.__module__ = __name__
    return EarlyStopping


@pytest.mark.parametrize("kind", ["correct", "clone"])
def test_correct_early_stopping_passes_repeatedly(kind):
    ft_checks.check_early_stopping(stopping_variant(kind))
    for _ in range(30):
        ft_checks.check_early_stopping(stopping_variant(kind), hidden=True)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("reference", "share memory"),
        ("shallow", "share memory"),
        ("every", "only when the score improves"),
        ("late", "off by one"),
        ("no_reset", "not reset"),
        ("mode", "mode='min' is ignored"),
        ("tie", "equal to the best"),
        ("tensor", "True (stop) or False"),
    ],
)
def test_early_stopping_mistakes_are_named(kind, words):
    for hidden in (False,) + (True,) * 5:
        with pytest.raises(CheckFailure) as info:
            ft_checks.check_early_stopping(stopping_variant(kind), hidden=hidden)
        assert words in str(info.value), (kind, str(info.value))


def test_early_stopping_stub_is_reported():
    class Stub(reference.EarlyStopping):
        def step(self, score, model):
            raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        ft_checks.check_early_stopping(Stub)


def test_early_stopping_reference_step_is_refused():
    class Lazy(reference.EarlyStopping):
        pass

    with pytest.raises(ForbiddenCall):
        ft_checks.check_early_stopping(Lazy)
