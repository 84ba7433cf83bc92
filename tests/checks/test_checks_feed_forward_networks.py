"""The checks of the section "Position-wise feed-forward networks": correct answers pass
every time (also in hidden mode, drawn afresh), each classic mistake is rejected with a
message that names it, stubs and bad returns get clear messages, and neither the book's
reference nor PyTorch's layers can stand in for the answer."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seqbook.checks  # noqa: F401 - records the integrity baseline first
from seqbook.checks import CheckFailure, ForbiddenCall
from seqbook.checks import feed_forward_networks as ffn_checks
from seqbook.models import transformer as reference

check_feed_forward = ffn_checks.check_feed_forward
check_layer_parameters = ffn_checks.check_transformer_layer_parameters

# ------------------------------------------------------------ FeedForward answers
# Written out independently of seqbook.models.transformer.


def ffn_variant(
    order="up-act-drop-down",
    activation_of=None,
    gelu="exact",
    swap=False,
    bias=True,
    dropout_train_only=True,
    use_dropout_module=True,
    extra_parameter=False,
    dropout_attribute=True,
    stub=False,
    return_none=False,
):
    class FeedForward(nn.Module):
        def __init__(self, dim, hidden_dim, activation="relu", dropout=0.0):
            super().__init__()
            if stub:
                raise NotImplementedError()
            self.activation = activation if activation_of is None else activation_of
            self.p = dropout
            if swap:
                self.up = nn.Linear(hidden_dim, dim)
                self.down = nn.Linear(dim, hidden_dim)
            else:
                self.up = nn.Linear(dim, hidden_dim, bias=bias)
                self.down = nn.Linear(hidden_dim, dim, bias=bias)
            if dropout_attribute:
                self.dropout = nn.Dropout(dropout)
            if extra_parameter:
                self.scale = nn.Parameter(torch.ones(dim))

        def act(self, h):
            if self.activation == "relu":
                return F.relu(h)
            if gelu == "exact":
                return F.gelu(h)
            if gelu == "erf":
                return 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
            if gelu == "tanh":
                return F.gelu(h, approximate="tanh")
            return h * torch.sigmoid(1.702 * h)

        def drop(self, h):
            if use_dropout_module:
                return self.dropout(h)
            if dropout_train_only:
                return F.dropout(h, self.p, training=self.training)
            return F.dropout(h, self.p)  # the classic slip: training=True by default

        def forward(self, x):
            if return_none:
                return None
            if order == "up-act-drop-down":
                return self.down(self.drop(self.act(self.up(x))))
            if order == "manual":  # the same computation from the weights
                h = self.act(x @ self.up.weight.T + self.up.bias)
                return self.drop(h) @ self.down.weight.T + self.down.bias
            if order == "after-second":
                return self.act(self.down(self.drop(self.up(x))))
            if order == "missing":
                return self.down(self.drop(self.up(x)))
            if order == "twice":
                return self.act(self.down(self.drop(self.act(self.up(x)))))
            if order == "drop-output":
                return self.drop(self.down(self.act(self.up(x))))
            if order == "drop-before-act":
                return self.down(self.act(self.drop(self.up(x))))
            if order == "drop-input":
                return self.down(self.act(self.up(self.drop(x))))
            if order == "no-dropout":
                return self.down(self.act(self.up(x)))
            if order == "no-up-bias":
                return self.down(self.act(x @ self.up.weight.T))
            if order == "mix-positions":
                return self.down(
                    self.drop(self.act(self.up(x - x.mean(dim=-2, keepdim=True))))
                )
            raise ValueError(order)

    return FeedForward


class OwnDropoutFeedForward(nn.Module):
    """Correct, with a hand-written inverted dropout that draws its own mask."""

    def __init__(self, dim, hidden_dim, activation="relu", dropout=0.0):
        super().__init__()
        self.activation = activation
        self.up = nn.Linear(dim, hidden_dim)
        self.down = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.relu, self.gelu = nn.ReLU(), nn.GELU()

    def forward(self, x):
        h = (self.relu if self.activation == "relu" else self.gelu)(self.up(x))
        if self.training and self.dropout.p > 0:
            keep = (torch.rand_like(h) >= self.dropout.p).to(h.dtype)
            h = h * keep / (1 - self.dropout.p)
        return self.down(h)


class UnscaledDropoutFeedForward(OwnDropoutFeedForward):
    def forward(self, x):
        h = (self.relu if self.activation == "relu" else self.gelu)(self.up(x))
        if self.training and self.dropout.p > 0:
            h = h * (torch.rand_like(h) >= self.dropout.p).to(h.dtype)
        return self.down(h)


CORRECT_FFNS = [
    ffn_variant(),
    ffn_variant(order="manual"),
    ffn_variant(gelu="erf"),
    ffn_variant(use_dropout_module=False),
    OwnDropoutFeedForward,
]


@pytest.mark.parametrize("answer", CORRECT_FFNS)
def test_correct_feed_forwards_pass_visible_and_hidden(answer, capsys):
    check_feed_forward(answer)
    for _ in range(25):
        check_feed_forward(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


def test_the_check_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    check_feed_forward(ffn_variant())
    assert torch.equal(state, torch.random.get_rng_state())


FFN_MISTAKES = [
    (ffn_variant(order="after-second"), "after the second linear map"),
    (ffn_variant(order="missing"), "no activation between"),
    (ffn_variant(order="twice"), "applied to the output as well"),
    (ffn_variant(gelu="tanh"), "tanh approximation"),
    (ffn_variant(gelu="sigmoid"), "sigmoid approximation"),
    (ffn_variant(activation_of="relu"), "activation='gelu' was asked for"),
    (ffn_variant(swap=True), "widths are swapped"),
    (ffn_variant(bias=False), "has no bias"),
    (ffn_variant(order="no-up-bias"), "bias of `up` is not added"),
    (ffn_variant(extra_parameter=True), "remove ['scale']"),
    (ffn_variant(dropout_attribute=False), "`self.dropout` should be an nn.Dropout"),
    (ffn_variant(order="drop-output"), "dropout is applied to the output"),
    (ffn_variant(order="drop-before-act"), "before the activation"),
    (ffn_variant(order="drop-input"), "applied to the input"),
    (ffn_variant(order="no-dropout"), "no hidden activation was dropped"),
    (
        ffn_variant(use_dropout_module=False, dropout_train_only=False),
        "evaluation mode",
    ),
    (UnscaledDropoutFeedForward, "not scaled by 1 / (1 - p)"),
    (ffn_variant(stub=True), "NotImplementedError"),
    (ffn_variant(return_none=True), "is None"),
]


@pytest.mark.parametrize(
    "answer, message", FFN_MISTAKES, ids=[m for _, m in FFN_MISTAKES]
)
def test_feed_forward_mistakes_are_named(answer, message):
    with pytest.raises(CheckFailure, match=re.escape(message)):
        check_feed_forward(answer)
    for _ in range(8):
        with pytest.raises(CheckFailure, match=re.escape(message)):
            check_feed_forward(answer, hidden=True)


def test_mixing_positions_is_rejected():
    with pytest.raises(CheckFailure):
        check_feed_forward(ffn_variant(order="mix-positions"))


def test_the_reference_and_pytorch_layers_cannot_stand_in():
    class Borrowed(nn.Module):
        def __init__(self, dim, hidden_dim, activation="relu", dropout=0.0):
            super().__init__()
            self.inner = reference.FeedForward(dim, hidden_dim, activation, dropout)
            self.up, self.down = self.inner.up, self.inner.down
            self.dropout = self.inner.dropout

        def forward(self, x):
            return self.inner(x)

    class Subclass(reference.FeedForward):
        pass

    for answer in (Borrowed, Subclass, reference.FeedForward):
        with pytest.raises(CheckFailure, match="write the network yourself"):
            check_feed_forward(answer)


def test_not_a_class_is_explained():
    with pytest.raises(CheckFailure, match="should be a class"):
        check_feed_forward(lambda dim, hidden: None)


# ------------------------------------------------------- layer-parameter answers


def count_variant(mistake=None):
    def transformer_layer_parameters(
        dim, num_heads, hidden_dim, bias=True, decoder=False
    ):
        b = 1 if bias else 0
        attention = 4 * dim * dim + 4 * dim * b
        ffn = 2 * dim * hidden_dim + (hidden_dim + dim) * b
        norm = 2 * dim if bias else dim
        n_attention, n_norms = (2, 3) if decoder else (1, 2)
        if mistake == "no biases":
            attention, ffn = 4 * dim * dim, 2 * dim * hidden_dim
        elif mistake == "no biases at all":
            attention, ffn, norm = 4 * dim * dim, 2 * dim * hidden_dim, dim
        elif mistake == "no layer norm":
            norm = 0
        elif mistake == "layer norm one vector":
            norm = dim
        elif mistake == "layer norm bias kept":
            norm = 2 * dim
        elif mistake == "linear biases kept":
            attention, ffn = (
                4 * dim * dim + 4 * dim,
                2 * dim * hidden_dim + hidden_dim + dim,
            )
        elif mistake == "heads":
            attention = num_heads * attention
        elif mistake == "heads weights":
            attention = num_heads * 4 * dim * dim + 4 * dim * b
        elif mistake == "no output projection":
            attention = 3 * dim * dim + 3 * dim * b
        elif mistake == "no cross-attention":
            n_attention = 1
        elif mistake == "decoder as encoder":
            n_attention, n_norms = 1, 2
        elif mistake == "two norms":
            n_norms = 2
        total = n_attention * attention + ffn + n_norms * norm
        if mistake == "float":
            return total / 1
        if mistake == "tensor":
            return torch.tensor(total)
        return total

    return transformer_layer_parameters


def counting_by_building(dim, num_heads, hidden_dim, bias=True, decoder=False):
    cls = nn.TransformerDecoderLayer if decoder else nn.TransformerEncoderLayer
    layer = cls(dim, num_heads, hidden_dim, bias=bias, device="meta")
    return sum(p.numel() for p in layer.parameters())


def counting_by_linears(dim, num_heads, hidden_dim, bias=True, decoder=False):
    from torch.nn import Linear as L  # an alias captured inside the guard still fails

    return sum(p.numel() for p in L(dim, hidden_dim, device="meta").parameters())


LinearAlias = nn.Linear  # captured before the guard starts


def counting_by_alias(dim, num_heads, hidden_dim, bias=True, decoder=False):
    return sum(
        p.numel() for p in LinearAlias(dim, hidden_dim, device="meta").parameters()
    )


def counting_by_reference(dim, num_heads, hidden_dim, bias=True, decoder=False):
    from seqbook.models import counting

    return counting.transformer_layer_parameters(
        dim, num_heads, hidden_dim, bias, decoder
    )


@pytest.mark.parametrize("answer", [count_variant(), count_variant("float")])
def test_correct_counts_pass_visible_and_hidden(answer, capsys):
    check_layer_parameters(answer)
    for _ in range(25):
        check_layer_parameters(answer, hidden=True)
    assert "✔" in capsys.readouterr().out


COUNT_MISTAKES = [
    ("no biases", "biases of the linear maps are missing"),
    ("no biases at all", "all biases are missing"),
    ("no layer norm", "layer norms are not counted"),
    ("layer norm one vector", "counted as dim parameters"),
    ("layer norm bias kept", "layer norms have no shift vector"),
    ("linear biases kept", "the linear maps have no biases, but they were counted"),
    ("heads", "must not depend on the number of heads"),
    ("heads weights", "must not depend on the number of heads"),
    ("no output projection", "output projection"),
    ("no cross-attention", "cross-attention"),
    ("decoder as encoder", "counted like an encoder layer"),
    ("two norms", "three layer norms"),
    ("tensor", "plain Python int"),
]


@pytest.mark.parametrize(
    "mistake, message", COUNT_MISTAKES, ids=[m for m, _ in COUNT_MISTAKES]
)
def test_count_mistakes_are_named(mistake, message):
    answer = count_variant(mistake)
    with pytest.raises(CheckFailure, match=message):
        check_layer_parameters(answer)
    for _ in range(15):
        with pytest.raises(CheckFailure, match=message):
            check_layer_parameters(answer, hidden=True)


@pytest.mark.parametrize(
    "answer",
    [
        counting_by_building,
        counting_by_linears,
        counting_by_alias,
        counting_by_reference,
    ],
)
def test_building_layers_or_calling_the_reference_is_forbidden(answer):
    for hidden in (False, True):
        with pytest.raises(ForbiddenCall, match="own formula"):
            check_layer_parameters(answer, hidden=hidden)


def test_count_stub_and_none_are_explained():
    def stub(dim, num_heads, hidden_dim, bias=True, decoder=False):
        raise NotImplementedError()

    def forgot_return(dim, num_heads, hidden_dim, bias=True, decoder=False):
        4 * dim * dim

    with pytest.raises(CheckFailure, match="NotImplementedError"):
        check_layer_parameters(stub)
    with pytest.raises(CheckFailure, match="None"):
        check_layer_parameters(forgot_return)


def test_count_variants_never_match_the_right_answer():
    # A diagnosis is only given when the wrong count differs from the right one; check
    # that no variant coincides with the truth at typical sizes (it would be ignored).
    from seqbook.models import counting

    for dim, heads, hidden in [(16, 4, 64), (24, 3, 7), (64, 8, 256)]:
        for bias in (True, False):
            for decoder in (True, False):
                truth = counting.transformer_layer_parameters(
                    dim, heads, hidden, bias, decoder
                )
                variants = ffn_checks._count_variants(dim, heads, hidden, bias, decoder)
                assert all(
                    v != truth for k, v in variants.items() if not k.startswith("heads")
                ), (dim, heads, hidden, bias, decoder)
