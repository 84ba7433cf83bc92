"""The grading round trip of the section "The modern decoder block": the solution
scores full marks, the blank student version 0, and a classic mistake in one cell
loses exactly that exercise's points (see grading_harness.py)."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "modern_decoder_block",
    wrong={
        "modern-rms-norm": (  # the mean subtracted: layer norm without its bias
            "class RMSNorm(nn.Module):\n"
            "    def __init__(self, dim: int, eps: float = 1e-6):\n"
            "        super().__init__()\n"
            "        self.eps = eps\n"
            "        self.weight = nn.Parameter(torch.ones(dim))\n"
            "\n"
            "    def forward(self, x):\n"
            "        x = x - x.mean(dim=-1, keepdim=True)\n"
            "        mean_square = x.square().mean(dim=-1, keepdim=True)\n"
            "        return x * torch.rsqrt(mean_square + self.eps) * self.weight\n"
        ),
        "modern-apply-rotary": (  # the interleaved layout instead of the half split
            "rotate_half = reference.rotate_half\n"
            "\n"
            "\n"
            "def apply_rotary(x, cos, sin, positions=None):\n"
            "    if positions is None:\n"
            "        positions = torch.arange(x.size(-2))\n"
            "    half = x.size(-1) // 2\n"
            "    cos, sin = cos[positions][..., :half], sin[positions][..., :half]\n"
            "    if positions.dim() == 2:\n"
            "        cos, sin = cos[:, None], sin[:, None]\n"
            "    cos, sin = cos.to(x.dtype), sin.to(x.dtype)\n"
            "    even, odd = x[..., 0::2], x[..., 1::2]\n"
            "    turned = (even * cos - odd * sin, odd * cos + even * sin)\n"
            "    return torch.stack(turned, dim=-1).flatten(-2)\n"
        ),
        "modern-block-forward": (  # RoPE applied to the values too
            "from seqbook.models.attention import (causal_mask, merge_heads,\n"
            "                                      scaled_dot_product_attention, "
            "split_heads)\n"
            "from seqbook.models.attention_at_scale import repeat_kv\n"
            "\n"
            "\n"
            "def modern_block_forward(block, x, positions=None):\n"
            "    attention = block.attention\n"
            "    cos, sin = attention.cos, attention.sin\n"
            "\n"
            "    def self_attention(h):\n"
            "        q = split_heads(attention.q_proj(h), attention.num_heads)\n"
            "        k = split_heads(attention.k_proj(h), attention.num_kv_heads)\n"
            "        v = split_heads(attention.v_proj(h), attention.num_kv_heads)\n"
            "        q = reference.apply_rotary(q, cos, sin, positions)\n"
            "        k = reference.apply_rotary(k, cos, sin, positions)\n"
            "        v = reference.apply_rotary(v, cos, sin, positions)\n"
            "        groups = attention.num_heads // attention.num_kv_heads\n"
            "        k, v = repeat_kv(k, groups), repeat_kv(v, groups)\n"
            "        keep = causal_mask(h.size(1))\n"
            "        heads, _ = scaled_dot_product_attention(q, k, v, keep)\n"
            "        return attention.o_proj(merge_heads(heads))\n"
            "\n"
            "    h = x + self_attention(block.norm1(x))\n"
            "    return h + block.feed_forward(block.norm2(h))\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
