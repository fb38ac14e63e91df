"""Arrays from other frameworks through DLPack: every functional op and the layers take PyTorch
tensors as they take NumPy arrays (same results, bit for bit), sharing their memory rather than
copying it where the layout is already C-contiguous; outputs are NumPy (CuPy for CUDA
memory)."""

import inspect

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv import models, nn, optim
from fastconv._opinfo import SPECS
from fastconv.functional._args import contiguous

from _cuda import REASON as GPU_REASON
from _util import stable_seed

torch = pytest.importorskip("torch")

OPS = [(s, s.samples[0]) for s in SPECS if s.family != "optim" and s.samples]


def _same(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
        return
    if a is None or isinstance(a, float):
        assert a == b or (a != a and b != b)
        return
    assert type(b) is np.ndarray, type(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("spec, sample", OPS, ids=[s.name for s, _ in OPS])
def test_every_op_takes_torch_tensors(spec, sample):
    rng = np.random.default_rng(stable_seed(spec.name, "dlpack"))
    inputs = spec.sample_inputs(sample, rng)
    inputs = [a.astype(np.float32) if a.dtype == np.float64 else a for a in inputs]
    op = spec.functional()
    # the arrays the forward takes: its leading parameters up to the first keyword of the sample
    leading = 0
    for name in inspect.signature(op).parameters:
        if name in sample.kwargs:
            break
        leading += 1
    inputs = inputs[:leading]
    fastconv.manual_seed(0)
    want = op(*inputs, **sample.kwargs)
    fastconv.manual_seed(0)
    got = op(*[torch.from_numpy(a.copy()) for a in inputs], **sample.kwargs)
    _same(want, got)


def test_backwards_take_torch_tensors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    t = torch.from_numpy
    _same(F.conv2d_backward(g, x, w, stride=2), F.conv2d_backward(t(g), t(x), t(w), stride=2))
    _same(F.relu_backward(x, x), F.relu_backward(t(x), t(x)))
    m, v = np.zeros(3, np.float32), np.ones(3, np.float32)
    out, sm, si = F.batch_norm(x, m.copy(), v.copy(), training=True, return_stats=True)
    tm, tv = t(m.copy()), t(v.copy())
    tout, tsm, tsi = F.batch_norm(t(x), tm, tv, training=True, return_stats=True)
    _same((out, sm, si), (tout, tsm, tsi))
    assert tm.abs().sum() > 0  # the running statistics were updated in the tensors themselves
    _same(F.batch_norm_backward(x, x, None, sm, si, True),
          F.batch_norm_backward(t(x), t(x), None, t(sm), t(si), True))
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 1, 2])
    _same(F.cross_entropy_backward(1.0, logits, y), F.cross_entropy_backward(1.0, t(logits), t(y)))
    # gradients accumulated into the caller's tensors, in place
    _, dw, db = F.conv2d_backward(g, x, w, stride=2)
    tw, tb = torch.zeros(4, 3, 3, 3), torch.zeros(4)
    F.conv2d_backward(t(g), t(x), t(w), stride=2, grad_weight=tw, grad_bias=tb)
    _same((dw, db), (tw.numpy(), tb.numpy()))
    a, lw = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((3, 5))
    lw, gy = lw.astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32)
    _, dlw, dlb = F.linear_backward(gy, a, lw)
    tlw, tlb = torch.zeros(3, 5), torch.zeros(3)
    F.linear_backward(t(gy), t(a), t(lw), grad_weight=tlw, grad_bias=tlb)
    _same((dlw, dlb), (tlw.numpy(), tlb.numpy()))


def test_memory_is_shared_not_copied():
    tensor = torch.randn(3, 4, 5)
    view = fastconv.from_dlpack(tensor)
    assert type(view) is np.ndarray and view.ctypes.data == tensor.data_ptr()
    assert contiguous(tensor).ctypes.data == tensor.data_ptr()
    expect = torch.clamp(tensor, min=0)
    out = F.relu(tensor, inplace=True)
    assert out.ctypes.data == tensor.data_ptr()
    assert torch.equal(tensor, expect)  # written through the shared memory
    transposed = torch.randn(4, 6).T  # not C-contiguous: copied into the layout needed
    assert np.array_equal(F.relu(transposed), np.maximum(transposed.numpy(), 0))


def test_models_and_losses_take_torch_tensors():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    results = []
    for convert in (lambda a: a, torch.from_numpy):
        fastconv.manual_seed(0)
        model = models.fashion_cnn()
        opt = optim.SGD(model.parameters(), lr=0.1)
        loss_fn = nn.CrossEntropyLoss()
        loss = loss_fn(model(convert(x)), convert(y))
        model.backward(loss_fn.backward())
        opt.step()
        results.append((loss, [p.data.copy() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert np.array_equal(a, b)


def test_tensors_that_refuse_to_share_are_a_type_error():
    with pytest.raises(TypeError, match="detach"):
        F.relu(torch.ones(3, requires_grad=True))
    with pytest.raises(TypeError, match="__dlpack__"):
        fastconv.from_dlpack([1.0, 2.0])


@pytest.mark.skipif(GPU_REASON is not None or not torch.cuda.is_available(),
                    reason=f"GPU test: {GPU_REASON or 'this PyTorch has no CUDA device'}")
def test_torch_cuda_tensors_stay_on_the_device():
    import cupy

    tensor = torch.randn(2, 3, 8, 8, device="cuda")
    view = fastconv.from_dlpack(tensor)
    assert isinstance(view, cupy.ndarray) and view.data.ptr == tensor.data_ptr()
    weight = torch.randn(4, 3, 3, 3, device="cuda")
    got = F.conv2d(tensor, weight, padding=1)
    want = torch.nn.functional.conv2d(tensor, weight, padding=1)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(got), want.cpu().numpy(), rtol=1e-4, atol=1e-4)


def test_a_tensor_with_torchs_negative_bit_comes_with_its_values():
    """t.conj().imag keeps its negation as a bit that torch's DLPack export leaves out: the
    values came with the wrong sign (relu gave [0, 4] for [2, -4])."""
    t = torch.tensor([1 - 2j, 3 + 4j]).conj().imag
    assert t.is_neg()
    np.testing.assert_array_equal(F.relu(t), np.array([2.0, 0.0], np.float32))


@pytest.mark.parametrize("make,match", [
    (lambda: torch.zeros(3, dtype=torch.bfloat16), "of dtype torch.bfloat16 refused"),
    (lambda: torch.zeros(3, device="meta"), "has no memory to share"),
])
def test_tensors_numpy_cannot_view_are_refused_by_name(make, match):
    with pytest.raises(TypeError, match=match):
        fastconv.from_dlpack(make())
