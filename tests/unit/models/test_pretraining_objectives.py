"""Tests of seqbook.models.pretraining_objectives: the masking and shift references, the
data helpers, the tiny encoder in both modes, the losses, the pretraining loop and the
probe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqbook.models import pretraining_objectives as P
from seqbook.models.transformer_from_blocks import causal_lm_loss

SPECIAL = [0, 2, 3, 4]


def sentences_batch(batch=200, length=20, vocab_size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch, length), generator=g)
    lengths = torch.randint(4, length + 1, (batch,), generator=g)
    ids[torch.arange(length)[None, :] >= lengths[:, None]] = 0
    ids[:, 0] = 2
    ids[torch.arange(batch), lengths - 1] = 3
    return ids


# ---------------------------------------------------------------- mask_tokens


def test_mask_tokens_rules_and_proportions():
    ids = sentences_batch(2000, 24, 40)
    original = ids.clone()
    inputs, labels = P.mask_tokens(
        ids, 4, 40, SPECIAL, 0.15, torch.Generator().manual_seed(1)
    )
    assert torch.equal(ids, original)
    assert inputs.dtype == labels.dtype == torch.long
    special = torch.isin(ids, torch.tensor(SPECIAL))
    selected = labels != -100
    assert not (selected & special).any()
    assert torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[selected], ids[selected])
    assert not (~selected & (inputs != ids)).any()
    n = int(selected.sum())
    assert abs(n / int((~special).sum()) - 0.15) < 0.01
    assert abs(int((inputs[selected] == 4).sum()) / n - 0.8) < 0.03
    changed = selected & (inputs != 4) & (inputs != ids)
    assert abs(int(changed.sum()) / n - 0.1 * (1 - 1 / 36)) < 0.02
    assert not torch.isin(inputs[changed], torch.tensor(SPECIAL)).any()


def test_mask_tokens_is_reproducible_and_can_mask_unk():
    ids = sentences_batch()
    ids[:, 1] = 1  # <unk> is not special here
    a = P.mask_tokens(ids, 4, 40, SPECIAL, 0.5, torch.Generator().manual_seed(7))
    b = P.mask_tokens(ids, 4, 40, SPECIAL, 0.5, torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert (a[1][:, 1] == 1).any()


# ---------------------------------------------------------------- the shift


def test_causal_lm_inputs_and_labels():
    ids = torch.tensor([[2, 7, 8, 3, 0, 0], [2, 5, 6, 7, 8, 3]])
    original = ids.clone()
    inputs, labels = P.causal_lm_inputs_and_labels(ids, 0)
    assert torch.equal(ids, original)
    assert torch.equal(inputs, ids[:, :-1])
    assert labels.tolist() == [[7, 8, 3, -100, -100], [5, 6, 7, 8, 3]]


# ---------------------------------------------------------------- data


def test_sentences_vocabulary_and_encoding():
    text = "the cat sat on the mat. the dog sat. a very long one is cut here!"
    sentences = P.corpus_sentences(text, min_words=3, max_words=6)
    assert sentences == [["the", "dog", "sat", "."]]
    sentences = P.corpus_sentences(text, min_words=1, max_words=30)
    assert len(sentences) == 3 and all(s[-1] in ".!?" for s in sentences)
    vocab = P.pretraining_vocabulary(sentences, min_freq=2)
    assert vocab.itos[:5] == list(P.SPECIALS)
    assert "the" in vocab and "cat" not in vocab
    ids = P.encode_sentences(sentences, vocab, max_len=6)
    assert ids.shape == (3, 6)
    assert (ids[:, 0] == 2).all()
    assert ids[1].tolist()[:6] == [
        2,
        vocab.stoi["the"],
        1,
        vocab.stoi["sat"],
        vocab.stoi["."],
        3,
    ]
    assert ids[0, -1] == 3  # cut to max_len - 2 tokens, <sep> still last


# ---------------------------------------------------------------- the model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return P.TinyEncoder(
        40, dim=16, num_heads=2, num_layers=2, hidden_dim=32, max_len=20
    ).eval()


def test_encoder_shapes_padding_and_causality(model):
    ids = sentences_batch(4, 20, 40)
    assert model(ids).shape == (4, 20, 40)
    assert model.encode(ids).shape == (4, 20, 16)
    longer = ids.clone()
    longer[:, -1] = 7  # a later token changed
    with torch.no_grad():
        causal_a, causal_b = model.encode(ids, True), model.encode(longer, True)
        full_a, full_b = model.encode(ids), model.encode(longer)
    assert torch.allclose(causal_a[:, :-1], causal_b[:, :-1], atol=1e-6)
    assert not torch.allclose(full_a[:, 1], full_b[:, 1], atol=1e-6)
    # Extra padding does not change the real positions.
    padded = torch.cat([ids[:, :10], torch.zeros(4, 5, dtype=torch.long)], dim=1)
    short = ids[:, :10]
    with torch.no_grad():
        assert torch.allclose(
            model.encode(padded)[:, :10], model.encode(short), atol=1e-5
        )


def test_losses_match_cross_entropy_and_part3(model):
    ids = sentences_batch(6, 20, 40)
    inputs, labels = P.mask_tokens(ids, 4, 40, SPECIAL, generator=torch.Generator())
    with torch.no_grad():
        logits = model(inputs)
        expected = F.cross_entropy(logits.reshape(-1, 40), labels.reshape(-1))
        assert math.isclose(
            P.mlm_loss(model, inputs, labels).item(), expected.item(), rel_tol=1e-5
        )
        inputs, labels = P.causal_lm_inputs_and_labels(ids, 0)
        part3 = causal_lm_loss(model(ids, causal=True), ids, pad_id=0)
        assert math.isclose(
            P.clm_loss(model, inputs, labels).item(), part3.item(), rel_tol=1e-5
        )


@pytest.mark.parametrize("objective", ["mlm", "clm"])
def test_pretrain_lowers_the_loss(model, objective):
    torch.set_num_threads(1)
    ids = sentences_batch(64, 20, 40)
    ids[:, 1::2] = torch.where(ids[:, 1::2] > 3, 9, ids[:, 1::2])  # learnable pattern
    losses = P.pretrain(model, ids, objective, steps=60, batch_size=16, lr=3e-3)
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.5
    assert not model.training


def test_pretrain_rejects_unknown_objectives(model):
    with pytest.raises(ValueError, match="objective"):
        P.pretrain(model, sentences_batch(), "nsp", steps=1)


# ---------------------------------------------------------------- task and probe


@pytest.mark.parametrize("keep_end", [False, True])
def test_shuffle_words(keep_end):
    ids = sentences_batch(50, 20, 40)
    shuffled = P.shuffle_words(
        ids, 0, keep_end_mark=keep_end, generator=torch.Generator().manual_seed(0)
    )
    lengths = (ids != 0).sum(1)
    for row in range(50):
        n = int(lengths[row])
        assert sorted(shuffled[row, :n].tolist()) == sorted(ids[row, :n].tolist())
        assert shuffled[row, 0] == 2 and shuffled[row, n - 1] == 3
        assert (shuffled[row, n:] == 0).all()
        if keep_end:
            assert shuffled[row, n - 2] == ids[row, n - 2]
        moved = ids[row, 1 : n - (2 if keep_end else 1)]
        if len(set(moved.tolist())) > 1:
            assert not torch.equal(shuffled[row], ids[row])


def test_probe_features_and_accuracies(model):
    ids = sentences_batch(60, 20, 40)
    features = P.probe_features(model, ids)
    assert features.shape == (60, 16)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(80, 5, generator=g)
    b = torch.randn(80, 5, generator=g) + torch.tensor([5.0, 0, 0, 0, 0])
    accuracies = P.probe_accuracies(a, b, 20, range(3))
    assert len(accuracies) == 3 and min(accuracies) > 0.9
    noise = P.probe_accuracies(a, torch.randn(80, 5, generator=g), 20, range(3))
    assert max(noise) < 0.75
