"""Parameter-efficient fine-tuning and prompting with a pretrained encoder (Part 5).

The references of the section "Parameter-efficient fine-tuning and prompting":

* :class:`LoRALinear` -- a frozen ``nn.Linear`` plus a trainable low-rank update
  ``(alpha / r) B A`` (Hu et al., 2022), equal to its base layer at initialisation
  (``B = 0``), with :meth:`LoRALinear.merge` folding the update into the base weight;
* :func:`add_lora` -- freeze a model and swap LoRA layers in for the linear layers
  with the given names (``query`` and ``value`` by default); :func:`merge_lora` merges
  them and puts plain linear layers back; :func:`lora_disabled` switches them off;
* :func:`mean_pool` -- the mean of a padded batch of token vectors over the real tokens
  of a Hugging Face ``attention_mask`` (integers 1 real, 0 padding);
  :func:`sentence_embeddings` -- mean pooling then L2 normalisation, as
  sentence-transformers computes the embeddings of ``all-MiniLM-L6-v2``;
* :func:`nearest_centroid_predict`, :func:`few_shot_accuracies` and
  :func:`zero_shot_predict` -- classification from embeddings with a handful of
  labelled examples, or none;
* :func:`topic_examples` -- a second, generated task (what a sentence is about) used to
  measure forgetting.

The section trains, tests and counts the parameters of its models with the code of the
previous section (:mod:`seqbook.train.fine_tuning`: ``make_loader``, ``fit``,
``predict``, ``count_parameters``), so this module holds no training loop of its own.

:class:`LoRALinear` and :func:`mean_pool` are the single source of the section's
exercises (``tests/book/test_sync.py`` compares them with the solution cells).
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Iterator, Sequence

import torch
from torch import nn

from seqbook import runtime

__all__ = [
    "LoRALinear",
    "add_lora",
    "merge_lora",
    "lora_layers",
    "lora_disabled",
    "mean_pool",
    "sentence_embeddings",
    "nearest_centroid_predict",
    "few_shot_accuracies",
    "zero_shot_predict",
    "TOPICS",
    "topic_examples",
]


# ----------------------------------------------------------------------------- LoRA


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * x A^T B^T`` with ``base`` frozen and ``A``, ``B``
    trained.

    ``lora_A`` is ``(r, in_features)``, drawn at random with standard deviation
    ``1 / sqrt(in_features)``; ``lora_B`` is ``(out_features, r)`` and starts at zero,
    so a new layer computes exactly what ``base`` computes. :meth:`merge` adds
    ``scaling * B @ A`` to ``base.weight`` once; afterwards ``forward`` returns
    ``base(x)`` alone.
    """

    def __init__(self, base, r=8, alpha=16.0):
        super().__init__()
        self.base = base
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        self.merged = False
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)  # the pretrained weights stay as they are
        weight = base.weight
        self.lora_A = nn.Parameter(
            torch.randn(r, base.in_features, dtype=weight.dtype, device=weight.device)
            / math.sqrt(base.in_features)
        )  # (r, in)
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, r, dtype=weight.dtype, device=weight.device)
        )

    def forward(self, x):
        out = self.base(x)  # (..., out)
        if self.merged:
            return out  # the update already lives in base.weight
        update = (x @ self.lora_A.T) @ self.lora_B.T  # (..., r) then (..., out)
        return out + self.scaling * update

    def merge(self):
        if not self.merged:
            with torch.no_grad():
                delta = self.lora_B @ self.lora_A  # (out, in)
                self.base.weight += self.scaling * delta
            self.merged = True


def add_lora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16.0,
    targets: Sequence[str] = ("query", "value"),
    trainable: Sequence[str] = ("classifier",),
) -> list[str]:
    """Freeze ``model`` and replace each ``nn.Linear`` whose attribute name is in
    ``targets`` by a :class:`LoRALinear` around it; the parameters of the submodules
    named in ``trainable`` (the new classification head) stay trainable. Returns the
    names of the replaced layers."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, r=r, alpha=alpha))
                replaced.append(f"{name}.{child_name}" if name else child_name)
    for name, module in model.named_modules():
        if name.rpartition(".")[2] in trainable:
            for parameter in module.parameters():
                parameter.requires_grad_(True)
    return replaced


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """The :class:`LoRALinear` layers of ``model``."""
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA layer of ``model`` and put its (updated) base layer back in its
    place, so the model is made of plain linear layers again. Returns ``model``."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                child.merge()
                setattr(module, child_name, child.base)
    return model


@contextlib.contextmanager
def lora_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, the (unmerged) LoRA layers of ``model`` add nothing: the model
    computes what its frozen pretrained layers compute."""
    layers = lora_layers(model)
    if any(layer.merged for layer in layers):
        raise ValueError("a merged LoRA layer cannot be switched off")
    scalings = [layer.scaling for layer in layers]
    for layer in layers:
        layer.scaling = 0.0
    try:
        yield model
    finally:
        for layer, scaling in zip(layers, scalings):
            layer.scaling = scaling


# ----------------------------------------------------------------- sentence embeddings


def mean_pool(last_hidden_state, attention_mask):
    """The mean of ``last_hidden_state`` ``(B, T, D)`` over the real tokens, where the
    integer ``attention_mask`` ``(B, T)`` is 1: a ``(B, D)`` tensor of the hidden
    state's dtype."""
    weights = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    total = (last_hidden_state * weights).sum(dim=1)  # (B, D)
    count = weights.sum(dim=1).clamp(min=1e-9)  # (B, 1): real tokens per sentence
    return total / count


@torch.no_grad()
def sentence_embeddings(
    encoder: nn.Module, tokenizer, texts: Sequence[str], batch_size: int = 128
) -> torch.Tensor:
    """Unit-length sentence embeddings ``(N, D)``: the encoder's last hidden states,
    mean-pooled over the real tokens, then L2-normalised. On the encoder's device."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]), padding=True, return_tensors="pt"
        ).to(device)
        hidden = encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        pooled = mean_pool(hidden, batch["attention_mask"])  # (b, D)
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    encoder.train(was_training)
    return torch.cat(chunks)


# ------------------------------------------------------------- few-shot and zero-shot


def nearest_centroid_predict(
    support: torch.Tensor,
    support_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
) -> torch.Tensor:
    """Label each query ``(N, D)`` with the class whose mean support embedding is the
    most cosine-similar (classes ``0 .. num_classes - 1``)."""
    centroids = torch.stack(
        [support[support_labels == c].mean(dim=0) for c in range(num_classes)]
    )  # (C, D)
    centroids = torch.nn.functional.normalize(centroids, dim=-1)
    queries = torch.nn.functional.normalize(queries, dim=-1)
    return (queries @ centroids.T).argmax(dim=-1)  # (N,)


def few_shot_accuracies(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    test_embeddings: torch.Tensor,
    test_labels: torch.Tensor,
    shots: int,
    draws: int = 20,
    seed: int = 0,
) -> list[float]:
    """Test accuracy of :func:`nearest_centroid_predict` with ``shots`` examples per
    class drawn from ``embeddings``, for ``draws`` independent draws."""
    g = runtime.generator(seed)
    num_classes = int(labels.max()) + 1
    accuracies = []
    for _ in range(draws):
        chosen = []
        for c in range(num_classes):
            pool = (labels == c).nonzero().flatten()
            chosen.append(pool[torch.randperm(len(pool), generator=g)[:shots]])
        chosen = torch.cat(chosen)
        predicted = nearest_centroid_predict(
            embeddings[chosen], labels[chosen], test_embeddings, num_classes
        )
        accuracies.append(float((predicted.cpu() == test_labels.cpu()).float().mean()))
    return accuracies


def zero_shot_predict(
    queries: torch.Tensor, label_embeddings: torch.Tensor
) -> torch.Tensor:
    """Label each query with the label description it is most cosine-similar to."""
    queries = torch.nn.functional.normalize(queries, dim=-1)
    label_embeddings = torch.nn.functional.normalize(label_embeddings, dim=-1)
    return (queries @ label_embeddings.T).argmax(dim=-1)


# ------------------------------------------------------------- a second task: topics

TOPICS = ("food", "sport", "travel", "weather")
_TOPIC_SUBJECTS = {
    "food": (
        "the soup",
        "the pasta",
        "the dessert",
        "the bread",
        "the salad",
        "the coffee",
        "the curry",
        "the pizza",
    ),
    "sport": (
        "the match",
        "the game",
        "the race",
        "the tournament",
        "the final",
        "the team",
        "the goalkeeper",
        "the referee",
    ),
    "travel": (
        "the flight",
        "the hotel",
        "the train ride",
        "the trip",
        "the airport",
        "the beach resort",
        "the tour guide",
        "the cruise",
    ),
    "weather": (
        "the weather",
        "the storm",
        "the forecast",
        "the rain",
        "the heatwave",
        "the winter",
        "the sunshine",
        "the fog",
    ),
}
_TOPIC_OPINIONS = (
    "great",
    "excellent",
    "fun",
    "lovely",
    "bad",
    "awful",
    "boring",
    "terrible",
    "fine",
    "unusual",
    "long",
    "short",
)


def topic_examples(count: int = 400, seed: int = 0) -> list[tuple[str, int]]:
    """``count`` distinct sentences ``(text, topic)`` about one of :data:`TOPICS`, each
    with an opinion drawn independently of the topic ("the soup was awful", "i loved
    the match"), so that sentiment says nothing about the topic. Balanced topics."""
    rng = random.Random(seed)
    seen: set[str] = set()
    examples = []
    while len(examples) < count:
        topic = len(examples) % len(TOPICS)
        subject = rng.choice(_TOPIC_SUBJECTS[TOPICS[topic]])
        if rng.random() < 0.6:
            text = (
                f"{subject} {rng.choice(('was', 'is'))} {rng.choice(_TOPIC_OPINIONS)}"
            )
        else:
            verb = rng.choice(("loved", "hated", "enjoyed", "disliked", "remember"))
            text = f"i {verb} {subject}"
        if text not in seen:
            seen.add(text)
            examples.append((text, topic))
    rng.shuffle(examples)
    return examples
