"""Hostile and broken submissions, autograded for real (grading/execution.py at work).

Each submission answers the pilot section ("Scaled dot-product attention": causal mask
2 points, padding mask 2, attention 5) and misbehaves in one way. Each test checks the
scores nbgrader records -- no unearned points, and only what the misbehaviour touches is
lost -- and the message a reader of the autograded notebook (or of the feedback) sees.

The limits are lowered for speed: 20 s per cell instead of 120, 2 GiB of address space
for the kernel instead of 8 (importing torch and seqbook takes about 0.7 GB of it), and
0.2 MB of output per cell instead of 2.
"""

from __future__ import annotations

import ast
import re
import time

import nbformat
import pytest
from conftest import REPO
from grading_harness import Section, autograde, cell_with_id, course_fixture
from test_grading_scaled_dot_product_attention import SECTION

from grading.execution import INTEGRITY_MARKER, NOT_RUN, OUTPUT_LIMIT_NOTICE

CELL_TIMEOUT = 20
OUTPUT_LIMIT = 200_000
course = course_fixture(
    SECTION,
    GuardedExecute={
        "timeout": CELL_TIMEOUT,
        "memory_limit_mb": 2048,
        "max_output_chars": OUTPUT_LIMIT,
    },
)


@pytest.fixture(scope="module", autouse=True)
def kernels_on_the_cpu():
    """These submissions are graded on the CPU, even on the GPU runner: CUDA cannot
    start under a 2 GiB address-space limit, and nothing here is about the device."""
    import os

    saved = {
        name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "REQUIRE_GPU")
    }
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.pop("REQUIRE_GPU", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


MASKS = ("sdpa-causal-mask-tests", "sdpa-padding-mask-tests")
ATTENTION = "sdpa-attention-tests"


def answered(section: Section = SECTION, **replacements: str) -> nbformat.NotebookNode:
    """The correct answers, with the answer cells named in ``replacements`` replaced."""
    notebook = section.answered()
    for grade_id, code in replacements.items():
        cell_with_id(notebook, grade_id.replace("_", "-")).source = code
    return notebook


def graded_notebook(course, student: str) -> nbformat.NotebookNode:
    path = (
        course.root
        / "autograded"
        / student
        / SECTION.assignment
        / f"{SECTION.notebook}.ipynb"
    )
    return nbformat.read(path, as_version=4)


def errors_of(notebook: nbformat.NotebookNode, grade_id: str) -> list[str]:
    """``ename: evalue`` of every error output of one cell."""
    return [
        f"{output.ename}: {output.evalue}"
        for output in cell_with_id(notebook, grade_id).outputs
        if output.output_type == "error"
    ]


def outputs_of(notebook: nbformat.NotebookNode, grade_id: str) -> str:
    """Every output of one cell, as JSON text."""
    return nbformat.writes(
        nbformat.v4.new_notebook(cells=[cell_with_id(notebook, grade_id)])
    )


# -- the control -----------------------------------------------------------------------


def test_correct_answers_score_full_marks_under_the_limits(course):
    assert (
        autograde(SECTION, course, "control", answered()) == SECTION.full_marks_except()
    )


# -- time ------------------------------------------------------------------------------


def test_an_infinite_loop_costs_only_its_exercise(course):
    loop = SECTION.solution_code("sdpa-attention").replace(
        "    d_k = query.size(-1)",
        "    while True:\n        pass\n    d_k = query.size(-1)",
    )
    assert "while True" in loop
    started = time.monotonic()
    scores = autograde(SECTION, course, "loop", answered(sdpa_attention=loop))
    assert scores == SECTION.full_marks_except(ATTENTION)
    assert time.monotonic() - started < 6 * CELL_TIMEOUT
    assert any(
        "CellTimeoutError" in error
        for error in errors_of(graded_notebook(course, "loop"), ATTENTION)
    )


UNSTOPPABLE = """
import time

def padding_mask(lengths, max_len):
    while True:  # swallows the interrupt the grader sends after the time limit
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
"""


def test_a_loop_that_ignores_the_interrupt_is_stopped(course):
    started = time.monotonic()
    scores = autograde(
        SECTION, course, "unstoppable", answered(sdpa_padding_mask=UNSTOPPABLE)
    )
    # The kernel had to be stopped: the exercise after it could not run either.
    assert scores == SECTION.full_marks_except("sdpa-padding-mask-tests", ATTENTION)
    # Without the stop, every later cell would wait out its own timeout behind the loop.
    assert time.monotonic() - started < 6 * CELL_TIMEOUT
    graded = graded_notebook(course, "unstoppable")
    assert any(
        NOT_RUN in error and "did not stop" in error
        for error in errors_of(graded, "sdpa-padding-mask-tests")
    )
    assert any(NOT_RUN in error for error in errors_of(graded, ATTENTION))


# -- the kernel ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how", ["os._exit(3)", "os.kill(os.getpid(), signal.SIGKILL)", "exit()"]
)
def test_a_kernel_that_exits_keeps_the_scores_before_it(course, how):
    answer = f"import os, signal\n\ndef padding_mask(lengths, max_len):\n    {how}\n"
    student = "exit-" + how.split("(")[0].replace(".", "-")
    scores = autograde(SECTION, course, student, answered(sdpa_padding_mask=answer))
    graded = nbformat.writes(graded_notebook(course, student))
    assert "The kernel stopped while this cell ran" in graded
    if how == "exit()":
        # exit() does not raise: the check sees None and fails, and the kernel shuts
        # itself down a little later, after one or a few more cells. The correct
        # attention answer may or may not have been graded by then -- never more than
        # its due.
        assert (
            scores["sdpa-causal-mask-tests"] == 2
            and scores["sdpa-padding-mask-tests"] == 0
        )
        assert scores[ATTENTION] in (0, 5)
        assert NOT_RUN in graded
    else:
        assert scores == SECTION.full_marks_except("sdpa-padding-mask-tests", ATTENTION)
        assert any(
            NOT_RUN in error
            for error in errors_of(graded_notebook(course, student), ATTENTION)
        )


MEMORY_BOMB = """
def causal_mask(size):
    hoard = []
    while True:  # 64 MiB at a time, forever
        hoard.append(bytearray(64 * 2**20))
"""


def test_a_memory_bomb_fails_its_own_cell_only(course):
    scores = autograde(SECTION, course, "bomb", answered(sdpa_causal_mask=MEMORY_BOMB))
    assert scores == SECTION.full_marks_except("sdpa-causal-mask-tests")
    assert any(
        "MemoryError" in error
        for error in errors_of(
            graded_notebook(course, "bomb"), "sdpa-causal-mask-tests"
        )
    )


# -- output ----------------------------------------------------------------------------


def test_huge_outputs_are_cut_while_they_arrive(course):
    flood = (
        "import sys\n"
        "from IPython.display import HTML, display\n"
        "display(HTML('<b>' + 'z' * 300_000 + '</b>'))  # rich output over the limit\n"
        "print('x' * 20_000_000)            # one enormous line\n"
        "for i in range(300_000):            # and very many short ones\n"
        "    print(i)\n"
        "sys.stderr.write('y' * 5_000_000)\n"
    )
    notebook = answered(
        sdpa_causal_mask=flood + SECTION.solution_code("sdpa-causal-mask")
    )
    assert autograde(SECTION, course, "flood", notebook) == SECTION.full_marks_except()
    path = (
        course.root
        / "autograded"
        / "flood"
        / SECTION.assignment
        / f"{SECTION.notebook}.ipynb"
    )
    assert path.stat().st_size < 2_000_000
    assert OUTPUT_LIMIT_NOTICE in path.read_text()


FLOOD_THEN_TAMPER = """
import sys
import torch

def causal_mask(size):
    print("x" * 400_000)                      # fill this cell's output budget first
    sys.stderr.write("y" * 400_000)
    torch.allclose = lambda *args, **kwargs: True
    return torch.ones(size, size, dtype=torch.bool)
"""


def test_flooding_the_output_cannot_hide_tampering(course):
    scores = autograde(
        SECTION, course, "flood-tamper", answered(sdpa_causal_mask=FLOOD_THEN_TAMPER)
    )
    assert scores == SECTION.full_marks_except("sdpa-causal-mask-tests")
    assert INTEGRITY_MARKER in outputs_of(
        graded_notebook(course, "flood-tamper"), "sdpa-causal-mask-tests"
    )


# -- tampering with the checks themselves ----------------------------------------------

TAMPERING = {
    # The check the test cell calls is replaced by one that checks nothing.
    "no-op-check": (
        "from seqbook import checks\n"
        "checks.check_attention = lambda *args, **kwargs: None\n"
    ),
    "no-op-check-module": (
        "import seqbook.checks.scaled_dot_product_attention as checking\n"
        "checking.check_attention = lambda *args, **kwargs: None\n"
    ),
    "no-op-verify": (
        "import seqbook.checks.integrity as integrity\n"
        "integrity.verify = lambda: None\n"
        "import torch\n"
        "torch.allclose = lambda *args, **kwargs: True\n"
    ),
    "helper": (
        "import seqbook.checks.core as core\n"
        "core.expect_close = lambda *args, **kwargs: None\n"
    ),
    "settrace": ("import sys\nsys.settrace(lambda *args: None)\n"),
    "builtins": (
        "import builtins\n"
        "_real_isinstance = builtins.isinstance\n"
        "builtins.isinstance = lambda obj, kind: _real_isinstance(obj, kind)\n"
    ),
    "custom-exception-handler": (
        "get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)\n"
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_gains_nothing_and_is_flagged(course, name):
    # Tampering in the last answer cell; the attention answer is wrong, the masks right.
    wrong = SECTION.wrong["sdpa-attention"]
    notebook = answered(sdpa_attention=TAMPERING[name] + wrong)
    scores = autograde(SECTION, course, f"tamper-{name}", notebook)
    assert scores == SECTION.full_marks_except(ATTENTION)
    assert INTEGRITY_MARKER in outputs_of(
        graded_notebook(course, f"tamper-{name}"), ATTENTION
    )


# -- the built-in or the book's reference instead of an implementation -----------------

BORROWED = {
    # PyTorch's fused attention, through a name captured before any check runs.
    "built-in": (
        "import torch\n"
        "import torch.nn.functional as F\n"
        "_fused = F.scaled_dot_product_attention\n\n"
        "def scaled_dot_product_attention(query, key, value, mask=None):\n"
        "    scores = query @ key.transpose(-2, -1) / query.size(-1) ** 0.5\n"
        "    if mask is not None:\n"
        "        scores = scores.masked_fill(~mask, float('-inf'))\n"
        "    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)\n"
        "    return _fused(query, key, value, attn_mask=mask).nan_to_num(0.0), "
        "weights\n"
    ),
    # The book's own reference, under another name.
    "reference": (
        "from seqbook.models.attention "
        "import scaled_dot_product_attention as _answer\n\n"
        "def scaled_dot_product_attention(query, key, value, mask=None):\n"
        "    return _answer(query, key, value, mask)\n"
    ),
}


@pytest.mark.parametrize("name", sorted(BORROWED))
def test_borrowing_the_answer_through_an_alias_scores_nothing(course, name):
    scores = autograde(
        SECTION, course, f"borrow-{name}", answered(sdpa_attention=BORROWED[name])
    )
    assert scores == SECTION.full_marks_except(ATTENTION)
    assert "ForbiddenCall" in outputs_of(
        graded_notebook(course, f"borrow-{name}"), ATTENTION
    )


# -- cells moved or removed ------------------------------------------------------------


def test_tampering_before_the_set_up_cell_is_still_detected(course):
    # A new first cell patches torch before the set-up cell imports seqbook.checks, so
    # that the checks would record the patched functions as the originals; the grader's
    # preamble imports seqbook.checks before any cell runs.
    notebook = SECTION.answered(wrong=tuple(SECTION.answers.values()))
    notebook.cells.insert(
        0,
        nbformat.v4.new_code_cell(
            "import torch, numpy\n"
            "torch.allclose = lambda *args, **kwargs: True\n"
            "torch.equal = lambda *args, **kwargs: True\n"
            "numpy.allclose = lambda *args, **kwargs: True\n"
        ),
    )
    assert autograde(
        SECTION, course, "early-tamper", notebook
    ) == SECTION.full_marks_except(*SECTION.points)


def test_reordered_answer_cells_still_score(course):
    notebook = answered()
    cells = notebook.cells
    attention = cell_with_id(notebook, "sdpa-attention")
    cells.remove(attention)
    cells.insert(cells.index(cell_with_id(notebook, "sdpa-causal-mask")), attention)
    assert (
        autograde(SECTION, course, "reordered", notebook) == SECTION.full_marks_except()
    )


def test_test_cells_moved_above_their_answers_gain_nothing(course):
    notebook = answered()
    cells = notebook.cells
    for grade_id in SECTION.points:
        test_cell = cell_with_id(notebook, grade_id)
        cells.remove(test_cell)
        cells.insert(1, test_cell)  # right after the title, before every answer
    scores = autograde(SECTION, course, "tests-first", notebook)
    assert scores == SECTION.full_marks_except(*SECTION.points)


def test_a_deleted_answer_cell_costs_its_exercise(course):
    notebook = answered()
    notebook.cells.remove(cell_with_id(notebook, "sdpa-padding-mask"))
    assert autograde(
        SECTION, course, "no-answer", notebook
    ) == SECTION.full_marks_except("sdpa-padding-mask-tests")


# -- knowing the hidden tests ----------------------------------------------------------

GRADING_AWARE = """
import json, os, pathlib
from seqbook import checks

def scaled_dot_product_attention(query, key, value, mask=None):
    return value[..., : key.shape[-2], :], None

if os.environ.get("NBGRADER_EXECUTION"):
    # Being graded: read the notebook under grading, hidden tests included, and replace
    # every check function they call by one that accepts anything.
    source = "".join(
        "".join(cell["source"]) for path in pathlib.Path(".").glob("*.ipynb")
        for cell in json.loads(path.read_text())["cells"])
    assert "BEGIN HIDDEN TESTS" in source, "the attack could not read the hidden tests"
    for name in dir(checks):
        if name.startswith("check_") and f"checks.{name}(" in source:
            setattr(checks, name, lambda *args, **kwargs: None)
"""


def test_reading_the_hidden_tests_from_disk_gains_nothing(course):
    scores = autograde(
        SECTION, course, "reader", answered(sdpa_attention=GRADING_AWARE)
    )
    assert scores == SECTION.full_marks_except(ATTENTION)
    graded = graded_notebook(course, "reader")
    assert (
        errors_of(graded, "sdpa-attention") == []
    )  # the attack did read the hidden tests
    assert INTEGRITY_MARKER in outputs_of(graded, ATTENTION)


HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def hidden_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            blocks += [
                (f"{path.parent.name}/{path.stem}", block)
                for block in HIDDEN_BLOCK.findall(cell.source)
            ]
    return blocks


def hidden_check_calls(block: str) -> list[str]:
    """Names of the calls ``<module>.check_...(..., hidden=True)`` in a hidden block."""
    calls = []
    for node in ast.walk(ast.parse(block)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("check_")
            and any(
                keyword.arg == "hidden"
                and isinstance(keyword.value, ast.Constant)
                and keyword.value.value is True
                for keyword in node.keywords
            )
        ):
            calls.append(node.func.attr)
    return calls


def test_every_hidden_test_draws_its_cases_at_grading_time():
    # Knowing the hidden tests must not help: each block runs a check in hidden mode,
    # which draws fresh inputs (os.urandom seed) and computes the answers with the
    # reference -- there is no list of expected outputs to copy.
    blocks = hidden_blocks()
    assert len(blocks) >= 30
    for where, block in blocks:
        assert hidden_check_calls(block), (
            f"{where}: a hidden block without a hidden-mode check"
        )


def test_hidden_mode_seeds_cannot_be_predicted_from_the_notebook():
    from seqbook.checks.core import grading_generator

    assert (
        grading_generator(hidden=False).initial_seed() == 0
    )  # the visible check: fixed
    seeds = {grading_generator(hidden=True).initial_seed() for _ in range(5)}
    assert len(seeds) == 5  # hidden: a fresh seed from the operating system every time
