"""The grading round trip of the section "Position-wise feed-forward networks": the
solution scores full marks, the blank student version 0, and a classic mistake in one
cell loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "feed_forward_networks",
    wrong={
        "ffn-module": (  # the tanh approximation of GELU
            "class FeedForward(nn.Module):\n"
            "    def __init__(self, dim, hidden_dim, activation='relu', dropout=0.0):\n"
            "        super().__init__()\n"
            "        self.activation = activation\n"
            "        self.up = nn.Linear(dim, hidden_dim)\n"
            "        self.down = nn.Linear(hidden_dim, dim)\n"
            "        self.dropout = nn.Dropout(dropout)\n"
            "\n"
            "    def forward(self, x):\n"
            "        h = self.up(x)\n"
            "        if self.activation == 'relu':\n"
            "            h = F.relu(h)\n"
            "        else:\n"
            "            h = F.gelu(h, approximate='tanh')\n"
            "        return self.down(self.dropout(h))\n"
        ),
        "ffn-layer-parameters": (  # the attention parameters multiplied by the heads
            "def transformer_layer_parameters(dim, num_heads, hidden_dim, bias=True,\n"
            "                                 decoder=False):\n"
            "    b = 1 if bias else 0\n"
            "    attention = num_heads * (4 * dim * dim + 4 * dim * b)\n"
            "    ffn = 2 * dim * hidden_dim + (hidden_dim + dim) * b\n"
            "    norm = 2 * dim if bias else dim\n"
            "    if decoder:\n"
            "        return 2 * attention + ffn + 3 * norm\n"
            "    return attention + ffn + 2 * norm\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
