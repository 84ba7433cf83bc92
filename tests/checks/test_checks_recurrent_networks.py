"""The checks of the section "Recurrent neural networks": correct answers pass every
time, each classic mistake is named, stubs and bad returns get clear messages, and the
built-ins and the book's references cannot be used."""

import sys
import warnings

import pytest
import torch

import seqbook.checks  # noqa: F401 - records the integrity baseline first
from seqbook.checks import CheckFailure, ForbiddenCall, IntegrityError
from seqbook.checks import recurrent_networks as rnn_checks
from seqbook.models import recurrent_networks as reference

# ------------------------------------------------------------------ rnn_forward answers


def rnn_variant(
    transpose=True,
    bias_ih=True,
    bias_hh=True,
    update=True,
    use_h0=True,
    activation=torch.tanh,
    time_dim=1,
    return_final=False,
    stack_dim=1,
    h_n_layer_axis=False,
    before_update=False,
    swap=False,
    in_place=False,
    zeros_float32=False,
    detach=False,
):
    def forward(inputs, h0, weight_ih, weight_hh, bias_ih_, bias_hh_):
        if in_place:
            inputs.mul_(1.0)
            inputs.add_(0.5)
        w_ih = weight_ih.T if transpose else weight_ih
        w_hh = weight_hh.T if transpose else weight_hh
        h = h0 if use_h0 else torch.zeros_like(h0)
        start = h
        states = []
        for t in range(inputs.size(time_dim)):
            x_t = inputs[:, t] if time_dim == 1 else inputs[t]
            a = x_t @ w_ih + (h if update else start) @ w_hh
            a = a + bias_ih_ if bias_ih else a
            a = a + bias_hh_ if bias_hh else a
            if before_update:
                states.append(h)
            h = activation(a)
            if detach:
                h = h.detach()
            if not before_update:
                states.append(h)
        if zeros_float32:
            outputs = torch.zeros(inputs.size(0), inputs.size(1), weight_hh.size(0))
            for t, state in enumerate(states):
                outputs[:, t] = state
        else:
            outputs = torch.stack(states, dim=stack_dim)
        if return_final:
            outputs = h
        h_n = h[None] if h_n_layer_axis else h
        return (h_n, outputs) if swap else (outputs, h_n)

    return forward


correct_rnn = rnn_variant()


def rnn_with_einsum(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    projected = torch.einsum("btd,hd->bth", inputs, weight_ih) + bias_ih
    h, outputs = h0, torch.empty(*inputs.shape[:2], h0.size(-1), dtype=inputs.dtype)
    for t in range(inputs.shape[1]):
        h = torch.tanh(
            projected[:, t] + torch.einsum("bk,hk->bh", h, weight_hh) + bias_hh
        )
        outputs[:, t] = h
    return outputs, h


def rnn_with_linear(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    linear = torch.nn.functional.linear
    h, states = h0, []
    for x_t in inputs.unbind(dim=1):
        h = torch.tanh(linear(x_t, weight_ih, bias_ih) + linear(h, weight_hh, bias_hh))
        states.append(h)
    return torch.stack(states, 1), h


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    rnn_checks.check_rnn_forward(correct_rnn, hidden=hidden)
    rnn_checks.check_clip_grad_norm(correct_clip, hidden=hidden)
    assert capsys.readouterr().out.count("✔") == 2


@pytest.mark.parametrize(
    "implementation",
    [correct_rnn, rnn_with_einsum, rnn_with_linear],
    ids=["loop", "einsum", "linear"],
)
def test_other_correct_rnns_pass_repeatedly(implementation):
    for _ in range(10):  # fresh hidden inputs every time: no flaky verdicts
        rnn_checks.check_rnn_forward(implementation, hidden=True)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "variant, message",
    [
        (dict(transpose=False), "not transposed"),
        (dict(bias_ih=False), "bias_ih is missing"),
        (dict(bias_hh=False), "bias_hh is missing"),
        (dict(bias_ih=False, bias_hh=False), "both biases are missing"),
        (dict(update=False), "never updated"),
        (dict(use_h0=False), "h0 is ignored"),
        (dict(activation=torch.relu), "ReLU"),
        (dict(activation=torch.sigmoid), "sigmoid"),
        (dict(time_dim=0), "time is dim 1"),
        (dict(return_final=True), "the shape of one state"),
        (dict(h_n_layer_axis=True), "only the nn.RNN-like module adds the layer axis"),
        (dict(before_update=True), "state \\*before\\* step t"),
        (dict(swap=True), "in that order"),
        (dict(in_place=True), "modified its argument `inputs` in place"),
    ],
)
def test_rnn_mistakes_are_named(variant, message, hidden):
    with pytest.raises(CheckFailure, match=message):
        rnn_checks.check_rnn_forward(rnn_variant(**variant), hidden=hidden)


def test_time_first_stacking_is_named():
    with pytest.raises(CheckFailure, match="dim 0 \\(time first\\)"):
        rnn_checks.check_rnn_forward(rnn_variant(stack_dim=0))
    with pytest.raises(CheckFailure, match="stacked along dim 0"):
        rnn_checks.check_rnn_forward(rnn_variant(stack_dim=0), hidden=True)


def test_time_axis_confusion_with_other_sizes_gets_a_shape_hint():
    with pytest.raises(CheckFailure, match="inputs are batch-first"):
        rnn_checks.check_rnn_forward(rnn_variant(time_dim=0), hidden=True)
        rnn_checks.check_rnn_forward(rnn_variant(time_dim=0, transpose=True))
    with pytest.raises(CheckFailure, match="batch-first"):
        rnn_checks.check_rnn_forward(
            lambda x, h0, a, b, c, d: correct_rnn(x.transpose(0, 1), h0, a, b, c, d)
        )


def test_untransposed_weights_with_non_square_shapes_get_a_hint():
    # On square sizes the mistake is named by value; elsewhere the crash gets a hint.
    tensors = rnn_checks._rnn_case(torch.Generator().manual_seed(0), 2, 5, 3, 4)
    with pytest.raises(CheckFailure, match="multiply by their transposes"):
        rnn_checks._run_rnn_case(
            rnn_variant(transpose=False), "non-square sizes", tensors, False, False
        )


def test_hidden_rnn_check_catches_float32_buffers_and_broken_gradients():
    with pytest.raises(CheckFailure, match="dtype=inputs.dtype"):
        rnn_checks.check_rnn_forward(rnn_variant(zeros_float32=True), hidden=True)
    with pytest.raises(CheckFailure, match="gradient"):
        rnn_checks.check_rnn_forward(rnn_variant(detach=True), hidden=True)


def test_rnn_returning_one_tensor_or_none():
    with pytest.raises(CheckFailure, match="should return a pair"):
        rnn_checks.check_rnn_forward(lambda *args: correct_rnn(*args)[0])
    with pytest.raises(CheckFailure, match="did you forget a `return`"):
        rnn_checks.check_rnn_forward(lambda *args: (None, None))


def test_h_n_from_the_first_step_is_named():
    def first_state(*args):
        outputs, _ = correct_rnn(*args)
        return outputs, outputs[:, 0]

    with pytest.raises(CheckFailure, match="state after the first step"):
        rnn_checks.check_rnn_forward(first_state)


# ------------------------------------------------------------------ clip answers


def clip_variant(
    per_tensor=False,
    by_value=False,
    always=False,
    post_norm=False,
    new_tensors=False,
    assign=False,
    no_skip=False,
    data=False,
    sum_of_norms=False,
    float_return=False,
    no_return=False,
    twice=False,
    no_single_tensor=False,
):
    def clip(parameters, max_norm):
        if isinstance(parameters, torch.Tensor) and not no_single_tensor:
            parameters = [parameters]
        if not twice:
            parameters = list(parameters)
        grads = (
            [p.grad for p in parameters]
            if no_skip
            else [p.grad for p in parameters if p.grad is not None]
        )
        norms = [g.norm() for g in grads]
        total = sum(norms) if sum_of_norms else torch.stack(norms).norm()
        factor = max_norm / (total + 1e-6)
        if not always:
            factor = factor.clamp(max=1.0)
        if by_value:
            for g in grads:
                g.clamp_(-max_norm, max_norm)
        elif per_tensor:
            for g, n in zip(grads, norms):
                g.mul_((max_norm / (n + 1e-6)).clamp(max=1.0))
        elif new_tensors:
            grads = [g * factor for g in grads]
        elif assign:
            for p in parameters:
                if p.grad is not None:
                    p.grad = p.grad * factor
        elif data:
            for p in parameters:
                if p.grad is not None:
                    p.data.mul_(factor)
        else:
            for p in parameters:
                if no_skip or p.grad is not None:
                    p.grad.mul_(factor)
        if no_return:
            return None
        if post_norm:
            return torch.stack([g.norm() for g in grads]).norm()
        return float(total) if float_return else total

    return clip


correct_clip = clip_variant()


def clip_with_python_sums(parameters, max_norm):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    total = sum((g.double() ** 2).sum() for g in grads).sqrt()
    if total > max_norm:
        for g in grads:
            g *= max_norm / (total + 1e-6)
    return total


def clip_with_cat(parameters, max_norm):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.cat([g.flatten() for g in grads]).norm()
    scale = min(1.0, max_norm / (float(total) + 1e-6))
    for g in grads:
        g.mul_(scale)
    return total


@pytest.mark.parametrize(
    "implementation",
    [correct_clip, clip_with_python_sums, clip_with_cat],
    ids=["stack", "sums", "cat"],
)
def test_other_correct_clippings_pass_repeatedly(implementation):
    for _ in range(20):
        rnn_checks.check_clip_grad_norm(implementation, hidden=True)


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize(
    "variant, message",
    [
        (dict(per_tensor=True), "clipped to max_norm separately"),
        (dict(by_value=True), "clipped by value"),
        (dict(always=True), "below max_norm"),
        (dict(post_norm=True), "the norm after clipping"),
        (dict(new_tensors=True), "returning new tensors changes nothing"),
        (dict(assign=True), "replaced p.grad by a new tensor"),
        (dict(no_skip=True), ".grad None"),
        (dict(data=True), "changed the parameters themselves"),
        (dict(sum_of_norms=True), "adds up the norms"),
        (dict(float_return=True), "return the total norm as a tensor"),
        (dict(no_return=True), "returned None"),
        (dict(twice=True), "generator"),
        (dict(no_single_tensor=True), "single tensor"),
    ],
)
def test_clip_mistakes_are_named(variant, message, hidden):
    with pytest.raises(CheckFailure, match=message.replace(".", r"\.")):
        rnn_checks.check_clip_grad_norm(clip_variant(**variant), hidden=hidden)


# ------------------------------------------------------------------ stubs and junk


def test_stubs_get_a_friendly_message():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    for check in (rnn_checks.check_rnn_forward, rnn_checks.check_clip_grad_norm):
        with pytest.raises(CheckFailure, match="still raises NotImplementedError"):
            check(stub)


@pytest.mark.parametrize("not_a_function", [None, 3, "rnn"])
def test_non_callables_are_reported(not_a_function):
    for check in (rnn_checks.check_rnn_forward, rnn_checks.check_clip_grad_norm):
        with pytest.raises(CheckFailure, match="expected a function"):
            check(not_a_function)


def test_a_warning_does_not_fail_a_correct_answer():
    def noisy(*args):
        warnings.warn("only a warning", UserWarning)
        return correct_rnn(*args)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rnn_checks.check_rnn_forward(noisy, hidden=True)


# ------------------------------------------------------------------ forbidden calls


def test_nn_rnn_and_its_internals_are_forbidden():
    def with_module(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        module = torch.nn.RNN(weight_ih.size(1), weight_ih.size(0), batch_first=True)
        outputs, h_n = module(inputs, h0[None])
        return outputs, h_n[0]

    with pytest.raises(ForbiddenCall, match="torch.nn.RNN"):
        rnn_checks.check_rnn_forward(with_module)

    captured = torch.nn.modules.rnn.RNN  # an alias taken before the guard starts

    def with_alias(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        module = captured(weight_ih.size(1), weight_ih.size(0), batch_first=True)
        outputs, h_n = module(inputs, h0[None])
        return outputs, h_n[0]

    with pytest.raises(ForbiddenCall, match="rnn_tanh"):
        rnn_checks.check_rnn_forward(with_alias)


def test_rnn_tanh_cell_through_an_alias_is_forbidden():
    cell = torch.rnn_tanh_cell

    def with_cell(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        h, states = h0, []
        for t in range(inputs.size(1)):
            h = cell(inputs[:, t], h, weight_ih, weight_hh, bias_ih, bias_hh)
            states.append(h)
        return torch.stack(states, 1), h

    with pytest.raises(ForbiddenCall, match="possibly through another name"):
        rnn_checks.check_rnn_forward(with_cell)


def test_rnn_reference_is_forbidden_directly_and_through_aliases():
    with pytest.raises(
        ForbiddenCall, match="seqbook.models.recurrent_networks.rnn_forward"
    ):
        rnn_checks.check_rnn_forward(reference.rnn_forward)
    module_class = reference.RNN

    def with_book_module(inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        module = module_class(weight_ih.size(1), weight_ih.size(0))
        outputs, h_n = module(inputs, h0[None])
        return outputs, h_n[0]

    with pytest.raises(ForbiddenCall, match="seqbook.models.recurrent_networks"):
        rnn_checks.check_rnn_forward(with_book_module)


@pytest.mark.parametrize(
    "path",
    [
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad.clip_grad_norm_",
        "torch.nn.utils.clip_grad_norm",
        "seqbook.models.recurrent_networks.clip_grad_norm",
    ],
)
def test_clipping_builtins_are_forbidden(path):
    module_name, _, name = path.rpartition(".")
    fn = getattr(sys.modules[module_name], name)  # captured before the guard starts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(ForbiddenCall):
            rnn_checks.check_clip_grad_norm(
                lambda parameters, max_norm: fn(parameters, max_norm)
            )


def test_total_norm_helpers_are_forbidden_and_named():
    get_total_norm = torch.nn.utils.get_total_norm
    with_norm = torch.nn.utils.clip_grads_with_norm_

    def with_helpers(parameters, max_norm):
        parameters = (
            list(parameters)
            if not isinstance(parameters, torch.Tensor)
            else [parameters]
        )
        total = get_total_norm([p.grad for p in parameters if p.grad is not None])
        with_norm(parameters, max_norm, total)
        return total

    with pytest.raises(ForbiddenCall, match="get_total_norm"):
        rnn_checks.check_clip_grad_norm(with_helpers)


def test_clip_grad_value_is_not_mistaken_for_a_forbidden_call():
    # It shares torch's decorator with clip_grad_norm_; it is a wrong answer, not a
    # forbidden one, and the message says so.
    value_clip = torch.nn.utils.clip_grad_value_

    def by_value(parameters, max_norm):
        parameters = (
            list(parameters)
            if not isinstance(parameters, torch.Tensor)
            else [parameters]
        )
        value_clip(parameters, max_norm)
        return torch.stack(
            [p.grad.norm() for p in parameters if p.grad is not None]
        ).norm()

    with pytest.raises(CheckFailure, match="clipped by value") as caught:
        rnn_checks.check_clip_grad_norm(by_value)
    assert not isinstance(caught.value, ForbiddenCall)


def test_switching_off_the_guard_is_reported():
    def sneaky_rnn(*args):
        sys.setprofile(None)
        return correct_rnn(*args)

    def sneaky_clip(parameters, max_norm):
        sys.setprofile(None)
        return correct_clip(parameters, max_norm)

    for check, sneaky in (
        (rnn_checks.check_rnn_forward, sneaky_rnn),
        (rnn_checks.check_clip_grad_norm, sneaky_clip),
    ):
        with pytest.raises(ForbiddenCall, match="switched off the grading guard"):
            check(sneaky)
        assert sys.getprofile() is None or sys.getprofile().__name__ != "hook"


def test_guard_restores_everything_afterwards():
    before = (
        torch.nn.RNN,
        torch.rnn_tanh,
        torch.nn.utils.clip_grad_norm_,
        reference.rnn_forward,
        reference.RNN,
        reference.clip_grad_norm,
        sys.getprofile(),
    )
    with pytest.raises(CheckFailure):
        rnn_checks.check_rnn_forward(lambda *args: torch.nn.RNN(1, 1))
    with pytest.raises(CheckFailure):
        rnn_checks.check_clip_grad_norm(
            lambda p, m: torch.nn.utils.clip_grad_norm_(p, m)
        )
    assert (
        torch.nn.RNN,
        torch.rnn_tanh,
        torch.nn.utils.clip_grad_norm_,
        reference.rnn_forward,
        reference.RNN,
        reference.clip_grad_norm,
        sys.getprofile(),
    ) == before


# ------------------------------------------------------------------ tampering


def test_patched_rnn_check_helper_is_detected_and_restored(monkeypatch):
    import io

    from seqbook.checks import integrity

    monkeypatch.setattr(integrity, "_stderr", io.StringIO())
    original = rnn_checks._run_clip_case
    rnn_checks._run_clip_case = lambda *args, **kwargs: None
    with pytest.raises(IntegrityError, match="_run_clip_case` was replaced"):
        rnn_checks.check_clip_grad_norm(clip_variant(by_value=True))
    assert rnn_checks._run_clip_case is original


def test_replaced_reference_is_detected_and_restored(monkeypatch):
    import io

    from seqbook.checks import integrity

    monkeypatch.setattr(integrity, "_stderr", io.StringIO())
    original = reference.rnn_forward
    reference.rnn_forward = lambda *args: args[0]
    with pytest.raises(
        IntegrityError,
        match="seqbook.models.recurrent_networks.rnn_forward` was replaced",
    ):
        rnn_checks.check_rnn_forward(correct_rnn)
    assert reference.rnn_forward is original


def test_replaced_comparison_cannot_pass_a_wrong_answer(monkeypatch):
    import io

    from seqbook.checks import integrity

    monkeypatch.setattr(integrity, "_stderr", io.StringIO())
    original = torch.allclose
    torch.allclose = lambda *args, **kwargs: True
    with pytest.raises(IntegrityError):
        rnn_checks.check_rnn_forward(rnn_variant(activation=torch.relu))
    assert torch.allclose is original


def test_checks_leave_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    rnn_checks.check_rnn_forward(correct_rnn, hidden=True)
    rnn_checks.check_clip_grad_norm(correct_clip, hidden=True)
    assert torch.equal(torch.random.get_rng_state(), state)
