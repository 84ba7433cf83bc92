"""Checks for the exercises of the section "Gated units: LSTM and GRU".

``check_lstm_cell`` and ``check_gru_cell`` run the student's one-step cell function on
small inputs, compare it with the reference in :mod:`seqbook.models.gated_units` **and**
with PyTorch's ``nn.LSTMCell`` / ``nn.GRUCell`` holding the same weights, and, when it
differs, recognise the classic mistakes (gates read in the wrong order, a sigmoid where
a tanh belongs, the forget gate not multiplying the old cell state, the missing tanh in
``h = o * tanh(c)``, the old cell state where the new one belongs, a missing bias, the
reset gate applied before ``W_hn`` instead of after, ``z`` and ``1 - z`` swapped, ...)
and name them.

The student's function runs with PyTorch's LSTM/GRU functions and modules and the
book's reference disabled (``forbid_calls``): the exercise is to write the cell from
tensor primitives.

``hidden=False`` is the friendly visible check of the student version. ``hidden=True``
is what the hidden tests call: sizes and values are drawn at grading time from a fresh
random seed, inputs are ``float64``, and gradients with respect to every input and
parameter are compared as well.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import torch

from seqbook.checks import integrity
from seqbook.checks._harness import check
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    expect_close,
    expect_tensor,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.models import gated_units as _reference_module

__all__ = ["check_lstm_cell", "check_gru_cell"]

# Captured at import, before any student code can touch the modules.
_reference_lstm = _reference_module.lstm_cell
_reference_gru = _reference_module.gru_cell
_TorchLSTMCell = torch.nn.LSTMCell
_TorchGRUCell = torch.nn.GRUCell
_sigmoid = torch.sigmoid
_tanh = torch.tanh


_LSTM_BUILTINS = existing_paths(
    (
        "torch.nn.LSTMCell",
        "torch.nn.LSTM",
        "torch.lstm_cell",
        "torch.lstm",
        "torch._VF.lstm_cell",
        "seqbook.models.gated_units.lstm_cell",
        "seqbook.models.gated_units.LSTMCell",
    )
)
_GRU_BUILTINS = existing_paths(
    (
        "torch.nn.GRUCell",
        "torch.nn.GRU",
        "torch.gru_cell",
        "torch.gru",
        "torch._VF.gru_cell",
        "seqbook.models.gated_units.gru_cell",
        "seqbook.models.gated_units.GRUCell",
    )
)
_REASON = (
    "write the cell from tensor primitives (@, .T, chunk, torch.sigmoid, torch.tanh)."
)


_generator = grading_generator
_randint = random_int


def _same(actual: Any, expected: torch.Tensor) -> bool:
    return (
        isinstance(actual, torch.Tensor)
        and tuple(actual.shape) == tuple(expected.shape)
        and max_abs_error(actual, expected) < 1e-5
    )


# ------------------------------------------------------------------- test inputs


def _case(
    g: torch.Generator,
    batch: int | None,
    input_size: int,
    hidden_size: int,
    n_gates: int,
    bias: bool,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor | None]:
    """Random inputs, state and parameters; ``batch=None`` means unbatched."""
    lead = () if batch is None else (batch,)
    rows = n_gates * hidden_size

    def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=g, dtype=dtype)

    return {
        "x": randn(*lead, input_size),
        "h": randn(*lead, hidden_size, scale=0.7),
        "c": randn(*lead, hidden_size, scale=1.5),
        "weight_ih": randn(rows, input_size, scale=0.8),
        "weight_hh": randn(rows, hidden_size, scale=0.8),
        "bias_ih": randn(rows, scale=0.8) if bias else None,
        "bias_hh": randn(rows, scale=0.8) if bias else None,
    }


def _torch_cell(kind: str, case: dict[str, Any]):
    """PyTorch's own cell with the case's weights (computed outside any guard)."""
    weight_ih = case["weight_ih"]
    bias = case["bias_ih"] is not None
    hidden_size = case["weight_hh"].shape[1]
    cls = _TorchLSTMCell if kind == "lstm" else _TorchGRUCell
    cell = cls(weight_ih.shape[1], hidden_size, bias=bias, dtype=weight_ih.dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if case[name] is not None:
                getattr(cell, name).copy_(case[name])
    if kind == "lstm":
        return cell(case["x"], (case["h"], case["c"]))
    return cell(case["x"], case["h"])


def _describe_case(case: dict[str, Any]) -> str:
    x, hidden_size = case["x"], case["weight_hh"].shape[1]
    shape = (
        f"unbatched x of shape ({x.shape[0]},)"
        if x.dim() == 1
        else f"B={x.shape[0]}, I={x.shape[1]}"
    )
    bias = "" if case["bias_ih"] is not None else ", no biases (None)"
    dtype = (
        "" if x.dtype == torch.float32 else f", {str(x.dtype).replace('torch.', '')}"
    )
    return f"{shape}, H={hidden_size}{bias}{dtype}"


def _hint_for_crash(err: CheckFailure, case: dict[str, Any]) -> CheckFailure:
    text = str(err)
    if (
        "cannot be multiplied" in text
        or "size mismatch" in text
        or "must match" in text
    ):
        return CheckFailure(
            f"{text} -- hint: weight_ih has shape (n_gates*H, I), so a batch of inputs "
            "x of shape (B, I) is multiplied as x @ weight_ih.T (and h @ weight_hh.T)."
        )
    if case["x"].dim() == 1 and ("out of range" in text or "dimension" in text.lower()):
        return CheckFailure(
            f"{text} -- hint: unbatched inputs are 1-D; split the gates along the last "
            "axis (chunk(..., dim=-1)) so both shapes work."
        )
    if case["bias_ih"] is None and "NoneType" in text:
        return CheckFailure(
            f"{text} -- hint: a cell without biases gets bias_ih=None and "
            "bias_hh=None; add the biases only when they are not None."
        )
    return err


# ---------------------------------------------------------------- LSTM mistakes

_LSTM_GATES = "ifgo"
_GATE_NAMES = {
    "i": "input gate i",
    "f": "forget gate f",
    "g": "candidate g",
    "o": "output gate o",
    "r": "reset gate r",
    "z": "update gate z",
    "n": "candidate n",
}


def _activation(name: str, use_tanh: bool, value: torch.Tensor) -> torch.Tensor:
    return _tanh(value) if use_tanh else _sigmoid(value)


def _lstm_variant(
    case: dict[str, Any],
    order: str = "ifgo",
    tanh_gates: str = "g",
    cell: str = "f*c+i*g",
    output: str = "o*tanh(c_new)",
    biases: str = "both",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, c) as a mistaken LSTM computes them."""
    x, h, c = case["x"], case["h"], case["c"]
    pre = x @ case["weight_ih"].T + h @ case["weight_hh"].T
    if case["bias_ih"] is not None:
        if biases in ("both", "ih"):
            pre = pre + case["bias_ih"]
        if biases in ("both", "hh"):
            pre = pre + case["bias_hh"]
    chunks = dict(zip(order, pre.chunk(4, dim=-1)))
    gates = {
        name: _activation(name, name in tanh_gates, chunks[name]) for name in "ifgo"
    }
    i, f, g, o = (gates[name] for name in "ifgo")
    c_new = {
        "f*c+i*g": lambda: f * c + i * g,
        "c+i*g": lambda: c + i * g,
        "f+i*g": lambda: f + i * g,
        "f*c+g": lambda: f * c + g,
        "f*c+(1-f)*g": lambda: f * c + (1 - f) * g,
    }[cell]()
    h_new = {
        "o*tanh(c_new)": lambda: o * _tanh(c_new),
        "o*c_new": lambda: o * c_new,
        "o*tanh(c)": lambda: o * _tanh(c),
        "tanh(c_new)": lambda: _tanh(c_new),
        "tanh(o*c_new)": lambda: _tanh(o * c_new),
    }[output]()
    return h_new, c_new


def _lstm_mistakes(case: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    mistakes: list[tuple[str, dict[str, str]]] = []
    for order in itertools.permutations(_LSTM_GATES):
        order = "".join(order)
        if order != _LSTM_GATES:
            mistakes.append(
                (
                    "the gates are read from the wrong blocks of rows: PyTorch stacks "
                    "them in the order i, f, g, o (input, forget, candidate, output), "
                    f"and your answer uses the order {', '.join(order)}",
                    {"order": order},
                )
            )
    for gate in "ifo":
        mistakes.append(
            (
                f"the {_GATE_NAMES[gate]} uses tanh; gates use a sigmoid so their "
                "values lie between 0 (closed) and 1 (open)",
                {"tanh_gates": "g" + gate},
            )
        )
    mistakes += [
        (
            "the candidate g uses a sigmoid; it is the new content to write, "
            "g = tanh(...), with values between -1 and 1",
            {"tanh_gates": ""},
        ),
        (
            "tanh and sigmoid are swapped: i, f, o use a sigmoid and only g uses tanh",
            {"tanh_gates": "ifo"},
        ),
        (
            "the new cell state ignores the forget gate (c + i*g): it must be "
            "c_new = f * c + i * g",
            {"cell": "c+i*g"},
        ),
        (
            "the forget gate is added instead of multiplying the old cell state "
            "(f + i*g): it must be c_new = f * c + i * g",
            {"cell": "f+i*g"},
        ),
        (
            "the candidate is not multiplied by the input gate (f*c + g): it must be "
            "c_new = f * c + i * g",
            {"cell": "f*c+g"},
        ),
        (
            "the input gate is replaced by 1 - f (a coupled-gate variant): PyTorch's "
            "LSTM has a separate input gate, c_new = f * c + i * g",
            {"cell": "f*c+(1-f)*g"},
        ),
        (
            "the tanh is missing in the output: h_new = o * tanh(c_new), not o * c_new",
            {"output": "o*c_new"},
        ),
        (
            "h_new is computed from the old cell state c: it must use the new one, "
            "h_new = o * tanh(c_new)",
            {"output": "o*tanh(c)"},
        ),
        (
            "the output gate is missing: h_new = o * tanh(c_new)",
            {"output": "tanh(c_new)"},
        ),
        (
            "the output gate is applied inside the tanh: h_new = o * tanh(c_new), "
            "not tanh(o * c_new)",
            {"output": "tanh(o*c_new)"},
        ),
    ]
    if case["bias_ih"] is not None:
        mistakes += [
            (
                "the biases are missing: add bias_ih and bias_hh to the "
                "pre-activations",
                {"biases": "none"},
            ),
            (
                "bias_hh is missing: both bias_ih and bias_hh are added",
                {"biases": "ih"},
            ),
            (
                "bias_ih is missing: both bias_ih and bias_hh are added",
                {"biases": "hh"},
            ),
        ]
    return mistakes


# ----------------------------------------------------------------- GRU mistakes


def _gru_variant(
    case: dict[str, Any],
    order: str = "rzn",
    tanh_gates: str = "n",
    candidate: str = "r*(Whh+bhh)",
    update: str = "(1-z)*n+z*h",
    biases: str = "both",
) -> torch.Tensor:
    """h as a mistaken GRU computes it."""
    x, h = case["x"], case["h"]
    w_ih, w_hh, b_ih, b_hh = (
        case[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    if b_ih is None or biases == "none":
        b_ih = b_hh = None
    elif biases == "ih":
        b_hh = torch.zeros_like(b_hh)
    elif biases == "hh":
        b_ih = torch.zeros_like(b_ih)
    w_ih_blocks = dict(zip(order, w_ih.chunk(3, dim=0)))
    w_hh_blocks = dict(zip(order, w_hh.chunk(3, dim=0)))
    b_ih_blocks = dict(zip(order, b_ih.chunk(3))) if b_ih is not None else {}
    b_hh_blocks = dict(zip(order, b_hh.chunk(3))) if b_hh is not None else {}

    def part(weights, biases_, name, inputs):
        value = inputs @ weights[name].T
        return value + biases_[name] if biases_ else value

    r = _activation(
        "r",
        "r" in tanh_gates,
        part(w_ih_blocks, b_ih_blocks, "r", x) + part(w_hh_blocks, b_hh_blocks, "r", h),
    )
    z = _activation(
        "z",
        "z" in tanh_gates,
        part(w_ih_blocks, b_ih_blocks, "z", x) + part(w_hh_blocks, b_hh_blocks, "z", h),
    )
    x_n = part(w_ih_blocks, b_ih_blocks, "n", x)
    b_hn = b_hh_blocks["n"] if b_hh_blocks else 0.0
    pre_n = {
        "r*(Whh+bhh)": lambda: x_n + r * (h @ w_hh_blocks["n"].T + b_hn),
        "W(r*h)+bhh": lambda: x_n + (r * h) @ w_hh_blocks["n"].T + b_hn,
        "r*Whh+bhh": lambda: x_n + r * (h @ w_hh_blocks["n"].T) + b_hn,
        "r*(all)": lambda: r * (x_n + h @ w_hh_blocks["n"].T + b_hn),
        "no r": lambda: x_n + h @ w_hh_blocks["n"].T + b_hn,
    }[candidate]()
    n = _activation("n", "n" in tanh_gates, pre_n)
    return {
        "(1-z)*n+z*h": lambda: (1 - z) * n + z * h,
        "z*n+(1-z)*h": lambda: z * n + (1 - z) * h,
        "n+z*h": lambda: n + z * h,
        "(1-z)*n+h": lambda: (1 - z) * n + h,
    }[update]()


def _gru_mistakes(case: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    mistakes: list[tuple[str, dict[str, str]]] = []
    for order in itertools.permutations("rzn"):
        order = "".join(order)
        if order != "rzn":
            mistakes.append(
                (
                    "the gates are read from the wrong blocks of rows: PyTorch stacks "
                    "them in the order r, z, n (reset, update, candidate), and your "
                    f"answer uses the order {', '.join(order)}",
                    {"order": order},
                )
            )
    mistakes += [
        (
            "the reset gate multiplies h before W_hn (n = tanh(W_in x + b_in + "
            "W_hn (r * h) + b_hn), the form of the original GRU paper); PyTorch "
            "applies it after: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))",
            {"candidate": "W(r*h)+bhh"},
        ),
        (
            "b_hn is added outside the reset gate: PyTorch computes "
            "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), with b_hn inside",
            {"candidate": "r*Whh+bhh"},
        ),
        (
            "the reset gate multiplies the input part too: only the hidden part is "
            "reset, n = tanh(W_in x + b_in + r * (W_hn h + b_hn))",
            {"candidate": "r*(all)"},
        ),
        (
            "the reset gate is not used in the candidate: "
            "n = tanh(W_in x + b_in + r * (W_hn h + b_hn))",
            {"candidate": "no r"},
        ),
        (
            "z and 1 - z are swapped: PyTorch keeps the old state with weight z, "
            "h_new = (1 - z) * n + z * h",
            {"update": "z*n+(1-z)*h"},
        ),
        (
            "the candidate is not weighted by 1 - z: h_new = (1 - z) * n + z * h",
            {"update": "n+z*h"},
        ),
        (
            "the old state is not weighted by z: h_new = (1 - z) * n + z * h",
            {"update": "(1-z)*n+h"},
        ),
        (
            "the reset gate r uses tanh; gates use a sigmoid (values between 0 and 1)",
            {"tanh_gates": "nr"},
        ),
        (
            "the update gate z uses tanh; gates use a sigmoid (values between 0 and 1)",
            {"tanh_gates": "nz"},
        ),
        (
            "the candidate n uses a sigmoid; it is new content, n = tanh(...)",
            {"tanh_gates": ""},
        ),
        (
            "tanh and sigmoid are swapped: r and z use a sigmoid and only n uses tanh",
            {"tanh_gates": "rz"},
        ),
    ]
    if case["bias_ih"] is not None:
        mistakes += [
            (
                "the biases are missing: add bias_ih to the input part and bias_hh to "
                "the hidden part",
                {"biases": "none"},
            ),
            (
                "bias_hh is missing (for n it belongs inside the reset gate: "
                "r * (W_hn h + b_hn))",
                {"biases": "ih"},
            ),
            (
                "bias_ih is missing: both bias_ih and bias_hh are added",
                {"biases": "hh"},
            ),
        ]
    return mistakes


# ---------------------------------------------------------------------- running


_NAMES = ("x", "h", "c", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _arguments(kind: str, case: dict[str, Any]) -> list[str]:
    names = list(_NAMES)
    if kind == "gru":
        names.remove("c")
    return names


def _run_case(
    kind: str, fn: Callable[..., Any], case: dict[str, Any], check_gradients: bool
) -> None:
    label = _describe_case(case)
    what = f"{kind}_cell on {label}"
    names = _arguments(kind, case)
    inputs = {
        name: (
            None
            if case[name] is None
            else case[name].clone().requires_grad_(check_gradients)
        )
        for name in names
    }
    originals = {
        name: None if value is None else value.detach().clone()
        for name, value in inputs.items()
    }
    builtins = _LSTM_BUILTINS if kind == "lstm" else _GRU_BUILTINS
    try:
        with forbid_calls(*builtins, reason=_REASON):
            result = call_student(fn, *(inputs[name] for name in names), what=what)
    except CheckFailure as err:
        if type(err) is CheckFailure:
            raise _hint_for_crash(err, case) from err
        raise
    for name, before in originals.items():
        if before is not None and max_abs_error(before, inputs[name]) != 0:
            raise CheckFailure(f"{what} modified its argument `{name}` in place.")

    reference = _reference_lstm if kind == "lstm" else _reference_gru
    expected = reference(*(case[name] for name in names))
    builtin = _torch_cell(kind, case)
    if kind == "lstm":
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailure(
                f"{what} should return the pair (h_new, c_new), got "
                f"{'None' if result is None else type(result).__name__}."
            )
        h_new, c_new = result
        if (
            _same(h_new, expected[1])
            and _same(c_new, expected[0])
            and not _same(h_new, expected[0])
        ):
            raise CheckFailure(f"{what}: return (h_new, c_new), in that order.")
        outputs = {"h_new": h_new, "c_new": c_new}
        expected_outputs = {"h_new": expected[0], "c_new": expected[1]}
    else:
        if isinstance(result, (tuple, list)):
            raise CheckFailure(
                f"{what} should return the new state h_new (one tensor), "
                f"got a tuple of {len(result)} items."
            )
        outputs = {"h_new": result}
        expected_outputs = {"h_new": expected}
    for name, value in outputs.items():
        expect_tensor(
            value,
            f"{name} of {what}",
            shape=expected_outputs[name].shape,
            dtype=case["x"].dtype,
        )

    correct = all(_same(outputs[k], expected_outputs[k]) for k in outputs)
    if not correct:
        detached = {k: v.detach() for k, v in outputs.items()}
        if kind == "lstm":
            for message, options in _lstm_mistakes(case):
                h_wrong, c_wrong = _lstm_variant(case, **options)
                if _same(detached["h_new"], h_wrong) and _same(
                    detached["c_new"], c_wrong
                ):
                    raise CheckFailure(f"{what}: {message}.")
        else:
            for message, options in _gru_mistakes(case):
                if _same(detached["h_new"], _gru_variant(case, **options)):
                    raise CheckFailure(f"{what}: {message}.")
    for name, value in outputs.items():
        expect_close(value, expected_outputs[name], f"{name} of {what}")
    # The reference is PyTorch's cell too (tested), but say so in the verdict.
    builtin_outputs = builtin if kind == "lstm" else (builtin,)
    for (name, value), torch_value in zip(outputs.items(), builtin_outputs):
        expect_close(
            value,
            torch_value,
            f"{name} of {what} (compared with torch.nn."
            f"{'LSTMCell' if kind == 'lstm' else 'GRUCell'})",
        )

    if check_gradients:
        g = torch.Generator().manual_seed(1)
        upstream = {
            k: torch.randn(v.shape, generator=g, dtype=v.dtype)
            for k, v in expected_outputs.items()
        }
        leaves = [name for name in names if inputs[name] is not None]
        loss = sum((outputs[k] * upstream[k]).sum() for k in outputs)
        if not getattr(loss, "requires_grad", False):
            raise CheckFailure(
                f"{what}: the outputs are detached from the inputs, so no "
                "gradient flows back (avoid .detach(), .item(), numpy)."
            )
        grads = torch.autograd.grad(
            loss, [inputs[n] for n in leaves], allow_unused=True
        )
        ref_inputs = {n: case[n].clone().requires_grad_(True) for n in leaves}
        ref_out = reference(*(ref_inputs.get(n) for n in names))
        ref_out = ref_out if kind == "lstm" else (ref_out,)
        ref_loss = sum(
            (o * upstream[k]).sum() for o, k in zip(ref_out, expected_outputs)
        )
        ref_grads = torch.autograd.grad(ref_loss, [ref_inputs[n] for n in leaves])
        for name, grad, ref_grad in zip(leaves, grads, ref_grads):
            if grad is None:
                raise CheckFailure(
                    f"{what}: no gradient reaches `{name}`; it must take "
                    "part in the computation."
                )
            expect_close(
                grad, ref_grad, f"the gradient with respect to `{name}` in {what}"
            )


def _cases(kind: str, hidden: bool) -> list[tuple[dict[str, Any], bool]]:
    n_gates = 4 if kind == "lstm" else 3
    g = _generator(hidden)
    if not hidden:
        return [
            (_case(g, 3, 4, 5, n_gates, True, torch.float32), False),
            (_case(g, 2, 3, 2, n_gates, False, torch.float32), False),
            (_case(g, None, 4, 5, n_gates, True, torch.float32), False),
        ]
    cases = []
    for _ in range(2):
        # H >= 2: with one unit some mistakes equal each other (r*(W h) = W(r*h)).
        batch, size_in, size_h = (
            _randint(g, 1, 6),
            _randint(g, 1, 12),
            _randint(g, 2, 12),
        )
        cases.append(
            (_case(g, batch, size_in, size_h, n_gates, True, torch.float64), True)
        )
    cases.append(
        (
            _case(
                g,
                _randint(g, 2, 5),
                _randint(g, 2, 9),
                _randint(g, 2, 9),
                n_gates,
                False,
                torch.float64,
            ),
            True,
        )
    )
    cases.append(
        (
            _case(
                g,
                None,
                _randint(g, 2, 9),
                _randint(g, 2, 9),
                n_gates,
                True,
                torch.float32,
            ),
            False,
        )
    )
    cases.append(
        (
            _case(
                g,
                _randint(g, 20, 40),
                _randint(g, 16, 48),
                _randint(g, 16, 48),
                n_gates,
                True,
                torch.float32,
            ),
            False,
        )
    )
    return cases


def _check(kind: str, fn: Callable[..., Any], hidden: bool) -> str:
    cases = _cases(kind, hidden)
    for case, grads in cases:
        _run_case(kind, fn, case, check_gradients=grads)
        integrity.verify()
    module = "LSTMCell" if kind == "lstm" else "GRUCell"
    extra = ", gradients included" if hidden else ""
    return (
        f"{kind}_cell matches the reference and torch.nn.{module} on "
        f"{len(cases)} cases{extra}."
    )


@check
def check_lstm_cell(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh) -> (h_new, c_new)``.

    Run with ``torch.nn.LSTMCell``, ``torch.nn.LSTM``, ``torch.lstm_cell`` (and its
    private alias) and the book's ``seqbook.models.gated_units.lstm_cell``/``LSTMCell``
    disabled.
    """
    return _check("lstm", fn, hidden)


@check
def check_gru_cell(fn: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``fn(x, h, weight_ih, weight_hh, bias_ih, bias_hh) -> h_new``.

    Run with ``torch.nn.GRUCell``, ``torch.nn.GRU``, ``torch.gru_cell`` (and its
    private alias) and the book's ``seqbook.models.gated_units.gru_cell``/``GRUCell``
    disabled.
    """
    return _check("gru", fn, hidden)


# A submission that replaces a helper of this module (or the reference) is caught by
# the next check that runs.
integrity.protect_module("seqbook.models.gated_units")
integrity.protect_module(__name__)
