"""The Chinese edition keeps step with the English one (tools/translation.py).

Every English message has a translation that is neither missing nor fuzzy, keeps the
English's code, formulas, link targets and numbers, and leaves no English prose; the
Chinese notebooks in zh_CN/chapters/ are what the catalogues make of chapters/ (same
code, same grading metadata); the served font has every Chinese character the book uses.
When one fails after you changed English text: `make translations`, translate what it
lists (CONTRIBUTING.md, "Changing English text"), `make chapters`, and `make font` when
it names missing characters.
"""

from __future__ import annotations

import re

import cjk_font
import nbformat
import pytest
import translation
from conftest import REPO

NOTEBOOK_PAGES = translation.notebook_pages()


def test_every_english_message_is_translated():
    problems = translation.check()
    assert not problems, (
        f"{len(problems)} messages of the Chinese edition need work "
        "(`make translations`, then translate them):\n  " + "\n  ".join(problems[:40])
    )


@pytest.mark.parametrize("name", translation.catalogue_names())
def test_catalogue_holds_only_current_english(name):
    english = {msgid for _, msgid in translation.english_messages(name)}
    stale = [
        m.id for m in translation.read_catalogue(name) if m.id and m.id not in english
    ]
    assert not stale, (
        f"{translation.catalogue_path(name).relative_to(REPO)} translates text the "
        f"English no longer has (run `make translations`): {stale[:3]}"
    )


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_chinese_notebook_is_generated_from_the_catalogue(page):
    committed = REPO / translation.LANGUAGE / f"{page}.ipynb"
    assert committed.is_file(), (
        f"{committed.relative_to(REPO)} is missing: make chapters"
    )
    assert (
        committed.read_text(encoding="utf-8")
        == nbformat.writes(translation.chinese_notebook(page)) + "\n"
    ), f"{committed.relative_to(REPO)} is out of date: run `make chapters`"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_chinese_notebook_grades_like_the_english(page):
    english = nbformat.read(REPO / f"{page}.ipynb", as_version=4)
    chinese = nbformat.read(REPO / translation.LANGUAGE / f"{page}.ipynb", as_version=4)
    assert chinese.metadata == english.metadata
    assert [c.id for c in chinese.cells] == [c.id for c in english.cells]
    translated = 0
    for mine, theirs in zip(chinese.cells, english.cells, strict=True):
        assert (mine.cell_type, mine.metadata) == (theirs.cell_type, theirs.metadata)
        if mine.cell_type == "code" or "nbgrader" in mine.metadata:
            assert mine == theirs, f"{page}: cell {mine.id} differs from the English"
        elif mine.source != theirs.source:
            translated += 1
            assert translation.CJK.search(mine.source), f"{page}: cell {mine.id}"
    assert translated == len(translation.translatable_cells(english))


def test_rendering_keeps_the_markdown():
    # Each unit replaced by itself gives the source back, up to line breaks inside
    # blocks: the split loses and invents nothing.
    def squeeze(text: str) -> str:
        return re.sub(r"\s+", " ", text).strip()

    for page in translation.pages():
        for location, text in translation.page_texts(page):
            identity = {}
            for unit in translation.units(text):
                msgid, _ = translation.hold_numbers(unit.text)
                identity[msgid] = msgid
            assert squeeze(translation.render(text, identity)) == squeeze(text), (
                location
            )


def test_the_split_into_messages():
    text = (
        "# Exercise 2: one step (3 points)\n\nTrain for 200 steps with `lr=1e-3`,\n"
        "as $w_2 = 0.5$ says.\n\n- first item\n  continued\n- GPT-2 on 2026-12-02\n\n"
        "```python\nx = 1\n```\n\n$$\na = 1\n$$\n\n| English | 中文 | definition |\n"
        "|---|---|---|\n| Token | 词元 | A unit of text. |\n\n```{note} Title here\n"
        ":class: warning\nInside the note.\n```\n"
    )
    found = [translation.hold_numbers(u.text) for u in translation.units(text)]
    assert found == [
        ("Exercise {#0}: one step ({#1} points)", ["2", "3"]),
        ("Train for {#0} steps with `lr=1e-3`, as $w_2 = 0.5$ says.", ["200"]),
        ("first item continued", []),
        ("GPT-2 on {#0}", ["2026-12-02"]),
        ("definition", []),
        ("A unit of text.", []),
        ("Title here", []),
        ("Inside the note.", []),
    ]
    chinese = {m: f"<{m}>" for m, _ in found}
    rendered = translation.render(text, chinese)
    assert "# <Exercise 2: one step (3 points)>\n" in rendered
    assert "```python\nx = 1\n```" in rendered and "$$\na = 1\n$$" in rendered
    assert "| Token | 词元 | <A unit of text.> |" in rendered
    assert (
        "```{note} <Title here>\n:class: warning\n<Inside the note.>\n```" in rendered
    )


@pytest.mark.parametrize(
    "msgstr, problem",
    [
        ("训练 {#0} 步，用 `lr=1e-3`，正如 $w = 1$。", "code, formulas"),
        ("训练若干步，用 `lr=1e-3`，正如 $w = 0.5$。", "numbers"),
        ("训练 {#0} 步，用 `lr=1e-4`，正如 $w = 0.5$。", "code, formulas"),
        ("Train for {#0} steps with `lr=1e-3` as $w = 0.5$ says.", "English prose"),
        ("Training, {#0}: `lr=1e-3`, $w = 0.5$.", "no Chinese"),
    ],
)
def test_broken_translations_are_named(msgstr, problem):
    msgid = "Train for {#0} steps with `lr=1e-3`, as $w = 0.5$ says."
    assert (
        translation.problems_of(
            msgid, "训练 {#0} 步，用 `lr=1e-3`，正如 $w = 0.5$ 所示。"
        )
        == []
    )
    found = translation.problems_of(msgid, msgstr)
    assert found and problem in found[0], found


def test_titles_in_quotes_may_stay_english():
    msgid = "The paper Attention Is All You Need introduced it."
    assert (
        translation.problems_of(msgid, "论文《Attention Is All You Need》提出了它。")
        == []
    )


def test_the_served_font_has_every_character_the_book_uses():
    missing = cjk_font.book_characters() - cjk_font.covered()
    assert not missing, (
        f"{cjk_font.FONT.relative_to(REPO)} lacks {''.join(sorted(missing))}: run "
        "`make font` (needs Debian's fonts-noto-cjk) and commit the subset"
    )


def test_chinese_book_reads_the_english_execution(tmp_path):
    import yaml

    source = translation.book_source(tmp_path / "zh")
    config = yaml.safe_load((source / "_config.yml").read_text(encoding="utf-8"))
    english = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    # Same code cells, same cache: the build finds every notebook already executed.
    assert config["execute"]["cache"] == str(REPO / english["execute"]["cache"])
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["sphinx"]["config"]["language"] == "zh_CN"
    assert config["sphinx"]["config"]["language_switch"]["root"] == "../"
    assert translation.CJK.search(config["sphinx"]["config"]["figure_alt_prefix"])
    assert config["repository"]["path_to_book"] == translation.LANGUAGE
    assert translation.CJK.search(config["title"])
    toc = yaml.safe_load((source / "_toc.yml").read_text(encoding="utf-8"))
    assert [c["file"] for p in toc["parts"] for c in p["chapters"]] == [
        c["file"] for p in translation.toc()["parts"] for c in p["chapters"]
    ]
    assert all(translation.CJK.search(p["caption"]) for p in toc["parts"])
    for page in translation.pages():
        built = source / translation.page_source(page).relative_to(REPO)
        assert built.is_file(), page


def test_language_switch_links_mirror_the_page():
    from language_switch import counterpart

    assert counterpart("intro", "zh_CN/") == "zh_CN/intro.html"
    assert (
        counterpart("chapters/attention/soft_lookup", "zh_CN/")
        == "../../zh_CN/chapters/attention/soft_lookup.html"
    )
    assert (
        counterpart("chapters/attention/soft_lookup", "../")
        == "../../../chapters/attention/soft_lookup.html"
    )


def test_make_book_builds_both_editions_from_one_execution():
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^book:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    steps = [
        "tools/execute_book.py",
        "jupyter-book build .",
        "tools/translation.py source",
        "jupyter-book build $(ZH_SOURCE)",
        "_build/html/zh_CN",
        "tools/check_public_build.py",
    ]
    assert [recipe.index(step) for step in steps] == sorted(
        recipe.index(step) for step in steps
    )


def test_numbers_of_the_prose_become_placeholders():
    held = translation.hold_numbers
    assert held("seen 93-98 %, GPT-2 and fp16 at -1.4") == (
        "seen {#0}-{#1} %, GPT-2 and fp16 at {#2}",
        ["93", "98", "-1.4"],
    )
    assert held("on 2026-12-03, `lr=1e-3` and $w = 0.5$") == (
        "on {#0}, `lr=1e-3` and $w = 0.5$",
        ["2026-12-03"],
    )
    assert translation.fill_numbers("{#1} 至 {#0}", ["3", "4"]) == "4 至 3"


def test_no_english_prose_escapes_the_cut():
    # What the cut leaves as it is goes into the Chinese pages unchanged: it must be
    # code, formulas, markup or the glossary's English terms, never a sentence.
    skipped = ("$$", "<!--", ":")
    # Fences whose content is not prose; any other fence (a directive the cut does not
    # know) must hold no English sentence.
    not_prose = re.compile(
        r"\s*```+\s*(python|bash|sh|shell|text|console|yaml|toml|json|ini|diff|)\s*\n|\s*```+\s*\{("
        r"math|code-cell|tableofcontents|bibliography)\}"
    )
    for page in translation.pages():
        for location, text in translation.page_texts(page):
            for piece in translation.segment(text):
                if isinstance(piece, translation.Unit) or piece.lstrip().startswith(
                    skipped
                ):
                    continue
                if not_prose.match(piece) or re.fullmatch(r"\s*```+\s*", piece):
                    continue
                if piece.rstrip().endswith("|"):
                    continue  # a table cell kept as it is (the glossary's terms)
                if piece.lstrip().startswith("```"):  # the fence's inside
                    piece = "\n".join(piece.strip().split("\n")[1:-1])
                text_only = translation.prose(piece)
                assert not translation.ENGLISH_RUN.search(text_only), (location, piece)


def test_unclosed_bold_next_to_chinese_punctuation_is_named():
    msgid = (
        "Our task: **is the order natural or shuffled?** Each sentence occurs twice."
    )
    assert (
        translation.problems_of(
            msgid, "任务：**词序是自然的还是打乱的**？每个句子出现两次。"
        )
        == []
    )
    found = translation.problems_of(
        msgid, "任务：**词序是自然的还是打乱的？**每个句子出现两次。"
    )
    assert found and "does not close" in found[0], found
