"""Optimizers and schedulers against the float64 reference (fastconv/_opinfo/optim.py)."""

import numpy as np
import pytest

import fastconv as fc
from fastconv import optim
from fastconv.nn import Parameter

from fastconv._opinfo import optim as ref
from _util import assert_close

SHAPES = [(7, 3), (5,), (2, 3, 4, 5)]

CONFIGS = [
    ("SGD", ref.sgd, dict(lr=0.1)),
    ("SGD", ref.sgd, dict(lr=0.05, momentum=0.9)),
    ("SGD", ref.sgd, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2)),
    ("SGD", ref.sgd, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ("SGD", ref.sgd, dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adagrad", ref.adagrad, dict(lr=0.1)),
    ("Adagrad", ref.adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=1e-2,
                                  initial_accumulator_value=0.1)),
    ("RMSprop", ref.rmsprop, dict(lr=0.01)),
    ("RMSprop", ref.rmsprop, dict(lr=0.01, momentum=0.9, weight_decay=1e-2)),
    ("RMSprop", ref.rmsprop, dict(lr=0.01, centered=True, alpha=0.9)),
    ("RMSprop", ref.rmsprop, dict(lr=0.01, centered=True, momentum=0.5, maximize=True)),
    ("Adam", ref.adam, dict(lr=0.01)),
    ("Adam", ref.adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2)),
    ("Adam", ref.adam, dict(lr=0.01, amsgrad=True, eps=1e-6)),
    ("AdamW", ref.adamw, dict(lr=0.01)),
    ("AdamW", ref.adamw, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, _, kw in CONFIGS]


def grads(rng, shapes, steps):
    return [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,reference,kw", CONFIGS, ids=IDS)
def test_optim_matches_reference_over_20_steps(name, reference, kw, dtype):
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s) for s in SHAPES]
    params = [Parameter(a.astype(dtype)) for a in init]
    opt = getattr(optim, name)(params, **kw)
    expected, states = [a.copy() for a in init], [{} for _ in SHAPES]
    for step_grads in grads(rng, SHAPES, 20):
        for p, g in zip(params, step_grads):
            p.grad = g.astype(dtype)
        opt.step()
        expected = [reference(e, g.astype(dtype).astype(np.float64), s, **kw)
                    for e, g, s in zip(expected, step_grads, states)]
    for p, e in zip(params, expected):
        assert p.data.dtype == dtype
        assert_close(p.data, e, 1e-11 if dtype == np.float64 else 2e-5, what=name)


def test_optim_skips_frozen_and_gradless_parameters():
    rng = np.random.default_rng(0)
    frozen = Parameter(rng.standard_normal((4, 3)), requires_grad=False)
    gradless = Parameter(rng.standard_normal(5))
    live = Parameter(rng.standard_normal(6))
    before = (frozen.data.copy(), gradless.data.copy(), live.data.copy())
    opt = optim.Adam([frozen, gradless, live], lr=0.1)
    frozen.grad = rng.standard_normal((4, 3))
    for _ in range(5):
        live.grad = rng.standard_normal(6)
        opt.step()
    np.testing.assert_array_equal(frozen.data, before[0])
    np.testing.assert_array_equal(gradless.data, before[1])
    assert not np.array_equal(live.data, before[2])
    assert frozen not in opt.state and gradless not in opt.state


def test_optim_param_groups_use_their_own_hyperparameters():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = np.ones(3)
    b.grad = np.ones(3)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.5)


@pytest.mark.parametrize("name,reference,kw", CONFIGS[1::2], ids=IDS[1::2])
def test_optim_state_dict_round_trip_continues_identically(name, reference, kw):
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(s) for s in SHAPES]
    history = grads(rng, SHAPES, 10)
    a = [Parameter(x.copy()) for x in init]
    opt_a = getattr(optim, name)(a, **kw)
    for gs in history[:5]:
        for p, g in zip(a, gs):
            p.grad = g
        opt_a.step()
    b = [Parameter(p.data.copy()) for p in a]
    opt_b = getattr(optim, name)(b, **kw)
    opt_b.load_state_dict(opt_a.state_dict())
    for gs in history[5:]:
        for pa, pb, g in zip(a, b, gs):
            pa.grad, pb.grad = g, g.copy()
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_optim_zero_grad():
    p = Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(3)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, 0)
    opt.zero_grad()
    assert p.grad is None


def test_optim_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(9)
    init, g = rng.standard_normal(100_003), rng.standard_normal(100_003)
    results = []
    before = fc.get_num_threads()
    try:
        for threads in (1, 2):
            fc.set_num_threads(threads)
            p = Parameter(init.copy())
            p.grad = g
            opt = optim.Adam([p], lr=0.01, amsgrad=True)
            for _ in range(3):
                opt.step()
            results.append(p.data)
    finally:
        fc.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-1), "learning rate"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.1), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "beta parameter at index 0"),
    (lambda p: optim.Adam(p, eps=-1), "epsilon"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "alpha"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "lr_decay"),
    (lambda p: optim.AdamW(p, weight_decay=-1), "weight_decay"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    # NaN passed a `< 0` check (torch's Adam, RMSprop and Adagrad test `not 0.0 <= value`)
    (lambda p: optim.Adam(p, lr=float("nan")), "learning rate: nan"),
    (lambda p: optim.AdamW(p, eps=float("nan")), "epsilon value: nan"),
    (lambda p: optim.RMSprop(p, alpha=float("nan")), "alpha value: nan"),
    (lambda p: optim.RMSprop(p, momentum=float("nan")), "momentum value: nan"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=float("nan")),
     "initial_accumulator_value value: nan"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=float("nan")), "weight_decay value: nan"),
    # a single beta failed only at the first step, unpacking
    (lambda p: optim.Adam(p, betas=(0.9,)), r"betas must be a pair"),
])
def test_optim_rejects_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([Parameter(np.ones(2))])


def test_optim_rejects_non_parameters_and_mismatched_gradients():
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.ones(3)], lr=0.1)
    p = Parameter(np.ones(3))
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(4)
    with pytest.raises(ValueError, match="does not match"):
        opt.step()
    p.grad = np.ones(3, dtype=np.float32)
    with pytest.raises(ValueError, match="does not match"):
        opt.step()


def test_optim_checks_every_parameter_before_updating_any():
    """A refusal used to come after the parameters before it were updated: a half-stepped model."""
    a, b = Parameter(np.ones(3)), Parameter(np.ones((2, 3)))
    b.data = np.ones((3, 2)).T  # a view: cannot be updated in place
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = np.ones(3), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[1\].data must be "
                                         "C-contiguous"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))
    assert not opt.state


@pytest.mark.parametrize("name,reference,kw", CONFIGS[1::3], ids=IDS[1::3])
def test_optim_reads_a_non_contiguous_gradient_as_its_values(name, reference, kw):
    """A transposed or strided gradient (torch steps with it) was refused."""
    rng = np.random.default_rng(5)
    init = rng.standard_normal((4, 3))
    ours, plain = Parameter(init.copy()), Parameter(init.copy())
    opt, opt2 = getattr(optim, name)([ours], **kw), getattr(optim, name)([plain], **kw)
    for _ in range(3):
        g = rng.standard_normal((3, 8))
        ours.grad, plain.grad = g.T[::2], np.ascontiguousarray(g.T[::2])
        opt.step()
        opt2.step()
    np.testing.assert_array_equal(ours.data, plain.data)


def test_optim_checks_the_state_of_every_parameter_before_updating_any():
    """A malformed state array was refused by the kernel after the parameters before it were
    updated (and its step count already raised)."""
    a, b = Parameter(np.ones(4, np.float32)), Parameter(np.ones(3, np.float32))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad, b.grad = np.full(4, 0.5, np.float32), np.full(3, 0.5, np.float32)
    opt.step()
    before = a.data.copy()
    opt.state[b]["exp_avg"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"state\['exp_avg'\] of param_groups\[0\]\['params'\]"
                                         r"\[1\] must be \(3,\) float32"):
        opt.step()
    np.testing.assert_array_equal(a.data, before)
    assert opt.state[b]["step"] == 1
    opt.state[b]["exp_avg"] = b.data
    with pytest.raises(ValueError, match="is the parameter or its gradient itself"):
        opt.step()


@pytest.mark.parametrize("edit,exc,match", [
    (lambda sd: sd["param_groups"][0].update(lr=float("nan")), ValueError,
     "Invalid learning rate: nan"),
    (lambda sd: sd["param_groups"][0].update(betas=(float("nan"), 0.999)), ValueError, "beta"),
    (lambda sd: sd["state"][0].update(step=-1), ValueError, r"state\['step'\].*whole number"),
    (lambda sd: sd["state"][0].update(step=float("nan")), ValueError, "whole number"),
    (lambda sd: sd["state"][0].update(exp_avg=np.zeros(2)), ValueError, "must be"),
    (lambda sd: sd["state"].update({0: [1, 2]}), TypeError, r"state\[0\] must be a dict"),
    (lambda sd: sd.pop("param_groups"), TypeError, "'param_groups'"),
])
def test_optim_load_state_dict_checks_what_it_loads(edit, exc, match):
    """Loaded settings and state went unchecked: NaN parameters, ZeroDivisionError, KeyError."""
    p = Parameter(np.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    edit(state)
    fresh = optim.Adam([Parameter(np.ones(3))], lr=0.1)
    with pytest.raises(exc, match=match):
        fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 0.1 and not fresh.state


def test_optim_loads_a_learning_rate_its_schedule_left_a_rounding_below_zero():
    """LinearLR to 0 ends at -5.6e-18; the optimizer refused its own state_dict (torch checks
    only the constructor's lr)."""
    opt = optim.SGD([Parameter(np.ones(2))], lr=1.0)
    sched = optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=0.0, total_iters=4)
    for _ in range(4):
        sched.step()
    assert opt.param_groups[0]["lr"] < 0
    fresh = optim.SGD([Parameter(np.ones(2))], lr=1.0)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_optim_keeps_no_state_for_a_parameter_without_any():
    """SGD without momentum has no state: torch's state_dict has no entry (ours had {0: {}}), and
    state[p] reads as {} before a first step, as torch's defaultdict."""
    p = Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1)
    assert opt.state[p] == {}
    p.grad = np.ones(2)
    opt.step()
    opt.state.clear()
    opt.step()
    assert opt.state_dict()["state"] == {}


def test_sgd_group_with_nesterov_but_no_momentum_is_plain_sgd():
    """torch checks nesterov against the defaults only; such a group steps as plain SGD."""
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = optim.SGD([{"params": [p], "momentum": 0}, {"params": [q]}], lr=0.5, momentum=0.9,
                    nesterov=True)
    p.grad = q.grad = np.full(2, 2.0)
    opt.step()
    np.testing.assert_array_equal(p.data, np.zeros(2))


def _lrs(make_scheduler, epochs=25, metrics=None):
    p = Parameter(np.ones(1))
    opt = optim.SGD([{"params": [p]}, {"params": [Parameter(np.ones(1))], "lr": 0.5}], lr=0.1)
    sched = make_scheduler(opt)
    out = []
    for epoch in range(epochs):
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[epoch])
        out.append(sched.get_last_lr())
    return np.array(out)


def test_lr_schedulers_follow_their_closed_forms():
    e = np.arange(1, 26)[:, None]
    base = np.array([[0.1, 0.5]])
    sched = optim.lr_scheduler
    assert_close(_lrs(lambda o: sched.StepLR(o, 7, gamma=0.5)), base * 0.5 ** (e // 7), 1e-14)
    assert_close(_lrs(lambda o: sched.MultiStepLR(o, [3, 10, 10, 20], gamma=0.1)),
                 base * 0.1 ** ((e >= 3) + 2 * (e >= 10) + (e >= 20)), 1e-14)
    assert_close(_lrs(lambda o: sched.ExponentialLR(o, 0.9)), base * 0.9 ** e, 1e-13)
    assert_close(_lrs(lambda o: sched.LambdaLR(o, lambda k: 1 / (1 + k))), base / (1 + e), 1e-14)


def test_reduce_lr_on_plateau_waits_for_patience_then_cools_down():
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    lrs = _lrs(lambda o: optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=2,
                                                               cooldown=1, min_lr=0.03),
               epochs=len(metrics), metrics=metrics)[:, 0]
    # Bad epochs after the best (0.9 at epoch 2): reduce when more than 2 in a row, then skip
    # one epoch of counting (cooldown), never below min_lr.
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.03, 0.03,
                                     0.03, 0.03])


def test_optim_takes_named_parameters_and_keeps_the_names():
    """model.named_parameters() (torch 2.x takes it) was a TypeError: tuples are not Parameters."""
    net = fc.nn.Sequential(fc.nn.Linear(3, 2), fc.nn.ReLU(), fc.nn.Linear(2, 1))
    opt = optim.SGD(net.named_parameters(), lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["param_names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert opt.param_groups[0]["params"] == list(net.parameters())
    groups = optim.Adam([{"params": net[0].named_parameters(), "lr": 0.5},
                         {"params": [("head.weight", net[2].weight)]}], lr=0.1)
    assert [g["param_names"] for g in groups.param_groups] == [["weight", "bias"],
                                                               ["head.weight"]]
    for p in net.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    saved = opt.state_dict()
    assert saved["param_groups"][0]["param_names"] == ["0.weight", "0.bias", "2.weight",
                                                       "2.bias"]
    again = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    again.load_state_dict(saved)  # the saved names replace none, as torch
    assert again.param_groups[0]["param_names"] == saved["param_groups"][0]["param_names"]


@pytest.mark.parametrize("groups,exc,match", [
    (lambda n: [("a", n[0].weight), n[0].bias], ValueError, "some names are missing"),
    (lambda n: [{"params": n[0].named_parameters()}, {"params": [n[2].weight]}], ValueError,
     "cannot add a group without names"),
    (lambda n: [{"params": [n[2].weight]}, {"params": n[0].named_parameters()}], ValueError,
     "cannot add a group with names"),
    (lambda n: [("a", n[0].weight, 1)], TypeError, r"a \(name, Parameter\) pair, got a tuple "
                                                   "of 3"),
    (lambda n: [("a", np.ones(2))], TypeError, "can only optimize fastconv.nn.Parameter"),
], ids=["partly-named", "unnamed-after-named", "named-after-unnamed", "triple", "array"])
def test_optim_refuses_named_parameters_mixed_with_unnamed_as_torch(groups, exc, match):
    net = fc.nn.Sequential(fc.nn.Linear(3, 2), fc.nn.ReLU(), fc.nn.Linear(2, 1))
    with pytest.raises(exc, match=match):
        optim.SGD(groups(net), lr=0.1)
