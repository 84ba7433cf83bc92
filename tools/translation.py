"""The Chinese edition: gettext catalogues of the English text, and the Chinese sources
built from them.

    python tools/translation.py update      # refresh locale/zh_CN/ from the English
    python tools/translation.py check       # list untranslated, fuzzy, broken messages
    python tools/translation.py notebooks   # write the notebooks of zh_CN/chapters/
    python tools/translation.py source DIR  # the Chinese book's source, ready to build

One message per block of prose: a paragraph, a heading, a list item, a table cell, a
note's title. Formulas, code, cell outputs and identifiers are never messages: the
Chinese pages and notebooks keep them byte for byte, so a Chinese notebook grades
exactly like the English one. Numbers in prose become placeholders ({#0}, {#1}, ...)
filled in from the English text when the Chinese is rendered, so a re-measured figure
reaches both editions at once and cannot go stale in one of them.

The catalogues are ordinary gettext .po files (one per page, under
locale/zh_CN/LC_MESSAGES/, mirroring the page's path), read and written with Babel,
so any .po editor works. `update` behaves like msgmerge: new English text gets an empty
entry, changed text keeps the old translation marked fuzzy, and text already translated
on another page is reused.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

REPO = Path(__file__).resolve().parents[1]
LANGUAGE = "zh_CN"
LOCALE = REPO / "locale" / LANGUAGE / "LC_MESSAGES"
# The Chinese notebooks mirror chapters/ under zh_CN/, so that the Chinese book's
# launch and download buttons and every relative link work as in the English one.
EDITION = REPO / LANGUAGE
BOOK_CATALOGUE = "_book"  # the book's title and the table of contents' captions

# --- spans that are never translated -----------------------------------------------
# Inline code, MyST roles, math, link targets, HTML tags, URLs, substitutions.
PROTECTED = re.compile(
    r"(`+)(?:(?!\1).)+?\1"  # `code` or ``code``
    r"|\{[a-zA-Z][\w:+-]*\}(?=`)"  # the {role} before a `target`
    r"|\$\$.+?\$\$|(?<![\\$])\$(?:[^$\\]|\\.)+\$"  # $$math$$ and $math$
    r"|\]\([^)\s]*\)"  # ](link target)
    r"|<[^>\n]+>"  # <tag>
    r"|https?://[^\s)]+"
    r"|\{\{[^}]*\}\}",
    re.S,
)
# A number in prose: a date, an integer or decimal not glued to a word or a hyphen
# (GPT-2 and fp16 stay as they are), or the second number of a range such as 93-98.
NUMBER = re.compile(
    r"\d{4}-\d{2}-\d{2}|(?<![\w.\-])-?\d+(?:\.\d+)*(?!\w)|(?<=\d-)\d+(?:\.\d+)*(?!\w)"
)
PLACEHOLDER = re.compile(r"\{#(\d+)\}")
WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
# Four or more English words in a row, outside quotes of a title, is untranslated prose.
ENGLISH_RUN = re.compile(r"[A-Za-z][\w'’\-]*(?:[ \t]+[A-Za-z][\w'’\-]*){3,}")
TITLE_QUOTES = re.compile(r"《[^》]*》|「[^」]*」")

PROSE_DIRECTIVES = {
    "note",
    "warning",
    "tip",
    "important",
    "hint",
    "caution",
    "attention",
    "danger",
    "error",
    "seealso",
    "admonition",
    "dropdown",
}
FENCE = re.compile(r"^(\s*)(`{3,}|:{3,})\s*(\{([\w-]+)\})?(.*)$")
HEADING = re.compile(r"^(#{1,6}\s+)(.*)$")
LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])(\s+)(.*)$")
LABEL = re.compile(r"^\s*\([\w:-]+\)=\s*$")


def split_protected(text: str) -> list[tuple[bool, str]]:
    """``text`` as (protected?, piece) pairs in order."""
    pieces, start = [], 0
    for match in PROTECTED.finditer(text):
        if match.start() > start:
            pieces.append((False, text[start : match.start()]))
        pieces.append((True, match.group(0)))
        start = match.end()
    if start < len(text):
        pieces.append((False, text[start:]))
    return pieces


def hold_numbers(text: str) -> tuple[str, list[str]]:
    """Replace the numbers of the prose (not of code or formulas) by {#i}."""
    numbers: list[str] = []

    def hold(match: re.Match) -> str:
        numbers.append(match.group(0))
        return "{#%d}" % (len(numbers) - 1)

    return (
        "".join(
            piece if protected else NUMBER.sub(hold, piece)
            for protected, piece in split_protected(text)
        ),
        numbers,
    )


def fill_numbers(text: str, numbers: list[str]) -> str:
    return PLACEHOLDER.sub(lambda m: numbers[int(m.group(1))], text)


def prose(text: str) -> str:
    """The words of ``text`` a reader reads as language: no code, formulas, targets."""
    return PLACEHOLDER.sub(
        " ", "".join(" " if p else piece for p, piece in split_protected(text))
    )


def is_message(text: str) -> bool:
    return bool(WORD.search(prose(text)))


@dataclass
class Unit:
    """One translatable block: ``prefix + text + suffix`` of the source."""

    prefix: str
    text: str
    suffix: str = ""


Piece = str | Unit


def _unwrap(lines: list[str]) -> str:
    return " ".join(line.strip() for line in lines)


def _table(lines: list[str]) -> list[Piece]:
    """A pipe table: every cell is a unit, except the separator row and the cells
    under an 'English' or '中文' header (the glossary's terms stay as they are)."""
    header = [c.strip() for c in lines[0].strip().strip("|").split("|")]
    keep = {i for i, cell in enumerate(header) if cell in ("English", "中文")}
    pieces: list[Piece] = []
    for row_index, line in enumerate(lines):
        if row_index == 1 or "|" not in line:
            pieces.append(line + "\n")
            continue
        cells = line.strip().strip("|").split("|")
        pieces.append("|")
        for i, cell in enumerate(cells):
            content = cell.strip()
            if i in keep or not is_message(content):
                pieces.append(f" {content} |")
            else:
                pieces.append(Unit(" ", content, " |"))
        pieces.append("\n")
    return pieces


def _block(lines: list[str]) -> list[Piece]:
    """A run of non-blank lines outside fences: headings, list items, tables,
    quotes and paragraphs."""
    if lines[0].lstrip().startswith("|"):
        return _table(lines)
    pieces: list[Piece] = []
    current: list[str] = []
    prefix = ""

    def flush() -> None:
        if current:
            text = _unwrap(current)
            pieces.append(
                Unit(prefix, text, "\n") if is_message(text) else prefix + text + "\n"
            )
            current.clear()

    for line in lines:
        heading = HEADING.match(line)
        item = LIST_ITEM.match(line)
        if heading or LABEL.match(line):
            flush()
            if heading and is_message(heading.group(2)):
                pieces.append(Unit(heading.group(1), heading.group(2).strip(), "\n"))
            else:
                pieces.append(line + "\n")
            prefix = ""
        elif item and (
            prefix
            or not current
            or not item.group(2)[0].isdigit()
            or item.group(2)[:-1] == "1"
        ):
            # CommonMark: only an ordered item numbered 1 may interrupt a paragraph;
            # "40. The fix" inside a paragraph is a line of that paragraph.
            flush()
            prefix = item.group(1) + item.group(2) + item.group(3)
            current.append(item.group(4))
        elif line.startswith(">"):
            flush()
            prefix = "> "
            current.append(line.lstrip("> "))
        else:
            current.append(line)
    flush()
    return pieces


def segment(text: str) -> list[Piece]:
    """Split MyST Markdown into literal pieces and translatable units; joining the
    units' prefix, text and suffix with the literals gives the same Markdown, with
    each unit's lines joined into one."""
    lines = text.split("\n")
    pieces: list[Piece] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            marker = fence.group(2)
            end = i + 1
            while end < len(lines) and not (
                lines[end].strip().startswith(marker[0] * len(marker))
                and lines[end].strip().strip(marker[0]) == ""
            ):
                end += 1
            name, argument = fence.group(4), fence.group(5).strip()
            if name in PROSE_DIRECTIVES:
                if argument and is_message(argument):
                    opening = f"{fence.group(1)}{marker}{{{name}}} "
                    pieces.append(Unit(opening, argument, "\n"))
                else:
                    pieces.append(line + "\n")
                body = lines[i + 1 : end]
                options = 0
                while options < len(body) and body[options].startswith(":"):
                    pieces.append(body[options] + "\n")
                    options += 1
                pieces.extend(segment("\n".join(body[options:])))
                pieces.append("\n")
                if end < len(lines):
                    pieces.append(lines[end] + "\n")
            else:
                pieces.append("\n".join(lines[i : end + 1]) + "\n")
            i = end + 1
        elif line.strip().startswith("$$"):
            end = i
            if (
                line.strip() == "$$"
                or not line.strip().endswith("$$")
                or len(line.strip()) < 4
            ):
                end = i + 1
                while end < len(lines) and "$$" not in lines[end]:
                    end += 1
            pieces.append("\n".join(lines[i : end + 1]) + "\n")
            i = end + 1
        elif line.strip().startswith("<!--"):
            end = i
            while end < len(lines) and "-->" not in lines[end]:
                end += 1
            pieces.append("\n".join(lines[i : end + 1]) + "\n")
            i = end + 1
        elif not line.strip():
            pieces.append("\n")
            i += 1
        else:
            end = i
            while (
                end < len(lines)
                and lines[end].strip()
                and not FENCE.match(lines[end])
                and not lines[end].strip().startswith(("$$", "<!--"))
            ):
                end += 1
            pieces.extend(_block(lines[i:end]))
            i = end
    # The split added a newline after the last line; the source may not end in one.
    if not text.endswith("\n") and pieces:
        last = pieces[-1]
        if isinstance(last, Unit) and last.suffix.endswith("\n"):
            last.suffix = last.suffix[:-1]
        elif isinstance(last, str) and last.endswith("\n"):
            pieces[-1] = last[:-1]
    return pieces


def units(text: str) -> list[Unit]:
    return [p for p in segment(text) if isinstance(p, Unit)]


# --- the English sources -------------------------------------------------------------


def toc() -> dict:
    return yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))


def pages() -> list[str]:
    """Every page of the book, as its path without suffix (intro, front/setup, ...)."""
    book = toc()
    return [book["root"]] + [
        chapter["file"] for part in book["parts"] for chapter in part["chapters"]
    ]


def page_source(page: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (REPO / f"{page}{suffix}").exists():
            return REPO / f"{page}{suffix}"
    raise FileNotFoundError(f"no source for the page {page} of _toc.yml")


def translatable_cells(notebook) -> list:
    """Markdown cells a reader reads: not the graded answer cells, which stay as
    nbgrader wrote them so both editions grade alike."""
    return [
        cell
        for cell in notebook.cells
        if cell.cell_type == "markdown" and "nbgrader" not in cell.metadata
    ]


def page_texts(page: str) -> list[tuple[str, str]]:
    """(location, Markdown) of every translatable text of a page."""
    path = page_source(page)
    relative = path.relative_to(REPO).as_posix()
    if path.suffix == ".md":
        return [(relative, path.read_text(encoding="utf-8"))]
    notebook = nbformat.read(path, as_version=4)
    return [
        (f"{relative}#{cell.id}", cell.source) for cell in translatable_cells(notebook)
    ]


def book_texts() -> list[tuple[str, str]]:
    """The title and the table of contents' captions and page titles."""
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    texts = [("_config.yml", config["title"])]
    for part in toc()["parts"]:
        texts.append(("_toc.yml", part["caption"]))
        texts += [("_toc.yml", c["title"]) for c in part["chapters"] if "title" in c]
    return texts


def messages_of(
    texts: list[tuple[str, str]], plain: bool = False
) -> list[tuple[str, str]]:
    """(location, msgid) in order of appearance, each msgid once."""
    seen: dict[str, str] = {}
    for location, text in texts:
        found = [Unit("", text)] if plain else units(text)
        for unit in found:
            msgid, _ = hold_numbers(unit.text)
            seen.setdefault(msgid, location)
    return [(location, msgid) for msgid, location in seen.items()]


def catalogue_names() -> list[str]:
    return [BOOK_CATALOGUE] + pages()


def english_messages(name: str) -> list[tuple[str, str]]:
    if name == BOOK_CATALOGUE:
        return messages_of(book_texts(), plain=True)
    return messages_of(page_texts(name))


def catalogue_path(name: str) -> Path:
    return LOCALE / f"{name}.po"


def read_catalogue(name: str) -> Catalog:
    path = catalogue_path(name)
    if not path.exists():
        return Catalog(locale=LANGUAGE, domain=name)
    with path.open("rb") as handle:
        return read_po(handle, locale=LANGUAGE, domain=name)


def write_catalogue(name: str, catalogue: Catalog) -> None:
    path = catalogue_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    catalogue.project = "Everything Is a Mapping"
    catalogue.version = ""
    catalogue.msgid_bugs_address = ""
    catalogue.copyright_holder = "The Everything Is a Mapping team"
    catalogue.last_translator = "The Everything Is a Mapping team"
    catalogue.language_team = "简体中文 (zh_CN)"
    catalogue.fuzzy = False
    with path.open("wb") as handle:
        write_po(handle, catalogue, width=0, ignore_obsolete=True, omit_header=False)
    # Babel stamps the file with the time of writing; a stable header keeps diffs to
    # what changed.
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'"(POT-Creation-Date|PO-Revision-Date): [^"]*"\n', "", text)
    text = re.sub(r'"Generated-By: [^"]*"\n', "", text)
    # Babel flags every message with braces as a Python format string; they are not.
    text = text.replace("#, python-brace-format\n", "")
    text = text.replace(", python-brace-format", "")
    text = re.sub(r"^# (Translations template|FIRST AUTHOR).*\n", "", text, flags=re.M)
    path.write_text(text, encoding="utf-8")


def translations() -> dict[str, str]:
    """msgid -> translation over every catalogue (complete, not fuzzy ones only)."""
    known: dict[str, str] = {}
    for name in catalogue_names():
        for message in read_catalogue(name):
            if message.id and message.string and not message.fuzzy:
                known.setdefault(message.id, message.string)
    return known


def update() -> list[str]:
    """Bring every catalogue in line with the English text; returns the names of the
    catalogues with something left to translate."""
    known = translations()
    pending = []
    for name in catalogue_names():
        template = Catalog(locale=LANGUAGE, domain=name)
        for location, msgid in english_messages(name):
            template.add(msgid, locations=[(location, None)])
        catalogue = read_catalogue(name)
        catalogue.update(template, update_header_comment=False)
        for message in catalogue:
            if message.id and (not message.string or message.fuzzy):
                if message.id in known:
                    message.string = known[message.id]
                    message.flags.discard("fuzzy")
        # Keep the English order, not the catalogue's history.
        ordered = Catalog(locale=LANGUAGE, domain=name)
        for location, msgid in english_messages(name):
            old = catalogue.get(msgid)
            ordered.add(
                msgid,
                old.string if old else "",
                locations=[(location, None)],
                flags=old.flags if old else (),
                previous_id=old.previous_id if old else (),
                user_comments=old.user_comments if old else (),
            )
        write_catalogue(name, ordered)
        if any(not m.string or m.fuzzy for m in ordered if m.id):
            pending.append(name)
    return pending


# --- checks --------------------------------------------------------------------------


def protected_spans(text: str) -> list[str]:
    return sorted(piece for protected, piece in split_protected(text) if protected)


def unclosed_emphasis(text: str) -> bool:
    """Whether Markdown leaves ``**`` or ``__`` of ``text`` as they are: CommonMark
    closes ``**`` after punctuation only before a space or punctuation, so
    ``**问题？**每个`` shows its asterisks (write ``**问题**？每个``)."""
    from markdown_it import MarkdownIt

    shown = "".join(
        "X" if protected and piece.startswith("$") else piece
        for protected, piece in split_protected(text)
    )
    html = re.sub(r"<code>.*?</code>", "", MarkdownIt("commonmark").renderInline(shown))
    return "**" in html or "__" in html


def problems_of(msgid: str, msgstr: str) -> list[str]:
    """What is wrong with one translation (empty for nothing)."""
    found = []
    if unclosed_emphasis(msgstr) and not unclosed_emphasis(msgid):
        found.append("bold or italic markers that Markdown does not close")
    if sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(msgstr)):
        found.append("the numbers ({#i}) differ from the English")
    if protected_spans(msgid) != protected_spans(msgstr):
        english, chinese = set(protected_spans(msgid)), set(protected_spans(msgstr))
        missing = sorted(english - chinese)
        extra = sorted(chinese - english)
        found.append(
            "code, formulas, roles or link targets differ from the English"
            + (f" (missing {missing})" if missing else "")
            + (f" (added {extra})" if extra else "")
        )
    text = TITLE_QUOTES.sub(" ", prose(msgstr))
    run = ENGLISH_RUN.search(text)
    if run:
        found.append(f"English prose left untranslated: {run.group(0)!r}")
    elif len(WORD.findall(prose(msgid))) >= 2 and not CJK.search(msgstr):
        found.append("no Chinese in the translation")
    return found


def check(names: list[str] | None = None) -> list[str]:
    """Every problem of the catalogues: untranslated, fuzzy, or broken messages."""
    report = []
    for name in names or catalogue_names():
        catalogue = read_catalogue(name)
        for location, msgid in english_messages(name):
            message = catalogue.get(msgid)
            where = f"{catalogue_path(name).relative_to(REPO)}: {location}"
            short = msgid if len(msgid) < 70 else msgid[:67] + "..."
            if message is None or not message.string:
                report.append(f"{where}: untranslated: {short!r}")
            elif message.fuzzy:
                report.append(f"{where}: fuzzy (the English changed): {short!r}")
            else:
                report += [
                    f"{where}: {p}: {short!r}"
                    for p in problems_of(msgid, message.string)
                ]
    return report


# --- rendering the Chinese edition ---------------------------------------------------


def render(text: str, catalogue: dict[str, str]) -> str:
    """``text`` with every unit replaced by its translation (one line each)."""
    out = []
    for piece in segment(text):
        if isinstance(piece, str):
            out.append(piece)
            continue
        msgid, numbers = hold_numbers(piece.text)
        if msgid not in catalogue:
            raise KeyError(
                f"no translation for {msgid!r}: run tools/translation.py update"
            )
        out.append(
            piece.prefix + fill_numbers(catalogue[msgid], numbers) + piece.suffix
        )
    return "".join(out)


PREVIEW = False  # `source --preview`: English where a translation is missing


def load(name: str) -> dict[str, str]:
    messages = read_catalogue(name)
    found = {m.id: m.string for m in messages if m.id and m.string and not m.fuzzy}
    if PREVIEW:
        found = {m.id: m.id for m in messages if m.id} | found
    return found


def chinese_notebook(page: str) -> nbformat.NotebookNode:
    """The Chinese version of a chapters/ notebook: its prose translated, every code
    cell, output and nbgrader field untouched."""
    notebook = nbformat.read(REPO / f"{page}.ipynb", as_version=4)
    catalogue = load(page)
    chinese = copy.deepcopy(notebook)
    for cell in translatable_cells(chinese):
        cell.source = render(cell.source, catalogue)
    return chinese


def notebook_pages() -> list[str]:
    return [p for p in pages() if page_source(p).suffix == ".ipynb"]


def write_notebooks() -> tuple[list[Path], list[str]]:
    """Write every Chinese notebook whose text is all translated; returns the files
    written and the pages left as they were (their English changed: translate first)."""
    written, waiting = [], []
    for page in notebook_pages():
        try:
            notebook = chinese_notebook(page)
        except KeyError:
            waiting.append(page)
            continue
        target = EDITION / f"{page}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        written.append(target)
    return written, waiting


def book_source(out: Path) -> Path:
    """The Chinese book's source tree in ``out`` (a Jupyter Book project)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for page in pages():
        source = page_source(page)
        target = out / source.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".md":
            target.write_text(
                render(source.read_text(encoding="utf-8"), load(page)), encoding="utf-8"
            )
        elif PREVIEW:  # not yet committed: render them here
            nbformat.write(chinese_notebook(page), target)
        else:
            shutil.copyfile(EDITION / f"{page}.ipynb", target)
    titles = load(BOOK_CATALOGUE)
    book = toc()
    for part in book["parts"]:
        part["caption"] = fill_numbers(*_translated(part["caption"], titles))
        for chapter in part["chapters"]:
            if "title" in chapter:
                chapter["title"] = fill_numbers(*_translated(chapter["title"], titles))
    (out / "_toc.yml").write_text(
        yaml.safe_dump(book, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    config["title"] = fill_numbers(*_translated(config["title"], titles))
    config["execute"]["cache"] = str(REPO / config["execute"]["cache"])
    config["repository"]["path_to_book"] = LANGUAGE
    config["sphinx"]["config"]["language"] = LANGUAGE
    # A figure's titles and labels are code output, English in both editions; its alt
    # text (_ext/figure_alt.py) quotes them after this note.
    config["sphinx"]["config"]["figure_alt_prefix"] = "图（图中文字为英文）："
    config["sphinx"]["config"]["language_switch"] = {
        "root": "../",
        "label": "English",
        "hreflang": "en",
        "aria_label": "语言 / Language",
    }
    (out / "_config.yml").write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    for shared in ("_static", "_ext"):
        shutil.copytree(REPO / shared, out / shared)
    shutil.copyfile(REPO / "references.bib", out / "references.bib")
    return out


def _translated(text: str, catalogue: dict[str, str]) -> tuple[str, list[str]]:
    msgid, numbers = hold_numbers(text)
    return catalogue[msgid], numbers


# --- a plain-text form for translating ------------------------------------------------
# Every message is one line, so a translator can work in a text file without the .po
# format's quoting of backslashes and quotes (formulas are full of both):
#     ## chapters/attention/soft_lookup.ipynb#cell-05
#     EN: The width $w > 0$ is ...
#     ZH: 宽度 $w > 0$ 是……


def export(
    name: str, out: Path, skip: set[str] = frozenset(), everything: bool = False
) -> int:
    """Write the messages of catalogue ``name`` still to translate (``everything``:
    all of them, to review) to ``out``; returns how many."""
    catalogue = read_catalogue(name)
    lines, count = [f"# catalogue: {name}"], 0
    for location, msgid in english_messages(name):
        message = catalogue.get(msgid)
        done = message is not None and message.string and not message.fuzzy
        if (done and not everything) or msgid in skip:
            continue
        lines += [
            "",
            f"## {location}",
            f"EN: {msgid}",
            "ZH: " + (message.string if message is not None and message.string else ""),
        ]
        count += 1
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return count


def import_text(path: Path) -> tuple[str, int]:
    lines = path.read_text(encoding="utf-8").split("\n")
    name = lines[0].removeprefix("# catalogue:").strip()
    catalogue = read_catalogue(name)
    count = 0
    english = None
    for line in lines[1:]:
        if line.startswith("EN: "):
            english = line[4:]
        elif line.startswith("ZH: ") and english is not None:
            message = catalogue.get(english)
            if message is None:
                raise KeyError(f"{path}: not an English message of {name}: {english!r}")
            if line[4:].strip():
                message.string = line[4:].strip()
                message.flags.discard("fuzzy")
                count += 1
            english = None
    write_catalogue(name, catalogue)
    return name, count


def check_text(path: Path) -> list[str]:
    """The problems of a translated text file, before it is imported."""
    report, english = [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("EN: "):
            english = line[4:]
        elif line.startswith("ZH: ") and english is not None:
            chinese = line[4:].strip()
            short = english if len(english) < 70 else english[:67] + "..."
            if not chinese:
                report.append(f"{path}:{number}: untranslated: {short!r}")
            else:
                report += [
                    f"{path}:{number}: {p}: {short!r}"
                    for p in problems_of(english, chinese)
                ]
            english = None
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("update", help="refresh the catalogues from the English text")
    checking = commands.add_parser("check", help="list untranslated or broken messages")
    checking.add_argument("names", nargs="*", help="catalogues (default: all)")
    commands.add_parser("notebooks", help="write the Chinese notebooks")
    exporting = commands.add_parser("export", help="untranslated messages as text")
    exporting.add_argument("name")
    exporting.add_argument("out", type=Path)
    exporting.add_argument(
        "--all", action="store_true", help="translated messages too (for a review)"
    )
    importing = commands.add_parser("import", help="read a translated text file back")
    importing.add_argument("files", nargs="+", type=Path)
    checking_text = commands.add_parser(
        "check-text", help="check translated text files"
    )
    checking_text.add_argument("files", nargs="+", type=Path)
    source = commands.add_parser("source", help="write the Chinese book's source")
    source.add_argument("out", type=Path)
    source.add_argument(
        "--preview", action="store_true", help="English where a translation is missing"
    )
    args = parser.parse_args(argv)
    if args.command == "update":
        pending = update()
        for name in pending:
            print(f"to translate: {catalogue_path(name).relative_to(REPO)}")
        return 0
    if args.command == "check":
        report = check(args.names or None)
        print("\n".join(report) or "every message is translated")
        return 1 if report else 0
    if args.command == "notebooks":
        written, waiting = write_notebooks()
        for path in written:
            print(f"wrote {path.relative_to(REPO)}")
        for page in waiting:  # make test fails until they are translated and written
            print(
                f"not written: {LANGUAGE}/{page}.ipynb, its English changed "
                "(make translations, translate, then make chapters again)"
            )
        return 0
    if args.command == "check-text":
        report = [line for path in args.files for line in check_text(path)]
        print("\n".join(report) or "every message is translated")
        return 1 if report else 0
    if args.command == "export":
        count = export(args.name, args.out, everything=args.all)
        print(f"{count} messages in {args.out}")
        return 0
    if args.command == "import":
        for path in args.files:
            name, count = import_text(path)
            print(f"{path}: {count} translations into {name}")
        return 0
    global PREVIEW
    PREVIEW = args.preview
    print(f"wrote {book_source(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
