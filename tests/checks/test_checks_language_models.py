"""The checks of the section "Sequences and language models": correct answers pass
(repeatedly, in hidden mode), every classic mistake is rejected with a message that
names it, stubs and bad return values get clear messages, the book's references cannot
be used while an answer runs, and the solutions are the package's references."""

import math
import sys
from collections import Counter

import pytest
from conftest import REPO

from seqbook.checks import CheckFailure, ForbiddenCall, IntegrityError
from seqbook.checks import language_models as lm_checks
from seqbook.models import ngram
from seqbook.text import vocab

NOTEBOOK = REPO / "solutions" / "sequence_models" / "language_models.ipynb"


# ------------------------------------------------------------------ vocabulary answers


def vocabulary_variant(
    order="right", cutoff=">=", specials_at="start", dedupe=True, returns="list"
):
    def build_vocabulary(tokens, min_freq=1, specials=("<pad>", "<unk>")):
        counts = Counter(tokens)
        kept = [
            t
            for t, c in counts.items()
            if (c >= min_freq if cutoff == ">=" else c > min_freq)
            and (t not in specials or not dedupe)
        ]
        if order == "right":
            kept.sort(key=lambda t: (-counts[t], t))
        elif order == "first_appearance":
            pass  # Counter keeps first-appearance order
        elif order == "most_common":
            kept = [t for t, _ in counts.most_common() if t in kept]
        elif order == "ascending":
            kept.sort(key=lambda t: (counts[t], t))
        elif order == "reverse_pairs":
            kept = [t for _, t in sorted(((counts[t], t) for t in kept), reverse=True)]
        elif order == "alphabetical":
            kept.sort()
        if specials_at == "start":
            entries = list(specials) + kept
        elif specials_at == "end":
            entries = kept + list(specials)
        elif specials_at == "sorted":
            entries = sorted(specials) + kept
        else:
            entries = kept
        if returns == "dict":
            return {t: i for i, t in enumerate(entries)}
        if returns == "set":
            return set(entries)
        if returns == "tuple":
            return tuple(entries)
        if returns == "pairs":
            return [(t, counts[t]) for t in entries]
        return entries

    return build_vocabulary


correct_build_vocabulary = vocabulary_variant()


def another_correct_build_vocabulary(tokens, min_freq=1, specials=("<pad>", "<unk>")):
    counts = {}
    for token in tokens:
        counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return [*specials, *(t for t, c in ranked if c >= min_freq and t not in specials)]


@pytest.mark.parametrize(
    "answer", [correct_build_vocabulary, another_correct_build_vocabulary]
)
def test_correct_vocabularies_pass_repeatedly(answer, capsys):
    lm_checks.check_build_vocabulary(answer)
    for _ in range(40):  # fresh hidden inputs every time: no flaky verdicts
        lm_checks.check_build_vocabulary(answer, hidden=True)
    assert capsys.readouterr().out.count("✔") == 41


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "variant, message",
    [
        (dict(order="first_appearance"), "order of first appearance"),
        (dict(order="most_common"), "Counter.most_common"),
        (dict(order="ascending"), "least to most frequent"),
        (dict(order="reverse_pairs"), "reverse alphabetical"),
        (dict(order="alphabetical"), "sorted alphabetically only"),
        (dict(cutoff=">"), r"count >= min_freq \(you used >\)"),
        (dict(specials_at="end"), "at the end"),
        (dict(specials_at="none"), "has no special tokens"),
        (dict(specials_at="sorted"), "keep the order given"),
        (dict(dedupe=False), "twice"),
        (dict(returns="dict"), "returned a dict"),
        (dict(returns="set"), "returned a set"),
        (dict(returns="tuple"), "should return a list"),
        (dict(returns="pairs"), "not \\(token, count\\) pairs"),
    ],
)
def test_vocabulary_mistakes_are_named(variant, message, hidden):
    answer = vocabulary_variant(**variant)
    for _ in range(5 if hidden else 1):
        with pytest.raises(CheckFailure, match=message):
            lm_checks.check_build_vocabulary(answer, hidden=hidden)


def test_vocabulary_without_cutoff_and_wrong_defaults_are_reported():
    def no_cutoff(tokens, min_freq=1, specials=("<pad>", "<unk>")):
        return correct_build_vocabulary(tokens, 1, specials)

    with pytest.raises(CheckFailure, match="seen fewer than min_freq"):
        lm_checks.check_build_vocabulary(no_cutoff)

    def wrong_default(tokens, min_freq=2, specials=("<pad>", "<unk>")):
        return correct_build_vocabulary(tokens, min_freq, specials)

    with pytest.raises(CheckFailure, match="occur exactly min_freq"):
        lm_checks.check_build_vocabulary(wrong_default)

    def unk_only(tokens, min_freq=1, specials=("<pad>", "<unk>")):
        return correct_build_vocabulary(tokens, min_freq, ("<unk>",))

    with pytest.raises(CheckFailure, match="missing the special token"):
        lm_checks.check_build_vocabulary(unk_only)


def test_vocabulary_that_mutates_its_input_is_reported():
    def sorts_in_place(tokens, min_freq=1, specials=("<pad>", "<unk>")):
        result = correct_build_vocabulary(tokens, min_freq, specials)
        tokens.sort()
        return result

    with pytest.raises(CheckFailure, match="modified its `tokens` argument"):
        lm_checks.check_build_vocabulary(sorts_in_place)


# ------------------------------------------------------------------ perplexity answers


def bigram_variant(mistake=None):
    def bigram_perplexity(train_ids, test_ids, vocab_size, k=1.0):
        train, test = list(train_ids), list(test_ids)
        if mistake == "test_counted":
            train = train + test
        if mistake == "k_ignored":
            k = 1.0
        pairs = Counter(zip(train[:-1], train[1:]))
        contexts = Counter(train if mistake == "all_positions" else train[:-1])
        nats, bits, product = 0.0, 0.0, 1.0
        for h, w in zip(test[:-1], test[1:]):
            count = pairs[(w, h)] if mistake == "reversed" else pairs[(h, w)]
            numerator = count if mistake == "numerator_no_k" else count + k
            denominator = {
                "no_kV": contexts[h] + k,
                "only_count": contexts[h],
                "plus_V": contexts[h] + vocab_size,
            }.get(mistake, contexts[h] + k * vocab_size)
            p = numerator / denominator
            nats -= math.log(p)
            bits -= math.log2(p)
            product *= p
        steps = len(test) if mistake == "len_test" else len(test) - 1
        if mistake == "cross_entropy":
            return nats / steps
        if mistake == "bits":
            return bits / steps
        if mistake == "log2_exp":
            return math.exp(bits / steps)
        if mistake == "ln_pow2":
            return 2 ** (nats / steps)
        if mistake == "underflow":
            return product ** (-1 / steps)
        if mistake == "returns_list":
            return [math.exp(nats / steps)]
        if mistake == "returns_none":
            return None
        return math.exp(nats / steps)

    return bigram_perplexity


def torch_bigram_perplexity(train_ids, test_ids, vocab_size, k=1.0, dtype=None):
    import torch

    dtype = dtype or torch.float64
    train = torch.tensor(train_ids)
    test = torch.tensor(test_ids)
    counts = torch.zeros(vocab_size, vocab_size, dtype=dtype)
    counts.index_put_(
        (train[:-1], train[1:]),
        torch.ones(len(train) - 1, dtype=dtype),
        accumulate=True,
    )
    log_probs = ((counts + k) / (counts.sum(1, keepdim=True) + k * vocab_size)).log()
    return torch.exp(-log_probs[test[:-1], test[1:]].mean())  # a 0-d tensor is accepted


def float32_bigram_perplexity(train_ids, test_ids, vocab_size, k=1.0):
    import torch

    return torch_bigram_perplexity(
        train_ids, test_ids, vocab_size, k, dtype=torch.float32
    )


@pytest.mark.parametrize(
    "answer", [bigram_variant(), torch_bigram_perplexity, float32_bigram_perplexity]
)
def test_correct_perplexities_pass_repeatedly(answer, capsys):
    lm_checks.check_bigram_perplexity(answer)
    for _ in range(20):
        lm_checks.check_bigram_perplexity(answer, hidden=True)
    assert capsys.readouterr().out.count("✔") == 21


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "mistake, message",
    [
        ("no_kV", r"c\(h\) \+ k; add-k smoothing adds k for each"),
        ("plus_V", r"c\(h\) \+ V; it is"),
        ("all_positions", "including the last one"),
        ("len_test", r"len\(test_ids\) - 1 test bigrams"),
        ("cross_entropy", "returns the cross-entropy \\(mean"),
        ("bits", "cross-entropy in bits"),
        ("log2_exp", "base 2 but the result is exp"),
        ("ln_pow2", "natural but the result is 2"),
        ("test_counted", "test bigrams were counted into the model"),
        ("k_ignored", "k is ignored"),
        ("reversed", "wrong order"),
        ("numerator_no_k", r"numerator is c\(h, w\)|logarithm of 0"),
        ("only_count", r"c\(h\) = 0|the denominator is c\(h\);"),
        ("underflow", "underflow"),
        ("returns_list", "should return a number"),
        ("returns_none", "did you forget a `return`"),
    ],
)
def test_perplexity_mistakes_are_named(mistake, message, hidden):
    for _ in range(5 if hidden else 1):
        with pytest.raises(CheckFailure, match=message):
            lm_checks.check_bigram_perplexity(bigram_variant(mistake), hidden=hidden)


HAND_CASES = [  # the values the notebook's hidden test cell computes by hand
    (
        [0, 1, 0, 1],
        [0, 1, 0],
        2,
        1.0,
        math.exp(-(math.log(3 / 4) + math.log(2 / 3)) / 2),
    ),
    ([1, 1, 0], [1, 2], 3, 0.5, math.exp(-math.log(0.5 / 3.5))),
    (
        [0, 1, 2, 0, 1],
        [2, 0, 1, 1],
        3,
        1.0,
        math.exp(-(math.log(2 / 4) + math.log(3 / 5) + math.log(1 / 4)) / 3),
    ),
]


@pytest.mark.parametrize("case", HAND_CASES)
def test_hand_computed_values_agree_with_the_reference(case, capsys):
    train, test, vocab_size, k, expected = case
    assert ngram.bigram_perplexity(train, test, vocab_size, k) == pytest.approx(
        expected, rel=1e-12
    )
    lm_checks.check_bigram_perplexity_value(
        bigram_variant(), train, test, vocab_size, k, expected
    )
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake",
    [
        "no_kV",
        "all_positions",
        "len_test",
        "cross_entropy",
        "log2_exp",
        "test_counted",
        "reversed",
        "numerator_no_k",
    ],
)
def test_each_mistake_fails_some_hand_computed_case(mistake):
    failures = 0
    for train, test, vocab_size, k, expected in HAND_CASES:
        try:
            lm_checks.check_bigram_perplexity_value(
                bigram_variant(mistake), train, test, vocab_size, k, expected
            )
        except CheckFailure:
            failures += 1
    assert failures >= 1


def test_stubs_and_non_functions_get_friendly_messages():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    for check in (lm_checks.check_build_vocabulary, lm_checks.check_bigram_perplexity):
        with pytest.raises(CheckFailure, match="still raises NotImplementedError"):
            check(stub)
        with pytest.raises(CheckFailure, match="expected a function"):
            check(None)
    with pytest.raises(CheckFailure, match="returned None"):
        lm_checks.check_build_vocabulary(lambda tokens, min_freq=1, specials=(): None)


# ------------------------------------------------------------------ forbidden calls


def test_vocabulary_references_are_forbidden():
    with pytest.raises(ForbiddenCall, match="seqbook.text.vocab.build_vocabulary"):
        lm_checks.check_build_vocabulary(vocab.build_vocabulary)
    with pytest.raises(ForbiddenCall, match="not allowed"):
        lm_checks.check_build_vocabulary(
            lambda tokens, min_freq=1, specials=("<pad>", "<unk>"): (
                vocab.Vocabulary(tokens, min_freq, specials).itos
            )
        )
    alias = vocab.Vocabulary  # captured before the guard: its __init__ is still caught
    with pytest.raises(ForbiddenCall, match="seqbook.text.vocab.build_vocabulary"):
        lm_checks.check_build_vocabulary(
            lambda tokens, min_freq=1, specials=("<pad>", "<unk>"): (
                alias(tokens, min_freq, specials).itos
            )
        )


def test_ngram_references_are_forbidden_even_through_aliases():
    with pytest.raises(ForbiddenCall, match="seqbook.models.ngram.bigram_perplexity"):
        lm_checks.check_bigram_perplexity(ngram.bigram_perplexity)
    model_class = ngram.NGramModel

    def uses_the_class(train_ids, test_ids, vocab_size, k=1.0):
        return model_class(2, vocab_size, k).fit(train_ids).perplexity(test_ids)

    with pytest.raises(ForbiddenCall, match=r"seqbook\.models\.ngram\.NGramModel\.fit"):
        lm_checks.check_bigram_perplexity(uses_the_class)

    def direct(train_ids, test_ids, vocab_size, k=1.0):
        return ngram.NGramModel(2, vocab_size, k).fit(train_ids).perplexity(test_ids)

    with pytest.raises(ForbiddenCall, match="not allowed"):
        lm_checks.check_bigram_perplexity(direct)


def test_guard_restores_the_references():
    before = (
        vocab.build_vocabulary,
        vocab.Vocabulary,
        ngram.bigram_perplexity,
        ngram.NGramModel,
        sys.getprofile(),
    )
    with pytest.raises(CheckFailure):
        lm_checks.check_bigram_perplexity(ngram.bigram_perplexity)
    with pytest.raises(CheckFailure):
        lm_checks.check_build_vocabulary(vocab.build_vocabulary)
    assert (
        vocab.build_vocabulary,
        vocab.Vocabulary,
        ngram.bigram_perplexity,
        ngram.NGramModel,
        sys.getprofile(),
    ) == before
    assert ngram.bigram_perplexity([0, 1], [0, 1], 2) == pytest.approx(3 / 2)


def test_replacing_a_reference_is_detected_and_undone():
    original = vocab.build_vocabulary
    vocab.build_vocabulary = lambda *args, **kwargs: []
    try:
        with pytest.raises(
            IntegrityError, match="seqbook.text.vocab.build_vocabulary` was replaced"
        ):
            lm_checks.check_build_vocabulary(correct_build_vocabulary)
        assert vocab.build_vocabulary is original
    finally:
        vocab.build_vocabulary = original
