"""seqbook.models.positional_information: the shift matrix, learned and rotary position
embeddings, and the order task with its classifier, against their defining
properties."""

import math

import pytest
import torch

from seqbook.models import positional_information as positional
from seqbook.models.attention import sinusoidal_positional_encoding

# ------------------------------------------------------------------ shift matrix


@pytest.mark.parametrize("k", [0, 1, 7, 60, -1, -25])
@pytest.mark.parametrize("dim", [2, 8, 64])
def test_shift_matrix_maps_every_position_to_position_plus_k(k, dim):
    pe = sinusoidal_positional_encoding(150, dim)
    m = positional.shift_matrix(k, dim)
    assert m.shape == (dim, dim) and m.dtype == torch.float32
    t = torch.arange(max(0, -k), min(150, 150 - k))
    torch.testing.assert_close(pe[t] @ m, pe[t + k], atol=1e-4, rtol=0)


def test_shift_matrix_is_block_diagonal_orthogonal_and_composes():
    m3, m4, m7 = (positional.shift_matrix(k, 16).double() for k in (3, 4, 7))
    torch.testing.assert_close(m3 @ m3.T, torch.eye(16, dtype=torch.float64))
    torch.testing.assert_close(m3 @ m4, m7)
    torch.testing.assert_close(positional.shift_matrix(-3, 16).double(), m3.T)
    off_blocks = torch.ones(16, 16, dtype=torch.bool)
    for i in range(8):
        off_blocks[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = False
    assert (m7[off_blocks] == 0).all()
    torch.testing.assert_close(positional.shift_matrix(0, 6), torch.eye(6))


def test_shift_matrix_refuses_an_odd_dim():
    with pytest.raises(ValueError, match="cosine partner"):
        positional.shift_matrix(2, 7)


def test_dot_products_of_encodings_depend_only_on_the_offset():
    dim = 32
    pe = sinusoidal_positional_encoding(60, dim).double()
    omega = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    for k in (0, 3, 17):
        expected = torch.cos(k * omega).sum()
        dots = (pe[: 60 - k] * pe[k:]).sum(dim=1)
        torch.testing.assert_close(dots, expected.expand_as(dots), atol=1e-4, rtol=0)


# ----------------------------------------------------------- learned embeddings


def test_learned_embedding_adds_one_row_per_position():
    layer = positional.LearnedPositionalEmbedding(10, 4)
    x = torch.randn(3, 6, 4)
    torch.testing.assert_close(layer(x), x + layer.table.weight[:6])


def test_learned_embedding_refuses_too_long_sequences_with_a_message():
    layer = positional.LearnedPositionalEmbedding(8, 4)
    with pytest.raises(ValueError, match="positions 0..7 only"):
        layer(torch.zeros(1, 9, 4))


def test_unused_rows_get_no_gradient():
    layer = positional.LearnedPositionalEmbedding(10, 4)
    layer(torch.randn(2, 6, 4)).sum().backward()
    grad = layer.table.weight.grad
    assert (grad[:6] != 0).all() and (grad[6:] == 0).all()


# ------------------------------------------------------------- rotary embeddings


def test_rotary_scores_depend_only_on_the_relative_offset():
    torch.manual_seed(0)
    d, t = 16, 30
    q, k = torch.randn(d), torch.randn(d)
    scores = (
        positional.rotary_embedding(q.expand(t, d))
        @ positional.rotary_embedding(k.expand(t, d)).T
    )  # (T, T)
    for offset in range(-t + 1, t):
        diagonal = scores.diagonal(offset)
        assert (diagonal.max() - diagonal.min()).item() < 1e-4
    assert (scores.max() - scores.min()).item() > 1.0  # but not constant


def test_rotary_embedding_rotates_pairs_and_keeps_norms():
    x = torch.randn(2, 3, 5, 8)  # (B, H, T, d)
    rotated = positional.rotary_embedding(x)
    assert rotated.shape == x.shape
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[..., 0, :], x[..., 0, :])  # position 0: no turn
    # Position 1, pair 0 turns by 1 radian.
    a, b = x[..., 1, 0], x[..., 1, 1]
    torch.testing.assert_close(rotated[..., 1, 0], a * math.cos(1) - b * math.sin(1))
    torch.testing.assert_close(rotated[..., 1, 1], a * math.sin(1) + b * math.cos(1))
    # An offset is a shift of the positions.
    torch.testing.assert_close(
        positional.rotary_embedding(x[..., 2:, :]),
        positional.rotary_embedding(x, offset=-2)[..., 2:, :],
    )
    with pytest.raises(ValueError, match="odd"):
        positional.rotary_embedding(torch.zeros(4, 5))


def test_rotary_embedding_follows_the_dtype():
    x = torch.randn(4, 6, dtype=torch.float64)
    assert positional.rotary_embedding(x).dtype == torch.float64


# ------------------------------------------------------------------ the order task


def test_order_batch_has_one_a_and_one_b_and_the_right_targets():
    tokens, targets = positional.order_batch(
        500, 9, generator=torch.Generator().manual_seed(0)
    )
    assert tokens.shape == (500, 9) and targets.shape == (500,)
    assert ((tokens == positional.A_TOKEN).sum(1) == 1).all()
    assert ((tokens == positional.B_TOKEN).sum(1) == 1).all()
    assert tokens.max() <= 9 and tokens.min() >= 0
    a = (tokens == positional.A_TOKEN).float().argmax(1)
    b = (tokens == positional.B_TOKEN).float().argmax(1)
    assert torch.equal(targets, (a < b).long())
    assert 0.4 < targets.float().mean().item() < 0.6


def test_order_batch_is_reproducible_and_refuses_too_short_sequences():
    first = positional.order_batch(8, 5, generator=torch.Generator().manual_seed(3))
    second = positional.order_batch(8, 5, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    with pytest.raises(ValueError):
        positional.order_batch(4, 1)


def test_the_bag_of_tokens_says_nothing_about_the_target():
    # Reversing a sequence keeps its bag of tokens and flips its target.
    tokens, targets = positional.order_batch(
        200, 7, generator=torch.Generator().manual_seed(1)
    )
    reversed_tokens = tokens.flip(1)
    a = (reversed_tokens == positional.A_TOKEN).float().argmax(1)
    b = (reversed_tokens == positional.B_TOKEN).float().argmax(1)
    assert torch.equal((a < b).long(), 1 - targets)


def test_classifier_without_positions_is_permutation_invariant():
    torch.manual_seed(0)
    model = positional.OrderClassifier("none").eval()
    tokens, _ = positional.order_batch(
        16, 10, generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), model(tokens[:, torch.randperm(10)]))


@pytest.mark.parametrize("kind", ["sinusoidal", "learned"])
def test_classifier_with_positions_is_not_permutation_invariant(kind):
    torch.manual_seed(0)
    model = positional.OrderClassifier(kind).eval()
    tokens, _ = positional.order_batch(
        16, 10, generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        assert (model(tokens) - model(tokens.flip(1))).abs().max() > 1e-4


def test_classifier_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="positions must be one of"):
        positional.OrderClassifier("absolute")


def test_order_task_is_learned_with_positions_and_not_without():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    test = positional.order_batch(1000, 8, generator=torch.Generator().manual_seed(9))
    accuracy = {}
    try:
        for kind in ("none", "sinusoidal"):
            torch.manual_seed(0)
            model = positional.OrderClassifier(kind)
            log = positional.train_order_model(model, 8, steps=250)
            assert log.steps == 250
            accuracy[kind] = positional.order_accuracy(model, *test)
    finally:
        torch.set_num_threads(threads)
    assert abs(accuracy["none"] - 0.5) < 0.06
    assert accuracy["sinusoidal"] > 0.95
