"""Threads: kernels called from several Python threads at once give the bits they give one by
one; the thread count set from any Python thread applies to kernels in every thread; one seed
and thread count give bit-identical training runs; the global generator under concurrent use.

The thread count is process-wide and results may depend on it (README, Threads), so every
comparison here is between runs at one count, set in the main thread before worker threads
start: a worker that fell back to OpenMP's per-thread default would cut the conv weight
gradient's partial sums differently and change its bits.
"""

import pathlib
import re
import threading

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
from fastconv import data, models, nn, optim
from fastconv.train import fit

from _util import num_threads

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _rand(seed, shape, dtype):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _labels(seed, n, classes=10):
    return np.random.default_rng(seed).integers(0, classes, n)


def assert_same_bits(actual, expected, what):
    """Bit-for-bit equality of two lists of arrays (NaN never passes)."""
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype and a.shape == e.shape, (what, i, a.dtype, a.shape, e.shape)
        assert np.isfinite(e).all(), f"{what}: result {i} has non-finite values"
        if a.tobytes() != e.tobytes():
            diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
            raise AssertionError(f"{what}: result {i} {a.shape} differs in {int((diff > 0).sum())}"
                                 f" elements, max |diff| {diff.max():.3e}")


# -- the jobs: each job(dtype) prepares its data and models and returns run(), which does the work
# and returns its results; preparing happens in the main thread (models draw their initial
# weights from the global generator), run() in whichever thread the test chooses.

def _job_conv_strided_groups(dtype):
    x, w, b = _rand(1, (5, 6, 23, 17), dtype), _rand(2, (8, 3, 3, 5), dtype), _rand(3, 8, dtype)
    geo = dict(stride=(2, 1), padding=(1, 2), groups=2)
    dy = _rand(4, F.conv2d(x, w, b, **geo).shape, dtype)

    def run():
        return [F.conv2d(x, w, b, **geo), *F.conv2d_backward(dy, x, w, **geo)]
    return run


def _job_conv_batch1_dilated(dtype):
    # batch 1 (work split inside the image) and a dilated, non-square kernel with odd sizes
    x, w = _rand(5, (1, 8, 45, 38), dtype), _rand(6, (12, 8, 3, 5), dtype)
    geo = dict(stride=(1, 2), padding=(3, 2), dilation=(2, 1))
    dy = _rand(7, F.conv2d(x, w, **geo).shape, dtype)

    def run():
        return [F.conv2d(x, w, **geo), *F.conv2d_backward(dy, x, w, **geo)]
    return run


def _job_conv_transpose_and_1x1(dtype):
    x, wt = _rand(8, (3, 16, 13, 11), dtype), _rand(9, (16, 8, 4, 4), dtype)
    w1 = _rand(10, (24, 16, 1, 1), dtype)
    geo = dict(stride=2, padding=1, output_padding=1)
    dyt = _rand(11, F.conv_transpose2d(x, wt, **geo).shape, dtype)
    dy1 = _rand(12, (3, 24, 13, 11), dtype)

    def run():
        return [F.conv_transpose2d(x, wt, **geo), *F.conv_transpose2d_backward(dyt, x, wt, **geo)[:2],
                F.conv2d(x, w1), *F.conv2d_backward(dy1, x, w1)[:2]]
    return run


def _job_pooling(dtype):
    x = _rand(13, (6, 16, 31, 29), dtype)
    dmax = _rand(14, F.max_pool2d(x, 3, 2, 1).shape, dtype)
    davg = _rand(15, F.avg_pool2d(x, (3, 2), 2, ceil_mode=True).shape, dtype)
    dada = _rand(16, (6, 16, 5, 7), dtype)

    def run():
        ymax, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        yavg = F.avg_pool2d(x, (3, 2), 2, ceil_mode=True)
        yada = F.adaptive_avg_pool2d(x, (5, 7))
        return [ymax, idx, F.max_pool2d_backward(dmax, x, 3, 2, 1, indices=idx),
                yavg, F.avg_pool2d_backward(davg, x, (3, 2), 2, ceil_mode=True),
                yada, F.adaptive_avg_pool2d_backward(dada, x, (5, 7))]
    return run


def _train(model, opt, batches, dtype):
    """Forward, cross-entropy, backward and an optimizer step per batch; returns the losses and
    every parameter, buffer and optimizer state array afterwards."""
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for x, y in batches:
        losses.append(loss_fn(model(x.astype(dtype)), y))
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
    state = [v for _, v in sorted(model.state_dict().items())]
    for s in opt.state_dict()["state"].values():
        state += [np.asarray(v) for _, v in sorted(s.items())]
    return [np.array(losses)] + state


def _model(build, dtype, seed):
    fc.manual_seed(seed)
    model = build()
    return model.double() if dtype == np.float64 else model


def _job_train_fashion_cnn(dtype):
    model = _model(models.fashion_cnn, dtype, 0)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    batches = [(_rand(20 + i, (8, 1, 28, 28), np.float32), _labels(30 + i, 8)) for i in range(3)]
    return lambda: _train(model, opt, batches, dtype)


def _job_train_lenet5(dtype):
    model = _model(lambda: models.lenet5(input_size=28), dtype, 1)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    batches = [(_rand(40 + i, (16, 1, 28, 28), np.float32), _labels(50 + i, 16)) for i in range(3)]
    return lambda: _train(model, opt, batches, dtype)


def _job_train_dropout_mixed_pool(dtype):
    # Random ops in a concurrent run: each gets its own generator, so the draws do not depend
    # on what other threads draw meanwhile.
    gen = np.random.default_rng(60)
    model = _model(lambda: nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
        nn.MixedPool2d(2, alpha=None, generator=gen), nn.Conv2d(12, 16, 3), nn.Tanh(),
        nn.AdaptiveAvgPool2d((3, 3)), nn.Flatten(), nn.Dropout(0.3, generator=gen),
        nn.Linear(144, 7)), dtype, 2)
    opt = optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.5)
    batches = [(_rand(61 + i, (6, 3, 22, 19), np.float32), _labels(70 + i, 6, 7)) for i in range(3)]
    return lambda: _train(model, opt, batches, dtype)


def _job_functional_mix(dtype):
    x, w, b = _rand(80, (96, 1568), dtype), _rand(81, (200, 1568), dtype), _rand(82, 200, dtype)
    dy = _rand(83, (96, 200), dtype)
    xb, g, beta = _rand(84, (16, 32, 14, 14), dtype), _rand(85, 32, dtype), _rand(86, 32, dtype)
    dyb = _rand(87, xb.shape, dtype)
    target = _labels(88, 96, 200)

    def run():
        rm, rv = np.zeros(32, dtype), np.ones(32, dtype)
        yb, mean, invstd = F.batch_norm(xb, rm, rv, g, beta, training=True, return_stats=True)
        logits = F.linear(x, w, b)
        drop, mask = F.dropout(xb, 0.4, generator=np.random.default_rng(89), return_mask=True)
        return [logits, *F.linear_backward(dy, x, w),
                yb, mean, invstd, rm, rv, *F.batch_norm_backward(dyb, xb, g, mean, invstd, True),
                F.cross_entropy(logits, target, label_smoothing=0.1),
                F.cross_entropy_backward(np.asarray(1.0, dtype), logits, target, label_smoothing=0.1),
                F.softmax(logits, 1), F.local_response_norm(xb, 5), drop, mask]
    return run


JOBS = [_job_conv_strided_groups, _job_conv_batch1_dilated, _job_conv_transpose_and_1x1,
        _job_pooling, _job_train_fashion_cnn, _job_train_lenet5, _job_train_dropout_mixed_pool,
        _job_functional_mix]


def _run_concurrently(runs):
    """Each run() in its own Python thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(runs))
    results, errors = [None] * len(runs), []

    def worker(i):
        try:
            barrier.wait()
            results[i] = runs[i]()
        except BaseException as e:  # reported in the main thread
            errors.append((i, e))
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0][1]
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_threads_eight_jobs_at_once_match_one_by_one(threads, dtype):
    with num_threads(threads):
        one_by_one = [job(dtype)() for job in JOBS]
        at_once = _run_concurrently([job(dtype) for job in JOBS])
    assert len(JOBS) == 8
    for job, a, e in zip(JOBS, at_once, one_by_one):
        assert_same_bits(a, e, f"{job.__name__} at {threads} threads, {np.dtype(dtype).name}")


def _conv_weight_grad():
    """A conv2d weight gradient: its partial sums are cut by the thread count (README), so its
    bits tell which count a kernel used. Five images (one work item each): with three, every
    cut of 1-3 threads adds them in the same left-to-right order and the bits would agree
    whenever the BLAS does not split its own inner sum."""
    x, w = _rand(90, (5, 8, 30, 26), np.float32), _rand(91, (16, 8, 3, 3), np.float32)
    dy = _rand(92, (5, 16, 30, 26), np.float32)
    return lambda: F.conv2d_backward(dy, x, w, padding=1, output_mask=(False, True, False))[1]


def _in_thread(f):
    out = []
    t = threading.Thread(target=lambda: out.append(f()))
    t.start()
    t.join()
    return out[0]


def test_set_num_threads_applies_to_kernels_in_every_python_thread():
    grad = _conv_weight_grad()
    expected = {}
    for k in (1, 2, 3):
        with num_threads(k):
            expected[k] = grad()
    # The observable must tell the counts apart for the checks below to mean anything.
    assert len({v.tobytes() for v in expected.values()}) == 3

    with num_threads(3):
        # A thread started before the change sees it.
        go, out = threading.Event(), []
        waiting = threading.Thread(target=lambda: (go.wait(), out.append((fc.get_num_threads(),
                                                                         grad()))))
        waiting.start()
        fc.set_num_threads(1)
        go.set()
        waiting.join()
        assert out[0][0] == 1
        assert_same_bits([out[0][1]], [expected[1]], "thread started before set_num_threads(1)")
        # A new thread, and a count set from another thread seen by the main thread.
        assert_same_bits([_in_thread(grad)], [expected[1]], "thread started after it")
        _in_thread(lambda: fc.set_num_threads(2))
        assert fc.get_num_threads() == 2
        assert_same_bits([grad()], [expected[2]], "main thread after another set 2")
        assert_same_bits([_in_thread(grad)], [expected[2]], "new thread after another set 2")


def test_set_num_threads_during_running_kernels_is_safe():
    """Counts flipped from one thread while others run kernels: each call reads the count once,
    so every result is the one for some count (never a mix, never a crash)."""
    grad = _conv_weight_grad()
    counts = (1, 2, 3, 4)
    expected = {}
    for k in counts:
        with num_threads(k):
            expected[grad().tobytes()] = k
    stop, seen, errors = threading.Event(), [], []

    def flipper():
        i = 0
        while not stop.is_set():
            fc.set_num_threads(counts[i % len(counts)])
            i += 1

    def worker():
        try:
            for _ in range(25):
                seen.append(expected.get(grad().tobytes()))
        except BaseException as e:
            errors.append(e)

    with num_threads(2):
        flip = threading.Thread(target=flipper)
        workers = [threading.Thread(target=worker) for _ in range(3)]
        flip.start()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        stop.set()
        flip.join()
    assert not errors, errors
    assert None not in seen, f"{seen.count(None)} of {len(seen)} results match no thread count"


def test_set_num_threads_every_cpu_parallel_region_names_its_team():
    """Every OpenMP region in the CPU kernels passes num_threads(...): without it a region
    takes the calling thread's own OpenMP setting, not fastconv's process-wide count."""
    sources = sorted((ROOT / "csrc" / "cpu").glob("*.cpp"))
    if not sources:
        pytest.skip("the C++ sources are not beside the tests (an installed copy)")
    regions = []
    for path in sources:
        text = path.read_text().replace("\\\n", " ")
        for m in re.finditer(r"^#pragma omp parallel\b.*$", text, re.M):
            regions.append((path.name, m.group(0)))
    assert len(regions) > 30, regions
    bare = [r for r in regions if "num_threads(" not in r[1]]
    assert not bare, bare
    for path in sources:
        assert "omp_set_num_threads" not in path.read_text(), path.name


# -- the global generator

def test_manual_seed_from_concurrent_threads_keeps_generators_whole():
    """Seeding and drawing from several threads at once: every draw is a valid value and each
    thread's own generator gives exactly its sequential draws."""
    def per_thread(seed):
        gen = np.random.default_rng(seed)
        return [F.dropout(np.ones((64, 64)), 0.5, generator=gen) for _ in range(20)]

    expected = [per_thread(s) for s in range(8)]
    global_draws = []

    def run(seed):
        def go():
            for _ in range(20):
                fc.manual_seed(seed)
                out = F.dropout(np.ones((64, 64)), 0.5)
                global_draws.append(np.unique(out))
            return per_thread(seed)
        return go

    got = _run_concurrently([run(s) for s in range(8)])
    for s in range(8):
        assert_same_bits(got[s], expected[s], f"own generator of thread {s}")
    for values in global_draws:
        assert set(values.tolist()) <= {0.0, 2.0}


def test_dropout_module_draws_from_its_own_generator():
    x = np.ones((4, 300), np.float32)
    fc.manual_seed(1)
    a = nn.Dropout(0.5, generator=np.random.default_rng(3))(x)
    fc.manual_seed(2)
    b = nn.Dropout(0.5, generator=np.random.default_rng(3))(x)
    assert_same_bits([a], [F.dropout(x, 0.5, generator=np.random.default_rng(3))], "nn.Dropout")
    assert_same_bits([b], [a], "nn.Dropout after another global seed")
    layer = nn.Dropout(0.5)
    layer.generator = np.random.default_rng(3)
    assert_same_bits([layer(x)], [a], "generator set as an attribute")
    with pytest.raises(TypeError, match="dropout: generator must be a numpy.random.Generator"):
        nn.Dropout(0.5, generator=3)(x)


# -- determinism of whole training runs

class _RecordingLoss(nn.CrossEntropyLoss):
    """Cross-entropy that keeps every step's loss."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def forward(self, logits, target):
        loss = super().forward(logits, target)
        self.losses.append(loss)
        return loss


def _training_run(seed, threads):
    """20 steps of fashion_cnn with dropout through DataLoader (shuffled, augmented) and fit."""
    rng = np.random.default_rng(100)
    images = rng.standard_normal((80, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 80)
    with num_threads(threads):
        fc.manual_seed(seed)
        body = models.fashion_cnn()
        model = nn.Sequential(body[0], body[1], body[2], nn.Dropout(0.3), body[3])
        opt = optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
        loader = data.DataLoader(images, labels, batch_size=8, shuffle=True, seed=seed,
                                 transform=data.Compose([data.RandomShift(2),
                                                         data.RandomHorizontalFlip()]))
        loss_fn = _RecordingLoss()
        history = fit(model, loss_fn, opt, loader, epochs=2, progress=False)
    assert len(loss_fn.losses) == 20
    results = [np.array(loss_fn.losses), np.array([h["train_acc"] for h in history])]
    results += [v for _, v in sorted(model.state_dict().items())]
    for s in opt.state_dict()["state"].values():
        results += [np.asarray(v) for _, v in sorted(s.items())]
    return results


@pytest.mark.parametrize("threads", [1, 2])
def test_training_same_seed_and_thread_count_is_bit_identical(threads):
    first, second = _training_run(0, threads), _training_run(0, threads)
    assert_same_bits(second, first, f"two 20-step runs, seed 0, {threads} threads")
    other = _training_run(1, threads)
    assert other[0].tobytes() != first[0].tobytes(), "the seed did not reach the run"
