"""The grading round trip of the section "Parameter-efficient fine-tuning and
prompting": the solution scores full marks, the blank student version 0, and a classic
mistake in one cell loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "parameter_efficient_fine_tuning",
    wrong={
        "lora-mean-pool": (  # divides the masked sum by the padded length T
            "def mean_pool(last_hidden_state, attention_mask):\n"
            "    weights = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)\n"
            "    total = (last_hidden_state * weights).sum(dim=1)\n"
            "    return total / last_hidden_state.shape[1]\n"
        ),
        "lora-lora-linear": (  # scales by alpha alone instead of alpha / r
            "class LoRALinear(nn.Module):\n"
            "    def __init__(self, base, r=8, alpha=16.0):\n"
            "        super().__init__()\n"
            "        self.base = base\n"
            "        self.r, self.alpha, self.scaling = r, alpha, alpha\n"
            "        self.merged = False\n"
            "        for p in self.base.parameters():\n"
            "            p.requires_grad_(False)\n"
            "        w = base.weight\n"
            "        self.lora_A = nn.Parameter(torch.randn(r, base.in_features,\n"
            "                                               dtype=w.dtype) / 4)\n"
            "        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r,\n"
            "                                               dtype=w.dtype))\n"
            "\n"
            "    def forward(self, x):\n"
            "        out = self.base(x)\n"
            "        if self.merged:\n"
            "            return out\n"
            "        return out + self.scaling * (x @ self.lora_A.T @ self.lora_B.T)\n"
            "\n"
            "    def merge(self):\n"
            "        if not self.merged:\n"
            "            with torch.no_grad():\n"
            "                self.base.weight += "
            "self.scaling * self.lora_B @ self.lora_A\n"
            "            self.merged = True\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
