"""The book's sections: the one place that names them.

Each section has one name, its *slug*: the notebook is ``solutions/<part>/<slug>.ipynb``
(and its student version ``chapters/<part>/<slug>.ipynb``), its exercise checks live
in ``seqbook.checks.<slug>``. Everything that needs the list of sections, their grade-id
prefixes or the package modules their solutions define reads it from here: the checks
package (which imports every section's checks), the configuration and sync tests, the
grading round trips. Points are not repeated here: they live in the notebook's nbgrader
metadata, read by :func:`graded_cells`.

Adding a section: a :class:`Section` below (in book order), its notebook in
``solutions/<part>/``, its check module and its line in ``_toc.yml``
(``tests/book/test_config.py`` checks that this list and the table of contents agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PARTS", "SECTIONS", "Section", "by_slug", "graded_cells"]

# Part folders, in book order: one nbgrader assignment each.
PARTS = (
    "sequence_models",
    "attention",
    "transformer_block",
    "encoder_decoder",
    "pretraining",
)


@dataclass(frozen=True)
class Section:
    part: str  # folder under solutions/ and chapters/: the nbgrader assignment
    slug: str  # the notebook's name, and the name of its check module
    prefix: str  # grade ids of its cells start with "<prefix>-"
    # seqbook modules whose functions and classes the section's solutions define (the
    # same code, checked by tests/book/test_sync.py); empty when it defines none.
    references: tuple[str, ...] = ()

    @property
    def notebook(self) -> str:
        """``<part>/<slug>``: the path of both notebooks below solutions/ and
        chapters/."""
        return f"{self.part}/{self.slug}"

    @property
    def check_module(self) -> str:
        return f"seqbook.checks.{self.slug}"


SECTIONS = (
    Section(
        "sequence_models",
        "language_models",
        "lm",
        ("seqbook.text.vocab", "seqbook.models.ngram"),
    ),
    Section(
        "sequence_models",
        "recurrent_networks",
        "rnn",
        ("seqbook.models.recurrent_networks",),
    ),
    Section("sequence_models", "gated_units", "gated", ("seqbook.models.gated_units",)),
    Section(
        "sequence_models", "convolutions", "conv", ("seqbook.models.convolutions",)
    ),
    Section("attention", "soft_lookup", "lookup", ("seqbook.models.soft_lookup",)),
    Section(
        "attention",
        "scaled_dot_product_attention",
        "sdpa",
        ("seqbook.models.attention",),
    ),
    Section("attention", "multi_head_attention", "mha", ("seqbook.models.attention",)),
    Section(
        "attention",
        "positional_information",
        "pos",
        ("seqbook.models.attention", "seqbook.models.positional_information"),
    ),
    Section(
        "attention",
        "attention_at_scale",
        "scale",
        ("seqbook.models.attention_at_scale",),
    ),
    Section(
        "transformer_block",
        "feed_forward_networks",
        "ffn",
        ("seqbook.models.transformer", "seqbook.models.counting"),
    ),
    Section(
        "transformer_block",
        "residual_connections_and_layer_norm",
        "norm",
        ("seqbook.models.transformer",),
    ),
    Section(
        "transformer_block",
        "transformer_from_blocks",
        "tfm",
        ("seqbook.models.transformer_from_blocks",),
    ),
    Section(
        "transformer_block",
        "modern_decoder_block",
        "modern",
        ("seqbook.models.modern_decoder_block",),
    ),
    Section(
        "encoder_decoder",
        "seq2seq_attention",
        "s2s",
        ("seqbook.models.seq2seq_attention",),
    ),
    Section(
        "encoder_decoder",
        "transformer_seq2seq",
        "ed",
        ("seqbook.models.transformer_seq2seq",),
    ),
    Section(
        "encoder_decoder",
        "decoding_and_evaluation",
        "dec",
        ("seqbook.text.decoding", "seqbook.text.bleu"),
    ),
    Section(
        "pretraining",
        "pretraining_objectives",
        "pre",
        ("seqbook.models.pretraining_objectives",),
    ),
    Section("pretraining", "fine_tuning", "ft", ("seqbook.train.fine_tuning",)),
    Section(
        "pretraining",
        "parameter_efficient_fine_tuning",
        "lora",
        ("seqbook.models.parameter_efficient_fine_tuning",),
    ),
)


def by_slug(slug: str) -> Section:
    for section in SECTIONS:
        if section.slug == slug:
            return section
    raise KeyError(
        f"no section is called {slug!r}; the sections are listed in {__name__}"
    )


def graded_cells(notebook: Path) -> dict[str, float]:
    """Grade id -> points of every graded cell of ``notebook`` (nbgrader's metadata)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    points = {}
    for cell in cells:
        grading = cell.get("metadata", {}).get("nbgrader", {})
        if grading.get("grade"):
            points[grading["grade_id"]] = grading["points"]
    return points
