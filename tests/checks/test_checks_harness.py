"""The scaffolding the check modules share (seqbook.checks._harness) and the guard's
handling of its paths: a check is verified before and after the student's code and keeps
its name, docstring and signature; a renamed ``seqbook`` reference fails loudly at
import instead of silently leaving the guard."""

import inspect
import io
import subprocess
import sys
import types

import pytest
import torch

from seqbook import checks
from seqbook.checks import CheckFailure, ForbiddenCall, IntegrityError, integrity
from seqbook.checks import _harness as harness
from seqbook.checks.guard import GuardPathError, existing_paths, forbid_code


@pytest.fixture
def notebook_stderr(monkeypatch):
    """The integrity test's stderr, kept out of the test output."""
    stream = io.StringIO()
    monkeypatch.setattr(integrity, "_stderr", stream)
    return stream


def correct_causal_mask(size):
    return torch.ones(size, size, dtype=torch.bool).tril()


# ------------------------------------------------------------------- @check


def test_every_check_is_decorated_and_keeps_its_name_docstring_and_signature():
    names = [name for name in checks.__all__ if name.startswith("check_")]
    assert len(names) >= 30
    for name in names:
        function = getattr(checks, name)
        body = function.__wrapped__
        assert function.__name__ == name == body.__name__
        assert function.__doc__ == body.__doc__ and function.__doc__
        assert function.__module__ == body.__module__
        signature = inspect.signature(function)
        assert signature.parameters == inspect.signature(body).parameters
        assert signature.return_annotation == "None"  # the body returns its message
    hidden = inspect.signature(checks.check_attention).parameters["hidden"]
    assert hidden.default is False


def make_check(calls, also=None):
    @harness.check(also=also)
    def check_example(fn, hidden=False):
        """An example check."""
        calls.append("body")
        fn()
        return "the example is correct."

    return check_example


def test_a_check_prints_the_message_its_body_returns(capsys):
    calls = []
    assert make_check(calls)(lambda: None) is None
    assert calls == ["body"]
    assert capsys.readouterr().out == "✔ the example is correct.\n"


def test_tampering_before_a_check_is_caught_before_the_student_code_runs(
    notebook_stderr,
):
    calls = []
    original = torch.allclose
    torch.allclose = lambda *args, **kwargs: True
    with pytest.raises(IntegrityError, match="allclose` was replaced"):
        make_check(calls)(lambda: None)
    assert calls == [] and torch.allclose is original


def test_tampering_by_the_student_code_is_caught_before_the_pass_is_printed(
    capsys, notebook_stderr
):
    original = torch.equal

    def tamper():
        torch.equal = lambda *args, **kwargs: True

    with pytest.raises(IntegrityError, match="equal` was replaced"):
        make_check([])(tamper)
    assert torch.equal is original
    assert "✔" not in capsys.readouterr().out
    assert notebook_stderr.getvalue().startswith(integrity.MARKER)


def test_a_failing_check_fails_at_once_and_the_next_check_catches_tampering(
    notebook_stderr,
):
    original = torch.isclose

    def tamper_and_fail():
        torch.isclose = lambda *args, **kwargs: True
        raise CheckFailure("wrong answer")

    with pytest.raises(CheckFailure, match="wrong answer"):
        make_check([])(tamper_and_fail)
    assert torch.isclose is not original  # not verified after a failure, as before
    with pytest.raises(IntegrityError, match="isclose` was replaced"):
        checks.check_causal_mask(correct_causal_mask)
    assert torch.isclose is original


def test_also_runs_after_each_verification(capsys):
    events = []
    make_check(events, also=lambda: events.append("also"))(lambda: None)
    assert events == ["also", "body", "also"]


def test_replacing_a_harness_helper_is_detected(notebook_stderr):
    original = harness.close_tensors
    harness.close_tensors = lambda *args, **kwargs: True
    with pytest.raises(
        IntegrityError, match="seqbook.checks._harness.close_tensors` was replaced"
    ):
        checks.check_causal_mask(correct_causal_mask)
    assert harness.close_tensors is original


# ------------------------------------------------------------------- helpers


_alias_of_relu = torch.nn.functional.relu  # an alias the guard can be given by path


def test_guarded_call_names_aliases_by_their_public_paths():
    here = f"{__name__}._alias_of_relu"
    x = torch.randn(3)

    def answer(t):
        return _alias_of_relu(t)

    with pytest.raises(ForbiddenCall, match=r"`torch\.nn\.functional\.relu` is not"):
        harness.guarded_call(
            (here,),
            "no.",
            answer,
            x,
            what="f(x)",
            aliases={here: "torch.nn.functional.relu"},
        )
    with pytest.raises(ForbiddenCall, match="_alias_of_relu` is not allowed here: no."):
        harness.guarded_call((here,), "no.", answer, x, what="f(x)")
    result = harness.guarded_call((here,), "no.", torch.tanh, x, what="f(x)")
    assert result.shape == (3,)


def test_closeness_helpers():
    expected = torch.tensor([1.0, -2.0])
    assert harness.close_tensors(expected + 1e-6, expected)
    assert not harness.close_tensors(expected + 1e-3, expected)
    assert not harness.close_tensors(expected[:1], expected)
    assert not harness.close_tensors(torch.tensor([float("nan"), -2.0]), expected)
    assert not harness.close_tensors([1.0, -2.0], expected)
    assert harness.close_numbers(1.0 + 1e-8, 1.0, rtol=1e-7, atol=0.0)
    assert not harness.close_numbers(float("inf"), float("inf"), rtol=1.0, atol=1.0)
    assert harness.equal_tensors(expected, expected.clone())
    assert not harness.equal_tensors(expected, expected[None])


def test_restore_class_puts_methods_back_and_reports_them(monkeypatch):
    class Model:
        def forward(self):
            return "real"

    originals = {"forward": vars(Model)["forward"]}
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    harness.restore_class(Model, originals, "the model's ")  # unchanged: nothing to say
    Model.forward = lambda self: "fake"
    with pytest.raises(IntegrityError, match=r"\(the model's forward replaced\)"):
        harness.restore_class(Model, originals, "the model's ")
    assert Model().forward() == "real"
    assert sys.stderr.getvalue().startswith(integrity.MARKER)


# ------------------------------------------------------------------- the guard


def test_a_seqbook_guard_path_that_does_not_resolve_is_an_error_naming_it():
    for path in (
        "seqbook.models.attention.no_such_function",
        "seqbook.no_such_module.function",
        "seqbook.checks.guard.ForbiddenCall.no_such_method",
    ):
        with pytest.raises(GuardPathError, match=path.replace(".", r"\.")):
            existing_paths(("torch.nn.functional.relu", path))
    assert issubclass(GuardPathError, ImportError)


def test_a_missing_path_of_another_library_is_left_out():
    assert existing_paths(
        (
            "torch.nn.functional.relu",
            "torch.no_such_private_function",
            "seqbook.checks.guard.forbid_calls",
            "no_such_library.models.Pooling.forward",
            "torch.nn.LayerNorm.no_such_method",
        )
    ) == ("torch.nn.functional.relu", "seqbook.checks.guard.forbid_calls")


def test_a_renamed_reference_fails_the_import_of_its_check_module():
    # A fresh interpreter: the reference loses a function a check forbids, as a rename
    # would, before the checks are imported.
    code = (
        "import seqbook.models.soft_lookup as reference\n"
        "del reference.fit_width\n"
        "import seqbook.checks\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "GuardPathError" in result.stderr
    assert "fit_width' does not resolve" in result.stderr


def test_forbid_code_reports_a_use_however_it_is_reached():
    class Reference:
        def __init__(self):
            self.value = 1

    codes = (Reference.__init__.__code__,)
    message = "the reference is not allowed here."

    class Derived(Reference):
        pass

    with forbid_code(codes, message):
        object()  # nothing forbidden runs
    alias = Reference.__init__
    for use in (Reference, Derived, lambda: alias(object.__new__(Reference))):
        with pytest.raises(ForbiddenCall, match=message):
            with forbid_code(codes, message):
                use()
    previous = sys.getprofile()
    with pytest.raises(ForbiddenCall, match="switched off the grading guard"):
        with forbid_code(codes, message):
            sys.setprofile(None)
    assert sys.getprofile() is previous
    assert isinstance(codes[0], types.CodeType)
