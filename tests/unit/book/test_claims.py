"""seqbook.book.claims: a claim fails with a sentence, and records itself when asked
to."""

import json

import pytest
import torch

from seqbook.book import claims
from seqbook.book.claims import ClaimError, expect, expect_all


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    for name in (
        "SEQBOOK_CLAIMS",
        "SEQBOOK_CLAIMS_MODE",
        "SEQBOOK_SEED",
        "SEQBOOK_NOTEBOOK",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "value, comparison, threshold, holds",
    [
        (0.98, ">", 0.97, True),
        (0.97, ">", 0.97, False),
        (0.97, ">=", 0.97, True),
        (0.2, "<", 0.5, True),
        (0.5, "<", 0.5, False),
        (0.5, "<=", 0.5, True),
        (0.9, "<=", 0.5, False),
        (0.1, ">=", 0.5, False),
    ],
)
def test_comparisons(value, comparison, threshold, holds):
    if holds:
        assert expect("the value is right", value, comparison, threshold) == value
    else:
        with pytest.raises(ClaimError):
            expect("the value is right", value, comparison, threshold)


def test_a_failed_claim_is_a_sentence_that_names_the_claim_and_the_values():
    with pytest.raises(ClaimError) as info:
        expect("two heads solve the task", 0.955, ">", 0.97)
    message = str(info.value)
    assert message.startswith("The text claims that two heads solve the task")
    assert "> 0.97" in message and "0.955" in message and "seed shift 0" in message
    assert isinstance(
        info.value, AssertionError
    )  # a bare `except AssertionError` sees it


def test_nan_never_holds():
    with pytest.raises(ClaimError):
        expect("the loss is small", float("nan"), "<", 1.0)
    with pytest.raises(ClaimError):
        expect("the loss is large", float("nan"), ">", 1.0)


def test_tensors_of_one_number_are_accepted_and_others_refused():
    assert expect("a tensor works", torch.tensor(0.5), "<", 1) == 0.5
    with pytest.raises(TypeError, match="one number.*shape \\(2,\\)"):
        expect("a vector", torch.tensor([0.5, 0.6]), "<", 1)
    with pytest.raises(TypeError, match="must be a number, got NoneType"):
        expect("nothing", None, "<", 1)
    with pytest.raises(TypeError, match="must be a number, got bool"):
        expect("a bool", True, "<", 1)
    with pytest.raises(ValueError, match="comparison must be one of"):
        expect("a typo", 1.0, "=>", 0.5)


def test_expect_all_reports_its_detail():
    assert expect_all("the ranking is ReLU, GELU, SwiGLU", True)
    with pytest.raises(ClaimError, match="true \\(ReLU 0.3, GELU 0.2\\)"):
        expect_all("ReLU is best", False, detail="ReLU 0.3, GELU 0.2")
    with pytest.raises(TypeError, match="true or false"):
        expect_all("a string", "yes")


def test_claims_are_recorded_with_the_run_when_asked(tmp_path, monkeypatch):
    record = tmp_path / "claims.jsonl"
    monkeypatch.setenv("SEQBOOK_CLAIMS", str(record))
    monkeypatch.setenv("SEQBOOK_SEED", "2")
    monkeypatch.setenv("SEQBOOK_NOTEBOOK", "multi_head_attention")
    expect("two heads solve the task", 0.99, ">", 0.97)
    with pytest.raises(ClaimError):
        expect("one head stays at chance", 0.7, "<", 0.6)
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [e["holds"] for e in entries] == [True, False]
    first = entries[0]
    assert (first["name"], first["value"], first["comparison"], first["threshold"]) == (
        "two heads solve the task",
        0.99,
        ">",
        0.97,
    )
    assert first["seed_shift"] == 2 and first["notebook"] == "multi_head_attention"
    assert first["threads"] == torch.get_num_threads()
    assert {"cpu_capability", "python", "torch", "cuda"} <= set(first)


def test_record_mode_collects_a_failure_without_stopping(tmp_path, monkeypatch, capsys):
    record = tmp_path / "claims.jsonl"
    monkeypatch.setenv("SEQBOOK_CLAIMS", str(record))
    monkeypatch.setenv("SEQBOOK_CLAIMS_MODE", "record")
    assert expect("one head stays at chance", 0.7, "<", 0.6) == 0.7
    assert "claim failed (recorded, not raised)" in capsys.readouterr().out
    assert json.loads(record.read_text())["holds"] is False


def test_nothing_is_written_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expect("quiet", 1.0, ">", 0.0)
    assert list(tmp_path.iterdir()) == []
    assert claims.COMPARISONS.keys() == {">", ">=", "<", "<="}
