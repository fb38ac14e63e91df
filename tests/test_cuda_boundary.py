"""The CUDA array boundary without a GPU: objects exposing __cuda_array_interface__ are read,
checked and refused by name before any launch, and with no usable device a call is a
RuntimeError, never a crash. These run on every machine (CI has no GPU)."""

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv._loader import _C

BUILT = fastconv.info()["cuda_built"]
# A CPU-only build refuses a CUDA array whole, before reading its interface (tested below).
needs_cuda_build = pytest.mark.skipif(not BUILT, reason="build: CPU-only, CUDA arrays are refused "
                                      "as a whole (test_cpu_only_build_refuses_cuda_arrays)")


class FakeCudaArray:
    """Only the CUDA array interface: a pointer no kernel is launched on unless all checks pass."""

    def __init__(self, shape, typestr="<f4", strides=None, readonly=False, ptr=0x10000):
        self.shape, self.dtype = tuple(shape), np.dtype(typestr)
        self.__cuda_array_interface__ = {
            "shape": self.shape, "typestr": typestr, "data": (ptr, readonly),
            "strides": strides, "version": 3, "stream": 1}


@needs_cuda_build
def test_dtype_is_checked_by_name():
    with pytest.raises(TypeError, match=r"relu: input must be float32 or float64, got int32"):
        _C.relu_forward(FakeCudaArray((3,), "<i4"), FakeCudaArray((3,), "<i4"))


@needs_cuda_build
def test_strided_array_is_refused():
    x = FakeCudaArray((4, 6), strides=(48, 8))
    with pytest.raises(ValueError, match="input must be C-contiguous"):
        _C.relu_forward(FakeCudaArray((4, 6)), x)


@needs_cuda_build
def test_readonly_output_is_refused():
    with pytest.raises(ValueError, match="out must be writable"):
        _C.relu_forward(FakeCudaArray((3,), readonly=True), FakeCudaArray((3,)))


def test_c_contiguous_strides_are_accepted_up_to_the_launch():
    """Explicit C strides (size-1 dims ignored) pass the checks; with no usable GPU the launch
    is a RuntimeError naming what failed, with a GPU it runs on this bogus pointer, so only
    without one is this test meaningful."""
    if not fastconv.info()["cuda_device"].startswith("none"):
        pytest.skip("GPU present: launching on a fake pointer would fault")
    x = FakeCudaArray((4, 1, 6), strides=(24, 999, 4))
    with pytest.raises(RuntimeError, match="CUDA"):
        _C.relu_forward(FakeCudaArray((4, 1, 6)), x)


@needs_cuda_build
def test_devices_do_not_mix():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"out is on the CPU .* but input is on the GPU"):
        _C.relu_forward(x, FakeCudaArray((2, 3)))
    with pytest.raises(ValueError, match=r"grad_output is on the GPU .* but input is on the CPU"):
        F.relu_backward(FakeCudaArray((2, 3)), x)


@needs_cuda_build
def test_shape_is_checked_before_launch():
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3\)"):
        _C.relu_forward(FakeCudaArray((3, 2)), FakeCudaArray((2, 3)))


@pytest.mark.skipif(BUILT, reason="build: this one has CUDA")
def test_cpu_only_build_refuses_cuda_arrays():
    with pytest.raises(RuntimeError, match="relu: input is a CUDA array .* built without CUDA"):
        _C.relu_forward(FakeCudaArray((3,)), FakeCudaArray((3,)))
    with pytest.raises(RuntimeError, match="built without CUDA"):
        F.relu_backward(np.ones(3, np.float32), FakeCudaArray((3,)))


@needs_cuda_build
@pytest.mark.parametrize("typestr, ptr, size", [("<f4", 0x10002, 4), ("<f4", 0x10001, 4),
                                                 ("<f8", 0x10004, 8)])
def test_a_misaligned_pointer_is_refused_before_any_launch(typestr, ptr, size):
    """A GPU faults on a misaligned element load, and that fault ends the CUDA context."""
    with pytest.raises(ValueError, match=rf"input \(a CUDA array\) starts at address "
                                         rf"0x{ptr:x}, which is not a multiple of its "
                                         rf"{size}-byte element size"):
        _C.relu_forward(FakeCudaArray((2, 3)), FakeCudaArray((2, 3), typestr, ptr=ptr))
    # an empty array points nowhere in particular: nothing to load, nothing launched
    empty = FakeCudaArray((0,))
    assert _C.relu_forward(empty, FakeCudaArray((0,), "<f4", ptr=0x10002)) is empty


@needs_cuda_build
@pytest.mark.parametrize("interface, match", [
    (dict(shape=(3,), typestr="<f4", version=3), r"KeyError: 'data'"),
    (dict(shape=(3,), typestr="<f4", data=(0x10000,), version=3),
     r"data must be \(pointer, read_only\)"),
    (dict(shape=(3,), typestr="<f4", data=(-1, False), version=3), "a field of the wrong type"),
    (dict(shape=(3,), typestr=4, data=(0x10000, False), version=3), "a field of the wrong type"),
    (dict(shape=(2, 3), typestr="<f4", data=(0x10000, False), strides=(4,), version=3),
     r"1 strides for shape \(2, 3\)"),
])
def test_a_malformed_interface_is_a_value_error_naming_the_argument(interface, match):
    bad = type("Producer", (), {"__cuda_array_interface__": interface})()
    with pytest.raises(ValueError, match=rf"relu: input \(.*\) has a malformed "
                                         rf"__cuda_array_interface__: {match}"):
        _C.relu_forward(FakeCudaArray((2, 3)), bad)


class _CpuTensorWithInterface:
    """A CPU tensor that also claims the CUDA interface, as a framework's CUDA tensor has both:
    its DLPack export says where its memory is, and fastconv must take that route (the only
    objects passed on as they are are CuPy's arrays and producers without DLPack)."""

    def __init__(self, array):
        self._array = array
        self.__cuda_array_interface__ = {"shape": array.shape, "typestr": array.dtype.str,
                                         "data": (0x10000, False), "version": 3}

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


def test_a_framework_tensor_with_both_interfaces_is_viewed_through_dlpack():
    array = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    view = fastconv.from_dlpack(_CpuTensorWithInterface(array))
    assert type(view) is np.ndarray and np.shares_memory(view, array)
    np.testing.assert_array_equal(F.relu(_CpuTensorWithInterface(array)), np.maximum(array, 0))
    only = FakeCudaArray((2, 3))
    assert fastconv.from_dlpack(only) is only
