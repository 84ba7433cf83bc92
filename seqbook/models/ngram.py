"""n-gram language models with add-k smoothing, and perplexity.

With counts ``c`` from the training tokens, the add-k estimate of the next token is

    P(w | h) = (c(h, w) + k) / (c(h) + k V)

where ``h`` is the previous ``n - 1`` tokens, ``c(h)`` counts how often ``h`` occurs as
a context (i.e. followed by some token) and ``V`` is the vocabulary size. Perplexity on
held-out tokens is ``exp`` of the mean negative log-probability of every token that has
a full context (the first ``n - 1`` tokens are only context).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

__all__ = ["NGramModel", "bigram_perplexity"]


class NGramModel:
    """An add-k smoothed n-gram model over integer token ids ``0 .. vocab_size - 1``."""

    def __init__(self, n: int, vocab_size: int, k: float = 1.0) -> None:
        if n < 1 or vocab_size < 1 or k <= 0:
            raise ValueError("need n >= 1, vocab_size >= 1 and k > 0")
        self.n, self.vocab_size, self.k = n, vocab_size, k
        self.ngram_counts: Counter[tuple[int, ...]] = Counter()
        self.context_counts: Counter[tuple[int, ...]] = Counter()

    def fit(self, ids: Sequence[int]) -> "NGramModel":
        for end in range(self.n - 1, len(ids)):
            gram = tuple(ids[end - self.n + 1 : end + 1])
            self.ngram_counts[gram] += 1
            self.context_counts[gram[:-1]] += 1
        return self

    def prob(self, context: Sequence[int], token: int) -> float:
        if len(context) < self.n - 1:
            raise ValueError(
                f"a {self.n}-gram model needs {self.n - 1} context tokens, "
                f"got {len(context)}"
            )
        context = tuple(context)[len(context) - (self.n - 1) :] if self.n > 1 else ()
        numerator = self.ngram_counts[context + (token,)] + self.k
        return numerator / (self.context_counts[context] + self.k * self.vocab_size)

    def perplexity(self, ids: Sequence[int]) -> float:
        log_probs = [
            math.log(self.prob(ids[end - self.n + 1 : end], ids[end]))
            for end in range(self.n - 1, len(ids))
        ]
        if not log_probs:
            raise ValueError(f"need at least {self.n} tokens to measure perplexity")
        return math.exp(-sum(log_probs) / len(log_probs))


def bigram_perplexity(
    train_ids: Sequence[int], test_ids: Sequence[int], vocab_size: int, k: float = 1.0
) -> float:
    """Perplexity of an add-k bigram model fitted on ``train_ids``, measured on
    ``test_ids``."""
    pair_counts = Counter(zip(train_ids[:-1], train_ids[1:]))
    context_counts = Counter(train_ids[:-1])
    total = 0.0
    for previous, current in zip(test_ids[:-1], test_ids[1:]):
        probability = (pair_counts[(previous, current)] + k) / (
            context_counts[previous] + k * vocab_size
        )
        total -= math.log(probability)
    return math.exp(total / (len(test_ids) - 1))
