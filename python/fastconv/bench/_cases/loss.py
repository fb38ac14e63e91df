"""Loss cases: softmax cross-entropy over 10 and 1000 classes, mean squared error."""

import numpy as np

from ... import functional as F
from ..._opinfo import loss as R
from . import _numpy as peer
from ._common import Case, normal

# (op, shape without the batch: the classes for cross-entropy)
LOSS = [
    ("softmax cross_entropy (10 classes)", ("ce", (10,)), (64, 256, 256), (256, 4096, 4096),
     True),
    ("softmax cross_entropy (1000 classes)", ("ce", (1000,)), (None, 256, 256),
     (256, 4096, 4096), True),
    ("mse_loss", ("mse", (64, 56, 56)), (None, None, 16), (None, None, 256), False),
]


def loss_case(name, N, op, shape, numpy_peer=False):
    full = (N,) + shape
    n = int(np.prod(full))
    if op == "ce":
        work = {"fwd": 4 * n + 8 * N, "bwd": 8 * n + 8 * N}
        counts = "forward reads logits and int64 targets; backward also writes d logits"
    else:
        work = {"fwd": 8 * n, "bwd": 12 * n}
        counts = "forward reads input and target; backward also writes d input"

    def inputs(rng):
        if op == "ce":
            return {"x": normal(rng, full, 3.0), "t": rng.integers(0, shape[0], N)}
        return {"x": normal(rng, full), "t": normal(rng, full)}

    def fastconv(ctx, a):
        x, t = a["x"], a["t"]
        fwd, bwd = (F.cross_entropy, F.cross_entropy_backward) if op == "ce" else (
            F.mse_loss, F.mse_loss_backward)
        return {"fwd": lambda: fwd(x, t), "bwd": lambda: bwd(1.0, x, t)}

    def reference(ctx, a):
        x, t = a["x"], a["t"]
        fwd, bwd = (R.cross_entropy_ref, R.cross_entropy_backward_ref) if op == "ce" else (
            R.mse_loss_ref, R.mse_loss_backward_ref)
        return {"fwd": lambda: fwd(x, t), "bwd": lambda: bwd(1.0, x, t)}

    def numpy(ctx, a):
        x, t = a["x"], a["t"]
        return {"fwd": lambda: peer.cross_entropy(x, t),
                "bwd": lambda: peer.cross_entropy_backward(x, t)}

    def torch(ctx, a):
        torch, aten = ctx.torch, ctx.torch.ops.aten
        x, t = a["x"], a["t"]
        one = torch.ones((), dtype=x.dtype, device=x.device)
        if op == "mse":
            return {"fwd": lambda: torch.nn.functional.mse_loss(x, t),
                    "bwd": lambda: aten.mse_loss_backward(one, x, t, 1)}  # 1: mean reduction
        logp = torch.log_softmax(x, 1)
        total = torch.full((), float(N), dtype=x.dtype, device=x.device)

        def ce_backward():
            dlogp = aten.nll_loss_backward(one, logp, t, None, 1, -100, total)
            return aten._log_softmax_backward_data(dlogp, logp, 1, x.dtype)
        return {"fwd": lambda: torch.nn.functional.cross_entropy(x, t), "bwd": ce_backward}

    note = ("torch backward: the aten ops autograd runs (nll_loss_backward + "
            "_log_softmax_backward_data from the saved log-softmax; fastconv recomputes it)"
            if op == "ce" else "torch backward: aten.mse_loss_backward called directly")
    return Case("loss", name, "x".join(map(str, full)), "byte", work, counts, inputs, fastconv,
                reference, torch, numpy_peer=numpy if numpy_peer else None, note=note)
