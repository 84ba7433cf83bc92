"""The grading round trip of the section "Gated units: LSTM and GRU": the solution
scores full marks, the blank student version 0, and a classic mistake in one cell
loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "gated_units",
    wrong={
        "gated-lstm-cell": (  # reads the gates in the order i, f, o, g
            "def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):\n"
            "    gates = x @ weight_ih.T + h @ weight_hh.T\n"
            "    if bias_ih is not None:\n"
            "        gates = gates + bias_ih + bias_hh\n"
            "    i, f, o, g = gates.chunk(4, dim=-1)\n"
            "    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)\n"
            "    c_new = f * c + i * torch.tanh(g)\n"
            "    return o * torch.tanh(c_new), c_new\n"
        ),
        "gated-gru-cell": (  # resets h before W_hn, as in the original paper
            "def gru_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh):\n"
            "    H = h.shape[-1]\n"
            "    a = x @ weight_ih.T\n"
            "    if bias_ih is not None:\n"
            "        a = a + bias_ih\n"
            "    b_hh = bias_hh if bias_hh is not None else torch.zeros(3 * H)\n"
            "    w_r, w_z, w_n = weight_hh.chunk(3)\n"
            "    b_r, b_z, b_n = b_hh.chunk(3)\n"
            "    a_r, a_z, a_n = a.chunk(3, dim=-1)\n"
            "    r = torch.sigmoid(a_r + h @ w_r.T + b_r)\n"
            "    z = torch.sigmoid(a_z + h @ w_z.T + b_z)\n"
            "    n = torch.tanh(a_n + (r * h) @ w_n.T + b_n)\n"
            "    return (1 - z) * n + z * h\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
