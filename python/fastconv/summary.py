"""fastconv.summary: a layer-by-layer table of output shapes and parameter counts.

One forward pass on zeros, in eval mode so that no batch-norm statistic moves; each leaf
layer's forward is wrapped for that pass only, and every wrapper and training flag is put back
afterwards, also when the forward raises.
"""

import numpy as np

from ._arrays import to_device
from .nn.module import watch_forward

__all__ = ["summary"]


def _format_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def summary(model, input_shape, dtype=np.float32, print_fn=print):
    """Run `model` once on np.zeros(input_shape, dtype) (batch dimension included) and print,
    per leaf layer in execution order, its name, type, output shape and parameter count, then
    the total, trainable and non-trainable parameter counts.

    Returns the rows as a list of dicts with keys name, type, output_shape (a tuple, batch
    included), params and trainable_params. A layer called twice appears twice; the totals
    count every parameter of the model once.
    """
    leaves = [(name, m) for name, m in model.named_modules() if not m._modules]
    names = {id(m): name for name, m in leaves}
    rows = []

    def record(module, y):
        params = list(module.parameters())
        rows.append(dict(name=names[id(module)] or type(module).__name__,
                         type=type(module).__name__, output_shape=tuple(np.shape(y)),
                         params=sum(p.size for p in params),
                         trainable_params=sum(p.size for p in params if p.requires_grad)))

    with watch_forward(model, [m for _, m in leaves], record):
        model(to_device(np.zeros(input_shape, dtype=dtype), model.device))

    total = sum(p.size for p in model.parameters())
    trainable = sum(p.size for p in model.parameters() if p.requires_grad)
    header = ("Layer (type)", "Output shape", "Param #")
    cells = [(f"{r['name']} ({r['type']})", _format_shape(r["output_shape"]), f"{r['params']:,}")
             for r in rows]
    w0 = max(len(c[0]) for c in cells + [header])
    w1 = max(len(c[1]) for c in cells + [header])
    w2 = max(len(c[2]) for c in cells + [header])
    rule = "-" * (w0 + w1 + w2 + 4)
    lines = [rule, f"{header[0]:<{w0}}  {header[1]:<{w1}}  {header[2]:>{w2}}", "=" * len(rule)]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in cells]
    lines += [rule, f"Input shape: {_format_shape(input_shape)}, dtype {np.dtype(dtype).name}",
              f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", rule]
    print_fn("\n".join(lines))
    return rows
