"""Exact match: the share of generated sequences equal to their reference.

A section's metric that later sections reuse lives here; BLEU, which the decoding and
evaluation section builds, has its own module (:mod:`seqbook.text.bleu`).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["exact_match"]


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of hypotheses equal to their reference after splitting on
    whitespace."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references"
        )
    if not hypotheses:
        raise ValueError("exact match of an empty corpus is undefined")
    hits = sum(h.split() == r.split() for h, r in zip(hypotheses, references))
    return 100.0 * hits / len(hypotheses)
