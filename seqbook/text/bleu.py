"""Corpus BLEU, the metric of the decoding and evaluation section.

:func:`corpus_bleu` follows the definition of Papineni et al. (2002) with the choices
sacrebleu makes by default, so the two agree (tested): n-grams up to 4, counts clipped
by the largest count in any one reference, the reference length closest to each
hypothesis (the shorter on a tie), one brevity penalty for the whole corpus, and the
"exp" smoothing of precisions whose match count is zero.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

# Re-exported so that the pre-1.0 path `seqbook.metrics` (an alias of this module, see
# seqbook/_moved.py) still offers everything it did.
from seqbook.text.metrics import exact_match as exact_match

__all__ = ["corpus_bleu", "ngram_counts", "MAX_ORDER"]

MAX_ORDER = 4


def ngram_counts(tokens: Sequence[str], order: int) -> Counter:
    """How often each n-gram of length ``order`` occurs in ``tokens``."""
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> float:
    """Corpus BLEU on a 0--100 scale.

    Args:
        hypotheses: one whitespace-tokenised string per segment.
        references: for each hypothesis, a non-empty list of reference strings (the
            number may differ from segment to segment).
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} reference lists"
        )
    matches = [0] * MAX_ORDER  # clipped n-gram matches, per order n = 1..4
    totals = [0] * MAX_ORDER  # n-grams in the hypotheses, per order
    hypothesis_length = reference_length = 0
    for hypothesis, segment_references in zip(hypotheses, references):
        if isinstance(segment_references, str) or not segment_references:
            raise ValueError(
                "each hypothesis needs a list of one or more reference strings"
            )
        tokens = hypothesis.split()
        reference_tokens = [reference.split() for reference in segment_references]
        hypothesis_length += len(tokens)
        # The reference length closest to the hypothesis's; the shorter on a tie.
        reference_length += min(
            (len(r) for r in reference_tokens), key=lambda r: (abs(r - len(tokens)), r)
        )
        for n in range(1, MAX_ORDER + 1):
            counts = ngram_counts(tokens, n)
            ceiling = Counter()  # the most times any single reference has each n-gram
            for one_reference in reference_tokens:
                ceiling |= ngram_counts(one_reference, n)
            matches[n - 1] += sum(min(c, ceiling[g]) for g, c in counts.items())
            totals[n - 1] += sum(counts.values())
    if sum(matches) == 0:
        return 0.0
    log_precision_sum = 0.0
    zeros = 0  # precisions that were 0 so far
    for n in range(MAX_ORDER):
        if totals[n] == 0:  # no n-grams of this order at all: BLEU is 0
            return 0.0
        if matches[n] == 0:  # "exp" smoothing: the k-th zero becomes 1 / (2^k total)
            zeros += 1
            log_precision_sum += math.log(1.0 / (2**zeros * totals[n]))
        else:
            log_precision_sum += math.log(matches[n] / totals[n])
    brevity = 1.0
    if hypothesis_length < reference_length:
        brevity = math.exp(1.0 - reference_length / hypothesis_length)
    return 100.0 * brevity * math.exp(log_precision_sum / MAX_ORDER)
