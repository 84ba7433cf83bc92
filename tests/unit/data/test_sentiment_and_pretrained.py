"""The generated sentiment data of Part 5 and the offline MiniLM loader."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from seqbook.data import sentiment
from seqbook.data.sentiment import sentiment_splits


@pytest.fixture(scope="module")
def splits():
    return sentiment_splits()


def test_splits_are_seeded_balanced_and_disjoint(splits):
    assert sentiment_splits() == splits
    sizes = {name: len(examples) for name, examples in splits.items()}
    assert sizes == {"train": 2000, "validation": 500, "test": 1000}
    for examples in splits.values():
        counts = Counter(e.label for e in examples)
        assert counts[0] == counts[1]
    texts = [{e.text for e in examples} for examples in splits.values()]
    assert sum(map(len, texts)) == 3500, "a sentence occurs twice"
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_held_out_words_occur_only_in_test(splits):
    held_out = set()
    for words in (sentiment.HELD_OUT_POSITIVE, sentiment.HELD_OUT_NEGATIVE):
        held_out |= set(words["adjectives"])
        held_out |= {w for pair in words["verbs"] for w in pair}
    for name in ("train", "validation"):
        for example in splits[name]:
            assert not held_out & set(example.text.split()), example
    flagged = [e for e in splits["test"] if e.held_out]
    assert len(flagged) > 200
    assert all(held_out & set(e.text.split()) for e in flagged)


def _word_polarity(word):
    for polarity, groups in (
        (1, (sentiment.POSITIVE_WORDS, sentiment.HELD_OUT_POSITIVE)),
        (0, (sentiment.NEGATIVE_WORDS, sentiment.HELD_OUT_NEGATIVE)),
    ):
        for words in groups:
            if word in words["adjectives"] or any(
                word in pair for pair in words["verbs"]
            ):
                return polarity
    return None


def _clause_label(clause):
    words = clause.split()
    polarity = next(p for p in map(_word_polarity, words) if p is not None)
    negated = "not" in words or "never" in words
    return polarity ^ negated


def test_labels_follow_the_grammar(splits):
    """Re-derive every label from the text: polarity word, negation, last clause
    wins."""
    for examples in splits.values():
        for example in examples:
            clauses = example.text.split(" but ")
            assert len(clauses) == (2 if example.contrast else 1)
            assert _clause_label(clauses[-1]) == example.label, example
            if example.contrast:
                assert _clause_label(clauses[0]) != example.label, example
            last = clauses[-1].split()
            assert example.negated == ("not" in last or "never" in last)


def test_minilm_loads_offline_with_a_fresh_head():
    from seqbook.models import pretrained

    tokenizer = pretrained.load_tokenizer()
    model = pretrained.load_classifier(num_labels=2, seed=0)
    again = pretrained.load_classifier(num_labels=2, seed=0)
    assert sum(p.numel() for p in model.parameters()) == 22_713_986
    assert torch.equal(model.classifier.weight, again.classifier.weight)
    batch = tokenizer(
        ["the plot was not dull", "i loved it"], padding=True, return_tensors="pt"
    )
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
