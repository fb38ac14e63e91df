"""Optimizers and schedulers against torch.optim: the same gradients give the same parameters."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastconv import nn, optim  # noqa: E402
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
    ("MultiplicativeLR", dict(lr_lambda=lambda k: 0.9 + 0.01 * (k % 3))),
    ("ConstantLR", dict(factor=0.4, total_iters=6)),
    ("LinearLR", dict(start_factor=0.2, end_factor=0.9, total_iters=7)),
    ("PolynomialLR", dict(total_iters=9, power=1.7)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.001)),
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


def _pair_of_optimizers(lrs=(0.1, 0.3)):
    opt = optim.SGD([{"params": [Parameter(np.ones(1))], "lr": lr} for lr in lrs])
    topt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr}
                            for lr in lrs])
    return opt, topt


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_lr_scheduler_resumed_with_last_epoch_matches_torch(name, kw):
    """ExponentialLR resumed with last_epoch=k multiplied by gamma once too often."""
    opt, topt = _pair_of_optimizers()
    for group in opt.param_groups + topt.param_groups:
        group["initial_lr"], group["lr"] = group["lr"], group["lr"] * 0.5
    sched = getattr(optim.lr_scheduler, name)(opt, last_epoch=4, **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, last_epoch=4, **kw)
    for _ in range(8):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()


CLOSED_FORMS = [s for s in SCHEDULERS if s[0] not in ("LambdaLR", "MultiplicativeLR",
                                                      "CosineAnnealingWarmRestarts")]


@pytest.mark.parametrize("name,kw", CLOSED_FORMS, ids=[s[0] for s in CLOSED_FORMS])
def test_lr_scheduler_step_with_an_epoch_takes_torchs_closed_form(name, kw):
    opt, topt = _pair_of_optimizers()
    sched = getattr(optim.lr_scheduler, name)(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    for epoch in (3, 9, 5, 5, 12):
        with pytest.warns(UserWarning, match="deprecated"):
            sched.step(epoch)
        with pytest.warns(UserWarning):
            tsched.step(epoch)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)


class _Decay:
    """A callable object: torch's LambdaLR saves its attributes in state_dict."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate ** epoch


def test_lambda_lr_state_dict_keeps_a_callable_objects_attributes_as_torch():
    opt, topt = _pair_of_optimizers()
    sched = optim.lr_scheduler.LambdaLR(opt, [_Decay(0.5), lambda k: 1.0])
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, [_Decay(0.5), lambda k: 1.0])
    state, tstate = sched.state_dict(), tsched.state_dict()
    assert state["lr_lambdas"] == tstate["lr_lambdas"] == [{"rate": 0.5}, None]
    other, tother = _pair_of_optimizers()
    resumed = optim.lr_scheduler.LambdaLR(other, [_Decay(0.9), lambda k: 1.0])
    tresumed = torch.optim.lr_scheduler.LambdaLR(tother, [_Decay(0.9), lambda k: 1.0])
    resumed.load_state_dict(tstate)
    tresumed.load_state_dict(tstate)
    assert resumed.lr_lambdas[0].rate == tresumed.lr_lambdas[0].rate == 0.5
    other.step()
    tother.step()
    resumed.step()
    tresumed.step()
    assert resumed.get_last_lr() == pytest.approx(tresumed.get_last_lr(), rel=1e-15)


def test_schedulers_meet_a_group_added_later_as_torch():
    """A group added after the scheduler: ReduceLROnPlateau with a scalar min_lr reduces it
    too (ours left it alone), with a list refuses; LambdaLR refuses (ours left it alone)."""
    opt, topt = _pair_of_optimizers(lrs=(0.1,))
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=0.01)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=0, min_lr=0.01)
    opt.add_param_group({"params": [Parameter(np.ones(1))], "lr": 2.0})
    topt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 2.0})
    for metric in (1.0, 2.0, 3.0):
        sched.step(metric)
        tsched.step(metric)
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-15)
    assert sched.get_last_lr()[1] == pytest.approx(0.02)
    opt, _ = _pair_of_optimizers(lrs=(0.1,))
    listed = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, min_lr=[0.01])
    opt.add_param_group({"params": [Parameter(np.ones(1))], "lr": 2.0})
    listed.step(1.0)
    with pytest.raises(ValueError, match="2 parameter groups, min_lr gave 1"):
        listed.step(2.0)
    opt, _ = _pair_of_optimizers(lrs=(0.1,))
    lam = optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5)
    opt.add_param_group({"params": [Parameter(np.ones(1))], "lr": 2.0})
    with pytest.raises(ValueError, match="2 parameter groups, the scheduler was built for 1"):
        lam.step()


def test_torch_optimizer_state_dict_loads_and_continues_as_torch():
    """torch's state (tensors, a 0-d step count) used to load as is and fail at the next step."""
    rng = np.random.default_rng(3)
    init = rng.standard_normal((3, 4))
    t = torch.tensor(init, requires_grad=True)
    topt = torch.optim.Adam([t], lr=0.01, amsgrad=True, foreach=False)
    for _ in range(3):
        t.grad = torch.tensor(rng.standard_normal((3, 4)))
        topt.step()
    p = Parameter(t.detach().numpy().copy())
    opt = optim.Adam([p], lr=0.01, amsgrad=True)
    opt.load_state_dict(topt.state_dict())
    assert opt.state[p]["step"] == 3
    for _ in range(3):
        g = rng.standard_normal((3, 4))
        p.grad, t.grad = g, torch.tensor(g)
        opt.step()
        topt.step()
    assert_close(p.data, t.detach().numpy(), 1e-12, what="Adam after torch's state")


def _twins(make):
    """Our scheduler and torch's, each made by make(module, optimizer) on an SGD of two groups
    (momentum, for OneCycleLR's cycling)."""
    opt, topt = _pair_of_optimizers()
    for o in (opt, topt):
        for group in o.param_groups:
            group["momentum"] = 0.9
        o.defaults["momentum"] = 0.9
    return (make(optim.lr_scheduler, opt), make(torch.optim.lr_scheduler, topt), opt, topt)


def _run_twins(sched, tsched, opt, topt, steps):
    for _ in range(steps):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13, abs=1e-18)
        for g, t in zip(opt.param_groups, topt.param_groups):
            assert g["momentum"] == pytest.approx(t["momentum"], rel=1e-13)


@pytest.mark.parametrize("kw", [
    dict(max_lr=0.5, total_steps=40),
    dict(max_lr=[0.5, 1.0], epochs=4, steps_per_epoch=10, pct_start=0.25,
         anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0),
    dict(max_lr=0.5, total_steps=40, three_phase=True, base_momentum=0.8, max_momentum=0.9),
    dict(max_lr=0.5, total_steps=40, cycle_momentum=False),
], ids=["cos", "linear_per_group", "three_phase", "no_momentum"])
def test_one_cycle_lr_matches_torch(kw):
    sched, tsched, opt, topt = _twins(lambda m, o: m.OneCycleLR(o, **kw))
    _run_twins(sched, tsched, opt, topt, 39)
    with pytest.raises(ValueError, match="Tried to step 41 times"):
        sched.step()
        sched.step()


def test_one_cycle_lr_cycles_adams_beta1_as_torch():
    p, t = Parameter(np.ones(2)), torch.zeros(2, requires_grad=True)
    opt, topt = optim.Adam([p], lr=0.1), torch.optim.Adam([t], lr=0.1)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=12)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.3, total_steps=12)
    for _ in range(11):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert opt.param_groups[0]["betas"] == pytest.approx(topt.param_groups[0]["betas"])
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13)


@pytest.mark.parametrize("which", ["sequential", "chained"])
def test_sequential_and_chained_schedulers_match_torch(which):
    def make(m, o):
        warm = m.LinearLR(o, start_factor=0.1, total_iters=4)
        decay = m.CosineAnnealingLR(o, T_max=10, eta_min=0.001)
        if which == "sequential":
            return m.SequentialLR(o, [warm, m.ExponentialLR(o, 0.9), decay], milestones=[4, 9])
        return m.ChainedScheduler([warm, m.ExponentialLR(o, 0.95)])

    sched, tsched, opt, topt = _twins(make)
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13)
    _run_twins(sched, tsched, opt, topt, 20)
    state = sched.state_dict()
    resumed, tresumed, ropt, rtopt = _twins(make)
    resumed.load_state_dict(state)
    tresumed.load_state_dict(tsched.state_dict())
    for group, saved in zip(ropt.param_groups, opt.param_groups):
        group["lr"] = saved["lr"]
    for group, saved in zip(rtopt.param_groups, topt.param_groups):
        group["lr"] = saved["lr"]
    _run_twins(resumed, tresumed, ropt, rtopt, 5)


def test_warm_restarts_with_fractional_epochs_match_torch():
    sched, tsched, opt, topt = _twins(
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=0.01))
    for epoch in (0.5, 1.25, 3.9, 4.0, 7.5, 12.0, 13.3, 30.0, 2.0):
        sched.step(epoch)
        tsched.step(epoch)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13)


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("shape", ["sequential_in_sequential", "chained_in_sequential"])
def test_nested_sequential_schedulers_match_torch(shape):
    """Only the outer SequentialLR's direct members were stepped back (torch goes down to the
    leaves): a nested one ran an epoch ahead, a ChainedScheduler inside had no last_epoch."""
    def make(m, o):
        if shape == "sequential_in_sequential":
            inner = m.SequentialLR(o, [m.LinearLR(o, start_factor=1.0, end_factor=0.5,
                                                  total_iters=5)], [])
            return m.SequentialLR(o, [inner, m.ExponentialLR(o, 0.9)], [4])
        return m.SequentialLR(o, [m.ChainedScheduler([m.ExponentialLR(o, 0.5)]),
                                  m.StepLR(o, 2)], [3])

    sched, tsched, opt, topt = _twins(make)
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13)
    _run_twins(sched, tsched, opt, topt, 8)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adam", dict(lr=0.01))])
def test_optim_of_named_parameters_matches_torch(name, kw):
    """torch 2.x takes model.named_parameters() and keeps the names in "param_names"."""
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                 torch.nn.Linear(4, 2)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    opt = getattr(optim, name)([{"params": ours[0].named_parameters(), "lr": 0.05},
                                {"params": ours[2].named_parameters()}], **kw)
    topt = getattr(torch.optim, name)([{"params": theirs[0].named_parameters(), "lr": 0.05},
                                       {"params": theirs[2].named_parameters()}],
                                      foreach=False, **kw)
    rng = np.random.default_rng(2)
    for _ in range(3):
        for (_, p), (_, t) in zip(ours.named_parameters(), theirs.named_parameters()):
            g = rng.standard_normal(p.shape)
            p.grad, t.grad = g, torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.data, t.detach().numpy(), 1e-12)
    ours_groups, their_groups = opt.state_dict()["param_groups"], topt.state_dict()["param_groups"]
    for g, t in zip(ours_groups, their_groups):
        assert g["param_names"] == t["param_names"] and g["params"] == t["params"]
    with pytest.raises(ValueError, match="with/without names"):
        topt.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})
    with pytest.raises(ValueError, match="with names or all without"):
        opt.add_param_group({"params": [Parameter(np.zeros(1))]})
    fresh = getattr(optim, name)(ours.parameters(), **kw)  # torch's names load into ours
    tsd = torch.optim.SGD(theirs.named_parameters(), lr=0.1).state_dict()
    fresh_sd = fresh.state_dict()
    fresh_sd["param_groups"][0]["param_names"] = tsd["param_groups"][0]["param_names"]
    fresh.load_state_dict(fresh_sd)
    assert fresh.param_groups[0]["param_names"] == [n for n, _ in theirs.named_parameters()]
