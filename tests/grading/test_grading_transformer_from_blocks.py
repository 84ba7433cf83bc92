"""The grading round trip of the section "A Transformer from blocks": the solution
scores full marks, the blank student version 0, and a classic mistake in one cell
loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "transformer_from_blocks",
    wrong={
        "tfm-causal-loss": (  # no shift: each position scored on its own token
            "def causal_lm_loss(logits, tokens, pad_id=None):\n"
            "    ignore = -100 if pad_id is None else pad_id\n"
            "    return F.cross_entropy(logits.reshape(-1, logits.size(-1)),\n"
            "                           tokens.reshape(-1), ignore_index=ignore)\n"
        ),
        "tfm-masked-pool": (  # divides by the padded length T
            "def masked_mean_pool(hidden, mask):\n"
            "    weights = mask.to(hidden.dtype).unsqueeze(-1)\n"
            "    return (hidden * weights).sum(dim=1) / hidden.shape[1]\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
