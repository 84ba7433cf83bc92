"""The grading round trip of the section "Convolutions and time series": in a temporary
nbgrader course, the solution scores full marks, the unanswered student version 0, and
one buggy exercise loses exactly its points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "convolutions",
    wrong={
        "conv-causal-conv": (  # "same" padding: half the zeros on each side
            "class CausalConv1d(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, kernel_size, "
            "dilation=1):\n"
            "        super().__init__()\n"
            "        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size,\n"
            "                              dilation=dilation, padding='same')\n"
            "\n"
            "    def forward(self, x):\n"
            "        return self.conv(x)\n"
        ),
        "conv-receptive-field": (  # forgets the + 1
            "def receptive_field(kernel_sizes, dilations):\n"
            "    if len(kernel_sizes) != len(dilations):\n"
            "        raise ValueError('one kernel size and one dilation per layer')\n"
            "    return sum((k - 1) * d for k, d in zip(kernel_sizes, dilations))\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
