"""Link each script once per page.

sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL = …``)
every time Sphinx reads documents, and Jupyter Book's build reaches that point twice, so
every page declared the same ``const`` twice (and sphinx-togglebutton's settings twice):
a SyntaxError in each reader's console (found by ``tests/browser``). This extension
drops exact repeats (same file or body, same attributes) from a page's scripts and keeps
the first of each.
"""

from __future__ import annotations


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    # The same inline script is registered with filename None by one extension and ""
    # by another: both mean "no file".
    return (
        getattr(script, "filename", str(script)) or "",
        tuple(sorted((name, str(value)) for name, value in attributes.items())),
    )


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    # Late, so that scripts other extensions add to the page are seen too.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
