"""Activation cases: elementwise activations and softmax on feature maps and logits."""

import numpy as np

from ... import functional as F
from ..._opinfo import act as R
from . import _numpy as peer
from ._common import Case, normal

BY_NAME = {spec.name: spec for spec in R.SPECS}

ACT_COUNTS = ("4 bytes per element of every array read or written: forward x -> y; backward "
              "dy and x (or y) -> dx")

# (op, shape without the batch)
ACT = [
    ("relu (resnet)", ("relu", (64, 56, 56)), (2, 16, 32), (16, 256, 256), True),
    ("tanh (lenet5)", ("tanh", (6, 28, 28)), (8, 64, 256), (64, 256, 1024), True),
    ("sigmoid", ("sigmoid", (64, 56, 56)), (None, None, 16), (None, None, 256), False),
    ("elu", ("elu", (64, 56, 56)), (None, None, 16), (None, None, 256), False),
    ("softmax (1000 classes)", ("softmax", (1000,)), (None, 256, 256), (None, None, 4096),
     True),
]


def act_case(name, N, op, shape, numpy_peer=False):
    shape = (N,) + shape
    n = int(np.prod(shape))
    work = {"fwd": 8 * n, "bwd": 12 * n}

    def inputs(rng):
        scale = 4.0 if op == "softmax" else 1.0
        return {"x": normal(rng, shape, scale), "dy": normal(rng, shape)}

    def fastconv(ctx, a):
        x, dy = a["x"], a["dy"]
        if op in ("relu", "elu"):
            fwd, bwd = getattr(F, op), getattr(F, op + "_backward")
            return {"fwd": lambda: fwd(x), "bwd": lambda: bwd(dy, x)}
        if op == "softmax":
            y = F.softmax(x, 1)
            return {"fwd": lambda: F.softmax(x, 1), "bwd": lambda: F.softmax_backward(dy, y, 1)}
        fwd, bwd = getattr(F, op), getattr(F, op + "_backward")
        y = fwd(x)
        return {"fwd": lambda: fwd(x), "bwd": lambda: bwd(dy, output=y)}

    def reference(ctx, a):
        x, dy = a["x"], a["dy"]
        spec = BY_NAME[op]
        if spec.backward_from_output:
            y = spec.reference(x, 1)
            return {"fwd": lambda: spec.reference(x, 1),
                    "bwd": lambda: spec.reference_backward(dy, y, 1)}
        return {"fwd": lambda: spec.reference(x), "bwd": lambda: spec.reference_backward(dy, x)}

    def numpy(ctx, a):
        x, dy = a["x"], a["dy"]
        if op == "relu":
            return {"fwd": lambda: peer.relu(x), "bwd": lambda: peer.relu_backward(dy, x)}
        fwd = {"tanh": np.tanh, "softmax": peer.softmax}[op]
        bwd = getattr(peer, op + "_backward")
        y = fwd(x)
        return {"fwd": lambda: fwd(x), "bwd": lambda: bwd(dy, y)}

    def torch(ctx, a):
        t, aten = ctx.torch, ctx.torch.ops.aten
        x, dy = a["x"], a["dy"]
        if op == "relu":
            return {"fwd": lambda: t.relu(x), "bwd": lambda: aten.threshold_backward(dy, x, 0)}
        if op == "elu":
            return {"fwd": lambda: t.nn.functional.elu(x),
                    "bwd": lambda: aten.elu_backward(dy, 1.0, 1.0, 1.0, False, x)}
        if op == "softmax":
            y = t.softmax(x, 1)
            return {"fwd": lambda: t.softmax(x, 1),
                    "bwd": lambda: aten._softmax_backward_data(dy, y, 1, x.dtype)}
        fwd, bwd = getattr(t, op), getattr(aten, op + "_backward")
        y = fwd(x)
        return {"fwd": lambda: fwd(x), "bwd": lambda: bwd(dy, y)}

    note = ("tanh, sigmoid and softmax backward take the forward's output, as torch's "
            "aten *_backward ops (called directly) do")
    return Case("act", name, "x".join(map(str, shape)), "byte", work, ACT_COUNTS, inputs,
                fastconv, reference, torch, numpy_peer=numpy if numpy_peer else None, tol=1e-5, note=note)
