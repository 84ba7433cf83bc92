"""seqbook.models.parameter_efficient_fine_tuning: the LoRA layer and its helpers, mean
pooling (equal to sentence-transformers), few-shot and zero-shot helpers and the topic
task of the section "Parameter-efficient fine-tuning and prompting"; and LoRA models
trained, tested and counted with seqbook.train.fine_tuning, as the section does."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from seqbook.models import parameter_efficient_fine_tuning as lora
from seqbook.train import fine_tuning


def tiny_bert(seed: int = 0):
    """A small randomly initialised BertForSequenceClassification (no files read)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=2,
    )
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    from seqbook.models import pretrained

    return pretrained.load_tokenizer()


# ----------------------------------------------------------------------- LoRALinear


def test_lora_linear_equals_its_base_then_merges_exactly():
    torch.manual_seed(0)
    base = nn.Linear(7, 5)
    layer = lora.LoRALinear(base, r=3, alpha=6.0)
    x = torch.randn(2, 4, 7)
    assert layer.base is base and layer.scaling == 2.0
    assert layer.lora_A.shape == (3, 7) and layer.lora_B.shape == (5, 3)
    assert torch.equal(layer(x), base(x))
    assert fine_tuning.count_parameters(layer, trainable_only=True) == 3 * (7 + 5)
    assert not any(p.requires_grad for p in base.parameters())
    with torch.no_grad():
        layer.lora_B.normal_()
    expected = x @ base.weight.T + base.bias + 2.0 * x @ layer.lora_A.T @ layer.lora_B.T
    before = layer(x)
    torch.testing.assert_close(before, expected)
    layer(x).sum().backward()
    assert base.weight.grad is None and layer.lora_A.grad is not None
    layer.merge()
    layer.merge()  # idempotent
    torch.testing.assert_close(layer(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(base(x), before, atol=1e-5, rtol=1e-5)


def test_add_lora_counts_merges_and_switches_off():
    model = tiny_bert()
    ids = torch.randint(1000, 2000, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, 4:] = 0
    plain = model(input_ids=ids, attention_mask=mask).logits
    replaced = lora.add_lora(model, r=4, alpha=8.0)
    assert len(replaced) == 4 and all(n.endswith(("query", "value")) for n in replaced)
    head = 32 * 2 + 2
    trainable = fine_tuning.count_parameters(model, trainable_only=True)
    assert trainable == 4 * 4 * (32 + 32) + head
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, plain)
    with torch.no_grad():
        for layer in lora.lora_layers(model):
            layer.lora_B.normal_()
    adapted = model(input_ids=ids, attention_mask=mask).logits
    assert (adapted - plain).abs().max() > 1e-3
    with lora.lora_disabled(model):
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, plain)
    torch.testing.assert_close(
        model(input_ids=ids, attention_mask=mask).logits, adapted
    )
    lora.merge_lora(model)
    assert not lora.lora_layers(model)
    assert isinstance(model.bert.encoder.layer[0].attention.self.query, nn.Linear)
    torch.testing.assert_close(
        model(input_ids=ids, attention_mask=mask).logits, adapted, atol=1e-5, rtol=1e-5
    )


def test_add_lora_trains_as_many_parameters_as_peft():
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model

    ours = tiny_bert()
    lora.add_lora(ours, r=8, alpha=16.0)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        task_type="SEQ_CLS",
        target_modules=["query", "value"],
    )
    theirs = get_peft_model(tiny_bert(), config)
    assert fine_tuning.count_parameters(
        ours, trainable_only=True
    ) == fine_tuning.count_parameters(theirs, trainable_only=True)


# ------------------------------------------------------------------- mean pooling


def test_mean_pool_ignores_padding():
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = lora.mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :2].mean(dim=0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(dim=0))
    assert pooled.dtype == hidden.dtype
    double = lora.mean_pool(hidden.double(), mask.int())
    assert double.dtype == torch.float64


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="sentence-transformers is not installed",
)
def test_sentence_embeddings_equal_sentence_transformers(tokenizer):
    from sentence_transformers import SentenceTransformer

    from seqbook.models import pretrained

    texts = ["the plot was dull", "i did not enjoy the final scene at all", "fun"]
    ours = lora.sentence_embeddings(pretrained.load_encoder(), tokenizer, texts)
    theirs = SentenceTransformer(pretrained.minilm_path(), device="cpu").encode(
        texts, convert_to_tensor=True
    )
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(3))


# -------------------------------------------------------------- few-shot, zero-shot


def test_nearest_centroid_and_zero_shot():
    support = torch.tensor([[1.0, 0.1], [0.9, -0.1], [-1.0, 0.2], [-0.8, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[2.0, 0.5], [-0.3, 0.1]])
    assert lora.nearest_centroid_predict(support, labels, queries, 2).tolist() == [0, 1]
    descriptions = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert lora.zero_shot_predict(queries, descriptions).tolist() == [1, 0]


def test_few_shot_accuracies_are_seeded():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    embeddings = torch.randn(40, 5, generator=g) * 0.3
    embeddings[labels == 0, 0] += 3.0
    embeddings[labels == 1, 1] += 3.0
    first = lora.few_shot_accuracies(
        embeddings, labels, embeddings, labels, shots=4, draws=7, seed=3
    )
    again = lora.few_shot_accuracies(
        embeddings, labels, embeddings, labels, shots=4, draws=7, seed=3
    )
    assert first == again and len(first) == 7
    assert all(0.8 <= a <= 1.0 for a in first)


def test_topic_examples_are_balanced_distinct_and_seeded():
    examples = lora.topic_examples(200, seed=1)
    assert examples == lora.topic_examples(200, seed=1)
    assert len({text for text, _ in examples}) == 200
    counts = torch.bincount(torch.tensor([t for _, t in examples]))
    assert counts.tolist() == [50, 50, 50, 50]


# ------------------------------------------- training with the previous section's loop


def test_lora_model_trains_with_the_fine_tuning_loop(tokenizer):
    """The section has no loop of its own: fine_tuning.fit without a validation loader
    trains a LoRA model, moving only the adapters and the head."""
    texts = ["good", "bad", "great", "awful"] * 8
    labels = [1, 0, 1, 0] * 8
    model = tiny_bert(seed=1)
    lora.add_lora(model, r=4, alpha=8.0)
    frozen = {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if not p.requires_grad
    }
    assert fine_tuning.count_parameters(
        model, trainable_only=False
    ) == fine_tuning.count_parameters(model, trainable_only=True) + sum(
        p.numel() for p in frozen.values()
    )
    loader = fine_tuning.make_loader(
        texts, labels, tokenizer, batch_size=8, shuffle=True
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    torch.manual_seed(0)  # dropout
    history = fine_tuning.fit(
        model, loader, None, optimizer, max_epochs=10, eval_every=1, verbose=False
    )
    losses = [h["train_loss"] for h in history]
    assert len(losses) == 40
    assert sum(losses[-4:]) < sum(losses[:4])
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert torch.equal(parameter, frozen[name]), f"{name} is frozen but moved"
    assert all(layer.lora_B.abs().max() > 0 for layer in lora.lora_layers(model))
    predicted, _ = fine_tuning.predict(model, tokenizer, texts[:4])
    assert predicted.tolist() == [1, 0, 1, 0]
