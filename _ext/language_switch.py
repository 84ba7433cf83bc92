"""Link every page to the same page in the book's other language.

The English book is built into _build/html and the Chinese one into _build/html/zh_CN,
with the same page names (tools/translation.py mirrors the English tree), so the
counterpart of a page is one folder down or up. The switch is a link at the top of the
article and a <link rel="alternate" hreflang> in the head (for search engines).
Configured in _config.yml as ``language_switch`` with ``root`` (the other edition's
root, relative to this edition's root), ``label`` and ``hreflang``.
"""

from __future__ import annotations

from html import escape


def counterpart(pagename: str, root: str) -> str:
    """The other edition's URL of ``pagename``, relative to the page itself."""
    return "../" * pagename.count("/") + root + pagename + ".html"


def add_switch(app, pagename, templatename, context, doctree) -> None:
    switch = app.config.language_switch
    if not switch or pagename not in app.env.found_docs:
        return  # the search page and the index exist in each edition on their own
    href = escape(counterpart(pagename, switch["root"]))
    lang = escape(switch["hreflang"])
    label = escape(switch["label"])
    link = (
        f'<nav class="language-switch" aria-label="{escape(switch["aria_label"])}">'
        f'<a href="{href}" hreflang="{lang}" lang="{lang}">{label}</a></nav>'
    )
    context["body"] = link + context.get("body", "")
    context["metatags"] = (
        context.get("metatags", "")
        + f'\n<link rel="alternate" hreflang="{lang}" href="{href}" />'
    )


def setup(app):
    app.add_config_value("language_switch", {}, "html")
    app.connect("html-page-context", add_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
