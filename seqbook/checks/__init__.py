"""Exercise checks that the notebooks' test cells call.

* :mod:`seqbook.checks.core` -- readable failures and tensor comparisons;
* :mod:`seqbook.checks.guard` -- the "from primitives" guard;
* :mod:`seqbook.checks.integrity` -- detection of a tampered grading environment;
* one module per part with the checks of its exercises (:mod:`seqbook.checks.attention`).

Importing this package records the integrity baseline, so the locked set-up cell of
each notebook imports it before any student code runs.
"""

from seqbook.checks import integrity  # first: records the baseline
from seqbook.checks.attention import (
    check_attention,
    check_causal_mask,
    check_padding_mask,
)
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall, forbid_calls
from seqbook.checks.integrity import IntegrityError

__all__ = [
    "CheckFailure",
    "ForbiddenCall",
    "IntegrityError",
    "check_attention",
    "check_causal_mask",
    "check_padding_mask",
    "forbid_calls",
    "integrity",
]

# Replacing a check helper (``seqbook.checks.core.expect_close = ...``) is detected by
# the next check that runs.
for _module in (
    "seqbook.attention",
    "seqbook.checks.core",
    "seqbook.checks.guard",
    "seqbook.checks.attention",
):
    integrity.protect_module(_module)
del _module
