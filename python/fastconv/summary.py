"""fastconv.summary: a layer-by-layer table of output shapes and parameter counts.

One forward pass on zeros, in eval mode so that no batch-norm statistic moves; each leaf
layer's forward is wrapped for that pass only, and every wrapper and training flag is put back
afterwards, also when the forward raises.
"""

import numpy as np

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
    modes = [(m, m.training) for m in model.modules()]
    rows = []

    def wrap(name, module):
        forward = module.forward  # the bound class method; the instance attribute hides it

        def recorded(x):
            y = forward(x)
            params = list(module.parameters())
            rows.append(dict(name=name or type(module).__name__, type=type(module).__name__,
                             output_shape=tuple(np.shape(y)),
                             params=sum(p.size for p in params),
                             trainable_params=sum(p.size for p in params if p.requires_grad)))
            return y
        return recorded

    wrapped = []
    try:
        for name, module in leaves:
            if "forward" in module.__dict__:
                raise ValueError(f"fastconv.summary: {name or 'the model'} "
                                 f"({type(module).__name__}) already has a forward attribute "
                                 "of its own; summary wraps forward only as a class method")
            object.__setattr__(module, "forward", wrap(name, module))
            wrapped.append(module)
        model.eval()
        model(np.zeros(input_shape, dtype=dtype))
    finally:
        for module in wrapped:
            del module.__dict__["forward"]
        for module, mode in modes:
            object.__setattr__(module, "training", mode)

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
