"""seqbook.models.ngram: smoothed n-gram models and their perplexity, by hand."""

import math

import pytest

from seqbook.models.ngram import NGramModel, bigram_perplexity


def test_bigram_perplexity_by_hand():
    # train pairs: (0,1) (1,0) (0,1); V = 2, k = 1
    # P(1|0) = (2+1)/(2+2) = 3/4, P(0|1) = (1+1)/(1+2) = 2/3
    ppl = bigram_perplexity([0, 1, 0, 1], [0, 1, 0], vocab_size=2, k=1.0)
    assert ppl == pytest.approx(math.exp(-(math.log(3 / 4) + math.log(2 / 3)) / 2))
    model = NGramModel(2, 2, k=1.0).fit([0, 1, 0, 1])
    assert model.perplexity([0, 1, 0]) == pytest.approx(ppl)


def test_unigram_with_huge_k_is_uniform():
    assert NGramModel(1, 5, k=1e9).fit([0, 0, 1]).perplexity(
        [2, 3, 4]
    ) == pytest.approx(5.0)


def test_ngram_refuses_a_short_context():
    with pytest.raises(ValueError, match="needs 2 context tokens, got 1"):
        NGramModel(3, 4).fit([0, 1, 2, 3]).prob([1], 2)
