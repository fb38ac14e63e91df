"""Pooling cases: max, average and global average pooling of the classic networks."""

from ... import functional as F
from ..._opinfo import pool as R
from . import _numpy as peer
from ._common import Case, normal

POOL_COUNTS = ("bytes the minimal algorithm reads and writes: forward input + output (max "
               "pooling also writes int64 indices), backward grad_output (+ indices) + grad_input")

# (op, C, H, W, (kernel, stride)); "global" is adaptive average pooling to 1x1
POOL = [
    ("max_pool2d 2x2/2 (fashion_cnn)", ("max", 16, 28, 28, (2, 2)), (8, 64, 256),
     (64, 256, 1024), True),
    ("max_pool2d 3x3/2 (alexnet)", ("max", 64, 55, 55, (3, 2)), (1, 8, 32), (16, 256, 256),
     False),
    ("avg_pool2d 2x2/2 (lenet5)", ("avg", 6, 28, 28, (2, 2)), (8, 64, 256), (64, 256, 1024),
     True),
    ("adaptive_avg_pool2d 1x1 (resnet head)", ("global", 512, 7, 7, None), (2, 16, 64),
     (64, 256, 256), True),
]


def pool_case(name, N, op, C, H, W, window, numpy_peer=False):
    k, s = window or (H, H)
    P, Q = (H - k) // s + 1, (W - k) // s + 1
    n_in, n_out = N * C * H * W, N * C * P * Q
    index_bytes = 8 * n_out if op == "max" else 0
    work = {"fwd": 4 * (n_in + n_out) + index_bytes, "bwd": 4 * (n_out + n_in) + index_bytes}

    def inputs(rng):
        return {"x": normal(rng, (N, C, H, W)), "dy": normal(rng, (N, C, P, Q))}

    def fastconv(ctx, a):
        x, dy = a["x"], a["dy"]
        if op == "max":
            _, idx = F.max_pool2d(x, k, s, return_indices=True)
            return {"fwd": lambda: F.max_pool2d(x, k, s, return_indices=True),
                    "bwd": lambda: F.max_pool2d_backward(dy, x, k, s, indices=idx)}
        if op == "avg":
            return {"fwd": lambda: F.avg_pool2d(x, k, s),
                    "bwd": lambda: F.avg_pool2d_backward(dy, x, k, s)}
        return {"fwd": lambda: F.adaptive_avg_pool2d(x, 1),
                "bwd": lambda: F.adaptive_avg_pool2d_backward(dy, x, 1)}

    def passes(sides, a):
        """{pass: fn} from op -> (forward, backward, window arguments) of one side."""
        fwd, bwd, args = sides[op]
        x, dy = a["x"], a["dy"]
        return {"fwd": lambda: fwd(x, *args), "bwd": lambda: bwd(dy, x, *args)}

    def reference(ctx, a):
        # max: the indices fastconv and torch return are checked through the backward
        return passes({"max": (lambda x, *w: (R.max_pool2d_ref(x, *w)[0], None),
                               R.max_pool2d_backward_ref, (k, s)),
                       "avg": (R.avg_pool2d_ref, R.avg_pool2d_backward_ref, (k, s)),
                       "global": (R.adaptive_avg_pool2d_ref, R.adaptive_avg_pool2d_backward_ref,
                                  (1,))}, a)

    def numpy(ctx, a):
        return passes({"max": (peer.max_pool2d, peer.max_pool2d_backward, (k, s)),
                       "avg": (peer.avg_pool2d, peer.avg_pool2d_backward, (k, s)),
                       "global": (peer.global_avg_pool, peer.global_avg_pool_backward, ())}, a)

    def torch(ctx, a):
        TF, aten = ctx.torch.nn.functional, ctx.torch.ops.aten
        x, dy = a["x"], a["dy"]
        if op == "max":
            _, idx = TF.max_pool2d(x, k, s, return_indices=True)
            return {"fwd": lambda: TF.max_pool2d(x, k, s, return_indices=True),
                    "bwd": lambda: aten.max_pool2d_with_indices_backward(
                        dy, x, [k, k], [s, s], [0, 0], [1, 1], False, idx)}
        if op == "avg":
            return {"fwd": lambda: TF.avg_pool2d(x, k, s),
                    "bwd": lambda: aten.avg_pool2d_backward(dy, x, [k, k], [s, s], [0, 0],
                                                            False, True, None)}
        return {"fwd": lambda: TF.adaptive_avg_pool2d(x, 1),
                "bwd": lambda: aten._adaptive_avg_pool2d_backward(dy, x)}

    return Case("pool", name, f"{N}x{C}x{H}x{W}", "byte", work, POOL_COUNTS, inputs, fastconv,
                reference, torch, numpy_peer=numpy if numpy_peer else None,
                note="max-pool backward is given the forward's indices on both sides; torch: "
                     "the aten backward ops called directly")
