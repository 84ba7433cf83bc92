"""The grading round trip of the section "Multi-head attention": the solution scores
full marks, the blank student version 0, and a classic mistake in one cell loses exactly
that exercise's points (see grading_harness.py). Exercise 2 runs on the reference
split_heads/merge_heads (a locked cell rebinds them), so a wrong Exercise 1 does not
cost Exercise 2's points."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "multi_head_attention",
    wrong={
        "mha-split-merge": (  # reshapes straight to (B, H, T, d): heads mix positions
            "def split_heads(x, num_heads):\n"
            "    batch, length, dim = x.shape\n"
            "    return x.reshape(batch, num_heads, length, dim // num_heads)\n"
            "\n"
            "\n"
            "def merge_heads(x):\n"
            "    batch, num_heads, length, head_dim = x.shape\n"
            "    return x.reshape(batch, length, num_heads * head_dim)\n"
        ),
        "mha-module": (  # scales by sqrt(D) instead of sqrt(D / H)
            "class MultiHeadAttention(nn.Module):\n"
            "    def __init__(self, embed_dim, num_heads, bias=True):\n"
            "        super().__init__()\n"
            "        self.embed_dim, self.num_heads = embed_dim, num_heads\n"
            "        self.head_dim = embed_dim // num_heads\n"
            "        self.in_proj_weight = "
            "nn.Parameter(torch.empty(3 * embed_dim, embed_dim))\n"
            "        nn.init.xavier_uniform_(self.in_proj_weight)\n"
            "        if bias:\n"
            "            self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))\n"
            "        else:\n"
            "            self.register_parameter('in_proj_bias', None)\n"
            "        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)\n"
            "\n"
            "    def forward(self, query, key, value, mask=None):\n"
            "        b = self.in_proj_bias\n"
            "        bq, bk, bv = b.chunk(3) if b is not None else (None, None, None)\n"
            "        wq, wk, wv = self.in_proj_weight.chunk(3)\n"
            "        q = split_heads(F.linear(query, wq, bq), self.num_heads)\n"
            "        k = split_heads(F.linear(key, wk, bk), self.num_heads)\n"
            "        v = split_heads(F.linear(value, wv, bv), self.num_heads)\n"
            "        q = q * math.sqrt(self.head_dim) / math.sqrt(self.embed_dim)\n"
            "        heads, weights = scaled_dot_product_attention(q, k, v, mask)\n"
            "        return self.out_proj(merge_heads(heads)), weights\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
