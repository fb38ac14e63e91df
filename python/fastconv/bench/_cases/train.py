"""End-to-end cases: a training step and inference of whole networks, against the same
network in float64 PyTorch."""

import numpy as np

from ._common import Case, normal

# name, cpu (train, infer) batch per suite, cuda
NETWORKS = [
    ("fashion_cnn", ((32, 128), (64, 256), (64, 1000)), ((256, 1024), (256, 1024), (256, 4096))),
    ("lenet5", ((32, 128), (64, 256), (64, 1000)), ((256, 1024), (256, 1024), (256, 4096))),
    ("resnet18", ((4, 8), (16, 64), (32, 128)), ((64, 128), (128, 256), (256, 512))),
]
LR = 0.01


def _fastconv_network(name):
    from ... import manual_seed
    from ...models import build_model

    manual_seed(0)
    return build_model(name)


def _fastconv_steps(model, infer_model, x, y, xi):
    from ... import nn, optim

    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    params = list(model.parameters())
    first, last = params[0], params[-1]

    def train():
        opt.zero_grad()
        logits = model(x)
        loss_fn(logits, y)
        model.backward_params(loss_fn.backward())
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
    from .._twins import load_fastconv_weights, torch_model

    def inputs(rng):
        return {"x": normal(rng, (train_batch, 1, 28, 28)),
                "y": rng.integers(0, 10, train_batch),
                "xi": normal(rng, (infer_batch, 1, 28, 28))}

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
                # first layer's gradient, and TF32 rounding swamps it: the TF32 peer is checked
                # by its logits only. At small batches a ReLU whose input lies within float32's
                # rounding of zero flips, and the gradient moves by whole terms: at batch 4,
                # over 12 seeds, PyTorch's float32 step differed from float64 by up to 9.5e-3,
                # fastconv's direct path by 1.0e-2, its Winograd path by 6e-3 (1.2e-2 on the
                # quick suite's seed); logits and the last update stay within 2e-6.
                fastconv, reference, torch, tf32=True, tf32_checks=1,
                tol=3e-2 if name == "resnet18" else 1e-2,
                note=f"train: forward, cross-entropy, backward, SGD step (lr {LR}, momentum "
                     "0.9), checked by the logits, the first layer's weight gradient and the "
                     "last parameter's update; infer: eval-mode forward. Reference: the same "
                     "network in float64 PyTorch (fastconv in float64 without torch)")
