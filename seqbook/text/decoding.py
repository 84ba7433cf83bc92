"""Decoding strategies for autoregressive models: greedy, beam search, sampling.

Used by the section "Decoding and evaluation" (Part 4). Every strategy talks to the
model through one small interface, a *scorer*::

    next_log_probs(prefixes: LongTensor (N, t)) -> Tensor (N, V)

which takes ``N`` prefixes, each starting with ``<bos>``, and returns the
log-probability of each of the ``V`` tokens coming next. Decoding never needs to know
more about the model, so the same code decodes a GRU, a Transformer or a hand-written
table. :func:`date_scorer` and :func:`scan_scorer` wrap the models of
:mod:`seqbook.models.seq2seq_attention` and :mod:`seqbook.models.transformer_seq2seq`
into scorers; they cache the decoder's state for every prefix they have seen, so each
call reads one new token per prefix (:func:`full_prefix_scorer` reruns the whole prefix
instead, to check them).

Conventions, shared by all functions: a returned sequence holds the generated tokens
without ``<bos>``; it ends with ``<eos>`` when the model chose ``<eos>``, or stops
without one after ``max_len`` tokens. The length of a sequence counts its ``<eos>``.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

import torch

__all__ = [
    "Scorer",
    "greedy_search",
    "beam_search",
    "exhaustive_search",
    "reshape_distribution",
    "sample",
    "date_scorer",
    "scan_scorer",
    "full_prefix_scorer",
    "sequence_log_prob",
]

Scorer = Callable[[torch.Tensor], torch.Tensor]


def greedy_search(
    next_log_probs: Scorer, bos_id: int, eos_id: int, max_len: int
) -> tuple[list[int], float]:
    """``(tokens, log-probability)``: the most probable token at every step."""
    tokens: list[int] = []
    total = 0.0
    while len(tokens) < max_len:
        log_probs = next_log_probs(torch.tensor([[bos_id] + tokens]))[
            0
        ].double()  # (V,)
        token = int(log_probs.argmax())
        tokens.append(token)
        total += float(log_probs[token])
        if token == eos_id:
            break
    return tokens, total


def beam_search(
    next_log_probs: Scorer,
    bos_id: int,
    eos_id: int,
    beam_size: int,
    max_len: int,
    alpha: float = 1.0,
) -> tuple[list[int], float]:
    """``(tokens, score)`` of the best finished hypothesis, where
    ``score = sum of log-probabilities / length ** alpha``.

    At each step every alive hypothesis is extended by every token, and the
    ``beam_size - (number finished so far)`` best candidates over all (hypothesis,
    token) pairs survive. A candidate that ends with ``<eos>`` or has ``max_len`` tokens
    is finished and set aside, so the beam shrinks; the search stops when ``beam_size``
    hypotheses have finished.
    """
    alive = [([], 0.0)]  # (tokens without <bos>, sum of log-probabilities)
    finished = []  # (normalised score, tokens), in the order they finished
    while alive:
        prefixes = torch.tensor([[bos_id] + tokens for tokens, _ in alive])  # (N, t)
        log_probs = next_log_probs(prefixes).double()  # (N, V)
        vocab_size = log_probs.size(1)
        scores = torch.tensor([score for _, score in alive], dtype=torch.double)  # (N,)
        totals = (scores[:, None] + log_probs).flatten()  # (N * V,): prefix + token
        ranked = totals.sort(descending=True, stable=True).indices  # ties: first index
        best = ranked[: beam_size - len(finished)]  # finished ones keep their slots
        survivors = []
        for index in best.tolist():
            row, token = divmod(index, vocab_size)
            tokens = alive[row][0] + [token]
            total = float(totals[index])
            if token == eos_id or len(tokens) == max_len:
                finished.append((total / len(tokens) ** alpha, tokens))
            else:
                survivors.append((tokens, total))
        alive = survivors
    score, tokens = max(finished, key=lambda item: item[0])  # the first of equals
    return tokens, score


def exhaustive_search(
    next_log_probs: Scorer, bos_id: int, eos_id: int, max_len: int, alpha: float = 1.0
) -> tuple[list[int], float]:
    """The best sequence of all (``V ** max_len`` of them at most), scored as in
    :func:`beam_search`: what beam search finds with an unlimited beam."""
    return beam_search(next_log_probs, bos_id, eos_id, sys.maxsize, max_len, alpha)


def sequence_log_prob(
    next_log_probs: Scorer, bos_id: int, tokens: Sequence[int]
) -> float:
    """The log-probability the model gives to ``tokens`` (without ``<bos>``)."""
    total = 0.0
    for t, token in enumerate(tokens):
        prefix = torch.tensor([[bos_id] + list(tokens[:t])])  # (1, t + 1)
        total += float(next_log_probs(prefix)[0, token])
    return total


def reshape_distribution(
    log_probs: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Log-probabilities ``(N, V)`` reshaped for sampling, in this order: divided by
    ``temperature`` and renormalised; only the ``top_k`` most probable tokens kept;
    only the smallest set of most probable tokens whose probability reaches ``top_p``
    kept (always at least one token). Removed tokens get ``-inf``; rows sum to 1."""
    log_probs = (log_probs / temperature).log_softmax(dim=-1)  # (N, V)
    if top_k is not None:
        kth = log_probs.topk(top_k, dim=-1).values[:, -1:]  # (N, 1): k-th largest
        log_probs = log_probs.masked_fill(log_probs < kth, float("-inf"))
        log_probs = log_probs.log_softmax(dim=-1)
    if top_p is not None:
        sorted_lp, order = log_probs.sort(dim=-1, descending=True)  # (N, V)
        before = sorted_lp.exp().cumsum(dim=-1) - sorted_lp.exp()  # mass ranked above
        drop_sorted = before >= top_p  # the nucleus is already complete without them
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to token order
        log_probs = log_probs.masked_fill(drop, float("-inf")).log_softmax(dim=-1)
    return log_probs


def sample(
    next_log_probs: Scorer,
    bos_id: int,
    eos_id: int,
    max_len: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """``num_samples`` sequences drawn token by token from the reshaped distribution
    (see :func:`reshape_distribution`), in parallel."""
    prefixes = torch.full((num_samples, 1), bos_id, dtype=torch.long)  # (N, 1)
    done = torch.zeros(num_samples, dtype=torch.bool)
    for _ in range(max_len):
        log_probs = reshape_distribution(
            next_log_probs(prefixes).float(), temperature, top_k, top_p
        )  # (N, V)
        tokens = torch.multinomial(log_probs.exp(), 1, generator=generator)  # (N, 1)
        tokens[done] = eos_id  # finished rows only pad with <eos>
        prefixes = torch.cat([prefixes, tokens], dim=1)
        done |= tokens[:, 0] == eos_id
        if bool(done.all()):
            break
    samples = []
    for row in prefixes[:, 1:].tolist():
        samples.append(row[: row.index(eos_id) + 1] if eos_id in row else row)
    return samples


# ------------------------------------------------------------------ model adapters
def _cached_scorer(first, extend) -> Scorer:
    """A scorer that reads each prefix once: ``cache[prefix]`` holds the decoder state
    after the prefix, ``extend(parent_states, tokens, position)`` reads one more token
    for a batch and returns ``(log_probs (N, V), states)``; ``first()`` is the state
    before ``<bos>``. A prefix whose parent is not cached yet is scored recursively."""
    cache: dict[tuple[int, ...], object] = {(): first()}

    def next_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        rows = [tuple(row) for row in prefixes.tolist()]
        parents = sorted({row[:-1] for row in rows if row[:-1] not in cache})
        if parents:
            next_log_probs(torch.tensor(parents))  # fills the cache with the parents
        states = [cache[row[:-1]] for row in rows]
        tokens = prefixes[:, -1]
        log_probs, new_states = extend(states, tokens, prefixes.size(1) - 1)
        cache.update(zip(rows, new_states))
        return log_probs

    return next_log_probs


def date_scorer(model, written: str, vocab) -> Scorer:
    """A scorer for the GRU date model of :mod:`seqbook.models.seq2seq_attention`
    reading ``written``. Each call runs one GRU step per prefix, starting from the
    cached state of the prefix without its last token."""
    device = next(model.parameters()).device
    source = torch.tensor([vocab.encode(written)], device=device)  # (1, S)
    lengths = torch.tensor([source.size(1)])
    model.eval()
    with torch.no_grad():
        keys, mask, first_state = model.encode(
            source, lengths
        )  # (1,S,2H), (1,S), (1,H)

    @torch.no_grad()
    def extend(states, tokens, position):
        n = len(states)
        state = torch.stack(states)  # (N, H)
        logits, state, _ = model.decoder.step(
            tokens.to(device), state, keys.expand(n, -1, -1), mask.expand(n, -1)
        )
        return logits.log_softmax(dim=-1).cpu(), list(state)  # (N, V), N x (H,)

    return _cached_scorer(lambda: first_state[0], extend)


def scan_scorer(model, command: str, source_vocab) -> Scorer:
    """A scorer for the SCAN Transformer of :mod:`seqbook.models.transformer_seq2seq`.
    Each call runs the decoder on the new position only: every layer keeps the projected
    keys and values of the earlier positions, and the cross-attention's keys and values
    of the encoder's output are computed once (``TransformerSeq2Seq.decode_step``)."""
    device = next(model.parameters()).device
    ids = source_vocab.encode(command.split())
    source = torch.tensor([ids], device=device)  # (1, S)
    model.eval()
    with torch.no_grad():
        start = model.start_decoding(source)  # one sentence: batch of 1
    layers = len(model.decoder)

    @torch.no_grad()
    def extend(states, tokens, position):
        n = len(states)
        batch = start.select(torch.zeros(n, dtype=torch.long, device=device))
        if position > 0:  # each state: per layer, (keys, values) of shape (H, t, d)
            batch.caches = [
                (
                    torch.stack([s[i][0] for s in states]),
                    torch.stack([s[i][1] for s in states]),
                )
                for i in range(layers)
            ]
        batch.position = position
        log_probs, batch = model.decode_step(tokens.to(device), batch)  # (N, V)
        rows = [
            [(batch.caches[i][0][r], batch.caches[i][1][r]) for i in range(layers)]
            for r in range(n)
        ]
        return log_probs.cpu(), rows

    return _cached_scorer(lambda: None, extend)


def full_prefix_scorer(model, command: str, source_vocab) -> Scorer:
    """The same scores as :func:`scan_scorer`, computed without a cache: the whole
    prefix goes through the decoder (with the causal mask) at every call."""
    device = next(model.parameters()).device
    ids = source_vocab.encode(command.split())
    source = torch.tensor([ids], device=device)  # (1, S)
    model.eval()

    @torch.no_grad()
    def next_log_probs(prefixes: torch.Tensor) -> torch.Tensor:
        return model.prefix_log_probs(source, prefixes.to(device)).cpu()  # (N, V)

    return next_log_probs
