"""Exercise checks that the notebooks' test cells call.

* :mod:`seqbook.checks.core` -- readable failures and tensor comparisons;
* :mod:`seqbook.checks.guard` -- the "from primitives" guard;
* :mod:`seqbook.checks.integrity` -- detection of a tampered grading environment;
* one module per section with the checks of its exercises (:mod:`seqbook.checks.attention`,
  :mod:`seqbook.checks.language_models`, :mod:`seqbook.checks.convolution`, ...).

Importing this package records the integrity baseline, so the locked set-up cell of
each notebook imports it before any student code runs.
"""

from seqbook.checks import integrity  # first: records the baseline
from seqbook.checks.attention import (
    check_attention,
    check_causal_mask,
    check_padding_mask,
)
from seqbook.checks.convolution import check_causal_conv1d, check_receptive_field
from seqbook.checks.core import CheckFailure
from seqbook.checks.gated import check_gru_cell, check_lstm_cell
from seqbook.checks.guard import ForbiddenCall, forbid_calls
from seqbook.checks.rnn import check_clip_grad_norm, check_rnn_forward
from seqbook.checks.integrity import IntegrityError
from seqbook.checks.language_models import (
    check_bigram_perplexity,
    check_bigram_perplexity_value,
    check_build_vocabulary,
)

__all__ = [
    "CheckFailure",
    "ForbiddenCall",
    "IntegrityError",
    "check_attention",
    "check_bigram_perplexity",
    "check_bigram_perplexity_value",
    "check_build_vocabulary",
    "check_causal_conv1d",
    "check_causal_mask",
    "check_clip_grad_norm",
    "check_gru_cell",
    "check_lstm_cell",
    "check_padding_mask",
    "check_receptive_field",
    "check_rnn_forward",
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
