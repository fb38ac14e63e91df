"""fastconv.functional batch_norm / local_response_norm / dropout vs the NumPy reference.

Expected values come from fastconv/_opinfo/norm.py and dropout.py (float64) or from explicit
formulas, never from fastconv. Every output is allocated pre-poisoned (NaN, or 255 for masks)
through the `poisoned` fixture, so an element a kernel forgets to write fails the comparison.
"""

import math

import numpy as np
import pytest

import fastconv
import fastconv.functional as F

from fastconv._opinfo.norm import (batch_norm_ref, batch_norm_backward_ref,
                                   local_response_norm_ref, local_response_norm_backward_ref)
from fastconv._opinfo.dropout import dropout_ref
from _util import assert_close, rand

# Every test here runs once per CPU variant of the kernels (avx512, avx2, baseline; _isa.py).
pytestmark = pytest.mark.usefixtures("cpu_isa")

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def _rtol(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


@pytest.fixture(autouse=True)
def _poison_outputs(poisoned):
    """Every output fastconv allocates starts as NaN / all-ones bits (see tests/_cuda.py)."""
    yield


# ---------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------

BN_SHAPES = [
    (5, 3),                # (N, C)
    (1, 4, 7),             # batch 1, spatial > 1
    (4, 3, 7),             # (N, C, L)
    (2, 3, 5, 6),          # (N, C, H, W)
    (1, 2, 3, 5),          # batch 1 4-D
    (3, 5, 1, 1),          # spatial 1
    (2, 5, 17, 19),        # odd sizes
    (3, 2, 100, 121),      # several reduction chunks per channel, parallel passes
    (20000, 3),            # 2-D, several chunks of strided runs
    (2, 3, 2, 3, 4),       # 5-D
]


def _bn_data(shape, dtype, seed, mean=0.0):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rand(rng, shape, np.float64) * 1.5 + mean).astype(dtype)
    rm = rand(rng, (C,), dtype)
    rv = (rng.random(C) + 0.5).astype(dtype)
    w = rand(rng, (C,), dtype)
    b = rand(rng, (C,), dtype)
    dy = rand(rng, shape, dtype)
    return x, rm, rv, w, b, dy


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_forward_backward(shape, dtype, training, affine):
    x, rm, rv, w, b, dy = _bn_data(shape, dtype, sum(shape))
    if not affine:
        w = b = None
    rm1, rv1 = rm.copy(), rv.copy()
    out, save_mean, save_invstd = F.batch_norm(x, rm1, rv1, w, b, training, 0.2, 1e-4,
                                               return_stats=True)
    ref, mean, invstd, rm_ref, rv_ref = batch_norm_ref(x, rm, rv, w, b, training, 0.2, 1e-4)
    tol = _rtol(dtype)
    for a in (out, save_mean, save_invstd, rm1, rv1):
        assert a.dtype == dtype
    assert_close(out, ref, tol, what="out")
    assert_close(save_mean, mean, tol, what="save_mean")
    assert_close(save_invstd, invstd, tol, what="save_invstd")
    assert_close(rm1, rm_ref, tol, what="running_mean")
    assert_close(rv1, rv_ref, tol, what="running_var")

    dx, dw, db = F.batch_norm_backward(dy, x, w, save_mean, save_invstd, training)
    dx_ref, dw_ref, db_ref = batch_norm_backward_ref(dy, x, w, mean, invstd, training)
    assert dx.dtype == dtype
    assert_close(dx, dx_ref, tol, what="grad_input")
    if affine:
        assert_close(dw, dw_ref, tol, what="grad_weight")
    else:
        assert dw is None
    assert_close(db, db_ref, tol, what="grad_bias")


def test_batch_norm_running_stats_several_steps():
    rng = np.random.default_rng(11)
    rm, rv = np.zeros(4), np.ones(4)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    for step in range(5):
        x = rng.standard_normal((3, 4, 5, 2)) * (step + 1) + step
        F.batch_norm(x, rm, rv, training=True, momentum=0.1)
        _, _, _, rm_ref, rv_ref = batch_norm_ref(x, rm_ref, rv_ref, training=True, momentum=0.1)
    assert_close(rm, rm_ref, 1e-12)
    assert_close(rv, rv_ref, 1e-12)


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_batch_norm_momentum_0_and_1(momentum):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3, 6))
    rm, rv = rng.standard_normal(3), rng.random(3) + 1
    rm0, rv0 = rm.copy(), rv.copy()
    F.batch_norm(x, rm, rv, training=True, momentum=momentum)
    if momentum == 0:
        assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
    else:
        assert_close(rm, x.mean(axis=(0, 2)), 1e-14)
        assert_close(rv, x.transpose(1, 0, 2).reshape(3, -1).var(axis=1, ddof=1), 1e-13)


def test_batch_norm_training_without_running_stats():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 3, 5))
    out = F.batch_norm(x, None, None, training=True)
    assert_close(out, batch_norm_ref(x, None, None, training=True)[0], 1e-10)


def test_batch_norm_eval_returns_running_stats_as_saved():
    x, rm, rv, w, b, _ = _bn_data((2, 3, 4), np.float32, 14)
    _, sm, si = F.batch_norm(x, rm, rv, w, b, eps=1e-3, return_stats=True)
    assert np.array_equal(sm, rm)
    assert_close(si, 1 / np.sqrt(rv.astype(np.float64) + 1e-3), 1e-6)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_inputs_not_modified(training):
    x, rm, rv, w, b, dy = _bn_data((3, 4, 5), np.float64, 15)
    arrays = (x, w, b, dy) + (() if training else (rm, rv))
    copies = [a.copy() for a in arrays]
    _, sm, si = F.batch_norm(x, rm, rv, w, b, training, return_stats=True)
    F.batch_norm_backward(dy, x, w, sm, si, training)
    for a, c in zip(arrays, copies):
        assert np.array_equal(a, c)


def test_batch_norm_strided_running_stats_are_updated_in_place():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((4, 3, 5))
    stats = np.stack([np.zeros(3), np.ones(3)], axis=1)  # columns: strided views
    rm, rv = stats[:, 0], stats[:, 1]
    F.batch_norm(x, rm, rv, training=True, momentum=0.5)
    _, _, _, rm_ref, rv_ref = batch_norm_ref(x, np.zeros(3), np.ones(3), training=True,
                                             momentum=0.5)
    assert_close(stats[:, 0], rm_ref, 1e-12)
    assert_close(stats[:, 1], rv_ref, 1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_large_mean_float32(training):
    """Statistics of 1e4 + noise in float32: a float32 sum or E[x^2] - E[x]^2 would lose
    the noise; the reference sees the same float32 values in float64."""
    x, _, _, w, b, dy = _bn_data((8, 3, 12, 11), np.float32, 17, mean=1e4)
    rm = np.full(3, 1e4, dtype=np.float32)
    rv = np.full(3, 2.0, dtype=np.float32)
    out, sm, si = F.batch_norm(x, rm.copy(), rv.copy(), w, b, training, return_stats=True)
    ref, mean, invstd, _, _ = batch_norm_ref(x, rm, rv, w, b, training)
    assert_close(out, ref, 1e-5)
    assert_close(si, invstd, 1e-6)
    dx, dw, db = F.batch_norm_backward(dy, x, w, sm, si, training)
    dx_ref, dw_ref, db_ref = batch_norm_backward_ref(dy, x, w, mean, invstd, training)
    assert_close(dx, dx_ref, 1e-5, what="grad_input")
    assert_close(dw, dw_ref, 1e-5, what="grad_weight")
    assert_close(db, db_ref, 1e-5, what="grad_bias")


def test_batch_norm_backward_output_mask_and_accumulation():
    x, rm, rv, w, b, dy = _bn_data((3, 4, 6), np.float64, 18)
    _, sm, si = F.batch_norm(x, rm, rv, w, b, True, return_stats=True)
    mean, invstd = batch_norm_ref(x, rm, rv, w, b, True)[1:3]
    dx_ref, dw_ref, db_ref = batch_norm_backward_ref(dy, x, w, mean, invstd, True)
    for mask in [(True, False, False), (False, True, False), (False, False, True),
                 (False, False, False)]:
        got = F.batch_norm_backward(dy, x, w, sm, si, True, output_mask=mask)
        for want, g, r in zip(mask, got, (dx_ref, dw_ref, db_ref)):
            if want:
                assert_close(g, r, 1e-10)
            else:
                assert g is None
    gw0, gb0 = np.arange(4.0), -np.arange(4.0)
    gw, gb = gw0.copy(), gb0.copy()
    _, rw, rb = F.batch_norm_backward(dy, x, w, sm, si, True, grad_weight=gw, grad_bias=gb)
    assert rw is gw and rb is gb
    assert_close(gw, gw0 + dw_ref, 1e-10)
    assert_close(gb, gb0 + db_ref, 1e-10)


def test_batch_norm_backward_without_weight():
    x, rm, rv, _, _, dy = _bn_data((3, 4, 6), np.float64, 19)
    _, sm, si = F.batch_norm(x, rm, rv, None, None, True, return_stats=True)
    dx, dw, db = F.batch_norm_backward(dy, x, None, sm, si, True, grad_weight=np.zeros(4))
    assert dw is None
    assert_close(db, dy.sum(axis=(0, 2)), 1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_nan_inf_propagation(training):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((4, 3, 5))
    x[1, 0, 2] = np.nan
    x[2, 1, 3] = np.inf
    rm, rv = np.zeros(3), np.ones(3)
    out = F.batch_norm(x, rm, rv, training=training)
    if training:
        # a non-finite value poisons its channel's statistics, hence the whole channel
        assert np.isnan(out[:, :2]).all()
        assert np.isfinite(out[:, 2]).all()
        assert np.isnan(rm[0]) and rm[1] == np.inf and np.isnan(rv[:2]).all()
    else:
        assert np.isnan(out[1, 0, 2]) and out[2, 1, 3] == np.inf
        assert np.isfinite(out).sum() == out.size - 2


# ---------------------------------------------------------------------------
# local_response_norm
# ---------------------------------------------------------------------------

LRN_SHAPES = [(2, 7, 5, 6), (1, 3, 4, 4), (2, 6, 9), (2, 5, 3, 4, 2), (2, 16, 33, 33)]


@pytest.mark.parametrize("beta", [0.75, 0.6], ids=["b075", "b06"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", LRN_SHAPES, ids=str)
def test_local_response_norm_forward_backward(shape, dtype, size, beta):
    rng = np.random.default_rng(size * 10 + len(shape))
    x = rand(rng, shape, dtype) * 2
    dy = rand(rng, shape, dtype)
    alpha, k = 0.5, 1.5
    out = F.local_response_norm(x, size, alpha, beta, k)
    assert out.dtype == dtype
    assert_close(out, local_response_norm_ref(x, size, alpha, beta, k), _rtol(dtype))
    dx = F.local_response_norm_backward(dy, x, size, alpha, beta, k)
    assert dx.dtype == dtype
    assert_close(dx, local_response_norm_backward_ref(dy, x, size, alpha, beta, k),
                 _rtol(dtype))


def test_local_response_norm_defaults():
    x = rand(np.random.default_rng(21), (2, 8, 3, 3), np.float64) * 30
    assert_close(F.local_response_norm(x, 5), local_response_norm_ref(x, 5), 1e-10)


def test_local_response_norm_nan_inf():
    x = rand(np.random.default_rng(22), (1, 6, 2, 2), np.float64)
    x[0, 2, 0, 0] = np.inf
    x[0, 4, 1, 1] = np.nan
    out = F.local_response_norm(x, 3, alpha=1.0)
    # inf: its own output inf/inf = NaN, the neighbours whose window holds it finite/inf = 0
    assert np.isnan(out[0, 2, 0, 0]) and (out[0, [1, 3], 0, 0] == 0).all()
    assert np.isfinite(out[0, [0, 4, 5], 0, 0]).all()
    # NaN: every output whose window holds it
    assert np.isnan(out[0, 3:, 1, 1]).all() and np.isfinite(out[0, :3, 1, 1]).all()


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_statistics(p):
    n = 200_000
    x = np.ones(n, dtype=np.float32)
    _, mask = F.dropout(x, p, generator=np.random.default_rng(23), return_mask=True)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(mask.mean() - (1 - p)) < 5 * sd
    # neighbours are independent: P(both kept) = (1 - p)^2
    both = (mask[1:] & mask[:-1]).mean()
    assert abs(both - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 / n)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.7])
def test_dropout_scaling_exact_and_backward_same_mask(p, dtype):
    rng = np.random.default_rng(24)
    x = rand(rng, (3, 5, 7, 9), dtype)
    out, mask = F.dropout(x, p, return_mask=True)
    scale = dtype(1 / (1 - p))  # PyTorch scales by 1/(1-p) rounded to the data type
    assert out.dtype == dtype
    assert np.array_equal(out, np.where(mask == 1, x * scale, x * dtype(0)))
    assert_close(out, dropout_ref(x, mask, p), _rtol(dtype))
    dy = rand(rng, x.shape, dtype)
    dx = F.dropout_backward(dy, mask, p)
    assert dx.dtype == dtype
    assert np.array_equal(dx, np.where(mask == 1, dy * scale, dy * dtype(0)))
    assert np.array_equal(F.dropout_backward(dy, mask.astype(bool), p), dx)


def test_dropout_reproducible_with_manual_seed():
    x = np.ones((64, 64))
    fastconv.manual_seed(5)
    a = F.dropout(x, 0.5, return_mask=True)[1]
    b = F.dropout(x, 0.5, return_mask=True)[1]
    fastconv.manual_seed(5)
    assert np.array_equal(F.dropout(x, 0.5, return_mask=True)[1], a)
    assert np.array_equal(F.dropout(x, 0.5, return_mask=True)[1], b)
    assert not np.array_equal(a, b)
    g1 = F.dropout(x, 0.5, generator=np.random.default_rng(9), return_mask=True)[1]
    g2 = F.dropout(x, 0.5, generator=np.random.default_rng(9), return_mask=True)[1]
    assert np.array_equal(g1, g2)


def test_dropout_mask_independent_of_thread_count():
    x = np.ones((8, 16, 40, 40), dtype=np.float32)  # large enough for a parallel loop
    before = fastconv.get_num_threads()
    try:
        masks = []
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            masks.append(F.dropout(x, 0.3, generator=np.random.default_rng(1),
                                   return_mask=True)[1])
        assert np.array_equal(masks[0], masks[1])
    finally:
        fastconv.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_dropout_identity_cases(dtype):
    x = rand(np.random.default_rng(25), (4, 5, 6), dtype)
    x[0, 0, 0] = np.nan
    x[0, 0, 1] = -np.inf
    for kw in (dict(p=0.0), dict(p=0.6, training=False)):
        out, mask = F.dropout(x, return_mask=True, **kw)
        assert out is not x and out.dtype == dtype
        assert np.array_equal(out, x, equal_nan=True)
        assert (mask == 1).all()
        # the forward was the identity, whose backward is dropout_backward with p = 0
        assert np.array_equal(F.dropout_backward(x, mask, 0.0), x, equal_nan=True)


def test_dropout_p1_zeroes_everything():
    x = rand(np.random.default_rng(26), (3, 4), np.float32)
    x[0, 0] = np.nan
    out, mask = F.dropout(x, 1.0, return_mask=True)
    assert (mask == 0).all()
    assert np.isnan(out[0, 0]) and (out.ravel()[1:] == 0).all()  # x * 0, as PyTorch
    assert (F.dropout_backward(np.ones_like(x), np.ones_like(mask), 1.0) == 0).all()


def test_dropout_nan_inf():
    x = np.array([np.nan, np.inf, -np.inf, 1.0] * 500, dtype=np.float64)
    out, mask = F.dropout(x, 0.5, return_mask=True)
    kept = mask == 1
    assert 0 < kept.sum() < x.size
    assert np.isnan(out[np.isnan(x) | (np.isinf(x) & ~kept)]).all()  # inf * 0 = NaN
    assert (out[np.isinf(x) & kept] == 2 * x[np.isinf(x) & kept]).all()


def test_dropout_inplace():
    x = rand(np.random.default_rng(27), (5, 6), np.float64)
    x0 = x.copy()
    out, mask = F.dropout(x, 0.4, inplace=True, return_mask=True)
    assert out is x
    assert np.array_equal(x, np.where(mask == 1, x0 * (1 / 0.6), 0.0))
    base = rand(np.random.default_rng(28), (6, 10), np.float64)
    view = base[:, ::2]
    v0 = view.copy()
    out, mask = F.dropout(view, 0.4, inplace=True, return_mask=True)
    assert out is view
    assert np.array_equal(base[:, ::2], np.where(mask == 1, v0 * (1 / 0.6), 0.0))
    assert np.array_equal(base[:, 1::2], rand(np.random.default_rng(28), (6, 10),
                                              np.float64)[:, 1::2])


# ---------------------------------------------------------------------------
# errors: every rejection names the argument
# ---------------------------------------------------------------------------

def _bn_args(**kw):
    x, rm, rv, w, b, _ = _bn_data((2, 3, 4), np.float64, 30)
    args = dict(input=x, running_mean=rm, running_var=rv, weight=w, bias=b, training=True)
    args.update(kw)
    return args


@pytest.mark.parametrize("kw, exc, match", [
    (dict(input=np.ones(3)), ValueError, "input"),
    (dict(input=[[1.0, 2.0]]), TypeError, "input"),
    (dict(input=np.ones((2, 3), dtype=np.int64)), TypeError, "input"),
    (dict(running_mean=np.zeros(4)), ValueError, "running_mean"),
    (dict(running_var=np.zeros((3, 1))), ValueError, "running_var"),
    (dict(weight=np.ones(2)), ValueError, "weight"),
    (dict(bias=np.ones(4)), ValueError, "bias"),
    (dict(weight=np.ones(3, dtype=np.float32)), TypeError, "weight"),
    (dict(input=np.ones((1, 3))), ValueError, "input"),
    (dict(input=np.ones((1, 3, 1, 1))), ValueError, "input"),
    (dict(eps=0.0), ValueError, "eps"),
    (dict(eps=-1e-5, training=False), ValueError, "eps"),
    (dict(running_mean=None, running_var=None, training=False), ValueError, "running_mean"),
    (dict(running_var=None), ValueError, "running_var"),
    (dict(momentum=None), TypeError, "momentum"),
    (dict(eps="1e-5"), TypeError, "eps"),
    (dict(training="False"), TypeError, "training"),  # was read as bool("False"), True
    (dict(training=None), TypeError, "training"),
    (dict(return_stats=1), TypeError, "return_stats"),
])
def test_batch_norm_errors(kw, exc, match, no_allocation):
    with pytest.raises(exc, match=match):
        F.batch_norm(**_bn_args(**kw))


def test_batch_norm_errors_readonly_running_stats(no_allocation):
    args = _bn_args()
    args["running_mean"].setflags(write=False)
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(**args)


def test_batch_norm_eval_accepts_batch_1_and_zero_eps():
    out = F.batch_norm(np.ones((1, 3)), np.zeros(3), np.ones(3), eps=0.0)
    assert np.array_equal(out, np.ones((1, 3)))


@pytest.mark.parametrize("kw, exc, match", [
    (dict(grad_output=np.ones((2, 3, 5))), ValueError, "grad_output"),
    (dict(save_mean=np.ones(4)), ValueError, "save_mean"),
    (dict(save_invstd=None), TypeError, "save_invstd"),
    (dict(weight=np.ones(4)), ValueError, "weight"),
    (dict(grad_weight=np.ones(4)), ValueError, "grad_weight"),
    (dict(grad_bias=np.ones(3, dtype=np.float32)), TypeError, "grad_bias"),
    (dict(output_mask=(True, True)), TypeError, "output_mask"),
])
def test_batch_norm_backward_errors(kw, exc, match, no_allocation):
    args = dict(grad_output=np.ones((2, 3, 4)), input=np.arange(24.0).reshape(2, 3, 4),
                weight=np.ones(3), save_mean=np.zeros(3), save_invstd=np.ones(3), training=True)
    args.update(kw)
    with pytest.raises(exc, match=match):
        F.batch_norm_backward(**args)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(input=np.ones((2, 4))), ValueError, "input"),
    (dict(size=0), ValueError, "size"),
    (dict(size=2.0), TypeError, "size"),
    (dict(alpha=None), TypeError, "alpha"),
    (dict(beta="x"), TypeError, "beta"),
    (dict(k=None), TypeError, "k"),
])
def test_local_response_norm_errors(kw, exc, match, no_allocation):
    args = dict(input=np.ones((2, 4, 3)), size=2)
    args.update(kw)
    with pytest.raises(exc, match=match):
        F.local_response_norm(**args)


def test_local_response_norm_backward_errors(no_allocation):
    with pytest.raises(ValueError, match="grad_output"):
        F.local_response_norm_backward(np.ones((2, 4, 4)), np.ones((2, 4, 3)), 2)
    with pytest.raises(TypeError, match="grad_output"):
        F.local_response_norm_backward(np.ones((2, 4, 3), np.float32), np.ones((2, 4, 3)), 2)
    with pytest.raises(ValueError, match="size"):
        F.local_response_norm_backward(np.ones((2, 4, 3)), np.ones((2, 4, 3)), -1)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(p=-0.1), ValueError, "p "),
    (dict(p=1.5), ValueError, "p "),
    (dict(p=float("nan")), ValueError, "p "),
    (dict(p=None), TypeError, "p "),
    (dict(p=-0.1, training=False), ValueError, "p "),
    (dict(generator=3), TypeError, "generator"),
    (dict(input=[1.0]), TypeError, "input"),
    (dict(input=np.ones(3, dtype=np.int64)), TypeError, "input"),
    (dict(training="False"), TypeError, "training"),  # was read as bool("False"), True
    (dict(inplace="no"), TypeError, "inplace"),  # was read as True: the input overwritten
    (dict(return_mask=0), TypeError, "return_mask"),
])
def test_dropout_errors(kw, exc, match):
    args = dict(input=np.ones((2, 3)), p=0.5)
    args.update(kw)
    with pytest.raises(exc, match=match):
        F.dropout(**args)


@pytest.mark.parametrize("mask, p, exc, match", [
    (np.ones((3, 2), np.uint8), 0.5, ValueError, "mask"),
    (np.ones((2, 3), np.float64), 0.5, TypeError, "mask"),
    (None, 0.5, TypeError, "mask"),
    (np.ones((2, 3), np.uint8), 2.0, ValueError, "p "),
])
def test_dropout_backward_errors(mask, p, exc, match):
    with pytest.raises(exc, match=match):
        F.dropout_backward(np.ones((2, 3)), mask, p)


def test_norm_results_independent_of_thread_count():
    """Statistics are reduced over fixed chunks in a fixed order: bit-identical for 1 and 2
    threads (shapes large enough for the parallel loops)."""
    x, rm, rv, w, b, dy = _bn_data((3, 4, 100, 121), np.float32, 31)
    xl = x[:, :, :60].copy()  # 72600 elements: above the parallel threshold
    before = fastconv.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            rm1, rv1 = rm.copy(), rv.copy()
            out, sm, si = F.batch_norm(x, rm1, rv1, w, b, True, return_stats=True)
            grads = F.batch_norm_backward(dy, x, w, sm, si, True)
            lrn = F.local_response_norm(xl, 3)
            lrn_dx = F.local_response_norm_backward(xl, xl, 3)
            results.append((out, sm, si, rm1, rv1) + grads + (lrn, lrn_dx))
    finally:
        fastconv.set_num_threads(before)
    for a, b1 in zip(*results):
        assert np.array_equal(a, b1)


@pytest.mark.parametrize("shape", [(3, 3, 100, 121), (1, 4, 400, 401)], ids=["C3", "big_plane"])
def test_batch_norm_backward_paths_agree_bitwise(shape):
    """Training-mode backward goes a channel at a time (sums, then dx while the channel is in
    cache) when there are at least two channels per thread and a channel's x and dy fit 1 MiB,
    else sums for all channels then dx: both reduce the same chunks in the same order, so the
    results are bit-identical. C = 3 takes the first path on 1 thread and the second on 2; a
    4 x 160400 channel is too big for the first. Each is checked against the reference too."""
    x, _, _, w, _, dy = _bn_data(shape, np.float32, 32)
    _, sm, si = F.batch_norm(x, None, None, w, None, True, return_stats=True)
    before = fastconv.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            results.append(F.batch_norm_backward(dy, x, w, sm, si, True))
    finally:
        fastconv.set_num_threads(before)
    for a, b1 in zip(*results):
        assert np.array_equal(a, b1)
    _, mean, invstd, _, _ = batch_norm_ref(x, None, None, w, None, True, 0.1, 1e-5)
    want = batch_norm_backward_ref(dy, x, w, mean, invstd, True)
    for got, ref, what in zip(results[0], want, ("grad_input", "grad_weight", "grad_bias")):
        assert_close(got, ref, _rtol(np.float32), what=what)


def test_batch_norm_refuses_a_read_only_strided_statistic_before_updating_either():
    """It ran, updated running_var, then failed writing running_mean back (NumPy's message)."""
    x = np.random.default_rng(0).standard_normal((8, 3, 5)).astype(np.float32)
    rm = np.zeros(6, np.float32)[::2]
    rm.flags.writeable = False
    rv = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="batch_norm: running_mean must be writable"):
        F.batch_norm(x, rm, rv, training=True)
    np.testing.assert_array_equal(rv, np.ones(3, np.float32))
