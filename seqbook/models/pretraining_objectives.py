"""Pretraining objectives at small scale: masked and causal language modelling.

The reference code of the section "Pretraining objectives":

* :func:`mask_tokens` -- BERT's masking: each ordinary token is selected with a
  probability (15 %), special tokens never; of the selected tokens 80 % become
  ``<mask>``, 10 % a random ordinary token, 10 % stay; labels hold the original id at
  the selected positions and ``-100`` (``cross_entropy``'s ``ignore_index``) elsewhere;
* :func:`causal_lm_inputs_and_labels` -- the causal-LM pair: inputs ``ids[:, :-1]``,
  labels ``ids[:, 1:]`` with padding replaced by ``-100``;
* sentences of Part 1's corpus as word ids framed by ``<cls>`` ... ``<sep>``
  (:func:`corpus_sentences`, :func:`pretraining_vocabulary`, :func:`encode_sentences`);
* :class:`TinyEncoder` -- embeddings, sinusoidal positions, pre-LN
  :class:`~seqbook.models.transformer.EncoderBlock` blocks and a language-model head;
  the same weights run bidirectionally (MLM) or with ``causal=True`` (CLM);
* :func:`mlm_loss`, :func:`clm_loss`, :func:`pretrain` -- the two objectives and a
  seeded training loop;
* the downstream task, :func:`shuffle_words` (is the word order natural?), and the
  frozen probe, :func:`probe_features` + :func:`linear_probe_accuracy`
  (:func:`probe_accuracies` over several labelled sets);

:func:`mask_tokens` and :func:`causal_lm_inputs_and_labels` are the single source of the
section's exercise solutions (``tests/book/test_sync.py`` compares them).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seqbook import runtime
from seqbook.models.attention import sinusoidal_positional_encoding
from seqbook.models.transformer import EncoderBlock, LayerNorm
from seqbook.models.transformer_from_blocks import masked_mean_pool
from seqbook.text.vocab import PAD, UNK, Vocabulary, word_tokens
from seqbook.train.loop import train

__all__ = [
    "CLS",
    "SEP",
    "MASK",
    "SPECIALS",
    "NEVER_MASKED",
    "IGNORE_INDEX",
    "mask_tokens",
    "causal_lm_inputs_and_labels",
    "corpus_sentences",
    "pretraining_vocabulary",
    "encode_sentences",
    "TinyEncoder",
    "mlm_loss",
    "clm_loss",
    "pretrain",
    "shuffle_words",
    "probe_features",
    "linear_probe_accuracy",
    "probe_accuracies",
]

CLS, SEP, MASK = "<cls>", "<sep>", "<mask>"
SPECIALS = (PAD, UNK, CLS, SEP, MASK)  # ids 0..4
NEVER_MASKED = (0, 2, 3, 4)  # <pad>, <cls>, <sep>, <mask>; <unk> is masked, as in BERT
IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index


# ------------------------------------------------------------------ the two objectives


def mask_tokens(
    ids: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a batch of token ids ``(B, T)``: ``(inputs, labels)``.

    Every position whose token is not in ``special_ids`` is selected independently with
    ``probability``. A selected position gets ``mask_id`` with probability 0.8, a token
    drawn uniformly from the ordinary (non-special) ids below ``vocab_size`` with
    probability 0.1, and keeps its token otherwise. ``labels`` holds the original id at
    the selected positions and ``-100`` elsewhere. ``ids`` is not modified; all
    randomness comes from ``generator``.
    """
    special = torch.tensor(list(special_ids), dtype=ids.dtype, device=ids.device)
    ordinary = ~torch.isin(ids, special)  # (B, T) tokens that may be selected
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    selected = ordinary & (draw < probability)  # (B, T)
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    action = torch.rand(ids.shape, generator=generator, device=ids.device)
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=ids.device)
    allowed[special] = False
    candidates = allowed.nonzero().squeeze(1)  # (V_ordinary,) ordinary ids
    pick = torch.randint(
        len(candidates), ids.shape, generator=generator, device=ids.device
    )
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, candidates[pick], inputs)
    return inputs, labels


def causal_lm_inputs_and_labels(
    ids: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal-LM pair for padded ids ``(B, T)``: ``inputs = ids[:, :-1]`` and
    ``labels = ids[:, 1:]`` with every ``pad_id`` label replaced by ``-100``, both
    ``(B, T - 1)``. Position ``t`` of ``inputs`` is trained to predict ``labels[:, t]``,
    the token that follows it. ``ids`` is not modified."""
    inputs = ids[:, :-1].clone()  # (B, T-1)
    targets = ids[:, 1:]  # (B, T-1): the next token at every position
    labels = targets.masked_fill(targets == pad_id, IGNORE_INDEX)  # a new tensor
    return inputs, labels


# ------------------------------------------------------------------------- the data


def corpus_sentences(
    text: str, min_words: int = 4, max_words: int = 30
) -> list[list[str]]:
    """Sentences of ``text`` as lists of word tokens
    (:func:`seqbook.text.vocab.word_tokens`), ended by ``.``, ``!`` or ``?``, keeping
    those with ``min_words`` to ``max_words`` tokens (the end mark included)."""
    sentences, current = [], []
    for token in word_tokens(text):
        current.append(token)
        if token in ".!?":
            if min_words <= len(current) <= max_words:
                sentences.append(current)
            current = []
    return sentences


def pretraining_vocabulary(
    sentences: Sequence[Sequence[str]], min_freq: int = 3
) -> Vocabulary:
    """Words seen at least ``min_freq`` times, after the five special tokens
    ``<pad>=0, <unk>=1, <cls>=2, <sep>=3, <mask>=4``; rarer words become ``<unk>``."""
    return Vocabulary(
        (t for s in sentences for t in s), min_freq=min_freq, specials=SPECIALS
    )


def encode_sentences(
    sentences: Sequence[Sequence[str]], vocab: Vocabulary, max_len: int = 32
) -> torch.Tensor:
    """``(N, max_len)`` ids: ``<cls>`` sentence ``<sep>`` then ``<pad>``; sentences
    longer than ``max_len - 2`` tokens are cut."""
    cls_id, sep_id = vocab.stoi[CLS], vocab.stoi[SEP]
    ids = torch.full((len(sentences), max_len), vocab.pad_id, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        tokens = [cls_id, *vocab.encode(sentence[: max_len - 2]), sep_id]
        ids[row, : len(tokens)] = torch.tensor(tokens)
    return ids


# ------------------------------------------------------------------------ the model


class TinyEncoder(nn.Module):
    """A small Transformer for both objectives: ``(B, T)`` ids -> ``(B, T, V)`` logits.

    Token embeddings plus sinusoidal positions, ``num_layers`` pre-LN
    :class:`~seqbook.models.transformer.EncoderBlock` blocks that never attend to
    ``<pad>`` (``pad_id``), a final layer norm (:meth:`encode` stops here:
    ``(B, T, D)``) and a linear language-model head. ``causal=True`` also hides later
    positions: the same weights then form a decoder-only language model.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        hidden_dim: int = 128,
        max_len: int = 32,
        pad_id: int = 0,
    ):
        super().__init__()
        self.config = dict(
            vocab_size=vocab_size,
            dim=dim,
            num_heads=num_heads,
            num_layers=num_layers,
            hidden_dim=hidden_dim,
            max_len=max_len,
            pad_id=pad_id,
        )
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embedding.weight, std=0.5)
        self.register_buffer(
            "positions", sinusoidal_positional_encoding(max_len, dim), persistent=False
        )
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, num_heads, hidden_dim, norm_first=True)
            for _ in range(num_layers)
        )
        self.norm = LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def encode(self, ids: torch.Tensor, causal: bool = False) -> torch.Tensor:
        real = ids != self.pad_id  # (B, T) True for tokens that may be attended to
        x = self.embedding(ids) + self.positions[: ids.size(1)]  # (B, T, D)
        for block in self.blocks:
            x = block(x, mask=real, causal=causal)  # (B, T, D)
        return self.norm(x)  # (B, T, D)

    def forward(self, ids: torch.Tensor, causal: bool = False) -> torch.Tensor:
        return self.head(self.encode(ids, causal))  # (B, T, V)


def mlm_loss(
    model: TinyEncoder, inputs: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy over the selected positions (labels other than ``-100``).

    Only the selected positions go through the output layer (the others carry no
    loss), which saves most of its cost; the value is that of ``cross_entropy`` on all
    logits with ``ignore_index=-100``."""
    hidden = model.encode(inputs)  # (B, T, D): every position sees the whole sentence
    selected = labels != IGNORE_INDEX  # (B, T)
    logits = model.head(hidden[selected])  # (n_selected, V)
    return F.cross_entropy(logits, labels[selected])


def clm_loss(
    model: TinyEncoder, inputs: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of next-token prediction (labels other than ``-100``); as in
    :func:`mlm_loss`, only the labelled positions go through the output layer."""
    hidden = model.encode(inputs, causal=True)  # (B, T-1, D): position t sees 0..t
    labelled = labels != IGNORE_INDEX  # (B, T-1)
    logits = model.head(hidden[labelled])  # (n_labelled, V)
    return F.cross_entropy(logits, labels[labelled])


def pretrain(
    model: TinyEncoder,
    ids: torch.Tensor,
    objective: str,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    mask_id: int = 4,
    special_ids: Sequence[int] = NEVER_MASKED,
) -> list[float]:
    """Train ``model`` on sentences ``ids`` ``(N, T)`` with ``objective`` ``"mlm"`` or
    ``"clm"`` (AdamW, linear warm-up over the first 5 % of steps then linear decay,
    gradient clipping at 1); return the loss of every step. Batches and masks come from
    a generator seeded with ``seed``."""
    if objective not in ("mlm", "clm"):
        raise ValueError(f"objective must be 'mlm' or 'clm', not {objective!r}")
    device = next(model.parameters()).device
    g = runtime.generator(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)

    def factor(step: int) -> float:  # linear warm-up, then linear decay to 0
        return min(
            (step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))
        )

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    vocab_size = model.head.out_features

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        batch = ids[torch.randint(len(ids), (batch_size,), generator=g)]  # (B, T)
        if objective == "mlm":
            inputs, labels = mask_tokens(
                batch, mask_id, vocab_size, special_ids, generator=g
            )
        else:
            inputs, labels = causal_lm_inputs_and_labels(batch, model.pad_id)
        return inputs.to(device), labels.to(device)

    loss_fn = mlm_loss if objective == "mlm" else clm_loss
    log = train(
        model, next_batch, loss_fn, optimizer, steps, clip_norm=1.0, scheduler=schedule
    )
    return log.losses


# ------------------------------------------------------ the downstream task and probe


def shuffle_words(
    ids: torch.Tensor,
    pad_id: int = 0,
    keep_end_mark: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A copy of sentences ``ids`` ``(N, T)`` (``<cls>`` tokens ``<sep>`` padding) with
    the tokens between ``<cls>`` and ``<sep>`` -- words and punctuation -- in a random
    new order. With ``keep_end_mark=True`` the last token before ``<sep>`` (the ``.``,
    ``!`` or ``?`` that ends the sentence) stays in place too. A permutation that would
    leave a sentence unchanged is replaced by a cyclic shift by one."""
    shuffled = ids.clone()
    lengths = (ids != pad_id).sum(dim=1)  # (N,) including <cls> and <sep>
    for row in range(len(ids)):
        end = int(lengths[row]) - (2 if keep_end_mark else 1)
        tokens = ids[row, 1:end]  # what may move
        order = torch.randperm(len(tokens), generator=generator)
        if bool((tokens[order] == tokens).all()):
            order = torch.roll(torch.arange(len(tokens)), 1)
        shuffled[row, 1:end] = tokens[order]
    return shuffled


@torch.no_grad()
def probe_features(
    model: TinyEncoder, ids: torch.Tensor, causal: bool = False, batch_size: int = 256
) -> torch.Tensor:
    """Frozen sentence features ``(N, D)``: the mean of the encoder's final hidden
    states over the real tokens
    (:func:`~seqbook.models.transformer_from_blocks.masked_mean_pool`); ``causal=True``
    for a model pretrained as a causal language model."""
    model.eval()
    device = next(model.parameters()).device
    features = []
    for chunk in ids.split(batch_size):
        chunk = chunk.to(device)
        hidden = model.encode(chunk, causal)  # (b, T, D)
        features.append(masked_mean_pool(hidden, chunk != model.pad_id).cpu())
    return torch.cat(features)


def linear_probe_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    steps: int = 100,
    weight_decay: float = 1e-3,
) -> float:
    """Test accuracy of a logistic-regression probe trained full-batch (L-BFGS) on
    standardised features (statistics from the training set only)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    probe = nn.Linear(train_x.size(1), int(train_y.max()) + 1)
    optimizer = torch.optim.LBFGS(
        probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(train_x), train_y)
        loss = loss + weight_decay * probe.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (probe(test_x).argmax(-1) == test_y).float().mean().item()


def probe_accuracies(
    original: torch.Tensor,
    shuffled: torch.Tensor,
    n_labelled: int,
    seeds: Sequence[int],
) -> list[float]:
    """Accuracy of the linear probe on "original or shuffled?", once per seed.

    ``original`` and ``shuffled`` are ``(N, D)`` features of the same N sentences. Each
    seed draws ``n_labelled`` sentences for training (both versions of each, label 0
    for the original and 1 for the shuffled one); the other sentences are the test set,
    so no sentence is on both sides."""
    accuracies = []
    for seed in seeds:
        g = runtime.generator(seed)
        order = torch.randperm(len(original), generator=g)
        train, test = order[:n_labelled], order[n_labelled:]

        def examples(rows):
            x = torch.cat([original[rows], shuffled[rows]])  # (2n, D)
            y = torch.cat([torch.zeros(len(rows)), torch.ones(len(rows))]).long()
            return x, y

        accuracies.append(linear_probe_accuracy(*examples(train), *examples(test)))
    return accuracies
