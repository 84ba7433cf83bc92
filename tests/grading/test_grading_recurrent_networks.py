"""The grading round trip of the section "Recurrent neural networks".

In a temporary course directory (nbgrader's own API, a real sqlite gradebook): the
solution scores full marks, the unanswered student version 0, and one buggy exercise
loses exactly its points; answers that reach for the forbidden built-ins score 0.
"""

from __future__ import annotations

from grading_harness import RoundTrip, Section, autograde, course_fixture

SECTION = Section.of(
    "recurrent_networks",
    wrong={
        "rnn-forward": (  # weight_hh not transposed
            "def rnn_forward(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):\n"
            "    h, states = h0, []\n"
            "    for t in range(inputs.size(1)):\n"
            "        h = torch.tanh(inputs[:, t] @ weight_ih.T + bias_ih "
            "+ h @ weight_hh\n"
            "                       + bias_hh)\n"
            "        states.append(h)\n"
            "    return torch.stack(states, dim=1), h\n"
        ),
        "rnn-clip": (  # clips each tensor separately
            "def clip_grad_norm(parameters, max_norm):\n"
            "    if isinstance(parameters, torch.Tensor):\n"
            "        parameters = [parameters]\n"
            "    grads = [p.grad for p in parameters if p.grad is not None]\n"
            "    for g in grads:\n"
            "        g.mul_(min(1.0, max_norm / (g.norm().item() + 1e-6)))\n"
            "    return torch.stack([g.norm() for g in grads]).norm()\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION


BUILTINS = {
    "rnn-forward": (
        "def rnn_forward(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):\n"
        "    module = nn.RNN(weight_ih.size(1), weight_ih.size(0), batch_first=True)\n"
        "    module.load_state_dict(dict(weight_ih_l0=weight_ih, "
        "weight_hh_l0=weight_hh,\n"
        "                                bias_ih_l0=bias_ih, bias_hh_l0=bias_hh))\n"
        "    outputs, h_n = module(inputs, h0[None])\n"
        "    return outputs, h_n[0]\n"
    ),
    "rnn-clip": (
        "def clip_grad_norm(parameters, max_norm):\n"
        "    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)\n"
    ),
}


def test_answers_using_the_builtins_score_zero(course):
    notebook = SECTION.answered()
    from grading_harness import cell_with_id

    for grade_id, code in BUILTINS.items():
        cell_with_id(notebook, grade_id).source = code
    assert autograde(
        SECTION, course, "builtins", notebook
    ) == SECTION.full_marks_except(*SECTION.points)
