"""Checks for the exercises of the section "Decoding and evaluation".

``check_beam_search`` grades ``beam_search(next_log_probs, bos_id, eos_id, beam_size,
max_len, alpha)`` on scoring models built from tables of log-probabilities (hand-built
ones where greedy and beam search disagree or where length normalisation changes the
winner, and random ones, compared with an exhaustive search when the beam is wide enough
to hold every sequence). ``check_corpus_bleu`` grades ``corpus_bleu(hypotheses,
references)`` against ``sacrebleu.corpus_bleu(..., tokenize="none")`` (or the book's
reference when sacrebleu is not installed), with sacrebleu and the reference disabled
while the student's code runs. Both name the classic mistakes.

``hidden=False`` is the friendly visible check; ``hidden=True`` draws token ids, tables,
corpora and settings at grading time from a fresh random seed.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable

import torch

from seqbook.checks import integrity
from seqbook.checks._harness import check
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    grading_generator,
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.text import bleu as _bleu
from seqbook.text import decoding as _decoding

try:  # sacrebleu is the standard the exercise is graded against
    import sacrebleu as _sacrebleu

    _sacrebleu_corpus_bleu = _sacrebleu.corpus_bleu
except ImportError:  # pragma: no cover - the book's reference equals it (tested)
    _sacrebleu_corpus_bleu = None

__all__ = ["check_beam_search", "check_corpus_bleu", "TableScorer"]

# Captured at import, before any student code can touch the modules.
_reference_beam = _decoding.beam_search
_reference_bleu = _bleu.corpus_bleu
_ngram_counts = _bleu.ngram_counts

_BEAM_FORBIDDEN = existing_paths(
    ("seqbook.text.decoding.beam_search", "seqbook.text.decoding.exhaustive_search")
)
_BLEU_FORBIDDEN = existing_paths(
    (
        "sacrebleu.corpus_bleu",
        "sacrebleu.sentence_bleu",
        "sacrebleu.compat.corpus_bleu",
        "sacrebleu.metrics.bleu.BLEU.corpus_score",
        "seqbook.text.bleu.corpus_bleu",
    )
)


# ----------------------------------------------------------------- scoring models
def _prefix_seed(seed: int, prefix: tuple[int, ...]) -> int:
    """A seed that depends only on ``seed`` and the prefix (not on the query order)."""
    value = seed % (1 << 61)
    for token in prefix:
        value = (value * 1_000_003 + token + 1) % ((1 << 61) - 1)
    return value


class TableScorer:
    """A scoring model ``next_log_probs(prefixes (N, t)) -> (N, V)`` read from a table.

    ``table`` maps a prefix (a tuple starting with ``<bos>``) to a probability per token
    (a dict); a prefix not in the table gets random log-probabilities that depend only
    on the prefix and ``seed``. ``<bos>`` is never likely. The scorer records whether it
    was asked about a prefix that already contains ``<eos>``."""

    def __init__(
        self,
        vocab_size: int,
        bos_id: int,
        eos_id: int,
        seed: int = 0,
        table: dict | None = None,
        sharpness: float = 1.5,
        eos_bias: float = 0.0,
    ) -> None:
        self.vocab_size, self.bos_id, self.eos_id = vocab_size, bos_id, eos_id
        self.seed, self.table = seed, dict(table or {})
        self.sharpness, self.eos_bias = sharpness, eos_bias
        self.saw_finished = False
        self.calls = 0

    def row(self, prefix: tuple[int, ...]) -> torch.Tensor:
        if prefix in self.table:
            probs = torch.full((self.vocab_size,), 1e-4, dtype=torch.double)
            for token, p in self.table[prefix].items():
                probs[token] = p
            return (probs / probs.sum()).log()
        g = torch.Generator().manual_seed(_prefix_seed(self.seed, prefix))
        logits = torch.randn(self.vocab_size, generator=g, dtype=torch.double)
        logits = logits * self.sharpness
        logits[self.eos_id] += self.eos_bias
        logits[self.bos_id] = -30.0
        return logits.log_softmax(dim=-1)

    def __call__(self, prefixes: Any) -> torch.Tensor:
        self.calls += 1
        if not isinstance(prefixes, torch.Tensor):
            raise CheckFailure(
                "next_log_probs must be called with a LongTensor of prefixes of shape "
                f"(N, t), got {type(prefixes).__name__}."
            )
        if prefixes.dim() != 2 or prefixes.dtype not in (torch.long, torch.int32):
            raise CheckFailure(
                "next_log_probs must be called with an integer tensor of shape (N, t) "
                f"(one prefix per row), got shape {tuple(prefixes.shape)} and dtype "
                f"{prefixes.dtype}."
            )
        rows = [tuple(int(i) for i in row) for row in prefixes.tolist()]
        if not rows or any(not row or row[0] != self.bos_id for row in rows):
            raise CheckFailure(
                "next_log_probs was called with a prefix that does not start with "
                f"<bos> (id {self.bos_id}): every prefix is <bos> followed by the "
                "tokens chosen so far."
            )
        if any(self.eos_id in row[1:] for row in rows):
            self.saw_finished = True
        return torch.stack([self.row(row) for row in rows])  # (N, V), float64


# ------------------------------------------------------------ the classic mistakes
def _beam_variant(scorer, bos_id, eos_id, beam_size, max_len, alpha, mistake):
    """Beam search as the classic mistakes write it (tokens only)."""
    alive = [([], 0.0)]
    finished = []  # (normalised score, raw score, tokens, step)
    step = 0
    while alive and step < max_len:
        step += 1
        log_probs = scorer(torch.tensor([[bos_id] + t for t, _ in alive])).double()
        slots = beam_size - len(finished)
        if mistake == "refill":
            slots = beam_size
        candidates = []  # (rank key, raw total, row, token)
        for row, (tokens, score) in enumerate(alive):
            for token in range(log_probs.size(1)):
                lp = float(log_probs[row, token])
                key = lp if mistake == "no prefix" else score + lp
                candidates.append((key, score + lp, row, token))
        if mistake == "greedy paths" and step > 1:
            chosen = []
            for row in range(len(alive)):
                mine = [c for c in candidates if c[2] == row]
                chosen.append(max(mine, key=lambda c: c[0]))
        elif mistake == "grows":
            chosen = []
            for row in range(len(alive)):
                mine = sorted(
                    (c for c in candidates if c[2] == row), key=lambda c: -c[0]
                )
                chosen.extend(mine[:beam_size])
        else:
            chosen = sorted(candidates, key=lambda c: -c[0])[:slots]
        survivors = []
        for _, total, row, token in chosen:
            tokens = alive[row][0] + [token]
            if token == eos_id or len(tokens) == max_len:
                length = len(tokens)
                if mistake == "length without eos":
                    length = max(1, length - (token == eos_id))
                elif mistake == "length with bos":
                    length += 1
                power = 0.0 if mistake == "no normalisation" else alpha
                finished.append((total / length**power, total, tokens, step))
            else:
                survivors.append((tokens, total))
        alive = survivors
    if not finished:
        return None
    if mistake == "first finished":
        return finished[0][2]
    if mistake == "last step":
        last = [f for f in finished if f[3] == step]
        return max(last, key=lambda f: f[0])[2] if last else None
    return max(finished, key=lambda f: f[0])[2]


_BEAM_MISTAKES = {
    "greedy paths": "after the first step each hypothesis is extended only by its own "
    "best token, so the search is beam_size separate greedy searches. Rank ALL "
    "(hypothesis, token) candidates together and keep the best ones overall",
    "grows": "every hypothesis keeps its own top beam_size tokens and all of them "
    "survive, so the beam grows. Keep only the best beam_size candidates over all "
    "hypotheses x tokens",
    "no prefix": "candidates are ranked by the new token's log-probability alone: add "
    "the prefix's score (sum of its log-probabilities) before ranking",
    "no normalisation": "there is no length normalisation: the finished hypotheses are "
    "compared by their raw sum of log-probabilities, which favours short outputs. "
    "Compare sum / length ** alpha",
    "length without eos": "the length used for normalisation leaves out <eos>; in this "
    "exercise the length counts every generated token, <eos> included (not <bos>)",
    "length with bos": "the length used for normalisation counts <bos>; it counts the "
    "generated tokens only, <eos> included",
    "first finished": "it returns the first hypothesis that finished; return the best "
    "finished hypothesis by normalised score once the search is over",
    "last step": "it returns the best hypothesis of the last step, ignoring those that "
    "finished earlier and were set aside; return the best of ALL finished hypotheses",
    "refill": "the beam does not shrink: after a hypothesis finishes, its slot is "
    "given to another candidate. In this exercise finished hypotheses keep their slots "
    "(take the best beam_size - (number finished) candidates each step)",
}


def _as_tokens(value: Any, what: str) -> list[int]:
    if isinstance(value, torch.Tensor):
        if value.dim() != 1:
            raise CheckFailure(
                f"{what}: the tokens should be a list of ints (or a 1-D "
                f"tensor), got a tensor of shape {tuple(value.shape)}."
            )
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise CheckFailure(
            f"{what}: the tokens should be a list of ints, got {type(value).__name__}."
        )
    try:
        return [int(t) for t in value]
    except (TypeError, ValueError) as err:
        raise CheckFailure(f"{what}: the tokens should be ints ({err}).") from err


def _run_beam(fn, case) -> tuple[list[int], float, TableScorer]:
    label, make, bos_id, eos_id, beam_size, max_len, alpha = case
    scorer = make()
    what = f"beam_search on {label}"
    with forbid_calls(*_BEAM_FORBIDDEN, reason="write the search yourself."):
        result = call_student(
            fn, scorer, bos_id, eos_id, beam_size, max_len, alpha=alpha, what=what
        )
    if result is None:
        raise CheckFailure(f"{what} returned None: did you forget a `return`?")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailure(
            f"{what} should return a pair (tokens, score), got {type(result).__name__}."
        )
    tokens = _as_tokens(result[0], what)
    try:
        score = float(result[1])
    except (TypeError, ValueError) as err:
        raise CheckFailure(f"{what}: the score should be a number ({err}).") from err
    if tokens and tokens[0] == bos_id and bos_id != eos_id:
        raise CheckFailure(
            f"{what} returned a sequence that starts with <bos> (id "
            f"{bos_id}); return the generated tokens only."
        )
    if eos_id in tokens[:-1]:
        raise CheckFailure(
            f"{what} returned {tokens}, which goes on after <eos> (id {eos_id}): "
            "finished hypotheses must not be extended. Set a hypothesis aside as soon "
            "as it ends with <eos>."
        )
    if len(tokens) > max_len:
        raise CheckFailure(
            f"{what} returned {len(tokens)} tokens, more than max_len={max_len}."
        )
    return tokens, score, scorer


def _hand_built_greedy_trap(g, hidden):
    """Greedy takes the likelier first token and ends up worse: ids permuted."""
    ids = torch.randperm(6, generator=g).tolist() if hidden else [0, 1, 2, 3, 4, 5]
    bos, eos, a, b, c, d = ids
    table = {
        (bos,): {a: 0.55, b: 0.45},
        (bos, a): {c: 0.48, d: 0.47, b: 0.05},
        (bos, b): {c: 0.4, d: 0.3, a: 0.3},
        (bos, a, c): {eos: 0.2, a: 0.8},
        (bos, a, d): {eos: 0.95, b: 0.05},
        (bos, a, c, a): {eos: 0.55, d: 0.45},
        (bos, b, c): {eos: 0.5, a: 0.45, d: 0.05},
    }
    return bos, eos, table


def _hand_built_length_trap(g, hidden):
    """Stopping at once is likelier; a longer output is better per token."""
    ids = torch.randperm(5, generator=g).tolist() if hidden else [0, 1, 2, 3, 4]
    bos, eos, a, b, c = ids
    table = {
        (bos,): {eos: 0.5, a: 0.45, b: 0.05},
        (bos, a): {a: 0.9, c: 0.1},
        (bos, a, a): {eos: 0.9, b: 0.1},
        (bos, b): {eos: 0.9, a: 0.1},
        (bos, a, c): {eos: 0.9, b: 0.1},
    }
    return bos, eos, table


def _hand_built_early_finisher(g, hidden):
    """The first hypothesis to finish is not the best one."""
    ids = torch.randperm(5, generator=g).tolist() if hidden else [0, 1, 2, 3, 4]
    bos, eos, a, b, c = ids
    table = {
        (bos,): {a: 0.5, b: 0.3, eos: 0.2},
        (bos, a): {eos: 0.9, c: 0.1},
        (bos, b): {eos: 0.9, c: 0.1},
    }
    return bos, eos, table


_SEPARATED = (
    "no prefix",
    "refill",
    "greedy paths",
    "grows",
    "no normalisation",
    "first finished",
    "last step",
)


def _random_case(g, hidden, i):
    vocab = random_int(g, 4, 7)
    bos, eos = (0, 1) if not hidden else torch.randperm(vocab, generator=g)[:2].tolist()
    seed = random_int(g, 0, 2**40)
    beam = random_int(g, 2, 4)
    max_len = random_int(g, 3, 6)
    alpha = [1.0, 0.6, 1.0, 0.8][i % 4]
    sharpness = [0.5, 1.0, 2.0][i % 3]
    return (
        f"a random model (V={vocab}, beam_size={beam}, max_len={max_len}, "
        f"alpha={alpha:g}, model {i + 1})",
        lambda v=vocab, b=bos, e=eos, s=seed, h=sharpness: TableScorer(
            v, b, e, seed=s, sharpness=h, eos_bias=-0.3
        ),
        bos,
        eos,
        beam,
        max_len,
        alpha,
    )


def _separating_case(g, hidden, mistake, i):
    for _ in range(200):
        case = _random_case(g, hidden, i)
        expected, _ = _reference_beam(case[1](), *case[2:])
        if _beam_variant(case[1](), *case[2:], mistake) != expected:
            return case
    return case  # pragma: no cover - found within a few draws in practice


def _beam_cases(hidden: bool) -> list[tuple]:
    g = grading_generator(hidden)
    cases = []
    bos, eos, table = _hand_built_greedy_trap(g, hidden)
    cases.append(
        (
            "a hand-built model where greedy and beam search disagree (beam_size=2)",
            lambda t=table, b=bos, e=eos: TableScorer(6, b, e, table=t),
            bos,
            eos,
            2,
            4,
            1.0,
        )
    )
    bos, eos, table = _hand_built_length_trap(g, hidden)
    for alpha in (1.0, 0.0):
        cases.append(
            (
                f"a hand-built model where length normalisation matters "
                f"(beam_size=2, alpha={alpha:g})",
                lambda t=table, b=bos, e=eos: TableScorer(5, b, e, table=t),
                bos,
                eos,
                2,
                4,
                alpha,
            )
        )
    bos, eos, table = _hand_built_early_finisher(g, hidden)
    cases.append(
        (
            "a hand-built model where the first hypothesis to finish is not the "
            "best (beam_size=3)",
            lambda t=table, b=bos, e=eos: TableScorer(5, b, e, table=t),
            bos,
            eos,
            3,
            4,
            1.0,
        )
    )
    # Random models, each drawn until it tells one classic mistake from the right
    # answer (so every mistake is exposed, whatever the seed).
    for i, mistake in enumerate(_SEPARATED):
        cases.append(_separating_case(g, hidden, mistake, i))
    vocab = random_int(g, 4, 6)
    bos, eos = (0, 1) if not hidden else torch.randperm(vocab, generator=g)[:2].tolist()
    seed = random_int(g, 0, 2**40)
    cases.append(
        (
            f"a random model with beam_size=1 (must equal greedy, V={vocab})",
            lambda v=vocab, b=bos, e=eos, s=seed: TableScorer(v, b, e, seed=s),
            bos,
            eos,
            1,
            5,
            1.0,
        )
    )
    for i in range(2 if hidden else 1):
        vocab, max_len = random_int(g, 3, 4), 3
        bos, eos = (
            (0, 1) if not hidden else torch.randperm(vocab, generator=g)[:2].tolist()
        )
        seed = random_int(g, 0, 2**40)
        alpha = [1.0, 0.5][i]
        cases.append(
            (
                f"a random model with beam_size = V ** max_len = "
                f"{vocab**max_len} (must equal an exhaustive search, "
                f"alpha={alpha:g})",
                lambda v=vocab, b=bos, e=eos, s=seed: TableScorer(
                    v, b, e, seed=s, sharpness=0.7
                ),
                bos,
                eos,
                vocab**max_len,
                max_len,
                alpha,
            )
        )
    return cases


@check
def check_beam_search(beam_search: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``beam_search(next_log_probs, bos_id, eos_id, beam_size, max_len, alpha)``
    -> ``(tokens, score)`` against the book's reference (an exhaustive search when the
    beam holds every sequence)."""
    cases = _beam_cases(hidden)
    results = []
    for case in cases:
        results.append(_run_beam(beam_search, case))
        integrity.verify()
    failures, score_failures = [], []
    for case, (tokens, score, scorer) in zip(cases, results):
        label, make, bos_id, eos_id, beam_size, max_len, alpha = case
        expected_tokens, expected_score = _reference_beam(
            make(), bos_id, eos_id, beam_size, max_len, alpha
        )
        if tokens != expected_tokens:
            failures.append((case, tokens, expected_tokens, expected_score))
        elif abs(score - expected_score) > 1e-5 * max(1.0, abs(expected_score)):
            score_failures.append((case, tokens, score, expected_score))
    if failures:
        _diagnose_beam(cases, results, failures)
    if score_failures:
        _diagnose_score(*score_failures[0])
    return f"beam_search is correct on {len(cases)} scoring models."


def _diagnose_beam(cases, results, failures):
    matching = []
    for mistake in _BEAM_MISTAKES:
        if all(
            _beam_variant(case[1](), *case[2:], mistake) == tokens
            for case, (tokens, _, _) in zip(cases, results)
        ):
            matching.append(mistake)
    case, tokens, expected_tokens, expected_score = failures[0]
    where = f"beam_search on {case[0]} returned {tokens}, expected {expected_tokens}"
    if len(matching) == 1:
        raise CheckFailure(f"{where}: {_BEAM_MISTAKES[matching[0]]}.")
    if matching:
        raise CheckFailure(
            f"{where}. It behaves like one of these mistakes: "
            + " OR ".join(_BEAM_MISTAKES[m] for m in matching)
            + "."
        )
    if any(result[2].saw_finished for result in results):
        raise CheckFailure(
            f"{where}. Your search asked the model about prefixes that already contain "
            "<eos>: it seems to extend finished hypotheses. Set a hypothesis aside as "
            "soon as it ends with <eos>."
        )
    raise CheckFailure(
        f"{where} (score {expected_score:.6g} = sum log p / length ** alpha). Check "
        "that you rank all (hypothesis, token) candidates by prefix score + token "
        "log-probability, keep beam_size - (finished so far) of them, and return the "
        "best finished hypothesis by normalised score."
    )


def _diagnose_score(case, tokens, score, expected_score):
    alpha = case[6]
    length = len(tokens)
    raw = expected_score * length**alpha
    hint = ""
    if abs(score - raw) <= 1e-5 * max(1.0, abs(raw)):
        hint = (
            " It is the raw sum of log-probabilities: there is no length "
            "normalisation of the score; divide by length ** alpha."
        )
    elif abs(score - raw / (length + 1) ** alpha) <= 1e-5 * max(1.0, abs(raw)):
        hint = " The length used counts <bos>; count the generated tokens only."
    elif length > 1 and abs(score - raw / (length - 1) ** alpha) <= 1e-5:
        hint = " The length used leaves out <eos>; it should count <eos>."
    raise CheckFailure(
        f"beam_search on {case[0]} found the right tokens {tokens} but returned "
        f"the score {score:.6g}; expected {expected_score:.6g} = (sum of "
        "log-probabilities) / length ** alpha, the length counting <eos>." + hint
    )


# --------------------------------------------------------------------------- BLEU
def _expected_bleu(hypotheses, references) -> float:
    if _sacrebleu_corpus_bleu is None:
        return _reference_bleu(hypotheses, references)
    width = max(len(r) for r in references)
    streams = [[r[i] if i < len(r) else None for r in references] for i in range(width)]
    return _sacrebleu_corpus_bleu(hypotheses, streams, tokenize="none").score


def _bleu_variant(hypotheses, references, mistake) -> float:
    """Corpus BLEU as the classic mistakes compute it."""
    if mistake == "sentence average":
        return sum(
            _bleu_variant([h], [r], "none") for h, r in zip(hypotheses, references)
        ) / len(hypotheses)
    matches, totals = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    brevities = []
    for hypothesis, refs in zip(hypotheses, references):
        tokens = hypothesis.split()
        ref_tokens = [r.split() for r in refs]
        if mistake == "first reference":
            ref_tokens = ref_tokens[:1]
        lengths = [len(r) for r in ref_tokens]
        if mistake == "longest reference":
            closest = max(lengths)
        elif mistake == "shortest reference":
            closest = min(lengths)
        elif mistake == "tie longer":
            closest = min(lengths, key=lambda r: (abs(r - len(tokens)), -r))
        else:
            closest = min(lengths, key=lambda r: (abs(r - len(tokens)), r))
        hyp_len += len(tokens)
        ref_len += closest
        brevities.append(
            1.0
            if len(tokens) >= closest
            else (math.exp(1 - closest / len(tokens)) if tokens else 0.0)
        )
        for n in range(1, 5):
            counts = _ngram_counts(tokens, n)
            ceiling = Counter()
            for r in ref_tokens:
                if mistake == "sum clip":
                    ceiling += _ngram_counts(r, n)
                else:
                    ceiling |= _ngram_counts(r, n)
            if mistake == "unclipped":
                matches[n - 1] += sum(c for gram, c in counts.items() if ceiling[gram])
            else:
                matches[n - 1] += sum(
                    min(c, ceiling[gram]) for gram, c in counts.items()
                )
            totals[n - 1] += sum(counts.values())
    if sum(matches) == 0:
        return 0.0
    precisions, zeros = [], 0
    for n in range(4):
        if totals[n] == 0:
            return 0.0
        if matches[n] == 0:
            if mistake == "no smoothing":
                return 0.0
            zeros += 1
            precisions.append(1.0 / (2**zeros * totals[n]))
        else:
            precisions.append(matches[n] / totals[n])
    if mistake == "arithmetic mean":
        mean = sum(precisions) / 4
    else:
        mean = math.exp(sum(math.log(p) for p in precisions) / 4)
    if mistake == "per-sentence brevity":
        brevity = sum(brevities) / len(brevities)
    elif mistake == "no brevity":
        brevity = 1.0
    else:
        brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * brevity * mean


_BLEU_MISTAKES = {
    "sentence average": "it averages sentence-level BLEU scores; corpus BLEU pools the "
    "n-gram counts and lengths of all segments first and computes ONE score",
    "unclipped": "n-gram matches are not clipped: a hypothesis n-gram counts at most "
    "as many times as it occurs in a reference (min(count, max over references))",
    "sum clip": "the clipping ceiling adds up the counts of all references; it is the "
    "MAXIMUM count in any single reference",
    "per-sentence brevity": "the brevity penalty is computed per sentence and "
    "averaged; it is computed once, from the total hypothesis length and the total "
    "(closest) reference length of the corpus",
    "no brevity": "there is no brevity penalty: multiply by exp(1 - r / c) when the "
    "total hypothesis length c is below the total reference length r",
    "longest reference": "the reference length used is the longest reference; use the "
    "reference length closest to the hypothesis's (the shorter one on a tie)",
    "shortest reference": "the reference length used is the shortest reference; use "
    "the reference length closest to the hypothesis's (the shorter one on a tie)",
    "tie longer": "on a tie between two reference lengths equally close to the "
    "hypothesis, take the SHORTER one (sacrebleu's convention)",
    "arithmetic mean": "the precisions are averaged arithmetically; BLEU takes their "
    "geometric mean, exp(mean of log p_n)",
    "no smoothing": "a zero precision makes the score 0; sacrebleu's default 'exp' "
    "smoothing replaces the k-th zero precision by 1 / (2^k * total n-grams)",
    "first reference": "only the first reference of each segment is used; clip by and "
    "measure length against ALL of its references",
}


def _random_sentence(g, vocabulary, low, high):
    return " ".join(
        vocabulary[random_int(g, 0, len(vocabulary) - 1)]
        for _ in range(random_int(g, low, high))
    )


def _random_corpus(g, segments, words, max_refs):
    vocabulary = [f"w{i}" for i in range(words)]
    hypotheses, references = [], []
    for _ in range(segments):
        reference = _random_sentence(g, vocabulary, 2, 12)
        tokens = reference.split()
        cut = random_int(g, 1, len(tokens))
        tokens = tokens[:cut] + _random_sentence(g, vocabulary, 0, 4).split()
        if random_int(g, 0, 4) == 0:  # sometimes a repeated word, for clipping
            tokens = tokens + tokens[:1] * random_int(g, 1, 3)
        hypotheses.append(" ".join(tokens))
        refs = [reference] + [
            _random_sentence(g, vocabulary, 1, 12)
            for _ in range(random_int(g, 0, max_refs - 1))
        ]
        references.append(refs)
    return hypotheses, references


def _bleu_cases(hidden: bool) -> list[tuple[str, list[str], list[list[str]]]]:
    g = grading_generator(hidden)
    cases = [
        (
            "two segments, one reference each",
            ["the cat sat on the mat", "a dog ran in the park today"],
            [["the cat sat on the mat"], ["the dog ran in the park"]],
        ),
        (
            "a repeated word (clipping)",
            ["the the the the cat sat", "on the mat the end"],
            [["the cat sat on the mat"], ["on the mat at the end"]],
        ),
        (
            "several references of different lengths per segment",
            ["a b c d e", "x y z w", "p q r s t u v"],
            [
                ["a b c d e f g", "a b c", "a b x d e f"],
                ["x y z w v u", "x y"],
                ["p q r s t u v", "p q r"],
            ],
        ),
        (
            "short hypotheses (brevity penalty) and no 4-gram match",
            ["a b c x", "d e"],
            [["a b c d e f"], ["d e f g", "d e f"]],
        ),
        (
            "a long and a one-word reference, and a word in two references",
            ["a b c d e", "the the cat sat"],
            [["a b c d e f g", "a"], ["the cat sat", "the dog sat"]],
        ),
    ]
    if hidden:
        for i in range(6):
            hyps, refs = _random_corpus(
                g, random_int(g, 2, 9), [4, 8, 20][i % 3], [1, 3, 4][i % 3]
            )
            cases.append(
                (
                    f"a random corpus of {len(hyps)} segments (up to "
                    f"{max(len(r) for r in refs)} references each)",
                    hyps,
                    refs,
                )
            )
        # closest-length ties: references 2 shorter and 2 longer than the hypothesis
        words = [f"w{i}" for i in range(12)]
        hyp = " ".join(words[:6])
        cases.append(
            (
                "a tie between two reference lengths",
                [hyp, "w0 w1 w2"],
                [[" ".join(words[:4]), " ".join(words[:8])], ["w0 w1 w2 w3 w4"]],
            )
        )
    return cases


@check
def check_corpus_bleu(corpus_bleu: Callable[..., Any], hidden: bool = False) -> str:
    """Check ``corpus_bleu(hypotheses, references)`` against sacrebleu's corpus BLEU
    with ``tokenize="none"`` (within 1e-6), with sacrebleu and the reference
    disabled."""
    cases = _bleu_cases(hidden)
    got_values = []
    for label, hyps, refs in cases:
        what = f"corpus_bleu on {label}"
        with forbid_calls(*_BLEU_FORBIDDEN, reason="compute BLEU yourself."):
            value = call_student(
                corpus_bleu, list(hyps), [list(r) for r in refs], what=what
            )
        integrity.verify()
        if value is None:
            raise CheckFailure(f"{what} returned None: did you forget a `return`?")
        if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
            raise CheckFailure(
                f"{what} should return a number, got {type(value).__name__}."
            )
        value = float(value)
        if 0.0 < value <= 1.0 and _expected_bleu(hyps, refs) > 1.0:
            raise CheckFailure(
                f"{what} returned {value:.6g}: BLEU is reported on a "
                "0-100 scale here (multiply by 100), as sacrebleu does."
            )
        got_values.append(value)
    failures = [
        (case, value, _expected_bleu(case[1], case[2]))
        for case, value in zip(cases, got_values)
    ]
    failures = [f for f in failures if not abs(f[1] - f[2]) <= 1e-6 * max(1.0, f[2])]
    if not failures:
        return f"corpus_bleu equals sacrebleu's corpus BLEU on {len(cases)} corpora."
    (label, hyps, refs), value, expected = failures[0]
    where = (
        f"corpus_bleu on {label} is {value:.6g}, but sacrebleu's corpus BLEU is "
        f"{expected:.6g}"
    )
    matching = [
        mistake
        for mistake in _BLEU_MISTAKES
        if all(
            abs(_bleu_variant(h, r, mistake) - v) <= 1e-6 * max(1.0, v)
            for (_, h, r), v in zip(cases, got_values)
        )
    ]
    if len(matching) == 1:
        raise CheckFailure(f"{where}: {_BLEU_MISTAKES[matching[0]]}.")
    if matching:
        raise CheckFailure(
            f"{where}. It behaves like one of these mistakes: "
            + " OR ".join(_BLEU_MISTAKES[m] for m in matching)
            + "."
        )
    raise CheckFailure(
        f"{where}. Pool the clipped n-gram matches and totals (n = 1..4) and the "
        "lengths over the whole corpus, then compute brevity penalty x geometric mean "
        "of the precisions once."
    )


integrity.protect_module("seqbook.text.decoding")
integrity.protect_module("seqbook.text.bleu")
integrity.protect_module(__name__)
