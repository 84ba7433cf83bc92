"""Vocabularies: the map between tokens and integer ids.

Rules (the same as the exercise of the section "Sequences and language models"):

* the special tokens come first, in the order given (by default ``<pad>`` = 0,
  ``<unk>`` = 1);
* then every token seen at least ``min_freq`` times, most frequent first, ties broken
  alphabetically (so the result does not depend on the order of first appearance);
* a special token that also occurs in the text is not listed twice;
* encoding a token that is not in the vocabulary gives the id of ``<unk>``.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

__all__ = ["PAD", "UNK", "build_vocabulary", "Vocabulary", "char_tokens", "word_tokens"]

PAD = "<pad>"
UNK = "<unk>"


def char_tokens(text: str) -> list[str]:
    """Character-level tokens: every character, spaces and newlines included."""
    return list(text)


def word_tokens(text: str) -> list[str]:
    """Word-level tokens: runs of letters, digits and apostrophes, and single
    punctuation marks."""
    import re

    return re.findall(r"[a-z0-9']+|[.,;:!?()\"-]", text)


def build_vocabulary(
    tokens: Iterable[str], min_freq: int = 1, specials: Sequence[str] = (PAD, UNK)
) -> list[str]:
    """The list of vocabulary entries (position = id), following the module's rules."""
    counts = Counter(tokens)
    frequent = [t for t, c in counts.items() if c >= min_freq and t not in specials]
    frequent.sort(key=lambda t: (-counts[t], t))
    return list(specials) + frequent


class Vocabulary:
    """Token <-> id lookup built with :func:`build_vocabulary`."""

    def __init__(
        self,
        tokens: Iterable[str],
        min_freq: int = 1,
        specials: Sequence[str] = (PAD, UNK),
    ) -> None:
        if UNK not in specials:
            raise ValueError(
                f"specials must include {UNK!r} so unknown tokens have an id"
            )
        tokens = list(tokens)
        self.counts = Counter(tokens)
        self.itos = build_vocabulary(tokens, min_freq, specials)
        self.stoi = {token: index for index, token in enumerate(self.itos)}
        self.unk_id = self.stoi[UNK]
        self.pad_id = self.stoi.get(PAD)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.stoi.get(token, self.unk_id) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]
