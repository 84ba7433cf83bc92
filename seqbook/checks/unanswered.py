"""A short message, instead of a long traceback, for an exercise not answered yet.

A student version's answer cells contain ``raise NotImplementedError()`` until the
student writes the code, and the cells after them call the function. In a notebook,
IPython would print a traceback of a dozen lines through the student's own stub; this
handler prints one line that says which function is still a stub and what to do. The
cell still fails (the error is reported to Jupyter, nbval and nbgrader as before, with
the same exception type), only its display is shorter. Installed when
:mod:`seqbook.checks` is imported, before the integrity baseline is recorded, so
replacing it is detected like any other tampering.
"""

from __future__ import annotations

import textwrap
from typing import Any

CROSS = "\x1b[1;31m✘\x1b[0m"  # the red cross of the checks' messages


def _innermost_function(tb: Any) -> str:
    while tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_code.co_name
    return "this cell" if name.startswith("<") else f"`{name}`"


def message(tb: Any) -> list[str]:
    text = (
        f"Not answered yet: {_innermost_function(tb)} still raises "
        "NotImplementedError. Replace `raise NotImplementedError()` with your code, "
        "run that cell, then run this one again."
    )
    first, *rest = textwrap.wrap(text, width=84)
    return [f"{CROSS} {first}"] + [f"  {line}" for line in rest]


def _handler(
    shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None
) -> list[str]:
    # IPython discards a custom handler's return value when the error happens in a
    # cell: show the one-line "traceback" ourselves (ipykernel sends it to Jupyter as
    # the cell's error output and records it for the execute reply).
    lines = message(tb)
    shell._showtraceback(etype, value, lines)
    return lines


def install() -> None:
    """Register the handler in the running IPython shell (nothing in plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and NotImplementedError not in shell.custom_exceptions:
        shell.set_custom_exc((NotImplementedError,), _handler)
