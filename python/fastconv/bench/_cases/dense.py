"""Dense cases: linear layers and the transposed convolution."""

from ... import functional as F
from ..._opinfo import conv as RC
from ..._opinfo import dense as R
from . import _numpy as peer
from ._common import Case, normal

# (IN, OUT)
LINEAR = [
    ("linear (fashion_cnn head)", (1568, 10), (64, 64, 256), (256, 256, 4096), True),
    ("linear (alexnet fc)", (4096, 4096), (None, 64, 256), (None, 256, 1024), False),
]
# (C_in, H, W, C_out, R, S, stride, pad)
CONV_TRANSPOSE = [
    ("conv_transpose2d 4x4/2 upsample", (64, 28, 28, 32, 4, 4, 2, 1), (None, None, 16),
     (None, None, 256), False),
]


def linear_case(name, M, IN, OUT, numpy_peer=False):
    flop = 2.0 * M * IN * OUT

    def inputs(rng):
        return {"x": normal(rng, (M, IN)), "w": normal(rng, (OUT, IN), IN ** -0.5),
                "b": normal(rng, (OUT,)), "dy": normal(rng, (M, OUT))}

    def fastconv(ctx, a):
        return {"fwd": lambda: F.linear(a["x"], a["w"], a["b"]),
                "bwd": lambda: F.linear_backward(a["dy"], a["x"], a["w"])}

    def reference(ctx, a):
        return {"fwd": lambda: R.linear_ref(a["x"], a["w"], a["b"]),
                "bwd": lambda: R.linear_backward_ref(a["dy"], a["x"], a["w"])}

    def numpy(ctx, a):
        return {"fwd": lambda: peer.linear(a["x"], a["w"], a["b"]),
                "bwd": lambda: peer.linear_backward(a["dy"], a["x"], a["w"])}

    def torch(ctx, a):
        x, w, b, dy = a["x"], a["w"], a["b"], a["dy"]
        return {"fwd": lambda: ctx.torch.nn.functional.linear(x, w, b),
                "bwd": lambda: (dy @ w, dy.t() @ x, dy.sum(0))}

    return Case("dense", name, f"{M}x{IN} -> {OUT}", "flop", {"fwd": flop, "bwd": 2 * flop},
                "2*M*IN*OUT forward; twice that backward (input and weight gradients)",
                inputs, fastconv, reference, torch, numpy_peer=numpy if numpy_peer else None,
                tf32=True, note="torch backward: the three products autograd would run, called directly")


def conv_transpose_case(name, N, C, H, W, K, R, S, stride, pad, numpy_peer=False):
    Ho, Wo = (H - 1) * stride - 2 * pad + R, (W - 1) * stride - 2 * pad + S
    flop = 2.0 * N * C * H * W * K * R * S

    def inputs(rng):
        return {"x": normal(rng, (N, C, H, W)), "dy": normal(rng, (N, K, Ho, Wo)),
                "w": normal(rng, (C, K, R, S), (C * R * S) ** -0.5), "b": normal(rng, (K,))}

    def fastconv(ctx, a):
        kw = dict(stride=stride, padding=pad)
        return {"fwd": lambda: F.conv_transpose2d(a["x"], a["w"], a["b"], **kw),
                "bwd": lambda: F.conv_transpose2d_backward(a["dy"], a["x"], a["w"], **kw)}

    def reference(ctx, a):
        kw = dict(stride=stride, padding=pad)
        return {"fwd": lambda: RC.conv_transpose2d_ref(a["x"], a["w"], a["b"], **kw),
                "bwd": lambda: RC.conv_transpose2d_backward_ref(a["dy"], a["x"], a["w"], **kw)}

    def torch(ctx, a):
        conv_bwd = ctx.torch.ops.aten.convolution_backward
        return {"fwd": lambda: ctx.torch.nn.functional.conv_transpose2d(
                    a["x"], a["w"], a["b"], stride, pad),
                "bwd": lambda: conv_bwd(a["dy"], a["x"], a["w"], [K], [stride] * 2, [pad] * 2,
                                        [1, 1], True, [0, 0], 1, [True] * 3)}

    return Case("dense", name, f"{N}x{C}x{H}x{W} -> {K}, {R}x{S}/{stride} pad {pad}", "flop",
                {"fwd": flop, "bwd": 2 * flop},
                "2*N*C_in*H*W*C_out*R*S forward; twice that backward", inputs, fastconv,
                reference, torch, tf32=True,
                note="torch backward: aten.convolution_backward (transposed) called directly")
