"""Subset Noto Sans CJK SC to the Chinese characters the book uses, as WOFF2.

    make font   # python tools/cjk_font.py --source <NotoSansCJK-Regular.ttc>

Both editions serve the subset (_static/fonts/, linked by _static/book.css), so Chinese
text renders on a machine with no CJK font at all. The source is Debian's
fonts-noto-cjk (`apt-get install fonts-noto-cjk`; the collection's face 2 is Simplified
Chinese), under the SIL Open Font License 1.1 (_static/fonts/OFL.txt). Run this after
translating: tests/book/test_translation.py fails when the catalogues use a character
the subset lacks, and tests/browser when a built page does.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

REPO = Path(__file__).resolve().parents[1]
FONT = REPO / "_static" / "fonts" / "noto-sans-sc-subset.woff2"
SIMPLIFIED_CHINESE_FACE = 2  # in NotoSansCJK-Regular.ttc: JP, KR, SC, TC, HK
# The ranges the @font-face of _static/book.css serves the subset for.
CJK = re.compile(r"[\u2e80-\u2fff\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


def book_characters() -> set[str]:
    """Every CJK character of the catalogues, the English sources (the glossary's
    terms, the title) and the Chinese interface strings of Sphinx and the theme."""
    roots = [REPO / "locale"]
    texts = [p for root in roots for p in root.rglob("*.po")]
    texts += [REPO / "_config.yml", REPO / "_toc.yml"]
    for folder in ("front", "parts", "back", "chapters"):
        texts += list((REPO / folder).rglob("*.md")) + list(
            (REPO / folder).rglob("*.ipynb")
        )
    texts.append(REPO / "intro.md")
    texts += interface_catalogues()
    found: set[str] = set()
    for path in texts:
        found |= set(CJK.findall(path.read_text(encoding="utf-8", errors="ignore")))
    return found


def interface_catalogues() -> list[Path]:
    """The zh_CN .po files of Sphinx and the book theme installed here (their words
    appear in the Chinese edition's navigation, search page and buttons)."""
    import pydata_sphinx_theme
    import sphinx
    import sphinx_book_theme

    found = []
    for package in (sphinx, sphinx_book_theme, pydata_sphinx_theme):
        found += [
            p for p in Path(package.__file__).parent.rglob("*.po") if "zh_CN" in p.parts
        ]
    return found


def covered(font: Path = FONT) -> set[str]:
    """The characters the subset has glyphs for."""
    return {chr(code) for code in TTFont(font).getBestCmap()}


def write_subset(source: Path, characters: set[str], out: Path = FONT) -> None:
    options = subset.Options()
    options.flavor = "woff2"
    options.font_number = SIMPLIFIED_CHINESE_FACE
    options.layout_features = ["*"]  # vertical forms, punctuation width and kerning
    options.hinting = False  # browsers hint CJK themselves; halves the size
    options.name_IDs = ["*"]
    font = subset.load_font(str(source), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(ord(c) for c in characters))
    subsetter.subset(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(out), options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
        help="Noto Sans CJK Regular collection (Debian's fonts-noto-cjk)",
    )
    args = parser.parse_args()
    characters = book_characters()
    write_subset(args.source, characters)
    missing = characters - covered()
    print(
        f"wrote {FONT.relative_to(REPO)}: {len(characters)} characters, "
        f"{FONT.stat().st_size / 1024:.0f} KiB"
        + (f"; not in the font: {''.join(sorted(missing))}" if missing else "")
    )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
