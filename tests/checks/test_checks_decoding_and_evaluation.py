"""The checks of "Decoding and evaluation": correct answers written in other ways pass
(repeatedly, in hidden mode), each classic mistake is rejected with a message that names
it, stubs and bad returns get clear messages, and the forbidden functions are
refused."""

from __future__ import annotations

import heapq
import math
from collections import Counter

import pytest
import torch

from seqbook.checks import decoding_and_evaluation as dec_checks
from seqbook.checks.core import CheckFailure
from seqbook.checks.guard import ForbiddenCall
from seqbook.text import bleu, decoding

sacrebleu = pytest.importorskip("sacrebleu")


# ------------------------------------------------------------------- beam search
# Written independently of seqbook.text.decoding (forbidden while answers run).
def make_beam(mistake=None):
    def beam_search(next_log_probs, bos_id, eos_id, beam_size, max_len, alpha=1.0):
        beam = [(0.0, [])]
        done = []  # (normalised, order, tokens, step)
        step = 0
        while beam and step < max_len:
            step += 1
            lp = next_log_probs(torch.tensor([[bos_id] + t for _, t in beam]))
            lp = lp.double()
            cands = []
            for r, (s, t) in enumerate(beam):
                for v in range(lp.shape[1]):
                    key = (
                        float(lp[r, v])
                        if mistake == "no prefix"
                        else s + float(lp[r, v])
                    )
                    cands.append((key, -r, -v, s + float(lp[r, v]), t + [v]))
            if mistake == "greedy paths" and step > 1:
                chosen = [max(c for c in cands if c[1] == -r) for r in range(len(beam))]
            else:
                k = beam_size if mistake == "refill" else beam_size - len(done)
                chosen = heapq.nlargest(k, cands)
            beam = []
            for _, _, _, total, tokens in chosen:
                if mistake != "extend" and (
                    tokens[-1] == eos_id or len(tokens) == max_len
                ):
                    n = len(tokens) + (1 if mistake == "bos length" else 0)
                    a = 0.0 if mistake == "no norm" else alpha
                    done.append((total / n**a, -len(done), tokens, step))
                elif mistake == "extend" and len(tokens) == max_len:
                    done.append(
                        (total / len(tokens) ** alpha, -len(done), tokens, step)
                    )
                else:
                    beam.append((total, tokens))
        if mistake == "first finished":
            best = done[0]
        elif mistake == "last step":
            best = max(d for d in done if d[3] == step)
        else:
            best = max(done)
        if mistake == "no norm score":  # right search, raw score returned
            return best[2], best[0] * len(best[2]) ** alpha
        return best[2], best[0]

    return beam_search


def beam_vectorised(next_log_probs, bos_id, eos_id, beam_size, max_len, alpha=1.0):
    """Another correct answer: tensors throughout, topk instead of a stable sort."""
    prefixes = torch.full((1, 1), bos_id)
    scores = torch.zeros(1, dtype=torch.float64)
    finished = []
    while prefixes.size(0):
        lp = next_log_probs(prefixes).double()
        total = (scores[:, None] + lp).flatten()
        k = min(beam_size - len(finished), total.numel())
        values, index = total.topk(k)
        rows, tokens = index // lp.size(1), index % lp.size(1)
        new = torch.cat([prefixes[rows], tokens[:, None]], dim=1)
        ended = (tokens == eos_id) | (new.size(1) - 1 == max_len)
        for seq, value in zip(new[ended], values[ended]):
            n = seq.numel() - 1
            finished.append((float(value) / n**alpha, seq[1:].tolist()))
        prefixes, scores = new[~ended], values[~ended]
    score, tokens = max(finished, key=lambda f: f[0])
    return tokens, score


@pytest.mark.parametrize("answer", [make_beam(), beam_vectorised])
def test_correct_beam_search_passes_visible_and_hidden(answer):
    dec_checks.check_beam_search(answer)
    for _ in range(25):
        dec_checks.check_beam_search(answer, hidden=True)


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("greedy paths", "separate greedy searches"),
        ("no prefix", "prefix's score"),
        ("no norm", "no length normalisation"),
        ("no norm score", "no length normalisation"),
        ("bos length", "counts <bos>"),
        ("first finished", "first hypothesis that finished"),
        ("last step", "best of ALL finished"),
        ("refill", "does not shrink"),
        ("extend", "after <eos>"),
    ],
)
def test_beam_mistakes_are_named(mistake, words):
    for hidden in (False, True, True, True):
        with pytest.raises(CheckFailure, match=words):
            dec_checks.check_beam_search(make_beam(mistake), hidden=hidden)


def test_beam_stub_bad_returns_and_forbidden_reference():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        dec_checks.check_beam_search(stub)
    with pytest.raises(CheckFailure, match="None"):
        dec_checks.check_beam_search(lambda *a, **k: None)
    with pytest.raises(CheckFailure, match="starts with <bos>"):
        dec_checks.check_beam_search(
            lambda f, b, e, k, n, alpha=1.0: (
                [b] + make_beam()(f, b, e, k, n, alpha)[0],
                0,
            )
        )
    with pytest.raises(CheckFailure, match="score"):
        dec_checks.check_beam_search(
            lambda f, b, e, k, n, alpha=1.0: (make_beam()(f, b, e, k, n, alpha)[0], 0.0)
        )
    with pytest.raises(CheckFailure, match="does not start with <bos>"):
        dec_checks.check_beam_search(
            lambda f, b, e, k, n, alpha=1.0: f(torch.tensor([[e]]))
        )
    with pytest.raises(ForbiddenCall):
        dec_checks.check_beam_search(lambda *a, **k: decoding.beam_search(*a, **k))


def test_table_scorer_is_independent_of_query_order():
    s = dec_checks.TableScorer(5, 0, 1, seed=3)
    a = s(torch.tensor([[0, 2, 3], [0, 3, 4]]))
    b = s(torch.tensor([[0, 3, 4], [0, 2, 3]]))
    assert torch.equal(a, b.flip(0))
    assert torch.allclose(a.exp().sum(-1), torch.ones(2, dtype=torch.float64))


# --------------------------------------------------------------------------- BLEU
def make_bleu(mistake=None):
    def corpus_bleu(hypotheses, references):
        stats = Counter()
        per_sentence_bp = []
        for h, refs in zip(hypotheses, references):
            ht = h.split()
            rts = [r.split() for r in refs]
            lens = sorted(len(r) for r in rts)
            if mistake == "longest":
                closest = lens[-1]
            else:
                closest = min(lens, key=lambda x: (abs(x - len(ht)), x))
            stats["c"] += len(ht)
            stats["r"] += closest
            per_sentence_bp.append(
                1.0 if len(ht) >= closest else math.exp(1 - closest / max(len(ht), 1))
            )
            for n in range(1, 5):
                grams = Counter(zip(*[ht[i:] for i in range(n)]))
                best = Counter()
                for rt in rts:
                    best = best | Counter(zip(*[rt[i:] for i in range(n)]))
                if mistake == "unclipped":
                    stats[f"m{n}"] += sum(c for g, c in grams.items() if g in best)
                else:
                    stats[f"m{n}"] += sum(min(c, best[g]) for g, c in grams.items())
                stats[f"t{n}"] += sum(grams.values())
        if not any(stats[f"m{n}"] for n in range(1, 5)):
            return 0.0
        logs, k = [], 1
        for n in range(1, 5):
            if stats[f"t{n}"] == 0:
                return 0.0
            if stats[f"m{n}"] == 0:
                k *= 2
                logs.append(math.log(1 / (k * stats[f"t{n}"])))
            else:
                logs.append(math.log(stats[f"m{n}"] / stats[f"t{n}"]))
        mean = (
            sum(math.exp(x) for x in logs) / 4
            if mistake == "arithmetic"
            else math.exp(sum(logs) / 4)
        )
        if mistake == "per sentence":
            bp = sum(per_sentence_bp) / len(per_sentence_bp)
        else:
            bp = (
                1.0
                if stats["c"] >= stats["r"]
                else math.exp(1 - stats["r"] / stats["c"])
            )
        return 100 * bp * mean

    return corpus_bleu


def sentence_average(hypotheses, references):
    good = make_bleu()
    return sum(good([h], [r]) for h, r in zip(hypotheses, references)) / len(hypotheses)


def test_correct_bleu_passes_visible_and_hidden():
    dec_checks.check_corpus_bleu(make_bleu())
    for _ in range(25):
        dec_checks.check_corpus_bleu(make_bleu(), hidden=True)


@pytest.mark.parametrize(
    "answer, words",
    [
        (sentence_average, "averages sentence-level"),
        (make_bleu("unclipped"), "not clipped"),
        (make_bleu("per sentence"), "per sentence"),
        (make_bleu("longest"), "longest reference"),
        (make_bleu("arithmetic"), "arithmetically"),
    ],
)
def test_bleu_mistakes_are_named(answer, words):
    for hidden in (False, True, True):
        with pytest.raises(CheckFailure, match=words):
            dec_checks.check_corpus_bleu(answer, hidden=hidden)


def test_bleu_scale_stub_and_forbidden():
    with pytest.raises(CheckFailure, match="0-100 scale"):
        dec_checks.check_corpus_bleu(lambda h, r: make_bleu()(h, r) / 100)
    with pytest.raises(CheckFailure, match="NotImplementedError"):
        dec_checks.check_corpus_bleu(
            lambda h, r: (_ for _ in ()).throw(NotImplementedError())
        )
    with pytest.raises(ForbiddenCall):
        dec_checks.check_corpus_bleu(lambda h, r: bleu.corpus_bleu(h, r))
    with pytest.raises(ForbiddenCall):
        dec_checks.check_corpus_bleu(
            lambda h, r: (
                sacrebleu.corpus_bleu(h, [[x[0] for x in r]], tokenize="none").score
            )
        )
    # the guard leaves sacrebleu working afterwards
    score = sacrebleu.corpus_bleu(["a b c d"], [["a b c d"]], tokenize="none").score
    assert score == pytest.approx(100.0)


@pytest.mark.parametrize("mistake", list(dec_checks._BLEU_MISTAKES))
def test_every_bleu_mistake_is_named_in_hidden_mode(mistake):
    message = dec_checks._BLEU_MISTAKES[mistake]
    for _ in range(4):
        with pytest.raises(CheckFailure) as failure:
            dec_checks.check_corpus_bleu(
                lambda h, r: dec_checks._bleu_variant(h, r, mistake), hidden=True
            )
        assert message in str(failure.value)


# The two wrong lengths rarely change the chosen tokens; their scores are diagnosed
# instead (test_beam_mistakes_are_named, "bos length").
@pytest.mark.parametrize(
    "mistake",
    [
        m
        for m in dec_checks._BEAM_MISTAKES
        if m not in ("length with bos", "length without eos")
    ],
)
def test_every_beam_mistake_is_named_in_hidden_mode(mistake):
    def answer(f, b, e, k, n, alpha=1.0):
        return dec_checks._beam_variant(f, b, e, k, n, alpha, mistake), 0.0

    for _ in range(3):
        with pytest.raises(CheckFailure) as failure:
            dec_checks.check_beam_search(answer, hidden=True)
        assert dec_checks._BEAM_MISTAKES[mistake] in str(failure.value)
