"""seqbook.models.transformer_seq2seq: masks, loss, decoder block against PyTorch, the
model's causality and padding invariance, greedy decoding, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqbook.data.scan import length_split, scan_examples, simple_split
from seqbook.models import transformer_seq2seq as S
from seqbook.train.checkpoints import CHECKPOINT_DIR, save_checkpoint


@pytest.fixture(scope="module")
def vocabs():
    return S.scan_vocabularies(scan_examples())


def test_vocabulary_round_trip(vocabs):
    source_vocab, target_vocab = vocabs
    assert source_vocab.itos[:3] == [S.PAD, S.BOS, S.EOS]
    assert len(source_vocab) == 16 and len(target_vocab) == 9
    assert source_vocab.itos[3:] == sorted(source_vocab.itos[3:])
    actions = "I_TURN_LEFT I_JUMP I_WALK".split()
    ids = target_vocab.encode(actions, bos=True, eos=True)
    assert ids[0] == 1 and ids[-1] == 2
    assert target_vocab.decode_until_eos(ids + [0, 0]) == actions
    assert target_vocab.decode_until_eos(ids[1:3] + [2, 3, 4]) == actions[:2]


@pytest.mark.parametrize("pad_id", [0, 3])
def test_masks(pad_id):
    source = torch.tensor([[4, 5, pad_id], [6, 7, 8]])
    target = torch.tensor([[1, 5, pad_id, pad_id], [1, 4, 5, 6]])
    source_mask, target_mask, memory_mask = S.seq2seq_masks(source, target, pad_id)
    assert source_mask.shape == (2, 1, 1, 3) and memory_mask.shape == (2, 1, 1, 3)
    assert target_mask.shape == (2, 1, 4, 4) and target_mask.dtype == torch.bool
    assert source_mask[:, 0, 0].tolist() == [[True, True, False], [True, True, True]]
    assert torch.equal(memory_mask, source_mask)
    lower = torch.ones(4, 4, dtype=torch.bool).tril()
    assert torch.equal(target_mask[1, 0], lower)
    expected = lower.clone()
    expected[:, 2:] = False
    assert torch.equal(target_mask[0, 0], expected)


@pytest.mark.parametrize("seed", range(20))
def test_loss_equals_torch(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 30, (1,), generator=g))
    c = int(torch.randint(2, 12, (1,), generator=g))
    logits = torch.randn(n, c, generator=g) * [1.0, 10.0, 3000.0][seed % 3]
    ignore = [-100, 0, c - 1][seed % 3]
    targets = torch.randint(0, c, (n,), generator=g)
    targets[torch.rand(n, generator=g) < 0.3] = ignore
    targets[0] = (ignore + 1) % c
    smoothing = [0.0, 0.1, 0.3][seed % 3]
    ours = S.label_smoothed_cross_entropy(logits, targets, smoothing, ignore)
    theirs = F.cross_entropy(
        logits, targets, label_smoothing=smoothing, ignore_index=ignore
    )
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_decoder_block_matches_torch():
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(
        16, 4, 32, dropout=0.0, batch_first=True, norm_first=True
    ).eval()
    block = S.DecoderBlock(16, 4, 32).eval()
    block.self_attention.load_state_dict(layer.self_attn.state_dict())
    block.cross_attention.load_state_dict(layer.multihead_attn.state_dict())
    block.feed_forward.up.load_state_dict(layer.linear1.state_dict())
    block.feed_forward.down.load_state_dict(layer.linear2.state_dict())
    for name in ("norm1", "norm2", "norm3"):
        getattr(block, name).load_state_dict(getattr(layer, name).state_dict())
    source = torch.tensor([[3, 4, 0], [5, 6, 7]])
    target = torch.tensor([[1, 3, 4, 0], [1, 3, 2, 5]])
    x, memory = torch.randn(2, 4, 16), torch.randn(2, 3, 16)
    _, target_mask, memory_mask = S.seq2seq_masks(source, target, 0)
    ours = block(x, memory, target_mask, memory_mask)
    theirs = layer(
        x,
        memory,
        tgt_mask=~torch.ones(4, 4, dtype=torch.bool).tril(),
        tgt_key_padding_mask=target == 0,
        memory_key_padding_mask=source == 0,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert block.cross_weights.shape == (2, 4, 4, 3)
    assert torch.all(block.cross_weights[0, :, :, 2] == 0)  # source padding


def small_model(vocabs, seed=0):
    torch.manual_seed(seed)
    source_vocab, target_vocab = vocabs
    return S.TransformerSeq2Seq(
        len(source_vocab),
        len(target_vocab),
        dim=32,
        num_heads=4,
        hidden_dim=64,
        num_layers=2,
    ).eval()


def test_model_is_causal_and_ignores_source_padding(vocabs):
    model = small_model(vocabs)
    source = torch.tensor([[3, 4, 5, 0]])
    target = torch.tensor([[1, 3, 4, 5, 6]])
    logits = model(source, target)
    changed = target.clone()
    changed[0, 3:] = 8
    torch.testing.assert_close(model(source, changed)[:, :3], logits[:, :3])
    assert not torch.allclose(model(source, changed)[:, 3:], logits[:, 3:])
    torch.testing.assert_close(
        model(source[:, :3], target), logits, rtol=1e-5, atol=1e-5
    )
    padded = torch.cat([source, torch.zeros(1, 5, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded, target), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [0.0, 0.5, 1.0])
def test_greedy_decode_matches_full_forward(vocabs, bias):
    model = small_model(vocabs, seed=1)
    with torch.no_grad():
        model.readout.bias[2] += bias  # vary when <eos> comes
        model.readout.bias[:2] = -1e4  # an untrained model could emit <pad> or <bos>
    pairs = simple_split()[1][:40]
    source, _ = S.encode_pairs(pairs, *vocabs)
    ids = S.greedy_decode(model, source, 1, 2, 15)
    assert ids.shape[0] == 40 and ids.shape[1] <= 15
    decoder_input = torch.cat([torch.ones(40, 1, dtype=torch.long), ids[:, :-1]], 1)
    full = model(source, decoder_input).argmax(-1)
    finished_before = (ids == 2).long().cumsum(1) - (ids == 2).long() > 0
    assert bool(((full == ids) | finished_before).all())
    # after <eos>, everything is <eos>
    assert bool((ids[finished_before] == 2).all())


def test_training_lowers_the_loss(vocabs):
    model = small_model(vocabs)
    pairs = simple_split()[0][:512]
    losses = S.train_seq2seq(
        model, pairs, *vocabs, epochs=3, batch_size=64, lr=3e-3, warmup=10
    )
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4


def test_max_steps_gives_the_same_run_whatever_the_machine(vocabs):
    pairs = simple_split()[0][:300]
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = S.TransformerSeq2Seq(
            len(vocabs[0]),
            len(vocabs[1]),
            dim=16,
            num_heads=2,
            hidden_dim=32,
            num_layers=1,
        )
        runs.append(
            S.train_seq2seq(model, pairs, *vocabs, epochs=5, batch_size=32, max_steps=7)
        )
    assert len(runs[0]) == 7 and runs[0] == runs[1]


def test_checkpoint_round_trip(vocabs, tmp_path):
    model = small_model(vocabs)
    path = tmp_path / "m.pt"
    save_checkpoint(
        path,
        model,
        {"epochs": 3},
        source_tokens=vocabs[0].itos,
        target_tokens=vocabs[1].itos,
    )
    loaded, source_vocab, target_vocab, info = S.load_checkpoint(path)
    assert info == {"epochs": 3} and source_vocab.itos == vocabs[0].itos
    source = torch.tensor([[3, 4, 5]])
    target = torch.tensor([[1, 3, 4]])
    torch.testing.assert_close(loaded(source, target), model(source, target))


@pytest.mark.parametrize("split", ["simple", "length"])
def test_shipped_checkpoints(split):
    path = CHECKPOINT_DIR / f"scan_{split}.pt"
    assert path.stat().st_size < 2_000_000
    model, source_vocab, target_vocab, info = S.load_scan_checkpoint(split)
    assert info["split"] == split
    test = (simple_split() if split == "simple" else length_split())[1]
    accuracy, _ = S.evaluate_exact_match(model, test[:300], source_vocab, target_vocab)
    if split == "simple":
        assert accuracy >= 95.0
    else:
        assert accuracy < 50.0


def test_the_cache_gives_exactly_the_uncached_translation(vocabs):
    model = small_model(vocabs, seed=2)
    with torch.no_grad():
        model.readout.bias[:2] = -1e4
    source, _ = S.encode_pairs(simple_split()[1][:30], *vocabs)
    cached = S.greedy_decode(model, source, 1, 2, 12)
    uncached = S.greedy_decode(model, source, 1, 2, 12, cache=False)
    assert torch.equal(cached, uncached)


def test_the_cache_projects_each_position_once_and_the_memory_once_per_sentence(
    vocabs, monkeypatch
):
    model = small_model(vocabs, seed=3)
    with torch.no_grad():
        model.readout.bias[:3] = -1e4  # never <eos>: decode all 9 positions
    source, _ = S.encode_pairs(simple_split()[1][:4], *vocabs)
    assert source.size(1) > 1
    projected = []  # positions projected to keys and values, one entry per call
    original = S.project_keys_values

    def record(attention, key, value):
        projected.append(key.size(1))
        return original(attention, key, value)

    monkeypatch.setattr(S, "project_keys_values", record)
    state = model.start_decoding(source)
    tokens = torch.ones(4, dtype=torch.long)
    for _ in range(9):
        _, state = model.decode_step(tokens, state)
    layers = len(model.decoder)
    # The encoder's output once per layer for the whole sentence, then only the new
    # position at each step.
    assert projected == [source.size(1)] * layers + [1] * (9 * layers)
    # The cache: keys and values of 9 positions, every layer, every sentence (float32).
    assert state.cache_bytes() == 2 * layers * 4 * 9 * model.dim * 4
