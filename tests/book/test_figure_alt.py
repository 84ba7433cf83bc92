"""Figures get alt text from their own titles: seqbook.book.plotting writes it, _ext
reads it."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import figure_alt  # noqa: E402  (the book's Sphinx extension, from _ext/)
import matplotlib.pyplot as plt
import nbformat
from nbclient import NotebookClient
from PIL import Image

from seqbook.book import plotting


def test_one_panel_reads_title_and_axes():
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    ax.set(title="Loss while training", xlabel="step", ylabel="cross-entropy")
    assert (
        plotting.describe_figure(fig)
        == "Loss while training: cross-entropy against step."
    )
    plt.close(fig)


def test_panels_heat_maps_and_super_title_colour_bar_left_out():
    fig, (left, right) = plt.subplots(1, 2)
    left.plot([0, 1])
    left.set_title("Curve")
    plotting.attention_heatmap([[0.5, 0.5], [1.0, 0.0]], ax=right, title="Weights")
    fig.suptitle("Two views")
    assert plotting.describe_figure(fig) == (
        "Two views. Panels: Curve; Weights (heat map): "
        "query position against key position."
    )
    plt.close(fig)


def test_a_figure_without_text_has_no_description():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert plotting.describe_figure(fig) == ""
    plt.close(fig)


def test_extension_reads_the_description_back(tmp_path: Path):
    fig, ax = plt.subplots()
    ax.set_title("Nadaraya–Watson √ weights")  # not Latin-1: stored as an iTXt chunk
    path = tmp_path / "figure.png"
    fig.savefig(path, metadata={"Description": plotting.describe_figure(fig)})
    plt.close(fig)
    assert figure_alt.png_description(path) == "Nadaraya–Watson √ weights."
    fig, _ = plt.subplots()
    fig.savefig(tmp_path / "plain.png")
    plt.close(fig)
    assert figure_alt.png_description(tmp_path / "plain.png") == ""
    assert figure_alt.png_description(tmp_path / "missing.png") == ""


def test_inline_figures_in_a_kernel_carry_their_description(monkeypatch):
    """In Jupyter the inline backend's PNGs carry the text, even for the first
    figure."""
    monkeypatch.delenv(
        "MPLBACKEND", raising=False
    )  # the kernel picks its inline backend
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\nfrom seqbook import plotting\n"
            "plotting.use_book_style()"
        ),
        nbformat.v4.new_code_cell(
            "fig, ax = plt.subplots()\nax.plot([0, 1])\n"
            "ax.set(title='Error against width', xlabel='width w', ylabel='MSE')"
        ),
    ]
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    pngs = [
        output["data"]["image/png"]
        for output in notebook.cells[1].outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(pngs) == 1, notebook.cells[1].outputs
    with Image.open(io.BytesIO(base64.b64decode(pngs[0]))) as image:
        image.load()
        assert (
            image.text.get("Description") == "Error against width: MSE against width w."
        )
