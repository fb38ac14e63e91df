"""Long runs: 10,000 training steps of fashion_cnn at batch 8 keep the process's memory flat
(a leak of a few bytes per step shows as megabytes), on the CPU and, when there is one, on the
GPU (device memory too). Marked slow: `python -m pytest` runs them, `-m "not slow"` skips them."""

import ctypes
import gc
import os

import numpy as np
import pytest

import fastconv as fc
from fastconv import models, nn, optim

from _cuda import cp, requires_cuda

STEPS = 10_000
WARMUP = 300
GROWTH_LIMIT = 5 << 20  # bytes

pytestmark = pytest.mark.slow


def _rss():
    """Resident set size in bytes, from /proc/self/statm (the current value, not the peak),
    after the garbage collector and, with glibc, malloc_trim: freed memory the allocator still
    holds is not counted, live memory (a leak) is."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _batches(xp, count=16):
    rng = np.random.default_rng(0)
    return [(xp.asarray(rng.standard_normal((8, 1, 28, 28)).astype(np.float32)),
             xp.asarray(rng.integers(0, 10, 8))) for _ in range(count)]


def _run(device, measure):
    """WARMUP steps, measure(), STEPS more steps sampled every 1000 with measure(); returns the
    samples and the last losses. Each step: forward, cross-entropy, backward, SGD momentum."""
    fc.manual_seed(0)
    model = models.fashion_cnn().to(device)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = _batches(cp if device == "cuda" else np)
    samples, losses = [], []
    for i in range(WARMUP + STEPS):
        if i >= WARMUP and (i - WARMUP) % 1000 == 0:
            samples.append(measure())
        x, y = batches[i % len(batches)]
        losses.append(loss_fn(model(x), y))
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    samples.append(measure())
    return samples, losses


def _check_flat(samples, key, limit):
    series = [s[key] for s in samples]
    growth = series[-1] - series[0]
    assert growth < limit, (f"{key} grew by {growth / 2**20:.2f} MiB over {STEPS} steps "
                            f"(limit {limit / 2**20:.0f} MiB); every 1000 steps (MiB): "
                            f"{[round(v / 2**20, 2) for v in series]}")


def _check_losses(losses):
    assert np.isfinite(losses).all()
    # 16 fixed batches: a working training loop fits them.
    assert np.mean(losses[-16:]) < 0.5 * np.mean(losses[:16]), (losses[:16], losses[-16:])


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_fashion_cnn_training_keeps_rss_flat():
    def measure():
        return {"rss": _rss()}

    samples, losses = _run("cpu", measure)
    _check_flat(samples, "rss", GROWTH_LIMIT)
    _check_losses(losses)


@requires_cuda
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_fashion_cnn_gpu_training_keeps_host_and_device_memory_flat():
    pool = cp.get_default_memory_pool()
    total = cp.cuda.runtime.memGetInfo()[1]

    def measure():
        cp.cuda.Device().synchronize()
        return {"rss": _rss(), "pool_used": pool.used_bytes(), "pool_held": pool.total_bytes(),
                "device_used": total - cp.cuda.runtime.memGetInfo()[0]}

    samples, losses = _run("cuda", measure)
    for key in ("rss", "pool_held", "device_used"):
        _check_flat(samples, key, GROWTH_LIMIT)
    # The same arrays are alive at the same point of every step: CuPy's count must not move.
    _check_flat(samples, "pool_used", 1 << 20)
    _check_losses(losses)
