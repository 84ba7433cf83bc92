"""The grading round trip of the section "Sequence to sequence with attention": the
solution scores full marks, the blank student version 0, and a classic mistake in one
cell loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "seq2seq_attention",
    wrong={
        "s2s-attention": (  # the mask applied after the softmax
            "class AdditiveAttention(nn.Module):\n"
            "    def __init__(self, query_dim, key_dim, hidden_dim):\n"
            "        super().__init__()\n"
            "        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)\n"
            "        self.key_proj = nn.Linear(key_dim, hidden_dim)\n"
            "        self.score = "
            "nn.Parameter(torch.empty(hidden_dim).uniform_(-0.1, 0.1))\n"
            "\n"
            "    def forward(self, query, keys, mask):\n"
            "        q = self.query_proj(query)[:, None, :]\n"
            "        scores = torch.tanh(q + self.key_proj(keys)) @ self.score\n"
            "        weights = torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)\n"
            "        return (weights[:, :, None] * keys).sum(dim=1), weights\n"
        ),
        "s2s-decode-steps": (  # step t reads y_t, the answer
            "def decode_steps(step, state, targets, bos_id, teacher_forcing):\n"
            "    outputs = []\n"
            "    tokens = torch.full((targets.shape[0],), bos_id, dtype=torch.long)\n"
            "    for t in range(targets.shape[1]):\n"
            "        if teacher_forcing:\n"
            "            tokens = targets[:, t]\n"
            "        logits, state = step(tokens, state)\n"
            "        outputs.append(logits)\n"
            "        if not teacher_forcing:\n"
            "            tokens = logits.argmax(dim=-1)\n"
            "    return torch.stack(outputs, dim=1)\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
