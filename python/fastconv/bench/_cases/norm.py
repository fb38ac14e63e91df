"""Normalisation and dropout cases: batch norm (train and eval), local response norm,
dropout."""

import numpy as np

from ... import functional as F
from ..._opinfo import dropout as RD
from ..._opinfo import norm as R
from . import _numpy as peer
from ._common import Case, normal
from .._harness import host, rel_err

# (op, shape without the batch)
NORM = [
    ("batch_norm train (resnet)", ("bn_train", (64, 56, 56)), (2, 16, 32), (16, 256, 256),
     True),
    ("batch_norm eval (resnet)", ("bn_eval", (64, 56, 56)), (None, None, 32),
     (None, None, 256), True),
    ("local_response_norm size 5 (alexnet)", ("lrn", (96, 55, 55)), (None, None, 8),
     (None, None, 256), False),
    ("dropout p=0.5", ("dropout", (64, 56, 56)), (None, None, 16), (None, None, 256), False),
]

NORM_COUNTS = {
    "bn_train": ("per element, forward reads x twice (statistics, then normalisation) and "
                 "writes y: 12 B; backward reads dy and x twice and writes dx: 20 B"),
    "bn_eval": "per element, reads x and writes y: 8 B",
    "lrn": ("per element, forward reads x and writes y: 8 B; backward reads dy and x and "
            "writes dx: 12 B"),
    "dropout": ("per element, forward reads x, writes y and a 1-byte mask: 9 B; backward reads "
                "dy and the mask, writes dx: 9 B"),
}
NORM_BYTES = {"bn_train": (12, 20), "bn_eval": (8, None), "lrn": (8, 12), "dropout": (9, 9)}
LRN_ARGS = (5, 1e-4, 0.75, 2.0)
DROP_P = 0.5


def _check_dropout(a, outputs):
    """The output is x / (1 - p) where the returned mask keeps it and 0 elsewhere, and the
    mask keeps 1 - p of the elements within 5 standard deviations."""
    y, mask = host(outputs[0]), host(outputs[1]).astype(bool)
    err = rel_err(y, np.where(mask, a["x"] / (1 - DROP_P), 0))
    spread = 5 * np.sqrt(DROP_P * (1 - DROP_P) / mask.size)
    return err if abs(mask.mean() - (1 - DROP_P)) <= spread else float("inf")


def norm_case(name, N, op, shape, numpy_peer=False):
    full = (N,) + shape
    n = int(np.prod(full))
    fwd_b, bwd_b = NORM_BYTES[op]
    work = {"fwd": fwd_b * n} if bwd_b is None else {"fwd": fwd_b * n, "bwd": bwd_b * n}
    C = shape[0]

    def inputs(rng):
        a = {"x": normal(rng, full, 2.0) + 1, "dy": normal(rng, full)}
        if op.startswith("bn"):
            a.update(w=normal(rng, (C,)), b=normal(rng, (C,)), mean=normal(rng, (C,)),
                     var=rng.uniform(0.5, 2.0, C).astype(np.float32))
        if op == "dropout":
            a["mask"] = (rng.random(full) >= DROP_P).astype(np.uint8)
        return a

    def fastconv(ctx, a):
        x, dy = a["x"], a["dy"]
        if op == "bn_train":
            _, sm, si = F.batch_norm(x, a["mean"], a["var"], a["w"], a["b"], True,
                                     return_stats=True)
            return {"fwd": lambda: F.batch_norm(x, a["mean"], a["var"], a["w"], a["b"], True,
                                                return_stats=True),
                    "bwd": lambda: F.batch_norm_backward(dy, x, a["w"], sm, si, True)}
        if op == "bn_eval":
            return {"fwd": lambda: F.batch_norm(x, a["mean"], a["var"], a["w"], a["b"], False)}
        if op == "lrn":
            return {"fwd": lambda: F.local_response_norm(x, *LRN_ARGS),
                    "bwd": lambda: F.local_response_norm_backward(dy, x, *LRN_ARGS)}
        return {"fwd": lambda: F.dropout(x, DROP_P, return_mask=True),
                "bwd": lambda: F.dropout_backward(dy, a["mask"], DROP_P)}

    def reference(ctx, a):
        x, dy = a["x"], a["dy"]
        if op == "bn_train":
            def train():
                return R.batch_norm_ref(x, a["mean"], a["var"], a["w"], a["b"], True)[:3]
            _, sm, si = train()
            return {"fwd": train,
                    "bwd": lambda: R.batch_norm_backward_ref(dy, x, a["w"], sm, si, True)}
        if op == "bn_eval":
            return {"fwd": lambda: R.batch_norm_ref(x, a["mean"], a["var"], a["w"], a["b"],
                                                    False)[0]}
        if op == "lrn":
            return {"fwd": lambda: R.local_response_norm_ref(x, *LRN_ARGS),
                    "bwd": lambda: R.local_response_norm_backward_ref(dy, x, *LRN_ARGS)}
        # the forward is random: _check_dropout judges it; this entry is never compared
        return {"fwd": lambda: None,
                "bwd": lambda: RD.dropout_backward_ref(dy, a["mask"], DROP_P)}

    def numpy(ctx, a):
        x, dy = a["x"], a["dy"]
        if op == "bn_train":
            return {"fwd": lambda: peer.batch_norm_train(x, a["w"], a["b"]),
                    "bwd": lambda: peer.batch_norm_train_backward(dy, x, a["w"])}
        return {"fwd": lambda: peer.batch_norm_eval(x, a["mean"], a["var"], a["w"], a["b"])}

    def torch(ctx, a):
        t, aten = ctx.torch, ctx.torch.ops.aten
        x, dy = a["x"], a["dy"]
        if op == "bn_train":
            w, b, mean, var = a["w"], a["b"], a["mean"], a["var"]
            _, sm, si = aten.native_batch_norm(x, w, b, mean.clone(), var.clone(), True, 0.1,
                                               1e-5)
            return {"fwd": lambda: aten.native_batch_norm(x, w, b, mean, var, True, 0.1, 1e-5),
                    "bwd": lambda: aten.native_batch_norm_backward(
                        dy, x, w, mean, var, sm, si, True, 1e-5, [True] * 3)}
        if op == "bn_eval":
            return {"fwd": lambda: aten.native_batch_norm(x, a["w"], a["b"], a["mean"],
                                                          a["var"], False, 0.1, 1e-5)}
        if op == "lrn":
            xg = x.clone().requires_grad_(True)

            def lrn_backward():
                # no aten backward op for LRN: autograd replays the forward, timed with it
                out = t.nn.functional.local_response_norm(xg, *LRN_ARGS)
                return t.autograd.grad(out, (xg,), dy)[0]
            return {"fwd": lambda: t.nn.functional.local_response_norm(x, *LRN_ARGS),
                    "bwd": lrn_backward}
        mask = a["mask"].bool()
        return {"fwd": lambda: aten.native_dropout(x, DROP_P, True),
                "bwd": lambda: aten.native_dropout_backward(dy, mask, 1 / (1 - DROP_P))}

    notes = {"bn_train": "torch: aten.native_batch_norm(_backward) called directly",
             "bn_eval": "torch: aten.native_batch_norm, training=False",
             "lrn": "torch backward: forward + autograd backward (there is no aten backward op)",
             "dropout": "forward checked by its mask (random); backward against the reference"}
    return Case("norm", name, "x".join(map(str, full)), "byte", work, NORM_COUNTS[op], inputs,
                fastconv, reference, torch, numpy_peer=numpy if numpy_peer else None, note=notes[op],
                check_fwd=_check_dropout if op == "dropout" else None)
