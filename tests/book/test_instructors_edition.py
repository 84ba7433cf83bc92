"""The instructors' edition shows solutions, hidden tests and mark schemes (collapsed,
labelled, under a banner); the public build never contains them."""

from __future__ import annotations

import check_public_build
import instructors_edition
import nbformat
import pytest
import yaml
from conftest import REPO, solution_notebooks


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    return instructors_edition.stage(
        tmp_path_factory.mktemp("instructors") / "source", execute=False
    )


def test_every_solution_and_test_cell_is_collapsed_under_a_label(staged):
    for source in solution_notebooks():
        staged_path = staged / "chapters" / source.parent.name / source.name
        cells = nbformat.read(staged_path, as_version=4).cells
        graded = 0
        for before, cell in zip(cells, cells[1:]):
            info = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and (info.get("solution") or info.get("grade")):
                graded += 1
                assert "hide-input" in cell.metadata.get("tags", []), (source, info)
                assert instructors_edition.LABEL in before.metadata.get("tags", [])
                assert (
                    info["grade_id"] in before.source
                    and "Instructors only" in before.source
                )
        assert graded >= 4, f"{source}: expected at least two exercises with tests"
        text = staged_path.read_text()
        assert "BEGIN HIDDEN TESTS" in text, f"{source}: the hidden tests must be shown"


def test_every_written_question_shows_its_mark_scheme(staged):
    for source in solution_notebooks():
        schemes = instructors_edition.marking_sections(
            source.with_suffix(".marking.md")
        )
        cells = nbformat.read(
            staged / "chapters" / source.parent.name / source.name, as_version=4
        ).cells
        for cell, after in zip(cells, cells[1:]):
            info = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "markdown" and info.get("grade"):
                scheme = schemes.get(info["grade_id"])
                assert scheme, f"{source}: no mark scheme for {info['grade_id']}"
                assert scheme in after.source and "{dropdown}" in after.source


def test_the_edition_is_marked_and_cannot_be_launched(staged):
    config = yaml.safe_load((staged / "_config.yml").read_text())
    assert config["html"]["announcement"] == instructors_edition.BANNER
    assert "instructors' edition" in config["title"]
    assert "launch_buttons" not in config and not config["html"]["use_download_button"]
    public = yaml.safe_load((REPO / "_config.yml").read_text())
    assert "announcement" not in public.get("html", {})


def test_public_build_check_finds_planted_leaks(tmp_path):
    (tmp_path / "index.html").write_text("<p>the book</p>")
    assert check_public_build.leaks(tmp_path) == []
    page = tmp_path / "chapters" / "page.html"
    page.parent.mkdir()
    page.write_text("<pre>### BEGIN HIDDEN TESTS\ncheck(f, hidden=True)</pre>")
    found = check_public_build.leaks(tmp_path)
    assert any("BEGIN HIDDEN TESTS" in f for f in found) and any(
        "hidden=True" in f for f in found
    )
    notebook = tmp_path / "_sources" / "chapters" / "part" / "x.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text('{"source": "### BEGIN SOLUTION"}')
    assert any("x.ipynb" in f for f in check_public_build.leaks(tmp_path))
    # Prose may explain the markers; only the banner is searched for there.
    guide = tmp_path / "_sources" / "front" / "instructors.md"
    guide.parent.mkdir(parents=True)
    guide.write_text("the block between `### BEGIN HIDDEN TESTS` and ...")
    assert not any("instructors.md" in f for f in check_public_build.leaks(tmp_path))
    guide.write_text(check_public_build.BANNER)
    assert any("instructors.md" in f for f in check_public_build.leaks(tmp_path))


def test_student_versions_carry_no_instructors_only_content():
    for path in sorted((REPO / "chapters").glob("*/*.ipynb")):
        text = path.read_text()
        for marker in check_public_build.FORBIDDEN:
            assert marker not in text, f"{path}: {marker!r}"
