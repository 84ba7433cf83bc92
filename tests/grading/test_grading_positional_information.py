"""The grading round trip of the section "Positional information": in a temporary
nbgrader course, the solution scores full marks, the unanswered student version 0, and
one buggy exercise loses exactly its points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "positional_information",
    wrong={
        "pos-sinusoidal": (  # sine and cosine swapped
            "def sinusoidal_positional_encoding(num_positions, dim):\n"
            "    positions = "
            "torch.arange(num_positions, dtype=torch.float32)[:, None]\n"
            "    even = torch.arange(0, dim, 2, dtype=torch.float32)\n"
            "    angles = positions / 10000.0 ** (even / dim)\n"
            "    encoding = torch.zeros(num_positions, dim)\n"
            "    encoding[:, 0::2] = torch.cos(angles)\n"
            "    encoding[:, 1::2] = torch.sin(angles[:, : dim // 2])\n"
            "    return encoding\n"
        ),
        "pos-shift": (  # the block transposed: a shift backwards
            "def shift_matrix(k, dim):\n"
            "    if dim % 2 != 0:\n"
            "        raise ValueError('dim must be even')\n"
            "    even = torch.arange(0, dim, 2, dtype=torch.float32)\n"
            "    angles = k / 10000.0 ** (even / dim)\n"
            "    matrix = torch.zeros(dim, dim)\n"
            "    matrix[0::2, 0::2] = torch.diag(torch.cos(angles))\n"
            "    matrix[1::2, 0::2] = torch.diag(-torch.sin(angles))\n"
            "    matrix[0::2, 1::2] = torch.diag(torch.sin(angles))\n"
            "    matrix[1::2, 1::2] = torch.diag(torch.cos(angles))\n"
            "    return matrix\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
