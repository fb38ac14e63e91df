"""Validity agrees with PyTorch: random geometries around the edges of what is valid (kernel
against padded input, pooling padding against half the kernel, ceil mode, output_padding against
stride and dilation, groups against channels, adaptive sizes) are accepted by fastconv exactly
when PyTorch accepts them, with PyTorch's output shape; a refusal is a ValueError or TypeError.
Skipped when torch is not importable. The few deliberate differences are excluded by name.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _outcome(call):
    """('ok', shape) or ('error', exception)."""
    try:
        out = call()
    except Exception as e:  # noqa: BLE001 (any refusal; its class is checked below)
        return "error", e
    out = out[0] if isinstance(out, tuple) else out
    return "ok", tuple(out.shape)


def _agree(fc_call, torch_call):
    fc, fc_res = _outcome(fc_call)
    th, th_res = _outcome(torch_call)
    if fc == "error":
        assert isinstance(fc_res, (ValueError, TypeError)), f"{type(fc_res).__name__}: {fc_res}"
        if th == "ok" and 0 in th_res:
            return  # torch returns an empty output where fastconv refuses a size below 1
    assert fc == th, f"fastconv: {fc} {fc_res}; torch: {th} {th_res}"
    if fc == "ok":
        assert fc_res == th_res


small = st.integers(0, 5)


@given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(1, 3),
       st.integers(1, 4), st.integers(1, 4), small, small, st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 3))
def test_conv2d_accepts_what_torch_accepts(C, H, W, K, R, S, ph, pw, sh, dh, groups, cg):
    x = np.zeros((1, C, H, W), np.float32)
    w = np.zeros((K, cg, R, S), np.float32)
    kw = dict(stride=(sh, 1), padding=(ph, pw), dilation=(dh, 1), groups=groups)
    _agree(lambda: F.conv2d(x, w, **kw),
           lambda: TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw))


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), small,
       st.integers(0, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2))
def test_conv_transpose2d_accepts_what_torch_accepts(C, H, K, R, p, op, s, d, groups):
    x = np.zeros((1, C, H, H + 1), np.float32)
    w = np.zeros((C, K, R, R), np.float32)
    kw = dict(stride=s, padding=p, output_padding=op, groups=groups, dilation=d)
    _agree(lambda: F.conv_transpose2d(x, w, **kw),
           lambda: TF.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), **kw))


@given(st.sampled_from(["max_pool2d", "avg_pool2d", "lp_pool2d"]), st.integers(1, 6),
       st.integers(1, 6), st.integers(1, 4), st.integers(1, 4), st.integers(0, 3),
       st.integers(1, 3), st.integers(1, 3), st.booleans())
def test_pools_accept_what_torch_accepts(op, H, W, R, S, p, s, d, ceil_mode):
    x = np.zeros((1, 2, H, W), np.float64)
    if op == "max_pool2d":
        kw = dict(kernel_size=(R, S), stride=s, padding=(p, 0), dilation=d, ceil_mode=ceil_mode)
        fc = lambda: F.max_pool2d(x, **kw)  # noqa: E731
        th = lambda: TF.max_pool2d(torch.from_numpy(x), **kw)  # noqa: E731
    elif op == "avg_pool2d":
        kw = dict(kernel_size=(R, S), stride=s, padding=(p, 0), ceil_mode=ceil_mode)
        fc = lambda: F.avg_pool2d(x, **kw)  # noqa: E731
        th = lambda: TF.avg_pool2d(torch.from_numpy(x), **kw)  # noqa: E731
    else:
        kw = dict(kernel_size=(R, S), stride=s, ceil_mode=ceil_mode)
        fc = lambda: F.lp_pool2d(x, 2, **kw)  # noqa: E731
        th = lambda: TF.lp_pool2d(torch.from_numpy(x), 2, **kw)  # noqa: E731
    _agree(fc, th)


@given(st.integers(1, 6), st.integers(1, 6), st.one_of(st.none(), st.integers(-1, 8)),
       st.one_of(st.none(), st.integers(-1, 8)), st.booleans())
def test_adaptive_pools_accept_what_torch_accepts(H, W, P, Q, use_max):
    x = np.zeros((2, H, W), np.float64)
    fc_op, th_op = (F.adaptive_max_pool2d, TF.adaptive_max_pool2d) if use_max else \
        (F.adaptive_avg_pool2d, TF.adaptive_avg_pool2d)
    _agree(lambda: fc_op(x, (P, Q)), lambda: th_op(torch.from_numpy(x), (P, Q)))
