"""Size limits and allocation failures on the CPU.

Sizes the kernels cannot index (32-bit BLAS dimensions, arguments past 2^31 - 1, arrays past
2^60 elements) are refused with a ValueError naming the array, its shape, the size and the
limit, before anything is allocated: every refusal here is of a call whose output would need
terabytes, so an allocation attempt would show as MemoryError instead. Arrays the machine cannot
hold are a MemoryError naming the size, in a subprocess whose address space is capped, after
which the process still computes correctly.

Where a refusal is about an input too large to allocate, the input is a "phantom": an array
that declares a C-contiguous shape over one element. Only its shape may be read, so phantoms go
to the geometry functions, directly or through the functional API under no_allocation, which
stops a call that fails to refuse at its first allocation, before any kernel could read them.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv.functional as F
from fastconv._loader import _C

INT32_MAX = 2**31 - 1
BLAS = r"more than 2147483647 \(2\^31 - 1\), the largest matrix dimension of the CPU's 32-bit BLAS"


def _phantom(shape, dtype=np.float32):
    """An array of `shape` (C-contiguous strides) whose every element is one float: never read."""
    dtype = np.dtype(dtype)
    strides = []
    step = dtype.itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape, tuple(reversed(strides)),
                                           writeable=False)


def _x(shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_phantom_declares_a_contiguous_shape():
    p = _phantom((3, 1, 4, 5))
    assert p.flags.c_contiguous and p.shape == (3, 1, 4, 5) and p.strides == (80, 80, 20, 4)


# -- refusals through the functional API ---------------------------------------------------------
# Small real inputs with huge declared geometry, or phantom inputs (safe here: with
# no_allocation, a call that fails to refuse stops at its first allocation, before any kernel).

def _case(call, message, id):
    return pytest.param(call, message, id=id)


REFUSED = [
    _case(lambda: F.conv2d(_x((1, 1, 3, 3)), _x((1, 1, 3, 3)), padding=2**20),
          rf"conv2d: output \(1, 1, 2097153, 2097153\) has P\*Q = {2097153**2}, {BLAS}",
          "conv2d-padding"),
    _case(lambda: F.conv2d(_phantom((1, 1, 2**20, 2**20)), _x((1, 1, 3, 3))),
          rf"conv2d: input \(1, 1, 1048576, 1048576\) has H\*W = {2**40}, {BLAS}",
          "conv2d-input"),
    _case(lambda: F.conv2d(_x((1, 1, 1, 1)), _phantom((2**31, 1, 1, 1))),
          rf"conv2d: weight \(2147483648, 1, 1, 1\) has weight.shape\[0\] = 2147483648, {BLAS}",
          "conv2d-out-channels"),
    _case(lambda: F.conv2d(_x((1, 1, 1, 1)), _phantom((1, 1, 2**16, 2**16)), padding=2**15),
          rf"conv2d: weight \(1, 1, 65536, 65536\) has C\*R\*S \(with input channels C = 1\) = "
          rf"{2**32}, {BLAS}", "conv2d-im2col-rows"),
    _case(lambda: F.conv2d(_phantom((1, 1, 2**31, 1)), _x((1, 1, 1, 1))),
          r"conv2d: input \(1, 1, 2147483648, 1\) has H = 2147483648; spatial and kernel sizes "
          r"are at most 2147483647 \(2\^31 - 1\)", "conv2d-height"),
    _case(lambda: F.conv2d_backward(_x((1, 1, 1, 1)), _x((1, 1, 3, 3)), _x((1, 1, 3, 3)),
                                    padding=2**20),
          r"conv2d_backward: output \(1, 1, 2097153, 2097153\) has P\*Q", "conv2d_backward"),
    _case(lambda: F.conv2d(_x((1, 1, 3, 3)), _x((1, 1, 3, 3)), stride=2**31),
          r"conv2d: stride must be at most 2147483647 \(2\^31 - 1\), got \(2147483648, "
          r"2147483648\)", "conv2d-stride"),
    _case(lambda: F.conv2d(_x((1, 1, 3, 3)), _x((1, 1, 3, 3)), padding=(0, 2**31)),
          r"conv2d: padding must be at most 2147483647", "conv2d-padding-arg"),
    _case(lambda: F.conv2d(_x((1, 1, 3, 3)), _x((1, 1, 3, 3)), padding="same", dilation=2**40),
          r"conv2d: dilation must be at most 2147483647", "conv2d-dilation"),
    _case(lambda: F.conv_transpose2d(_x((1, 2, 3, 3)), _x((2, 1, 2, 2)), stride=2**20),
          rf"conv_transpose2d: output \(1, 1, 2097154, 2097154\) has H\*W = {2097154**2}, {BLAS}",
          "conv_transpose2d-stride"),
    _case(lambda: F.conv_transpose2d(_phantom((1, 1, 2**16, 2**16)), _x((1, 1, 1, 1)),
                                     padding=2**15 - 1),
          rf"conv_transpose2d: input \(1, 1, 65536, 65536\) has P\*Q = {2**32}, {BLAS}",
          "conv_transpose2d-input"),
    _case(lambda: F.conv_transpose2d_backward(_x((1, 1, 1, 1)), _x((1, 2, 3, 3)),
                                              _x((2, 1, 2, 2)), dilation=2**30),
          rf"conv_transpose2d_backward: output \(1, 1, {2**30 + 3}, {2**30 + 3}\) has H\*W = "
          rf"{(2**30 + 3)**2}, {BLAS}", "conv_transpose2d_backward-dilation"),
    _case(lambda: F.conv_transpose2d(_x((1, 1, 2, 2)), _x((1, 1, 1, 1)), stride=2**31 + 1,
                                     output_padding=2**31),
          r"conv_transpose2d: stride must be at most 2147483647", "conv_transpose2d-arg"),
    _case(lambda: F.linear(_phantom((2**31, 1)), _x((1, 1))),
          r"linear: input \(2147483648, 1\) has 2147483648 rows \(the product of its leading "
          rf"dimensions\), {BLAS}", "linear-rows"),
    _case(lambda: F.linear(_phantom((2**16, 2**16, 1)), _x((3, 1))),
          rf"linear: input \(65536, 65536, 1\) has {2**32} rows", "linear-leading-dims"),
    _case(lambda: F.linear_backward(_x((1, 1)), _phantom((1, 2**31)), _phantom((1, 2**31))),
          r"linear_backward: weight \(1, 2147483648\) has in_features = 2147483648 and "
          r"out_features = 1; each must be at most 2147483647", "linear-in_features"),
    _case(lambda: F.fold(_x((1, 1, 1)), (2**31, 1), 1, stride=2**31),
          r"fold: output_size must be at most 2147483647 \(2\^31 - 1\), got \(2147483648, 1\)",
          "fold-output_size"),
    _case(lambda: F.unfold(_x((1, 1, 2, 2)), (2**31, 1), padding=(2**30, 0)),
          r"unfold: kernel_size must be at most 2147483647", "unfold-kernel_size"),
    _case(lambda: F.unfold(_phantom((1, 1, 2**30, 2**29)), 2),
          rf"unfold: output \(1, 4, {(2**30 - 1) * (2**29 - 1)}\) would have "
          rf"{4 * (2**30 - 1) * (2**29 - 1)} elements; "
          r"an array has at most 1152921504606846975 \(2\^60 - 1\)", "unfold-numel"),
    _case(lambda: F.max_pool2d(_x((1, 1, 4, 4)), 2**31, padding=2**30),
          r"max_pool2d: kernel_size must be at most 2147483647", "max_pool2d-kernel"),
    _case(lambda: F.max_pool2d(_phantom((1, 1, 1, 2**31)), 1),
          r"max_pool2d: input \(1, 1, 1, 2147483648\) has W = 2147483648; spatial and kernel "
          r"sizes are at most 2147483647", "max_pool2d-width"),
    _case(lambda: F.avg_pool2d(_x((1, 1, 4, 4)), 2, stride=(1, 2**40)),
          r"avg_pool2d: stride must be at most 2147483647", "avg_pool2d-stride"),
    _case(lambda: F.max_pool2d(_x((1, 1, 4, 4)), 3, padding=1, dilation=2**31),
          r"max_pool2d: dilation must be at most 2147483647", "max_pool2d-dilation"),
    _case(lambda: F.adaptive_avg_pool2d(_x((2, 3, 1, 1)), (INT32_MAX, INT32_MAX)),
          r"adaptive_avg_pool2d: output \(2, 3, 2147483647, 2147483647\) would have more than "
          r"2\^63 elements; an array has at most 1152921504606846975 \(2\^60 - 1\)",
          "adaptive_avg_pool2d-numel"),
    _case(lambda: F.adaptive_max_pool2d(_x((1, 1, 1, 1)), (INT32_MAX, 2**30)),
          rf"adaptive_max_pool2d: output \(1, 1, 2147483647, 1073741824\) would have "
          rf"{INT32_MAX * 2**30} elements; an array has at most 1152921504606846975",
          "adaptive_max_pool2d-numel"),
    _case(lambda: F.adaptive_avg_pool2d(_x((1, 1, 1, 1)), (2**31, 1)),
          r"adaptive_avg_pool2d: output_size must be at most 2147483647", "adaptive-arg"),
]


@pytest.mark.parametrize("call, message", REFUSED)
def test_limits_refused_before_allocation(no_allocation, call, message):
    with pytest.raises(ValueError, match=message):
        call()


class _Allocated(Exception):
    pass


def test_limits_pooling_indexes_planes_past_32_bits(monkeypatch):
    # Pooling runs 64-bit indices on both devices: a plane of 2^32 pixels is a valid geometry
    # (each call stops at its first allocation, which notes the output's shape).
    shapes = []

    def note(like, shape, dtype=None):
        shapes.append(shape)
        raise _Allocated

    monkeypatch.setattr(sys.modules["fastconv.functional._pool"], "empty", note)
    with pytest.raises(_Allocated):
        F.max_pool2d(_phantom((1, 1, 2**16, 2**16)), 2)
    with pytest.raises(_Allocated):
        F.adaptive_avg_pool2d(_x((1, 1, 3, 3)), 2**16)
    assert shapes == [(1, 1, 2**15, 2**15), (1, 1, 2**16, 2**16)]


def test_limits_at_the_blas_bound_are_accepted():
    # The largest sizes the BLAS takes pass the geometry (nothing is allocated here).
    # conv2d's output is the first thing its call allocates: the allocator stops it there.
    class Allocated(Exception):
        pass

    def shape_only(like, shape, dtype=None):
        raise Allocated(tuple(shape))

    with pytest.raises(Allocated) as allocated:
        _C.conv2d_forward(shape_only, _phantom((1, 1, 1, INT32_MAX)), _x((1, 1, 1, 1)), None,
                          (1, 1), "explicit", (0, 0), (1, 1), 1)
    assert allocated.value.args[0] == (1, 1, 1, INT32_MAX)
    with pytest.raises(Allocated) as allocated:
        _C.linear_forward(shape_only, _phantom((INT32_MAX, 1)), _x((2, 1)), None)
    assert allocated.value.args[0] == (INT32_MAX, 2)


# -- allocations the machine cannot satisfy --------------------------------------------------------

# Run in a child whose address space is capped 1 GiB above what it has mapped after warming up,
# so that every request past that fails at once, whatever the machine's overcommit policy.
_CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import fastconv as fc
    import fastconv.functional as F
    sys.path.insert(0, sys.argv[1])
    from fastconv._opinfo.conv import conv2d_ref

    fc.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
    w = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    F.conv2d(x, w, padding=4)  # starts the OpenMP team and the BLAS before the cap

    def mapped():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    cap = mapped() + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))

    def outcome(call):
        try:
            call()
            return ["ok", ""]
        except BaseException as e:
            return [type(e).__name__, str(e)]

    # A row of im2col columns of this layer is 64*8*8 * (2^19 + 1) float32 values (8 GiB) per
    # thread; the input is 16 KiB and the output 2 MiB.
    wide = (0, 2**18)
    out = {
        "numpy output": outcome(lambda: F.adaptive_avg_pool2d(x[:, :1, :1, :1], (2**20, 2**20))),
        "fold output": outcome(lambda: F.fold(x[:, :1, 0, :1], (2**20, 2**20), 1, stride=2**20)),
        "conv2d workspace": outcome(lambda: F.conv2d(x, w, padding=wide)),
        # float64: float32's input gradient takes the direct path (csrc/cpu/conv_direct.h),
        # which needs no col2im workspace ("grad_input direct" below).
        "grad_input workspace": outcome(lambda: F.conv2d_backward(
            np.ones((1, 1, 1, 2**19 + 1)), x64, w64, padding=wide,
            output_mask=(True, False, False))),
        "grad_weight workspace": outcome(lambda: F.conv2d_backward(
            np.ones((1, 1, 1, 2**19 + 1), np.float32), x, w, padding=wide,
            output_mask=(False, True, False))),
        "transposed workspace": outcome(lambda: F.conv_transpose2d(
            np.ones((1, 1, 1, 2**19 + 1)), w64, padding=wide)),
    }
    # dy all ones over 2^19 + 1 columns, every window inside them: dx[c, h, j] is the sum of
    # the kernel's row h over its columns.
    # The baseline variant (FASTCONV_CPU_ISA=baseline, or a CPU without AVX2) has no direct
    # path: there the GEMM path's workspace is refused as above.
    try:
        dx = F.conv2d_backward(np.ones((1, 1, 1, 2**19 + 1), np.float32), x, w, padding=wide,
                               output_mask=(True, False, False))[0]
        want = np.broadcast_to(w64.sum(axis=3, keepdims=True), (1, 64, 8, 8))
        out["grad_input direct"] = [float(np.max(np.abs(dx - want))), float(np.max(np.abs(want)))]
    except MemoryError:
        out["grad_input direct"] = fc.get_cpu_isa()
    out["isa"] = fc.get_cpu_isa()
    # Still working: the same layer at a size that fits, against the float64 reference.
    y = F.conv2d(x, w, padding=(1, 300))
    ref = conv2d_ref(x.astype(np.float64), w.astype(np.float64), padding=(1, 300))
    out["after"] = [float(np.max(np.abs(y - ref))), float(np.max(np.abs(ref)))]
    print(json.dumps(out))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and RLIMIT_AS")
def test_limits_out_of_memory_is_memory_error_naming_size_and_process_recovers():
    here = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", _CHILD, here], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    kind, msg = out["numpy output"]
    assert kind == "MemoryError" and "4.00 TiB" in msg and "(1, 1, 1048576, 1048576)" in msg, msg
    kind, msg = out["fold output"]
    assert kind == "MemoryError" and "4.00 TiB" in msg, msg
    # 2 threads x 64*8*8 columns x (2^19 + 1) pixels x 4 bytes
    row = 2 * 64 * 8 * 8 * (2**19 + 1) * 4
    kind, msg = out["conv2d workspace"]
    assert kind == "MemoryError", msg
    if out["isa"] == "baseline":
        assert msg == (f"conv2d_forward_cpu: im2col workspace: cannot allocate 16.0 GiB ({row} "
                       "bytes) of working memory"), msg
    else:
        # One output channel: the forward along rows (csrc/cpu/conv_rows.h), whose buffers hold
        # 2 threads x 64 channels x the 8 padded input rows of one output row.
        rows = 2 * 64 * 8 * (2**19 + 8) * 4
        assert msg == (f"conv2d (rows): input buffers: cannot allocate 2.00 GiB ({rows} "
                       "bytes) of working memory"), msg
    kind, msg = out["grad_weight workspace"]
    assert kind == "MemoryError", msg
    assert re.fullmatch(rf"conv2d_backward_cpu \(grad_weight\): im2col workspace: cannot allocate "
                        rf"16\.0 GiB \({row} bytes\) of working memory", msg), msg
    for case in ("grad_input workspace", "transposed workspace"):
        kind, msg = out[case]
        assert kind == "MemoryError", (case, msg)
        assert re.fullmatch(r"conv2d_backward_cpu \(grad_input\): col2im workspace: cannot "
                            r"allocate [\d.]+ GiB \(\d+ bytes\) of working memory", msg), msg
        assert int(re.search(r"\((\d+) bytes\)", msg).group(1)) > 2**30
    if out["grad_input direct"] != "baseline":
        err, scale = out["grad_input direct"]
        assert err <= 1e-5 * scale, out["grad_input direct"]
    err, scale = out["after"]
    assert err <= 1e-5 * scale, out["after"]
