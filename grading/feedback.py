"""Feedback without hidden tests.

nbgrader's ``generate_feedback`` renders the *autograded* notebook, in which every test
cell has been restored from the gradebook with its hidden tests. Left alone, the HTML
returned to a student therefore shows the hidden tests verbatim -- and a failing hidden
test's traceback quotes them again. :class:`StripHiddenTests` runs after ``GetGrades``
(so scores and comments are already attached) and, in every cell:

* replaces each ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` block of the
  source by one comment line saying that hidden tests ran there;
* keeps every output a student needs -- printed text, figures, the exception's name and
  message (the check's explanation in words) -- but drops the traceback frames that
  quote the test cell, and blanks any remaining output line that repeats a hidden-test
  line.

Configured in ``nbgrader_config.py`` as::

    c.GenerateFeedback.preprocessors = [
        GetGrades, StripHiddenTests, CSSHTMLHeaderPreprocessor
    ]
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

BEGIN = "### BEGIN HIDDEN TESTS"
END = "### END HIDDEN TESTS"
PLACEHOLDER = "# (hidden tests ran here; they are not shown in feedback)"
REDACTED = "[line of a hidden test removed]"
# Shorter lines (")", "else:", "x = 1") say nothing about a test and occur everywhere.
MIN_REDACTED_LENGTH = 8

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def split_hidden(source: str) -> tuple[str, list[str]]:
    """``source`` with every hidden block replaced by :data:`PLACEHOLDER`, and the lines
    that were inside the blocks (markers excluded).

    An unterminated block (a ``BEGIN`` without ``END``) hides everything after it: when
    in doubt, show less.
    """
    shown: list[str] = []
    hidden: list[str] = []
    inside = False
    for line in source.splitlines():
        if not inside and BEGIN in line:
            inside = True
            shown.append(line[: line.index(BEGIN)] + PLACEHOLDER)
        elif inside and END in line:
            inside = False
        elif inside:
            hidden.append(line)
        elif END in line:  # a stray END marker: drop the marker, keep nothing of it
            continue
        else:
            shown.append(line)
    return "\n".join(shown), hidden


def secret_lines(hidden: list[str], shown: str) -> list[str]:
    """Hidden lines worth redacting from outputs: long enough to be specific, and not
    also part of the visible source (which the student has anyway)."""
    visible = {line.strip() for line in shown.splitlines()}
    return sorted(
        {
            line.strip()
            for line in hidden
            if len(line.strip()) >= MIN_REDACTED_LENGTH and line.strip() not in visible
        },
        key=len,
        reverse=True,
    )


def _redact_text(text: str, secrets: list[str]) -> str:
    lines = text.split("\n")
    for i, line in enumerate(lines):
        plain = _ANSI.sub("", line)
        if any(secret in plain for secret in secrets) or BEGIN in plain or END in plain:
            lines[i] = REDACTED
    return "\n".join(lines)


def _cell_frame(entry: str, execution_count: int | None) -> bool:
    """Whether a traceback entry is a frame of the test cell itself (it quotes the
    cell's source around the failing line)."""
    plain = _ANSI.sub("", entry)
    return execution_count is not None and f"Cell In[{execution_count}]" in plain


class StripHiddenTests(Preprocessor):
    """Remove hidden tests from the sources and outputs of a notebook before export."""

    # nbconvert skips a registered preprocessor unless it is enabled.
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int):
        if cell.cell_type != "code" or (
            BEGIN not in cell.source and END not in cell.source
        ):
            return cell, resources
        shown, hidden = split_hidden(cell.source)
        cell.source = shown
        secrets = secret_lines(hidden, shown)
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = _redact_text(output.text, secrets)
            elif output.output_type == "error":
                frames = [
                    entry
                    for entry in output.traceback
                    if not _cell_frame(entry, cell.get("execution_count"))
                ]
                output.traceback = [_redact_text(entry, secrets) for entry in frames]
                output.evalue = _redact_text(output.evalue, secrets)
            elif output.output_type in ("execute_result", "display_data"):
                for mime, value in list(output.get("data", {}).items()):
                    if mime.startswith("text/") and isinstance(value, str):
                        output.data[mime] = _redact_text(value, secrets)
        return cell, resources
