"""seqbook.text.bleu against sacrebleu, on random corpora and edge cases."""

import random

import pytest

from seqbook.text.bleu import corpus_bleu

sacrebleu = pytest.importorskip("sacrebleu")


def sacrebleu_score(hypotheses, references):
    """Rearrange per-hypothesis reference lists into sacrebleu's streams (None =
    absent)."""
    width = max(len(r) for r in references)
    streams = [[r[i] if i < len(r) else None for r in references] for i in range(width)]
    return sacrebleu.corpus_bleu(hypotheses, streams, tokenize="none").score


def random_sentence(rng, vocabulary, low=0, high=12):
    return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(low, high)))


@pytest.mark.parametrize("seed", range(40))
def test_corpus_bleu_equals_sacrebleu_with_variable_reference_counts(seed):
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(rng.choice([3, 6, 20]))]
    hypotheses, references = [], []
    for _ in range(rng.randint(1, 8)):
        reference = random_sentence(rng, vocabulary, 1)
        # Hypotheses near a reference, so high-order matches occur.
        words = reference.split()
        if rng.random() < 0.7 and words:
            words = (
                words[: rng.randint(0, len(words))]
                + random_sentence(rng, vocabulary, 0, 4).split()
            )
        hypotheses.append(
            " ".join(words) if rng.random() < 0.9 else random_sentence(rng, vocabulary)
        )
        references.append(
            [reference]
            + [random_sentence(rng, vocabulary, 1) for _ in range(rng.randint(0, 3))]
        )
    assert (
        abs(
            corpus_bleu(hypotheses, references)
            - sacrebleu_score(hypotheses, references)
        )
        < 1e-6
    )


def test_corpus_bleu_edge_cases():
    assert corpus_bleu(["a b c d"], [["a b c d"]]) == pytest.approx(100.0)
    for hyps, refs in [
        (["x y"], [["a b c d"]]),
        ([""], [["a b"]]),
        (["a b"], [["a b c d e"]]),
        (["a a a a a"], [["a", "a a"]]),
        (["a b c x y"], [["a b c d", "y a b"]]),
    ]:
        assert corpus_bleu(hyps, refs) == pytest.approx(
            sacrebleu_score(hyps, refs), abs=1e-6
        )
    with pytest.raises(ValueError):
        corpus_bleu(["a"], ["a"])
    with pytest.raises(ValueError):
        corpus_bleu(["a", "b"], [["a"]])
