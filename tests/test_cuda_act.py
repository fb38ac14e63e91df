"""Activations and softmax on the GPU: CuPy in, CuPy out, against the float64 NumPy reference
and the CPU kernel, on odd shapes, batch 1, NaN/inf and the kinks. Outputs are poisoned."""

import numpy as np
import pytest

import fastconv.functional as F

from fastconv._opinfo import act as R
from _cuda import cover, covering, dev, host, requires_cuda
from _util import stable_seed
from test_act import DTYPE_IDS, DTYPES, ELEMENTWISE, INPLACE, OPS, SPEC_OF, assert_matches

pytestmark = requires_cuda

SHAPES = covering([(), (1,), (7,), (1, 3, 5, 7), (0,), (2, 64, 33, 17), (3, 1000, 37)],
                  (1, 3, 5, 7))
SHAPE_IDS = ["0d", "1", "7", "batch1", "empty", "conv_map", "large"]


def _data(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = np.asarray(3.0 * rng.standard_normal(shape)).astype(dtype)
    if x.size > 8:
        flat = x.reshape(-1)
        flat[:4] = [0.0, np.nan, np.inf, -np.inf]
    g = np.asarray(rng.standard_normal(shape)).astype(dtype)
    return x, g


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", OPS)
def test_elementwise_gpu(name, shape, dtype, poisoned):
    fwd, bwd, ref, ref_bwd, kw = ELEMENTWISE[name]
    x, g = _data(shape, dtype, stable_seed(name, shape))
    y = fwd(dev(x), **kw)
    assert type(y).__module__.startswith("cupy") and y.dtype == dtype and y.shape == x.shape
    with np.errstate(all="ignore"):
        y64 = ref(x.astype(np.float64), **kw)
        dx64 = ref_bwd(g.astype(np.float64), x.astype(np.float64), **kw)
    assert_matches(host(y), y64, dtype, f"{name} forward")
    assert_matches(host(y), fwd(x, **kw), dtype, f"{name} forward vs CPU")
    assert_matches(host(bwd(dev(g), dev(x), **kw)), dx64, dtype, f"{name} backward")
    if SPEC_OF[name].output_backward:
        assert_matches(host(bwd(dev(g), output=y)), dx64, dtype, f"{name} backward from output")


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_gpu(name):
    fwd, _, ref, _, kw = ELEMENTWISE[name]
    x, _ = _data((2, 3, 5, 7), np.float32, 3)
    xd = dev(x)
    out = fwd(xd, inplace=True, **kw)
    assert out is xd
    assert_matches(host(xd), ref(x.astype(np.float64), **kw), np.float32, name)
    yd = dev(x)  # a strided view is written through, the elements between kept
    view = yd[:, ::2]
    assert fwd(view, inplace=True, **kw) is view
    want = x.copy()
    want[:, ::2] = ref(x[:, ::2].astype(np.float64), **kw)
    assert_matches(host(yd), want, np.float32, f"{name} through a view")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
# kernel_cover: a row per block (inner 1) and a lane per (outer, inner) position.
@pytest.mark.parametrize("shape,dim", [cover((1, 10), 1), ((7, 1000), -1), cover((2, 3, 5, 7), 1),
                                       ((2, 3, 5, 7), 0), ((4, 3, 2), 2), ((3, 2049), 1)])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_gpu(log, shape, dim, dtype, poisoned):
    rng = np.random.default_rng(stable_seed(log, shape, dim))
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    fwd, bwd = (F.log_softmax, F.log_softmax_backward) if log else (F.softmax, F.softmax_backward)
    ref, ref_bwd = ((R.log_softmax_ref, R.log_softmax_backward_ref) if log
                    else (R.softmax_ref, R.softmax_backward_ref))
    y = fwd(dev(x), dim=dim)
    y64 = ref(x.astype(np.float64), dim)
    assert_matches(host(y), y64, dtype, "forward")
    dx = bwd(dev(g), y, dim)
    assert_matches(host(dx), ref_bwd(g.astype(np.float64), y64, dim), dtype, "backward")


def test_softmax_nan_rows_gpu():
    x = np.array([[1.0, np.nan, 2.0], [-np.inf, -np.inf, -np.inf], [0.0, np.inf, 1.0]],
                 np.float32)
    assert_matches(host(F.softmax(dev(x), dim=1)), F.softmax(x, dim=1), np.float32, "nan rows")


def test_devices_do_not_mix():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="grad_output is on the GPU"):
        F.relu_backward(dev(x), x)
