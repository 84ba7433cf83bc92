"""Exercise checks that the notebooks' test cells call.

* :mod:`seqbook.checks.core` -- readable failures and tensor comparisons;
* :mod:`seqbook.checks.guard` -- the "from primitives" guard;
* :mod:`seqbook.checks.integrity` -- detection of a tampered grading environment;
* one module per section with the checks of its exercises (:mod:`seqbook.checks.attention`,
  :mod:`seqbook.checks.language_models`, :mod:`seqbook.checks.convolution`, ...).

Importing this package records the integrity baseline and imports every section's
check module, which captures the references it compares with; the locked set-up cell
of each notebook imports it before any student code runs.
"""

from seqbook.checks import unanswered

unanswered.install()  # a one-line message for stubs; before the baseline, which covers it

from seqbook.checks import integrity  # noqa: E402 - records the baseline
from seqbook.checks.attention import (
    check_attention,
    check_causal_mask,
    check_padding_mask,
)
from seqbook.checks.decoding import check_beam_search, check_corpus_bleu
# Part 5's check modules are used as modules (`from seqbook.checks import lora`); importing
# them here captures their references before any student code runs.
from seqbook.checks import fine_tuning, lora, pretraining  # noqa: F401
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
from seqbook.checks.soft_lookup import check_gaussian_attention_pooling, check_training_step
from seqbook.checks.multi_head_attention import check_multi_head_attention, check_split_merge
from seqbook.checks.positional_information import (
    check_shift_matrix,
    check_sinusoidal_positional_encoding,
)
from seqbook.checks.feed_forward import (
    check_feed_forward,
    check_transformer_layer_parameters,
)
from seqbook.checks.layer_norm import check_layer_norm, check_pre_ln_block
from seqbook.checks.transformer_models import check_causal_lm_loss, check_masked_mean_pool
from seqbook.checks.seq2seq import check_additive_attention, check_decode_steps
from seqbook.checks.transformer_seq2seq import (
    check_label_smoothed_cross_entropy,
    check_seq2seq_masks,
)

__all__ = [
    "CheckFailure",
    "ForbiddenCall",
    "IntegrityError",
    "check_additive_attention",
    "check_attention",
    "check_beam_search",
    "check_bigram_perplexity",
    "check_bigram_perplexity_value",
    "check_build_vocabulary",
    "check_causal_conv1d",
    "check_corpus_bleu",
    "check_causal_lm_loss",
    "check_causal_mask",
    "check_decode_steps",
    "check_feed_forward",
    "check_gaussian_attention_pooling",
    "check_label_smoothed_cross_entropy",
    "check_layer_norm",
    "check_masked_mean_pool",
    "check_multi_head_attention",
    "check_pre_ln_block",
    "check_seq2seq_masks",
    "check_shift_matrix",
    "check_sinusoidal_positional_encoding",
    "check_split_merge",
    "check_training_step",
    "check_transformer_layer_parameters",
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
    "seqbook.counting",
    "seqbook.kernel_regression",
    "seqbook.positional",
    "seqbook.seq2seq",
    "seqbook.seq2seq_transformer",
    "seqbook.transformer",
    "seqbook.transformer_models",
    "seqbook.checks.core",
    "seqbook.checks.guard",
    "seqbook.checks.attention",
    "seqbook.checks.integrity",
    # The package itself: a test cell calls ``checks.check_attention(...)``, so replacing
    # that name by a function that checks nothing must not go unnoticed.
    "seqbook.checks",
):
    integrity.protect_module(_module)
del _module
