"""Exercise checks that the notebooks' test cells call.

* :mod:`seqbook.checks.core` -- readable failures and tensor comparisons;
* :mod:`seqbook.checks.guard` -- the "from primitives" guard;
* :mod:`seqbook.checks.integrity` -- detection of a tampered grading environment;
* :mod:`seqbook.checks._harness` -- what the section modules share (``@check``, ...);
* one module per section, named after it (:mod:`seqbook.book.sections`), with the checks
  of its exercises (:mod:`seqbook.checks.scaled_dot_product_attention`, ...).

Importing this package records the integrity baseline and imports every section's
check module, which captures the references it compares with; the locked set-up cell
of each notebook imports it before any student code runs.
"""

from seqbook.checks import unanswered

# a one-line message for stubs; before the baseline, which covers it
unanswered.install()

import importlib  # noqa: E402

from seqbook.book.sections import SECTIONS  # noqa: E402
from seqbook.checks import integrity  # noqa: E402 - records the baseline
from seqbook.checks.core import CheckFailure  # noqa: E402
from seqbook.checks.guard import ForbiddenCall, forbid_calls  # noqa: E402
from seqbook.checks.integrity import IntegrityError  # noqa: E402

__all__ = [
    "CheckFailure",
    "ForbiddenCall",
    "IntegrityError",
    "forbid_calls",
    "integrity",
]

# Every section's check module, named after the section (seqbook.book.sections), is
# imported here so that it captures its references before any student code runs; its
# checks are also reachable from this package (`checks.check_attention(...)`).
for _section in SECTIONS:
    _module = importlib.import_module(_section.check_module)
    globals()[_section.slug] = _module
    for _name in _module.__all__:
        if _name.startswith("check_"):
            if _name in globals():
                raise ImportError(f"two sections define a check called {_name}")
            globals()[_name] = getattr(_module, _name)
            __all__.append(_name)
del _section, _name

# Replacing a check helper (``seqbook.checks.core.expect_close = ...``) is detected by
# the next check that runs.
_PROTECTED = [
    *dict.fromkeys(name for section in SECTIONS for name in section.references),
    *(section.check_module for section in SECTIONS),
    "seqbook.checks.core",
    "seqbook.checks.guard",
    "seqbook.checks.integrity",
    # The package itself: a test cell calls ``checks.check_attention(...)``, so
    # replacing that name by a function that checks nothing must not go unnoticed.
    "seqbook.checks",
]
for _module in _PROTECTED:
    importlib.import_module(_module)
    integrity.protect_module(_module)
del _module
