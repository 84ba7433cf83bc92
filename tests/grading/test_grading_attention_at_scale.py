"""The grading round trip of the section "Attention at scale": the solution scores full
marks, the blank student version 0, and a classic mistake in one cell loses exactly
that exercise's points (see grading_harness.py). Each exercise's check runs on its own
answer only, and later cells use the reference, so one wrong answer costs nothing
else."""

from __future__ import annotations

from grading_harness import RoundTrip, Section, course_fixture

SECTION = Section.of(
    "attention_at_scale",
    wrong={
        "scale-online": (  # the running sum is not rescaled when the maximum grows
            "def online_softmax(scores, dim=-1, block_size=1):\n"
            "    if block_size < 1:\n"
            "        raise ValueError('block_size must be at least 1')\n"
            "    x = scores.movedim(dim, -1)\n"
            "    m = x.new_full((*x.shape[:-1], 1), -math.inf)\n"
            "    total = x.new_zeros((*x.shape[:-1], 1))\n"
            "    for start in range(0, x.size(-1), block_size):\n"
            "        block = x[..., start : start + block_size]\n"
            "        m = torch.maximum(m, block.amax(dim=-1, keepdim=True))\n"
            "        total = total + torch.exp(block - safe_shift(m)).sum(-1, True)\n"
            "    return (torch.exp(x - safe_shift(m)) / total).movedim(-1, dim)\n"
        ),
        "scale-tiled": (  # the accumulator is not rescaled when the maximum grows
            "def tiled_attention(\n"
            "    query, key, value, mask=None, block_size=64, is_causal=False\n"
            "):\n"
            "    if block_size < 1:\n"
            "        raise ValueError('block_size must be at least 1')\n"
            "    t_q, t_k = query.size(-2), key.size(-2)\n"
            "    shape = torch.broadcast_shapes(\n"
            "        query.shape[:-2], key.shape[:-2], value.shape[:-2]\n"
            "    )\n"
            "    if mask is not None:\n"
            "        shape = torch.broadcast_shapes(shape, mask.shape[:-2])\n"
            "    m = query.new_full((*shape, t_q, 1), -math.inf)\n"
            "    total = query.new_zeros((*shape, t_q, 1))\n"
            "    acc = query.new_zeros((*shape, t_q, value.size(-1)))\n"
            "    rows = torch.arange(t_q)[:, None]\n"
            "    for start in range(0, t_k, block_size):\n"
            "        stop = min(start + block_size, t_k)\n"
            "        s = query @ key[..., start:stop, :].transpose(-2, -1)\n"
            "        s = s / math.sqrt(query.size(-1))\n"
            "        if mask is not None:\n"
            "            cols = mask if mask.size(-1) == 1 else mask[..., start:stop]\n"
            "            s = torch.where(cols, s, -math.inf)\n"
            "        if is_causal:\n"
            "            keys = torch.arange(start, stop)\n"
            "            s = s.masked_fill(keys > rows, -math.inf)\n"
            "        new = torch.maximum(m, s.amax(-1, keepdim=True))\n"
            "        w = torch.exp(s - safe_shift(new))\n"
            "        total = total * torch.exp(m - safe_shift(new)) + w.sum(-1, True)\n"
            "        acc = acc + w @ value[..., start:stop, :]\n"
            "        m = new\n"
            "    return acc / total.masked_fill(total == 0, 1.0)\n"
        ),
        "scale-cache": (  # key/value heads tiled [k0, k1, k0, k1]: the wrong order
            "def repeat_kv(x, groups):\n"
            "    return x.repeat(1, groups, 1, 1)\n"
            "\n"
            "\n"
            "def cached_step(layer, x, cache=None):\n"
            "    if x.size(1) != 1:\n"
            "        raise ValueError('one position at a time')\n"
            "    keys, values = layer.project_keys_values(x)\n"
            "    if cache is None:\n"
            "        cache = KVCache(keys, values)\n"
            "    else:\n"
            "        cache.append(keys, values)\n"
            "    if layer.window is not None:\n"
            "        cache.keep_last(layer.window)\n"
            "    return layer.attend(x, cache.keys, cache.values), cache\n"
        ),
    },
)

course = course_fixture(SECTION)


class TestRoundTrip(RoundTrip):
    section = SECTION
