"""Checks for the exercises of the section "Fine-tuning a pretrained Transformer".

* :func:`check_train_epoch` -- ``train_epoch(model, loader, optimizer, scheduler=None,
  device="cpu") -> float``: after one pass the parameters and the scheduler must equal
  those of a copy trained by the reference
  :func:`seqbook.train.fine_tuning.train_epoch`, and the returned float must be the mean
  training loss per example;
* :func:`check_evaluate` -- ``evaluate(model, loader, device) -> {"loss": float,
  "accuracy": float}`` (mean loss per example, accuracy a fraction in [0, 1]);
* :func:`check_early_stopping` -- the class ``EarlyStopping(patience, min_delta, mode)``
  and its ``step(score, model) -> bool``, run through sequences of scores while the
  model's weights change in place, as an optimizer changes them.

Grading does not need the pretrained model: a tiny classifier built inside this module
(an embedding, dropout, a mean over the unmasked tokens and a linear layer, in float64)
takes the same keyword arguments as a Hugging Face model (``input_ids``,
``attention_mask``, ``labels``) and returns an object with ``.loss`` and ``.logits``. It
records how it was called, so the checks can name the classic mistakes: gradients never
zeroed, the model left in eval mode while training (or in training mode, dropout on,
while evaluating), gradients computed during evaluation, the scheduler not stepped or
stepped once per epoch, a loss averaged over batches instead of examples, a batch not
moved to the device, the attention mask dropped, the accuracy as a percentage; for early
stopping, best weights kept by reference (``state_dict()`` shares memory with the
parameters), patience off by one, a counter that is not reset, the mode or ``min_delta``
ignored, a tie counted as an improvement. ``hidden=True`` draws sizes, data, learning
rates and score sequences from a fresh random seed at grading time.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from seqbook.checks import integrity
from seqbook.checks._harness import check, close_numbers, restore_class, verify
from seqbook.checks._harness import random_uniform as _uniform
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    describe,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.train import fine_tuning as _reference_module

__all__ = ["check_train_epoch", "check_evaluate", "check_early_stopping"]

# Captured at import, before any student code can touch the module.
_reference_train_epoch = _reference_module.train_epoch
_reference_evaluate = _reference_module.evaluate
_ReferenceEarlyStopping = _reference_module.EarlyStopping
_warmup = _reference_module.linear_warmup_lambda
_deepcopy = copy.deepcopy
_is_grad_enabled = torch.is_grad_enabled
_Tensor = torch.Tensor

_LOOP_REFERENCES = existing_paths(
    (
        "seqbook.train.fine_tuning.train_epoch",
        "seqbook.train.fine_tuning.evaluate",
        "seqbook.train.fine_tuning.fit",
    )
)
_STOPPING_REFERENCES = existing_paths(("seqbook.train.fine_tuning.EarlyStopping.step",))

_generator = grading_generator
_randint = random_int


# ------------------------------------------------------------- the model used to grade


class NotMovedError(CheckFailure):
    """The model received a tensor that was never moved to the device."""


class _HostTensor(torch.Tensor):
    """A batch tensor as a loader yields it: on the host, not yet moved to the device.

    ``.to(...)`` returns an ordinary tensor, so the model can tell whether the batch
    went through ``.to(device)`` even on a machine whose only device is the CPU."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs or {})
        if func in (_Tensor.to, _Tensor.cuda, _Tensor.cpu) and isinstance(
            result, _Tensor
        ):
            return result.as_subclass(_Tensor)
        return result


class _Output:
    """What a Hugging Face classification model returns: ``.loss`` and ``.logits``."""

    def __init__(self, loss, logits):
        self.loss = loss
        self.logits = logits

    def __getitem__(self, index):
        return (self.loss, self.logits)[index]


class _TinyClassifier(nn.Module):
    """Embedding -> dropout -> mean over the unmasked tokens -> linear, in float64, with
    the calling convention of ``BertForSequenceClassification``. Each call is recorded:
    training mode, gradients enabled, attention mask given."""

    def __init__(self, vocab_size: int, width: int, num_labels: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, dtype=torch.float64)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_labels, dtype=torch.float64)
        self.calls: list[dict[str, bool]] = []

    def forward(self, input_ids=None, attention_mask=None, labels=None, **unused):
        for name, value in (
            ("input_ids", input_ids),
            ("attention_mask", attention_mask),
            ("labels", labels),
        ):
            if isinstance(value, _HostTensor):
                raise NotMovedError(
                    f"the model received `{name}` as the loader gave it: move every "
                    "tensor of the batch to the device first "
                    "(batch = {k: v.to(device) for k, v in batch.items()}), or the "
                    "code fails on a GPU."
                )
        if input_ids is None:
            raise CheckFailure(
                "the model was called without input_ids: call model(**batch)."
            )
        self.calls.append(
            {
                "training": self.training,
                "grad": _is_grad_enabled(),
                "mask": attention_mask is not None,
                "labels": labels is not None,
            }
        )
        hidden = self.dropout(self.embedding(input_ids))  # (B, T, W)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        weights = attention_mask.to(hidden.dtype)[..., None]  # (B, T, 1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)  # (B, W)
        logits = self.classifier(pooled)  # (B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return _Output(loss, logits)


_MODEL_ATTRIBUTES = {
    name: vars(_TinyClassifier)[name] for name in ("__init__", "forward")
}


def _verify_model_class() -> None:
    """The classes the checks use must be this module's: undo and report changes."""
    restore_class(_TinyClassifier, _MODEL_ATTRIBUTES, "the grading model's ")


class _Dataset:
    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size


class _Loader:
    """A stand-in for a ``DataLoader``: yields fresh batch dicts of host tensors, has a
    length (batches), a ``dataset`` with a length (examples) and a ``batch_size``."""

    def __init__(self, batches: list[dict[str, torch.Tensor]], batch_size: int):
        self._batches = batches
        self.batch_size = batch_size
        self.dataset = _Dataset(sum(int(b["labels"].shape[0]) for b in batches))

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self):
        for batch in self._batches:
            yield {
                name: tensor.clone().as_subclass(_HostTensor)
                for name, tensor in batch.items()
            }

    def plain(self) -> list[dict[str, torch.Tensor]]:
        return [
            {name: tensor.clone() for name, tensor in batch.items()}
            for batch in self._batches
        ]


def _make_batches(
    g: torch.Generator, sizes: list[int], vocab: int, max_len: int, num_labels: int
) -> list[dict[str, torch.Tensor]]:
    batches = []
    for size in sizes:
        lengths = torch.randint(2, max_len + 1, (size,), generator=g)
        length = int(lengths.max())
        ids = torch.randint(1, vocab, (size, length), generator=g)
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        batches.append(
            {
                "input_ids": ids * mask,
                "attention_mask": mask,
                "labels": torch.randint(0, num_labels, (size,), generator=g),
            }
        )
    return batches


def _make_model(
    seed: int, vocab: int, width: int, num_labels: int, dropout: float
) -> _TinyClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _TinyClassifier(vocab, width, num_labels, dropout)


def _parameters(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _largest_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(max_abs_error(x, y) for x, y in zip(a, b))


_close = functools.partial(close_numbers, rtol=1e-7, atol=1e-9)


def _as_float(value: Any, what: str, name: str) -> float:
    if value is None:
        raise CheckFailure(
            f"{what} returned None{' for ' + name if name else ''}: did "
            "you forget a `return`?"
        )
    if isinstance(value, torch.Tensor):
        raise CheckFailure(
            f"{what} gave {name or 'its result'} as {describe(value)}; give a Python "
            "float (loss.item()): a tensor keeps the whole graph of the batch alive."
        )
    if isinstance(value, bool) or not isinstance(value, (float, int)):
        raise CheckFailure(
            f"{what} gave {name or 'its result'} as {describe(value)}; "
            "expected a Python float."
        )
    return float(value)


# --------------------------------------------------------------------- train_epoch


def _train_variant(kind: str) -> Callable[..., float]:
    """train_epoch as a classic mistake writes it ("reference" for the correct one)."""

    def run(model, loader, optimizer, scheduler=None, device="cpu"):
        if kind != "eval_mode":
            model.train()
        losses, sizes = [], []
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            if kind != "no_zero_grad":
                optimizer.zero_grad()
            output = model(**batch)
            output.loss.backward()
            if kind == "scheduler_before_optimizer" and scheduler is not None:
                scheduler.step()
            optimizer.step()
            if (
                kind
                not in (
                    "scheduler_not_stepped",
                    "scheduler_per_epoch",
                    "scheduler_before_optimizer",
                )
                and scheduler is not None
            ):
                scheduler.step()
            losses.append(output.loss.item())
            sizes.append(batch["labels"].shape[0])
        if kind == "scheduler_per_epoch" and scheduler is not None:
            scheduler.step()
        if kind == "mean_over_batches":
            return sum(losses) / len(losses)
        if kind == "sum_of_batch_losses":
            return sum(losses)
        if kind == "last_batch_loss":
            return losses[-1]
        if kind == "summed_per_example":
            return sum(loss * size for loss, size in zip(losses, sizes))
        return sum(loss * size for loss, size in zip(losses, sizes)) / sum(sizes)

    return run


_TRAIN_MISTAKES = {
    "no_zero_grad": "the gradients are never zeroed: call optimizer.zero_grad() for "
    "every batch, or each step applies the sum of all gradients so far",
    "eval_mode": "the model is not put in training mode: call model.train() at the "
    "start (the model may come from evaluate(), which leaves it in eval mode with "
    "dropout off)",
    "scheduler_before_optimizer": "scheduler.step() is called before optimizer.step(): "
    "step the optimizer first, then the scheduler, so each batch uses the learning "
    "rate the schedule gives it",
    "scheduler_not_stepped": "the scheduler is never stepped: call scheduler.step() "
    "after optimizer.step() for every batch (when a scheduler is given)",
    "scheduler_per_epoch": "the scheduler is stepped once per epoch: the warm-up "
    "schedule counts optimizer steps, so call scheduler.step() after every "
    "optimizer.step()",
    "mean_over_batches": "the returned loss is the mean of the batch losses: weight "
    "each batch's mean loss by its number of examples and divide by the number of "
    "examples (the last batch is shorter)",
    "sum_of_batch_losses": "the returned loss is the sum of the batch losses: return "
    "the mean loss per example",
    "last_batch_loss": "the returned loss is that of the last batch only: return the "
    "mean loss per example over the whole epoch",
    "summed_per_example": "the returned loss is the total over the examples: divide by "
    "the number of examples",
}


def _train_run(kind: str, case: dict, student: Callable | None = None) -> dict:
    """Run a variant (or the student's function) on a fresh copy of the case's model."""
    model = _make_model(case["seed"], *case["model"])
    model.eval()  # as evaluate() leaves it
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=case["lr"], weight_decay=case["weight_decay"]
    )
    scheduler = None
    if case["schedule"] is not None:
        warmup, total = case["schedule"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup(warmup, total))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case["seed"] + 1)  # the dropout masks
        if student is None:
            loader = case["loader"].plain()
            with (
                warnings.catch_warnings()
            ):  # "scheduler.step() before optimizer.step()"
                warnings.simplefilter("ignore")
                result = _train_variant(kind)(
                    model, loader, optimizer, scheduler, "cpu"
                )
        else:
            with forbid_calls(*_LOOP_REFERENCES, reason="write the loop yourself."):
                result = call_student(
                    student,
                    model,
                    case["loader"],
                    optimizer,
                    scheduler,
                    device="cpu",
                    what=case["what"],
                )
    return {
        "result": result,
        "parameters": _parameters(model),
        "calls": model.calls,
        "scheduler_steps": None if scheduler is None else scheduler.last_epoch,
        "optimizer_steps": _optimizer_steps(optimizer),
        "model": model,
    }


def _optimizer_steps(optimizer) -> int:
    steps = [state.get("step") for state in optimizer.state.values()]
    steps = [int(s) for s in steps if s is not None]
    return max(steps) if steps else 0


def _run_train_case(fn, case: dict) -> None:
    what = case["what"]
    expected = _train_run("reference", case)
    try:
        got = _train_run("student", case, student=fn)
    finally:
        _verify_model_class()
    loss = _as_float(got["result"], what, "the loss")
    batches = len(case["loader"])
    calls = got["calls"]
    if len(calls) != batches:
        raise CheckFailure(
            f"{what}: the model was called {len(calls)} times for "
            f"{batches} batches; call it once per batch."
        )
    if any(not c["training"] for c in calls):
        raise CheckFailure(f"{what}: {_TRAIN_MISTAKES['eval_mode']}.")
    if any(not c["mask"] for c in calls):
        raise CheckFailure(
            f"{what}: the model was called without the attention_mask, "
            "so it reads the padding as words: pass the whole batch, "
            "model(**batch)."
        )
    if any(not c["labels"] for c in calls):
        raise CheckFailure(
            f"{what}: the model was called without labels, so it returns "
            "no loss: pass the whole batch, model(**batch)."
        )
    if case["schedule"] is not None and got["scheduler_steps"] != batches:
        steps = got["scheduler_steps"]
        if steps == 0:
            raise CheckFailure(f"{what}: {_TRAIN_MISTAKES['scheduler_not_stepped']}.")
        if steps == 1:
            raise CheckFailure(f"{what}: {_TRAIN_MISTAKES['scheduler_per_epoch']}.")
        raise CheckFailure(
            f"{what}: the scheduler was stepped {steps} times for "
            f"{batches} batches; step it once after every optimizer step."
        )
    if (
        got["optimizer_steps"] == 0
        or _largest_difference(
            got["parameters"], _parameters(_make_model(case["seed"], *case["model"]))
        )
        == 0
    ):
        raise CheckFailure(
            f"{what}: the parameters did not change. Call loss.backward() "
            "and then optimizer.step() for every batch."
        )
    if got["optimizer_steps"] != batches:
        raise CheckFailure(
            f"{what}: the optimizer took {got['optimizer_steps']} steps for "
            f"{batches} batches; take one step per batch."
        )
    parameters_ok = (
        _largest_difference(got["parameters"], expected["parameters"]) < 1e-9
    )
    loss_ok = _close(loss, expected["result"])
    if parameters_ok and loss_ok:
        return
    found = []
    for kind in _TRAIN_MISTAKES:
        variant = _train_run(kind, case)
        if _largest_difference(
            got["parameters"], variant["parameters"]
        ) < 1e-9 and _close(loss, float(variant["result"])):
            found.append(kind)
    if len(found) == 1:
        raise CheckFailure(f"{what}: {_TRAIN_MISTAKES[found[0]]}.")
    if not parameters_ok:
        raise CheckFailure(
            f"{what}: after the epoch the parameters differ from those of one "
            "reference pass by up to "
            f"{_largest_difference(got['parameters'], expected['parameters']):.3g}. "
            "For every batch, in order: zero the gradients, call the model on the "
            "whole batch, loss.backward(), optimizer.step(), then scheduler.step() if "
            "there is one; put the model in training mode first."
        )
    raise CheckFailure(
        f"{what} returned the loss {loss:.8g}; expected the mean training loss per "
        f"example, {float(expected['result']):.8g} (each batch's mean loss times its "
        "size, summed, divided by the number of examples)."
    )


def _train_case(
    g: torch.Generator,
    what: str,
    sizes: list[int],
    schedule: bool,
    lr: float,
    weight_decay: float,
    dropout: float,
    vocab: int = 40,
    width: int = 8,
    num_labels: int = 2,
) -> dict:
    seed = _randint(g, 0, 2**31 - 1)
    loader = _Loader(_make_batches(g, sizes, vocab, 7, num_labels), sizes[0])
    total = len(sizes)
    return {
        "what": what,
        "seed": seed,
        "model": (vocab, width, num_labels, dropout),
        "loader": loader,
        "lr": lr,
        "weight_decay": weight_decay,
        "schedule": (max(1, total // 3), total + 2) if schedule else None,
    }


@check(also=_verify_model_class)
def check_train_epoch(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(model, loader, optimizer, scheduler=None, device="cpu") -> float``.

    The model is a tiny classifier with the calling convention of a Hugging Face model;
    after one call its parameters must equal those of a copy trained by the reference
    (same dropout masks), the scheduler must have taken one step per batch, and the
    returned value must be the mean training loss per example."""
    g = _generator(hidden)
    cases = []
    if not hidden:
        cases.append(
            _train_case(
                g,
                "train_epoch on 3 batches (8, 8, 5 examples), AdamW, no scheduler",
                [8, 8, 5],
                False,
                0.05,
                0.0,
                0.2,
            )
        )
        cases.append(
            _train_case(
                g,
                "train_epoch on 4 batches (6, 6, 6, 2 examples), "
                "AdamW with weight decay and a warm-up scheduler",
                [6, 6, 6, 2],
                True,
                0.05,
                0.01,
                0.2,
            )
        )
    else:
        for index in range(3):
            size = _randint(g, 3, 10)
            count = _randint(g, 2, 6)
            last = _randint(g, 1, size - 1)
            sizes = [size] * count + [last]
            labels = _randint(g, 2, 4)
            cases.append(
                _train_case(
                    g,
                    f"train_epoch on {count + 1} random batches ({size} examples each, "
                    f"the last {last}), {labels} classes"
                    + (", a warm-up scheduler" if index != 1 else ", no scheduler"),
                    sizes,
                    index != 1,
                    _uniform(g, 0.01, 0.1),
                    _uniform(g, 0.0, 0.05),
                    _uniform(g, 0.2, 0.5),
                    vocab=_randint(g, 20, 60),
                    width=_randint(g, 4, 12),
                    num_labels=labels,
                )
            )
    for case in cases:
        _run_train_case(fn, case)
        verify(also=_verify_model_class)
    return f"train_epoch matches one reference pass on {len(cases)} cases."


# ------------------------------------------------------------------------ evaluate


def _run_evaluate_case(fn, case: dict) -> None:
    what = case["what"]
    model = _make_model(case["seed"], *case["model"])
    model.train()  # as train_epoch leaves it: dropout on
    before = _parameters(model)
    reference_model = _deepcopy(model)
    expected = _reference_evaluate(reference_model, case["loader"].plain(), "cpu")
    try:
        with torch.random.fork_rng(devices=[]):
            with forbid_calls(*_LOOP_REFERENCES, reason="write the loop yourself."):
                result = call_student(fn, model, case["loader"], "cpu", what=what)
    finally:
        _verify_model_class()
    if result is None:
        raise CheckFailure(f"{what} returned None: did you forget a `return`?")
    if not isinstance(result, dict):
        raise CheckFailure(
            f"{what} returned {describe(result)}; expected a dict "
            "{'loss': ..., 'accuracy': ...}."
        )
    missing = [key for key in ("loss", "accuracy") if key not in result]
    if missing:
        raise CheckFailure(
            f"{what} returned a dict with keys {sorted(result)}; it needs "
            f"{missing} too (exactly 'loss' and 'accuracy')."
        )
    loss = _as_float(result["loss"], what, "'loss'")
    accuracy = _as_float(result["accuracy"], what, "'accuracy'")
    calls = model.calls
    batches = len(case["loader"])
    if len(calls) != batches:
        raise CheckFailure(
            f"{what}: the model was called {len(calls)} times for "
            f"{batches} batches; call it once per batch."
        )
    if any(c["training"] for c in calls):
        raise CheckFailure(
            f"{what}: the model was in training mode, so dropout changed the results: "
            "call model.eval() before the loop (evaluation must be deterministic)."
        )
    if any(c["grad"] for c in calls):
        raise CheckFailure(
            f"{what}: gradients were being recorded: run the loop inside "
            "`with torch.no_grad():` (evaluation needs no graph, which costs memory "
            "and time)."
        )
    if any(not c["mask"] for c in calls):
        raise CheckFailure(
            f"{what}: the model was called without the attention_mask, "
            "so it reads the padding as words: model(**batch)."
        )
    if _largest_difference(_parameters(model), before) != 0:
        raise CheckFailure(
            f"{what} changed the model's parameters: evaluation must only read them."
        )
    if any(p.grad is not None for p in model.parameters()):
        raise CheckFailure(
            f"{what} left gradients in the parameters' .grad: evaluation "
            "needs no backward pass."
        )
    if not _close(accuracy, expected["accuracy"]):
        if _close(accuracy, 100 * expected["accuracy"]):
            raise CheckFailure(
                f"{what}: the accuracy {accuracy:.4g} looks like a "
                "percentage; give it as a fraction in [0, 1]."
            )
        raise CheckFailure(
            f"{what}: the accuracy is {accuracy:.6g}, expected "
            f"{expected['accuracy']:.6g} (the fraction of examples whose largest logit "
            "is at their label: logits.argmax(dim=-1) == labels, counted over all "
            "examples)."
        )
    if not _close(loss, expected["loss"]):
        plain = [
            _TinyClassifier.forward(reference_model, **b).loss.item()
            for b in case["loader"].plain()
        ]
        sizes = [int(b["labels"].shape[0]) for b in case["loader"].plain()]
        if _close(loss, sum(plain) / len(plain)):
            raise CheckFailure(
                f"{what}: the loss is the mean of the batch losses: weight each "
                "batch's mean loss by its number of examples and divide by the number "
                "of examples (the last batch is shorter)."
            )
        if _close(loss, sum(p * s for p, s in zip(plain, sizes))):
            raise CheckFailure(
                f"{what}: the loss is the total over the examples: divide "
                "by the number of examples."
            )
        raise CheckFailure(
            f"{what}: the loss is {loss:.8g}, expected the mean loss per "
            f"example {expected['loss']:.8g}."
        )


@check(also=_verify_model_class)
def check_evaluate(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(model, loader, device) -> {"loss": float, "accuracy": float}``.

    The model is a tiny classifier with dropout, handed over in training mode; the loss
    must be the mean per example and the accuracy a fraction in [0, 1], both as the
    reference computes them in eval mode without gradients."""
    g = _generator(hidden)
    cases = []
    if not hidden:
        for sizes, labels in (([8, 8, 3], 2), ([5, 5, 5, 1], 3)):
            case = _train_case(
                g,
                f"evaluate on {len(sizes)} batches ({', '.join(map(str, sizes))} "
                f"examples), {labels} classes",
                sizes,
                False,
                0.0,
                0.0,
                0.3,
                num_labels=labels,
            )
            cases.append(case)
    else:
        for _ in range(3):
            size = _randint(g, 3, 12)
            count = _randint(g, 2, 6)
            last = _randint(g, 1, size - 1)
            labels = _randint(g, 2, 5)
            cases.append(
                _train_case(
                    g,
                    f"evaluate on {count + 1} random batches ({size} examples each, "
                    f"the last {last}), {labels} classes",
                    [size] * count + [last],
                    False,
                    0.0,
                    0.0,
                    _uniform(g, 0.2, 0.5),
                    vocab=_randint(g, 20, 60),
                    width=_randint(g, 4, 12),
                    num_labels=labels,
                )
            )
    for case in cases:
        _run_evaluate_case(fn, case)
        verify(also=_verify_model_class)
    return f"evaluate matches the reference on {len(cases)} cases."


# ------------------------------------------------------------------ early stopping


def _stopping_variant(kind: str):
    """An EarlyStopping class whose ``step`` makes a classic mistake."""

    class Variant(_ReferenceEarlyStopping):
        def step(self, score, model):
            mode = "max" if kind == "ignores_mode" else self.mode
            delta = 0.0 if kind == "ignores_min_delta" else self.min_delta
            if kind == "min_delta_wrong_sign":
                delta = -delta
            if self.best_score is None:
                improved = True
            elif mode == "max":
                improved = (
                    score >= self.best_score + delta
                    if kind == "tie_improves"
                    else score > self.best_score + delta
                )
            else:
                improved = (
                    score <= self.best_score - delta
                    if kind == "tie_improves"
                    else score < self.best_score - delta
                )
            if kind == "save_every_call":
                self.best_state = _deepcopy(model.state_dict())
            if improved:
                self.best_score = score
                if kind == "state_reference":
                    self.best_state = model.state_dict()
                elif kind != "save_every_call":
                    self.best_state = _deepcopy(model.state_dict())
                if kind != "no_reset":
                    self.num_bad_epochs = 0
            else:
                self.num_bad_epochs += 1
            if kind == "late":
                return self.num_bad_epochs > self.patience
            if kind == "early":
                return self.num_bad_epochs >= self.patience - 1
            return self.num_bad_epochs >= self.patience

    return Variant


_STOPPING_MISTAKES = {
    "state_reference": "restore() brought back the CURRENT weights, not the best ones: "
    "model.state_dict() returns tensors that share memory with the parameters, so a "
    "stored state_dict changes as training goes on. Store a copy: "
    "copy.deepcopy(model.state_dict())",
    "save_every_call": "restore() brought back the weights of the last call, not of "
    "the best score: store the weights only when the score improves",
    "late": "patience is off by one (stopping one evaluation late): with patience p, "
    "step() returns True at the p-th evaluation in a row without improvement "
    "(num_bad_epochs >= patience)",
    "early": "patience is off by one (stopping one evaluation early): with patience p, "
    "step() returns True at the p-th evaluation in a row without improvement, not the "
    "(p - 1)-th",
    "no_reset": "the count of bad evaluations is not reset to 0 when the score "
    "improves: patience counts evaluations IN A ROW without improvement",
    "ignores_mode": "mode='min' is ignored: for a loss, lower is better, so a score "
    "improves when it is below best_score - min_delta",
    "ignores_min_delta": "min_delta is ignored: a score improves only when it beats "
    "the best by MORE than min_delta",
    "min_delta_wrong_sign": "min_delta is applied in the wrong direction: a score "
    "improves only when it beats the best by more than min_delta (score > best + "
    "min_delta for mode='max', score < best - min_delta for mode='min')",
    "tie_improves": "a score equal to the best counts as an improvement: it must beat "
    "the best (strictly, by more than min_delta)",
}


def _score_sequence(
    g: torch.Generator,
    mode: str,
    patience: int,
    min_delta: float,
    fixed: list[float] | None = None,
) -> list[float]:
    """Scores that improve, tie, improve by less than min_delta and get worse, with runs
    of non-improvement shorter than ``patience`` except the last, which stops."""
    if fixed is not None:
        return fixed
    sign = 1.0 if mode == "max" else -1.0
    best = _uniform(g, 0.4, 0.6) if mode == "max" else _uniform(g, 0.5, 1.5)
    scores = [best]
    not_better = ["worse", "tie"] + (["tiny"] if min_delta > 0 else [])
    order = torch.randperm(len(not_better), generator=g).tolist()
    events: list[str] = []
    pending = [not_better[i] for i in order]
    # runs of at most patience - 1 non-improvements, each followed by an improvement
    while pending:
        run = pending[: max(patience - 1, 0)]
        pending = pending[len(run) :]
        if patience == 1:
            pending = []
        events += run + ["better"]
    events += ["better"] + [
        not_better[_randint(g, 0, len(not_better) - 1)] for _ in range(patience)
    ]
    for event in events:
        if event == "better":
            best = best + sign * (2 * min_delta + _uniform(g, 0.01, 0.05))
            scores.append(best)
        elif event == "tie":
            scores.append(best)
        elif event == "tiny":
            scores.append(best + sign * 0.5 * min_delta)
        else:
            scores.append(best - sign * _uniform(g, 0.01, 0.08))
    return scores


def _stopping_trace(make: Callable, case: dict, student: bool = False) -> dict:
    """Run an EarlyStopping class through the case's scores, changing the model's
    weights in place between calls as an optimizer does; stop at the first True."""
    model = _make_model(case["seed"], 30, 6, 2, 0.0)
    noise = torch.Generator().manual_seed(case["seed"])
    what = case["what"]
    if student:
        stopper = call_student(
            make,
            patience=case["patience"],
            min_delta=case["min_delta"],
            mode=case["mode"],
            what=f"EarlyStopping(patience={case['patience']}, "
            f"min_delta={case['min_delta']:.3g}, mode={case['mode']!r})",
        )
    else:
        stopper = make(
            patience=case["patience"], min_delta=case["min_delta"], mode=case["mode"]
        )
    returns, bests, bads, snapshots = [], [], [], []
    for score in case["scores"]:
        snapshots.append(_parameters(model))
        if student:
            with forbid_calls(*_STOPPING_REFERENCES, reason="write step() yourself."):
                result = call_student(
                    stopper.step, score, model, what=f"{what}: step({score:.4g}, model)"
                )
        else:
            result = stopper.step(score, model)
        returns.append(result)
        bests.append(getattr(stopper, "best_score", "missing"))
        bads.append(getattr(stopper, "num_bad_epochs", "missing"))
        with torch.no_grad():  # the next "epoch" of training changes the weights
            for parameter in model.parameters():
                parameter.add_(
                    torch.randn(parameter.shape, generator=noise, dtype=parameter.dtype)
                )
        if result is True:
            break
    current = _parameters(model)
    if student:
        call_student(stopper.restore, model, what=f"{what}: restore(model)")
    else:
        stopper.restore(model)
    return {
        "returns": returns,
        "bests": bests,
        "bads": bads,
        "snapshots": snapshots,
        "current": current,
        "restored": _parameters(model),
    }


def _run_stopping_case(cls, case: dict) -> None:
    what = case["what"]
    expected = _stopping_trace(_ReferenceEarlyStopping, case)
    got = _stopping_trace(cls, case, student=True)
    for index, result in enumerate(got["returns"]):
        if not isinstance(result, bool):
            raise CheckFailure(
                f"{what}: step() returned {describe(result)}; expected "
                "True (stop) or False (go on)."
            )
    matches = {
        kind: _stopping_trace(_stopping_variant(kind), case)
        for kind in _STOPPING_MISTAKES
    }

    def same(a: dict, b: dict) -> bool:
        return (
            a["returns"] == b["returns"]
            and a["bests"] == b["bests"]
            and a["bads"] == b["bads"]
            and _largest_difference(a["restored"], b["restored"]) == 0
        )

    if same(got, expected):
        return
    found = [
        kind
        for kind, trace in matches.items()
        if same(got, trace) and not same(trace, expected)
    ]
    if len(found) == 1:
        raise CheckFailure(f"{what}: {_STOPPING_MISTAKES[found[0]]}.")
    if set(found) == {"ignores_min_delta", "min_delta_wrong_sign"}:
        raise CheckFailure(
            f"{what}: min_delta is ignored or applied in the wrong "
            "direction: a score improves only when it beats the best by "
            "more than min_delta (score > best + min_delta for mode='max', "
            "score < best - min_delta for mode='min')."
        )
    scores = case["scores"]
    for index, (result, wanted) in enumerate(zip(got["returns"], expected["returns"])):
        if result != wanted:
            raise CheckFailure(
                f"{what}: call {index + 1}, step({scores[index]:.4g}) returned "
                f"{result}, expected {wanted} (scores so far: "
                f"{', '.join(f'{s:.4g}' for s in scores[: index + 1])}; best before "
                f"this call {_show(expected['bests'][index - 1] if index else None)}, "
                f"bad evaluations in a row after it {expected['bads'][index]})."
            )
    if len(got["returns"]) != len(expected["returns"]):
        raise CheckFailure(
            f"{what}: step() never returned True; with scores "
            f"{', '.join(f'{s:.4g}' for s in scores)} it should return True at call "
            f"{len(expected['returns'])}."
        )
    for index, (best, wanted) in enumerate(zip(got["bests"], expected["bests"])):
        if best == "missing" or not _close(float(best), float(wanted)):
            raise CheckFailure(
                f"{what}: after call {index + 1} best_score is "
                f"{_show(best)}, expected {_show(wanted)} (the best "
                "score so far)."
            )
    for index, (bad, wanted) in enumerate(zip(got["bads"], expected["bads"])):
        if bad != wanted:
            raise CheckFailure(
                f"{what}: after call {index + 1} num_bad_epochs is "
                f"{_show(bad)}, expected {wanted} (evaluations in a row "
                "without improvement)."
            )
    if _largest_difference(got["restored"], got["current"]) == 0:
        raise CheckFailure(f"{what}: {_STOPPING_MISTAKES['state_reference']}.")
    raise CheckFailure(
        f"{what}: restore() did not bring back the weights the model had "
        "when it reached its best score."
    )


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@check(also=_verify_model_class)
def check_early_stopping(cls: Any, hidden: bool = False) -> str:
    """Check the class ``EarlyStopping(patience, min_delta, mode)``: its ``step(score,
    model)`` returns, ``best_score`` and ``num_bad_epochs`` after each call, and the
    weights that ``restore(model)`` brings back, against the reference on sequences of
    scores while the model's weights change in place between calls."""
    g = _generator(hidden)
    cases = []
    if not hidden:
        cases.append(
            {
                "mode": "max",
                "patience": 2,
                "min_delta": 0.0,
                "scores": [0.70, 0.80, 0.78, 0.85, 0.85, 0.83],
            }
        )
        cases.append(
            {
                "mode": "min",
                "patience": 1,
                "min_delta": 0.01,
                "scores": [0.90, 0.60, 0.45, 0.445],
            }
        )
        cases.append(
            {
                "mode": "min",
                "patience": 3,
                "min_delta": 0.0,
                "scores": [0.90, 0.95, 0.60, 0.61, 0.60, 0.50, 0.52, 0.55, 0.51],
            }
        )
    else:
        # A tie is only observable with min_delta = 0, min_delta only with > 0: the
        # first two cases always have one of each.
        for index, (mode, patience) in enumerate(
            (
                ("max", _randint(g, 2, 3)),
                ("min", _randint(g, 2, 3)),
                (("max", "min")[_randint(g, 0, 1)], 1),
            )
        ):
            min_delta = _uniform(g, 0.005, 0.02)
            if index == 0 or (index == 2 and _randint(g, 0, 1) == 0):
                min_delta = 0.0
            cases.append(
                {
                    "mode": mode,
                    "patience": patience,
                    "min_delta": min_delta,
                    "scores": _score_sequence(g, mode, patience, min_delta),
                }
            )
    for case in cases:
        case["seed"] = _randint(g, 0, 2**31 - 1)
        case["what"] = (
            f"EarlyStopping(patience={case['patience']}, "
            f"min_delta={case['min_delta']:.3g}, mode={case['mode']!r})"
        )
        _run_stopping_case(cls, case)
        verify(also=_verify_model_class)
    return f"EarlyStopping matches the reference on {len(cases)} sequences of scores."


integrity.protect_module("seqbook.train.fine_tuning")
integrity.protect_module(__name__)
