"""The checks of the section "Positional information": correct answers pass (also
written differently, repeatedly on fresh hidden inputs), every classic mistake is
rejected with a message that names it, stubs and bad answers get clear messages, the
book's references are refused, and the checks leave the notebook's random state alone.

The wrong answers are written the way students write them (not taken from the check
module), so the tests also show that the diagnosis recognises real code."""

import math

import numpy as np
import pytest
import torch

from seqbook.checks import CheckFailure, ForbiddenCall
from seqbook.checks import positional_information as pos_checks
from seqbook.models import attention
from seqbook.models import positional_information as positional

# ------------------------------------------------------------ encodings: answers


def encoding(kind="correct"):
    """sinusoidal_positional_encoding written correctly, or with one classic mistake."""

    def sinusoidal_positional_encoding(num_positions, dim):
        start = 1 if kind == "from_one" else 0
        positions = torch.arange(start, start + num_positions, dtype=torch.float32)[
            :, None
        ]  # (T, 1)
        even = torch.arange(0, dim, 2, dtype=torch.float32)  # 2i
        base = 1000.0 if kind == "base_1000" else 10000.0
        exponent = {"i_over_dim": even / 2 / dim, "doubled": 2 * even / dim}.get(
            kind, even / dim
        )
        angles = positions / base**exponent  # (T, ceil(D/2))
        if kind == "multiply":
            angles = positions * base**exponent
        if kind == "halves":
            return torch.cat(
                (torch.sin(angles), torch.cos(angles[:, : dim // 2])), dim=1
            )
        if kind == "crash_on_odd":
            out = torch.zeros(num_positions, dim)
            out[:, 0::2] = torch.sin(angles)
            out[:, 1::2] = torch.cos(angles)  # shape mismatch when dim is odd
            return out
        if kind == "extra_column":
            out = torch.zeros(num_positions, 2 * angles.shape[1])
            out[:, 0::2], out[:, 1::2] = torch.sin(angles), torch.cos(angles)
            return out
        out = torch.zeros(
            num_positions,
            dim,
            dtype=torch.float64 if kind == "float64" else torch.float32,
        )
        first, second = (
            (torch.cos, torch.sin) if kind == "swapped" else (torch.sin, torch.cos)
        )
        out[:, 0::2] = first(angles)
        out[:, 1::2] = second(angles[:, : dim // 2])
        if kind == "column_index":  # every column its own frequency j/dim
            columns = torch.arange(dim, dtype=torch.float32)
            column_angles = positions / 10000.0 ** (columns / dim)
            out[:, 0::2] = torch.sin(column_angles[:, 0::2])
            out[:, 1::2] = torch.cos(column_angles[:, 1::2])
        return out

    return sinusoidal_positional_encoding


def exp_log_encoding(num_positions, dim):
    """Correct, the other common way: exp(-2i ln(10000) / dim)."""
    position = torch.arange(num_positions).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    pe = torch.zeros(num_positions, dim)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)[:, : dim // 2]
    return pe


def loop_encoding(num_positions, dim):
    """Correct, with Python loops and math (float64 values stored into float32)."""
    pe = torch.zeros(num_positions, dim)
    for t in range(num_positions):
        for j in range(dim):
            angle = t / 10000 ** (2 * (j // 2) / dim)
            pe[t, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe


def numpy_encoding(num_positions, dim):
    """Correct, computed in NumPy and converted."""
    t = np.arange(num_positions)[:, None]
    i = np.arange(dim)[None, :]
    angles = t / np.power(10000, (2 * (i // 2)) / dim)
    pe = np.where(i % 2 == 0, np.sin(angles), np.cos(angles))
    return torch.from_numpy(pe).float()


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "answer",
    [encoding("correct"), exp_log_encoding, loop_encoding, numpy_encoding],
    ids=["reference-like", "exp-log", "loops", "numpy"],
)
def test_correct_encodings_pass(answer, hidden, capsys):
    pos_checks.check_sinusoidal_positional_encoding(answer, hidden=hidden)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer",
    [encoding("correct"), exp_log_encoding, numpy_encoding],
    ids=["reference-like", "exp-log", "numpy"],
)
def test_correct_encodings_pass_repeatedly_on_fresh_hidden_sizes(answer):
    for _ in range(25):
        pos_checks.check_sinusoidal_positional_encoding(answer, hidden=True)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "kind, message",
    [
        ("swapped", "sine and cosine are swapped"),
        ("i_over_dim", "the exponent is i/dim"),
        ("column_index", "each column has its own frequency"),
        ("doubled", "the exponent is doubled"),
        ("multiply", "multiplied by 10000^(2i/dim) instead of divided"),
        ("halves", "concatenated as [sin | cos] halves"),
        ("from_one", "the positions start at 1"),
        ("base_1000", "looks like 1000, not 10000"),
        ("float64", "dtype torch.float64, expected torch.float32"),
        ("crash_on_odd", "the last column is a sine without its cosine partner"),
        ("extra_column", "the last column is a sine without its cosine partner"),
    ],
)
def test_encoding_mistakes_are_named(kind, message, hidden):
    for _ in range(10 if hidden else 1):  # fresh random sizes: never a wrong name
        with pytest.raises(CheckFailure) as failure:
            pos_checks.check_sinusoidal_positional_encoding(
                encoding(kind), hidden=hidden
            )
        assert message in str(failure.value)


def test_crash_on_odd_dim_reports_the_error_too():
    with pytest.raises(CheckFailure, match="raised RuntimeError"):
        pos_checks.check_sinusoidal_positional_encoding(encoding("crash_on_odd"))


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda t, d: None, "forget a `return`"),
        (lambda t, d: torch.zeros(t, d).tolist(), "should be a torch.Tensor"),
        (lambda t, d: torch.zeros(d, t) if t != d else torch.ones(t, d), "has shape"),
        (lambda t, d: torch.zeros(t, d, dtype=torch.long), "cannot hold sines"),
        (lambda t, d: torch.zeros(t, d), "differs from the expected value"),
        (None, "expected a function"),
    ],
)
def test_bad_encodings_get_clear_messages(answer, message):
    with pytest.raises(
        CheckFailure, match=message.replace("(", r"\(").replace("[", r"\[")
    ):
        pos_checks.check_sinusoidal_positional_encoding(answer)


def test_encoding_stub_is_explained():
    def stub(num_positions, dim):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="still raises NotImplementedError"):
        pos_checks.check_sinusoidal_positional_encoding(stub)


def test_the_reference_encoding_is_refused():
    with pytest.raises(ForbiddenCall):
        pos_checks.check_sinusoidal_positional_encoding(
            attention.sinusoidal_positional_encoding
        )
    alias = attention.sinusoidal_positional_encoding
    with pytest.raises(ForbiddenCall):
        pos_checks.check_sinusoidal_positional_encoding(lambda t, d: alias(t, d) + 0)


# --------------------------------------------------------------- shift matrix answers


def shift(kind="correct"):
    """shift_matrix written correctly, or with one classic mistake."""

    def shift_matrix(k, dim):
        if dim % 2 != 0 and kind != "no_value_error":
            raise ValueError("dim must be even")
        i = torch.arange(dim // 2, dtype=torch.float32)
        exponent = {"i_over_dim": i / dim, "doubled": 4 * i / dim}.get(
            kind, 2 * i / dim
        )
        omega = 10000.0 ** (exponent if kind == "multiply" else -exponent)
        angle = {"no_frequency": k * torch.ones_like(omega), "ignores_k": omega}.get(
            kind, k * omega
        )
        c, s = torch.cos(angle), torch.sin(angle)
        m = torch.zeros(
            dim, dim, dtype=torch.float64 if kind == "float64" else torch.float32
        )
        if kind == "halves":
            h = dim // 2
            m[:h, :h], m[h:, :h] = torch.diag(c), torch.diag(s)
            m[:h, h:], m[h:, h:] = torch.diag(-s), torch.diag(c)
            return m
        for p in range(dim // 2):  # one block per pair, written out
            block = torch.tensor([[c[p], -s[p]], [s[p], c[p]]])
            if kind in ("transposed", "column_vector"):
                block = block.T
            m[2 * p : 2 * p + 2, 2 * p : 2 * p + 2] = block
        return m

    return shift_matrix


def block_diag_shift(k, dim):
    """Correct, built with torch.block_diag."""
    if dim % 2:
        raise ValueError("odd")
    blocks = []
    for i in range(dim // 2):
        b = k * 10000 ** (-2 * i / dim)
        blocks.append(
            torch.tensor(
                [[math.cos(b), -math.sin(b)], [math.sin(b), math.cos(b)]],
                dtype=torch.float32,
            )
        )
    return torch.block_diag(*blocks)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "answer", [shift("correct"), block_diag_shift], ids=["loop", "block_diag"]
)
def test_correct_shift_matrices_pass(answer, hidden, capsys):
    pos_checks.check_shift_matrix(answer, hidden=hidden)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer", [shift("correct"), block_diag_shift], ids=["loop", "block_diag"]
)
def test_correct_shift_matrices_pass_repeatedly_on_fresh_hidden_shifts(answer):
    for _ in range(25):
        pos_checks.check_shift_matrix(answer, hidden=True)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "kind, message",
    [
        ("transposed", "it shifts backwards"),
        ("column_vector", "it shifts backwards"),
        ("i_over_dim", "the frequency of pair i is 1/10000^(i/dim)"),
        ("doubled", "the exponent is doubled"),
        ("multiply", "the frequencies are 10000^(2i/dim) instead of"),
        ("no_frequency", "every pair is rotated by the angle k"),
        ("ignores_k", "whatever k is"),
        ("halves", "[all sines | all cosines]"),
        ("float64", "dtype torch.float64, expected torch.float32"),
        ("no_value_error", "must raise a ValueError"),
    ],
)
def test_shift_mistakes_are_named(kind, message, hidden):
    for _ in range(10 if hidden else 1):
        with pytest.raises(CheckFailure) as failure:
            pos_checks.check_shift_matrix(shift(kind), hidden=hidden)
        assert message in str(failure.value)


def test_an_unnamed_wrong_matrix_is_reported_as_a_wrong_shift():
    def wrong(k, dim):
        if dim % 2:
            raise ValueError
        m = block_diag_shift(k, dim)
        m[0, -1] = 0.5  # a stray entry off the blocks
        return m

    with pytest.raises(CheckFailure, match="is not the shift by"):
        pos_checks.check_shift_matrix(wrong)


def test_odd_dim_crashing_with_another_error_is_explained():
    def crashes(k, dim):
        m = block_diag_shift(k, dim - dim % 2)
        return m.reshape(dim, dim)  # RuntimeError when dim is odd

    with pytest.raises(CheckFailure, match="raised RuntimeError"):
        pos_checks.check_shift_matrix(crashes)


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda k, d: None, "forget a `return`"),
        (lambda k, d: torch.eye(d + 1), "has shape"),
        (None, "expected a function"),
    ],
)
def test_bad_shift_matrices_get_clear_messages(answer, message):
    with pytest.raises(CheckFailure, match=message):
        pos_checks.check_shift_matrix(answer)


def test_shift_stub_is_explained():
    def stub(k, dim):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="still raises NotImplementedError"):
        pos_checks.check_shift_matrix(stub)


def test_the_reference_shift_matrix_is_refused():
    with pytest.raises(ForbiddenCall):
        pos_checks.check_shift_matrix(positional.shift_matrix)
    alias = positional.shift_matrix
    with pytest.raises(ForbiddenCall):
        pos_checks.check_shift_matrix(lambda k, d: alias(k, d).clone())


# ------------------------------------------------------------------------- general


def test_checks_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    pos_checks.check_sinusoidal_positional_encoding(exp_log_encoding, hidden=True)
    pos_checks.check_shift_matrix(block_diag_shift, hidden=True)
    assert torch.equal(torch.get_rng_state(), state)


def test_visible_checks_are_deterministic(capsys):
    for _ in range(2):
        pos_checks.check_sinusoidal_positional_encoding(exp_log_encoding)
        pos_checks.check_shift_matrix(block_diag_shift)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == lines[2:]


def test_replacing_the_reference_is_detected():
    from seqbook.checks import IntegrityError

    original = positional.shift_matrix
    positional.shift_matrix = lambda k, dim: torch.eye(dim)
    try:
        with pytest.raises(IntegrityError):
            pos_checks.check_shift_matrix(block_diag_shift)
    finally:
        positional.shift_matrix = original
