"""seqbook.train.loop: language-model batches and the fixed-step training loop."""

import pytest
import torch

from seqbook.train.loop import TrainingLog, language_model_batch, train


def test_language_model_batch_shifts_by_one():
    ids = torch.arange(100)
    x, y = language_model_batch(ids, 4, 10, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10) and torch.equal(y, x + 1)
    with pytest.raises(ValueError):
        language_model_batch(ids, 1, 100)


def test_train_reduces_a_simple_loss_and_respects_budget():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    target = torch.tensor([[1.0], [2.0]])
    data = torch.randn(2, 3)
    log = train(
        model,
        lambda: (data, target),
        lambda m, x, y: ((m(x) - y) ** 2).mean(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        steps=200,
        clip_norm=1.0,
    )
    assert isinstance(log, TrainingLog) and log.steps == 200
    assert log.losses[-1] < 0.01 * log.losses[0]
    assert len(log.seconds) == 200  # the clock is watched, never obeyed


def test_the_scheduler_steps_after_each_optimiser_step_and_on_step_sees_each_step():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    seen = []

    def on_step(step, loss):
        seen.append((step, loss, optimizer.param_groups[0]["lr"]))
        model.eval()  # an evaluation along the way must not end training mode

    def loss_fn(model, x, y):
        assert model.training
        return ((model(x) - y) ** 2).mean()

    data = (torch.ones(4, 2), torch.zeros(4, 1))
    log = train(
        model, lambda: data, loss_fn, optimizer, 3, scheduler=scheduler, on_step=on_step
    )
    assert [s for s, _, _ in seen] == [1, 2, 3]
    assert [loss for _, loss, _ in seen] == log.losses
    assert [lr for _, _, lr in seen] == [0.5, 0.25, 0.125]  # already stepped
    assert not model.training  # left in evaluation mode
