"""Old import paths of modules that were renamed, kept working for one release.

Published notebooks install ``seqbook`` from the repository (the Colab cell), so a
notebook saved before a rename may still import a module by its old name. Such an import
gets the module under its new name -- the very same module object, so the grading
integrity checks see one set of functions -- with a :class:`DeprecationWarning` that
names the new path. Remove an entry one release after the rename.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__all__ = ["MOVED", "install"]

# old module path -> new module path
MOVED = {
    # check modules named after their section (seqbook.sections), release 0.2
    "seqbook.checks.attention": "seqbook.checks.scaled_dot_product_attention",
    "seqbook.checks.convolution": "seqbook.checks.convolutions",
    "seqbook.checks.decoding": "seqbook.checks.decoding_and_evaluation",
    "seqbook.checks.feed_forward": "seqbook.checks.feed_forward_networks",
    "seqbook.checks.gated": "seqbook.checks.gated_units",
    "seqbook.checks.layer_norm": "seqbook.checks.residual_connections_and_layer_norm",
    "seqbook.checks.lora": "seqbook.checks.parameter_efficient_fine_tuning",
    "seqbook.checks.pretraining": "seqbook.checks.pretraining_objectives",
    "seqbook.checks.rnn": "seqbook.checks.recurrent_networks",
    "seqbook.checks.seq2seq": "seqbook.checks.seq2seq_attention",
    "seqbook.checks.transformer_models": "seqbook.checks.transformer_from_blocks",
    # modules grouped by role (models, data, train, text, book), release 0.2
    "seqbook.attention": "seqbook.models.attention",
    "seqbook.convolution": "seqbook.models.convolutions",
    "seqbook.gated": "seqbook.models.gated_units",
    "seqbook.rnn": "seqbook.models.recurrent_networks",
    "seqbook.kernel_regression": "seqbook.models.soft_lookup",
    "seqbook.ngram": "seqbook.models.ngram",
    "seqbook.transformer": "seqbook.models.transformer",
    "seqbook.transformer_models": "seqbook.models.transformer_from_blocks",
    "seqbook.seq2seq": "seqbook.models.seq2seq_attention",
    "seqbook.seq2seq_transformer": "seqbook.models.transformer_seq2seq",
    "seqbook.lora": "seqbook.models.parameter_efficient_fine_tuning",
    "seqbook.positional": "seqbook.models.positional_information",
    "seqbook.pretraining": "seqbook.models.pretraining_objectives",
    "seqbook.pretrained": "seqbook.models.pretrained",
    "seqbook.counting": "seqbook.models.counting",
    "seqbook.corpus": "seqbook.data.corpus",
    "seqbook.memory_task": "seqbook.data.memory_task",
    "seqbook.repeat_task": "seqbook.data.repeat_task",
    "seqbook.head_tasks": "seqbook.data.head_tasks",
    "seqbook.timeseries": "seqbook.data.timeseries",
    "seqbook.training": "seqbook.train.loop",
    "seqbook.fine_tuning": "seqbook.train.fine_tuning",
    "seqbook.depth_experiments": "seqbook.train.depth_experiments",
    "seqbook.vocab": "seqbook.text.vocab",
    "seqbook.decoding": "seqbook.text.decoding",
    "seqbook.metrics": "seqbook.text.bleu",
    "seqbook.plotting": "seqbook.book.plotting",
    "seqbook.measure": "seqbook.book.measure",
    "seqbook.claims": "seqbook.book.claims",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec):
        module = importlib.import_module(self.new_name)
        self.original_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The module has run under its new name already; importlib just set its
        # __spec__ to the old name's: put the real one back.
        module.__spec__ = self.original_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        warnings.warn(
            f"`{fullname}` was renamed `{new_name}`; import it under that name "
            "(the old name stops working in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new_name))


_FINDER = _MovedModuleFinder()


def install() -> None:
    """Let the old names in :data:`MOVED` import (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
