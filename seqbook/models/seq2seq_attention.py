"""GRU encoder--decoders for the dates task, with and without additive attention.

Used by the section "Sequence to sequence with attention" (Part 4). Everything works on
characters: :func:`date_vocabulary` covers every character of every format of
:mod:`seqbook.data.dates`, plus ``<pad>`` (0), ``<unk>``, ``<bos>`` and ``<eos>``.

* :class:`Encoder` -- a bidirectional GRU over the padded source; its outputs are the
  keys of attention, its two final states start the decoder.
* :class:`AdditiveAttention` -- Bahdanau's score ``v^T tanh(W_q s + W_k h_j)``, softmax
  over the real source positions.
* :class:`Decoder` -- a GRU cell that reads the previous output character and, with
  attention, a context vector recomputed at every step.
* :func:`decode_steps` -- the decoding loop, with teacher forcing or feeding back the
  model's own predictions.
* :class:`Seq2Seq`, :func:`train_seq2seq`, :func:`exact_match`, :func:`load_checkpoint`
  (saved with :func:`seqbook.train.checkpoints.save_checkpoint`; checkpoints ship in
  ``seqbook/checkpoints``).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqbook import runtime
from seqbook.data.dates import DATE_FORMATS, format_date
from seqbook.text.vocab import BOS, EOS, PAD, UNK, Vocabulary
from seqbook.train.checkpoints import checkpoint_path, read_checkpoint
from seqbook.train.loop import train

__all__ = [
    "BOS",
    "EOS",
    "date_vocabulary",
    "encode_pairs",
    "AdditiveAttention",
    "Encoder",
    "Decoder",
    "decode_steps",
    "Seq2Seq",
    "train_seq2seq",
    "translate",
    "exact_match",
    "load_checkpoint",
]


def date_vocabulary() -> Vocabulary:
    """Characters of every date format (all months and weekdays of 2000, all digits)."""
    text = []
    for day in range(366):
        date = datetime.date(2000, 1, 1) + datetime.timedelta(days=day)
        text.extend(format_date(date, style) for style in DATE_FORMATS)
    text.append("0123456789")
    return Vocabulary("".join(text), specials=(PAD, UNK, BOS, EOS))


def encode_pairs(
    pairs: Sequence[tuple[str, str]],
    vocab: Vocabulary,
    device: torch.device | str = "cpu",
):
    """``(source, lengths, targets)``: padded source ids ``(B, S)``, their lengths
    ``(B,)`` and target ids ``(B, T)`` (the ISO characters then ``<eos>``)."""
    sources = [vocab.encode(written) for written, _ in pairs]
    lengths = torch.tensor([len(s) for s in sources])
    source = torch.full(
        (len(pairs), int(lengths.max())), vocab.pad_id, dtype=torch.long
    )
    for row, ids in enumerate(sources):
        source[row, : len(ids)] = torch.tensor(ids)
    targets = torch.tensor([vocab.encode(iso, eos=True) for _, iso in pairs])
    return source.to(device), lengths.to(device), targets.to(device)


class AdditiveAttention(nn.Module):
    def __init__(self, query_dim, key_dim, hidden_dim):
        super().__init__()
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim)
        self.score = nn.Parameter(torch.empty(hidden_dim).uniform_(-0.1, 0.1))

    def forward(self, query, keys, mask):
        # query (B, Dq), keys (B, T, Dk), mask (B, T) with True = real position
        q = self.query_proj(query)[:, None, :]  # (B, 1, H)
        k = self.key_proj(keys)  # (B, T, H)
        scores = torch.tanh(q + k) @ self.score  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # over the source positions
        weights = weights.masked_fill(~mask, 0.0)  # a fully masked row: 0, not NaN
        context = (weights[:, :, None] * keys).sum(dim=1)  # (B, Dk)
        return context, weights


class Encoder(nn.Module):
    """Embedding and a bidirectional GRU; returns keys ``(B, S, 2H)``, the padding mask
    ``(B, S)`` and the final states of both directions concatenated ``(B, 2H)``."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=True)

    def forward(self, source: torch.Tensor, lengths: torch.Tensor):
        packed = pack_padded_sequence(
            self.embed(source), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, final = self.gru(
            packed
        )  # final (2, B, H): last real step per direction
        keys, _ = pad_packed_sequence(
            outputs, batch_first=True, total_length=source.shape[1]
        )  # (B, S, 2H)
        positions = torch.arange(source.shape[1], device=source.device)
        mask = positions[None, :] < lengths.to(source.device)[:, None]  # (B, S)
        return keys, mask, torch.cat([final[0], final[1]], dim=-1)


class Decoder(nn.Module):
    """One GRU cell step at a time. Without attention the input is the previous
    character only; with attention it is the character and the context vector, and the
    output layer also sees the context."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_dim: int,
        key_dim: int,
        attention: bool,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.attention = (
            AdditiveAttention(hidden_dim, key_dim, hidden_dim) if attention else None
        )
        context_dim = key_dim if attention else 0
        self.cell = nn.GRUCell(embed_dim + context_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim + context_dim, vocab_size)

    def step(
        self,
        tokens: torch.Tensor,
        state: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
    ):
        """``(logits (B, V), new state (B, H), weights (B, S) or None)``."""
        inputs = self.embed(tokens)  # (B, E)
        if self.attention is None:
            state = self.cell(inputs, state)
            return self.out(state), state, None
        context, weights = self.attention(state, keys, mask)  # (B, 2H_enc), (B, S)
        state = self.cell(torch.cat([inputs, context], dim=-1), state)
        return self.out(torch.cat([state, context], dim=-1)), state, weights


def decode_steps(step, state, targets, bos_id, teacher_forcing):
    batch, steps = targets.shape
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=targets.device)
    all_logits = []
    for t in range(steps):
        logits, state = step(tokens, state)  # (B, V), (B, H)
        all_logits.append(logits)
        if teacher_forcing:
            tokens = targets[:, t]  # the gold character y_t is the next input
        else:
            tokens = logits.argmax(dim=-1).detach()  # the model's own guess
    return torch.stack(all_logits, dim=1)  # (B, T, V)


class Seq2Seq(nn.Module):
    """Encoder, a bridge from its final states to the decoder's first state, decoder."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden_dim: int = 64,
        attention: bool = True,
        bos_id: int = 2,
    ) -> None:
        super().__init__()
        self.config = dict(
            vocab_size=vocab_size,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            attention=attention,
            bos_id=bos_id,
        )
        self.bos_id = bos_id
        self.encoder = Encoder(vocab_size, embed_dim, hidden_dim)
        self.bridge = nn.Linear(2 * hidden_dim, hidden_dim)
        self.decoder = Decoder(
            vocab_size, embed_dim, hidden_dim, 2 * hidden_dim, attention
        )

    def encode(self, source: torch.Tensor, lengths: torch.Tensor):
        keys, mask, final = self.encoder(source, lengths)
        return keys, mask, torch.tanh(self.bridge(final))  # first decoder state (B, H)

    def forward(
        self,
        source: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        teacher_forcing: bool = True,
        record: list | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, T, V)`` for the ``T`` target steps; ``record`` collects the
        attention weights ``(B, S)`` of every step when given."""
        keys, mask, state = self.encode(source, lengths)

        def step(tokens, state):
            logits, state, weights = self.decoder.step(tokens, state, keys, mask)
            if record is not None:
                record.append(weights)
            return logits, state

        return decode_steps(step, state, targets, self.bos_id, teacher_forcing)


def translate(
    model: Seq2Seq,
    pairs: Sequence[tuple[str, str]],
    vocab: Vocabulary,
    device: torch.device | str = "cpu",
    batch_size: int = 500,
):
    """Greedy decoding: the predicted strings and, with attention, a list of weight
    matrices ``(output characters, source characters)`` per example."""
    eos = vocab.stoi[EOS]
    predictions, alignments = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            source, lengths, targets = encode_pairs(chunk, vocab, device)
            record: list = []
            logits = model(
                source, lengths, targets, teacher_forcing=False, record=record
            )
            ids = logits.argmax(dim=-1).cpu()  # (B, T)
            for row, (written, _) in enumerate(chunk):
                chars = []
                for i in ids[row].tolist():
                    if i == eos:
                        break
                    chars.append(vocab.itos[i])
                predictions.append("".join(chars))
                if record and record[0] is not None:
                    weights = torch.stack([w[row] for w in record])  # (T, S)
                    alignments.append(weights[:, : len(written)].cpu())
    return predictions, alignments


def exact_match(predictions: Sequence[str], pairs: Sequence[tuple[str, str]]) -> float:
    """Fraction of predictions equal to the ISO date, character for character."""
    return sum(p == iso for p, (_, iso) in zip(predictions, pairs)) / len(pairs)


def train_seq2seq(
    model: Seq2Seq,
    pairs: Sequence[tuple[str, str]],
    vocab: Vocabulary,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log_every: int = 10,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Adam with teacher forcing and cross-entropy for ``steps`` steps (never for a
    time: a step count gives the same run on every machine, busy or not). The batch
    order is seeded with ``runtime.generator(seed)``. Returns the loss of every
    ``log_every``-th step, averaged over those steps."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if len(pairs) < batch_size:
        raise ValueError(f"{len(pairs)} pairs cannot fill a batch of {batch_size}")
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    g = runtime.generator(seed)

    def batches():  # shuffled epochs; a last batch smaller than batch_size is dropped
        while True:
            order = torch.randperm(len(pairs), generator=g).tolist()
            for begin in range(0, len(order) - batch_size + 1, batch_size):
                yield [pairs[i] for i in order[begin : begin + batch_size]]

    stream = batches()

    def next_batch():
        source, lengths, targets = encode_pairs(next(stream), vocab, device)
        return (source, lengths), targets

    def loss_fn(model, inputs, targets):
        logits = model(*inputs, targets)  # (B, T, V): teacher forcing
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    losses, window = [], []

    def on_step(step, loss):
        window.append(loss)
        if len(window) == log_every:
            losses.append(sum(window) / len(window))
            window.clear()
            if callback is not None:
                callback(step, losses[-1])

    train(model, next_batch, loss_fn, optimiser, steps, clip_norm=1.0, on_step=on_step)
    return losses


def load_checkpoint(name_or_path: str | Path, device: torch.device | str = "cpu"):
    """``(model, info)`` from a shipped checkpoint name or a path; the model is in
    evaluation mode on ``device``. The vocabulary must be :func:`date_vocabulary`'s."""
    data = read_checkpoint(name_or_path, device)
    if data["itos"] != date_vocabulary().itos:
        raise ValueError(
            f"{checkpoint_path(name_or_path)} was saved with another vocabulary"
        )
    model = Seq2Seq(**data["config"])
    model.load_state_dict(data["state_dict"])
    return model.to(device).eval(), data["info"]
