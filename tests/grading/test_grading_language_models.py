"""The grading round trip of the section "Sequences and language models": the solution
scores full marks, the unanswered student version 0, and one buggy exercise loses
exactly its points (a classic mistake per exercise)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "language_models",
    wrong={
        "lm-vocabulary": (  # ties in order of first appearance (Counter.most_common)
            "from collections import Counter\n\n\n"
            "def build_vocabulary(tokens, min_freq=1, specials=('<pad>', '<unk>')):\n"
            "    counts = Counter(tokens)\n"
            "    return list(specials) + [t for t, c in counts.most_common()\n"
            "                             if c >= min_freq and t not in specials]\n"
        ),
        "lm-bigram-perplexity": (  # counts the last training token as a context
            "def bigram_perplexity(train_ids, test_ids, vocab_size, k=1.0):\n"
            "    pairs = Counter(zip(train_ids[:-1], train_ids[1:]))\n"
            "    contexts = Counter(train_ids)\n"
            "    total = 0.0\n"
            "    for h, w in zip(test_ids[:-1], test_ids[1:]):\n"
            "        total -= math.log("
            "(pairs[(h, w)] + k) / (contexts[h] + k * vocab_size))\n"
            "    return math.exp(total / (len(test_ids) - 1))\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
