"""Convolution cases: conv2d layers of the classic networks, forward and backward."""

from ... import functional as F
from ..._opinfo import conv as ref
from . import _numpy as peer
from ._common import Case, normal

CONV_COUNTS = ("2*N*K*P*Q*(C/groups)*R*S forward; twice that backward (input and weight "
               "gradients; the bias gradient is not counted)")

# Every table row: name, the builder's arguments after the batch size, the batch on the CPU
# for (quick, standard, full) (None: not in that suite), the same on the GPU, and whether the
# NumPy peer runs.

# (C, H, W, K, R, S, stride, pad, groups)
CONV = [
    ("fashion_cnn conv1", (1, 28, 28, 16, 5, 5, 1, 2, 1), (8, 64, 256), (64, 256, 1024), True),
    ("fashion_cnn conv2", (16, 14, 14, 32, 5, 5, 1, 2, 1), (8, 64, 256), (64, 256, 1024), True),
    ("lenet5 C1", (1, 28, 28, 6, 5, 5, 1, 2, 1), (None, 64, 256), (None, 256, 1024), True),
    ("lenet5 C3", (6, 14, 14, 16, 5, 5, 1, 0, 1), (8, 64, 256), (None, 256, 1024), True),
    ("lenet5 C5", (16, 5, 5, 120, 5, 5, 1, 0, 1), (None, 64, 256), (None, 256, 1024), True),
    ("alexnet conv1 11x11/4", (3, 224, 224, 64, 11, 11, 4, 2, 1), (1, 8, 32), (16, 256, 256),
     False),
    ("resnet 3x3", (64, 56, 56, 64, 3, 3, 1, 1, 1), (2, 16, 32), (8, 64, 128), False),
    ("resnet 3x3 s2", (128, 28, 28, 256, 3, 3, 2, 1, 1), (2, 16, 32), (16, 256, 256), False),
    ("resnet 1x1 bottleneck", (256, 56, 56, 64, 1, 1, 1, 0, 1), (2, 16, 32), (16, 256, 256),
     False),
    ("inception 5x5", (16, 28, 28, 32, 5, 5, 1, 2, 1), (8, 32, 128), (64, 256, 256), False),
    ("depthwise 3x3", (128, 56, 56, 128, 3, 3, 1, 1, 128), (2, 16, 32), (16, 256, 256), False),
]


def conv_case(name, N, C, H, W, K, R, S, stride, pad, groups, numpy_peer=False):
    P, Q = (H + 2 * pad - R) // stride + 1, (W + 2 * pad - S) // stride + 1
    flop = 2.0 * N * K * P * Q * (C // groups) * R * S

    def inputs(rng):
        fan_in = C // groups * R * S
        return {"x": normal(rng, (N, C, H, W)), "dy": normal(rng, (N, K, P, Q)),
                "w": normal(rng, (K, C // groups, R, S), fan_in ** -0.5),
                "b": normal(rng, (K,))}

    def fastconv(ctx, a):
        kw = dict(stride=stride, padding=pad, groups=groups)
        return {"fwd": lambda: F.conv2d(a["x"], a["w"], a["b"], **kw),
                "bwd": lambda: F.conv2d_backward(a["dy"], a["x"], a["w"], **kw)}

    def reference(ctx, a):
        kw = dict(stride=stride, padding=pad, groups=groups)
        return {"fwd": lambda: ref.conv2d_ref(a["x"], a["w"], a["b"], **kw),
                "bwd": lambda: ref.conv2d_backward_ref(a["dy"], a["x"], a["w"], **kw)}

    def numpy(ctx, a):
        return {"fwd": lambda: peer.conv2d(a["x"], a["w"], a["b"], stride, pad, groups),
                "bwd": lambda: peer.conv2d_backward(a["dy"], a["x"], a["w"], stride, pad, groups)}

    def torch(ctx, a):
        conv, conv_bwd = ctx.torch.nn.functional.conv2d, ctx.torch.ops.aten.convolution_backward
        geometry = ([stride] * 2, [pad] * 2, [1, 1], False, [0, 0], groups)
        return {"fwd": lambda: conv(a["x"], a["w"], a["b"], stride, pad, 1, groups),
                "bwd": lambda: conv_bwd(a["dy"], a["x"], a["w"], [K], *geometry, [True] * 3)}

    shape = (f"{N}x{C}x{H}x{W} -> {K}, {R}x{S}/{stride} pad {pad}"
             + (f" groups {groups}" if groups > 1 else ""))
    return Case("conv", name, shape, "flop", {"fwd": flop, "bwd": 2 * flop}, CONV_COUNTS,
                inputs, fastconv, reference, torch, numpy_peer=numpy if numpy_peer else None, tf32=True,
                note="backward: input, weight and bias gradients; torch: "
                     "aten.convolution_backward called directly (no autograd)")
