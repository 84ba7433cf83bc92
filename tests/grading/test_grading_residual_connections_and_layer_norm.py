"""The grading round trip of the section "Residual connections and layer
normalisation": the solution scores full marks, the blank student version 0, and a
classic mistake in one cell loses exactly that exercise's points (see
grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "residual_connections_and_layer_norm",
    wrong={
        "norm-layer-norm": (  # torch.var's default: the unbiased variance
            "class LayerNorm(nn.Module):\n"
            "    def __init__(self, dim, eps=1e-5):\n"
            "        super().__init__()\n"
            "        self.eps = eps\n"
            "        self.weight = nn.Parameter(torch.ones(dim))\n"
            "        self.bias = nn.Parameter(torch.zeros(dim))\n"
            "\n"
            "    def forward(self, x):\n"
            "        mean = x.mean(dim=-1, keepdim=True)\n"
            "        variance = x.var(dim=-1, keepdim=True)\n"
            "        return (x - mean) / torch.sqrt(variance + self.eps) * self.weight"
            " + self.bias\n"
        ),
        "norm-pre-ln-block": (  # post-LN wiring where pre-LN is asked
            "def pre_ln_block(x, self_attention, feed_forward, norm1, norm2):\n"
            "    x = norm1(x + self_attention(x))\n"
            "    return norm2(x + feed_forward(x))\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
