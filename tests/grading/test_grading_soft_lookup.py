"""The grading round trip of the section "Attention as a soft dictionary lookup": the
solution scores full marks, the blank student version 0, and a classic mistake in one
cell loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "soft_lookup",
    wrong={
        "lookup-pooling": (  # the width used as a variance: w instead of w^2
            "def gaussian_attention_pooling(queries, keys, values, width, mask=None):\n"
            "    scores = -((queries[:, None] - keys[None, :]) ** 2) / (2 * width)\n"
            "    if mask is not None:\n"
            "        scores = scores.masked_fill(~mask, float('-inf'))\n"
            "    weights = torch.softmax(scores, dim=-1)\n"
            "    return weights @ values, weights\n"
        ),
        "lookup-training-step": (  # forgets zero_grad: gradients accumulate
            "def training_step(model, optimizer, queries, keys, values, targets,\n"
            "                  mask=None):\n"
            "    predictions = model(queries, keys, values, mask)\n"
            "    loss = F.mse_loss(predictions, targets)\n"
            "    loss.backward()\n"
            "    optimizer.step()\n"
            "    return loss.item()\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
