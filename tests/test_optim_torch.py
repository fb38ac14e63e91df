"""Optimizers and schedulers against torch.optim: the same gradients give the same parameters."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastconv import optim  # noqa: E402
from fastconv.nn import Parameter  # noqa: E402

from _util import assert_close  # noqa: E402
from test_optim import CONFIGS, IDS, SHAPES, grads  # noqa: E402


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,_ref,kw", CONFIGS, ids=IDS)
def test_optim_matches_torch_over_20_steps(name, _ref, kw, dtype):
    rng = np.random.default_rng(11)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(optim, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for step_grads in grads(rng, SHAPES, 20):
        for p, t, g in zip(ours, theirs, step_grads):
            p.grad = g.astype(dtype)
            t.grad = torch.tensor(g.astype(dtype))
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        assert_close(p.data, t.detach().numpy(), 1e-12 if dtype == np.float64 else 1e-6,
                     what=name)


SCHEDULERS = [
    ("StepLR", dict(step_size=4, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("LambdaLR", dict(lr_lambda=lambda k: 0.95 ** k + 0.01 * k)),
]


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_lr_scheduler_matches_torch(name, kw):
    p = Parameter(np.ones(2))
    opt = optim.SGD([{"params": [p]}, {"params": [Parameter(np.ones(1))], "lr": 0.3}], lr=0.1)
    t = torch.zeros(2, requires_grad=True)
    topt = torch.optim.SGD([{"params": [t]}, {"params": [torch.zeros(1, requires_grad=True)],
                                               "lr": 0.3}], lr=0.1)
    sched = getattr(optim.lr_scheduler, name)(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    for _ in range(15):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)


def test_reduce_lr_on_plateau_matches_torch():
    metrics = [5, 4, 4.1, 4.2, 3.999, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2]
    kw = dict(mode="min", factor=0.5, patience=1, threshold=1e-3, cooldown=2, min_lr=0.01)
    opt = optim.SGD([Parameter(np.ones(1))], lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    for m in metrics:
        sched.step(m)
        tsched.step(m)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)
