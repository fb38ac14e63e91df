"""The op specs themselves (fastconv._opinfo): every public functional op has one, their
names resolve (functional op, module, PyTorch counterpart, kernels), their sample inputs keep
away from the kinks, every float64 reference backward matches central finite differences of
its forward, and every reference agrees with PyTorch where PyTorch has the op."""

import numpy as np
import pytest

import fastconv.functional as F
from fastconv import _opinfo
from fastconv._loader import _C
from fastconv._opinfo import FD_STEP, KINK_MARGIN, SPECS

from _util import assert_close, stable_seed

OPS = [s for s in SPECS if s.family != "optim"]
CASES = [(s, sample) for s in OPS for sample in s.samples]
CASE_IDS = [f"{s.name}-{sample.id}" for s, sample in CASES]
TORCH_CASES = [(s, sample) for s, sample in CASES if s.torch]
GRAD_CASES = [(s, sample) for s, sample in CASES
              if s.reference_backward is not None and (s.grad_inputs or s.backward_from_output)]


def _ids(cases):
    return [f"{s.name}-{sample.id}" for s, sample in cases]


def _inputs(spec, sample):
    return spec.sample_inputs(sample, np.random.default_rng(stable_seed(spec.name, sample.id)))


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def test_every_functional_op_has_a_spec():
    names = {s.name for s in OPS}
    missing = [n for n in F.__all__ if n.removesuffix("_backward") not in names]
    assert not missing, f"functional ops without a spec in fastconv._opinfo: {missing}"
    assert len(_opinfo.BY_NAME) == len(SPECS), "two specs share a name"
    for s in OPS:
        assert s.functional() is getattr(F, s.name)
        if s.reference_backward is not None and s.name + "_backward" in F.__all__:
            assert s.functional_backward() is getattr(F, s.name + "_backward")
        assert s.samples, f"{s.name}: no samples"


def test_every_family_is_listed():
    assert {s.family for s in SPECS} == {"act", "conv", "dense", "pool", "norm", "dropout",
                                         "loss", "optim"}
    listed = {id(s) for s in SPECS}
    for module in _opinfo.FAMILIES:
        assert all(id(s) in listed for s in module.SPECS), module.__name__


@pytest.mark.parametrize("spec", [s for s in SPECS if s.module], ids=lambda s: s.name)
def test_modules_resolve(spec):
    from fastconv import nn, optim

    cls = getattr(optim if spec.family == "optim" else nn, spec.module)
    assert isinstance(cls, type)


@pytest.mark.parametrize("spec", _opinfo.act.ACTS, ids=lambda s: s.name)
def test_act_spec_names_resolve(spec):
    """What one ActSpec record promises the tests: the functional pair, the module with its
    parameters as attributes, the kernels of the kernel test, the PyTorch op."""
    assert callable(spec.functional()) and callable(spec.functional_backward())
    layer = spec.make_module(**spec.samples[0].kwargs)
    for name, value in spec.samples[0].kwargs.items():
        assert getattr(layer, name) == value
    assert list(spec.kernel_kwargs) == [k for k in spec.params if k in spec.kernel_kwargs]
    assert hasattr(_C, spec.name + "_forward") and hasattr(_C, spec.name + "_backward")
    assert {s.id for s in spec.samples}.isdisjoint(
        {s.id for other in _opinfo.act.ACTS if other is not spec for s in other.samples})


@pytest.mark.parametrize("spec,sample", CASES, ids=CASE_IDS)
def test_sample_inputs_avoid_kinks(spec, sample):
    assert FD_STEP * 2 < KINK_MARGIN
    for x in _inputs(spec, sample):
        if x.dtype.kind != "f":
            continue
        for k in spec.kinks(sample.kwargs):
            assert np.abs(x - k).min() >= KINK_MARGIN * (1 - 1e-9), (spec.name, k)
        if spec.nonneg_inputs:
            assert x.min() > 0


def test_kinks_are_moved_off():
    spec = _opinfo.act.ACT_BY_NAME["relu"]
    sample = spec.samples[0]
    x = spec.sample_inputs(type(sample)("zeros", {"x": (50,)}),
                           np.random.default_rng(0))[0]
    assert np.abs(x).min() >= KINK_MARGIN * (1 - 1e-9)
    softplus = _opinfo.act.ACT_BY_NAME["softplus"]
    assert softplus.kinks({"beta": 1.5, "threshold": 3.0}) == (2.0,)


def _loss(spec, sample, inputs, G):
    return float(np.sum(np.asarray(_first(spec.reference(*inputs, **sample.kwargs))) * G))


@pytest.mark.parametrize("spec,sample", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_reference_backward_matches_finite_differences(spec, sample):
    """Central differences of L = sum(forward * G) against the reference backward, for every
    input the backward differentiates."""
    inputs = _inputs(spec, sample)
    out = np.asarray(_first(spec.reference(*inputs, **sample.kwargs)))
    G = np.random.default_rng(stable_seed("G", spec.name, sample.id)).standard_normal(out.shape)
    if spec.backward_from_output:
        grads = (spec.reference_backward(G, out, **sample.kwargs),)
        count = 1
    else:
        nargs = spec.backward_args or len(inputs)
        grads = spec.reference_backward(G, *inputs[:nargs], **sample.kwargs)
        count = min(spec.grad_inputs, len(inputs))
        if count == 1 and not isinstance(grads, tuple):
            grads = (grads,)
    for i in range(count):
        x = inputs[i]
        fd = np.zeros_like(x)
        for j in range(x.size):
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[i].reshape(-1)[j] += FD_STEP
            minus[i].reshape(-1)[j] -= FD_STEP
            fd.reshape(-1)[j] = (_loss(spec, sample, plus, G)
                                 - _loss(spec, sample, minus, G)) / (2 * FD_STEP)
        assert_close(grads[i], fd, 1e-6, 1e-8, what=f"{spec.name} d input {i}")


def _torch_out(torch, spec, sample, inputs):
    """(the tensors that need gradients, torch's output)."""
    tensors = [torch.from_numpy(np.array(a, copy=True)) for a in inputs]
    count = 1 if spec.backward_from_output else min(spec.grad_inputs, len(inputs))
    for t in tensors[:count]:
        t.requires_grad_(True)
    return tensors[:count], _first(spec.torch_op(torch)(*tensors, **sample.kwargs))


@pytest.mark.parametrize("spec,sample", TORCH_CASES, ids=_ids(TORCH_CASES))
def test_reference_matches_torch(spec, sample):
    torch = pytest.importorskip("torch")
    inputs = _inputs(spec, sample)
    out = np.asarray(_first(spec.reference(*inputs, **sample.kwargs)))
    leaves, tout = _torch_out(torch, spec, sample, inputs)
    assert_close(tout.detach().numpy(), out, 1e-10, 1e-14, what=f"{spec.name} forward")
    if not leaves or spec.reference_backward is None:
        return
    G = np.random.default_rng(stable_seed("G", spec.name, sample.id)).standard_normal(out.shape)
    tgrads = torch.autograd.grad(tout, leaves, torch.from_numpy(G))
    if spec.backward_from_output:
        grads = (spec.reference_backward(G, out, **sample.kwargs),)
    else:
        nargs = spec.backward_args or len(inputs)
        grads = spec.reference_backward(G, *inputs[:nargs], **sample.kwargs)
        grads = grads if isinstance(grads, tuple) else (grads,)
    for i, tg in enumerate(tgrads):
        assert_close(grads[i], tg.numpy(), 1e-10, 1e-14, what=f"{spec.name} d input {i}")


@pytest.mark.parametrize("sample", _opinfo.BY_NAME["batch_norm"].samples, ids=lambda s: s.id)
def test_batch_norm_reference_backward_matches_torch(sample):
    """batch_norm's backward takes the forward's statistics, so it is checked here by hand."""
    torch = pytest.importorskip("torch")
    spec = _opinfo.BY_NAME["batch_norm"]
    inputs = _inputs(spec, sample)
    x, weight = inputs[0], (inputs[3] if len(inputs) > 3 else None)
    out, mean, invstd, _, _ = spec.reference(*inputs, **sample.kwargs)
    G = np.random.default_rng(1).standard_normal(out.shape)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    rest = [torch.from_numpy(np.array(a, copy=True)) for a in inputs[1:]]
    tout = spec.torch_op(torch)(xt, *rest, **sample.kwargs)
    (dx,) = torch.autograd.grad(tout, (xt,), torch.from_numpy(G))
    want = spec.reference_backward(G, x, weight, mean, invstd, sample.kwargs["training"])[0]
    assert_close(want, dx.numpy(), 1e-10, 1e-14, what="batch_norm d input")


@pytest.mark.parametrize("spec", [s for s in SPECS if s.torch], ids=lambda s: s.name)
def test_torch_counterparts_resolve(spec):
    torch = pytest.importorskip("torch")
    assert callable(spec.torch_op(torch))
