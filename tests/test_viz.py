"""fastconv.viz writes readable PNGs; feature_maps returns the layer's real output."""

import sys

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
from fastconv import nn, viz

PNG = b"\x89PNG\r\n\x1a\n"


def small_model():
    fc.manual_seed(0)
    conv = nn.Conv2d(1, 6, 3, padding=1)
    return nn.Sequential(conv, nn.Conv2d(6, 4, 3), nn.Flatten()), conv


def test_feature_maps_are_the_layers_output_and_the_model_is_left_as_it_was():
    model, conv = small_model()
    image = np.random.default_rng(0).random((1, 9, 9), dtype=np.float32)
    maps = viz.feature_maps(model, conv, image)
    expected = F.conv2d(image[None], conv.weight.data, conv.bias.data, padding=1)[0]
    np.testing.assert_allclose(maps, expected, rtol=1e-6)
    assert model.training and "forward" not in vars(conv)


def test_plots_write_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    model, conv = small_model()
    history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 1 - 1 / (e + 1), "val_loss": 1.1 / e,
                "val_acc": 0.9 - 1 / (e + 2)} for e in (1, 2, 3)]
    image = np.random.default_rng(1).random((1, 9, 9), dtype=np.float32)
    paths = [viz.plot_history(history, tmp_path / "h.png"),
             viz.plot_confusion_matrix(np.array([[5, 1], [2, 7]]), tmp_path / "c.png", ["a", "b"]),
             viz.plot_filters(conv.weight, tmp_path / "f.png"),
             viz.plot_feature_maps(model, conv, image, tmp_path / "m.png")]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, p
    with pytest.raises(ValueError, match="4-D"):
        viz.plot_filters(np.zeros((3, 3)), tmp_path / "bad.png")


def test_missing_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        viz.plot_history([{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5}], tmp_path / "h.png")


def test_history_legend_names_the_held_out_set(monkeypatch, tmp_path):
    """`fastconv train` passes the test set as fit's val_loader: its curves say "test"."""
    pytest.importorskip("matplotlib")
    figures = []
    monkeypatch.setattr(viz, "_save", lambda fig, path: figures.append(fig) or path)
    history = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.1, "val_acc": 0.4}]
    viz.plot_history(history, tmp_path / "h.png")
    viz.plot_history(history, tmp_path / "t.png", val_label="test")
    labels = [[t.get_text() for t in fig.axes[1].get_legend().get_texts()] for fig in figures]
    assert labels == [["train accuracy", "validation accuracy"], ["train accuracy", "test accuracy"]]
    import matplotlib.pyplot as plt
    for fig in figures:
        plt.close(fig)
