"""Checks for the exercises of the section "Multi-head attention".

* :func:`check_split_merge` -- ``split_heads(x, num_heads)`` and ``merge_heads(x)``
  against :mod:`seqbook.models.attention`, with the classic mistakes named
  (reshaping straight to ``(B, H, T, D/H)`` so heads mix positions, interleaved instead
  of contiguous feature blocks, a missing transpose, a merge that is not the inverse of
  the split, ``.view`` on a non-contiguous tensor).
* :func:`check_multi_head_attention` -- a ``MultiHeadAttention`` class, graded by
  equality with ``torch.nn.MultiheadAttention(batch_first=True)`` after copying its
  (random) weights with ``load_state_dict``: no mask, a padding mask, a causal mask,
  cross-attention and ``bias=False``. The classic mistakes are named (scaling by
  sqrt(D) instead of sqrt(D/H), no output projection, heads split wrongly, weights
  averaged over heads, PyTorch's inverted mask convention, q/k/v blocks in the wrong
  order, ...). PyTorch's module, its functional form and the book's reference are
  unusable while the student's code runs; the book's ``scaled_dot_product_attention``
  (the previous section's function) may be called.

``hidden=False`` is the friendly visible check; ``hidden=True`` draws sizes, weights and
masks from a fresh random seed at grading time.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import torch
from torch import nn

from seqbook.checks import integrity
from seqbook.checks._harness import check, output_and_weights
from seqbook.checks.core import (
    CheckFailure,
    call_student,
    expect_close,
    expect_tensor,
    grading_generator,
    max_abs_error,
    random_int,
)
from seqbook.checks.guard import existing_paths, forbid_calls
from seqbook.models import attention as _reference_module

__all__ = ["check_split_merge", "check_multi_head_attention"]

# Captured at import, before any student code can touch the modules.
_reference_split = _reference_module.split_heads
_reference_merge = _reference_module.merge_heads
_reference_padding = _reference_module.padding_mask
_reference_causal = _reference_module.causal_mask
_ReferenceMHA = _reference_module.MultiHeadAttention
_TorchMHA = nn.MultiheadAttention
_softmax = torch.softmax

_HEAD_BUILTINS = existing_paths(
    ("seqbook.models.attention.split_heads", "seqbook.models.attention.merge_heads")
)
# Methods captured at import, so that a forward replaced by student code before the
# check still leaves the original recognisable (forbid_calls matches code objects).
_torch_mha_forward = _TorchMHA.forward
_reference_mha_forward = _ReferenceMHA.forward
# nn.MultiheadAttention.forward runs one of the first two functions (the second is its
# inference fast path); the methods are disabled on their classes and, through the
# captured aliases, recognised wherever they are called from.
_MHA_FORBIDDEN = existing_paths(
    (
        "torch.nn.functional.multi_head_attention_forward",
        "torch._native_multi_head_attention",
        "torch.nn.MultiheadAttention.forward",
        "seqbook.models.attention.MultiHeadAttention.forward",
        "seqbook.checks.multi_head_attention._torch_mha_forward",
        "seqbook.checks.multi_head_attention._reference_mha_forward",
    )
)
_MHA_REASON = (
    "write multi-head attention yourself (you may call scaled_dot_product_attention)."
)


def _guard_mha():
    return forbid_calls(*_MHA_FORBIDDEN, reason=_MHA_REASON)


def _call(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """call_student, with a hint for the classic `.view` on a non-contiguous tensor."""
    try:
        return call_student(fn, *args, what=what, **kwargs)
    except CheckFailure as failure:
        text = str(failure)
        if "view size is not compatible" in text or "not contiguous" in text:
            raise CheckFailure(
                f"{text} -- after a transpose the tensor is no longer contiguous in "
                "memory, so `.view` cannot flatten it: use `.reshape(...)` (or "
                "`.contiguous().view(...)`)."
            ) from failure
        raise


def _same(a: Any, b: torch.Tensor) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and tuple(a.shape) == tuple(b.shape)
        and max_abs_error(a, b) == 0.0
    )


# ------------------------------------------------------------ split and merge heads


def _split_cases(hidden: bool) -> list[tuple[torch.Tensor, int]]:
    """Inputs (x, H) with T, H and D/H all different, so each mistake shows."""
    if not hidden:
        x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)  # (B, T, D)
        return [(x, 4), (x, 2)]
    g = grading_generator(True)
    cases = []
    for dtype in (torch.float32, torch.float64):
        while True:
            heads, head_dim = random_int(g, 2, 6), random_int(g, 2, 7)
            length, batch = random_int(g, 2, 9), random_int(g, 1, 4)
            if len({heads, head_dim, length}) == 3:
                break
        x = torch.randn(batch, length, heads * head_dim, generator=g, dtype=dtype)
        cases.append((x, heads))
    return cases


def _check_split(split_heads, x: torch.Tensor, heads: int) -> None:
    batch, length, dim = x.shape
    head_dim = dim // heads
    what = f"split_heads(x of shape {tuple(x.shape)}, num_heads={heads})"
    with forbid_calls(*_HEAD_BUILTINS, reason="write it with reshape and transpose."):
        result = _call(split_heads, x.clone(), heads, what=what)
    expected = _reference_split(x, heads)
    expect_tensor(result, what)
    shape = tuple(result.shape)
    if shape == (batch, length, heads, head_dim):
        raise CheckFailure(
            f"{what} has shape {shape}, the intermediate (B, T, H, D/H): move the head "
            f"axis in front of the positions with .transpose(1, 2) to get "
            f"{tuple(expected.shape)}."
        )
    if shape == (batch, heads, head_dim, length):
        raise CheckFailure(
            f"{what} has shape {shape}: positions and features are swapped; expected "
            f"(B, H, T, D/H) = {tuple(expected.shape)} (transpose axes 1 and 2 of "
            "(B, T, H, D/H), not others)."
        )
    expect_tensor(result, what, shape=expected.shape, dtype=x.dtype)
    if _same(result, expected):
        return
    if _same(result, x.reshape(batch, heads, length, head_dim)):
        raise CheckFailure(
            f"{what} reshapes (B, T, D) straight to (B, H, T, D/H): that cuts the "
            "memory in the wrong order, so one 'head' gets features of several "
            "positions (heads mix positions). Reshape to (B, T, H, D/H) first, then "
            "transpose(1, 2)."
        )
    if _same(result, x.reshape(batch, length, head_dim, heads).permute(0, 3, 1, 2)):
        raise CheckFailure(
            f"{what} gives head h the features h, h + H, h + 2H, ... (every H-th "
            "feature). Each head owns a contiguous block: head h gets features "
            "h * D/H to (h + 1) * D/H - 1, as in nn.MultiheadAttention. Reshape to "
            "(B, T, H, D/H), not (B, T, D/H, H)."
        )
    worst = (result.detach().double() - expected.double()).abs().flatten(2).amax(-1)
    b, h = (int(i) for i in torch.nonzero(worst == worst.max())[0])
    raise CheckFailure(
        f"{what}: head {h} of batch element {b} is wrong; it should hold features "
        f"{h * head_dim} to {(h + 1) * head_dim - 1} of every position, in order."
    )


def _check_merge(merge_heads, heads_tensor: torch.Tensor, label: str) -> None:
    batch, heads, length, head_dim = heads_tensor.shape
    what = f"merge_heads({label} of shape {tuple(heads_tensor.shape)})"
    with forbid_calls(*_HEAD_BUILTINS, reason="write it with transpose and reshape."):
        result = _call(merge_heads, heads_tensor.clone(), what=what)
    expected = _reference_merge(heads_tensor)
    expect_tensor(result, what)
    if tuple(result.shape) != tuple(expected.shape) and tuple(result.shape) in (
        (batch, heads, length * head_dim),
        (batch, heads * head_dim, length),
    ):
        raise CheckFailure(
            f"{what} has shape {tuple(result.shape)}; expected (B, T, H * d) = "
            f"{tuple(expected.shape)}: transpose back to (B, T, H, d) before "
            "flattening."
        )
    expect_tensor(result, what, shape=expected.shape, dtype=heads_tensor.dtype)
    if _same(result, expected):
        return
    if _same(result, heads_tensor.reshape(batch, length, heads * head_dim)):
        raise CheckFailure(
            f"{what} flattens (B, H, T, d) straight to (B, T, H * d), which mixes "
            "positions: it is not the inverse of split_heads. Transpose to "
            "(B, T, H, d) first (transpose(1, 2)), then reshape."
        )
    if _same(result, heads_tensor.permute(0, 2, 3, 1).reshape(batch, length, -1)):
        raise CheckFailure(
            f"{what} interleaves the heads' features (feature i of every head side by "
            "side). Put each head's d features in one contiguous block: transpose to "
            "(B, T, H, d), then reshape to (B, T, H * d)."
        )
    expect_close(result, expected, what, atol=0.0, rtol=0.0)


@check
def check_split_merge(
    split_heads: Callable[..., Any],
    merge_heads: Callable[..., Any],
    hidden: bool = False,
) -> str:
    """Check ``split_heads(x, num_heads)`` ``(B, T, D) -> (B, H, T, D/H)`` and
    ``merge_heads(x)`` ``(B, H, T, d) -> (B, T, H * d)``, and that they are inverses."""
    cases = _split_cases(hidden)
    g = grading_generator(hidden)
    for x, heads in cases:
        _check_split(split_heads, x, heads)
        integrity.verify()
    for x, heads in cases:
        batch, length, dim = x.shape
        # A contiguous (B, H, T, d) tensor, as attention's output is ...
        contiguous = torch.randn(
            batch, heads, length, dim // heads, generator=g, dtype=x.dtype
        )
        if not hidden:
            contiguous = torch.arange(contiguous.numel(), dtype=x.dtype).reshape(
                contiguous.shape
            )
        _check_merge(merge_heads, contiguous, "a contiguous tensor")
        # ... and a non-contiguous one, straight from the reference split.
        _check_merge(merge_heads, _reference_split(x, heads), "split_heads(x)")
        integrity.verify()
        what = f"merge_heads(split_heads(x, {heads})) for x of shape {tuple(x.shape)}"
        with forbid_calls(
            *_HEAD_BUILTINS, reason="write it with reshape and transpose."
        ):
            round_trip = _call(
                lambda t: merge_heads(split_heads(t, heads)), x.clone(), what=what
            )
        if not _same(round_trip, x):
            raise CheckFailure(f"{what} is not x: merge_heads must undo split_heads.")
        integrity.verify()
    return (
        f"split_heads and merge_heads are correct and inverse on {len(cases)} "
        "input shapes."
    )


# ------------------------------------------------------------- multi-head attention


def _attend(
    params: dict[str, torch.Tensor | None],
    query,
    key,
    value,
    mask,
    heads: int,
    mistake: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention written out, optionally with one classic mistake."""
    weight, bias = params["in_proj_weight"], params.get("in_proj_bias")
    out_weight, out_bias = params["out_proj.weight"], params.get("out_proj.bias")
    dim = weight.shape[1]
    head_dim = dim // heads
    blocks = list(weight.chunk(3))
    bias_blocks = list(bias.chunk(3)) if bias is not None else [None] * 3
    if mistake is not None and mistake.startswith("order"):
        order = [int(i) for i in mistake[len("order") :]]
        blocks = [blocks[i] for i in order]
        bias_blocks = [bias_blocks[i] for i in order]

    def project(x, w, b):
        y = x @ (w if mistake == "untransposed" else w.T)
        if b is not None and mistake != "no_in_bias":
            y = y + b
        return y

    def split(x):
        batch, length, _ = x.shape
        if mistake == "straight_split":
            return x.reshape(batch, heads, length, head_dim)
        if mistake == "interleaved_split":
            return x.reshape(batch, length, head_dim, heads).permute(0, 3, 1, 2)
        return x.reshape(batch, length, heads, head_dim).transpose(1, 2)

    q, k, v = (
        split(project(x, w, b))
        for x, w, b in zip((query, key, value), blocks, bias_blocks)
    )
    scale = math.sqrt(dim if mistake == "scale_by_D" else head_dim)
    if mistake == "no_scale":
        scale = 1.0
    scores = q @ k.transpose(-2, -1) / scale  # (B, H, T_q, T_k)
    if mask is not None and mistake != "mask_ignored":
        keep = ~mask if mistake == "inverted_mask" else mask
        scores = scores.masked_fill(~keep, float("-inf"))
    weights = _softmax(scores, dim=-1).nan_to_num(0.0)
    heads_out = weights @ v  # (B, H, T_q, d)
    batch, _, t_q, _ = heads_out.shape
    if mistake == "straight_merge":
        merged = heads_out.reshape(batch, t_q, dim)
    else:
        merged = heads_out.transpose(1, 2).reshape(batch, t_q, dim)
    if mistake == "no_out_proj":
        return merged, weights
    output = merged @ out_weight.T
    if out_bias is not None and mistake != "no_out_bias":
        output = output + out_bias
    return output, weights


_WEIGHT_MISTAKES = {
    "scale_by_D": "the scores are divided by sqrt(D) (the model width) instead of "
    "sqrt(D/H) (the width of one head)",
    "no_scale": "the scores are not divided by sqrt(D/H)",
    "straight_split": "the heads are split by reshaping (B, T, D) straight to "
    "(B, H, T, D/H), which mixes positions: reshape to (B, T, H, D/H), then transpose",
    "interleaved_split": "each head takes every H-th feature instead of a contiguous "
    "block of D/H features",
    "inverted_mask": "the mask is read the other way round: in this book True means "
    "'may attend' (nn.MultiheadAttention's boolean masks use True = 'may NOT attend')",
    "mask_ignored": "the mask is not used",
    "untransposed": "the projections compute x @ W instead of x @ W.T "
    "(nn.Linear and F.linear compute x @ W^T + b)",
    "no_in_bias": "the input projection bias in_proj_bias is not added",
}
for _order in itertools.permutations("012"):
    if _order != ("0", "1", "2"):
        _names = dict(zip(_order, ("query", "key", "value")))
        _WEIGHT_MISTAKES["order" + "".join(_order)] = (
            "the blocks of in_proj_weight are used in the wrong order: rows 0 to D-1 "
            "project the query, D to 2D-1 the key and 2D to 3D-1 the value "
            f"(you used the {_names['0']} block for the query, the {_names['1']} block "
            f"for the key and the {_names['2']} block for the value)"
        )
_OUTPUT_MISTAKES = {
    "no_out_proj": "the output projection out_proj is not applied to the merged heads",
    "no_out_bias": "the output projection's bias is missing",
    "straight_merge": "the heads are merged by reshaping (B, H, T, d) straight to "
    "(B, T, D) without transposing back first",
}


def _diagnose(
    actual: torch.Tensor, params, inputs, mask, heads: int, mistakes: dict, index: int
) -> str | None:
    actual = actual.detach().nan_to_num(0.0)
    for name, message in mistakes.items():
        variant = _attend(params, *inputs, mask, heads, mistake=name)[index]
        if actual.shape == variant.shape and max_abs_error(actual, variant) < 1e-4:
            return message
    return None


def _randomised_torch_module(
    dim: int, heads: int, bias: bool, g: torch.Generator
) -> nn.MultiheadAttention:
    module = _TorchMHA(dim, heads, bias=bias, batch_first=True)
    with torch.no_grad():
        for parameter in module.parameters():  # random biases too, so mistakes show
            parameter.copy_(
                torch.randn(parameter.shape, generator=g)
                / math.sqrt(parameter.shape[-1])
            )
    return module.eval()


def _build_student(
    module_class, dim: int, heads: int, bias: bool, reference: nn.MultiheadAttention
) -> nn.Module:
    what = f"MultiHeadAttention({dim}, {heads}, bias={bias})"
    with _guard_mha():
        module = _call(module_class, dim, heads, bias=bias, what=what)
    if not isinstance(module, nn.Module):
        raise CheckFailure(
            f"{what} should be an nn.Module, got {type(module).__name__}."
        )
    expected = {name: tuple(p.shape) for name, p in reference.state_dict().items()}
    got = {name: tuple(p.shape) for name, p in module.state_dict().items()}
    if set(got) != set(expected):
        missing = sorted(set(expected) - set(got))
        unexpected = sorted(set(got) - set(expected))
        raise CheckFailure(
            f"{what} has the parameters {sorted(got)}; expected exactly "
            f"{sorted(expected)} (nn.MultiheadAttention's names, so load_state_dict "
            "can copy its weights)."
            + (f" Missing: {missing}." if missing else "")
            + (f" Unexpected: {unexpected}." if unexpected else "")
            + (
                " With bias=False there are no biases: register in_proj_bias as None "
                "(self.register_parameter('in_proj_bias', None)) and give out_proj "
                "bias=False."
                if not bias and unexpected
                else ""
            )
        )
    for name, shape in expected.items():
        if got[name] != shape:
            raise CheckFailure(
                f"{what}: {name} has shape {got[name]}, expected {shape}."
            )
    trainable = dict(module.named_parameters())
    for name in expected:
        if name not in trainable:
            raise CheckFailure(
                f"{what}: {name} is not an nn.Parameter (a plain tensor or a buffer is "
                "not trained): wrap it in nn.Parameter(...)."
            )
        value = trainable[name].detach()
        if name.endswith("weight") and (
            not bool(torch.isfinite(value).all()) or float(value.abs().max()) == 0.0
        ):
            raise CheckFailure(
                f"{what}: a freshly built module has {name} all zero or not finite: "
                "initialise it (nn.init.xavier_uniform_, as PyTorch does); torch.empty "
                "leaves whatever was in memory."
            )
    try:
        module.load_state_dict(reference.state_dict())
    except Exception as err:  # noqa: BLE001
        raise CheckFailure(f"{what}.load_state_dict(...) failed: {err}") from err
    return module


def _run_case(
    module,
    reference: nn.MultiheadAttention,
    heads: int,
    label: str,
    query,
    key,
    value,
    mask,
    check_gradients: bool = False,
) -> None:
    what = f"MultiHeadAttention on {label}"
    batch, t_q, dim = query.shape
    t_k = key.shape[1]
    torch_kwargs: dict[str, torch.Tensor] = {}
    if mask is not None:  # PyTorch's boolean masks: True = may NOT attend
        if mask.dim() == 4:
            torch_kwargs["key_padding_mask"] = ~mask[:, 0, 0]
        else:
            torch_kwargs["attn_mask"] = ~mask
    expected_output, expected_weights = reference(
        query, key, value, need_weights=True, average_attn_weights=False, **torch_kwargs
    )
    expected_output, expected_weights = (
        expected_output.detach(),
        expected_weights.detach(),
    )
    params = {name: p.detach() for name, p in reference.state_dict().items()}
    inputs = [t.clone().requires_grad_(check_gradients) for t in (query, key, value)]
    module.zero_grad(set_to_none=True)
    with _guard_mha():
        result = _call(
            module, *inputs, mask=None if mask is None else mask.clone(), what=what
        )
    output, weights = output_and_weights(result, what)
    if (
        isinstance(output, torch.Tensor)
        and isinstance(weights, torch.Tensor)
        and tuple(output.shape) == tuple(expected_weights.shape)
        and tuple(weights.shape) == tuple(expected_output.shape)
    ):
        raise CheckFailure(f"{what}: return (output, weights), in that order.")
    expect_tensor(weights, f"the weights of {what}")
    if tuple(weights.shape) == (batch, t_q, t_k):
        raise CheckFailure(
            f"the weights of {what} have shape {(batch, t_q, t_k)}: they are averaged "
            "over the heads (nn.MultiheadAttention's default, "
            "average_attn_weights=True). Return every head's weights, shape "
            f"(B, H, T_q, T_k) = {tuple(expected_weights.shape)}."
        )
    expect_tensor(
        weights,
        f"the weights of {what}",
        shape=expected_weights.shape,
        dtype=query.dtype,
    )
    expect_tensor(
        output, f"the output of {what}", shape=expected_output.shape, dtype=query.dtype
    )
    if max_abs_error(weights, expected_weights) > 1e-5:
        mistake = _diagnose(
            weights, params, (query, key, value), mask, heads, _WEIGHT_MISTAKES, 1
        )
        if mistake is not None:
            raise CheckFailure(
                f"{what}: the attention weights are wrong because {mistake}."
            )
    expect_close(weights, expected_weights, f"the weights of {what}")
    if max_abs_error(output, expected_output) > 1e-5:
        mistake = _diagnose(
            output, params, (query, key, value), mask, heads, _OUTPUT_MISTAKES, 0
        )
        if mistake is not None:
            raise CheckFailure(f"{what}: the output is wrong because {mistake}.")
    expect_close(output, expected_output, f"the output of {what}")
    if check_gradients:
        upstream = torch.randn(
            expected_output.shape,
            generator=torch.Generator().manual_seed(1),
            dtype=query.dtype,
        )
        try:
            (output * upstream).sum().backward()
        except RuntimeError as err:
            raise CheckFailure(f"{what}: gradients do not flow back ({err}).") from err
        reference.zero_grad(set_to_none=True)
        expected, _ = reference(query, key, value, **torch_kwargs)
        (expected * upstream).sum().backward()
        ours = dict(module.named_parameters())
        for name, parameter in reference.named_parameters():
            grad = ours[name].grad
            if grad is None:
                raise CheckFailure(f"{what}: no gradient reaches {name}.")
            expect_close(grad, parameter.grad, f"the gradient of {name}", atol=1e-4)


def _random_lengths(g: torch.Generator, batch: int, length: int) -> torch.Tensor:
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length  # one sequence without padding
    return lengths


@check
def check_multi_head_attention(
    module_class: Callable[..., Any], hidden: bool = False
) -> str:
    """Check a ``MultiHeadAttention(embed_dim, num_heads, bias=True)`` class against
    ``torch.nn.MultiheadAttention(batch_first=True)`` with copied (random) weights."""
    g = grading_generator(hidden)
    if hidden:
        configs = []
        for bias in (True, False):
            heads, head_dim = random_int(g, 2, 6), random_int(g, 2, 8)
            configs.append((heads * head_dim, heads, bias))
    else:
        configs = [(12, 3, True), (12, 3, False)]
    count = 0
    for dim, heads, bias in configs:
        reference = _randomised_torch_module(dim, heads, bias, g)
        module = _build_student(module_class, dim, heads, bias, reference)
        integrity.verify()
        batch = random_int(g, 2, 4) if hidden else 2
        t = random_int(g, 3, 9) if hidden else 5
        t_k = t + (random_int(g, 1, 4) if hidden else 2)
        x = torch.randn(batch, t, dim, generator=g)
        memory = torch.randn(batch, t_k, dim, generator=g)
        memory_values = torch.randn(batch, t_k, dim, generator=g)
        padding = _reference_padding(
            _random_lengths(g, batch, t) if hidden else torch.tensor([5, 3]), t
        )[:, None]  # (B,1,1,T)
        causal = _reference_causal(t)  # (T, T)
        cases = [
            (
                f"self-attention, (B={batch}, T={t}, D={dim}), H={heads}, bias={bias}, "
                "no mask",
                x,
                x,
                x,
                None,
                False,
            ),
            (
                "self-attention with a (B, 1, 1, T) padding mask",
                x,
                x,
                x,
                padding,
                False,
            ),
            ("self-attention with a (T, T) causal mask", x, x, x, causal, False),
            (
                f"cross-attention (T_q={t}, T_k={t_k}; keys and values differ)",
                x,
                memory,
                memory_values,
                None,
                hidden,
            ),
        ]
        if hidden:
            cross_padding = _reference_padding(_random_lengths(g, batch, t_k), t_k)
            cases.append(
                (
                    "cross-attention with a padding mask",
                    x,
                    memory,
                    memory_values,
                    cross_padding[:, None],
                    False,
                )
            )
        for label, query, key, value, mask, grads in cases:
            _run_case(module, reference, heads, label, query, key, value, mask, grads)
            integrity.verify()
            count += 1
    return (
        f"MultiHeadAttention matches nn.MultiheadAttention on {count} cases "
        f"(with and without biases)."
    )


integrity.protect_module(__name__)
