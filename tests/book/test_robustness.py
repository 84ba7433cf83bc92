"""The robustness matrix (tools/robustness.py) and its generated page
back/robustness.md."""

import json
import re
from pathlib import Path

import pytest
import robustness

REPO = Path(__file__).resolve().parents[2]
LITERAL_CLAIM = re.compile(r"""expect(?:_all)?\(\s*(?<![fF])["']([^"'{}]+)["']""")


def _records() -> dict:
    return json.loads(robustness.RECORDS.read_text())


def test_the_sampled_plan_covers_every_seed_kernel_and_thread_count_per_notebook():
    sections = robustness.toc_sections()
    assert len(sections) == 19
    kernels = ["default", "avx2", "avx512"]
    runs = robustness.plan(sections, kernels, full=False)
    for section in sections:
        mine = [r for r in runs if r["section"] == section]
        assert len(mine) == 6
        assert {r["seed_shift"] for r in mine} == set(robustness.SEED_SHIFTS)
        assert {(r["kernel"], r["threads"]) for r in mine} == {
            (k, t) for k in kernels for t in robustness.THREADS
        }
    cells = {(r["seed_shift"], r["kernel"], r["threads"]) for r in runs}
    assert len(cells) == 3 * 3 * 2  # the book as a whole meets every configuration
    assert len(robustness.plan(sections, kernels, full=True)) == 19 * 18


def test_the_page_shows_margins_and_flags_failures():
    result = {
        "section": "attention/mha",
        "seed_shift": 0,
        "kernel": "default",
        "threads": 1,
        "seconds": 3.0,
        "errors": [],
        "claims": [
            {
                "name": "two heads solve it",
                "value": 0.99,
                "comparison": ">",
                "threshold": 0.97,
                "holds": True,
            },
            {
                "name": "one head stays near chance",
                "value": 0.55,
                "comparison": "<",
                "threshold": 0.6,
                "holds": True,
            },
        ],
    }
    worse = {
        **result,
        "seed_shift": 1,
        "claims": [
            {**result["claims"][0], "value": 0.96, "holds": False},
            {**result["claims"][1], "value": 0.58},
        ],
    }
    meta = {
        "cpu": "a CPU",
        "cores": 2,
        "native_kernel": "avx2",
        "python": "3.11",
        "torch": "2.13",
        "date": "2026-12-02",
        "seed_shifts": [0, 1, 2],
        "kernels": ["default", "avx2"],
        "threads": [1, 2],
        "plan": "sample",
        "wall_minutes": 1.0,
    }
    page = robustness.render({"meta": meta, "results": [result, worse]})
    assert (
        "| two heads solve it | > 0.97 | 0.96 | 0.99 | -0.01 (-1%) | 1/2 **failed** |"
        in page
    )
    assert (
        "| one head stays near chance | < 0.6 | 0.55 | 0.58 | 0.02 (3%) | 2/2 |" in page
    )
    assert "1 claims failed" in page
    page = robustness.render({"meta": meta, "results": [result]})
    assert "Every claim held in every run (2 checks)" in page


def test_the_page_is_generated_from_the_records():
    assert robustness.PAGE.read_text() == robustness.render(_records())


def test_every_claim_held_in_every_recorded_run_without_errors():
    results = _records()["results"]
    assert not [r for r in results if r["errors"]]
    failed = [
        (r["section"], c["name"], r["seed_shift"], r["kernel"], r["threads"])
        for r in results
        for c in r["claims"]
        if not c["holds"]
    ]
    assert not failed


def _literal_claims(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return set(LITERAL_CLAIM.findall(code))


@pytest.mark.parametrize("section", robustness.toc_sections())
def test_the_records_are_current_for_every_notebook(section):
    """Each claim written in a notebook was recorded, in a matrix covering that
    notebook."""
    records = _records()
    runs = [r for r in records["results"] if r["section"] == section]
    claims = _literal_claims(REPO / "solutions" / f"{section}.ipynb")
    if not claims:
        return
    assert {r["seed_shift"] for r in runs} == set(robustness.SEED_SHIFTS)
    assert {r["kernel"] for r in runs} == set(records["meta"]["kernels"])
    assert {r["threads"] for r in runs} == set(robustness.THREADS)
    for run in runs:
        recorded = [c["name"] for c in run["claims"]]
        # A long name may be split over two string literals: match its first part.
        missing = {c for c in claims if not any(r.startswith(c) for r in recorded)}
        assert not missing, (run["seed_shift"], run["kernel"], run["threads"], missing)


def test_each_section_lists_its_claims_ranges_from_the_records():
    """The "claims on other machines" cell is generated (tools/claim_notes.py)."""
    import claim_notes

    assert not claim_notes.stale_notebooks(), (
        "run `python tools/claim_notes.py`, then `make chapters`"
    )
