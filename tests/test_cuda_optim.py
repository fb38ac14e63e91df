"""Optimizers on the GPU: CuPy parameters through fastconv.optim, against the float64 reference
and the same optimizer on NumPy parameters (parameters and state buffers), a parameter large
enough for the grid-stride loop, state_dict across devices, and device checks."""

import numpy as np
import pytest

from fastconv import optim
from fastconv._loader import _C
from fastconv.nn import Parameter

from _cuda import covering, cp, dev, host, requires_cuda
from _util import assert_close
from test_optim import CONFIGS, IDS, SHAPES, grads

pytestmark = requires_cuda

# kernel_cover: each optimizer's last configuration, the one with the most options on.
COVER_CONFIGS = covering(CONFIGS, *{c[0]: c for c in CONFIGS}.values(), spread=True)


def _tol(dtype):
    return 1e-11 if dtype == np.float64 else 2e-5


def _pair(name, kw, init, dtype):
    """The same optimizer over NumPy and over CuPy copies of init."""
    cpu = [Parameter(a.astype(dtype)) for a in init]
    gpu = [Parameter(dev(a.astype(dtype))) for a in init]
    return cpu, gpu, getattr(optim, name)(cpu, **kw), getattr(optim, name)(gpu, **kw)


def _assert_states_close(opt_cpu, opt_gpu, cpu, gpu, tol, what):
    for pc, pg in zip(cpu, gpu):
        sc, sg = opt_cpu.state[pc], opt_gpu.state[pg]
        assert sc.keys() == sg.keys(), what
        for key, value in sc.items():
            if isinstance(value, np.ndarray):
                assert isinstance(sg[key], cp.ndarray), f"{what}: state {key} left the GPU"
                assert_close(host(sg[key]), value, tol, what=f"{what} state {key}")
            else:
                assert sg[key] == value, f"{what}: state {key}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,reference,kw", COVER_CONFIGS, ids=IDS)
def test_optim_gpu_matches_cpu_and_reference_over_20_steps(name, reference, kw, dtype):
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s) for s in SHAPES]
    cpu, gpu, opt_cpu, opt_gpu = _pair(name, kw, init, dtype)
    expected, states = [a.copy() for a in init], [{} for _ in SHAPES]
    for step_grads in grads(rng, SHAPES, 20):
        for pc, pg, g in zip(cpu, gpu, step_grads):
            pc.grad = g.astype(dtype)
            pg.grad = dev(pc.grad)
        opt_cpu.step()
        opt_gpu.step()
        expected = [reference(e, g.astype(dtype).astype(np.float64), s, **kw)
                    for e, g, s in zip(expected, step_grads, states)]
    for pc, pg, e in zip(cpu, gpu, expected):
        assert isinstance(pg.data, cp.ndarray) and pg.data.dtype == dtype
        assert_close(host(pg.data), e, _tol(dtype), what=f"{name} vs reference")
        assert_close(host(pg.data), pc.data, _tol(dtype), what=f"{name} vs CPU")
    _assert_states_close(opt_cpu, opt_gpu, cpu, gpu, _tol(dtype), name)


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=1e-2)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=1e-2)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
], ids=["SGD", "Adagrad", "RMSprop", "AdamW"])
def test_optim_gpu_large_parameter_is_deterministic(name, kw):
    """More elements than the grid has threads (the grid-stride loop), bitwise the same on a
    second run."""
    rng = np.random.default_rng(4)
    shape = (3_000_017,)
    init, gs = [rng.standard_normal(shape)], grads(rng, [shape], 3)
    runs = []
    for _ in range(2):
        cpu, gpu, opt_cpu, opt_gpu = _pair(name, kw, init, np.float32)
        for (g,) in gs:
            cpu[0].grad = g.astype(np.float32)
            gpu[0].grad = dev(cpu[0].grad)
            opt_cpu.step()
            opt_gpu.step()
        runs.append(host(gpu[0].data))
    assert_close(runs[0], cpu[0].data, _tol(np.float32), what=name)
    _assert_states_close(opt_cpu, opt_gpu, cpu, gpu, _tol(np.float32), name)
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize("name,reference,kw", CONFIGS[1::2], ids=IDS[1::2])
def test_optim_gpu_state_dict_round_trip_and_across_devices(name, reference, kw):
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(s) for s in SHAPES]
    history = grads(rng, SHAPES, 10)
    a = [Parameter(dev(x)) for x in init]
    opt_a = getattr(optim, name)(a, **kw)
    for gs in history[:5]:
        for p, g in zip(a, gs):
            p.grad = dev(g)
        opt_a.step()
    saved = opt_a.state_dict()
    b = [Parameter(p.data.copy()) for p in a]
    c = [Parameter(host(p.data)) for p in a]
    opt_b, opt_c = getattr(optim, name)(b, **kw), getattr(optim, name)(c, **kw)
    opt_b.load_state_dict(saved)
    opt_c.load_state_dict(saved)
    assert all(isinstance(v, np.ndarray) for s in opt_c.state.values() for v in s.values()
               if hasattr(v, "shape")), "a GPU state loaded into a CPU optimizer stays on the GPU"
    for gs in history[5:]:
        for pa, pb, pc, g in zip(a, b, c, gs):
            pa.grad, pb.grad, pc.grad = dev(g), dev(g), g.copy()
        for opt in (opt_a, opt_b, opt_c):
            opt.step()
    for pa, pb, pc in zip(a, b, c):
        assert np.array_equal(host(pa.data), host(pb.data))
        assert_close(pc.data, host(pa.data), 1e-11, what="continued on the CPU")


def test_optim_gpu_empty_parameter():
    p = Parameter(cp.zeros((0, 3)))
    p.grad = cp.zeros((0, 3))
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9), optim.Adam([p], amsgrad=True),
                optim.RMSprop([p], centered=True, momentum=0.5), optim.Adagrad([p])):
        opt.step()
    assert p.data.shape == (0, 3)


def test_optim_devices_do_not_mix():
    # checked before any parameter is updated: the first, well placed, is left as it was
    a, p = Parameter(cp.ones(3)), Parameter(cp.ones(3))
    a.grad, p.grad = cp.ones(3), np.ones(3)
    opt = optim.Adam([a, p], lr=0.1)
    with pytest.raises(ValueError, match=r"the gradient of param_groups\[0\]\['params'\]\[1\] "
                                         r"is on cpu, the parameter on cuda"):
        opt.step()
    assert (host(a.data) == 1).all() and a not in opt.state
    with pytest.raises(ValueError, match="momentum_buffer is on the CPU"):
        _C.sgd_step(cp.ones(3), np.zeros(3), cp.ones(3), 0.1, 0.9, 0.0, 0.0, False, False, True)
    with pytest.raises(ValueError, match="exp_avg_sq is on the CPU"):
        _C.adam_step(cp.ones(3), cp.zeros(3), np.zeros(3), None, cp.ones(3), 0.1, 0.9, 0.999,
                     1e-8, 0.0, 0.1, 0.1, False, False, False)
    with pytest.raises(ValueError, match="param is on the CPU"):
        _C.adagrad_step(np.ones(3), cp.zeros(3), cp.ones(3), 0.1, 0.0, 1e-10, False)
