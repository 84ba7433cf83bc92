"""The grading round trip of the section "Pretraining objectives": the solution scores
full marks, the blank student version 0, and a classic mistake in one cell loses
exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "pretraining_objectives",
    wrong={
        "pre-mask-tokens": (  # every selected token becomes <mask>: no 80/10/10
            "def mask_tokens(ids, mask_id, vocab_size, special_ids, probability=0.15,\n"
            "                generator=None):\n"
            "    special = torch.isin(ids, torch.tensor(list(special_ids)))\n"
            "    draw = torch.rand(ids.shape, generator=generator)\n"
            "    selected = ~special & (draw < probability)\n"
            "    labels = torch.where(selected, ids, torch.full_like(ids, -100))\n"
            "    return ids.masked_fill(selected, mask_id), labels\n"
        ),
        "pre-causal-shift": (  # padding labels not replaced by -100
            "def causal_lm_inputs_and_labels(ids, pad_id):\n"
            "    return ids[:, :-1].clone(), ids[:, 1:].clone()\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
