"""Fine-tuning a pretrained Transformer for sequence classification (Part 5).

The reference code of the section "Fine-tuning a pretrained Transformer", written for
Hugging Face models (``BertForSequenceClassification`` and friends) but needing nothing
from them beyond their calling convention: a model takes a batch as keyword arguments
``input_ids``, ``attention_mask`` and ``labels`` and returns an object with ``.loss``
(the mean cross-entropy over the batch) and ``.logits`` (``(B, num_labels)``).

* :class:`TextClassificationDataset` -- texts tokenised once, one example a dict;
* :class:`PadCollator` -- pads a list of examples into a batch dict of tensors (dynamic
  padding: each batch only as long as its longest sentence);
* :func:`make_loader` -- both together in a ``DataLoader``;
* :func:`train_epoch` and :func:`evaluate` -- one pass of training, one of evaluation
  (the section's exercises; the single source of their solutions);
* :class:`EarlyStopping` -- stop when the validation score stops improving and keep a
  copy of the best weights (the third exercise);
* :func:`linear_warmup_lambda` -- the linear warm-up and decay schedule as a function of
  the step, for ``torch.optim.lr_scheduler.LambdaLR``;
* :func:`fit` -- the whole loop (epochs, validation, early stopping, history), or
  training alone when there is no validation loader;
* :func:`predict` -- labels and probabilities for new texts;
* :func:`count_parameters` -- all parameters, or only the trainable ones.

Section 3 (parameter-efficient fine-tuning) trains its models with :func:`make_loader`,
:func:`linear_warmup_lambda` and :func:`fit` (without a validation loader), and tests
and sizes them with :func:`predict` and :func:`count_parameters`.
"""

from __future__ import annotations

import copy
import itertools
import time
from typing import Any, Callable, Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from seqbook import runtime

__all__ = [
    "TextClassificationDataset",
    "PadCollator",
    "make_loader",
    "move_to",
    "train_epoch",
    "evaluate",
    "EarlyStopping",
    "linear_warmup_lambda",
    "fit",
    "predict",
    "count_parameters",
]


class TextClassificationDataset(Dataset):
    """Texts and their integer labels, tokenised once when the data set is built.

    Item ``i`` is ``{"input_ids": [...], "label": int}``; the ids include the
    tokenizer's special tokens (``[CLS] ... [SEP]`` for BERT) and are cut to
    ``max_length``. Padding is left to :class:`PadCollator`."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        tokenizer,
        max_length: int = 64,
    ):
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
        self.input_ids = [list(ids) for ids in encoded["input_ids"]]
        self.labels = [int(label) for label in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_ids": self.input_ids[index], "label": self.labels[index]}


class PadCollator:
    """Turn a list of dataset items into a batch: ``input_ids`` (B, T) padded with
    ``pad_id``, ``attention_mask`` (B, T) with 1 on real tokens and 0 on padding, and
    ``labels`` (B,). T is the length of the longest item in the batch."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), length), dtype=torch.long)
        for row, item in enumerate(items):
            ids = item["input_ids"]
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        labels = torch.tensor([item["label"] for item in items], dtype=torch.long)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }


def make_loader(
    texts: Sequence[str],
    labels: Sequence[int],
    tokenizer,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    max_length: int = 64,
) -> DataLoader:
    """A ``DataLoader`` of padded batches; shuffling is seeded (same order every
    run)."""
    dataset = TextClassificationDataset(texts, labels, tokenizer, max_length)
    generator = runtime.generator(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=PadCollator(tokenizer.pad_token_id),
    )


def move_to(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    """The batch with every tensor on ``device``."""
    return {name: tensor.to(device) for name, tensor in batch.items()}


def train_epoch(model, loader, optimizer, scheduler=None, device="cpu"):
    """One pass over ``loader``: for each batch, zero the gradients, compute the loss,
    backpropagate, step the optimizer and then the scheduler (once per batch).

    Returns the mean training loss per example (each batch's mean loss weighted by its
    size, so a short last batch counts for what it holds)."""
    model.train()  # dropout on
    total_loss, total_examples = 0.0, 0
    for batch in loader:
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        optimizer.zero_grad()
        output = model(**batch)  # .loss: mean cross-entropy over the batch
        output.loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()  # the learning rate changes every batch
        size = batch["labels"].shape[0]
        total_loss += output.loss.item() * size
        total_examples += size
    return total_loss / total_examples


def evaluate(model, loader, device):
    """Mean loss per example and accuracy (a fraction in [0, 1]) over ``loader``,
    with dropout off and without computing gradients. Leaves the model in eval mode."""
    model.eval()  # dropout off: the same input always gives the same output
    total_loss, correct, total_examples = 0.0, 0, 0
    with torch.no_grad():
        for batch in loader:
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            output = model(**batch)
            size = batch["labels"].shape[0]
            total_loss += output.loss.item() * size
            predictions = output.logits.argmax(dim=-1)  # (B,)
            correct += (predictions == batch["labels"]).sum().item()
            total_examples += size
    return {"loss": total_loss / total_examples, "accuracy": correct / total_examples}


class EarlyStopping:
    """Stop training when the validation score has not improved for ``patience`` calls.

    ``mode="max"`` for a score where higher is better (accuracy), ``"min"`` for one
    where lower is better (a loss). A score improves when it beats the best so far by
    more than ``min_delta``; the first score always improves. On an improvement,
    :meth:`step` stores a copy of the model's weights (a deep copy: ``state_dict()``
    returns tensors that share memory with the parameters) and resets the count of bad
    epochs; otherwise it adds one. It returns True when that count reaches ``patience``.
    :meth:`restore` loads the best weights back into a model."""

    def __init__(self, patience: int = 2, min_delta: float = 0.0, mode: str = "max"):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best_score = None
        self.best_state = None
        self.num_bad_epochs = 0

    def step(self, score, model):
        if self.best_score is None:
            improved = True
        elif self.mode == "max":
            improved = score > self.best_score + self.min_delta
        else:
            improved = score < self.best_score - self.min_delta
        if improved:
            self.best_score = score
            self.best_state = copy.deepcopy(model.state_dict())
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        return self.num_bad_epochs >= self.patience

    def restore(self, model):
        """Load the best weights seen by :meth:`step` into ``model``."""
        if self.best_state is None:
            raise RuntimeError("step() was never called: there is nothing to restore")
        model.load_state_dict(self.best_state)


def linear_warmup_lambda(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The factor that multiplies the base learning rate after ``step`` optimizer steps:
    it rises linearly from 0 to 1 over ``warmup_steps`` steps, then falls linearly to 0
    at ``total_steps`` (the schedule of
    ``transformers.get_linear_schedule_with_warmup``, for
    ``torch.optim.lr_scheduler.LambdaLR``)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def fit(
    model,
    train_loader,
    validation_loader,
    optimizer,
    scheduler=None,
    device="cpu",
    max_epochs: int = 1,
    eval_every: int | None = None,
    early_stopping: EarlyStopping | None = None,
    monitor: str = "loss",
    progress: Callable[..., Iterable] | None = None,
    verbose: bool = True,
) -> list[dict[str, float]]:
    """Train for up to ``max_epochs`` epochs and evaluate on the validation loader every
    ``eval_every`` optimizer steps (and at the end of each epoch; ``None``: once per
    epoch). With ``early_stopping``, which watches the validation ``monitor`` ("loss"
    or "accuracy"), stop when it says so and restore the best weights at the end.

    Each stretch between two evaluations is one call of :func:`train_epoch` on those
    batches. ``progress`` wraps the training loader each epoch (e.g.
    ``functools.partial(tqdm.auto.tqdm, leave=False)``). Returns one dict per
    evaluation: epoch, step, examples seen, train_loss (over the stretch), validation
    loss and accuracy, seconds since the start.

    With ``validation_loader=None`` nothing is evaluated (and early stopping is not
    allowed): the stretches only record their training loss, so ``eval_every=1`` gives
    the loss of every batch, and the entries have no validation keys."""
    if validation_loader is None and early_stopping is not None:
        raise ValueError("early stopping needs a validation_loader to watch")
    history: list[dict[str, float]] = []
    start, step, seen = time.perf_counter(), 0, 0
    for epoch in range(1, max_epochs + 1):
        batches = (
            train_loader
            if progress is None
            else progress(train_loader, desc=f"epoch {epoch}")
        )
        iterator = iter(batches)
        stop = False
        while not stop:
            stretch = list(itertools.islice(iterator, eval_every or len(train_loader)))
            if not stretch:
                break
            train_loss = train_epoch(model, stretch, optimizer, scheduler, device)
            step += len(stretch)
            seen += sum(batch["labels"].shape[0] for batch in stretch)
            entry = {
                "epoch": epoch,
                "step": step,
                "examples": seen,
                "train_loss": train_loss,
            }
            report = f"epoch {epoch}, step {step:3d}: train loss {train_loss:.4f}"
            if validation_loader is not None:
                validation = evaluate(model, validation_loader, device)
                entry["validation_loss"] = validation["loss"]
                entry["validation_accuracy"] = validation["accuracy"]
                report += (
                    f", validation loss {validation['loss']:.4f}, "
                    f"accuracy {validation['accuracy']:.1%}"
                )
            entry["seconds"] = time.perf_counter() - start
            history.append(entry)
            if verbose:
                print(report)
            stop = early_stopping is not None and early_stopping.step(
                validation[monitor], model
            )
        if hasattr(batches, "close"):
            batches.close()  # a progress bar that stopped early
        if stop:
            if verbose:
                count = early_stopping.patience
                print(
                    f"early stop after step {step}: no improvement of the validation "
                    f"{monitor} in {count} evaluation{'s' if count != 1 else ''}"
                )
            break
    if early_stopping is not None:
        early_stopping.restore(model)
    return history


def predict(
    model,
    tokenizer,
    texts: Sequence[str],
    device="cpu",
    batch_size: int = 64,
    max_length: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted labels (N,) and class probabilities (N, num_labels) for ``texts``,
    on the CPU, computed in eval mode without gradients."""
    model.eval()
    probabilities = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            logits = model(**move_to(dict(batch), device)).logits  # (B, num_labels)
            probabilities.append(torch.softmax(logits, dim=-1).cpu())
    probabilities = torch.cat(probabilities)  # (N, num_labels)
    return probabilities.argmax(dim=-1), probabilities


def count_parameters(model, trainable_only: bool = False) -> int:
    """The number of parameters of ``model``; with ``trainable_only``, only those with
    ``requires_grad``."""
    return sum(
        p.numel() for p in model.parameters() if p.requires_grad or not trainable_only
    )
