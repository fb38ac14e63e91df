"""Models on the GPU the way a user runs them: model.to("cuda"), CuPy batches, backward, an
optimizer step; the same numbers as on the CPU, real training to the CPU's accuracy, save/load
across devices, and the CLI's --device cuda."""

import json
import subprocess
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv import models, nn, optim
from fastconv.data import DataLoader, FashionMNIST
from fastconv.train import evaluate, fit

from _cuda import cp, dev, host, requires_cuda
from _util import ROOT, assert_close, needs_data

pytestmark = requires_cuda


def _batch(shape, seed, classes=10, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.integers(0, classes, shape[0])


def _step(model, opt, x, y):
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    opt.step()
    opt.zero_grad()
    return loss


@pytest.mark.parametrize("build,shape", [
    (models.fashion_cnn, (17, 1, 28, 28)),
    (lambda: models.lenet5(input_size=28), (5, 1, 28, 28)),
    (lambda: models.resnet18(num_classes=10, in_channels=1, small_input=True), (3, 1, 28, 28)),
])
def test_training_steps_match_the_cpu(build, shape):
    """Three SGD steps in float64 on both devices: the GPU kernels compute the same function
    (only the summation order differs), so losses and weights agree to ~1e-9."""
    fc.manual_seed(0)
    cpu_model = build().double()
    gpu_model = build().double()
    gpu_model.load_state_dict(cpu_model.state_dict())
    assert gpu_model.to("cuda") is gpu_model and gpu_model.device == "cuda"
    assert all(isinstance(p.data, cp.ndarray) for p in gpu_model.parameters())
    opts = [optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (cpu_model, gpu_model)]
    for seed in range(3):
        x, y = _batch(shape, seed, dtype=np.float64)
        loss_cpu = _step(cpu_model, opts[0], x, y)
        loss_gpu = _step(gpu_model, opts[1], dev(x), dev(y))
        assert abs(loss_cpu - loss_gpu) <= 1e-9 * max(1.0, abs(loss_cpu)), (seed, loss_cpu, loss_gpu)
    for (name, a), b in zip(cpu_model.state_dict().items(), gpu_model.state_dict().values()):
        if a.dtype.kind == "f":  # float state moves; batch counters stay on the host
            assert isinstance(b, cp.ndarray), name
            assert_close(host(b), a, 1e-8, 1e-12, what=name)


def test_float32_training_step_matches_the_cpu():
    fc.manual_seed(3)
    cpu_model = models.fashion_cnn()
    gpu_model = models.fashion_cnn()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.to("cuda")
    # SGD, not Adam: Adam's first step is lr * sign(g), and the conv biases before batch norm
    # have gradients that are pure rounding noise, whose sign differs between devices.
    opts = [optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (cpu_model, gpu_model)]
    x, y = _batch((32, 1, 28, 28), 5)
    loss_cpu = _step(cpu_model, opts[0], x, y)
    loss_gpu = _step(gpu_model, opts[1], dev(x), dev(y))
    assert abs(loss_cpu - loss_gpu) <= 1e-5 * max(1.0, abs(loss_cpu))
    for (name, a), b in zip(cpu_model.state_dict().items(), gpu_model.state_dict().values()):
        if a.dtype.kind == "f":
            assert_close(host(b), a, 1e-4, 1e-6, what=name)


def test_eval_forward_output_is_cupy_on_the_current_stream():
    fc.manual_seed(1)
    model = models.fashion_cnn().to("cuda").eval()
    x, _ = _batch((4, 1, 28, 28), 7)
    stream = cp.cuda.Stream(non_blocking=True)
    # The weights went up on the null stream, which a non-blocking stream does not wait for.
    cp.cuda.Stream.null.synchronize()
    with stream:
        out = model(dev(x))
    stream.synchronize()
    assert isinstance(out, cp.ndarray) and out.shape == (4, 10)
    assert_close(host(out), model.to("cpu")(x), 1e-4, 1e-5, what="logits")


def test_save_load_across_devices(tmp_path):
    fc.manual_seed(2)
    model = models.lenet5(input_size=28).to("cuda")
    fc.save(model, tmp_path / "m.npz")
    cpu_model = models.lenet5(input_size=28)
    cpu_model.load_state_dict(fc.load(tmp_path / "m.npz"))
    for (k, a), b in zip(model.state_dict().items(), cpu_model.state_dict().values()):
        assert np.array_equal(host(a), b), k
    model.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())


def test_mixing_devices_is_a_value_error():
    model = models.fashion_cnn().to("cuda")
    with pytest.raises(ValueError, match="GPU|CPU"):
        model(np.zeros((2, 1, 28, 28), np.float32))


@needs_data
def test_fashion_cnn_trains_on_the_gpu_to_the_cpu_accuracy():
    train, test = (FashionMNIST(ROOT, train=t, normalize=True) for t in (True, False))
    fc.manual_seed(0)
    model = models.fashion_cnn()
    fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=2e-3),
        DataLoader(train.images, train.labels, 64, shuffle=True, seed=0), 1, progress=False,
        device="cuda")
    assert model.device == "cuda"
    accuracy = evaluate(model, DataLoader(test.images, test.labels, 1000))["accuracy"]
    assert accuracy >= 0.85, f"test accuracy {accuracy:.4f} after one epoch on the GPU"


@needs_data
def test_train_command_on_the_gpu(tmp_path):
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "fastconv.cli", "train", "fashion-mnist",
                          "--epochs", "1", "--limit", "3000", "--device", "cuda",
                          "--data", str(ROOT), "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((out / "history.json").read_text())["test"]["accuracy"] > 0.6
