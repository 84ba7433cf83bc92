"""Checks for the exercises of the section "Sequences and language models".

* :func:`check_build_vocabulary` -- ``build_vocabulary(tokens, min_freq=1,
  specials=("<pad>", "<unk>"))`` must return the list of entries (position = id) that
  :func:`seqbook.text.vocab.build_vocabulary` returns;
* :func:`check_bigram_perplexity` -- ``bigram_perplexity(train_ids, test_ids,
  vocab_size, k=1.0)`` must return the perplexity that
  :func:`seqbook.models.ngram.bigram_perplexity` returns;
* :func:`check_bigram_perplexity_value` -- one case whose expected value the caller
  supplies (the hidden tests compute a few by hand, independently of the reference).

When an answer differs, the checks recognise the classic mistakes (ordering by first
appearance, ties not alphabetical, ``>`` instead of ``>=``, misplaced or duplicated
special tokens; a missing ``+ kV``, the last training token counted as a context,
averaging over ``len(test)``, cross-entropy instead of perplexity, mixed logarithm
bases, test bigrams counted into the model, an underflowing product, ...) and name them.

``hidden=True`` draws tokens, sizes and smoothing constants from a fresh random seed at
grading time and computes the expected answers with the reference inside the check.
The student's function runs with the book's references disabled (``forbid_calls``).
"""

from __future__ import annotations

import functools
import math
import os
import random
import string
from collections import Counter
from typing import Any, Callable, Sequence

from seqbook.checks import integrity
from seqbook.checks._harness import check, guarded_call
from seqbook.checks.core import CheckFailure, describe
from seqbook.checks.guard import ForbiddenCall, existing_paths
from seqbook.models import ngram as _ngram
from seqbook.text import vocab as _vocab

__all__ = [
    "check_build_vocabulary",
    "check_bigram_perplexity",
    "check_bigram_perplexity_value",
]

# Captured at import (the set-up cell imports this module before any answer runs).
_reference_build = _vocab.build_vocabulary
_reference_bigram = _ngram.bigram_perplexity
_PAD, _UNK = _vocab.PAD, _vocab.UNK

# The methods of the n-gram class, reachable at an import path of this module so that
# ``forbid_calls`` recognises them by their code even when called through an alias.
_ngram_fit = _ngram.NGramModel.fit
_ngram_prob = _ngram.NGramModel.prob
_ngram_perplexity = _ngram.NGramModel.perplexity

_VOCAB_FORBIDDEN = existing_paths(
    ("seqbook.text.vocab.build_vocabulary", "seqbook.text.vocab.Vocabulary")
)
_BIGRAM_FORBIDDEN = existing_paths(
    (
        "seqbook.models.ngram.bigram_perplexity",
        "seqbook.models.ngram.NGramModel",
        f"{__name__}._ngram_fit",
        f"{__name__}._ngram_prob",
        f"{__name__}._ngram_perplexity",
    )
)
_PUBLIC_NAMES = {
    f"{__name__}._ngram_fit": "seqbook.models.ngram.NGramModel.fit",
    f"{__name__}._ngram_prob": "seqbook.models.ngram.NGramModel.prob",
    f"{__name__}._ngram_perplexity": "seqbook.models.ngram.NGramModel.perplexity",
}


def _rng(hidden: bool) -> random.Random:
    return random.Random(int.from_bytes(os.urandom(8), "little") if hidden else 0)


# Calls the student's function with the book's references disabled.
_guarded_call = functools.partial(guarded_call, aliases=_PUBLIC_NAMES)


def _short(items: Sequence[Any], limit: int = 12) -> str:
    items = list(items)
    text = ", ".join(repr(x) for x in items[:limit])
    return f"[{text}{', ...' if len(items) > limit else ''}]"


# ----------------------------------------------------------------- vocabulary


def _frequent(tokens: Sequence[str], min_freq: int, specials: Sequence[str]) -> Counter:
    counts = Counter(tokens)
    return Counter(
        {t: c for t, c in counts.items() if c >= min_freq and t not in specials}
    )


def _order_variants(
    tokens: Sequence[str], min_freq: int, specials: Sequence[str]
) -> dict[str, list[str]]:
    """Orders of the non-special entries as the classic mistakes produce them."""
    kept = _frequent(tokens, min_freq, specials)
    first_seen = list(dict.fromkeys(t for t in tokens if t in kept))
    return {
        "ties_first_appearance": [t for t, _ in kept.most_common()],
        "first_appearance": first_seen,
        "ascending": sorted(kept, key=lambda t: (kept[t], t)),
        "ties_reversed": sorted(kept, key=lambda t: (kept[t], t), reverse=True),
        "alphabetical": sorted(kept),
    }


_ORDER_MISTAKES = {
    "first_appearance": "the entries are in order of first appearance in the text; "
    "sort them by count, most frequent first",
    "ties_first_appearance": "tokens with equal counts are in order of first "
    "appearance (what Counter.most_common() gives); break ties alphabetically, e.g. "
    "sort with key=lambda t: (-counts[t], t)",
    "ascending": "the entries are sorted from least to most frequent; the most "
    "frequent token comes first",
    "ties_reversed": "tokens with equal counts are in reverse alphabetical order "
    "(did you sort (count, token) pairs with reverse=True?); ties go alphabetically",
    "alphabetical": "the entries are sorted alphabetically only; sort by count first, "
    "most frequent first, and use the alphabet only to break ties",
}


def _vocabulary_case(
    fn: Callable[..., Any],
    tokens: list[str],
    min_freq: int | None,
    specials: tuple[str, ...] | None,
    label: str,
) -> None:
    kwargs: dict[str, Any] = {}
    if min_freq is not None:
        kwargs["min_freq"] = min_freq
    if specials is not None:
        kwargs["specials"] = specials
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    what = f"build_vocabulary({label}{', ' + arguments if arguments else ''})"
    given = list(tokens)
    result = _guarded_call(
        _VOCAB_FORBIDDEN,
        "write the vocabulary from counts yourself "
        "(collections.Counter and sorted are fine).",
        fn,
        given,
        what=what,
        **kwargs,
    )
    min_freq = 1 if min_freq is None else min_freq
    specials = (_PAD, _UNK) if specials is None else specials
    expected = _reference_build(tokens, min_freq, specials)
    if given != tokens:
        raise CheckFailure(
            f"{what} modified its `tokens` argument; build a new list instead."
        )

    if result is None:
        raise CheckFailure(f"{what} returned None: did you forget a `return`?")
    if isinstance(result, dict):
        raise CheckFailure(
            f"{what} returned a dict; return the *list* of entries, whose positions "
            "are the ids (the dict token -> id is built from that list later)."
        )
    if isinstance(result, (set, frozenset)):
        raise CheckFailure(
            f"{what} returned a set, which has no order; return a list, whose "
            "positions are the ids."
        )
    if not isinstance(result, list):
        raise CheckFailure(
            f"{what} should return a list of strings, got {describe(result)}."
        )
    if result == expected:
        return
    if not all(isinstance(entry, str) for entry in result):
        bad = next(entry for entry in result if not isinstance(entry, str))
        raise CheckFailure(
            f"{what}: every entry should be a token (a str), found {bad!r} "
            f"({describe(bad)}). Return the tokens, not (token, count) pairs or ids."
        )
    counts = Counter(tokens)
    repeated = [t for t, c in Counter(result).items() if c > 1]
    if repeated:
        if any(t in specials for t in repeated):
            twice = next(t for t in repeated if t in specials)
            raise CheckFailure(
                f"{what} lists the special token {twice!r} twice: it occurs in the "
                "text as well, but a special token gets exactly one id "
                "(its place among the specials). Leave specials out of the counted "
                "tokens."
            )
        raise CheckFailure(f"{what} lists {repeated[0]!r} more than once.")
    kept = _frequent(tokens, min_freq, specials)
    ordered = sorted(kept, key=lambda t: (-kept[t], t))
    n = len(specials)
    if list(specials) != result[:n]:
        if result == ordered:
            raise CheckFailure(
                f"{what} has no special tokens: the vocabulary must start with the "
                f"specials {list(specials)}, in that order, with ids 0..{n - 1}."
            )
        if n and result == ordered + list(specials):
            raise CheckFailure(
                f"{what} puts the special tokens at the end; they come first, in the "
                f"order given, so that {specials[0]!r} has id 0."
            )
        if sorted(result[:n]) == sorted(specials):
            raise CheckFailure(
                f"{what} starts with the specials in the order {result[:n]}; keep the "
                f"order given: {list(specials)}."
            )
        missing = [s for s in specials if s not in result]
        if missing:
            raise CheckFailure(
                f"{what} is missing the special token(s) {missing}; the "
                f"vocabulary starts with {list(specials)}."
            )
        raise CheckFailure(
            f"{what} should start with the specials {list(specials)}, got {result[:n]}."
        )
    body = result[n:]
    missing = [t for t in ordered if t not in body]
    extra = [t for t in body if t not in kept]
    if missing and all(counts[t] == min_freq for t in missing) and not extra:
        raise CheckFailure(
            f"{what} leaves out {_short(missing)}, which occur exactly min_freq = "
            f"{min_freq} times: keep tokens with count >= min_freq (you used >)."
        )
    if extra:
        low = [t for t in extra if counts[t] < min_freq]
        if low:
            raise CheckFailure(
                f"{what} includes {_short(low)}, seen only {counts[low[0]]} time(s); "
                f"tokens seen fewer than min_freq = {min_freq} times are left out "
                "(they become <unk>)."
            )
        raise CheckFailure(
            f"{what} includes {_short(extra)}, which are not in the text."
        )
    if missing:
        raise CheckFailure(
            f"{what} leaves out {_short(missing)} (count {counts[missing[0]]} >= "
            f"min_freq = {min_freq})."
        )
    matches = [
        name
        for name, variant in _order_variants(tokens, min_freq, specials).items()
        if body == variant
    ]
    if len(matches) == 1:  # name a mistake only when this case tells them apart
        raise CheckFailure(f"{what}: {_ORDER_MISTAKES[matches[0]]}.")
    i = next(i for i, (a, b) in enumerate(zip(body, ordered)) if a != b)
    raise CheckFailure(
        f"{what}: entry {n + i} is {body[i]!r} (count {counts[body[i]]}), expected "
        f"{ordered[i]!r} (count {counts[ordered[i]]}). Order: most frequent first, "
        "ties alphabetically."
    )


_SENTENCE = "the cat sat on the mat . the dog sat on the log . a cat ran".split()
_SENTENCE_LABEL = f"{' '.join(_SENTENCE)!r}.split()"


def _random_word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 5)))


def _random_tokens(rng: random.Random) -> tuple[list[str], int]:
    """Zipf-like counts with many ties, shuffled; a min_freq equal to one of the
    counts."""
    words = list(dict.fromkeys(_random_word(rng) for _ in range(rng.randint(8, 30))))
    words += rng.sample([".", ",", "'", "!", "?", "-", "Zeta", "Alpha", "b2"], 3)
    rng.shuffle(words)
    tokens = []
    for rank, word in enumerate(words, start=1):
        tokens += [word] * max(1, int(rng.choice([12, 20, 30]) / rank + rng.random()))
    rng.shuffle(tokens)
    counts = sorted(set(Counter(tokens).values()))
    return tokens, rng.choice(counts[:4])


@check
def check_build_vocabulary(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``build_vocabulary(tokens, min_freq=1, specials=("<pad>", "<unk>"))``.

    The function is run with ``seqbook.text.vocab.build_vocabulary`` and
    ``seqbook.text.vocab.Vocabulary`` disabled.
    """
    sentence = list(_SENTENCE)
    label = _SENTENCE_LABEL
    cases: list[tuple[list[str], int | None, tuple[str, ...] | None, str]] = [
        (sentence, None, None, label),
        (sentence, 2, None, label),
        (
            sentence + ["<unk>", "<unk>"],
            2,
            ("<pad>", "<unk>"),
            f"{label} + ['<unk>'] * 2",
        ),
        (sentence, 1, ("<unk>", "<pad>", "<bos>"), label),
    ]
    if hidden:
        rng = _rng(True)
        cases.append(([], 1, ("<pad>", "<unk>"), "[]"))
        cases.append((sentence, 5, ("<unk>",), label))
        cases.append((sentence, 1, (), label))
        for _ in range(4):
            tokens, min_freq = _random_tokens(rng)
            specials = rng.choice(
                [(_PAD, _UNK), (_UNK,), (_UNK, _PAD), ("<bos>", _PAD, _UNK)]
            )
            if rng.random() < 0.5:  # a special that also occurs in the text
                tokens += [rng.choice(specials)] * rng.randint(min_freq, min_freq + 3)
                rng.shuffle(tokens)
            cases.append((tokens, min_freq, specials, f"{len(tokens)} random tokens"))
    for tokens, min_freq, specials, label in cases:
        _vocabulary_case(fn, tokens, min_freq, specials, label)
        integrity.verify()
    return f"build_vocabulary is correct on {len(cases)} cases."


# ----------------------------------------------------------------- perplexity


def _bigram_variant(
    train: Sequence[int], test: Sequence[int], vocab_size: int, k: float, mistake: str
) -> float | None:
    """The perplexity a classic mistake computes (None when that mistake would
    crash)."""
    pairs = Counter(zip(train[:-1], train[1:]))
    contexts = Counter(train[:-1])
    if mistake == "all_positions":
        contexts = Counter(train)
    if mistake in ("test_counted", "test_counted_joined"):
        joined = list(train) + list(test)
        if mistake == "test_counted_joined":
            pairs, contexts = (
                Counter(zip(joined[:-1], joined[1:])),
                Counter(joined[:-1]),
            )
        else:
            pairs = pairs + Counter(zip(test[:-1], test[1:]))
            contexts = contexts + Counter(test[:-1])
    if mistake == "k_ignored":
        k = 1.0
    total, product = 0.0, 1.0
    try:
        for previous, current in zip(test[:-1], test[1:]):
            count = pairs[
                (current, previous) if mistake == "reversed" else (previous, current)
            ]
            denominator = {
                "no_kV": contexts[previous] + k,
                "only_count": contexts[previous],
                "plus_V": contexts[previous] + vocab_size,
            }.get(mistake, contexts[previous] + k * vocab_size)
            numerator = count if mistake == "numerator_no_k" else count + k
            probability = numerator / denominator
            total -= math.log(probability)
            product *= probability
        steps = len(test) if mistake == "len_test" else len(test) - 1
        cross_entropy = total / steps
        return {
            "cross_entropy": cross_entropy,
            "cross_entropy_bits": cross_entropy / math.log(2),
            "log2_exp": math.exp(cross_entropy / math.log(2)),
            "ln_pow2": 2.0**cross_entropy,
            "underflow": product ** (-1.0 / steps) if product > 0 else math.inf,
        }.get(mistake, math.exp(cross_entropy))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


_BIGRAM_MISTAKES = {
    "no_kV": "the denominator is c(h) + k; add-k smoothing adds k for each of the V "
    "possible next tokens, so it is c(h) + k*V (otherwise the probabilities of a "
    "context do not sum to 1)",
    "only_count": "the denominator is c(h); with add-k smoothing it is c(h) + k*V",
    "plus_V": "the denominator is c(h) + V; it is c(h) + k*V",
    "all_positions": "c(h) counts every occurrence of h in the training ids, including "
    "the last one, which is followed by nothing; count h only as a context, i.e. in "
    "train_ids[:-1]",
    "len_test": "the mean is taken over len(test_ids) tokens, but there are only "
    "len(test_ids) - 1 test bigrams (the first token is only a context)",
    "cross_entropy": "it returns the cross-entropy (mean negative log-probability, in "
    "nats); the perplexity is exp of that",
    "cross_entropy_bits": "it returns the cross-entropy in bits; the perplexity is "
    "2 ** (bits) = exp(nats)",
    "log2_exp": "the logarithms are base 2 but the result is exp(...); use the same "
    "base both ways: exp(mean of -ln p) or 2 ** (mean of -log2 p)",
    "ln_pow2": "the logarithms are natural but the result is 2 ** (...); use the same "
    "base both ways: exp(mean of -ln p) or 2 ** (mean of -log2 p)",
    "test_counted": "the test bigrams were counted into the model; fit the counts on "
    "train_ids only -- the test text must stay unseen",
    "test_counted_joined": "the test bigrams were counted into the model; fit the "
    "counts on train_ids only -- the test text must stay unseen",
    "numerator_no_k": "the numerator is c(h, w); add-k smoothing adds k to every "
    "count: c(h, w) + k",
    "k_ignored": "the smoothing constant k is ignored (k = 1 is used whatever k is "
    "given)",
    "reversed": "the bigram counts are looked up in the wrong order; P(w | h) uses the "
    "count of the pair (h, w), previous token first",
    "underflow": "the product of the probabilities underflows to 0 on a long text: add "
    "logarithms instead of multiplying probabilities",
}


def _as_number(value: Any, what: str) -> float:
    if value is None:
        raise CheckFailure(f"{what} returned None: did you forget a `return`?")
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise CheckFailure(
            f"{what} should return a number (a float), got {describe(value)}."
        )
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise CheckFailure(
            f"{what} should return one number (a float), got {describe(value)}."
        ) from err
    if math.isnan(number):
        raise CheckFailure(f"{what} returned NaN.")
    return number


def _close(a: float, b: float) -> bool:
    # Loose enough for float32 sums over thousands of tokens; every named mistake
    # differs by far more.
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)


def _crash_hint(
    err: CheckFailure,
    train: Sequence[int],
    test: Sequence[int],
    vocab_size: int,
    k: float,
) -> str:
    text = str(err)
    underflows = _bigram_variant(train, test, vocab_size, k, "underflow") == math.inf
    product = (
        "if you multiplied the probabilities: on a text this long the product "
        "underflows to 0; add logarithms instead."
        if underflows
        else ""
    )
    if "ZeroDivisionError" in text:
        unseen = set(test[:-1]) - set(train[:-1])
        if unseen:
            return (
                f" The context(s) {sorted(unseen)} never occur as a context in "
                "training, so c(h) = 0; with add-k smoothing the denominator "
                "c(h) + k*V is still positive." + (" Or, " + product if product else "")
            )
        return " " + product.capitalize() if product else ""
    if "math domain error" in text:
        return (
            " The logarithm of 0: some probability is zero. Every bigram, seen or not, "
            "gets k in the numerator (c(h, w) + k)."
            + (" Or, " + product if product else "")
        )
    return ""


def _bigram_case(
    fn: Callable[..., Any],
    train: list[int],
    test: list[int],
    vocab_size: int,
    k: float,
    expected: float,
    label: str,
) -> None:
    what = f"bigram_perplexity on {label} (V = {vocab_size}, k = {k})"
    train_copy, test_copy = list(train), list(test)
    try:
        result = _guarded_call(
            _BIGRAM_FORBIDDEN,
            "count the bigrams and compute the perplexity yourself.",
            fn,
            train_copy,
            test_copy,
            vocab_size,
            k=k,
            what=what,
        )
    except ForbiddenCall:
        raise
    except CheckFailure as err:
        hint = _crash_hint(err, train, test, vocab_size, k)
        if hint:
            raise CheckFailure(str(err).rstrip(".") + "." + hint) from None
        raise
    if train_copy != train or test_copy != test:
        raise CheckFailure(
            f"{what} modified its arguments; leave the id lists unchanged."
        )
    value = _as_number(result, what)
    if _close(value, expected):
        return
    if (
        math.isinf(value)
        and _bigram_variant(train, test, vocab_size, k, "underflow") == math.inf
    ):
        raise CheckFailure(f"{what} returned inf: {_BIGRAM_MISTAKES['underflow']}.")
    for mistake in _BIGRAM_MISTAKES:
        variant = _bigram_variant(train, test, vocab_size, k, mistake)
        if (
            variant is not None
            and not _close(variant, expected)
            and _close(value, variant)
        ):
            raise CheckFailure(
                f"{what} returned {value:.6g}, expected {expected:.6g}: "
                f"{_BIGRAM_MISTAKES[mistake]}."
            )
    raise CheckFailure(f"{what} returned {value:.6g}, expected {expected:.6g}.")


@check
def check_bigram_perplexity_value(
    fn: Callable[..., Any],
    train_ids: Sequence[int],
    test_ids: Sequence[int],
    vocab_size: int,
    k: float,
    expected: float,
) -> str:
    """Check one case whose expected perplexity the caller computed (e.g. by hand)."""
    _bigram_case(
        fn,
        list(train_ids),
        list(test_ids),
        vocab_size,
        k,
        float(expected),
        f"train {list(train_ids)}, test {list(test_ids)}",
    )
    return (
        f"bigram_perplexity({list(train_ids)}, {list(test_ids)}, {vocab_size}, "
        f"k={k}) = {expected:.6g}."
    )


def _random_ids(rng: random.Random, vocab_size: int, length: int) -> list[int]:
    # Skewed towards small ids, so some bigrams repeat and some ids never occur.
    return [
        min(int(rng.expovariate(3.0 / vocab_size)), vocab_size - 1)
        for _ in range(length)
    ]


@check
def check_bigram_perplexity(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``bigram_perplexity(train_ids, test_ids, vocab_size, k=1.0)``.

    The function is run with ``seqbook.models.ngram.bigram_perplexity`` and
    ``seqbook.models.ngram.NGramModel`` disabled.
    """
    rng = _rng(hidden)
    cases = [
        ([0, 1, 0, 1], [0, 1, 0], 2, 1.0, "train [0, 1, 0, 1], test [0, 1, 0]"),
        (
            [2, 0, 0, 1, 0],
            [1, 2, 0, 0, 3, 1],
            4,
            0.5,
            "train [2, 0, 0, 1, 0], test [1, 2, 0, 0, 3, 1]",
        ),
    ]
    n_random = 6 if hidden else 2
    for i in range(n_random):
        vocab_size = rng.randint(2, 30)
        train = _random_ids(rng, vocab_size, rng.randint(2, 300))
        test = _random_ids(rng, vocab_size, rng.randint(2, 60))
        k = rng.choice([1.0, 0.5, 0.1, 0.01, 2.0]) if i else 0.25
        cases.append((train, test, vocab_size, k, f"{len(train)} random training ids"))
    # A long test text: multiplying the probabilities underflows.
    vocab_size = rng.randint(20, 40)
    train = _random_ids(rng, vocab_size, 500)
    cases.append(
        (
            train,
            _random_ids(rng, vocab_size, 2000),
            vocab_size,
            0.1,
            "a 2000-token test text",
        )
    )
    for train, test, vocab_size, k, label in cases:
        expected = _reference_bigram(train, test, vocab_size, k)
        _bigram_case(fn, train, test, vocab_size, k, expected, label)
        integrity.verify()
    return f"bigram_perplexity matches the reference on {len(cases)} cases."


integrity.protect_module(__name__)
integrity.protect_module("seqbook.text.vocab")
integrity.protect_module("seqbook.models.ngram")
