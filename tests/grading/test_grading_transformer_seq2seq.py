"""The grading round trip of the section "The Transformer encoder-decoder": the solution
scores full marks, the blank student version 0, and a classic mistake in one cell
loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "transformer_seq2seq",
    wrong={
        "ed-masks": (  # the causal triangle transposed: position i sees the future
            "def seq2seq_masks(source, target, pad_id):\n"
            "    s = (source != pad_id)[:, None, None, :]\n"
            "    n = target.size(1)\n"
            "    upper = torch.ones(n, n, dtype=torch.bool).triu()\n"
            "    return s, (target != pad_id)[:, None, None, :] & upper, s\n"
        ),
        "ed-label-smoothing": (  # smoothing spread over the C - 1 wrong classes
            "def label_smoothed_cross_entropy(logits, targets, smoothing=0.0,\n"
            "                                 ignore_index=-100):\n"
            "    log_p = logits.log_softmax(-1)\n"
            "    keep = targets != ignore_index\n"
            "    safe = targets.masked_fill(~keep, 0)\n"
            "    nll = -log_p.gather(-1, safe[:, None]).squeeze(-1)\n"
            "    rest = (-log_p.sum(-1) - nll) / (logits.size(-1) - 1)\n"
            "    loss = (1 - smoothing) * nll + smoothing * rest\n"
            "    return loss[keep].mean()\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
