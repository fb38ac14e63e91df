"""batch_norm, local_response_norm and dropout vs PyTorch (skipped when torch is not installed).

Gradients on the torch side come from torch.autograd.grad through torch.nn.functional; float32
inputs are compared against torch computing in float64 on the same values, except in the
*_float32_native tests.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import fastconv.functional as F  # noqa: E402

from _util import assert_close, rand  # noqa: E402

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def _rtol(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


def _t(a, grad=False):
    if a is None:
        return None
    t = torch.from_numpy(np.array(a, dtype=np.float64))
    return t.requires_grad_(True) if grad else t


# ---------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------

# shape, training, affine, momentum, eps
BN_CASES = [
    ((6, 4), True, True, 0.1, 1e-5),
    ((6, 4), False, True, 0.1, 1e-5),
    ((1, 3, 9), True, True, 0.1, 1e-5),          # batch 1, spatial > 1
    ((5, 3, 7), True, False, 0.3, 1e-3),
    ((5, 3, 7), False, False, 0.3, 1e-3),
    ((2, 3, 5, 6), True, True, 0.0, 1e-5),       # momentum 0
    ((2, 3, 5, 6), True, True, 1.0, 1e-5),       # momentum 1
    ((2, 3, 5, 6), False, True, 0.1, 0.0),       # eval allows eps = 0
    ((1, 2, 3, 5), True, False, 0.1, 1e-5),
    ((3, 5, 1, 1), True, True, 0.1, 1e-5),
    ((2, 4, 17, 19), True, True, 0.1, 1e-5),
    ((3, 2, 100, 121), True, True, 0.1, 1e-5),   # several chunks per channel
    ((3, 2, 100, 121), False, True, 0.1, 1e-5),
    ((2, 3, 2, 3, 4), True, True, 0.1, 1e-5),    # 5-D
    ((4, 3, 6), True, True, 1.5, 1e-5),          # torch does not restrict momentum to [0, 1]
]


def _bn_case_id(case):
    shape, training, affine, momentum, eps = case
    return (f"{'x'.join(map(str, shape))}-{'train' if training else 'eval'}-"
            f"{'affine' if affine else 'plain'}-m{momentum}-e{eps}")


def _torch_bn(x, rm, rv, w, b, training, momentum, eps, dy):
    xt, wt, bt = _t(x, True), _t(w, w is not None), _t(b, b is not None)
    rmt, rvt = _t(rm), _t(rv)
    out = TF.batch_norm(xt, rmt, rvt, wt, bt, training, momentum, eps)
    inputs = [t for t in (xt, wt, bt) if t is not None]
    grads = torch.autograd.grad(out, inputs, _t(dy))
    return out.detach().numpy(), rmt.numpy(), rvt.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", BN_CASES, ids=_bn_case_id)
def test_batch_norm_torch(case, dtype):
    shape, training, affine, momentum, eps = case
    rng = np.random.default_rng(sum(shape) + int(training))
    C = shape[1]
    x = rand(rng, shape, dtype) * 2 + 1
    rm, rv = rand(rng, (C,), dtype), (rng.random(C) + 0.5).astype(dtype)
    w = rand(rng, (C,), dtype) if affine else None
    b = rand(rng, (C,), dtype) if affine else None
    dy = rand(rng, shape, dtype)
    ref, rm_ref, rv_ref, grads = _torch_bn(x, rm, rv, w, b, training, momentum, eps, dy)

    rm1, rv1 = rm.copy(), rv.copy()
    out, sm, si = F.batch_norm(x, rm1, rv1, w, b, training, momentum, eps, return_stats=True)
    tol = _rtol(dtype)
    assert_close(out, ref, tol, what="out")
    assert_close(rm1, rm_ref, tol, what="running_mean")
    assert_close(rv1, rv_ref, tol, what="running_var")
    dx, dw, db = F.batch_norm_backward(dy, x, w, sm, si, training)
    assert_close(dx, grads[0], tol, what="grad_input")
    if affine:
        assert_close(dw, grads[1], tol, what="grad_weight")
        assert_close(db, grads[2], tol, what="grad_bias")


def test_batch_norm_torch_running_stats_after_several_steps():
    rng = np.random.default_rng(40)
    rm, rv = np.zeros(5), np.ones(5)
    rmt, rvt = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    for step in range(6):
        x = rng.standard_normal((4, 5, 3, 3)) * (1 + step) - step
        F.batch_norm(x, rm, rv, training=True, momentum=0.1)
        TF.batch_norm(torch.from_numpy(x), rmt, rvt, training=True, momentum=0.1)
    assert_close(rm, rmt.numpy(), 1e-12)
    assert_close(rv, rvt.numpy(), 1e-12)


def test_batch_norm_torch_bias_without_weight():
    rng = np.random.default_rng(41)
    x, dy = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    b = rng.standard_normal(4)
    xt, bt = _t(x, True), _t(b, True)
    out = TF.batch_norm(xt, None, None, None, bt, training=True)
    gx, gb = torch.autograd.grad(out, (xt, bt), _t(dy))
    y, sm, si = F.batch_norm(x, None, None, None, b, training=True, return_stats=True)
    assert_close(y, out.detach().numpy(), 1e-10)
    dx, dw, db = F.batch_norm_backward(dy, x, None, sm, si, training=True)
    assert dw is None
    assert_close(dx, gx.numpy(), 1e-10)
    assert_close(db, gb.numpy(), 1e-10)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_torch_float32_native(training):
    rng = np.random.default_rng(42)
    x = rng.standard_normal((4, 6, 9, 7), dtype=np.float32) * 3 + 2
    rm, rv = rng.standard_normal(6, dtype=np.float32), rng.random(6, dtype=np.float32) + 0.5
    w, b = rng.standard_normal(6, dtype=np.float32), rng.standard_normal(6, dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    out = TF.batch_norm(xt, rmt, rvt, torch.from_numpy(w), torch.from_numpy(b), training)
    (gx,) = torch.autograd.grad(out, (xt,), torch.from_numpy(dy))
    y, sm, si = F.batch_norm(x, rm, rv, w, b, training, return_stats=True)
    assert_close(y, out.detach().numpy(), 2e-5)
    assert_close(rm, rmt.numpy(), 2e-5)
    assert_close(rv, rvt.numpy(), 2e-5)
    assert_close(F.batch_norm_backward(dy, x, w, sm, si, training)[0], gx.numpy(), 2e-5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_torch_nan_inf(training):
    rng = np.random.default_rng(43)
    x = rng.standard_normal((4, 3, 5))
    x[1, 0, 2] = np.nan
    x[2, 1, 3] = np.inf
    x[0, 1, 0] = -np.inf
    rm, rv = np.zeros(3), np.ones(3)
    rmt, rvt = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    out = F.batch_norm(x, rm, rv, training=training)
    ref = TF.batch_norm(torch.from_numpy(x), rmt, rvt, training=training).numpy()
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    assert np.array_equal(np.isposinf(out), np.isposinf(ref))
    assert np.array_equal(np.isneginf(out), np.isneginf(ref))
    fin = np.isfinite(ref)
    assert_close(out[fin], ref[fin], 1e-10)
    assert np.array_equal(np.isnan(rm), np.isnan(rmt.numpy()))
    assert np.array_equal(np.isnan(rv), np.isnan(rvt.numpy()))


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4), (2, 3, 0), (0, 3, 2, 2)])
def test_batch_norm_torch_empty_batch_in_training(shape):
    """No values per channel: torch returns the empty output, keeps the running statistics and
    gives zero parameter gradients; fastconv refused it as if it had one value."""
    x = np.zeros(shape)
    rm, rv = np.full(3, 0.5), np.full(3, 2.0)
    w, b = np.full(3, 1.5), np.full(3, 0.25)
    out, rmt, rvt, grads = _torch_bn(x, rm.copy(), rv.copy(), w, b, True, 0.1, 1e-5, x)
    y, mean, invstd = F.batch_norm(x, rm, rv, w, b, training=True, return_stats=True)
    assert y.shape == out.shape == shape
    np.testing.assert_array_equal(rm, rmt)
    np.testing.assert_array_equal(rv, rvt)
    dx, dw, db = F.batch_norm_backward(x, x, w, mean, invstd, training=True)
    assert dx.shape == shape
    np.testing.assert_array_equal(dw, grads[1])
    np.testing.assert_array_equal(db, grads[2])


@pytest.mark.parametrize("kw, match", [
    (dict(input=np.ones((1, 3)), training=True), "more than 1 value"),
    (dict(eps=0.0, training=True), "eps"),
    (dict(eps=-1.0, training=False), "eps"),
])
def test_batch_norm_torch_rejects_alike(kw, match):
    """Where torch raises ValueError, so does fastconv."""
    args = dict(input=np.ones((2, 3)), running_mean=np.zeros(3), running_var=np.ones(3))
    args.update(kw)
    with pytest.raises(ValueError):
        TF.batch_norm(*(torch.from_numpy(args[k]) for k in ("input", "running_mean",
                                                             "running_var")),
                      training=args.get("training", False), eps=args.get("eps", 1e-5))
    with pytest.raises(ValueError, match=match):
        F.batch_norm(**args)


# ---------------------------------------------------------------------------
# local_response_norm
# ---------------------------------------------------------------------------

# shape, size, alpha, beta, k
LRN_CASES = [
    ((2, 7, 5, 6), 1, 1e-4, 0.75, 1.0),
    ((2, 7, 5, 6), 2, 0.5, 0.75, 1.0),
    ((2, 7, 5, 6), 3, 0.5, 0.75, 2.0),
    ((2, 7, 5, 6), 4, 0.5, 0.6, 1.0),
    ((2, 7, 5, 6), 5, 1e-4, 0.75, 1.0),
    ((1, 3, 4, 4), 5, 0.8, 0.75, 1.0),           # C < size
    ((1, 2, 3, 3), 6, 0.8, 1.0, 0.5),            # C < size, even
    ((2, 6, 9), 3, 0.5, 0.75, 1.0),              # 3-D
    ((2, 6, 9), 2, 0.5, 0.5, 1.0),
    ((2, 5, 3, 4, 2), 3, 0.5, 0.75, 1.0),        # 5-D
    ((3, 16, 33, 33), 5, 0.3, 0.75, 2.0),        # parallel, several column blocks
    ((2, 96, 13, 13), 5, 1e-4, 0.75, 2.0),       # AlexNet's setting
    ((2, 8, 4, 4), 7, 2.0, 1.3, 0.7),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", LRN_CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-s{c[1]}"
                         f"-b{c[3]}")
def test_local_response_norm_torch(case, dtype):
    shape, size, alpha, beta, k = case
    rng = np.random.default_rng(size + len(shape) * 7)
    x = rand(rng, shape, dtype) * 3
    dy = rand(rng, shape, dtype)
    xt = _t(x, True)
    out = TF.local_response_norm(xt, size, alpha, beta, k)
    (gx,) = torch.autograd.grad(out, (xt,), _t(dy))
    assert_close(F.local_response_norm(x, size, alpha, beta, k), out.detach().numpy(),
                 _rtol(dtype), what="out")
    assert_close(F.local_response_norm_backward(dy, x, size, alpha, beta, k), gx.numpy(),
                 _rtol(dtype), what="grad_input")


def test_local_response_norm_torch_float32_native():
    rng = np.random.default_rng(44)
    x = rng.standard_normal((2, 12, 7, 7), dtype=np.float32) * 5
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = TF.local_response_norm(xt, 5, 1e-2, 0.75, 1.0)
    (gx,) = torch.autograd.grad(out, (xt,), torch.from_numpy(dy))
    assert_close(F.local_response_norm(x, 5, 1e-2, 0.75, 1.0), out.detach().numpy(), 2e-5)
    assert_close(F.local_response_norm_backward(dy, x, 5, 1e-2, 0.75, 1.0), gx.numpy(), 2e-5)


def test_local_response_norm_torch_nan_inf():
    x = rand(np.random.default_rng(45), (2, 7, 3, 3), np.float64)
    x[0, 2, 0, 0] = np.inf
    x[0, 4, 1, 1] = np.nan
    x[1, 0, 2, 2] = -np.inf
    ref = TF.local_response_norm(torch.from_numpy(x), 4, 0.5).numpy()
    out = F.local_response_norm(x, 4, 0.5)
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    fin = np.isfinite(ref)
    assert np.isfinite(out).sum() == fin.sum()
    assert_close(out[fin], ref[fin], 1e-10)


@pytest.mark.parametrize("alpha,beta,k", [(0.0, 0.0, 0.0), (1e-4, 0.0, 2.0), (0.0, 0.75, 1.0)])
def test_local_response_norm_torch_backward_without_cross_term(alpha, beta, k):
    """beta 0: the cross term was 0 times a sum that may be inf or NaN (k 0, or a non-finite
    neighbour), NaN across the window; torch gives dy, NaN only where x itself is not finite.
    alpha 0 (beta not): torch's product with alpha passes the neighbours' NaN on, as ours."""
    x = rand(np.random.default_rng(46), (2, 5, 3), np.float64)
    x[0, 2, 1] = np.nan
    x[1, 3, 0] = np.inf
    dy = rand(np.random.default_rng(47), x.shape, np.float64)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = TF.local_response_norm(xt, 3, alpha, beta, k)
    (gx,) = torch.autograd.grad(out, (xt,), torch.from_numpy(dy))
    ours = F.local_response_norm_backward(dy, x, 3, alpha, beta, k)
    assert np.array_equal(np.isnan(ours), np.isnan(gx.numpy()))
    fin = np.isfinite(gx.numpy())
    if beta == 0:
        assert fin.sum() == x.size - 2
    assert_close(ours[fin], gx.numpy()[fin], 1e-12)


def test_local_response_norm_torch_zero_denominator():
    x = np.zeros((1, 3, 2, 2))
    ref = TF.local_response_norm(torch.from_numpy(x), 2, k=0.0).numpy()
    assert np.isnan(ref).all()
    assert np.isnan(F.local_response_norm(x, 2, k=0.0)).all()


# ---------------------------------------------------------------------------
# dropout: masks are random on both sides, so torch's arithmetic is applied to fastconv's mask
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_dropout_torch_arithmetic(p, dtype):
    x = rand(np.random.default_rng(46), (4, 6, 5, 5), dtype)
    x.ravel()[:8] = [np.nan, np.inf, -np.inf, np.nan, np.inf, -np.inf, 0.0, -0.0]
    out, mask = F.dropout(x, p, return_mask=True)
    xt, mt = torch.from_numpy(x), torch.from_numpy(mask.astype(bool))
    if p == 1:
        ref = TF.dropout(xt, p)  # torch's shortcut: input * 0
        assert not mask.any()
    elif p == 0:
        ref = TF.dropout(xt, p)  # torch returns the input
        assert mask.all()
    else:
        ref = xt * mt * (1.0 / (1.0 - p))  # aten native_dropout's formula
    assert np.array_equal(out, ref.numpy(), equal_nan=True)
    dy = rand(np.random.default_rng(47), x.shape, dtype)
    dref = torch.ops.aten.native_dropout_backward(torch.from_numpy(dy), mt,
                                                  1.0 / (1.0 - p) if p < 1 else 0.0)
    assert np.array_equal(F.dropout_backward(dy, mask, p), dref.numpy())


def test_dropout_torch_eval_is_identity():
    x = rand(np.random.default_rng(48), (3, 4), np.float32)
    assert np.array_equal(F.dropout(x, 0.7, training=False),
                          TF.dropout(torch.from_numpy(x), 0.7, training=False).numpy())


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_torch_same_keep_rate(p):
    """Both keep a fraction 1 - p; each within 5 binomial standard deviations."""
    n = 100_000
    x = np.ones(n, dtype=np.float32)
    torch.manual_seed(0)
    kept_torch = float((TF.dropout(torch.from_numpy(x), p) != 0).double().mean())
    kept = float(F.dropout(x, p, generator=np.random.default_rng(0), return_mask=True)[1].mean())
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(kept_torch - (1 - p)) < 5 * sd and abs(kept - (1 - p)) < 5 * sd


@pytest.mark.parametrize("p", [-0.1, 1.1])
def test_dropout_torch_rejects_alike(p):
    with pytest.raises(ValueError):
        TF.dropout(torch.ones(3), p)
    with pytest.raises(ValueError, match="p "):
        F.dropout(np.ones(3), p)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_dropout2d_torch_arithmetic(p, dtype):
    """Whole (sample, channel) planes: torch's feature dropout (input * noise, noise the mask
    divided by 1 - p) applied to fastconv's mask gives fastconv's output bit for bit, and the
    backward is grad_output * noise."""
    x = rand(np.random.default_rng(49), (5, 7, 3, 4), dtype)
    x.ravel()[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, np.inf]
    out, mask = F.dropout2d(x, p, return_mask=True)
    assert mask.shape == (5, 7, 1, 1) and mask.dtype == np.uint8
    xt = torch.from_numpy(x)
    if p in (0.0, 1.0):  # torch's shortcuts: the input itself, input * 0
        ref = TF.dropout2d(xt, p)
        assert mask.all() if p == 0 else not mask.any()
    else:
        noise = torch.from_numpy(mask).to(xt.dtype).div_(1 - p)
        ref = xt * noise
    assert np.array_equal(out, ref.numpy(), equal_nan=True)
    dy = rand(np.random.default_rng(50), x.shape, dtype)
    if 0 < p < 1:
        assert np.array_equal(F.dropout2d_backward(dy, mask, p), (torch.from_numpy(dy)
                                                                  * noise).numpy())


def test_dropout2d_torch_keep_rate_ranks_and_layer():
    n = 20_000
    kept = float(F.dropout2d(np.ones((n, 5, 2, 2), np.float32), 0.4,
                             generator=np.random.default_rng(1), return_mask=True)[1].mean())
    assert abs(kept - 0.6) < 5 * (0.4 * 0.6 / (5 * n)) ** 0.5
    with pytest.warns(UserWarning, match=r"\(N, C, L\)"):
        out, mask = F.dropout2d(np.ones((3, 4, 6)), 0.5, return_mask=True)
    assert mask.shape == (3, 4, 1)
    with pytest.raises(ValueError, match="at least 2 dimensions"):  # torch: RuntimeError
        F.dropout2d(np.ones(5), 0.5)
    from fastconv import nn
    layer = nn.Dropout2d(0.25)
    assert repr(layer) == repr(torch.nn.Dropout2d(0.25))
    x = rand(np.random.default_rng(51), (4, 6, 3, 3), np.float64)
    y = layer(x)
    planes = y.reshape(24, 9)
    assert all((row == 0).all() or np.allclose(row, x.reshape(24, 9)[i] / 0.75)
               for i, row in enumerate(planes))
    dy = np.ones_like(x)
    assert np.array_equal(layer.backward(dy) == 0, y == 0)
    layer.eval()
    assert layer(x) is x and layer.backward(dy) is dy
