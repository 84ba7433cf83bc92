"""Give every notebook figure alt text, read from the figure itself.

myst-nb renders a notebook's PNG outputs as images with no alt text, so the HTML writer
falls back to the file's path (``../../_images/3f2a….png``), which is what a screen
reader would read out. ``seqbook.book.plotting.use_book_style()`` (called in every
section's set-up cell) writes a sentence built from the figure's titles and axis labels
into the PNG's "Description" text chunk; this extension copies that sentence into the
image's ``alt`` when the document is read. An image that already has alt text keeps it.
The figures' own text is English in both editions (it is code output), so the Chinese
edition keeps the sentence and prefixes it (``figure_alt_prefix``) with a Chinese note.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes

DESCRIPTION_KEY = "Description"


def png_description(path: Path) -> str:
    """The "Description" text chunk of the PNG at ``path`` ("" when there is none)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                return ""
            image.load()  # text chunks after the image data are read only on load
            return " ".join(str(image.text.get(DESCRIPTION_KEY, "")).split())
    except (OSError, ValueError):
        return ""


def add_alt_text(app, doctree) -> None:
    docname = app.env.docname
    for image in doctree.findall(nodes.image):
        if image.get("alt", "").strip():
            continue
        # Sphinx's image collector (which runs first) leaves the file's path relative to
        # the source folder in ``candidates``; before it, ``uri`` is relative to the
        # page.
        candidate = image.get("candidates", {}).get("*")
        if candidate:
            path = Path(app.srcdir, candidate)
        else:
            uri = image.get("uri", "")
            if "://" in uri:
                continue
            path = Path(app.env.relfn2path(uri, docname)[1])
        if path.suffix.lower() != ".png":
            continue
        description = png_description(path)
        if description:
            image["alt"] = app.config.figure_alt_prefix + description


def setup(app):
    # The Chinese edition says, before the English titles and labels the figure itself
    # shows, what the reader is about to hear (tools/translation.py sets it).
    app.add_config_value("figure_alt_prefix", "", "env")
    app.connect("doctree-read", add_alt_text)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
