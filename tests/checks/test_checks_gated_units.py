"""The checks of the gated-cell exercises: they accept correct cells written in several
ways, reject each classic mistake with a message that names it, survive bad input, and
refuse PyTorch's cells and the book's reference."""

from __future__ import annotations

import pytest
import torch

from seqbook.checks import gated_units as gated_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall
from seqbook.models import gated_units as reference

check_lstm_cell = gated_checks.check_lstm_cell
check_gru_cell = gated_checks.check_gru_cell


# ------------------------------------------------------------ answers, right and wrong
# Written out independently of seqbook.models.gated_units (which is forbidden while
# answers run).


def lstm_answer(
    order="ifgo",
    tanh_gates="g",
    cell="f*c+i*g",
    output="o*tanh(c_new)",
    biases="both",
    returns="h,c",
    transpose=True,
    split_dim=-1,
):
    def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        if transpose:
            gates = x @ weight_ih.T + h @ weight_hh.T
        else:
            gates = x @ weight_ih + h @ weight_hh
        if bias_ih is not None and biases in ("both", "ih"):
            gates = gates + bias_ih
        if bias_hh is not None and biases in ("both", "hh"):
            gates = gates + bias_hh
        blocks = dict(zip(order, gates.chunk(4, dim=split_dim)))
        act = {
            k: (torch.tanh if k in tanh_gates else torch.sigmoid)(v)
            for k, v in blocks.items()
        }
        i, f, g, o = act["i"], act["f"], act["g"], act["o"]
        c_new = {
            "f*c+i*g": f * c + i * g,
            "c+i*g": c + i * g,
            "f+i*g": f + i * g,
            "f*c+g": f * c + g,
            "i*c+f*g": i * c + f * g,
        }[cell]
        h_new = {
            "o*tanh(c_new)": o * torch.tanh(c_new),
            "o*c_new": o * c_new,
            "o*tanh(c)": o * torch.tanh(c),
            "tanh(c_new)": torch.tanh(c_new),
        }[output]
        return (h_new, c_new) if returns == "h,c" else (c_new, h_new)

    return lstm_cell


def gru_answer(
    order="rzn", tanh_gates="n", candidate="after", update="(1-z)*n+z*h", biases="both"
):
    def gru_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
        H = h.shape[-1]
        rows = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(order)}

        def pre(name, inputs, weight, bias, use):
            value = inputs @ weight[rows[name]].T
            if bias is not None and biases in ("both", use):
                value = value + bias[rows[name]]
            return value

        def act(name, value):
            return torch.tanh(value) if name in tanh_gates else torch.sigmoid(value)

        r = act(
            "r",
            pre("r", x, weight_ih, bias_ih, "ih")
            + pre("r", h, weight_hh, bias_hh, "hh"),
        )
        z = act(
            "z",
            pre("z", x, weight_ih, bias_ih, "ih")
            + pre("z", h, weight_hh, bias_hh, "hh"),
        )
        x_n = pre("n", x, weight_ih, bias_ih, "ih")
        if candidate == "after":
            n = act("n", x_n + r * pre("n", h, weight_hh, bias_hh, "hh"))
        elif candidate == "before":  # Cho et al.'s original form
            n = act("n", x_n + pre("n", r * h, weight_hh, bias_hh, "hh"))
        elif candidate == "bias outside":
            b = bias_hh[rows["n"]] if bias_hh is not None else 0.0
            n = act("n", x_n + r * (h @ weight_hh[rows["n"]].T) + b)
        else:  # no reset gate
            n = act("n", x_n + pre("n", h, weight_hh, bias_hh, "hh"))
        if update == "(1-z)*n+z*h":
            return (1 - z) * n + z * h
        return z * n + (1 - z) * h

    return gru_cell


def lstm_with_einsum(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    gates = torch.einsum("...i,gi->...g", x, weight_ih) + torch.einsum(
        "...j,gj->...g", h, weight_hh
    )
    if bias_ih is not None:
        gates = gates + (bias_ih + bias_hh)
    H = h.shape[-1]
    i = 1 / (1 + torch.exp(-gates[..., :H]))
    f = 1 / (1 + torch.exp(-gates[..., H : 2 * H]))
    g = torch.tanh(gates[..., 2 * H : 3 * H])
    o = torch.sigmoid(gates[..., 3 * H :])
    c_new = torch.addcmul(f * c, i, g)
    return o * torch.tanh(c_new), c_new


def gru_with_matmul(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    a = torch.matmul(x, weight_ih.t())
    b = torch.matmul(h, weight_hh.t())
    if bias_ih is not None:
        a, b = a + bias_ih, b + bias_hh
    H = h.shape[-1]
    r = torch.sigmoid(a[..., :H] + b[..., :H])
    z = torch.sigmoid(a[..., H : 2 * H] + b[..., H : 2 * H])
    n = torch.tanh(a[..., 2 * H :] + r * b[..., 2 * H :])
    return torch.lerp(n, h, z)  # n + z * (h - n) = (1 - z) n + z h


# ----------------------------------------------------------------- correct answers


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check_lstm_cell(lstm_answer(), hidden=hidden)
    check_gru_cell(gru_answer(), hidden=hidden)
    assert capsys.readouterr().out.count("✔") == 2


def test_other_correct_implementations_pass_repeatedly():
    for _ in range(15):  # hidden inputs are fresh every time: no flaky verdicts
        check_lstm_cell(lstm_with_einsum, hidden=True)
        check_lstm_cell(lstm_answer(), hidden=True)
        check_gru_cell(gru_with_matmul, hidden=True)
        check_gru_cell(gru_answer(), hidden=True)


# ------------------------------------------------------------------ named mistakes

LSTM_MISTAKES = [
    (dict(order="ifog"), "order i, f, g, o .* your answer uses the order i, f, o, g"),
    (dict(order="figo"), "your answer uses the order f, i, g, o"),
    (dict(order="igfo"), "wrong blocks of rows"),
    (dict(tanh_gates=""), "candidate g uses a sigmoid"),
    (dict(tanh_gates="gf"), "forget gate f uses tanh"),
    (dict(tanh_gates="go"), "output gate o uses tanh"),
    (dict(tanh_gates="ifo"), "tanh and sigmoid are swapped"),
    (dict(cell="c+i*g"), "ignores the forget gate"),
    (dict(cell="f+i*g"), "forget gate is added"),
    (dict(cell="f*c+g"), "not multiplied by the input gate"),
    (dict(cell="i*c+f*g"), "your answer uses the order f, i, g, o"),  # same thing
    (dict(output="o*c_new"), "tanh is missing"),
    (dict(output="o*tanh(c)"), "old cell state"),
    (dict(output="tanh(c_new)"), "output gate is missing"),
    (dict(biases="none"), "biases are missing"),
    (dict(biases="ih"), "bias_hh is missing"),
    (dict(biases="hh"), "bias_ih is missing"),
    (dict(returns="c,h"), r"return \(h_new, c_new\), in that order"),
]


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "options, message", LSTM_MISTAKES, ids=[str(o) for o, _ in LSTM_MISTAKES]
)
def test_lstm_mistakes_are_named(options, message, hidden):
    with pytest.raises(CheckFailure, match=message):
        check_lstm_cell(lstm_answer(**options), hidden=hidden)


GRU_MISTAKES = [
    (dict(order="zrn"), "order r, z, n .* your answer uses the order z, r, n"),
    (dict(order="rnz"), "your answer uses the order r, n, z"),
    (dict(candidate="before"), "multiplies h before W_hn"),
    (dict(candidate="bias outside"), "b_hn is added outside the reset gate"),
    (dict(candidate="none"), "reset gate is not used"),
    (dict(update="z*n+(1-z)*h"), "z and 1 - z are swapped"),
    (dict(tanh_gates="nz"), "update gate z uses tanh"),
    (dict(tanh_gates="nr"), "reset gate r uses tanh"),
    (dict(tanh_gates=""), "candidate n uses a sigmoid"),
    (dict(biases="none"), "biases are missing"),
    (dict(biases="ih"), "bias_hh is missing"),
    (dict(biases="hh"), "bias_ih is missing"),
]


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "options, message", GRU_MISTAKES, ids=[str(o) for o, _ in GRU_MISTAKES]
)
def test_gru_mistakes_are_named(options, message, hidden):
    with pytest.raises(CheckFailure, match=message):
        check_gru_cell(gru_answer(**options), hidden=hidden)


def test_untransposed_weights_get_a_hint():
    with pytest.raises(CheckFailure, match=r"x @ weight_ih\.T"):
        check_lstm_cell(lstm_answer(transpose=False))


def test_batched_only_code_gets_a_hint_on_unbatched_input():
    with pytest.raises(CheckFailure, match="unbatched"):
        check_lstm_cell(lstm_answer(split_dim=1))


def test_none_biases_get_a_hint():
    def always_adds_biases(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        return lstm_answer()(x, h, c, weight_ih, weight_hh, bias_ih + 0, bias_hh)

    with pytest.raises(CheckFailure, match="bias_ih=None"):
        check_lstm_cell(always_adds_biases)


def test_hidden_checks_gradients_and_dtype():
    def detached(x, h, c, *params):
        h_new, c_new = lstm_answer()(
            x.detach(),
            h.detach(),
            c.detach(),
            *(p.detach() if p is not None else None for p in params),
        )
        return h_new, c_new

    with pytest.raises(CheckFailure, match="detached|no gradient"):
        check_lstm_cell(detached, hidden=True)

    def single_precision(x, h, *params):
        return gru_answer()(
            x.float(),
            h.float(),
            *(p.float() if p is not None else None for p in params),
        )

    with pytest.raises(
        CheckFailure, match="dtype torch.float32, expected torch.float64"
    ):
        check_gru_cell(single_precision, hidden=True)


def test_weight_without_gradient_is_reported():
    def frozen_hh(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        return lstm_answer()(x, h, c, weight_ih, weight_hh.detach(), bias_ih, bias_hh)

    with pytest.raises(CheckFailure, match="no gradient reaches `weight_hh`"):
        check_lstm_cell(frozen_hh, hidden=True)


def test_in_place_update_of_the_state_is_reported():
    def in_place(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        h_new, c_new = lstm_answer()(
            x, h, c.clone(), weight_ih, weight_hh, bias_ih, bias_hh
        )
        c.mul_(0.5)
        return h_new, c_new

    with pytest.raises(CheckFailure, match="modified its argument `c` in place"):
        check_lstm_cell(in_place)


def test_wrong_return_types_are_reported():
    with pytest.raises(CheckFailure, match=r"pair \(h_new, c_new\)"):
        check_lstm_cell(lambda *args: lstm_answer()(*args)[0])
    with pytest.raises(CheckFailure, match="one tensor"):
        check_gru_cell(lambda *args: (gru_answer()(*args), None))
    with pytest.raises(CheckFailure, match="None: did you forget a `return`"):
        check_gru_cell(lambda *args: None)


def test_stub_gets_a_friendly_message():
    def stub(*args):
        raise NotImplementedError()

    for check in (check_lstm_cell, check_gru_cell):
        with pytest.raises(CheckFailure, match="still raises NotImplementedError"):
            check(stub)


@pytest.mark.parametrize("not_a_function", [None, 3, "lstm"])
def test_non_callables_are_reported(not_a_function):
    with pytest.raises(CheckFailure, match="expected a function"):
        check_lstm_cell(not_a_function)


# ------------------------------------------------------------------ forbidden calls


def torch_lstm_cell_module(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    cell = torch.nn.LSTMCell(
        x.shape[-1], h.shape[-1], bias=bias_ih is not None, dtype=x.dtype
    )
    cell.weight_ih.data, cell.weight_hh.data = weight_ih, weight_hh
    if bias_ih is not None:
        cell.bias_ih.data, cell.bias_hh.data = bias_ih, bias_hh
    return cell(x, (h, c))


def test_pytorch_cells_are_forbidden():
    with pytest.raises(ForbiddenCall, match="torch.nn.LSTMCell"):
        check_lstm_cell(torch_lstm_cell_module)
    with pytest.raises(ForbiddenCall):
        check_lstm_cell(
            lambda x, h, c, wi, wh, bi, bh: torch.lstm_cell(x, (h, c), wi, wh, bi, bh)
        )
    with pytest.raises(ForbiddenCall):
        check_gru_cell(
            lambda x, h, wi, wh, bi, bh: torch.gru_cell(x, h, wi, wh, bi, bh)
        )


def test_pytorch_cells_are_forbidden_through_aliases():
    module_class = torch.nn.modules.rnn.LSTMCell  # captured before the guard starts
    function = torch.lstm_cell
    gru_class = torch.nn.modules.rnn.GRUCell

    def through_class(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        cell = module_class(x.shape[-1], h.shape[-1], dtype=x.dtype)
        return cell(x, (h, c))

    with pytest.raises(ForbiddenCall):
        check_lstm_cell(through_class)
    with pytest.raises(ForbiddenCall, match="possibly through another name"):
        check_lstm_cell(
            lambda x, h, c, wi, wh, bi, bh: function(x, (h, c), wi, wh, bi, bh)
        )
    with pytest.raises(ForbiddenCall):
        check_gru_cell(
            lambda x, h, *w: gru_class(x.shape[-1], h.shape[-1], dtype=x.dtype)(x, h)
        )


def test_full_sequence_modules_are_forbidden():
    def via_lstm(x, h, c, *weights):
        layer = torch.nn.LSTM(x.shape[-1], h.shape[-1])
        return layer(x[None], (h[None], c[None]))[1]

    with pytest.raises(ForbiddenCall):
        check_lstm_cell(via_lstm)


def test_reference_is_forbidden_directly_and_through_aliases():
    captured_lstm, captured_gru = reference.lstm_cell, reference.gru_cell
    with pytest.raises(ForbiddenCall, match="seqbook.models.gated_units.lstm_cell"):
        check_lstm_cell(reference.lstm_cell)
    with pytest.raises(ForbiddenCall, match="seqbook.models.gated_units.lstm_cell"):
        check_lstm_cell(lambda *args: captured_lstm(*args))
    with pytest.raises(ForbiddenCall, match="seqbook.models.gated_units.gru_cell"):
        check_gru_cell(lambda *args: captured_gru(*args))
    cell_class = reference.LSTMCell

    def through_reference_module(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
        return cell_class(x.shape[-1], h.shape[-1])(x, (h, c))

    with pytest.raises(ForbiddenCall):
        check_lstm_cell(through_reference_module)


def test_guard_restores_everything_afterwards():
    originals = (
        torch.nn.LSTMCell,
        torch.lstm_cell,
        reference.lstm_cell,
        reference.LSTMCell,
    )
    with pytest.raises(ForbiddenCall):
        check_lstm_cell(torch_lstm_cell_module)
    assert (
        torch.nn.LSTMCell,
        torch.lstm_cell,
        reference.lstm_cell,
        reference.LSTMCell,
    ) == originals
    torch.nn.LSTMCell(3, 4)(torch.randn(2, 3))  # still usable
