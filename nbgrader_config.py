"""nbgrader configuration for the book's course directory (the repository root).

`solutions/` is nbgrader's source directory and `chapters/` its release directory, so
`make chapters` (which wraps `nbgrader generate_assignment`) writes the student versions
that the book renders. Each part folder (`attention`, `sequence_models`, ...) is one
nbgrader assignment; each section notebook in it is one notebook of that assignment.
"""

import os
import re
import sys

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

# The course's own grading tools (grading/ beside this file) are not an installed
# package: make them importable for every nbgrader command that reads this
# configuration.
_COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))
if _COURSE_ROOT not in sys.path:
    sys.path.append(_COURSE_ROOT)

c.CourseDirectory.course_id = "everything-is-a-mapping"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "chapters"

# Mark schemes of the hand-graded questions live beside each notebook in
# `<section>.marking.md`: instructors only, so never copied into the student release.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "*.marking.md",
]

# Each cell may run for five minutes before the kernel is interrupted (the default,
# 30 s, is too short for the training cells of later parts: fine-tuning's took over two
# minutes under the portable `default` CPU kernel on a slow day). An infinite loop in a
# student's answer therefore costs that run five minutes, not the whole grading session.
c.Execute.timeout = 300

# Submissions run under limits (grading/execution.py): the kernel's address space, a
# budget for the whole notebook, output per cell; a kernel that dies or cannot be
# interrupted costs the cells after it (marked "NotRun"), not the whole submission; and
# seqbook.checks is imported before the first cell, so its integrity baseline is taken
# before any student code runs. Virtual memory counts against the limit: the heaviest
# section (Part 5) peaks near 1.2 GB resident, far below it.
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties,
    CheckCellMetadata,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from grading.execution import INTEGRITY_MARKER, GuardedExecute  # noqa: E402

c.Autograde.autograde_preprocessors = [
    GuardedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
# Each kernel runs in an operating-system sandbox (grading/sandbox.py, bubblewrap): it
# sees the Python environment and a private copy of its own assignment folder -- not
# solutions/, not the gradebook, not other students -- with no network and no view of
# other processes. Where the sandbox cannot be made, autograding refuses.
# GRADING_SANDBOX=off opts out (only where every submission is graded in a container of
# its own): then the log warns, and the autograded notebook records it for the grade
# report (`python -m grading.report`).
c.GuardedExecute.sandbox = os.environ.get("GRADING_SANDBOX", "bubblewrap")
c.ClearMetadataPreprocessor.preserve_nb_metadata_mask = {
    ("language_info", "name"),
    ("seqbook_grading",),
}
# CUDA reserves tens of GB of address space when it starts, so on a grading machine with
# a GPU set GRADING_MEMORY_LIMIT_MB=0 and limit memory with the container instead.
c.GuardedExecute.memory_limit_mb = int(
    os.environ.get("GRADING_MEMORY_LIMIT_MB", "8192")
)
c.GuardedExecute.notebook_timeout = 1800
c.GuardedExecute.max_output_chars = 2_000_000  # a figure is 0.1-0.3 MB

# Put back test cells a student deleted, instead of silently skipping their points.
c.OverwriteCells.add_missing_cells = True

# nbgrader gives 0 points to a test cell with ANY stderr output, even when every assert
# passed. Warnings, progress bars and logging write to stderr, so we drop stderr outputs
# before grading -- except those carrying the integrity marker that seqbook's checks
# write when they detect tampering (see seqbook/checks/integrity.py). An exception still
# produces an `error` output, which this preprocessor never touches.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"^(?![\s\S]*" + re.escape(INTEGRITY_MARKER) + ")"

# Feedback returned to students must not reveal the hidden tests. nbgrader's default
# feedback renders the autograded notebook, hidden tests included; StripHiddenTests
# (grading/feedback.py) removes them from the sources and drops the traceback lines that
# quote them, keeping scores, comments and the checks' messages.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from grading.feedback import StripHiddenTests  # noqa: E402

c.GenerateFeedback.preprocessors = [
    GetGrades,
    StripHiddenTests,
    CSSHTMLHeaderPreprocessor,
]
