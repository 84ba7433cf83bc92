"""The grading round trip of the section "The modern decoder block": the solution
scores full marks, the blank student version 0, and a classic mistake in one cell
loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "modern_decoder_block",
    wrong={
        "modern-rms-norm": (  # the mean subtracted: layer norm without its bias
            "class RMSNorm(nn.Module):\n"
            "    def __init__(self, dim: int, eps: float = 1e-6):\n"
            "        super().__init__()\n"
            "        self.eps = eps\n"
            "        self.weight = nn.Parameter(torch.ones(dim))\n"
            "\n"
            "    def forward(self, x):\n"
            "        x = x - x.mean(dim=-1, keepdim=True)\n"
            "        mean_square = x.square().mean(dim=-1, keepdim=True)\n"
            "        return x * torch.rsqrt(mean_square + self.eps) * self.weight\n"
        ),
        "modern-apply-rotary": (  # the interleaved layout instead of the half split
            "rotate_half = reference.rotate_half\n"
            "\n"
            "\n"
            "def apply_rotary(x, cos, sin, positions=None):\n"
            "    if positions is None:\n"
            "        positions = torch.arange(x.size(-2))\n"
            "    half = x.size(-1) // 2\n"
            "    cos, sin = cos[positions][..., :half], sin[positions][..., :half]\n"
            "    if positions.dim() == 2:\n"
            "        cos, sin = cos[:, None], sin[:, None]\n"
            "    cos, sin = cos.to(x.dtype), sin.to(x.dtype)\n"
            "    even, odd = x[..., 0::2], x[..., 1::2]\n"
            "    turned = (even * cos - odd * sin, odd * cos + even * sin)\n"
            "    return torch.stack(turned, dim=-1).flatten(-2)\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
