"""The references of the section "Attention as a soft dictionary lookup"
(seqbook.models.soft_lookup): the data generator, Gaussian attention pooling, the
learned-width model and its training step."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqbook.models import soft_lookup as kr


def test_data_is_seeded_sorted_and_shaped():
    a = kr.make_regression_data(n_train=30, n_test=50, noise=0.2, seed=3)
    b = kr.make_regression_data(n_train=30, n_test=50, noise=0.2, seed=3)
    c = kr.make_regression_data(n_train=30, n_test=50, noise=0.2, seed=4)
    assert a.x_train.shape == a.y_train.shape == (30,)
    assert a.x_test.shape == a.y_test.shape == (50,)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    for x in (a.x_train, a.x_test):
        assert (
            bool((x[1:] >= x[:-1]).all())
            and 0 <= float(x.min())
            and float(x.max()) <= 5
        )
    residual = a.y_train - kr.true_function(a.x_train)
    assert 0.1 < float(residual.std()) < 0.3
    assert a.to("cpu").noise == 0.2
    with pytest.raises(ValueError):
        kr.make_regression_data(n_train=1)


def test_pooling_is_the_normalised_gaussian_kernel():
    g = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.rand(7, generator=g, dtype=torch.float64) * 5,
        torch.rand(11, generator=g, dtype=torch.float64) * 5,
        torch.randn(11, generator=g, dtype=torch.float64),
    )
    for width in (0.1, 0.7, 3.0):
        predictions, weights = kr.gaussian_attention_pooling(q, k, v, width)
        kernel = torch.exp(-((q[:, None] - k[None, :]) ** 2) / (2 * width**2))
        expected = kernel / kernel.sum(dim=1, keepdim=True)
        torch.testing.assert_close(weights, expected)
        torch.testing.assert_close(predictions, expected @ v)
        torch.testing.assert_close(
            weights.sum(dim=1), torch.ones(7, dtype=torch.float64)
        )


def test_pooling_is_stable_for_far_queries_and_respects_masks():
    k = torch.tensor([0.0, 1.0, 2.0])
    v = torch.tensor([5.0, 6.0, 7.0])
    predictions, weights = kr.gaussian_attention_pooling(
        torch.tensor([100.0]), k, v, 0.1
    )
    assert torch.isfinite(weights).all() and float(predictions) == pytest.approx(7.0)
    mask = kr.leave_one_out_mask(3)
    assert mask.dtype == torch.bool and not mask.diagonal().any() and mask.sum() == 6
    _, weights = kr.gaussian_attention_pooling(k, k, v, 0.5, mask)
    assert float(weights.diagonal().abs().max()) == 0.0
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))


def test_gradients_reach_a_tensor_width():
    width = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    q = torch.linspace(0, 2, 5, dtype=torch.float64)
    k = torch.linspace(0, 2, 6, dtype=torch.float64)
    v = torch.sin(k)

    def f(w):
        return kr.gaussian_attention_pooling(q, k, v, w)[0]

    assert torch.autograd.gradcheck(f, (width,))


def test_the_model_learns_a_positive_width_with_leave_one_out():
    data = kr.make_regression_data(seed=0)
    model = kr.KernelRegression(width=1.0)
    assert model.width == pytest.approx(1.0) and "width=1" in repr(model)
    predictions = model(data.x_test, data.x_train, data.y_train)
    expected, _ = kr.gaussian_attention_pooling(
        data.x_test, data.x_train, data.y_train, 1.0
    )
    torch.testing.assert_close(predictions, expected)
    with pytest.raises(ValueError):
        kr.KernelRegression(width=0.0)
    mask = kr.leave_one_out_mask(len(data.x_train))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses, widths = kr.fit_width(
        model,
        optimizer,
        data.x_train,
        data.x_train,
        data.y_train,
        data.y_train,
        mask,
        steps=150,
    )
    assert len(losses) == len(widths) == 150 and widths[0] == pytest.approx(1.0)
    assert all(isinstance(loss, float) for loss in losses)
    assert losses[-1] < losses[0] and 0.1 < model.width < 0.4


def test_without_the_mask_the_width_collapses():
    data = kr.make_regression_data(seed=0)
    model = kr.KernelRegression(width=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses, widths = kr.fit_width(
        model,
        optimizer,
        data.x_train,
        data.x_train,
        data.y_train,
        data.y_train,
        None,
        steps=300,
    )
    assert model.width < 0.02 and model.width < widths[-1] and losses[-1] < 0.01


def test_training_step_is_one_optimizer_step_on_the_mean_squared_error():
    data = kr.make_regression_data(n_train=20, seed=1)
    model = kr.KernelRegression(width=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    model.log_width.grad = torch.tensor(5.0)  # stale: must be discarded
    theta = model.log_width.detach().clone().requires_grad_(True)
    mask = kr.leave_one_out_mask(20)
    predictions, _ = kr.gaussian_attention_pooling(
        data.x_train, data.x_train, data.y_train, theta.exp(), mask
    )
    expected_loss = F.mse_loss(predictions, data.y_train)
    (grad,) = torch.autograd.grad(expected_loss, theta)
    loss = kr.training_step(
        model, optimizer, data.x_train, data.x_train, data.y_train, data.y_train, mask
    )
    assert isinstance(loss, float) and loss == pytest.approx(expected_loss.item())
    assert model.log_width.item() == pytest.approx((theta - 0.3 * grad).item())
    assert not math.isclose(model.width, 0.5)
