"""seqbook.text.vocab (one vocabulary for every section) and exact match."""

import pytest

from seqbook.text.metrics import exact_match
from seqbook.text.vocab import (
    BOS,
    EOS,
    PAD,
    UNK,
    Vocabulary,
    build_vocabulary,
    word_tokens,
)


def test_vocabulary_order_specials_and_unknowns():
    tokens = ["b", "a", "c", "a", "b", "a", "<unk>", "d"]
    assert build_vocabulary(tokens, min_freq=2) == [PAD, UNK, "a", "b"]
    assert build_vocabulary(tokens) == [
        PAD,
        UNK,
        "a",
        "b",
        "c",
        "d",
    ]  # ties alphabetical
    vocab = Vocabulary(tokens, min_freq=2)
    assert vocab.encode(["a", "zebra", "b"]) == [2, 1, 3]
    assert vocab.decode([3, 2]) == ["b", "a"] and vocab.pad_id == 0 and len(vocab) == 4


def test_word_tokens_split_punctuation():
    assert word_tokens('it\'s "x", (y).') == [
        "it's",
        '"',
        "x",
        '"',
        ",",
        "(",
        "y",
        ")",
        ".",
    ]


def test_exact_match_splits_on_whitespace_and_gives_a_percentage():
    assert exact_match(["a b", "c"], ["a  b", "d"]) == 50.0


def test_fixed_entries_keep_their_order_and_add_sequence_markers():
    vocab = Vocabulary.from_entries([PAD, BOS, EOS, "walk", "jump"])
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, None)
    ids = vocab.encode(["jump", "walk"], bos=True, eos=True)
    assert ids == [1, 4, 3, 2]
    assert vocab.decode(ids) == [BOS, "jump", "walk", EOS]
    assert vocab.decode_until_eos(ids + [0, 0]) == ["jump", "walk"]
    assert vocab.decode_until_eos([4, 2, 3]) == ["jump"]  # stops at the first <eos>


def test_unknown_tokens_and_missing_markers_are_errors_not_silent_ids():
    vocab = Vocabulary.from_entries([PAD, BOS, EOS, "walk"])
    with pytest.raises(KeyError, match="'run' is not in the vocabulary"):
        vocab.encode(["run"])
    with pytest.raises(KeyError, match="pass a list of words"):
        vocab.encode("walk")  # 'w' is not a token of this vocabulary
    counted = Vocabulary(["a", "b"])  # has <unk>, but no <bos>
    with pytest.raises(ValueError, match="no '<bos>' entry"):
        counted.encode(["a"], bos=True)
    with pytest.raises(ValueError, match="each token once"):
        Vocabulary.from_entries([PAD, "a", "a"])


def test_a_string_is_a_sequence_of_character_tokens():
    vocab = Vocabulary("abcab", specials=(PAD, UNK, EOS))
    assert vocab.encode("ba", eos=True) == vocab.encode(["b", "a"]) + [vocab.eos_id]
