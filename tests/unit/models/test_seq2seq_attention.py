"""seqbook.models.seq2seq_attention: vocabulary and batches, additive attention, the
decoding loop, the models, a short training run, and the shipped checkpoints."""

import datetime

import pytest
import torch

from seqbook.data.dates import DATE_FORMATS, date_split, format_date
from seqbook.models import seq2seq_attention as seq2seq
from seqbook.train.checkpoints import checkpoint_path, read_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def vocab():
    return seq2seq.date_vocabulary()


def test_vocabulary_covers_every_format_and_has_the_specials_first(vocab):
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    date = datetime.date(1987, 9, 23)
    for style in DATE_FORMATS:
        assert vocab.unk_id not in vocab.encode(format_date(date, style))
    assert seq2seq.date_vocabulary().itos == vocab.itos  # deterministic


def test_encode_pairs_pads_and_appends_eos(vocab):
    pairs = [("4/11/89", "1989-04-11"), ("the 1st of May 2001", "2001-05-01")]
    source, lengths, targets = seq2seq.encode_pairs(pairs, vocab)
    assert source.shape == (2, 19) and lengths.tolist() == [7, 19]
    assert (source[0, 7:] == vocab.pad_id).all()
    assert "".join(vocab.decode(source[0, :7].tolist())) == "4/11/89"
    assert targets.shape == (2, 11)
    assert vocab.decode(targets[1].tolist()) == list("2001-05-01") + ["<eos>"]


def test_additive_attention_matches_the_formula_and_masks():
    torch.manual_seed(0)
    module = seq2seq.AdditiveAttention(3, 5, 4)
    query, keys = torch.randn(2, 3), torch.randn(2, 6, 5)
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    context, weights = module(query, keys, mask)
    assert context.shape == (2, 5) and weights.shape == (2, 6)
    scores = torch.stack(
        [
            torch.stack(
                [
                    module.score
                    @ torch.tanh(
                        module.query_proj.weight @ query[b]
                        + module.key_proj(keys[b, j])
                    )
                    for j in range(6)
                ]
            )
            for b in range(2)
        ]
    )
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, torch.einsum("bt,btd->bd", expected, keys))
    assert module.query_proj.bias is None and module.key_proj.bias is not None
    empty = torch.zeros(2, 6, dtype=torch.bool)
    context, weights = module(query, keys, empty)
    assert (
        not torch.isnan(weights).any() and (weights == 0).all() and (context == 0).all()
    )


def test_decode_steps_inputs_in_both_modes():
    seen = []

    def step(tokens, state):
        seen.append(tokens.tolist())
        return torch.nn.functional.one_hot((tokens + 1) % 5, 5).float(), state

    gold = torch.tensor([[3, 1, 4, 1]])
    logits = seq2seq.decode_steps(step, None, gold, 0, teacher_forcing=True)
    assert seen == [[0], [3], [1], [4]] and logits.shape == (1, 4, 5)
    seen.clear()
    logits = seq2seq.decode_steps(step, None, gold, 0, teacher_forcing=False)
    assert seen == [[0], [1], [2], [3]]
    assert logits.argmax(-1).tolist() == [[1, 2, 3, 4]]


def test_encoder_ignores_padding(vocab):
    torch.manual_seed(0)
    model = seq2seq.Seq2Seq(
        len(vocab), attention=True, bos_id=vocab.stoi[seq2seq.BOS]
    ).eval()
    pairs = [("4/11/89", "1989-04-11")]
    longer = pairs + [("the 1st of May 2001", "2001-05-01")]
    with torch.no_grad():
        alone = model(*seq2seq.encode_pairs(pairs, vocab))
        padded = model(*seq2seq.encode_pairs(longer, vocab))
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=1e-5)


def test_a_short_training_run_lowers_the_loss(vocab):
    torch.manual_seed(0)
    train, _ = date_split(200, 10, 2, seed=1)
    for attention in (True, False):
        model = seq2seq.Seq2Seq(
            len(vocab),
            embed_dim=16,
            hidden_dim=32,
            attention=attention,
            bos_id=vocab.stoi[seq2seq.BOS],
        )
        losses = seq2seq.train_seq2seq(
            model, train, vocab, steps=40, log_every=10, batch_size=32
        )
        assert len(losses) == 4 and losses[-1] < 0.7 * losses[0]


def test_training_length_is_a_step_count_never_a_time(vocab):
    import inspect

    assert "seconds" not in inspect.signature(seq2seq.train_seq2seq).parameters
    model = seq2seq.Seq2Seq(
        len(vocab),
        embed_dim=8,
        hidden_dim=8,
        attention=False,
        bos_id=vocab.stoi[seq2seq.BOS],
    )
    for steps in (0, None, 2.5):
        with pytest.raises(ValueError, match="steps"):
            seq2seq.train_seq2seq(
                model, [("1/2/03", "2003-01-02")] * 4, vocab, steps=steps, batch_size=2
            )


def test_checkpoint_round_trip(tmp_path, vocab):
    torch.manual_seed(0)
    model = seq2seq.Seq2Seq(
        len(vocab),
        embed_dim=8,
        hidden_dim=16,
        attention=False,
        bos_id=vocab.stoi[seq2seq.BOS],
    )
    save_checkpoint(tmp_path / "tiny.pt", model, {"steps": 0}, itos=vocab.itos)
    loaded, info = seq2seq.load_checkpoint(tmp_path / "tiny.pt")
    assert info == {"steps": 0} and not loaded.training
    saved = read_checkpoint(tmp_path / "tiny.pt")
    assert all(value.dtype == torch.float32 for value in saved["state_dict"].values())
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items()
    ):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("name", ["dates_attention", "dates_no_attention"])
def test_shipped_checkpoints_are_small_and_load(name, vocab):
    path = checkpoint_path(name)
    assert path.is_file() and path.stat().st_size < 2_000_000
    model, info = seq2seq.load_checkpoint(name)
    assert info["steps"] > 0 and info["train_seconds"] > 0
    _, test = date_split(train_dates=5000, test_dates=1000, formats_per_date=2, seed=0)
    predictions, alignments = seq2seq.translate(model, test[:200], vocab)
    accuracy = seq2seq.exact_match(predictions, test[:200])
    if name == "dates_attention":
        assert accuracy >= 0.99
        assert len(alignments) == 200 and alignments[0].shape == (11, len(test[0][0]))
        torch.testing.assert_close(alignments[0].sum(-1), torch.ones(11))
    else:
        assert alignments == [] and 0.3 < accuracy < 0.99


def test_a_checkpoint_refuses_contents_that_would_overwrite_its_own(tmp_path, vocab):
    model = seq2seq.Seq2Seq(
        len(vocab),
        embed_dim=8,
        hidden_dim=16,
        attention=False,
        bos_id=vocab.stoi[seq2seq.BOS],
    )
    with pytest.raises(ValueError, match="written by save_checkpoint itself"):
        save_checkpoint(tmp_path / "bad.pt", model, info=None, config={})
