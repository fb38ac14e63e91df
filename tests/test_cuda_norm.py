"""batch_norm, local_response_norm and dropout on the GPU: CuPy in, CuPy out, against the float64
NumPy reference and the CPU kernel, on the CPU tests' shape tables, batch 1, a large batch,
NaN/inf and empty arrays. Outputs are poisoned; dropout masks must equal the CPU's bit for bit."""

import numpy as np
import pytest

import fastconv.functional as F
from fastconv._loader import _C

from fastconv._opinfo.norm import (batch_norm_backward_ref, batch_norm_ref,
                                   local_response_norm_backward_ref, local_response_norm_ref)
from fastconv._opinfo.dropout import dropout_ref
from _cuda import cover, covering, cp, dev, host, requires_cuda
from _util import assert_close, rand, stable_seed
from test_norm import BN_SHAPES, DTYPE_IDS, DTYPES, LRN_SHAPES, _bn_data, _rtol

pytestmark = requires_cuda


def _on_gpu(*arrays):
    for a in arrays:
        assert type(a).__module__.startswith("cupy"), type(a)


def _matches(got, ref, cpu, tol, what):
    """got (CuPy) against the float64 reference and the CPU kernel's result."""
    _on_gpu(got)
    assert got.dtype == cpu.dtype, what
    assert_close(host(got), ref, tol, what=what)
    assert_close(host(got), cpu, tol, what=f"{what} vs CPU")


def _same_nonfinite(got, cpu, tol, what):
    """NaN and inf where the CPU kernel has them, the finite values close."""
    got = host(got)
    assert np.array_equal(np.isnan(got), np.isnan(cpu)), f"{what}: NaN positions differ"
    inf = np.isinf(cpu)
    assert np.array_equal(got[inf], cpu[inf]), f"{what}: inf differ"
    fin = np.isfinite(cpu)
    assert_close(got[fin], cpu[fin], tol, what=what)


# ---------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------

def _bn_both(x, rm, rv, w, b, dy, training, momentum=0.2, eps=1e-4):
    """Forward and backward on the GPU and on the CPU from the same data: (gpu, cpu), each
    (out, save_mean, save_invstd, running_mean, running_var, dx, dw, db)."""
    results = []
    for to in (dev, lambda a: None if a is None else a.copy()):
        xs, rms, rvs, ws, bs, dys = (to(a) for a in (x, rm, rv, w, b, dy))
        out, sm, si = F.batch_norm(xs, rms, rvs, ws, bs, training, momentum, eps,
                                   return_stats=True)
        grads = F.batch_norm_backward(dys, xs, ws, sm, si, training)
        results.append((out, sm, si, rms, rvs) + grads)
    return results


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", covering(BN_SHAPES, (2, 3, 5, 6)), ids=str)
def test_batch_norm_gpu(shape, dtype, training, affine, poisoned):
    x, rm, rv, w, b, dy = _bn_data(shape, dtype, stable_seed("bn", shape))
    if not affine:
        w = b = None
    gpu, cpu = _bn_both(x, rm, rv, w, b, dy, training)
    ref, mean, invstd, rm_ref, rv_ref = batch_norm_ref(x, rm, rv, w, b, training, 0.2, 1e-4)
    dx_ref, dw_ref, db_ref = batch_norm_backward_ref(dy, x, w, mean, invstd, training)
    refs = (ref, mean, invstd, rm_ref if training else rm, rv_ref if training else rv,
            dx_ref, dw_ref, db_ref)
    names = ("out", "save_mean", "save_invstd", "running_mean", "running_var", "grad_input",
             "grad_weight", "grad_bias")
    tol = _rtol(dtype)
    for g, c, r, name in zip(gpu, cpu, refs, names):
        if name == "grad_weight" and not affine:
            assert g is None and c is None
            continue
        _matches(g, r, c, tol, name)


@pytest.mark.parametrize("shape", [(256, 16, 28, 28), (64, 256, 7, 7), (4096, 300)], ids=str)
def test_batch_norm_large_batch_gpu(shape, poisoned):
    """Many chunks per channel (and many channels of few elements): the fixed-order combine."""
    x, rm, rv, w, b, dy = _bn_data(shape, np.float32, stable_seed("bn large", shape))
    gpu, cpu = _bn_both(x, rm, rv, w, b, dy, True)
    ref, mean, invstd, rm_ref, rv_ref = batch_norm_ref(x, rm, rv, w, b, True, 0.2, 1e-4)
    dx_ref, dw_ref, db_ref = batch_norm_backward_ref(dy, x, w, mean, invstd, True)
    for g, c, r, name in zip(gpu, cpu, (ref, mean, invstd, rm_ref, rv_ref, dx_ref, dw_ref, db_ref),
                             ("out", "mean", "invstd", "rm", "rv", "dx", "dw", "db")):
        _matches(g, r, c, _rtol(np.float32), name)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_large_mean_float32_gpu(training, poisoned):
    """1e4 + noise in float32: statistics in double and the split mean keep the noise."""
    x, _, _, w, b, dy = _bn_data((8, 3, 12, 11), np.float32, 17, mean=1e4)
    rm = np.full(3, 1e4, dtype=np.float32)
    rv = np.full(3, 2.0, dtype=np.float32)
    gpu, cpu = _bn_both(x, rm, rv, w, b, dy, training, 0.1, 1e-5)
    ref, mean, invstd, _, _ = batch_norm_ref(x, rm, rv, w, b, training)
    dx_ref, dw_ref, db_ref = batch_norm_backward_ref(dy, x, w, mean, invstd, training)
    out, _, si, _, _, dx, dw, db = gpu
    _matches(out, ref, cpu[0], 1e-5, "out")
    _matches(si, invstd, cpu[2], 1e-6, "save_invstd")
    for g, c, r, name in zip((dx, dw, db), cpu[5:], (dx_ref, dw_ref, db_ref), ("dx", "dw", "db")):
        _matches(g, r, c, 1e-5, name)


def test_batch_norm_running_stats_several_steps_gpu():
    rng = np.random.default_rng(11)
    rm, rv = cp.zeros(4), cp.ones(4)
    rm_cpu, rv_cpu = np.zeros(4), np.ones(4)
    rm_ref, rv_ref = np.zeros(4), np.ones(4)
    for step in range(5):
        x = rng.standard_normal((3, 4, 5, 2)) * (step + 1) + step
        F.batch_norm(dev(x), rm, rv, training=True, momentum=0.1)
        F.batch_norm(x, rm_cpu, rv_cpu, training=True, momentum=0.1)
        _, _, _, rm_ref, rv_ref = batch_norm_ref(x, rm_ref, rv_ref, training=True, momentum=0.1)
    _matches(rm, rm_ref, rm_cpu, 1e-12, "running_mean")
    _matches(rv, rv_ref, rv_cpu, 1e-12, "running_var")


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_batch_norm_momentum_0_and_1_gpu(momentum):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3, 6))
    rm0, rv0 = rng.standard_normal(3), rng.random(3) + 1
    rm, rv = dev(rm0, rv0)
    F.batch_norm(dev(x), rm, rv, training=True, momentum=momentum)
    if momentum == 0:
        assert np.array_equal(host(rm), rm0) and np.array_equal(host(rv), rv0)
    else:
        assert_close(host(rm), x.mean(axis=(0, 2)), 1e-14)
        assert_close(host(rv), x.transpose(1, 0, 2).reshape(3, -1).var(axis=1, ddof=1), 1e-13)


def test_batch_norm_training_without_running_stats_gpu(poisoned):
    x = np.random.default_rng(13).standard_normal((4, 3, 5))
    out, sm, si = F.batch_norm(dev(x), None, None, training=True, return_stats=True)
    ref, mean, invstd, _, _ = batch_norm_ref(x, None, None, training=True)
    _matches(out, ref, F.batch_norm(x, None, None, training=True), 1e-10, "out")
    assert_close(host(sm), mean, 1e-10)
    assert_close(host(si), invstd, 1e-10)


def test_batch_norm_eval_saved_stats_are_running_stats_gpu(poisoned):
    x, rm, rv, w, b, _ = _bn_data((2, 3, 4), np.float32, 14)
    _, sm, si = F.batch_norm(dev(x), dev(rm), dev(rv), dev(w), dev(b), eps=1e-3,
                             return_stats=True)
    assert np.array_equal(host(sm), rm)
    assert np.array_equal(host(si), F.batch_norm(x, rm, rv, w, b, eps=1e-3, return_stats=True)[2])
    out = F.batch_norm(dev(np.ones((1, 3))), dev(np.zeros(3)), dev(np.ones(3)), eps=0.0)
    assert np.array_equal(host(out), np.ones((1, 3)))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_backward_output_mask_and_accumulation_gpu(training, poisoned):
    """Every subset of gradients (eval grad_input alone skips the sums), and grad_weight /
    grad_bias accumulated (+=) into the given arrays."""
    x, rm, rv, w, b, dy = _bn_data((3, 4, 6), np.float64, 18)
    _, sm, si = F.batch_norm(x, rm.copy(), rv.copy(), w, b, training, return_stats=True)
    mean, invstd = batch_norm_ref(x, rm, rv, w, b, training)[1:3]
    refs = batch_norm_backward_ref(dy, x, w, mean, invstd, training)
    xd, wd, dyd, smd, sid = dev(x, w, dy, sm, si)
    for mask in [(True, False, False), (False, True, False), (False, False, True),
                 (True, True, False), (False, True, True), (False, False, False)]:
        got = F.batch_norm_backward(dyd, xd, wd, smd, sid, training, output_mask=mask)
        for want, g, r in zip(mask, got, refs):
            if want:
                assert_close(host(g), r, 1e-10)
            else:
                assert g is None
    gw0, gb0 = np.arange(4.0), -np.arange(4.0)
    gw, gb = dev(gw0, gb0)
    _, rw, rb = F.batch_norm_backward(dyd, xd, wd, smd, sid, training, grad_weight=gw,
                                      grad_bias=gb)
    assert rw is gw and rb is gb
    assert_close(host(gw), gw0 + refs[1], 1e-10)
    assert_close(host(gb), gb0 + refs[2], 1e-10)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_nan_inf_gpu(training, poisoned):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((4, 3, 5))
    x[1, 0, 2] = np.nan
    x[2, 1, 3] = np.inf
    dy = rng.standard_normal(x.shape)
    rm, rv = np.zeros(3), np.ones(3)
    with np.errstate(all="ignore"):
        gpu, cpu = _bn_both(x, rm, rv, None, None, dy, training)
    for g, c, name in zip(gpu, cpu, ("out", "sm", "si", "rm", "rv", "dx", "dw", "db")):
        if c is not None:
            _same_nonfinite(g, c, 1e-10, name)
    if training:
        assert np.isnan(host(gpu[0])[:, :2]).all() and np.isfinite(host(gpu[0])[:, 2]).all()


@pytest.mark.parametrize("shape,training", [((0, 3, 4), False), ((0, 2), False),
                                            ((2, 0, 5), False), ((2, 0, 5), True)], ids=str)
def test_batch_norm_empty_gpu(shape, training, poisoned):
    """No launch on an empty grid; eval still fills save_* and accumulates 0 into the gradients
    (training needs more than one value per channel, so only C may be 0 there)."""
    C = shape[1]
    x = np.ones(shape)
    rm, rv = np.full(C, 0.5), np.full(C, 2.0)
    gpu, cpu = _bn_both(x, rm, rv, np.ones(C), np.zeros(C), np.ones(shape), training)
    for g, c in zip(gpu, cpu):
        assert g.shape == c.shape
        assert np.array_equal(host(g), c)


def test_batch_norm_deterministic_gpu():
    x, rm, rv, w, b, dy = _bn_data((8, 5, 100, 121), np.float32, 31)
    runs = [_bn_both(x, rm, rv, w, b, dy, True)[0] for _ in range(2)]
    for a, b1 in zip(*runs):
        assert np.array_equal(host(a), host(b1))


# ---------------------------------------------------------------------------
# local_response_norm
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [0.75, 0.6], ids=["b075", "b06"])
@pytest.mark.parametrize("size", [1, 2, 3, 9])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", covering(LRN_SHAPES, (2, 7, 5, 6)), ids=str)
def test_local_response_norm_gpu(shape, dtype, size, beta, poisoned):
    """Odd and even windows, and windows wider than C (size 9 against C = 3, 6, 7)."""
    rng = np.random.default_rng(stable_seed("lrn", shape, size))
    x = rand(rng, shape, dtype) * 2
    dy = rand(rng, shape, dtype)
    alpha, k = 0.5, 1.5
    tol = _rtol(dtype)
    out = F.local_response_norm(dev(x), size, alpha, beta, k)
    _matches(out, local_response_norm_ref(x, size, alpha, beta, k),
             F.local_response_norm(x, size, alpha, beta, k), tol, "forward")
    dx = F.local_response_norm_backward(dev(dy), dev(x), size, alpha, beta, k)
    _matches(dx, local_response_norm_backward_ref(dy, x, size, alpha, beta, k),
             F.local_response_norm_backward(dy, x, size, alpha, beta, k), tol, "backward")


def test_local_response_norm_nan_inf_gpu(poisoned):
    x = rand(np.random.default_rng(22), (1, 6, 2, 2), np.float64)
    x[0, 2, 0, 0] = np.inf
    x[0, 4, 1, 1] = np.nan
    dy = np.ones_like(x)
    with np.errstate(all="ignore"):
        _same_nonfinite(F.local_response_norm(dev(x), 3, alpha=1.0),
                        F.local_response_norm(x, 3, alpha=1.0), 1e-10, "forward")
        _same_nonfinite(F.local_response_norm_backward(dev(dy), dev(x), 3, alpha=1.0),
                        F.local_response_norm_backward(dy, x, 3, alpha=1.0), 1e-10, "backward")


def test_local_response_norm_empty_and_deterministic_gpu(poisoned):
    assert F.local_response_norm(dev(np.ones((0, 4, 3))), 3).shape == (0, 4, 3)
    assert F.local_response_norm_backward(dev(np.ones((2, 0, 3))), dev(np.ones((2, 0, 3))),
                                          3).shape == (2, 0, 3)
    x = dev(rand(np.random.default_rng(23), (4, 96, 27, 27), np.float32))
    a = F.local_response_norm_backward(x, x, 5)
    assert np.array_equal(host(a), host(F.local_response_norm_backward(x, x, 5)))


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(7,), cover((3, 5, 7, 9)), (8, 16, 123, 127)], ids=str)
def test_dropout_matches_cpu_bit_for_bit_gpu(shape, p, dtype, poisoned):
    """One seed, one mask: the GPU hashes (seed, index) as the CPU does; the output and the
    gradient are the same products, so they are equal too."""
    x = rand(np.random.default_rng(stable_seed("dropout", shape)), shape, dtype)
    seed = stable_seed("dropout seed", shape, p)
    out, mask = F.dropout(dev(x), p, generator=np.random.default_rng(seed), return_mask=True)
    out_cpu, mask_cpu = F.dropout(x, p, generator=np.random.default_rng(seed), return_mask=True)
    _on_gpu(out, mask)
    assert out.dtype == dtype and mask.dtype == np.uint8
    assert np.array_equal(host(mask), mask_cpu)
    assert np.array_equal(host(out), out_cpu)
    assert_close(host(out), dropout_ref(x, mask_cpu, p), _rtol(dtype))
    dx = F.dropout_backward(dev(x), mask, p)
    assert np.array_equal(host(dx), F.dropout_backward(x, mask_cpu, p))
    assert np.array_equal(host(F.dropout_backward(dev(x), mask.astype(bool), p)), host(dx))
    if p == 0:
        assert (mask_cpu == 1).all()
    if p == 1:
        assert (mask_cpu == 0).all() and (host(dx) == 0).all()


def test_dropout_eval_identity_and_nan_inf_gpu(poisoned):
    x = np.array([np.nan, np.inf, -np.inf, 1.0] * 500, dtype=np.float32)
    out, mask = F.dropout(dev(x), 0.6, training=False, return_mask=True)
    assert np.array_equal(host(out), x, equal_nan=True) and (host(mask) == 1).all()
    out, mask = F.dropout(dev(x), 0.5, generator=np.random.default_rng(3), return_mask=True)
    out_cpu = F.dropout(x, 0.5, generator=np.random.default_rng(3))
    assert np.array_equal(host(out), out_cpu, equal_nan=True)
    assert 0 < int(host(mask).sum()) < x.size


def test_dropout_inplace_and_deterministic_gpu():
    x = rand(np.random.default_rng(27), (5, 6, 7), np.float64)
    xd = dev(x)
    out, mask = F.dropout(xd, 0.4, inplace=True, generator=np.random.default_rng(4),
                          return_mask=True)
    assert out is xd
    assert np.array_equal(host(xd), F.dropout(x, 0.4, generator=np.random.default_rng(4)))
    big = dev(np.ones((3, 1000, 1001), np.float32))
    a = F.dropout(big, 0.3, generator=np.random.default_rng(5), return_mask=True)[1]
    b = F.dropout(big, 0.3, generator=np.random.default_rng(5), return_mask=True)[1]
    assert bool((a == b).all())
    assert F.dropout(dev(np.ones((0, 3))), 0.5).shape == (0, 3)


def test_dropout2d_matches_cpu_bit_for_bit_gpu():
    """Channel dropout on the device: the same mask as the CPU's for one seed, the output and
    gradient the same products, all CuPy arrays."""
    x = rand(np.random.default_rng(28), (4, 6, 5, 3), np.float32)
    out, mask = F.dropout2d(dev(x), 0.4, generator=np.random.default_rng(6), return_mask=True)
    out_cpu, mask_cpu = F.dropout2d(x, 0.4, generator=np.random.default_rng(6),
                                    return_mask=True)
    _on_gpu(out, mask)
    assert mask.shape == (4, 6, 1, 1) and np.array_equal(host(mask), mask_cpu)
    assert np.array_equal(host(out), out_cpu)
    dx = F.dropout2d_backward(dev(x), mask, 0.4)
    _on_gpu(dx)
    assert np.array_equal(host(dx), F.dropout2d_backward(x, mask_cpu, 0.4))


# ---------------------------------------------------------------------------
# devices do not mix
# ---------------------------------------------------------------------------

def test_devices_do_not_mix():
    x, rm, rv, w, b, dy = _bn_data((2, 3, 4), np.float32, 30)
    with pytest.raises(ValueError, match="running_mean is on the CPU"):
        F.batch_norm(dev(x), rm, rv, training=True)
    with pytest.raises(ValueError, match="weight is on the GPU"):
        F.batch_norm(x, rm, rv, dev(w), b)
    _, sm, si = F.batch_norm(dev(x), dev(rm), dev(rv), return_stats=True)
    with pytest.raises(ValueError, match="grad_output is on the CPU"):
        F.batch_norm_backward(dy, dev(x), dev(w), sm, si)
    with pytest.raises(ValueError, match="grad_output is on the GPU"):
        F.local_response_norm_backward(dev(dy), x, 3)
    with pytest.raises(ValueError, match="mask is on the CPU"):
        F.dropout_backward(dev(dy), np.ones(dy.shape, np.uint8), 0.5)
    with pytest.raises(ValueError, match="mask is on the CPU"):
        _C.dropout_forward(dev(x), np.ones(x.shape, np.uint8), dev(x), 0.5, True, 1)
