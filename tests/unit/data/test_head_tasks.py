"""The previous-minus-first task and its small model (seqbook.data.head_tasks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbook.data.head_tasks import (
    IGNORE_INDEX,
    HeadTaskModel,
    previous_minus_first_batch,
)


def test_targets_are_previous_minus_first_mod_v():
    tokens, targets = previous_minus_first_batch(
        50, 9, 7, torch.Generator().manual_seed(0)
    )
    assert tokens.shape == targets.shape == (50, 9)
    assert tokens.dtype == targets.dtype == torch.int64
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 7
    assert (targets[:, 0] == IGNORE_INDEX).all()
    for b in range(50):
        for t in range(1, 9):
            assert targets[b, t] == (tokens[b, t - 1] - tokens[b, 0]) % 7
    assert (targets[:, 1] == 0).all()  # x_0 - x_0


def test_batches_are_reproducible_with_a_generator():
    a = previous_minus_first_batch(4, 6, 5, torch.Generator().manual_seed(3))
    b = previous_minus_first_batch(4, 6, 5, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("length, vocab", [(1, 5), (5, 1)])
def test_rejects_degenerate_sizes(length, vocab):
    with pytest.raises(ValueError):
        previous_minus_first_batch(2, length, vocab)


def test_model_shapes_and_causal_weights():
    torch.manual_seed(0)
    model = HeadTaskModel(vocab_size=10, max_len=12, embed_dim=16, num_heads=4)
    tokens, _ = previous_minus_first_batch(3, 8, 10)  # shorter than max_len
    logits, weights = model(tokens)
    assert logits.shape == (3, 8, 10)
    assert weights.shape == (3, 4, 8, 8)
    assert torch.all(weights.triu(1) == 0)  # no position looks at the future
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 8))


def test_two_heads_learn_the_task_and_attend_to_the_two_tokens():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(1)
    model = HeadTaskModel(10, 12, embed_dim=32, num_heads=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(1000):
        tokens, targets = previous_minus_first_batch(64, 12, 10, data)
        logits, _ = model(tokens)
        loss = F.cross_entropy(
            logits.reshape(-1, 10), targets.reshape(-1), ignore_index=IGNORE_INDEX
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokens, targets = previous_minus_first_batch(
        500, 12, 10, torch.Generator().manual_seed(9)
    )
    with torch.no_grad():
        logits, weights = model(tokens)
    accuracy = (logits.argmax(-1)[:, 1:] == targets[:, 1:]).float().mean()
    assert accuracy > 0.99
    mean = weights.mean(0)  # (H, T, T)
    q = torch.arange(2, 12)
    on_previous = [mean[h, q, q - 1].mean() for h in range(2)]
    on_first = [mean[h, q, 0].mean() for h in range(2)]
    # Every head looks (almost) only at the two tokens the task needs; how the two heads
    # divide them depends on the seed.
    assert min(p + f for p, f in zip(on_previous, on_first)) > 0.8
