"""The reference code of the section "Fine-tuning a pretrained Transformer": data set
and padding, the two loops, early stopping, the warm-up schedule, fit and predict. A
tiny BERT built from a config stands in for MiniLM, so these tests are fast; one test
runs the packaged MiniLM on a few sentences."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from seqbook.train import fine_tuning as ft

transformers = pytest.importorskip("transformers")


class WordTokenizer:
    """A minimal stand-in for a Hugging Face tokenizer: words -> ids, [CLS]/[SEP]."""

    pad_token_id = 0

    def __init__(self):
        self.vocab = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2}

    def __call__(
        self,
        texts,
        truncation=False,
        max_length=None,
        padding=False,
        return_tensors=None,
    ):
        rows = []
        for text in texts:
            ids = [1] + [
                self.vocab.setdefault(w, len(self.vocab)) for w in text.split()
            ]
            ids = ids[: max_length - 1] if truncation and max_length else ids
            rows.append(ids + [2])
        if not padding:
            return {"input_ids": rows}
        length = max(map(len, rows))
        ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def tiny_bert(num_labels=2, seed=0):
    config = transformers.BertConfig(
        vocab_size=60,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification(config)


TEXTS = [
    "good film",
    "bad film",
    "not a good film at all",
    "great",
    "dull plot",
    "i liked it",
    "i hated it",
    "fine",
    "really really bad",
]
LABELS = [1, 0, 0, 1, 0, 1, 0, 1, 0]


def test_dataset_and_collator_pad_dynamically():
    tokenizer = WordTokenizer()
    loader = ft.make_loader(TEXTS, LABELS, tokenizer, batch_size=4)
    batches = list(loader)
    assert [b["labels"].shape[0] for b in batches] == [4, 4, 1]
    first = batches[0]
    assert set(first) == {"input_ids", "attention_mask", "labels"}
    assert first["input_ids"].shape == first["attention_mask"].shape
    assert first["input_ids"].shape[1] == 8  # "not a good film at all" + [CLS], [SEP]
    assert torch.equal(first["attention_mask"].bool(), first["input_ids"] != 0)
    assert first["input_ids"][0, 0].item() == 1
    assert batches[2]["input_ids"].shape == (1, 5)
    with pytest.raises(ValueError):
        ft.TextClassificationDataset(TEXTS, LABELS[:-1], tokenizer)


def test_shuffled_loader_is_seeded():
    tokenizer = WordTokenizer()
    orders = [
        [
            b["labels"].tolist()
            for b in ft.make_loader(TEXTS, LABELS, tokenizer, 3, shuffle=True, seed=5)
        ]
        for _ in range(2)
    ]
    assert orders[0] == orders[1]


def test_train_epoch_and_evaluate_on_a_tiny_bert():
    tokenizer = WordTokenizer()
    loader = ft.make_loader(TEXTS, LABELS, tokenizer, batch_size=4)
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, ft.linear_warmup_lambda(1, 9)
    )
    before = [p.detach().clone() for p in model.parameters()]
    loss = ft.train_epoch(model, loader, optimizer, scheduler)
    assert isinstance(loss, float) and loss > 0
    assert scheduler.last_epoch == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model.training
    frozen = [p.detach().clone() for p in model.parameters()]
    result = ft.evaluate(model, loader, "cpu")
    assert set(result) == {"loss", "accuracy"} and 0 <= result["accuracy"] <= 1
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.parameters()))
    # the mean loss per example, recomputed by hand
    with torch.no_grad():
        batch = next(iter(ft.make_loader(TEXTS, LABELS, tokenizer, batch_size=9)))
        out = model(**batch)
    assert result["loss"] == pytest.approx(out.loss.item(), rel=1e-5)
    accuracy = (out.logits.argmax(-1) == batch["labels"]).float().mean().item()
    assert result["accuracy"] == pytest.approx(accuracy)


def test_training_learns_the_toy_task():
    tokenizer = WordTokenizer()
    loader = ft.make_loader(TEXTS, LABELS, tokenizer, batch_size=3, shuffle=True)
    model = tiny_bert(seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    losses = [ft.train_epoch(model, loader, optimizer) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert ft.evaluate(model, loader, "cpu")["accuracy"] == 1.0


def test_linear_warmup_matches_transformers():
    params = [nn.Parameter(torch.zeros(1))]
    for warmup, total in ((0, 10), (3, 10), (10, 10), (4, 37)):
        ours = torch.optim.lr_scheduler.LambdaLR(
            torch.optim.SGD(params, lr=1.0), ft.linear_warmup_lambda(warmup, total)
        )
        theirs = transformers.get_linear_schedule_with_warmup(
            torch.optim.SGD(params, lr=1.0), warmup, total
        )
        for _ in range(total + 2):
            assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), abs=1e-12)
            ours.optimizer.step(), theirs.optimizer.step()
            ours.step(), theirs.step()


def test_early_stopping_contract():
    model = nn.Linear(2, 1)
    stopper = ft.EarlyStopping(patience=2, mode="max")
    with pytest.raises(RuntimeError):
        stopper.restore(model)
    results = []
    for score in (0.5, 0.6, 0.6, 0.7, 0.65, 0.69):
        results.append(stopper.step(score, model))
        if score == 0.7:
            best = copy.deepcopy(model.state_dict())
        with torch.no_grad():
            model.weight.add_(1.0)  # training changes the weights in place
    assert results == [False, False, False, False, False, True]
    assert stopper.best_score == 0.7 and stopper.num_bad_epochs == 2
    stopper.restore(model)
    assert torch.equal(model.weight, best["weight"])
    loss_stopper = ft.EarlyStopping(patience=1, min_delta=0.1, mode="min")
    assert [loss_stopper.step(s, model) for s in (1.0, 0.8)] == [False, False]
    assert loss_stopper.step(0.75, model) is True  # better by less than min_delta
    with pytest.raises(ValueError):
        ft.EarlyStopping(mode="lower")


def test_fit_evaluates_every_stretch_and_restores_the_best():
    tokenizer = WordTokenizer()
    train = ft.make_loader(TEXTS, LABELS, tokenizer, batch_size=2, shuffle=True)
    validation = ft.make_loader(TEXTS, LABELS, tokenizer, batch_size=4)
    model = tiny_bert(seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    stopper = ft.EarlyStopping(patience=100, mode="min")
    history = ft.fit(
        model,
        train,
        validation,
        optimizer,
        max_epochs=2,
        eval_every=2,
        early_stopping=stopper,
        verbose=False,
    )
    assert [h["step"] for h in history] == [2, 4, 5, 7, 9, 10]
    assert [h["epoch"] for h in history] == [1, 1, 1, 2, 2, 2]
    assert history[-1]["examples"] == 18
    best = min(h["validation_loss"] for h in history)
    assert ft.evaluate(model, validation, "cpu")["loss"] == pytest.approx(
        best, rel=1e-6
    )
    stopped = ft.fit(
        tiny_bert(seed=3),
        train,
        validation,
        torch.optim.AdamW(model.parameters(), lr=0.0),
        max_epochs=3,
        early_stopping=ft.EarlyStopping(patience=1, mode="min"),
        verbose=False,
    )
    assert len(stopped) == 2  # lr 0: nothing improves after the first evaluation


def test_fit_without_validation_records_the_loss_of_every_batch():
    tokenizer = WordTokenizer()

    def fresh_run():  # the same weights, dropout masks and batch order every time
        torch.manual_seed(0)
        model = tiny_bert(seed=2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, ft.linear_warmup_lambda(0, 10)
        )
        loader = ft.make_loader(TEXTS, LABELS, tokenizer, batch_size=2, shuffle=True)
        return model, optimizer, scheduler, loader

    model, optimizer, scheduler, loader = fresh_run()
    history = ft.fit(
        model,
        loader,
        None,
        optimizer,
        scheduler,
        max_epochs=2,
        eval_every=1,
        verbose=False,
    )
    assert [h["step"] for h in history] == list(range(1, 11))
    assert [h["epoch"] for h in history] == [1] * 5 + [2] * 5
    assert history[-1]["examples"] == 18
    assert set(history[0]) == {"epoch", "step", "examples", "train_loss", "seconds"}
    assert scheduler.last_epoch == 10
    # The same as calling train_epoch on one batch at a time.
    replay_model, replay_optimizer, replay_scheduler, replay_loader = fresh_run()
    replayed = [
        ft.train_epoch(replay_model, [batch], replay_optimizer, replay_scheduler)
        for _ in range(2)
        for batch in replay_loader
    ]
    assert [h["train_loss"] for h in history] == pytest.approx(replayed, rel=1e-6)
    for ours, theirs in zip(model.parameters(), replay_model.parameters()):
        torch.testing.assert_close(ours, theirs)
    with pytest.raises(ValueError, match="validation_loader"):
        ft.fit(
            model,
            loader,
            None,
            optimizer,
            early_stopping=ft.EarlyStopping(),
            verbose=False,
        )


def test_predict_and_count_parameters():
    tokenizer = WordTokenizer()
    model = tiny_bert()
    model.classifier.weight.requires_grad_(False)
    assert (
        ft.count_parameters(model) - ft.count_parameters(model, trainable_only=True)
        == model.classifier.weight.numel()
    )
    tokenizer(TEXTS)  # fill the vocabulary
    labels, probabilities = ft.predict(model, tokenizer, TEXTS, batch_size=4)
    assert labels.shape == (9,) and probabilities.shape == (9, 2)
    assert torch.allclose(probabilities.sum(-1), torch.ones(9), atol=1e-6)
    assert torch.equal(labels, probabilities.argmax(-1))


def test_minilm_pipeline_on_a_few_sentences():
    from seqbook.models import pretrained

    tokenizer = pretrained.load_tokenizer()
    model = pretrained.load_classifier(num_labels=2, seed=0)
    loader = ft.make_loader(
        ["the plot was not dull", "i loathed the ending", "fun"],
        [1, 0, 1],
        tokenizer,
        batch_size=2,
    )
    batch = next(iter(loader))
    assert batch["input_ids"][0, 0].item() == tokenizer.cls_token_id
    result = ft.evaluate(model, loader, "cpu")
    assert 0.4 < result["loss"] < 1.0  # a random head: about ln 2
    labels, probabilities = ft.predict(model, tokenizer, ["superb", "tedious"])
    assert probabilities.shape == (2, 2)
