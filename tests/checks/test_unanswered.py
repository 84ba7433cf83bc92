"""An unanswered exercise fails with a one-line message, not a long traceback, and the
cell still counts as failed for Jupyter, nbval and nbgrader."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient


def _run(*sources: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", allow_errors=True
    ).execute()
    return notebook


def _errors(cell):
    return [o for o in cell.outputs if o.output_type == "error"]


def test_a_stub_gets_a_short_message_and_the_cell_still_fails():
    notebook = _run(
        "from seqbook import checks",
        "def rnn_forward(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
        "rnn_forward(1)",
        "raise NotImplementedError()",
        "int('x')",
    )
    stub, top_level, other = (_errors(c) for c in notebook.cells[2:])
    assert len(stub) == 1 and stub[0].ename == "NotImplementedError"
    text = "\n".join(stub[0].traceback)
    assert "Not answered yet: `rnn_forward`" in text and len(stub[0].traceback) <= 3
    assert "Traceback" not in text and "Cell In" not in text
    assert "Not answered yet: this cell" in "\n".join(top_level[0].traceback)
    # Other errors keep IPython's full traceback.
    assert other[0].ename == "ValueError" and len(other[0].traceback) > 3


def test_without_seqbook_checks_the_traceback_is_ipythons():
    notebook = _run("def f():\n    raise NotImplementedError()", "f()")
    (error,) = _errors(notebook.cells[1])
    assert "Not answered yet" not in "\n".join(error.traceback)
