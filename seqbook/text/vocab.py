"""Vocabularies: the map between tokens and integer ids.

Rules (the same as the exercise of the section "Sequences and language models"):

* the special tokens come first, in the order given (by default ``<pad>`` = 0,
  ``<unk>`` = 1);
* then every token seen at least ``min_freq`` times, most frequent first, ties broken
  alphabetically (so the result does not depend on the order of first appearance);
* a special token that also occurs in the text is not listed twice;
* encoding a token that is not in the vocabulary gives the id of ``<unk>``.

One class serves every section. Tokens are whatever the section chose, words or
characters (a string passed to :meth:`Vocabulary.encode` is a sequence of character
tokens; split words first). A vocabulary with a fixed order (SCAN's sorted words, the
entries a checkpoint stored) comes from :meth:`Vocabulary.from_entries`.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

__all__ = [
    "PAD",
    "UNK",
    "BOS",
    "EOS",
    "build_vocabulary",
    "Vocabulary",
    "char_tokens",
    "word_tokens",
]

PAD = "<pad>"
UNK = "<unk>"
BOS = "<bos>"  # begins a generated sequence
EOS = "<eos>"  # ends one


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
    """Token <-> id lookup: entry ``i`` of ``itos`` has id ``i``.

    ``Vocabulary(tokens, min_freq, specials)`` counts a corpus with
    :func:`build_vocabulary`; ``pad_id``, ``unk_id``, ``bos_id`` and ``eos_id`` are the
    ids of those special tokens, or None when the vocabulary has no such entry.
    """

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
        self._set_entries(build_vocabulary(tokens, min_freq, specials))

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> Vocabulary:
        """The vocabulary whose ids follow ``entries`` exactly (nothing counted or
        sorted). Without ``<unk>`` among them, encoding an unknown token is an
        error."""
        vocabulary = cls.__new__(cls)
        vocabulary._set_entries(list(entries))
        return vocabulary

    def _set_entries(self, entries: list[str]) -> None:
        if len(set(entries)) != len(entries):
            raise ValueError("a vocabulary lists each token once")
        self.itos = entries
        self.stoi = {token: index for index, token in enumerate(entries)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (
            self.stoi.get(special) for special in (PAD, UNK, BOS, EOS)
        )

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(
        self, tokens: Iterable[str], bos: bool = False, eos: bool = False
    ) -> list[int]:
        """Ids of ``tokens``, after ``<bos>`` and before ``<eos>`` when asked."""
        try:
            ids = [self._id(token) for token in tokens]
        except KeyError as error:
            if isinstance(tokens, str):  # read as characters: say so
                raise KeyError(
                    f"{error.args[0]} (a string is a sequence of character tokens; "
                    "pass a list of words, e.g. text.split())"
                ) from None
            raise
        if bos:
            ids.insert(0, self._special_id(BOS))
        if eos:
            ids.append(self._special_id(EOS))
        return ids

    def _id(self, token: str) -> int:
        index = self.stoi.get(token, self.unk_id)
        if index is None:
            raise KeyError(
                f"{token!r} is not in the vocabulary, which has no {UNK!r} entry "
                "for unknown tokens"
            )
        return index

    def _special_id(self, special: str) -> int:
        if special not in self.stoi:  # <unk> must not stand in for it
            raise ValueError(f"this vocabulary has no {special!r} entry")
        return self.stoi[special]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def decode_until_eos(self, ids: Iterable[int]) -> list[str]:
        """The tokens of a generated sequence: those before the first ``<eos>``,
        without ``<pad>`` and ``<bos>``."""
        tokens = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                tokens.append(self.itos[i])
        return tokens
