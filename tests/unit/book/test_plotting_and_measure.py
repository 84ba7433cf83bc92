"""seqbook.book.plotting and seqbook.book.measure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from seqbook.book import plotting  # noqa: E402
from seqbook.book.measure import median_seconds, peak_tensor_bytes  # noqa: E402


def test_heatmap_draws_weights_with_labels():
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    ax = plotting.attention_heatmap(
        weights, ["a", "b", "c"], ["w", "x", "y", "z"], title="t"
    )
    image = ax.get_images()[0]
    np.testing.assert_allclose(image.get_array(), weights.numpy(), rtol=1e-6)
    assert image.get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert ax.get_title() == "t"
    plt.close("all")


def test_heatmap_rejects_a_batch_with_advice():
    with pytest.raises(ValueError, match=r"select a batch element and a head first"):
        plotting.attention_heatmap(torch.rand(2, 3, 4))


def test_heatmap_rejects_wrong_label_count():
    with pytest.raises(ValueError, match="2 query labels for 3 query positions"):
        plotting.attention_heatmap(torch.rand(3, 3), query_labels=["a", "b"])


def test_loglog_slope_recovers_the_exponent():
    x = [10, 20, 40, 80]
    assert plotting.loglog_slope(x, [3 * v**2 for v in x]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        plotting.loglog_slope([1], [1])


def test_book_style_sets_palette():
    plotting.use_book_style()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    assert colors[: len(plotting.BOOK_COLORS)] == plotting.BOOK_COLORS


def test_peak_tensor_bytes_counts_live_tensors():
    n = 256
    x = torch.randn(n, n)
    # x @ x is n*n floats; the sum that follows adds almost nothing.
    peak = peak_tensor_bytes(lambda: (x @ x).sum())
    assert 4 * n * n <= peak < 4 * n * n + 1024
    # Two live products at once double the peak; a view costs nothing.
    peak_two = peak_tensor_bytes(lambda: ((x @ x).T, x @ x))
    assert peak_two >= 8 * n * n


def test_peak_tensor_bytes_grows_quadratically_for_attention():
    from seqbook.models.attention import scaled_dot_product_attention as attend

    small, large = (
        peak_tensor_bytes(lambda t=t: attend(*(torch.randn(1, t, 16),) * 3))
        for t in (128, 256)
    )
    assert large / small == pytest.approx(4.0, rel=0.1)


def test_median_seconds_measures_sleep():
    import time

    assert median_seconds(lambda: time.sleep(0.01), repeats=3, warmup=0) >= 0.009
    with pytest.raises(ValueError):
        median_seconds(lambda: None, repeats=0)
