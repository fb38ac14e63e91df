"""The benchmark cases, one table per op family, with their batch size per device and suite.

A Case gives, for each pass it times ("fwd"/"bwd" for ops, "train"/"infer" for networks), a
zero-argument callable per implementation: fastconv (NumPy or CuPy arrays), the float64
NumPy reference (which also serves as the "numpy" peer in float32 on small cases) and PyTorch.
Each callable returns the outputs compared against the reference, in the reference's order.
`work` is what one call does: floating-point operations, bytes moved by the minimal algorithm,
or images; `counts` says how it was counted.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .. import functional as F
from . import _reference as refs
from ._harness import host, rel_err

FAMILIES = ("conv", "pool", "act", "norm", "loss", "dense", "train")
SUITES = ("quick", "standard", "full")


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    shape: str
    unit: str                      # "flop", "byte" or "image": what `work` counts
    work: dict                     # pass -> amount per call
    counts: str
    inputs: Callable               # rng -> {name: float32/int NumPy array}
    fastconv: Callable             # (ctx, arrays on ctx.device) -> {pass: fn}
    reference: Callable            # (ctx, NumPy arrays) -> {pass: fn}, any float dtype
    torch: Optional[Callable] = None   # (ctx, torch tensors) -> {pass: fn}
    numpy_peer: bool = False       # time the reference in float32 as the "numpy" peer
    tf32: bool = False             # GEMM-bound: also time torch with TF32 on the GPU
    tf32_checks: Optional[int] = None  # under TF32 compare only this many leading outputs
    tol: float = 1e-4
    note: str = ""
    check_fwd: Optional[Callable] = None  # (float64 arrays, outputs) -> error, for random ops

    @property
    def passes(self):
        return tuple(self.work)


def _batches(cpu, cuda):
    """{(device, suite): batch} from (quick, standard, full) triples; None: not in that suite."""
    return {(dev, suite): n for dev, sizes in (("cpu", cpu), ("cuda", cuda))
            for suite, n in zip(SUITES, sizes) if n}


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# -- convolution ----------------------------------------------------------------------------

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
        return {"x": _normal(rng, (N, C, H, W)), "dy": _normal(rng, (N, K, P, Q)),
                "w": _normal(rng, (K, C // groups, R, S), fan_in ** -0.5),
                "b": _normal(rng, (K,))}

    def fastconv(ctx, a):
        kw = dict(stride=stride, padding=pad, groups=groups)
        return {"fwd": lambda: F.conv2d(a["x"], a["w"], a["b"], **kw),
                "bwd": lambda: F.conv2d_backward(a["dy"], a["x"], a["w"], **kw)}

    def reference(ctx, a):
        return {"fwd": lambda: refs.conv2d(a["x"], a["w"], a["b"], stride, pad, groups),
                "bwd": lambda: refs.conv2d_backward(a["dy"], a["x"], a["w"], stride, pad, groups)}

    def torch(ctx, a):
        conv, conv_bwd = ctx.torch.nn.functional.conv2d, ctx.torch.ops.aten.convolution_backward
        geometry = ([stride] * 2, [pad] * 2, [1, 1], False, [0, 0], groups)
        return {"fwd": lambda: conv(a["x"], a["w"], a["b"], stride, pad, 1, groups),
                "bwd": lambda: conv_bwd(a["dy"], a["x"], a["w"], [K], *geometry, [True] * 3)}

    shape = (f"{N}x{C}x{H}x{W} -> {K}, {R}x{S}/{stride} pad {pad}"
             + (f" groups {groups}" if groups > 1 else ""))
    return Case("conv", name, shape, "flop", {"fwd": flop, "bwd": 2 * flop}, CONV_COUNTS,
                inputs, fastconv, reference, torch, numpy_peer=numpy_peer, tf32=True,
                note="backward: input, weight and bias gradients; torch: "
                     "aten.convolution_backward called directly (no autograd)")


# -- pooling ----------------------------------------------------------------------------------

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
        return {"x": _normal(rng, (N, C, H, W)), "dy": _normal(rng, (N, C, P, Q))}

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

    def reference(ctx, a):
        x, dy = a["x"], a["dy"]
        if op == "max":
            return {"fwd": lambda: refs.max_pool2d(x, k, s),
                    "bwd": lambda: refs.max_pool2d_backward(dy, x, k, s)}
        if op == "avg":
            return {"fwd": lambda: refs.avg_pool2d(x, k, s),
                    "bwd": lambda: refs.avg_pool2d_backward(dy, x, k, s)}
        return {"fwd": lambda: refs.global_avg_pool(x),
                "bwd": lambda: refs.global_avg_pool_backward(dy, x)}

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
                reference, torch, numpy_peer=numpy_peer,
                note="max-pool backward is given the forward's indices on both sides; torch: "
                     "the aten backward ops called directly")


# -- activations ------------------------------------------------------------------------------

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
        return {"x": _normal(rng, shape, scale), "dy": _normal(rng, shape)}

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
        if op in ("relu", "elu"):
            fwd, bwd = getattr(refs, op), getattr(refs, op + "_backward")
            return {"fwd": lambda: fwd(x), "bwd": lambda: bwd(dy, x)}
        fwd = {"tanh": np.tanh, "sigmoid": refs.sigmoid, "softmax": refs.softmax}[op]
        bwd = getattr(refs, op + "_backward")
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
                fastconv, reference, torch, numpy_peer=numpy_peer, tol=1e-5, note=note)


# -- normalisation and dropout ------------------------------------------------------------------

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
        a = {"x": _normal(rng, full, 2.0) + 1, "dy": _normal(rng, full)}
        if op.startswith("bn"):
            a.update(w=_normal(rng, (C,)), b=_normal(rng, (C,)), mean=_normal(rng, (C,)),
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
            return {"fwd": lambda: refs.batch_norm_train(x, a["w"], a["b"]),
                    "bwd": lambda: refs.batch_norm_train_backward(dy, x, a["w"])}
        if op == "bn_eval":
            return {"fwd": lambda: refs.batch_norm_eval(x, a["mean"], a["var"], a["w"], a["b"])}
        if op == "lrn":
            return {"fwd": lambda: refs.local_response_norm(x, *LRN_ARGS),
                    "bwd": lambda: refs.local_response_norm_backward(dy, x, *LRN_ARGS)}
        # the forward is random: _check_dropout judges it; this entry is never compared
        return {"fwd": lambda: None,
                "bwd": lambda: np.where(a["mask"] == 1, dy / (1 - DROP_P), 0)}

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
                fastconv, reference, torch, numpy_peer=numpy_peer, note=notes[op],
                check_fwd=_check_dropout if op == "dropout" else None)


# -- losses -----------------------------------------------------------------------------------

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
            return {"x": _normal(rng, full, 3.0), "t": rng.integers(0, shape[0], N)}
        return {"x": _normal(rng, full), "t": _normal(rng, full)}

    def fastconv(ctx, a):
        x, t = a["x"], a["t"]
        fwd, bwd = (F.cross_entropy, F.cross_entropy_backward) if op == "ce" else (
            F.mse_loss, F.mse_loss_backward)
        return {"fwd": lambda: fwd(x, t), "bwd": lambda: bwd(1.0, x, t)}

    def reference(ctx, a):
        x, t = a["x"], a["t"]
        fwd, bwd = (refs.cross_entropy, refs.cross_entropy_backward) if op == "ce" else (
            refs.mse_loss, refs.mse_loss_backward)
        return {"fwd": lambda: fwd(x, t), "bwd": lambda: bwd(x, t)}

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
                reference, torch, numpy_peer=numpy_peer, note=note)


# -- dense: linear and transposed convolution --------------------------------------------------

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
        return {"x": _normal(rng, (M, IN)), "w": _normal(rng, (OUT, IN), IN ** -0.5),
                "b": _normal(rng, (OUT,)), "dy": _normal(rng, (M, OUT))}

    def fastconv(ctx, a):
        return {"fwd": lambda: F.linear(a["x"], a["w"], a["b"]),
                "bwd": lambda: F.linear_backward(a["dy"], a["x"], a["w"])}

    def reference(ctx, a):
        return {"fwd": lambda: refs.linear(a["x"], a["w"], a["b"]),
                "bwd": lambda: refs.linear_backward(a["dy"], a["x"], a["w"])}

    def torch(ctx, a):
        x, w, b, dy = a["x"], a["w"], a["b"], a["dy"]
        return {"fwd": lambda: ctx.torch.nn.functional.linear(x, w, b),
                "bwd": lambda: (dy @ w, dy.t() @ x, dy.sum(0))}

    return Case("dense", name, f"{M}x{IN} -> {OUT}", "flop", {"fwd": flop, "bwd": 2 * flop},
                "2*M*IN*OUT forward; twice that backward (input and weight gradients)",
                inputs, fastconv, reference, torch, numpy_peer=numpy_peer, tf32=True,
                note="torch backward: the three products autograd would run, called directly")


def conv_transpose_case(name, N, C, H, W, K, R, S, stride, pad, numpy_peer=False):
    Ho, Wo = (H - 1) * stride - 2 * pad + R, (W - 1) * stride - 2 * pad + S
    flop = 2.0 * N * C * H * W * K * R * S

    def inputs(rng):
        return {"x": _normal(rng, (N, C, H, W)), "dy": _normal(rng, (N, K, Ho, Wo)),
                "w": _normal(rng, (C, K, R, S), (C * R * S) ** -0.5), "b": _normal(rng, (K,))}

    def fastconv(ctx, a):
        kw = dict(stride=stride, padding=pad)
        return {"fwd": lambda: F.conv_transpose2d(a["x"], a["w"], a["b"], **kw),
                "bwd": lambda: F.conv_transpose2d_backward(a["dy"], a["x"], a["w"], **kw)}

    def reference(ctx, a):
        return {"fwd": lambda: refs.conv_transpose2d(a["x"], a["w"], a["b"], stride, pad),
                "bwd": lambda: refs.conv_transpose2d_backward(a["dy"], a["x"], a["w"], stride, pad)}

    def torch(ctx, a):
        conv_bwd = ctx.torch.ops.aten.convolution_backward
        return {"fwd": lambda: ctx.torch.nn.functional.conv_transpose2d(
                    a["x"], a["w"], a["b"], stride, pad),
                "bwd": lambda: conv_bwd(a["dy"], a["x"], a["w"], [K], [stride] * 2, [pad] * 2,
                                        [1, 1], True, [0, 0], 1, [True] * 3)}

    return Case("dense", name, f"{N}x{C}x{H}x{W} -> {K}, {R}x{S}/{stride} pad {pad}", "flop",
                {"fwd": flop, "bwd": 2 * flop},
                "2*N*C_in*H*W*C_out*R*S forward; twice that backward", inputs, fastconv,
                reference, torch, numpy_peer=numpy_peer, tf32=True,
                note="torch backward: aten.convolution_backward (transposed) called directly")


# -- end to end: networks ------------------------------------------------------------------------

# name, cpu (train, infer) batch per suite, cuda
NETWORKS = [
    ("fashion_cnn", ((32, 128), (64, 256), (64, 1000)), ((256, 1024), (256, 1024), (256, 4096))),
    ("lenet5", ((32, 128), (64, 256), (64, 1000)), ((256, 1024), (256, 1024), (256, 4096))),
    ("resnet18", ((4, 8), (16, 64), (32, 128)), ((64, 128), (128, 256), (256, 512))),
]
LR = 0.01


def _fastconv_network(name):
    from .. import manual_seed
    from ..cli import build_model

    manual_seed(0)
    return build_model(name)


def _fastconv_steps(model, infer_model, x, y, xi):
    from .. import nn, optim

    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    params = list(model.parameters())
    first, last = params[0], params[-1]

    def train():
        opt.zero_grad()
        logits = model(x)
        loss_fn(logits, y)
        model.backward(loss_fn.backward())
        before = last.data.copy()
        opt.step()
        return logits, first.grad, last.data - before

    infer_model.eval()
    return {"train": train, "infer": lambda: infer_model(xi)}


def _torch_steps(torch, model, infer_model, x, y, xi):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    params = list(model.parameters())
    first, last = params[0], params[-1]

    def train():
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        before = last.detach().clone()
        opt.step()
        loss.item()  # fastconv's loss is a Python float: both read it back each step
        return logits.detach(), first.grad, last.detach() - before

    def infer():
        with torch.no_grad():
            return infer_model(xi)

    infer_model.eval()
    return {"train": train, "infer": infer}


def network_case(name, train_batch, infer_batch):
    from ._twins import load_fastconv_weights, torch_model

    def inputs(rng):
        return {"x": _normal(rng, (train_batch, 1, 28, 28)),
                "y": rng.integers(0, 10, train_batch),
                "xi": _normal(rng, (infer_batch, 1, 28, 28))}

    def fastconv(ctx, a):
        models = [_fastconv_network(name) for _ in range(2)]
        if ctx.device != "cpu":
            models = [m.to(ctx.device) for m in models]
        return _fastconv_steps(*models, a["x"], a["y"], a["xi"])

    def twins(torch, dtype, device):
        weights = _fastconv_network(name).state_dict()
        return [load_fastconv_weights(torch, torch_model(torch, name), weights).to(device, dtype)
                for _ in range(2)]

    def reference(ctx, a):
        if ctx.torch is None:
            # last resort without torch: fastconv itself in float64
            models = [_fastconv_network(name).to(np.float64) for _ in range(2)]
            return _fastconv_steps(*models, a["x"], a["y"], a["xi"])
        t = ctx.torch
        x, y, xi = (t.from_numpy(a[k]) for k in ("x", "y", "xi"))
        return _torch_steps(t, *twins(t, t.float64, "cpu"), x, y, xi)

    def torch(ctx, a):
        t = ctx.torch
        return _torch_steps(t, *twins(t, t.float32, ctx.torch_device), a["x"], a["y"], a["xi"])

    return Case("train", name, f"1x28x28, batch {train_batch} / {infer_batch}", "image",
                {"train": train_batch, "infer": infer_batch}, "images per call", inputs,
                # float32 through resnet18's 20 batch norms keeps only about three digits of the
                # first layer's gradient (PyTorch's differs from float64 by 2e-3 at batch 64),
                # and TF32 rounding swamps it: the TF32 peer is checked by its logits only
                fastconv, reference, torch, tf32=True, tf32_checks=1, tol=1e-2,
                note=f"train: forward, cross-entropy, backward, SGD step (lr {LR}, momentum "
                     "0.9), checked by the logits, the first layer's weight gradient and the "
                     "last parameter's update; infer: eval-mode forward. Reference: the same "
                     "network in float64 PyTorch (fastconv in float64 without torch)")


TABLES = [("conv", CONV, conv_case), ("pool", POOL, pool_case), ("act", ACT, act_case),
          ("norm", NORM, norm_case), ("loss", LOSS, loss_case), ("dense", LINEAR, linear_case),
          ("dense", CONV_TRANSPOSE, conv_transpose_case)]


def cases(device="cpu", suite="quick", ops=FAMILIES):
    """The cases of a suite for a device ("cpu" or "cuda"), restricted to the op families
    `ops`, in table order."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}, got {suite!r}")
    unknown = set(ops) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown op families {sorted(unknown)}; choose from "
                         f"{', '.join(FAMILIES)}")
    out = []
    for family, table, build in TABLES:
        for name, args, cpu, cuda, numpy_peer in table if family in ops else ():
            n = _batches(cpu, cuda).get((device, suite))
            if n:
                out.append(build(name, n, *args, numpy_peer=numpy_peer))
    if "train" in ops:
        for name, cpu, cuda in NETWORKS:
            batches = dict(zip(SUITES, cpu if device == "cpu" else cuda))
            out.append(network_case(name, *batches[suite]))
    return out
