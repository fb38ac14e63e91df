"""Real training on the real Fashion-MNIST files: accuracy, not just "loss went down"."""

import json
import subprocess
import sys

import pytest

import fastconv as fc
from fastconv import models, nn, optim
from fastconv.data import DataLoader, FashionMNIST
from fastconv.train import evaluate, fit

from _util import ROOT, needs_data


@needs_data
def test_fashion_cnn_reaches_85_percent_after_one_epoch():
    train, test = (FashionMNIST(ROOT, train=t, normalize=True) for t in (True, False))
    fc.manual_seed(0)
    model = models.fashion_cnn()
    fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=2e-3),
        DataLoader(train.images, train.labels, 64, shuffle=True, seed=0), 1, progress=False)
    accuracy = evaluate(model, DataLoader(test.images, test.labels, 1000))["accuracy"]
    assert accuracy >= 0.85, f"test accuracy {accuracy:.4f} after one epoch"


@needs_data
def test_train_and_evaluate_commands_write_and_reload_a_model(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "fastconv.cli"]
    train = subprocess.run(cli + ["train", "fashion-mnist", "--epochs", "1", "--limit", "3000",
                                  "--data", str(ROOT), "--out", str(out)],
                           capture_output=True, text=True)
    assert train.returncode == 0, train.stderr[-2000:]
    for name in ("model.npz", "history.json", "run.json", "history.png", "confusion.png",
                 "filters.png", "feature_maps.png"):
        assert (out / name).exists(), name
    history = json.loads((out / "history.json").read_text())
    accuracy = history["test"]["accuracy"]
    assert accuracy > 0.6 and f"test accuracy {accuracy:.4f}" in train.stdout
    evaluate_run = subprocess.run(cli + ["evaluate", "--model-file", str(out / "model.npz"),
                                         "--data", str(ROOT)], capture_output=True, text=True)
    assert evaluate_run.returncode == 0, evaluate_run.stderr[-2000:]
    assert f"test accuracy {accuracy:.4f}" in evaluate_run.stdout
