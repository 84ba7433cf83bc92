"""The Transformer encoder-decoder of Part 4, trained on SCAN.

Built from the book's own parts: the encoder is a stack of
:class:`seqbook.models.transformer.EncoderBlock`; the decoder block adds a
cross-attention sub-layer (a second
:class:`seqbook.models.attention.MultiHeadAttention`, queries from the decoder, keys and
values from the encoder's output) between masked self-attention and the feed-forward
network, all pre-LN.

Mask convention, as everywhere in the book: boolean, ``True`` = "may attend",
broadcastable to ``(B, H, T_q, T_k)``. :func:`seq2seq_masks` builds the three masks;
:func:`label_smoothed_cross_entropy` is the training loss (equal to
``F.cross_entropy(..., label_smoothing=..., ignore_index=...)``); :func:`greedy_decode`
translates a batch with a key/value cache: each layer keeps the projected keys and
values of the positions decoded so far, and the cross-attention's keys and values of the
encoder's output are computed once per sentence
(:meth:`TransformerSeq2Seq.start_decoding`, :meth:`TransformerSeq2Seq.decode_step`).

The checkpoints ``seqbook/checkpoints/scan_simple.pt`` and ``scan_length.pt`` are made
by ``tools/train_scan_checkpoints.py`` and read with :func:`load_scan_checkpoint`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from seqbook import runtime
from seqbook.models.attention import (
    MultiHeadAttention,
    attend_projected,
    project_keys_values,
    sinusoidal_positional_encoding,
)
from seqbook.models.transformer import EncoderBlock, FeedForward, LayerNorm
from seqbook.text.metrics import exact_match
from seqbook.text.vocab import BOS, EOS, PAD, Vocabulary
from seqbook.train.checkpoints import read_checkpoint
from seqbook.train.loop import TrainingLog, train

__all__ = [
    "PAD",
    "BOS",
    "EOS",
    "scan_vocabularies",
    "encode_pairs",
    "seq2seq_masks",
    "label_smoothed_cross_entropy",
    "DecoderBlock",
    "DecodingState",
    "TransformerSeq2Seq",
    "greedy_decode",
    "translate",
    "evaluate_exact_match",
    "train_seq2seq",
    "load_checkpoint",
    "load_scan_checkpoint",
]


# --------------------------------------------------------------------- vocabulary
def scan_vocabularies(pairs) -> tuple[Vocabulary, Vocabulary]:
    """Command and action vocabularies of ``(command, actions)`` pairs: ``<pad>`` = 0,
    ``<bos>`` = 1, ``<eos>`` = 2, then the words sorted (no ``<unk>``: SCAN's words
    are all known)."""
    commands = sorted({w for command, _ in pairs for w in command.split()})
    actions = sorted({w for _, action in pairs for w in action.split()})
    return (
        Vocabulary.from_entries([PAD, BOS, EOS, *commands]),
        Vocabulary.from_entries([PAD, BOS, EOS, *actions]),
    )


def _pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])


def encode_pairs(
    pairs, source_vocab, target_vocab
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(B, S)`` commands and ``(B, T)`` ``<bos> actions <eos>`` targets."""
    source = _pad(
        [source_vocab.encode(c.split()) for c, _ in pairs], source_vocab.pad_id
    )
    target = _pad(
        [target_vocab.encode(a.split(), bos=True, eos=True) for _, a in pairs],
        target_vocab.pad_id,
    )
    return source, target


# -------------------------------------------------------------------------- masks
def seq2seq_masks(source, target, pad_id):
    """The three masks of an encoder-decoder (``True`` = "may attend").

    Args:
        source: ``(B, S)`` token ids of the source, padded with ``pad_id``.
        target: ``(B, T)`` token ids of the decoder's input, padded with ``pad_id``.

    Returns:
        ``(source_mask, target_mask, memory_mask)``: ``(B, 1, 1, S)`` for the encoder's
        self-attention (keys that are real source tokens), ``(B, 1, T, T)`` for the
        decoder's self-attention (key ``j <= i`` and a real target token), and
        ``(B, 1, 1, S)`` for cross-attention (decoder queries, real source keys).
    """
    source_real = (source != pad_id)[:, None, None, :]  # (B, 1, 1, S)
    target_real = (target != pad_id)[:, None, None, :]  # (B, 1, 1, T)
    length = target.size(1)
    past = torch.ones(length, length, dtype=torch.bool, device=target.device).tril()
    target_mask = target_real & past  # (B, 1, T, T)
    memory_mask = source_real  # (B, 1, 1, S)
    return source_real, target_mask, memory_mask


# --------------------------------------------------------------------------- loss
def label_smoothed_cross_entropy(logits, targets, smoothing=0.0, ignore_index=-100):
    """Cross-entropy against ``(1 - smoothing) * one_hot + smoothing / C``, averaged
    over the targets that are not ``ignore_index``.

    ``logits`` is ``(N, C)``, ``targets`` ``(N,)``. Equals
    ``F.cross_entropy(logits, targets, label_smoothing=smoothing,
    ignore_index=ignore_index)``.
    """
    log_probs = logits.log_softmax(dim=-1)  # (N, C), stable: x - logsumexp(x)
    keep = targets != ignore_index  # (N,)
    safe = targets.masked_fill(~keep, 0)  # any valid class for ignored rows
    nll = -log_probs.gather(-1, safe[:, None]).squeeze(-1)  # (N,)
    uniform = -log_probs.mean(dim=-1)  # (N,): cross-entropy against 1/C everywhere
    loss = (1.0 - smoothing) * nll + smoothing * uniform  # (N,)
    return loss[keep].sum() / keep.sum()


# ------------------------------------------------------------------------- model
class DecoderBlock(nn.Module):
    """A pre-LN decoder block::

        x = x + Dropout(SelfAttn(LN1(x), target_mask))        # masked self-attention
        x = x + Dropout(CrossAttn(LN2(x), memory, memory_mask))  # queries from x
        x = x + Dropout(FFN(LN3(x)))

    ``forward(x, memory, target_mask=None, memory_mask=None)``: ``x`` is
    ``(B, T, dim)``, ``memory`` the encoder's output ``(B, S, dim)``. The
    cross-attention weights of the last call are kept in ``self.cross_weights``
    ``(B, H, T, S)`` for plotting.
    """

    def __init__(self, dim: int, num_heads: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.self_attention = MultiHeadAttention(dim, num_heads)
        self.cross_attention = MultiHeadAttention(dim, num_heads)
        self.feed_forward = FeedForward(dim, hidden_dim, "relu", dropout)
        self.norm1 = LayerNorm(dim)
        self.norm2 = LayerNorm(dim)
        self.norm3 = LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.cross_weights = None

    def _cross(self, x, memory, memory_mask):
        h = self.norm2(x)  # (B, T, dim)
        output, weights = self.cross_attention(h, memory, memory, mask=memory_mask)
        self.cross_weights = weights.detach()  # (B, H, T, S)
        return x + self.dropout(output)

    def forward(self, x, memory, target_mask=None, memory_mask=None):
        h = self.norm1(x)  # (B, T, dim)
        x = x + self.dropout(self.self_attention(h, h, h, mask=target_mask)[0])
        x = self._cross(x, memory, memory_mask)  # (B, T, dim)
        return x + self.dropout(self.feed_forward(self.norm3(x)))

    def memory_keys_values(self, memory):
        """The cross-attention's keys and values ``(B, H, S, d)`` of the encoder's
        output ``memory`` ``(B, S, dim)``: they do not change while a sentence is
        decoded."""
        return project_keys_values(self.cross_attention, memory, memory)

    def step(self, x, cache, memory_kv, memory_mask=None):
        """One new position ``x`` ``(B, 1, dim)``. ``cache`` holds the self-attention's
        projected keys and values ``(B, H, t, d)`` of the ``t`` earlier positions (or is
        ``None``), ``memory_kv`` those of :meth:`memory_keys_values`. Only the new
        position is projected; returns the output ``(B, 1, dim)`` and the cache extended
        to ``t + 1`` positions. No causal mask is needed: the new query may see every
        key.
        """
        h = self.norm1(x)  # (B, 1, dim)
        keys, values = project_keys_values(
            self.self_attention, h, h
        )  # (B, H, 1, d) each
        if cache is not None:
            keys = torch.cat([cache[0], keys], dim=2)  # (B, H, t + 1, d)
            values = torch.cat([cache[1], values], dim=2)
        x = x + attend_projected(self.self_attention, h, keys, values)[0]
        output, weights = attend_projected(
            self.cross_attention, self.norm2(x), *memory_kv, mask=memory_mask
        )
        self.cross_weights = weights  # (B, H, 1, S)
        x = x + output
        return x + self.feed_forward(self.norm3(x)), (keys, values)


@dataclass
class DecodingState:
    """What :meth:`TransformerSeq2Seq.decode_step` carries from one position to the next
    for a batch of sentences: per decoder layer, the self-attention cache (projected
    keys and values of the positions so far, ``None`` before the first) and the
    cross-attention keys and values of the encoder's output; the memory mask; the next
    position."""

    caches: list
    memory_kv: list
    memory_mask: torch.Tensor
    position: int = 0

    def select(self, rows: torch.Tensor) -> "DecodingState":
        """The state of the sentences ``rows`` only (indices or a boolean mask)."""

        def pick(pair):
            return None if pair is None else (pair[0][rows], pair[1][rows])

        return DecodingState(
            [pick(c) for c in self.caches],
            [pick(kv) for kv in self.memory_kv],
            self.memory_mask[rows],
            self.position,
        )

    def cache_bytes(self) -> int:
        """Bytes held by the self-attention caches."""
        return sum(
            t.numel() * t.element_size()
            for pair in self.caches
            if pair is not None
            for t in pair
        )


class TransformerSeq2Seq(nn.Module):
    """Encoder-decoder Transformer: embeddings scaled by ``sqrt(dim)`` plus sinusoidal
    positions, ``num_layers`` pre-LN encoder blocks and decoder blocks, a final layer
    norm on each side, and a linear read-out to the target vocabulary."""

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        dim: int = 64,
        num_heads: int = 4,
        hidden_dim: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        max_len: int = 128,
        pad_id: int = 0,
    ):
        super().__init__()
        self.config = dict(
            source_vocab_size=source_vocab_size,
            target_vocab_size=target_vocab_size,
            dim=dim,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            dropout=dropout,
            max_len=max_len,
            pad_id=pad_id,
        )
        self.dim, self.pad_id = dim, pad_id
        self.source_embedding = nn.Embedding(source_vocab_size, dim)
        self.target_embedding = nn.Embedding(target_vocab_size, dim)
        self.register_buffer(
            "positions", sinusoidal_positional_encoding(max_len, dim), persistent=False
        )
        self.encoder = nn.ModuleList(
            EncoderBlock(dim, num_heads, hidden_dim, dropout) for _ in range(num_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderBlock(dim, num_heads, hidden_dim, dropout) for _ in range(num_layers)
        )
        self.encoder_norm = LayerNorm(dim)
        self.decoder_norm = LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(dim, target_vocab_size)
        for embedding in (self.source_embedding, self.target_embedding):
            # std 1/sqrt(dim): after the sqrt(dim) scaling the entries have size 1,
            # like the positional encodings (N(0, 1) would drown the positions).
            nn.init.normal_(embedding.weight, std=dim**-0.5)

    def _embed(self, embedding, ids, offset=0):
        x = embedding(ids) * math.sqrt(self.dim)  # (B, T, dim)
        return self.dropout(x + self.positions[offset : offset + ids.size(1)])

    def encode(self, source, source_mask):
        """``(B, S)`` ids and the ``(B, 1, 1, S)`` source mask -> memory
        ``(B, S, dim)``."""
        x = self._embed(self.source_embedding, source)
        real = source_mask.flatten(1)  # (B, S): EncoderBlock takes True = real token
        for block in self.encoder:
            x = block(x, mask=real)
        return self.encoder_norm(x)

    def embed_target(self, ids, offset=0):
        """Decoder inputs ``(B, T, dim)`` for target ids ``(B, T)`` at positions
        ``offset .. offset + T - 1``."""
        return self._embed(self.target_embedding, ids, offset)

    def start_decoding(self, source) -> DecodingState:
        """Encode ``source`` ``(B, S)`` and compute, once, every decoder layer's
        cross-attention keys and values: the state before the first target position."""
        source_mask, _, memory_mask = seq2seq_masks(source, source[:, :1], self.pad_id)
        memory = self.encode(source, source_mask)  # (B, S, dim)
        return DecodingState(
            [None] * len(self.decoder),
            [block.memory_keys_values(memory) for block in self.decoder],
            memory_mask,
        )

    def decode_step(self, tokens, state: DecodingState):
        """Log-probabilities ``(B, V)`` of the token after ``tokens`` ``(B,)`` (the ids
        at position ``state.position``), and the state advanced by one position."""
        x = self.embed_target(tokens[:, None], offset=state.position)  # (B, 1, dim)
        caches = []
        for block, cache, memory_kv in zip(self.decoder, state.caches, state.memory_kv):
            x, cache = block.step(x, cache, memory_kv, state.memory_mask)
            caches.append(cache)
        logits = self.readout(self.decoder_norm(x[:, 0]))  # (B, V)
        return logits.log_softmax(dim=-1), DecodingState(
            caches, state.memory_kv, state.memory_mask, state.position + 1
        )

    def prefix_log_probs(self, source, prefixes):
        """Without a cache: log-probabilities ``(N, V)`` of the token after each prefix
        ``(N, t)`` (which starts with ``<bos>``), the whole prefix run through the
        decoder with the causal mask; ``source`` is ``(1, S)`` or ``(N, S)``."""
        source = source.expand(prefixes.size(0), -1)
        return self(source, prefixes)[:, -1].log_softmax(dim=-1)

    def forward(self, source, target):
        """Teacher forcing: logits ``(B, T, V)`` for every position of the decoder's
        input ``target`` ``(B, T)`` (which starts with ``<bos>``)."""
        source_mask, target_mask, memory_mask = seq2seq_masks(
            source, target, self.pad_id
        )
        memory = self.encode(source, source_mask)  # (B, S, dim)
        x = self._embed(self.target_embedding, target)  # (B, T, dim)
        for block in self.decoder:
            x = block(x, memory, target_mask, memory_mask)
        return self.readout(self.decoder_norm(x))  # (B, T, V)


# ----------------------------------------------------------------------- decoding
@torch.no_grad()
def greedy_decode(model, source, bos_id, eos_id, max_len, cache=True):
    """Greedy translation of ``source`` ``(B, S)``: ``(B, L)`` predicted ids (no
    ``<bos>``), ``L <= max_len``; everything after a sequence's ``<eos>`` is ``<eos>``.

    With ``cache`` (the default) each step runs the decoder on the new position only,
    reusing the keys and values of the earlier positions and of the encoder's output
    (:meth:`TransformerSeq2Seq.decode_step`); without it, each step runs the whole
    prefix through the decoder again (the same result, for comparison). A sequence
    leaves the batch as soon as it has emitted ``<eos>``."""
    was_training = model.training
    model.eval()
    batch = source.size(0)
    result = torch.full(
        (batch, max_len), eos_id, dtype=torch.long, device=source.device
    )
    alive = torch.arange(batch, device=source.device)  # rows still decoding
    token = torch.full((batch,), bos_id, dtype=torch.long, device=source.device)
    state = model.start_decoding(source) if cache else None
    prefixes = token[:, None]  # (b, t): only without the cache
    length = 0
    for t in range(max_len):
        if cache:
            log_probs, state = model.decode_step(token, state)  # (b, V)
        else:
            log_probs = model.prefix_log_probs(source[alive], prefixes)
        token = log_probs.argmax(-1)  # (b,)
        result[alive, t] = token
        length = t + 1
        going = token != eos_id  # (b,)
        if not bool(going.any()):
            break
        if not cache:
            prefixes = torch.cat([prefixes, token[:, None]], dim=1)  # (b, t + 2)
        if not bool(going.all()):  # drop the finished rows
            alive, token = alive[going], token[going]
            if cache:
                state = state.select(going)
            else:
                prefixes = prefixes[going]
    model.train(was_training)
    return result[:, :length]


def translate(model, commands, source_vocab, target_vocab, batch_size=1000, max_len=60):
    """Greedy translations (strings) of a list of commands, in batches."""
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(commands), batch_size):
        chunk = commands[start : start + batch_size]
        source = _pad(
            [source_vocab.encode(c.split()) for c in chunk], source_vocab.pad_id
        )
        ids = greedy_decode(
            model, source.to(device), target_vocab.bos_id, target_vocab.eos_id, max_len
        )
        outputs.extend(
            " ".join(target_vocab.decode_until_eos(row)) for row in ids.tolist()
        )
    return outputs


def evaluate_exact_match(model, pairs, source_vocab, target_vocab, **kwargs):
    """``(accuracy, predictions)``: the percentage of commands translated exactly."""
    predictions = translate(
        model, [c for c, _ in pairs], source_vocab, target_vocab, **kwargs
    )
    return exact_match(predictions, [a for _, a in pairs]), predictions


# ----------------------------------------------------------------------- training
def train_seq2seq(
    model,
    pairs,
    source_vocab,
    target_vocab,
    *,
    epochs=1,
    batch_size=64,
    lr=1e-3,
    warmup=200,
    smoothing=0.1,
    seed=0,
    log_every=None,
    device=None,
    on_epoch_end=None,
    decay=False,
    max_steps=None,
):
    """Adam with linear warm-up (and, if ``decay``, a linear decay to 0 at the end of
    the last epoch), teacher forcing and label smoothing.

    Returns the list of per-step losses; the model is left in evaluation mode. Stops
    after ``epochs`` or ``max_steps`` steps, whichever comes first (never after a time:
    a step count gives the same run on every machine, busy or not);
    ``on_epoch_end(epoch, losses)`` is called after every complete epoch."""
    device = device or next(model.parameters()).device
    source, target = encode_pairs(pairs, source_vocab, target_vocab)
    generator = runtime.generator(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    per_epoch = math.ceil(len(pairs) / batch_size)
    total = epochs * per_epoch

    def factor(step):
        ramp = min(1.0, (step + 1) / warmup)
        return ramp * (1.0 - step / total) if decay else ramp

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def batches():  # shuffled epochs, each batch cut to its longest sentence
        for _ in range(epochs):
            order = torch.randperm(len(pairs), generator=generator)
            for first in range(0, len(pairs), batch_size):
                rows = order[first : first + batch_size]
                src, tgt = source[rows], target[rows]
                src = src[:, : int((src != source_vocab.pad_id).sum(1).max())]
                tgt = tgt[:, : int((tgt != target_vocab.pad_id).sum(1).max())]
                yield src.to(device), tgt.to(device)

    stream = batches()

    def next_batch():
        src, tgt = next(stream)
        return (src, tgt[:, :-1]), tgt[:, 1:]  # teacher forcing: predict the next

    def loss_fn(model, inputs, next_tokens):
        logits = model(*inputs)  # (B, T - 1, V)
        return label_smoothed_cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            next_tokens.reshape(-1),
            smoothing,
            target_vocab.pad_id,
        )

    log, start = TrainingLog(), time.perf_counter()

    def on_step(step, loss):
        epoch = (step - 1) // per_epoch
        if log_every and step % log_every == 0:
            print(
                f"epoch {epoch} step {step:5d}  loss {loss:.3f}  "
                f"{time.perf_counter() - start:.0f} s",
                flush=True,
            )
        if on_epoch_end is not None and step % per_epoch == 0:
            on_epoch_end(epoch, log.losses)

    steps = total if max_steps is None else min(total, max_steps)
    train(
        model,
        next_batch,
        loss_fn,
        optimizer,
        steps,
        clip_norm=1.0,
        log=log,
        scheduler=schedule,
        on_step=on_step,
    )
    return log.losses


# -------------------------------------------------------------------- checkpoints
def load_checkpoint(name_or_path, device="cpu"):
    """``(model, source_vocab, target_vocab, info)`` from a checkpoint written by
    :func:`seqbook.train.checkpoints.save_checkpoint` (a path or a shipped name)."""
    data = read_checkpoint(name_or_path, device)
    model = TransformerSeq2Seq(**data["config"]).to(device)
    model.load_state_dict(data["state_dict"])
    model.eval()
    return (
        model,
        Vocabulary.from_entries(data["source_tokens"]),
        Vocabulary.from_entries(data["target_tokens"]),
        data["info"],
    )


def load_scan_checkpoint(split: str, device="cpu"):
    """The shipped model trained on SCAN's ``"simple"`` or ``"length"`` split."""
    if split not in ("simple", "length"):
        raise ValueError(f"split must be 'simple' or 'length', not {split!r}")
    return load_checkpoint(f"scan_{split}", device)
