"""Deep stacks of Transformer blocks, for the section "Residual connections and layer
normalisation": what happens to activations and gradients through depth, and how
pre-LN and post-LN stacks train with and without learning-rate warm-up.

* :class:`BlockStack` -- ``depth`` encoder blocks wired ``"pre"`` (pre-LN, with the
  final layer norm a pre-LN stack needs), ``"post"`` (post-LN) or ``"none"`` (residual
  connections without any normalisation);
* :func:`stream_statistics` -- mean and standard deviation of the residual stream after
  every block;
* :func:`gradient_norms` -- gradient norms with respect to the residual stream and to
  every block's parameters, for a cross-entropy loss on random labels;
* :func:`counting_batch` -- a generated task: for every token, how often it occurs in
  its sequence (attention can count; a per-position network cannot);
* :class:`CountingModel`, :func:`warmup_factor` and :func:`train_counting` -- a small
  model for that task and a seeded training run with an optional linear warm-up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbook import runtime
from seqbook.models.transformer import EncoderBlock, LayerNorm
from seqbook.train.loop import train

__all__ = [
    "VARIANTS",
    "BlockStack",
    "stream_statistics",
    "gradient_norms",
    "counting_batch",
    "CountingModel",
    "warmup_factor",
    "train_counting",
]

VARIANTS = ("pre", "post", "none")


class BlockStack(nn.Module):
    """``depth`` encoder blocks of width ``dim``, wired as ``variant``.

    ``"pre"``: pre-LN blocks followed by a final layer norm (without it the output would
    be the un-normalised residual stream); ``"post"``: post-LN blocks (the last block
    already ends with a layer norm); ``"none"``: the pre-LN wiring with both layer norms
    replaced by the identity, so ``x = x + Attn(x)``, ``x = x + FFN(x)``.
    """

    def __init__(
        self,
        depth: int,
        dim: int,
        num_heads: int,
        hidden_dim: int,
        variant: str = "pre",
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        self.variant = variant
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, num_heads, hidden_dim, norm_first=variant != "post")
            for _ in range(depth)
        )
        if variant == "none":
            for block in self.blocks:
                block.norm1, block.norm2 = nn.Identity(), nn.Identity()
        self.final_norm = LayerNorm(dim) if variant == "pre" else nn.Identity()

    def forward(self, x, mask=None, keep_stream=False):
        stream = [x]
        for block in self.blocks:
            x = block(x, mask=mask)  # (B, T, dim)
            stream.append(x)
        x = self.final_norm(x)
        return (x, stream) if keep_stream else x


@torch.no_grad()
def stream_statistics(
    stack: BlockStack, x: torch.Tensor
) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of the residual stream: the input, then after each
    block (before any final norm). Statistics are over all entries."""
    _, stream = stack(x, keep_stream=True)
    return ([float(h.mean()) for h in stream], [float(h.std()) for h in stream])


def gradient_norms(
    stack: BlockStack, x: torch.Tensor, num_classes: int = 16, seed: int = 0
) -> dict[str, list[float]]:
    """Gradient norms for a cross-entropy loss of a random linear read-out against
    random labels, at the stack's present weights:

    * ``"stream"``: the norm of the gradient with respect to the residual stream, at the
      input and after each block (``depth + 1`` values);
    * ``"blocks"``: the norm of the gradient with respect to each block's parameters
      (all of them, as one vector; ``depth`` values).
    """
    g = runtime.generator(seed)
    dim = x.size(-1)
    readout = torch.randn(dim, num_classes, generator=g) / dim**0.5  # (dim, C)
    labels = torch.randint(num_classes, x.shape[:-1], generator=g)  # (B, T)
    stack.zero_grad()
    output, stream = stack(x.detach().requires_grad_(True), keep_stream=True)
    for h in stream:
        h.retain_grad()
    logits = output @ readout.to(x.device)  # (B, T, C)
    F.cross_entropy(logits.flatten(0, 1), labels.flatten().to(x.device)).backward()
    blocks = []
    for block in stack.blocks:
        squares = [
            p.grad.square().sum() for p in block.parameters() if p.grad is not None
        ]
        blocks.append(float(torch.stack(squares).sum().sqrt()))
    stack.zero_grad()
    return {"stream": [float(h.grad.norm()) for h in stream], "blocks": blocks}


def counting_batch(
    batch_size: int,
    length: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
):
    """Random token sequences ``(B, T)`` and, for each token, how many times it occurs
    in its own sequence minus one, ``(B, T)`` in ``0 .. T-1`` (the classes to
    predict)."""
    tokens = torch.randint(vocab_size, (batch_size, length), generator=generator)
    same = tokens[:, :, None] == tokens[:, None, :]  # (B, T, T)
    return tokens, same.sum(-1) - 1


class CountingModel(nn.Module):
    """Token embedding -> :class:`BlockStack` -> linear classifier over counts.

    No positional encoding: counting does not depend on the order of the tokens."""

    def __init__(
        self,
        vocab_size: int,
        length: int,
        dim: int,
        num_heads: int,
        hidden_dim: int,
        depth: int,
        variant: str,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.stack = BlockStack(depth, dim, num_heads, hidden_dim, variant)
        self.head = nn.Linear(dim, length)

    def forward(self, tokens):
        return self.head(self.stack(self.embed(tokens)))  # (B, T, length)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The learning-rate multiplier of a linear warm-up: it rises from
    ``1 / warmup_steps`` at step 0 to 1 at step ``warmup_steps - 1`` and stays at 1.
    ``warmup_steps <= 1`` means no warm-up."""
    if warmup_steps <= 1:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def train_counting(
    variant: str,
    lr: float,
    warmup_steps: int,
    steps: int = 200,
    depth: int = 6,
    dim: int = 32,
    num_heads: int = 4,
    hidden_dim: int = 64,
    vocab_size: int = 4,
    length: int = 8,
    batch_size: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Train a :class:`CountingModel` with Adam and a linear warm-up; return the loss
    and accuracy of every step (on that step's fresh batch) and the learning rates.

    Weights and batches depend only on ``seed``, so runs that differ in ``variant``,
    ``lr`` or ``warmup_steps`` see the same data."""
    torch.manual_seed(runtime.seed_for(seed))
    model = CountingModel(
        vocab_size, length, dim, num_heads, hidden_dim, depth, variant
    ).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: warmup_factor(step, warmup_steps)
    )
    g = runtime.generator(seed + 1)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "lr": []}

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        tokens, counts = counting_batch(batch_size, length, vocab_size, g)
        return tokens.to(device), counts.to(device)

    def loss_fn(model: CountingModel, tokens: torch.Tensor, counts: torch.Tensor):
        logits = model(tokens)  # (B, T, length)
        # Recorded here, before the step: the rate this step uses, and the accuracy
        # on the batch the step learns from.
        history["lr"].append(optimiser.param_groups[0]["lr"])
        history["accuracy"].append((logits.argmax(-1) == counts).float().mean().item())
        return F.cross_entropy(logits.flatten(0, 1), counts.flatten())

    log = train(model, next_batch, loss_fn, optimiser, steps, scheduler=schedule)
    history["loss"] = log.losses
    return history
