"""Running a submission under limits: nbgrader's ``Execute``, hardened for grading.

nbgrader runs a submission cell after cell in a fresh kernel and stops a cell after
``Execute.timeout`` seconds. That leaves four ways for one submission to spoil grading:

* **a kernel that dies** (``os._exit``, a crash, the memory limit below): nbclient
  raises ``DeadKernelError`` and nbgrader abandons the whole submission -- the exercises
  that passed before the crash get nothing either, and the instructor only sees a log
  line;
* **a loop the interrupt cannot stop** (it catches ``KeyboardInterrupt``, or sits in C
  code): every following cell waits its full timeout behind it, so one notebook can hold
  a grading worker for hours;
* **a memory bomb**: the kernel is an ordinary process of the grading machine;
* **huge outputs**: every byte a cell prints is sent to the grading process and kept in
  the notebook (nbgrader's ``LimitOutput`` cuts long *lines counts*, not one long line
  or a large image, and only after the fact).

:class:`GuardedExecute` replaces ``Execute`` in ``Autograde.autograde_preprocessors``
(see ``nbgrader_config.py``) and adds:

* ``memory_limit_mb``: the kernel's address space is capped (``RLIMIT_AS``, inherited
  by any process it starts), so an allocation beyond it fails with ``MemoryError`` in
  that cell instead of exhausting the machine. :class:`grading.kernel.KernelProcess`
  applies it and reads it back (under the sandbox it is set when the kernel starts);
  where it cannot be applied (not Linux, a kernel that is no process of this machine)
  the log warns, and ``memory_limit_required = True`` refuses to grade instead;
* ``notebook_timeout``: a budget for the whole notebook;
* after a cell times out and the interrupt does not bring the kernel back within
  ``iopub_timeout`` seconds, the kernel is stopped (killed with what it started, through
  :class:`grading.kernel.KernelProcess`);
* when the kernel is dead, stopped or over budget, every remaining code cell gets an
  error output saying why it was not run. Test cells that did run keep their scores;
  the ones that did not score 0 (an error output is how nbgrader marks a failed test
  cell -- a cell left without outputs would count as *passed*);
* ``max_output_chars``: each cell keeps at most this many characters of output; the
  rest is dropped while it arrives, with one notice. Error outputs and the integrity
  lines of ``seqbook.checks`` (:data:`INTEGRITY_MARKER`, ``SEQBOOK-INTEGRITY``, defined
  once in ``seqbook/grading_protocol.py``) are always kept, so flooding the output
  cannot hide a failure or tampering;
* ``preamble``: code run in the kernel before the first cell. It imports
  ``seqbook.checks``, which records the untouched state of the comparison functions,
  builtins and trace hooks, so that a submission cannot tamper *before* the checks are
  imported (for instance by moving the set-up cell below a cell of its own).

* a fingerprint of the checking code: when the preamble has run, the grader records
  the identity of every function of every ``seqbook`` module then loaded (the checks,
  their helpers, the references), and compares it again after each test cell. A test
  cell whose check was replaced -- ``checks.check_attention = lambda *a, **k: None``
  would otherwise pass in silence, since no checking code runs at all -- gets an
  ``IntegrityError`` output carrying ``SEQBOOK-INTEGRITY`` and scores 0. The record is
  kept by the grading process, out of reach of the code under test.

Each stop is written as an error output named :data:`NOT_RUN` in the cells concerned,
so it shows in the autograded notebook, in the feedback and in ``grep``.

* ``sandbox``: the kernel runs in an operating-system sandbox (:mod:`grading.sandbox`):
  it sees the Python environment and a private copy of its own assignment folder, no
  other file of the course, no network, no other process, no grader's variable. Where
  the sandbox cannot be made, grading refuses
  (:class:`~grading.sandbox.SandboxUnavailable`) unless ``sandbox = "off"``, which
  grades unsandboxed, says so in the log and records it in the autograded notebook's
  metadata (``seqbook_grading.sandbox``), which the grade report reads.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Integer, Unicode

from grading import sandbox as sandboxing
from grading.kernel import KernelProcess


def _grading_protocol():
    """``seqbook/grading_protocol.py``, run from its file alone.

    ``import seqbook.grading_protocol`` would first run ``seqbook/__init__.py``, which
    imports torch (a second or more, and hundreds of MB, in every grading process); the
    module imports nothing, so it runs the same by itself. ``find_spec`` of a top-level
    name only locates the package, it does not import it.
    """
    if "seqbook.grading_protocol" in sys.modules:
        return sys.modules["seqbook.grading_protocol"]
    package = importlib.util.find_spec("seqbook")
    folders = package.submodule_search_locations if package is not None else None
    for folder in folders or []:
        path = os.path.join(folder, "grading_protocol.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location(
                "_seqbook_grading_protocol", path
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise ImportError(
        "grading needs the seqbook package's grading_protocol.py "
        "(`pip install -e .` in the course directory)"
    )


NOT_RUN = "NotRun"
GRADING_METADATA = "seqbook_grading"  # notebook metadata: how the notebook was graded
OUTPUT_LIMIT_NOTICE = "[grading: further output of this cell was dropped]"
INTEGRITY_MARKER = _grading_protocol().INTEGRITY_MARKER  # what seqbook.checks writes


# Evaluated in the kernel: (module.name, id) of every callable of every loaded seqbook
# module. Builtins are reached through the builtins module, so that a student's variable
# called `id` or `vars` cannot change the answer by accident.
FINGERPRINT_EXPRESSION = (
    "(lambda b, s: b.repr(b.sorted((m + '.' + n, b.id(v))"
    " for m, module in b.list(s.modules.items())"
    " if m == 'seqbook' or m.startswith('seqbook.')"
    " for n, v in b.list(b.vars(module).items())"
    " if b.callable(v) and not n.startswith('__'))))"
    "(__import__('builtins'), __import__('sys'))"
)


# Run by the grader after each test cell: the checks' integrity test, which restores the
# originals and raises IntegrityError if anything was replaced.
VERIFY_CODE = "__import__('seqbook.checks.integrity', fromlist=['verify']).verify()"


def error_output(name: str, message: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=name,
        evalue=message,
        traceback=[f"{name}: {message}"],
    )


class GuardedExecute(Execute):
    """nbgrader's ``Execute`` with memory, time and output limits (module docstring)."""

    memory_limit_mb = Integer(
        8192,
        help="Address-space limit of the kernel in MiB (0: none). Virtual memory "
        "counts, not only memory in use: leave room above the heaviest notebook.",
    ).tag(config=True)

    memory_limit_required = Bool(
        False,
        help="Refuse to grade (raise) when the memory limit cannot be applied to the "
        "kernel, instead of grading without it after a warning in the log.",
    ).tag(config=True)

    notebook_timeout = Integer(
        1800,
        help="Seconds the whole notebook may take before its remaining cells are "
        "marked as not run (0: no limit).",
    ).tag(config=True)

    # nbclient waits this long for a kernel to go idle after it interrupted a timed-out
    # cell; nbgrader then raises CellTimeoutError, which stops the kernel here.
    iopub_timeout = Integer(15, allow_none=False).tag(config=True)

    max_output_chars = Integer(
        2_000_000,
        help="Characters of output kept per cell, figures included (0: no limit).",
    ).tag(config=True)

    preamble = Unicode(
        "import seqbook.checks",
        help="Code run in the kernel before the first cell (empty: none).",
    ).tag(config=True)

    sandbox = Enum(
        [sandboxing.SANDBOX_BUBBLEWRAP, sandboxing.SANDBOX_OFF],
        sandboxing.SANDBOX_BUBBLEWRAP,
        help="'bubblewrap': each kernel in an OS sandbox, and grading refuses where it "
        "cannot be made; 'off': no sandbox (only where each submission is graded in "
        "a container of its own), with a warning in the log and the grade report.",
    ).tag(config=True)

    # -- the notebook ---------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        if self.sandbox == sandboxing.SANDBOX_OFF:
            self.log.warning(
                "GuardedExecute: grading WITHOUT a sandbox (sandbox = 'off'): "
                "the submission can read and write every file this process "
                "can, and reach the network"
            )
        elif km is None:
            sandboxing.require()  # fails closed, before any student code runs
        nb.metadata[GRADING_METADATA] = {"sandbox": self.sandbox}
        self._started = time.monotonic()
        self._stopped_because: str | None = None
        self._prepared = False
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if not self._prepared:
            self._prepare_kernel()
        if (
            self._stopped_because is None
            and self.notebook_timeout
            and time.monotonic() - self._started > self.notebook_timeout
        ):
            self._stopped_because = (
                f"the notebook ran over its {self.notebook_timeout} s "
                "budget before this cell"
            )
            self._stop_kernel()
        if self._stopped_because is not None:
            cell.outputs = [
                error_output(
                    NOT_RUN, f"This cell was not run: {self._stopped_because}."
                )
            ]
            return cell, resources

        self._output_chars = 0
        self._output_truncated = False
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
            if cell.metadata.get("nbgrader", {}).get("grade"):
                self._check_fingerprint(cell)
            return cell, resources
        except CellTimeoutError:
            # Interrupted after `timeout` seconds, the kernel did not come back.
            cell.outputs.append(
                error_output(
                    NOT_RUN,
                    f"This cell ran past the {self.timeout} s limit and did not stop "
                    "when interrupted; the kernel was stopped.",
                )
            )
            self._stopped_because = (
                f"an earlier cell (cell {index}) ran past the time "
                "limit and had to be stopped"
            )
            self._stop_kernel()
        except DeadKernelError:
            cell.outputs.append(
                error_output(
                    NOT_RUN,
                    "The kernel stopped while this cell ran, or just before it (this "
                    "cell or the one before exited, crashed or ran out of memory); the "
                    "cells after it were not run.",
                )
            )
            self._stopped_because = (
                f"the kernel stopped in an earlier cell (cell {index})"
            )
        return cell, resources

    def create_kernel_manager(self):
        if self.sandbox == sandboxing.SANDBOX_OFF:
            return super().create_kernel_manager()
        self.kernel_manager_class = sandboxing.SandboxedKernelManager
        km = super().create_kernel_manager()
        km.memory_limit_mb = self.memory_limit_mb  # set at launch, inherited inside
        return km

    def _prepare_kernel(self) -> None:
        self._prepared = True
        self._kernel_process().limit_address_space(self.memory_limit_mb)
        self._fingerprint = None
        if self.preamble.strip():
            reply = self._run_silently(self.preamble)
            if reply is None or reply["content"]["status"] != "ok":
                content = reply["content"] if reply else {}
                raise RuntimeError(
                    f"the grading preamble {self.preamble!r} failed in the kernel: "
                    f"{content.get('ename')}: {content.get('evalue')}"
                )
            self._fingerprint = self._read_fingerprint(reply)

    def _run_silently(self, code: str):
        return self.wait_for_reply(
            self.kc.execute(
                code,
                silent=True,
                store_history=False,
                user_expressions={"fingerprint": FINGERPRINT_EXPRESSION},
            )
        )

    @staticmethod
    def _read_fingerprint(reply) -> dict[str, int] | None:
        value = reply["content"].get("user_expressions", {}).get("fingerprint", {})
        if value.get("status") != "ok":
            return None
        try:
            # The expression returns a string (so that IPython's display cannot shorten
            # a long list); its text/plain form is that string's repr.
            return dict(ast.literal_eval(ast.literal_eval(value["data"]["text/plain"])))
        except (KeyError, ValueError, SyntaxError, TypeError):
            return None

    def _check_fingerprint(self, cell) -> None:
        """Flag ``cell`` if the code under test changed the grading environment.

        Two looks, run by the grader after the cell: the checks' own integrity test
        (which also puts the originals back, so that the next cell starts clean), and
        the comparison with the functions recorded after the preamble, which holds even
        when the integrity test itself was replaced.
        """
        if not self._fingerprint:
            return
        reply = self._run_silently(VERIFY_CODE)
        if reply is None:
            problem = "the checking code could not be inspected after this cell"
        elif reply["content"]["status"] != "ok":  # the message says it all
            message = str(reply["content"].get("evalue", ""))
            if INTEGRITY_MARKER not in message:
                message = f"{INTEGRITY_MARKER}: {message}"
            cell.outputs.append(error_output("IntegrityError", message))
            return
        else:
            now = self._read_fingerprint(reply)
            changed = (
                [
                    f"`{name}` was replaced"
                    for name, identity in self._fingerprint.items()
                    if now.get(name) != identity
                ]
                if now is not None
                else ["the checking code could not be inspected after this cell"]
            )
            problem = (
                (
                    "the grading environment was modified ("
                    + "; ".join(changed[:5])
                    + ("; ..." if len(changed) > 5 else "")
                    + ")"
                )
                if changed
                else ""
            )
        if problem:
            cell.outputs.append(
                error_output(
                    "IntegrityError",
                    f"{INTEGRITY_MARKER}: {problem}. This test cell gives no credit.",
                )
            )

    def _kernel_process(self) -> KernelProcess:
        return KernelProcess(
            self.km, self.log, strict=self.memory_limit_required, label="GuardedExecute"
        )

    def _stop_kernel(self) -> None:
        self._kernel_process().stop()

    # -- output ----------------------------------------------------------------------
    def output(self, outs, msg, display_id, cell_index):
        if not self.max_output_chars or msg["msg_type"] == "error":
            return super().output(outs, msg, display_id, cell_index)
        size = _message_size(msg)
        if self._output_chars + size <= self.max_output_chars:
            self._output_chars += size
            return super().output(outs, msg, display_id, cell_index)
        kept = _integrity_lines(msg)
        if kept:
            super().output(
                outs,
                _stream_message(msg, msg["content"]["name"], kept),
                None,
                cell_index,
            )
        if not self._output_truncated:
            self._output_truncated = True
            super().output(
                outs,
                _stream_message(msg, "stdout", OUTPUT_LIMIT_NOTICE + "\n"),
                None,
                cell_index,
            )
        return None


def _stream_message(like, name: str, text: str) -> dict:
    """A stream message with the same parent as ``like`` (whatever kind ``like`` is)."""
    header = {**like.get("header", {}), "msg_type": "stream"}
    return {
        **like,
        "header": header,
        "msg_type": "stream",
        "content": {"name": name, "text": text},
    }


def _message_size(msg) -> int:
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    return sum(len(str(value)) for value in content.get("data", {}).values())


def _integrity_lines(msg) -> str:
    text = msg.get("content", {}).get("text")
    if msg["msg_type"] != "stream" or not text or INTEGRITY_MARKER not in text:
        return ""
    lines = [line[:1000] for line in text.splitlines() if INTEGRITY_MARKER in line]
    return "\n".join(lines) + "\n"
