"""Serve MathJax from the book's own pages, so formulas are typeset with no network.

Sphinx links MathJax from a CDN by default: a reader offline (or on a network that
blocks the CDN) sees raw TeX. The ``django-static-mathjax`` wheel ships MathJax 3 (no
Django needed to read its files); this extension copies the parts the book uses into
``_static/mathjax`` after an HTML build, and ``_config.yml`` points ``mathjax_path``
there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# The CHTML bundle, the TeX extensions it loads on demand (autoload), its fonts, and the
# accessibility and menu components the context menu can load.
NEEDED = (
    "tex-chtml.js",
    "input/tex/extensions",
    "output/chtml/fonts",
    "a11y",
    "ui",
    "sre",
)


def mathjax_source() -> Path:
    import mathjax  # the django-static-mathjax distribution's package

    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (source / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax's tex-chtml.js is not under {source}")
    return source


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in NEEDED:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)


def setup(app):
    # fail at the start of a build, not after it, if MathJax is missing
    mathjax_source()
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
