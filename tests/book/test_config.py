"""The book's configuration: table of contents, repository URL, notebook hygiene."""

from __future__ import annotations

import importlib.metadata
import re

import execute_book  # tools/ is on the test path
import nbformat
import pytest
import yaml
from conftest import REPO, chapter_notebooks, solution_notebooks

from seqbook.book.sections import PARTS, SECTIONS

CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
MAKEFILE = (REPO / "Makefile").read_text()
# Section notebook -> the short prefix of its nbgrader grade ids.
GRADE_ID_PREFIXES = {section.slug: section.prefix for section in SECTIONS}
PART_CAPTIONS = [
    "Part 1 — Sequence models",
    "Part 2 — Attention",
    "Part 3 — Feed-forward networks and the Transformer block",
    "Part 4 — Encoder–decoder",
    "Part 5 — Pretraining and fine-tuning",
]


def toc_files() -> list[str]:
    files = [TOC["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in TOC["parts"]:
        walk(part["chapters"])
    return files


def test_only_toc_files_are_built_and_solutions_never():
    assert CONFIG["only_build_toc_files"] is True
    assert not [f for f in toc_files() if f.startswith("solutions")]
    assert "solutions" in CONFIG["exclude_patterns"]


def test_parts_in_order_with_front_and_back_matter():
    captions = [part["caption"] for part in TOC["parts"]]
    assert [c for c in captions if c.startswith("Part")] == PART_CAPTIONS
    assert captions[0] == "Getting started" and captions[-1] == "Back matter"
    front = [e["file"] for e in TOC["parts"][0]["chapters"]]
    assert front == ["front/setup", "front/notation", "front/instructors"]
    back = [e["file"] for e in TOC["parts"][-1]["chapters"]]
    assert back == [
        "back/glossary",
        "back/references",
        "back/runtimes",
        "back/robustness",
    ]


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    for name in toc_files():
        assert (REPO / f"{name}.md").exists() or (REPO / f"{name}.ipynb").exists(), name
    listed = set(toc_files())
    for notebook in chapter_notebooks():
        assert str(notebook.relative_to(REPO).with_suffix("")) in listed, (
            f"{notebook} not in _toc.yml"
        )


def test_the_section_registry_is_the_table_of_contents():
    """seqbook.book.sections lists every section notebook, in the order of _toc.yml, and
    each section's one name names its notebooks and its check module."""
    sections = [
        name.removeprefix("chapters/")
        for name in toc_files()
        if name.startswith("chapters/")
    ]
    assert [section.notebook for section in SECTIONS] == sections, (
        "seqbook/book/sections.py and _toc.yml list different sections or orders"
    )
    assert [section.part for section in SECTIONS] == sorted(
        (s.part for s in SECTIONS), key=PARTS.index
    ), "a part's sections are not together"
    solutions = {
        str(p.relative_to(REPO / "solutions").with_suffix(""))
        for p in solution_notebooks()
    }
    assert solutions == set(sections), "solutions/ and seqbook.book.sections disagree"
    assert len({s.prefix for s in SECTIONS}) == len(SECTIONS), (
        "two sections share a prefix"
    )
    for section in SECTIONS:
        module = REPO / (section.check_module.replace(".", "/") + ".py")
        assert module.exists(), (
            f"{section.slug} has no check module {section.check_module}"
        )


def test_each_part_opens_with_its_overview_page():
    for part in TOC["parts"][1:-1]:
        assert part["chapters"][0]["file"].startswith("parts/"), part["caption"]


def test_every_build_executes_every_notebook_and_errors_fail_it():
    execute = CONFIG["execute"]
    # The build reads outputs from the cache that `make book` has just emptied and
    # refilled (tools/execute_book.py), so every notebook runs on every build.
    assert execute["execute_notebooks"] == "cache" and execute["raise_on_error"] is True
    assert execute["timeout"] >= 60
    recipe = re.search(r"^book:.*\n((?:\t.*\n)+)", MAKEFILE, re.MULTILINE).group(1)
    assert recipe.index("tools/execute_book.py") < recipe.index("jupyter-book build")
    assert "clear_cache()" in (REPO / "tools" / "execute_book.py").read_text()


def test_the_parallel_execution_runs_every_page_of_the_book():
    listed = set(execute_book.longest_first(execute_book.toc_notebooks()))
    assert listed == set(chapter_notebooks())


def test_colab_cells_install_seqbook_from_the_configured_repository():
    url = CONFIG["repository"]["url"].rstrip("/")
    branch = CONFIG["repository"]["branch"]
    assert (
        CONFIG["launch_buttons"]["colab_url"] and CONFIG["html"]["use_download_button"]
    )
    # Sections that need optional dependencies install an extra:
    # "seqbook[finetuning] @ ...".
    extras = set(importlib.metadata.metadata("seqbook").get_all("Provides-Extra") or [])
    expected = re.compile(
        r'"seqbook(\[(?P<extra>[a-z]+)\])? @ git\+' + re.escape(f"{url}@{branch}") + '"'
    )
    for notebook_path in solution_notebooks() + chapter_notebooks():
        notebook = nbformat.read(notebook_path, as_version=4)
        setup = [c.source for c in notebook.cells if "google.colab" in c.source]
        assert setup, f"{notebook_path} has no Colab set-up cell"
        found = expected.search(setup[0])
        assert found, f"{notebook_path}: the Colab cell must install {expected.pattern}"
        assert found["extra"] in extras | {None}, (
            f"{notebook_path}: unknown extra {found['extra']}"
        )


def test_no_other_repository_url_is_written_anywhere():
    url = CONFIG["repository"]["url"].rstrip("/")
    pattern = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
    texts = (
        list(REPO.glob("*.md"))
        + list(REPO.glob("front/*.md"))
        + list(REPO.glob("parts/*.md"))
        + list(REPO.glob("solutions/*/*.ipynb"))
        + [REPO / "pyproject.toml"]
    )
    for path in texts:
        for found in pattern.findall(path.read_text()):
            assert found.removesuffix(".git") == url, f"{path} names {found}, not {url}"


@pytest.mark.parametrize("notebook_path", solution_notebooks(), ids=lambda p: p.stem)
def test_solution_sources_are_clean(notebook_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    section = notebook_path.stem
    grade_ids = []
    for cell in notebook.cells:
        assert cell.get("outputs", []) == [], "store notebooks without outputs"
        assert cell.get("execution_count") is None
        assert "raises-exception" not in cell.metadata.get("tags", []), (
            "never tag solution cells raises-exception: nbval would not check them"
        )
        grading = cell.metadata.get("nbgrader")
        if grading:
            grade_ids.append(grading["grade_id"])
            if grading.get("grade") and cell.cell_type == "code":
                assert "### BEGIN HIDDEN TESTS" in cell.source, (
                    f"{grading['grade_id']} has no hidden tests"
                )
                assert grading["grade_id"].endswith("-tests")
    assert len(set(grade_ids)) == len(grade_ids), "duplicate grade ids"
    prefix = GRADE_ID_PREFIXES[section]
    assert all(g.startswith(prefix + "-") for g in grade_ids), grade_ids


@pytest.mark.parametrize("notebook_path", chapter_notebooks(), ids=lambda p: p.stem)
def test_student_versions_hide_solutions_and_tag_exercises(notebook_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    for cell in notebook.cells:
        for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME"):
            assert secret not in cell.source
        grading = cell.metadata.get("nbgrader", {})
        tagged = "raises-exception" in cell.metadata.get("tags", [])
        is_exercise = cell.cell_type == "code" and (
            grading.get("solution") or grading.get("grade")
        )
        assert tagged == bool(is_exercise), cell.source[:80]


@pytest.mark.parametrize("notebook_path", solution_notebooks(), ids=lambda p: p.stem)
def test_written_questions_have_mark_schemes_outside_the_release(notebook_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    written = [
        c.metadata["nbgrader"]["grade_id"]
        for c in notebook.cells
        if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("solution")
    ]
    marking = notebook_path.with_suffix(".marking.md")
    for grade_id in written:
        assert marking.exists(), (
            f"{marking.name} is missing: write the mark scheme there"
        )
        assert f"## `{grade_id}`" in marking.read_text(), (
            f"no mark scheme for {grade_id}"
        )
    release = REPO / "chapters" / notebook_path.relative_to(REPO / "solutions")
    assert not release.with_suffix(".marking.md").exists(), "a mark scheme was released"


# The book shows a notebook's output in a column 688 px wide (a 1280-px window, measured
# in headless Chromium). A figure W inches wide (100 dpi) is shrunk to it by 6.88 / W,
# and its 10-pt text with it: at 10 inches the text still reads as 7 pt, at 13 as 5 pt.
WIDEST_FIGURE_INCHES = 10
# Code lines longer than this scroll sideways in the book's code column
# (_static/book.css).
LONGEST_CODE_LINE = 88


@pytest.mark.parametrize("notebook_path", solution_notebooks(), ids=lambda p: p.stem)
def test_figures_and_code_fit_the_book_column(notebook_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for width in re.findall(r"figsize=\(\s*([0-9.]+)\s*,", cell.source):
            assert float(width) <= WIDEST_FIGURE_INCHES, (
                f"figsize width {width} in: the book shrinks it and its text (at most "
                f"{WIDEST_FIGURE_INCHES}); give the panels less room or stack them"
            )
        for line in cell.source.splitlines():
            # The Colab install line names the repository URL: it cannot be shortened.
            if not line.lstrip().startswith("%pip install"):
                assert len(line) <= LONGEST_CODE_LINE, f"{len(line)} characters: {line}"


def test_each_section_shows_its_measured_run_time():
    """The "Run time." paragraph near each section's top is generated from the
    benchmark's figures (tools/runtime_notes.py), so it cannot drift from
    back/runtimes.json."""
    import runtime_notes

    figures = runtime_notes.load_figures()
    assert not runtime_notes.stale_notebooks(figures), (
        "run `python tools/runtime_notes.py` (or `make benchmark`), "
        "then `make chapters`"
    )
    for section in map(runtime_notes.section_of, runtime_notes.solution_notebooks()):
        assert section in figures["sections"], f"{section} was never benchmarked"


def test_pages_are_published_from_main_only_after_the_tests_pass():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    pages = jobs["pages"]
    assert pages["needs"] == "cpu" and "refs/heads/main" in pages["if"]
    assert pages["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(
        step.get("uses", "").startswith("actions/deploy-pages")
        for step in pages["steps"]
    )
    cpu_steps = jobs["cpu"]["steps"]
    names = [step.get("name", "") for step in cpu_steps]
    upload = next(
        s
        for s in cpu_steps
        if s.get("uses", "").startswith("actions/upload-pages-artifact")
    )
    # The artifact is the public book (never the instructors' edition), built after
    # tests.
    assert upload["with"]["path"] == "_build/html"
    assert (
        names.index("Tests (CPU build of PyTorch)")
        < names.index("Book")
        < cpu_steps.index(upload)
    )
