"""The grading round trip of the pilot section, plus hostile submissions.

In a temporary course directory (nbgrader's own API, a real sqlite gradebook):

* the solution notebook scores full marks on every autograded cell, the unanswered
  student version 0, and one buggy exercise loses exactly its points (harness);
* hostile submissions -- edited or deleted test cells, changed points, a redefined
  torch.allclose, an IPython input transformer that swallows exceptions -- gain nothing;
* a correct answer that emits a warning still gets full marks.
"""

from __future__ import annotations

from grading_harness import RoundTrip, Section, autograde, cell_with_id, course_fixture

SECTION = Section.of(
    "scaled_dot_product_attention",
    wrong={
        "sdpa-causal-mask": (
            "def causal_mask(size):\n"
            "    return torch.ones(size, size, dtype=torch.bool).triu()\n"
        ),
        "sdpa-padding-mask": (
            "def padding_mask(lengths, max_len):\n"
            "    return (torch.arange(max_len) <= lengths[:, None])[:, None, :]\n"
        ),
        "sdpa-attention": (  # forgets the 1/sqrt(d_k)
            "def scaled_dot_product_attention(query, key, value, mask=None):\n"
            "    scores = query @ key.transpose(-2, -1)\n"
            "    if mask is not None:\n"
            "        scores = scores.masked_fill(~mask, float('-inf'))\n"
            "    weights = torch.softmax(scores, dim=-1)\n"
            "    if mask is not None:\n"
            "        weights = weights.masked_fill(~mask, 0.0)\n"
            "    return weights @ value, weights\n"
        ),
    },
)
ALL_ANSWERS = tuple(SECTION.answers.values())

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION


SWALLOW_EXCEPTIONS = """
def _wrap_in_try(lines):
    return ["try:\\n"] + ["    " + line for line in lines] + \
["\\nexcept BaseException:\\n    pass\\n"]
get_ipython().input_transformers_post.append(_wrap_in_try)
"""

REDEFINE_COMPARISONS = """
import numpy, torch
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
numpy.allclose = lambda *args, **kwargs: True
"""


def test_edited_test_cell_is_restored(course):
    notebook = SECTION.answered(wrong=("sdpa-attention",))
    cell_with_id(notebook, "sdpa-attention-tests").source = "pass  # all good, trust me"
    assert autograde(SECTION, course, "edited", notebook) == SECTION.full_marks_except(
        "sdpa-attention-tests"
    )


def test_deleted_test_cell_is_restored(course):
    notebook = SECTION.answered(wrong=("sdpa-attention",))
    notebook.cells.remove(cell_with_id(notebook, "sdpa-attention-tests"))
    assert autograde(SECTION, course, "deleted", notebook) == SECTION.full_marks_except(
        "sdpa-attention-tests"
    )


def test_changed_points_are_reset(course):
    notebook = SECTION.answered(wrong=("sdpa-padding-mask",))
    for grade_id in SECTION.points:
        cell_with_id(notebook, grade_id).metadata["nbgrader"]["points"] = 100
    assert autograde(SECTION, course, "points", notebook) == SECTION.full_marks_except(
        "sdpa-padding-mask-tests"
    )


def test_redefined_comparisons_gain_nothing(course):
    notebook = SECTION.answered(wrong=ALL_ANSWERS, prefix=REDEFINE_COMPARISONS)
    assert autograde(
        SECTION, course, "allclose", notebook
    ) == SECTION.full_marks_except(*SECTION.points)


def test_exception_swallowing_input_transformer_gains_nothing(course):
    # Installed again in every answer cell, so every test cell would run wrapped.
    notebook = SECTION.answered(wrong=ALL_ANSWERS, prefix=SWALLOW_EXCEPTIONS)
    assert autograde(
        SECTION, course, "transformer", notebook
    ) == SECTION.full_marks_except(*SECTION.points)


def test_swallowing_transformer_with_correct_answers_is_flagged(course):
    # Even right answers are not credited when the grading environment was tampered
    # with.
    notebook = SECTION.answered(prefix=SWALLOW_EXCEPTIONS)
    assert autograde(
        SECTION, course, "transformer-right", notebook
    ) == SECTION.full_marks_except(*SECTION.points)


def test_a_warning_in_passing_code_still_scores(course):
    notebook = SECTION.answered()
    cell = cell_with_id(notebook, "sdpa-attention")
    cell.source = cell.source.replace(
        "    d_k = query.size(-1)",
        "    import warnings\n"
        "    warnings.warn('deprecated-looking warning', UserWarning)\n"
        "    d_k = query.size(-1)",
    )
    assert "warnings.warn" in cell.source
    assert (
        autograde(SECTION, course, "warning", notebook) == SECTION.full_marks_except()
    )
