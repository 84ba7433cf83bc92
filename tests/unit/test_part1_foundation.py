"""Shared Part 1 building blocks: corpus, vocabulary, n-grams, training loop."""

import math

import pytest
import torch

from seqbook.data.corpus import ALPHABET, clean_text, load_corpus, split_text
from seqbook.models.ngram import NGramModel, bigram_perplexity
from seqbook.text.vocab import PAD, UNK, Vocabulary, build_vocabulary, word_tokens
from seqbook.train.loop import TrainingLog, language_model_batch, train


def test_clean_text_follows_its_rules():
    raw = (
        "Title\n*****\n\n------ ----\nSome \u201cQuoted\u201d Text\u2014here.\n"
        "   code = 1\n\n\n\nNext   para_graph."
    )
    assert clean_text(raw) == 'title\n\nsome "quoted" text-here.\n\nnext para graph.\n'
    with pytest.raises(TypeError):
        clean_text(None)


def test_corpus_is_large_clean_and_offline():
    text = load_corpus()
    assert len(text) > 150_000 and set(text) <= ALPHABET
    train_text, valid_text, test_text = split_text(text)
    assert train_text + valid_text + test_text == text
    assert len(train_text) == int(0.8 * len(text))


def test_vocabulary_order_specials_and_unknowns():
    tokens = ["b", "a", "c", "a", "b", "a", "<unk>", "d"]
    assert build_vocabulary(tokens, min_freq=2) == [PAD, UNK, "a", "b"]
    assert build_vocabulary(tokens) == [
        PAD,
        UNK,
        "a",
        "b",
        "c",
        "d",
    ]  # ties alphabetical
    vocab = Vocabulary(tokens, min_freq=2)
    assert vocab.encode(["a", "zebra", "b"]) == [2, 1, 3]
    assert vocab.decode([3, 2]) == ["b", "a"] and vocab.pad_id == 0 and len(vocab) == 4


def test_word_tokens_split_punctuation():
    assert word_tokens('it\'s "x", (y).') == [
        "it's",
        '"',
        "x",
        '"',
        ",",
        "(",
        "y",
        ")",
        ".",
    ]


def test_bigram_perplexity_by_hand():
    # train pairs: (0,1) (1,0) (0,1); V = 2, k = 1
    # P(1|0) = (2+1)/(2+2) = 3/4, P(0|1) = (1+1)/(1+2) = 2/3
    ppl = bigram_perplexity([0, 1, 0, 1], [0, 1, 0], vocab_size=2, k=1.0)
    assert ppl == pytest.approx(math.exp(-(math.log(3 / 4) + math.log(2 / 3)) / 2))
    model = NGramModel(2, 2, k=1.0).fit([0, 1, 0, 1])
    assert model.perplexity([0, 1, 0]) == pytest.approx(ppl)


def test_unigram_with_huge_k_is_uniform():
    assert NGramModel(1, 5, k=1e9).fit([0, 0, 1]).perplexity(
        [2, 3, 4]
    ) == pytest.approx(5.0)


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


def test_ngram_refuses_a_short_context():
    with pytest.raises(ValueError, match="needs 2 context tokens, got 1"):
        NGramModel(3, 4).fit([0, 1, 2, 3]).prob([1], 2)
