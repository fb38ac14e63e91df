"""Size limits of the CUDA twins, refused before any allocation (see test_limits.py for the
CPU's). The CUDA convolution and linear kernels index one image in 32 bits with a tile of
headroom: at most 2^30 - 1 rows, pixels, reductions, padded extents and strided spans, tighter
than the CPU's BLAS, so the same call can be valid on the CPU and refused on the GPU.

The arrays are objects exposing only a CUDA array interface whose pointer is never read: every
call here is refused by the geometry, before an output could be allocated (no_allocation fails
the test otherwise) or a kernel launched. They need a CUDA build, not a GPU, so they also run
on the CUDA emulator (tools/cuda_emu). The last test runs kernels: it needs a GPU (or the
emulator).
"""

import sys

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv._loader import _C

from _cuda import dev, host, requires_cuda
from fastconv._opinfo.conv import conv2d_backward_ref

pytestmark = pytest.mark.skipif(not fastconv.info()["cuda_built"],
                                reason="build: CPU-only, CUDA arrays are refused as a whole")

CUDA = r"more than 1073741823 \(2\^30 - 1\), the largest size the CUDA kernels index in 32 bits"


class FakeCudaArray:
    """Only the CUDA array interface, C-contiguous; its data is never read."""

    def __init__(self, shape, typestr="<f4"):
        self.shape, self.dtype = tuple(shape), np.dtype(typestr)
        self.ndim = len(self.shape)
        self.__cuda_array_interface__ = {"shape": self.shape, "typestr": typestr,
                                         "data": (0x10000, False), "strides": None,
                                         "version": 3, "stream": 1}


def _d(*shape):
    return FakeCudaArray(shape)


REFUSED = [
    pytest.param(lambda: F.conv2d(_d(1, 1, 3, 3), _d(1, 1, 3, 3), padding=2**14),
                 rf"conv2d: output \(1, 1, 32769, 32769\) has P\*Q = {32769**2}, {CUDA}",
                 id="conv2d-output"),
    pytest.param(lambda: F.conv2d(_d(1, 1, 1, 1), _d(1, 1, 1, 1), padding=(2**29, 0),
                                  stride=(2**30, 1)),
                 rf"conv2d: input \(1, 1, 1, 1\) has H \+ padding \(536870912, 536870912, 0, 0\) "
                 rf"rows = {2**30 + 1}, {CUDA}", id="conv2d-padded-rows"),
    pytest.param(lambda: F.conv2d(_d(1, 1, 1, 1), _d(1, 1, 2, 1), padding=(2**28, 0),
                                  dilation=(2**29, 1)),
                 rf"conv2d: weight \(1, 1, 2, 1\) has R\*dilation_h \(dilation_h = 536870912\) = "
                 rf"{2**30}, {CUDA}", id="conv2d-dilated-span"),
    pytest.param(lambda: F.conv2d(_d(1, 1, 2**15, 2**15 + 1), _d(1, 1, 1, 1)),
                 rf"conv2d: input \(1, 1, 32768, 32769\) has H\*W = {2**15 * (2**15 + 1)}, {CUDA}",
                 id="conv2d-input"),
    pytest.param(lambda: F.conv2d_backward(_d(1, 2**15, 1, 1), _d(1, 1, 2**8, 2**8),
                                           _d(2**15, 1, 2**8, 2**8)),
                 rf"conv2d_backward: weight \(32768, 1, 256, 256\) has K\*R\*S = {2**31}, {CUDA}",
                 id="conv2d_backward-weight"),
    pytest.param(lambda: F.conv_transpose2d(_d(1, 1, 3, 3), _d(1, 1, 1, 1), stride=2**14),
                 rf"conv_transpose2d: output \(1, 1, 32769, 32769\) has H\*W = {32769**2}, {CUDA}",
                 id="conv_transpose2d"),
    pytest.param(lambda: F.unfold(_d(1, 1, 2**15, 2**15 + 1), 1),
                 rf"unfold: input \(1, 1, 32768, 32769\) has H\*W", id="unfold"),
    pytest.param(lambda: F.fold(_d(1, 1, 1), (2**15, 2**15 + 1), 1, stride=2**15 + 1),
                 rf"fold: output \(1, 1, 32768, 32769\) has H\*W", id="fold"),
    pytest.param(lambda: F.linear(_d(2**30, 1), _d(3, 1)),
                 rf"linear: input \(1073741824, 1\) has 1073741824 rows \(the product of its "
                 rf"leading dimensions\), {CUDA}", id="linear-rows"),
    pytest.param(lambda: F.linear_backward(_d(1, 2**30), _d(1, 2), _d(2**30, 2)),
                 rf"linear_backward: weight \(1073741824, 2\) has in_features = 2 and "
                 rf"out_features = 1073741824; each must be at most 1073741823",
                 id="linear-features"),
    pytest.param(lambda: F.adaptive_avg_pool2d(_d(1, 1, 1, 1), (2**31 - 1, 2**30)),
                 r"adaptive_avg_pool2d: output \(1, 1, 2147483647, 1073741824\) would have "
                 r"2305843008139952128 elements", id="pool-numel"),
]


@pytest.mark.parametrize("call, message", REFUSED)
def test_cuda_limits_refused_before_allocation(no_allocation, call, message):
    with pytest.raises(ValueError, match=message):
        call()


class _Allocated(Exception):
    """Raised by an allocator that only records the shape asked for."""


def test_cuda_limits_are_tighter_than_the_cpu_ones(no_allocation, monkeypatch):
    # The same geometry: valid for NumPy arrays (up to 2^31 - 1), refused for CUDA arrays.
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (1, 1, 2**15, 2**15 + 1),
                                        (0, 0, 4 * (2**15 + 1), 4), writeable=False)
    w = np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=CUDA):
        F.conv2d(_d(1, 1, 2**15, 2**15 + 1), _d(1, 1, 1, 1))

    def shape_only(like, shape, dtype=None):
        raise _Allocated(tuple(shape))

    monkeypatch.setattr(sys.modules["fastconv.functional._conv"], "empty", shape_only)
    with pytest.raises(_Allocated) as allocated:
        F.conv2d(x, w)
    assert allocated.value.args[0] == (1, 1, 2**15, 2**15 + 1)


@pytest.mark.parametrize("shape", [(2**62, 2**62), (-1, 4), (2**61, 1)],
                         ids=["overflowing", "negative", "too-many"])
def test_cuda_array_interface_shape_must_be_an_array_shape(shape):
    with pytest.raises(ValueError, match=r"relu: input \(a CUDA array\) declares shape "
                                         r".* which is not the shape of an array"):
        _C.relu_forward(_d(*shape), _d(*shape))


@pytest.mark.parametrize("stride, padding, x_shape, w_shape", [
    ((2**29, 2**29), 0, (1, 1, 1, 1), (1, 1, 1, 1)),
    ((3, 9), 1, (2, 2, 5, 7), (3, 2, 3, 3)),
], ids=["stride-2^29", "stride-past-the-image"])
@requires_cuda
def test_cuda_conv2d_backward_with_a_stride_past_the_image(poisoned, stride, padding, x_shape,
                                                          w_shape):
    # The data gradient visits the stride phases that hold pixels, min(H, stride_h) by
    # min(W, stride_w) of them; it used to step through all stride_h * stride_w (2^58 here).
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    P = (x_shape[2] + 2 * padding - w_shape[2]) // stride[0] + 1
    Q = (x_shape[3] + 2 * padding - w_shape[3]) // stride[1] + 1
    dy = rng.standard_normal((x_shape[0], w_shape[0], P, Q))
    got = host(F.conv2d_backward(*dev(dy, x, w), stride=stride, padding=padding))
    want = conv2d_backward_ref(dy, x, w, stride=stride, padding=padding)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
