"""seqbook.text.bleu and exact match against sacrebleu, and the SCAN grammar against
the paper's counts."""

import random

import pytest

from seqbook.data.scan import interpret, length_split, scan_examples, simple_split
from seqbook.text.bleu import corpus_bleu
from seqbook.text.metrics import exact_match

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


def test_exact_match():
    assert exact_match(["a b", "c"], ["a  b", "d"]) == 50.0


def test_scan_has_the_papers_size_and_length_split():
    examples = scan_examples()
    assert len(examples) == 20910 and len({c for c, _ in examples}) == 20910
    train, test = length_split()
    assert (len(train), len(test)) == (16990, 3920)  # the paper's length split
    assert max(len(a.split()) for _, a in train) == 22
    assert min(len(a.split()) for _, a in test) == 24
    train, test = simple_split()
    assert len(train) + len(test) == 20910 and len(test) == 4182
    assert not {c for c, _ in train} & {c for c, _ in test}
    assert simple_split() == (train, test)  # seeded


@pytest.mark.parametrize(
    "command, actions",
    [
        ("jump", "I_JUMP"),
        ("turn right", "I_TURN_RIGHT"),
        ("walk left", "I_TURN_LEFT I_WALK"),
        ("look opposite right", "I_TURN_RIGHT I_TURN_RIGHT I_LOOK"),
        ("turn opposite left", "I_TURN_LEFT I_TURN_LEFT"),
        ("turn around right", "I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT"),
        (
            "run around left",
            "I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN",
        ),
        ("jump twice after walk thrice", "I_WALK I_WALK I_WALK I_JUMP I_JUMP"),
        (
            "look right and turn left twice",
            "I_TURN_RIGHT I_LOOK I_TURN_LEFT I_TURN_LEFT",
        ),
    ],
)
def test_scan_semantics(command, actions):
    assert " ".join(interpret(command)) == actions
    assert dict(scan_examples())[command] == actions
