"""seqbook.text.decoding: greedy, beam search (against an exhaustive search), sampling
and the distribution reshaping, and the model adapters (cached scorers against a full
recomputation)."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqbook.checks.decoding_and_evaluation import TableScorer
from seqbook.text import decoding


def brute_force(scorer, bos, eos, max_len, alpha):
    """Every sequence up to max_len (ending at its first <eos>, or at max_len)."""
    vocab = scorer(torch.tensor([[bos]])).size(1)
    best = None
    for length in range(1, max_len + 1):
        for tokens in itertools.product(range(vocab), repeat=length):
            tokens = list(tokens)
            if eos in tokens[:-1] or (tokens[-1] != eos and length < max_len):
                continue
            total = decoding.sequence_log_prob(scorer, bos, tokens)
            score = total / length**alpha
            if best is None or score > best[1] + 1e-12:
                best = (tokens, score)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_wide_beam_equals_exhaustive_search(seed):
    vocab, max_len = 3 + seed % 2, 3
    scorer = TableScorer(vocab, 0, 1, seed=seed, sharpness=0.8)
    alpha = [0.0, 0.5, 1.0][seed % 3]
    tokens, score = decoding.beam_search(scorer, 0, 1, vocab**max_len, max_len, alpha)
    expected_tokens, expected_score = brute_force(scorer, 0, 1, max_len, alpha)
    assert tokens == expected_tokens
    assert score == pytest.approx(expected_score, abs=1e-9)
    assert decoding.exhaustive_search(scorer, 0, 1, max_len, alpha)[0] == tokens


@pytest.mark.parametrize("seed", range(10))
def test_beam_size_one_is_greedy_and_scores_are_consistent(seed):
    scorer = TableScorer(6, 2, 4, seed=seed, eos_bias=0.5)
    greedy, greedy_lp = decoding.greedy_search(scorer, 2, 4, 7)
    tokens, score = decoding.beam_search(scorer, 2, 4, 1, 7, alpha=0.7)
    assert tokens == greedy
    assert score == pytest.approx(greedy_lp / len(greedy) ** 0.7)
    assert decoding.sequence_log_prob(scorer, 2, greedy) == pytest.approx(greedy_lp)
    wide, wide_score = decoding.beam_search(scorer, 2, 4, 5, 7, alpha=0.0)
    assert wide_score >= greedy_lp - 1e-9  # a wider beam never finds a worse raw score


def test_reshape_distribution():
    log_probs = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    same = decoding.reshape_distribution(log_probs)
    assert torch.allclose(same, log_probs, atol=1e-6)
    hot = decoding.reshape_distribution(log_probs, temperature=2.0).exp()
    expected = torch.tensor([[0.5, 0.3, 0.15, 0.05]]) ** 0.5
    assert torch.allclose(hot, expected / expected.sum(), atol=1e-6)
    top2 = decoding.reshape_distribution(log_probs, top_k=2).exp()
    assert torch.allclose(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]), atol=1e-6)
    for p, kept in ((0.49, 1), (0.51, 2), (0.79, 2), (0.81, 3), (0.96, 4), (1.0, 4)):
        nucleus = decoding.reshape_distribution(log_probs, top_p=p).exp()
        assert int((nucleus > 0).sum()) == kept, p
        assert nucleus.sum().item() == pytest.approx(1.0)
    # rows are treated separately, in token order
    two = torch.log(torch.tensor([[0.1, 0.7, 0.2], [0.6, 0.1, 0.3]]))
    out = decoding.reshape_distribution(two, top_p=0.75).exp()
    assert (out > 0).tolist() == [[False, True, True], [True, False, True]]


def test_sampling_is_seeded_and_follows_the_distribution():
    scorer = TableScorer(5, 0, 1, seed=3, sharpness=1.0, eos_bias=1.0)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = decoding.sample(scorer, 0, 1, 6, num_samples=30, generator=g1)
    b = decoding.sample(scorer, 0, 1, 6, num_samples=30, generator=g2)
    assert a == b
    assert all(len(s) <= 6 and (1 not in s[:-1]) for s in a)
    cold = decoding.sample(
        scorer, 0, 1, 6, num_samples=20, temperature=1e-4, generator=g1
    )
    greedy, _ = decoding.greedy_search(scorer, 0, 1, 6)
    assert all(s == greedy for s in cold)
    first = decoding.sample(
        scorer, 0, 1, 1, num_samples=4000, generator=torch.Generator().manual_seed(0)
    )
    counts = torch.bincount(torch.tensor([s[0] for s in first]), minlength=5) / 4000
    expected = scorer(torch.tensor([[0]]))[0].exp().float()
    assert torch.allclose(counts, expected, atol=0.03)
    only_top = decoding.sample(scorer, 0, 1, 1, num_samples=50, top_k=1, generator=g1)
    assert {s[0] for s in only_top} == {int(expected.argmax())}


def test_model_scorers_match_full_recomputation():
    from seqbook.data.scan import scan_examples
    from seqbook.models import seq2seq_attention as seq2seq
    from seqbook.models import transformer_seq2seq as seq2seq_transformer

    vocab = seq2seq.date_vocabulary()
    torch.manual_seed(0)
    model = seq2seq.Seq2Seq(
        len(vocab), 8, 16, attention=True, bos_id=vocab.stoi[seq2seq.BOS]
    ).eval()
    written, iso = "3 May 2011", "2011-05-03"
    scorer = decoding.date_scorer(model, written, vocab)
    source, lengths, targets = seq2seq.encode_pairs([(written, iso)], vocab)
    with torch.no_grad():
        logits = model(source, lengths, targets)[0]  # (T, V), teacher forcing
    prefix = [model.bos_id] + targets[0, :-1].tolist()
    for t in (1, 4, len(prefix)):
        got = scorer(torch.tensor([prefix[:t]]))[0]
        assert torch.allclose(got, logits[t - 1].log_softmax(-1), atol=1e-5)

    source_vocab, target_vocab = seq2seq_transformer.scan_vocabularies(scan_examples())
    net = seq2seq_transformer.TransformerSeq2Seq(
        len(source_vocab), len(target_vocab), dim=16, num_heads=2, hidden_dim=32
    )
    net.eval()
    cached = decoding.scan_scorer(net, "jump twice", source_vocab)
    full = decoding.full_prefix_scorer(net, "jump twice", source_vocab)
    prefixes = torch.tensor([[1, 3, 4, 5, 3], [1, 6, 6, 3, 2]])
    assert torch.allclose(cached(prefixes), full(prefixes), atol=1e-5)
    assert torch.allclose(cached(prefixes[:, :2]), full(prefixes[:, :2]), atol=1e-5)
    tokens, _ = decoding.greedy_search(cached, 1, 2, 8)
    ids = seq2seq_transformer.greedy_decode(
        net, torch.tensor([source_vocab.encode("jump twice".split())]), 1, 2, 8
    )[0].tolist()
    assert tokens == ids[: len(tokens)]
