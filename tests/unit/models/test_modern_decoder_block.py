"""seqbook.models.modern_decoder_block against PyTorch's RMSNorm and Hugging Face's
Llama (a layer and a whole model with copied weights, built offline from a config),
with the properties of rotary embeddings and the classic mistakes that break them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqbook.models.attention import merge_heads, split_heads
from seqbook.models.attention_at_scale import repeat_kv
from seqbook.models.modern_decoder_block import (
    LlamaStyleAttention,
    ModernDecoderBlock,
    ModernDecoderLM,
    RMSNorm,
    apply_rotary,
    load_llama_layer_weights,
    load_llama_weights,
    rotary_frequencies,
    swiglu_hidden_dim,
)
from seqbook.models.positional_information import rotary_embedding
from seqbook.models.transformer import LayerNorm, SwiGLUFeedForward
from seqbook.models.transformer_from_blocks import parameter_groups


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def randomize_(module: nn.Module, generator: torch.Generator, std: float = 0.2):
    """Random weights from ``generator``: norm gains around 1 (not all ones, so a
    swapped norm shows), matrices around 0."""
    for parameter in module.parameters():
        noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
        parameter.copy_(noise * std + (1.0 if parameter.dim() == 1 else 0.0))
    return module


# ------------------------------------------------------------------------ RMSNorm


@pytest.mark.parametrize("shape, eps", [((3, 4, 10), 1e-6), ((7, 32), 1e-5)])
def test_rms_norm_equals_pytorch_with_gradients(shape, eps):
    g = torch.Generator().manual_seed(0)
    dim = shape[-1]
    theirs = randomize_(nn.RMSNorm(dim, eps=eps), g)
    ours = RMSNorm(dim, eps=eps)
    ours.load_state_dict(theirs.state_dict())
    x = (torch.randn(shape, generator=g) * 3 + 1).requires_grad_()
    torch.testing.assert_close(ours(x), theirs(x))
    (ours_grad,) = torch.autograd.grad(ours(x).sin().sum(), x)
    (theirs_grad,) = torch.autograd.grad(theirs(x).sin().sum(), x)
    torch.testing.assert_close(ours_grad, theirs_grad)
    ours(x).sin().sum().backward()
    theirs(x).sin().sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)


def test_rms_norm_ignores_the_scale_and_is_layer_norm_on_centred_inputs():
    g = torch.Generator().manual_seed(1)
    norm = randomize_(RMSNorm(16, eps=1e-6), g)
    x = torch.randn(4, 16, generator=g) + 2.0
    torch.testing.assert_close(norm(5.0 * x), norm(x))
    centred = x - x.mean(dim=-1, keepdim=True)
    layer_norm = LayerNorm(16, eps=1e-6)
    layer_norm.weight.data.copy_(norm.weight)  # bias stays 0
    torch.testing.assert_close(norm(centred), layer_norm(centred))


def test_a_mean_subtracting_rms_norm_is_a_different_function():
    # The classic mistake: layer norm without its bias is not RMSNorm.
    g = torch.Generator().manual_seed(2)
    norm = RMSNorm(12)
    x = torch.randn(5, 12, generator=g) + 1.5  # a mean far from 0

    def centred(x):
        x = x - x.mean(dim=-1, keepdim=True)
        return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + norm.eps)

    assert not torch.allclose(centred(x), norm(x), atol=1e-2)
    torch.testing.assert_close(norm(x), nn.RMSNorm(12, eps=norm.eps)(x))


# ------------------------------------------------------------------------- SwiGLU


@pytest.mark.parametrize("dim, ffn_hidden_dim", [(8, 32), (32, 64), (48, 200)])
def test_swiglu_hidden_dim_matches_the_two_matrix_parameter_count(dim, ffn_hidden_dim):
    hidden = swiglu_hidden_dim(dim, ffn_hidden_dim)
    swiglu = count(SwiGLUFeedForward(dim, hidden))
    plain = 2 * dim * ffn_hidden_dim  # up and down, weights only
    assert swiglu == 3 * dim * hidden
    # 3 * hidden lies in [2 ffn - 2, 2 ffn]: at most two rows of dim weights short.
    assert 0 <= plain - swiglu <= 2 * dim
    assert swiglu_hidden_dim(dim) == swiglu_hidden_dim(dim, 4 * dim)


@pytest.mark.parametrize(
    "dim, multiple_of, expected", [(4096, 256, 11008), (5120, 256, 13824)]
)
def test_swiglu_hidden_dim_of_llama_rounds_up(dim, multiple_of, expected):
    # Llama-7B and Llama-13B: 2/3 of 4 * dim, rounded up to a multiple of 256.
    hidden = swiglu_hidden_dim(dim, 4 * dim, multiple_of=multiple_of)
    assert hidden == expected and hidden % multiple_of == 0
    assert 0 <= hidden - 2 * 4 * dim / 3 < multiple_of


def test_swiglu_hidden_dim_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="positive"):
        swiglu_hidden_dim(8, 0)
    with pytest.raises(ValueError, match="positive"):
        swiglu_hidden_dim(8, 32, multiple_of=0)


# --------------------------------------------------------------------------- RoPE


def test_rotary_tables_hold_the_angles_twice():
    cos, sin = rotary_frequencies(8, 20, base=100.0, dtype=torch.float64)
    assert cos.shape == sin.shape == (20, 8) and cos.dtype == torch.float64
    frequencies = 100.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    angles = torch.arange(20, dtype=torch.float64)[:, None] * frequencies
    torch.testing.assert_close(cos, angles.cos().repeat(1, 2))
    torch.testing.assert_close(sin, angles.sin().repeat(1, 2))
    with pytest.raises(ValueError, match="pairs"):
        rotary_frequencies(7, 4)


@pytest.mark.parametrize("m, n, shift", [(5, 2, 7), (0, 9, 30), (3, 3, 50), (12, 0, 1)])
def test_rotated_dot_product_depends_on_the_offset_only(m, n, shift):
    g = torch.Generator().manual_seed(3)
    cos, sin = rotary_frequencies(16, 128, dtype=torch.float64)
    q, k = torch.randn(2, 1, 1, 1, 16, generator=g, dtype=torch.float64)

    def score(m, n):  # the rotated query at m against the rotated key at n
        q_m = apply_rotary(q, cos, sin, torch.tensor([m]))
        k_n = apply_rotary(k, cos, sin, torch.tensor([n]))
        return (q_m * k_n).sum()

    torch.testing.assert_close(score(m + shift, n + shift), score(m, n))
    assert not torch.allclose(score(m, n + 1), score(m, n))  # the offset does count


def test_rotated_score_matrices_of_shifted_sequences_are_equal():
    g = torch.Generator().manual_seed(4)
    cos, sin = rotary_frequencies(8, 64)
    q = torch.randn(2, 3, 10, 8, generator=g)
    k = torch.randn(2, 3, 10, 8, generator=g)
    shifted = torch.arange(10) + torch.tensor([[13], [40]])  # (B, T): one per row

    def scores(positions):
        rotated_q = apply_rotary(q, cos, sin, positions)
        return rotated_q @ apply_rotary(k, cos, sin, positions).transpose(-2, -1)

    torch.testing.assert_close(scores(shifted), scores(None), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 5, 4), (2, 3, 9, 16)])
def test_rotation_preserves_norms(shape):
    g = torch.Generator().manual_seed(5)
    cos, sin = rotary_frequencies(shape[-1], 32)
    x = torch.randn(shape, generator=g)
    rotated = apply_rotary(x, cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    half = shape[-1] // 2  # each pair (i, i + d/2) keeps its own length
    pairs = x[..., :half].hypot(x[..., half:])
    torch.testing.assert_close(rotated[..., :half].hypot(rotated[..., half:]), pairs)
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])  # position 0: no turn


def complex_rope_interleaved(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE as the paper writes it: pair (2i, 2i+1) is the complex number
    x[2i] + i x[2i+1], multiplied by exp(i t w_i) at position t."""
    length, dim = x.shape[-2:]
    frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * frequencies
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], dim // 2, 2).contiguous())
    turned = z * torch.polar(torch.ones_like(angles), angles)  # (..., T, d/2)
    return torch.view_as_real(turned).flatten(-2)


@pytest.mark.parametrize("shape", [(1, 1, 6, 4), (2, 4, 11, 16)])
def test_half_split_rope_is_the_complex_formulation_after_a_permutation(shape):
    g = torch.Generator().manual_seed(6)
    dim = shape[-1]
    x = torch.randn(shape, generator=g, dtype=torch.float64)  # interleaved layout
    # Half-split feature j is interleaved feature 2j, feature j + d/2 is 2j + 1.
    order = torch.cat((torch.arange(0, dim, 2), torch.arange(1, dim, 2)))
    cos, sin = rotary_frequencies(dim, shape[-2], dtype=torch.float64)
    expected = complex_rope_interleaved(x)
    torch.testing.assert_close(
        apply_rotary(x[..., order], cos, sin), expected[..., order]
    )
    # Part 2's interleaved rotary_embedding is the same map (float32 angles there).
    book = rotary_embedding(x.float())
    torch.testing.assert_close(book, expected.float(), atol=1e-5, rtol=1e-5)
    # The classic mistake: the half-split rotation on interleaved features.
    assert not torch.allclose(apply_rotary(x, cos, sin), expected, atol=1e-3)


def test_apply_rotary_rejects_a_sequence_longer_than_the_tables():
    cos, sin = rotary_frequencies(4, 8)
    with pytest.raises(ValueError, match="longer"):
        apply_rotary(torch.zeros(1, 1, 9, 4), cos, sin)


# ------------------------------------------------------------------ Hugging Face


@pytest.fixture(scope="module")
def hf_llama():
    return pytest.importorskip("transformers.models.llama.modeling_llama")


def llama_config(implementation: str = "eager", layers: int = 1, tied: bool = False):
    """The small LlamaConfig of the brief, built offline (nothing is downloaded)."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=layers,
        rms_norm_eps=1e-6,
        vocab_size=50,
        max_position_embeddings=64,
        attention_dropout=0.0,
        hidden_act="silu",
        tie_word_embeddings=tied,
    )
    config._attn_implementation = implementation
    return config


def test_apply_rotary_equals_llamas_rotary_embedding(hf_llama):
    g = torch.Generator().manual_seed(7)
    rope = hf_llama.LlamaRotaryEmbedding(config=llama_config())
    q = torch.randn(2, 4, 10, 8, generator=g)
    k = torch.randn(2, 2, 10, 8, generator=g)
    positions = torch.randint(0, 64, (2, 10), generator=g)
    their_cos, their_sin = rope(q, positions)  # (B, T, d)
    their_q, their_k = hf_llama.apply_rotary_pos_emb(q, k, their_cos, their_sin)
    cos, sin = rotary_frequencies(8, 64)
    torch.testing.assert_close(cos[positions], their_cos, atol=1e-5, rtol=0)
    torch.testing.assert_close(sin[positions], their_sin, atol=1e-5, rtol=0)
    ours_q = apply_rotary(q, cos, sin, positions)
    torch.testing.assert_close(ours_q, their_q, atol=1e-5, rtol=1e-5)
    ours_k = apply_rotary(k, cos, sin, positions)
    torch.testing.assert_close(ours_k, their_k, atol=1e-5, rtol=1e-5)


def additive_causal_mask(batch: int, length: int, dtype: torch.dtype):
    """The float mask Llama's eager attention adds to its scores: 0 where a query may
    attend, the dtype's most negative number where it may not."""
    hidden = ~torch.ones(length, length, dtype=torch.bool).tril()
    mask = torch.zeros(length, length, dtype=dtype).masked_fill(
        hidden, torch.finfo(dtype).min
    )
    return mask.expand(batch, 1, length, length)  # (B, 1, T, T)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "batch, length, shifted", [(1, 1, False), (2, 7, False), (3, 16, True)]
)
def test_block_equals_llama_decoder_layer(
    hf_llama, implementation, dtype, batch, length, shifted
):
    g = torch.Generator().manual_seed(8)
    config = llama_config(implementation)
    layer = hf_llama.LlamaDecoderLayer(config, layer_idx=0).eval()
    randomize_(layer, g)
    block = ModernDecoderBlock(32, 4, 2, 64, max_len=64)
    load_llama_layer_weights(block, layer)
    layer, block = layer.to(dtype), block.to(dtype)
    x = torch.randn(batch, length, 32, generator=g, dtype=dtype)
    positions = torch.arange(length).expand(batch, length)  # (B, T)
    if shifted:  # every sequence starts at its own position
        positions = positions + torch.randint(0, 40, (batch, 1), generator=g)
    mask = None  # sdpa: Llama's attention is causal when given no mask
    if implementation == "eager":
        mask = additive_causal_mask(batch, length, dtype)
    with torch.no_grad():
        cos_sin = hf_llama.LlamaRotaryEmbedding(config=config)(x, positions)
        expected = layer(x, attention_mask=mask, position_embeddings=cos_sin)
        if isinstance(expected, tuple):  # older versions return a tuple
            expected = expected[0]
        ours = block(x, positions if shifted else None)
    # Llama computes its norms and rotary tables in float32 whatever the dtype.
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_loading_a_llama_layer_that_does_not_fit_fails_and_copies_nothing(hf_llama):
    config = llama_config()
    block = ModernDecoderBlock(32, 4, 4, 64)  # 4 kv heads where Llama has 2
    before = {name: p.clone() for name, p in block.named_parameters()}
    layer = hf_llama.LlamaDecoderLayer(config, layer_idx=0)
    with pytest.raises(ValueError, match="k_proj: shape"):
        load_llama_layer_weights(block, layer)
    for name, parameter in block.named_parameters():
        assert torch.equal(parameter, before[name]), name
    config.attention_bias = True
    with pytest.raises(ValueError, match="bias"):
        load_llama_layer_weights(
            ModernDecoderBlock(32, 4, 2, 64),
            hf_llama.LlamaDecoderLayer(config, layer_idx=0),
        )


def test_language_model_equals_llama_for_causal_lm(hf_llama):
    g = torch.Generator().manual_seed(9)
    llama = hf_llama.LlamaForCausalLM(llama_config("sdpa", layers=2, tied=True)).eval()
    assert llama.lm_head.weight is llama.model.embed_tokens.weight
    randomize_(llama, g)
    model = ModernDecoderLM(50, 32, 4, 2, 2, 64, tie_weights=True, max_len=64)
    load_llama_weights(model, llama)
    ids = torch.randint(0, 50, (3, 12), generator=g)
    with torch.no_grad():
        expected = llama(ids).logits
        torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="tied"):
        load_llama_weights(
            ModernDecoderLM(50, 32, 4, 2, 2, 64, tie_weights=False), llama
        )


# ------------------------------------------------------------------- attention


def reference_attention(
    attention, x, positions=None, *, rope_on_values=False, tile_heads=False
):
    """The attention of ``attention``'s weights, written with PyTorch's
    ``F.scaled_dot_product_attention`` and query head h reading kv head
    h // (H / H_kv). The flags make the classic mistakes: rotating the values too, and
    repeating the kv heads with ``.repeat`` (query head h reads kv head h % H_kv)."""
    num_heads, num_kv_heads = attention.num_heads, attention.num_kv_heads
    q = split_heads(x @ attention.q_proj.weight.T, num_heads)  # (B, H, T, d)
    k = split_heads(x @ attention.k_proj.weight.T, num_kv_heads)  # (B, H_kv, T, d)
    v = split_heads(x @ attention.v_proj.weight.T, num_kv_heads)  # (B, H_kv, T, d)
    cos, sin = rotary_frequencies(attention.head_dim, 128, dtype=x.dtype)
    q, k = apply_rotary(q, cos, sin, positions), apply_rotary(k, cos, sin, positions)
    if rope_on_values:
        v = apply_rotary(v, cos, sin, positions)
    query_heads = torch.arange(num_heads)
    if tile_heads:
        kv_head = query_heads % num_kv_heads  # what .repeat(1, groups, 1, 1) gives
    else:
        kv_head = query_heads // (num_heads // num_kv_heads)
    k, v = k[:, kv_head], v[:, kv_head]  # (B, H, T, d)
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return merge_heads(heads) @ attention.o_proj.weight.T  # (B, T, dim)


@pytest.mark.parametrize("num_heads, num_kv_heads", [(4, 4), (4, 2), (6, 3), (6, 1)])
def test_attention_equals_pytorchs_grouped_query_attention(num_heads, num_kv_heads):
    g = torch.Generator().manual_seed(10)
    attention = randomize_(LlamaStyleAttention(24, num_heads, num_kv_heads), g)
    x = torch.randn(2, 9, 24, generator=g)
    expected = reference_attention(attention, x)
    torch.testing.assert_close(attention(x), expected, atol=1e-5, rtol=1e-5)
    if 1 < num_kv_heads < num_heads:  # otherwise both orders are the same
        wrong = reference_attention(attention, x, tile_heads=True)
        assert not torch.allclose(wrong, expected, atol=1e-3)


def test_repeat_kv_heads_gives_consecutive_query_heads_one_kv_head():
    kv = torch.arange(3.0).reshape(1, 3, 1, 1).expand(2, 3, 5, 4)  # head h holds h
    repeated = repeat_kv(kv, 2)  # (2, 6, 5, 4)
    assert repeated[0, :, 0, 0].tolist() == [0, 0, 1, 1, 2, 2]  # h // 2
    assert kv.repeat(1, 2, 1, 1)[0, :, 0, 0].tolist() == [0, 1, 2, 0, 1, 2]  # wrong


def test_grouped_query_attention_is_multi_head_attention_with_shared_kv_rows():
    g = torch.Generator().manual_seed(11)
    gqa = randomize_(LlamaStyleAttention(16, 4, 2), g)
    mha = LlamaStyleAttention(16, 4, 4)
    with torch.no_grad():
        for name in ("q_proj", "o_proj"):
            getattr(mha, name).weight.copy_(getattr(gqa, name).weight)
        for name in ("k_proj", "v_proj"):  # kv head j serves query heads 2j, 2j + 1
            rows = getattr(gqa, name).weight.reshape(2, 4, 16)  # (H_kv, d, dim)
            full = rows.repeat_interleave(2, dim=0).reshape(16, 16)
            getattr(mha, name).weight.copy_(full)
    assert count(gqa) == count(mha) - 2 * 16 * 8  # half the key and value rows
    x = torch.randn(3, 7, 16, generator=g)
    torch.testing.assert_close(gqa(x), mha(x), atol=1e-5, rtol=1e-5)


def test_attention_depends_on_relative_positions_only_unless_values_turn():
    g = torch.Generator().manual_seed(12)
    attention = randomize_(LlamaStyleAttention(16, 4, 2), g).double()
    x = torch.randn(2, 8, 16, generator=g, dtype=torch.float64)
    shifted = torch.arange(8) + 37
    torch.testing.assert_close(attention(x, shifted), attention(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        reference_attention(attention, x, shifted), attention(x), atol=1e-6, rtol=0
    )
    # Rotating the values too: outputs depend on where the sequence starts.
    wrong = reference_attention(attention, x, rope_on_values=True)
    wrong_shifted = reference_attention(attention, x, shifted, rope_on_values=True)
    assert not torch.allclose(wrong, attention(x), atol=1e-3)
    assert not torch.allclose(wrong_shifted, wrong, atol=1e-3)


def test_attention_rejects_head_counts_that_do_not_divide():
    with pytest.raises(ValueError, match="num_kv_heads"):
        LlamaStyleAttention(24, 6, 4)
    with pytest.raises(ValueError, match="num_heads"):
        LlamaStyleAttention(24, 5, 5)


# ---------------------------------------------------------------- block and model


def test_block_is_causal_and_counts_its_parameters():
    g = torch.Generator().manual_seed(13)
    block = randomize_(ModernDecoderBlock(16, 4, 2, 40), g)
    head_dim = 4
    attention = 16 * 4 * head_dim * 2 + 16 * 2 * head_dim * 2  # q, o; k, v
    assert count(block) == attention + 3 * 16 * 40 + 2 * 16
    x = torch.randn(2, 6, 16, generator=g)
    changed = x.clone()
    changed[:, 4:] += 1.0
    torch.testing.assert_close(block(changed)[:, :4], block(x)[:, :4])
    assert not torch.allclose(block(changed)[:, 4:], block(x)[:, 4:])


@pytest.mark.parametrize("vocab_size, dim", [(50, 32), (11, 16)])
def test_tied_weights_share_one_parameter(vocab_size, dim):
    tied = ModernDecoderLM(vocab_size, dim, 4, 2, 2, 48)
    untied = ModernDecoderLM(vocab_size, dim, 4, 2, 2, 48, tie_weights=False)
    assert tied.output.weight is tied.embed.weight
    assert untied.output.weight is not untied.embed.weight
    assert count(untied) - count(tied) == vocab_size * dim
    groups = parameter_groups(tied)
    assert groups["output layer"] == 0 and groups["embeddings"] == vocab_size * dim
    assert sum(groups.values()) == count(tied)
    # One matrix, two uses: the gradient collects both.
    ids = torch.randint(
        0, vocab_size, (2, 5), generator=torch.Generator().manual_seed(0)
    )
    tied(ids).square().mean().backward()
    assert tied.embed.weight.grad is not None


def test_language_model_is_causal_and_checks_its_length():
    g = torch.Generator().manual_seed(14)
    model = ModernDecoderLM(20, 16, 4, 2, 1, max_len=12)
    assert model.blocks[0].feed_forward.up.out_features == swiglu_hidden_dim(16)
    ids = torch.randint(0, 20, (3, 10), generator=g)
    logits = model(ids)
    assert logits.shape == (3, 10, 20)
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 20
    torch.testing.assert_close(model(changed)[:, :6], logits[:, :6])
    with pytest.raises(ValueError, match="longer"):
        model(torch.zeros(1, 13, dtype=torch.long))
