"""The models of "A Transformer from blocks" and the first-token repeat task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbook.data.repeat_task import (
    PAD,
    classification_accuracy,
    first_token_repeats_batch,
)
from seqbook.models import transformer_from_blocks as tm


def test_causal_lm_loss_is_the_shifted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 5, generator=g)
    tokens = torch.randint(0, 5, (3, 6), generator=g)
    expected = torch.stack(
        [
            F.cross_entropy(logits[b, t], tokens[b, t + 1])
            for b in range(3)
            for t in range(5)
        ]
    ).mean()
    assert torch.allclose(tm.causal_lm_loss(logits, tokens), expected, atol=1e-6)


def test_causal_lm_loss_ignores_padded_targets_only():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 4, generator=g)
    tokens = torch.tensor([[1, 2, 3, 0, 0], [2, 3, 1, 2, 3]])
    pairs = [(0, 0), (0, 1)] + [(1, t) for t in range(4)]  # (0, 2) predicts a pad
    expected = torch.stack(
        [F.cross_entropy(logits[b, t], tokens[b, t + 1]) for b, t in pairs]
    ).mean()
    assert torch.allclose(
        tm.causal_lm_loss(logits, tokens, pad_id=0), expected, atol=1e-6
    )


def test_masked_mean_pool():
    hidden = torch.arange(24.0).view(2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    pooled = tm.masked_mean_pool(hidden, mask)
    assert torch.equal(pooled[0], (hidden[0, 0] + hidden[0, 2]) / 2)
    assert torch.equal(pooled[1], torch.zeros(4))
    assert tm.masked_mean_pool(hidden.double(), mask).dtype == torch.float64


def test_language_model_is_causal_and_shaped():
    torch.manual_seed(0)
    model = tm.TransformerLanguageModel(
        11, dim=16, num_heads=2, num_layers=2, hidden_dim=32, max_len=20
    ).eval()
    x = torch.randint(0, 11, (2, 12))
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 11
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (2, 12, 11)
    assert torch.equal(a[:, :7], b[:, :7]) and (a[:, 7:] - b[:, 7:]).abs().amax() > 0
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 21, dtype=torch.long))


def test_lstm_language_model_continues_its_state():
    torch.manual_seed(0)
    model = tm.LSTMLanguageModel(9, 8, 16).eval()
    x = torch.randint(0, 9, (2, 10))
    with torch.no_grad():
        whole, _ = model(x)
        first, state = model(x[:, :6])
        rest, _ = model(x[:, 6:], state)
    assert whole.shape == (2, 10, 9)
    assert torch.allclose(whole, torch.cat([first, rest], 1), atol=1e-6)


def test_classifier_ignores_padding():
    torch.manual_seed(0)
    model = tm.TransformerClassifier(
        11, 2, dim=16, num_heads=2, num_layers=2, hidden_dim=32, max_len=10
    ).eval()
    tokens, mask, _ = first_token_repeats_batch(
        5, 11, 5, 10, torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        out = model(tokens, mask)
        junk = model(tokens.masked_fill(~mask, 3), mask)
    assert out.shape == (5, 2) and torch.allclose(out, junk, atol=1e-5)
    bag = tm.BagOfEmbeddings(11, 2, dim=8, hidden_dim=16).eval()
    with torch.no_grad():
        permuted = tokens.clone()
        permuted[:, :4] = tokens[:, [3, 2, 1, 0]]  # min_len 5: all four are real
        assert torch.allclose(bag(tokens, mask), bag(permuted, mask), atol=1e-6)


def test_parameter_groups_cover_every_parameter():
    model = tm.TransformerLanguageModel(
        51, dim=64, num_heads=4, num_layers=2, hidden_dim=256
    )
    groups = tm.parameter_groups(model)
    assert sum(groups.values()) == sum(p.numel() for p in model.parameters())
    assert groups["attention"] == 2 * (4 * 64 * 64 + 4 * 64)
    assert groups["feed-forward"] == 2 * (2 * 64 * 256 + 256 + 64)
    assert groups["embeddings"] == 51 * 64 and groups["output layer"] == 64 * 51 + 51
    assert groups["layer norm"] == 5 * 2 * 64
    classifier_groups = tm.parameter_groups(
        tm.TransformerClassifier(11, 2, dim=16, num_heads=2)
    )
    assert classifier_groups["output layer"] == 16 * 2 + 2


def test_repeat_task_construction():
    tokens, mask, labels = first_token_repeats_batch(
        3000, 11, 5, 10, torch.Generator().manual_seed(0)
    )
    assert tokens.shape == mask.shape == (3000, 10) and labels.shape == (3000,)
    lengths = mask.sum(1)
    assert lengths.min() == 5 and lengths.max() == 10
    assert bool((tokens[~mask] == PAD).all()) and bool((tokens[mask] != PAD).all())
    for row, length, label in zip(tokens.tolist(), lengths.tolist(), labels.tolist()):
        real = row[:length]
        assert len(set(real)) == length - 1  # exactly one token occurs twice
        assert (real[0] in real[1:]) == bool(label)
    assert 0.45 < labels.float().mean() < 0.55
    # Same token frequencies in both classes (the multiset ignores the label).
    freq = [
        torch.bincount(tokens[labels == k][mask[labels == k]], minlength=11)[1:]
        for k in (0, 1)
    ]
    freq = [f / f.sum() for f in freq]
    assert (freq[0] - freq[1]).abs().max() < 0.01


def test_repeat_task_is_reproducible_and_validates():
    a = first_token_repeats_batch(8, generator=torch.Generator().manual_seed(5))
    b = first_token_repeats_batch(8, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError):
        first_token_repeats_batch(4, vocab_size=5, min_len=4, max_len=10)
    with pytest.raises(ValueError):
        first_token_repeats_batch(4, min_len=2, max_len=5)


def test_classification_accuracy_restores_mode():
    model = tm.BagOfEmbeddings(11, 2).train()
    tokens, mask, labels = first_token_repeats_batch(
        50, 11, 5, 10, torch.Generator().manual_seed(0)
    )
    value = classification_accuracy(model, tokens, mask, labels)
    assert 0.0 <= value <= 1.0 and model.training
