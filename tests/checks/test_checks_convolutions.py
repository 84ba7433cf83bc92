"""The checks of the section "Convolutions and time series": correct answers pass (also
written differently, repeatedly on fresh hidden inputs), every classic mistake is
rejected with a message that names it, stubs and bad answers get clear messages, the
book's reference is refused, and the checks leave the notebook's random state alone."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqbook.checks import CheckFailure, ForbiddenCall
from seqbook.checks import convolutions as conv_checks
from seqbook.models import convolutions as reference

# ------------------------------------------------------------- CausalConv1d answers


def layer_variant(kind="correct"):
    """A CausalConv1d written correctly, or with one classic mistake."""

    class Layer(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
            super().__init__()
            self.k, self.d = kernel_size, dilation
            padding = {
                "same": "same",
                "crop_first": (kernel_size - 1) * dilation,
                "crop": (kernel_size - 1) * dilation,
            }.get(kind, 0)
            conv_dilation = 1 if kind == "conv_without_dilation" else dilation
            self.conv = nn.Conv1d(
                in_channels,
                out_channels,
                kernel_size,
                dilation=conv_dilation,
                padding=padding,
            )

        def forward(self, x):
            total = (self.k - 1) * self.d
            if kind in ("correct", "conv_without_dilation"):
                return self.conv(F.pad(x, (total, 0)))
            if kind == "crop":  # correct: pad both sides, keep the first T
                return self.conv(x)[..., : x.shape[-1]]
            if kind == "crop_first":
                return self.conv(x)[..., total:]
            if kind == "crop_minus_zero":  # x[..., :-0] is empty when k = 1
                y = F.conv1d(
                    F.pad(x, (total, total)),
                    self.conv.weight,
                    self.conv.bias,
                    dilation=self.d,
                )
                return y[..., :-total]
            if kind == "no_padding":
                return self.conv(x)
            if kind == "right":
                return self.conv(F.pad(x, (0, total)))
            if kind == "ignores_dilation":
                return self.conv(F.pad(x, (self.k - 1, 0)))
            if kind == "symmetric":
                return self.conv(F.pad(x, (total // 2, total - total // 2)))
            if kind == "same":
                return self.conv(x)
            if kind == "detached":
                return self.conv(F.pad(x, (total, 0))).detach()
            if kind == "in_place":
                x[..., 0] = 0.0
                return self.conv(F.pad(x, (total, 0)))
            raise AssertionError(kind)

    Layer.__name__ = f"CausalConv1d_{kind}"
    return Layer


class FromTheWeights(nn.Module):
    """Correct, with a different computation: taps summed by hand from self.conv."""

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.k, self.d = kernel_size, dilation

    def forward(self, x):
        padded = F.pad(x, ((self.k - 1) * self.d, 0))
        length = x.shape[-1]
        out = self.conv.bias[None, :, None]
        for j in range(self.k):
            tap = padded[..., j * self.d : j * self.d + length]  # (B, C_in, T)
            out = out + torch.einsum("oc,bct->bot", self.conv.weight[:, :, j], tap)
        return out


class NotAModule:
    def __init__(self, *args, **kwargs):
        pass


class NoConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size))

    def forward(self, x):
        return x


class StubLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
        super().__init__()
        raise NotImplementedError()


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "layer",
    [layer_variant("correct"), layer_variant("crop"), FromTheWeights],
    ids=lambda c: c.__name__,
)
def test_correct_layers_pass(layer, hidden, capsys):
    conv_checks.check_causal_conv1d(layer, hidden=hidden)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "layer",
    [layer_variant("correct"), layer_variant("crop"), FromTheWeights],
    ids=lambda c: c.__name__,
)
def test_correct_layers_pass_repeatedly_on_fresh_hidden_inputs(layer):
    for _ in range(15):
        conv_checks.check_causal_conv1d(layer, hidden=True)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "kind, message",
    [
        ("symmetric", "symmetric padding leaks the future"),
        ("same", "symmetric padding leaks the future"),
        ("no_padding", "output shorter than input (no padding)"),
        ("right", "padded on the wrong side"),
        ("crop_first", "the wrong end is cropped"),
        ("ignores_dilation", "padding ignores dilation"),
        ("conv_without_dilation", "ignores `dilation`"),
        ("detached", "cut off from autograd"),
        ("in_place", "modified its input in place"),
    ],
)
def test_layer_mistakes_are_named(kind, message, hidden):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # padding="same", even kernels
        for _ in range(3 if hidden else 1):
            with pytest.raises(CheckFailure) as failure:
                conv_checks.check_causal_conv1d(layer_variant(kind), hidden=hidden)
            assert message in str(failure.value)


def test_cropping_with_minus_zero_is_caught_by_the_hidden_tests():
    conv_checks.check_causal_conv1d(layer_variant("crop_minus_zero"))  # visible: k > 1
    with pytest.raises(CheckFailure, match="nothing to crop"):
        conv_checks.check_causal_conv1d(layer_variant("crop_minus_zero"), hidden=True)


class Peeking(nn.Module):
    """Right length and mostly right, but the last output reads one step ahead."""

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x):
        y = self.conv(F.pad(x, (self.left, 0)))
        return torch.cat(
            [y[..., :-2], y[..., -2:-1] + x[:, :1, -1:], y[..., -1:]], dim=-1
        )


@pytest.mark.parametrize("hidden", [False, True])
def test_any_peeking_is_reported(hidden):
    with pytest.raises(CheckFailure, match="peeks at the future"):
        conv_checks.check_causal_conv1d(Peeking, hidden=hidden)


@pytest.mark.parametrize(
    "answer, message",
    [
        (NotAModule, "should create a torch.nn.Module"),
        (NoConv, "nn.Conv1d stored as `self.conv`"),
        (StubLayer, "still raises NotImplementedError"),
        (None, "expected a function"),
    ],
)
def test_bad_layers_get_clear_messages(answer, message):
    with pytest.raises(
        CheckFailure, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        conv_checks.check_causal_conv1d(answer)


def test_the_reference_layer_is_refused():
    with pytest.raises(ForbiddenCall, match="seqbook.models.convolutions.CausalConv1d"):
        conv_checks.check_causal_conv1d(reference.CausalConv1d)

    class Subclass(reference.CausalConv1d):
        pass

    with pytest.raises(ForbiddenCall):
        conv_checks.check_causal_conv1d(Subclass)

    alias = reference.CausalConv1d

    class Wrapper(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.inner = alias(*args, **kwargs)
            self.conv = self.inner.conv

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(ForbiddenCall):
        conv_checks.check_causal_conv1d(Wrapper)


# ------------------------------------------------------------ receptive_field answers


def correct_receptive_field(kernel_sizes, dilations):
    if len(kernel_sizes) != len(dilations):
        raise ValueError("one kernel size and one dilation per layer")
    return 1 + sum((k - 1) * d for k, d in zip(kernel_sizes, dilations))


def loop_receptive_field(kernel_sizes, dilations):
    if len(kernel_sizes) != len(dilations):
        raise ValueError("lengths differ")
    field = 1
    for layer in range(len(kernel_sizes)):
        field += (kernel_sizes[layer] - 1) * dilations[layer]
    return field


def strict(formula):
    def receptive_field(kernel_sizes, dilations):
        if len(kernel_sizes) != len(dilations):
            raise ValueError("lengths differ")
        return formula(kernel_sizes, dilations)

    return receptive_field


FIELD_MISTAKES = {
    "forgets the + 1": strict(lambda ks, ds: sum((k - 1) * d for k, d in zip(ks, ds))),
    "multiplies the layers' contributions": strict(
        lambda ks, ds: 1 + math.prod((k - 1) * d for k, d in zip(ks, ds))
    ),
    "uses k * d instead of (k - 1) * d": strict(
        lambda ks, ds: 1 + sum(k * d for k, d in zip(ks, ds))
    ),
    "ignores the dilations": strict(lambda ks, ds: 1 + sum(k - 1 for k in ks)),
    "ignores the first layer's dilation": strict(
        lambda ks, ds: (
            ks[0] + sum((k - 1) * d for k, d in zip(ks[1:], ds[1:])) if ks else 1
        )
    ),
    "mismatched lengths not reported": (
        lambda ks, ds: 1 + sum((k - 1) * d for k, d in zip(ks, ds))
    ),
}


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "answer", [correct_receptive_field, loop_receptive_field], ids=lambda f: f.__name__
)
def test_correct_receptive_fields_pass(answer, hidden, capsys):
    conv_checks.check_receptive_field(answer, hidden=hidden)
    assert "✔" in capsys.readouterr().out


def test_correct_receptive_field_passes_repeatedly_on_fresh_hidden_stacks():
    for _ in range(20):
        conv_checks.check_receptive_field(loop_receptive_field, hidden=True)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("message", sorted(FIELD_MISTAKES))
def test_receptive_field_mistakes_are_named(message, hidden):
    for _ in range(10 if hidden else 1):  # fresh random stacks: never a wrong name
        with pytest.raises(CheckFailure) as failure:
            conv_checks.check_receptive_field(FIELD_MISTAKES[message], hidden=hidden)
        assert message in str(failure.value)


def test_wrong_single_layer_is_named():
    def single_layer_bug(kernel_sizes, dilations):
        if len(kernel_sizes) != len(dilations):
            raise ValueError
        if len(kernel_sizes) == 1:
            return kernel_sizes[0] * dilations[0] - 1
        return correct_receptive_field(kernel_sizes, dilations)

    with pytest.raises(CheckFailure, match="wrong for a single layer"):
        conv_checks.check_receptive_field(single_layer_bug)


@pytest.mark.parametrize(
    "answer, message",
    [
        (
            lambda ks, ds: torch.tensor(correct_receptive_field(ks, ds)),
            "returned a tensor",
        ),
        (lambda ks, ds: float(correct_receptive_field(ks, ds)), "return an int"),
        (lambda ks, ds: None, "forget a `return`"),
        (
            lambda ks, ds: [
                1 + sum((k - 1) * d for k, d in zip(ks, ds))
                for _ in [ks[len(ds) - 1], ds[len(ks) - 1]]
            ][0],  # IndexError
            "should raise ValueError",
        ),
    ],
)
def test_bad_receptive_field_answers_get_clear_messages(answer, message):
    with pytest.raises(CheckFailure, match=message.replace("(", r"\(")):
        conv_checks.check_receptive_field(answer)


def test_receptive_field_stub_is_explained():
    def stub(kernel_sizes, dilations):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="still raises NotImplementedError"):
        conv_checks.check_receptive_field(stub)


def test_the_reference_receptive_field_is_refused():
    with pytest.raises(ForbiddenCall):
        conv_checks.check_receptive_field(reference.receptive_field)
    alias = reference.receptive_field
    with pytest.raises(ForbiddenCall):
        conv_checks.check_receptive_field(lambda ks, ds: alias(ks, ds))


# ------------------------------------------------------------------------- general


def test_checks_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    conv_checks.check_causal_conv1d(layer_variant("correct"), hidden=True)
    conv_checks.check_receptive_field(correct_receptive_field, hidden=True)
    assert torch.equal(torch.get_rng_state(), state)


def test_visible_checks_are_deterministic(capsys):
    for _ in range(2):
        conv_checks.check_causal_conv1d(layer_variant("correct"))
        conv_checks.check_receptive_field(correct_receptive_field)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == lines[2:]
