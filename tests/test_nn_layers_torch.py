"""nn layers and losses against their torch.nn twins, weights copied through state_dict.

Each case builds the torch layer in float64, loads its state_dict into ours, and compares the
forward output, the input gradient and every parameter gradient: ours in float64 to 1e-10
(relative to the largest expected value), ours in float32 on the same values to ~1e-5.
Inputs are random normals (no ties for max/min pooling, no zeros at ReLU's kink).
"""

import inspect
import math
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv import nn  # noqa: E402

from _util import assert_close  # noqa: E402

TN = torch.nn
DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["f64", "f32"]


def _rtol(dtype):
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-5


def _torch_state(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


class Lambda(TN.Module):
    """A torch twin written as a function of its input (for layers torch does not have)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def compare(ours, theirs, shape, dtype, seed=0, training=True, steps=1, positive=False):
    """Run `steps` forward/backward pairs through both layers and compare everything.

    ours takes theirs's state_dict (float64 values cast to dtype); torch runs in float64 on
    the values ours sees. Returns both layers for further checks (running statistics).
    """
    theirs = theirs.double().train(training)
    ours = ours.to(dtype).train(training)
    ours.load_state_dict(_torch_state(theirs))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(seed)
    rtol = _rtol(dtype)
    for step in range(steps):
        x = rng.standard_normal(shape)
        if positive:
            x = np.abs(x) + 0.1
        x = x.astype(dtype)
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        yt = theirs(xt)
        y = ours(x)
        assert y.dtype == dtype
        assert_close(y, yt.detach().numpy(), rtol, what=f"step {step} forward")
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(g))
        dx = ours.backward(g.astype(dtype))
        assert dx.dtype == dtype
        assert_close(dx, xt.grad.numpy(), rtol, what=f"step {step} grad_input")
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad.numpy(), rtol, what=f"{name}.grad")
    assert len(tparams) == len(list(ours.parameters()))
    tbufs = dict(theirs.named_buffers())
    for name, b in ours.named_buffers():
        assert_close(b, tbufs[name].numpy(), rtol, what=name)
    return ours, theirs


def _case(id, make_ours, make_theirs, shape, **kw):
    return pytest.param(make_ours, make_theirs, shape, kw, id=id)


def _min_pool(**kw):
    return Lambda(lambda x: -TF.max_pool2d(-x, **kw))


def _mixed_pool(alpha, k, s, p):
    return Lambda(lambda x: alpha * TF.max_pool2d(x, k, s, p)
                  + (1 - alpha) * TF.avg_pool2d(x, k, s, p))


LAYER_CASES = [
    _case("linear", lambda: nn.Linear(7, 5), lambda: TN.Linear(7, 5), (3, 7)),
    _case("linear_batch1_nobias", lambda: nn.Linear(7, 4, bias=False),
          lambda: TN.Linear(7, 4, bias=False), (1, 7)),
    _case("linear_3d_input", lambda: nn.Linear(6, 3), lambda: TN.Linear(6, 3), (2, 5, 6)),
    _case("conv_transpose", lambda: nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=1,
                                                       output_padding=1),
          lambda: TN.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=1, output_padding=1),
          (2, 4, 5, 7)),
    _case("conv_transpose_groups_dilation_nobias",
          lambda: nn.ConvTranspose2d(4, 6, 3, stride=(1, 2), groups=2, dilation=2, bias=False),
          lambda: TN.ConvTranspose2d(4, 6, 3, stride=(1, 2), groups=2, dilation=2, bias=False),
          (1, 4, 6, 5)),
    _case("max_pool", lambda: nn.MaxPool2d(3, stride=2, padding=1),
          lambda: TN.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 8)),
    _case("max_pool_ceil_dilation", lambda: nn.MaxPool2d((2, 3), dilation=(2, 1), ceil_mode=True),
          lambda: TN.MaxPool2d((2, 3), dilation=(2, 1), ceil_mode=True), (1, 2, 11, 10)),
    _case("max_pool_unbatched", lambda: nn.MaxPool2d(2), lambda: TN.MaxPool2d(2), (3, 7, 5)),
    _case("min_pool", lambda: nn.MinPool2d(3, stride=2, padding=1),
          lambda: _min_pool(kernel_size=3, stride=2, padding=1), (2, 3, 9, 8)),
    _case("avg_pool", lambda: nn.AvgPool2d(3, stride=2, padding=1),
          lambda: TN.AvgPool2d(3, stride=2, padding=1), (2, 3, 9, 8)),
    _case("avg_pool_ceil_exclude_pad",
          lambda: nn.AvgPool2d((3, 2), stride=2, padding=1, ceil_mode=True,
                               count_include_pad=False),
          lambda: TN.AvgPool2d((3, 2), stride=2, padding=1, ceil_mode=True,
                               count_include_pad=False), (1, 2, 8, 7)),
    _case("avg_pool_divisor", lambda: nn.AvgPool2d(2, divisor_override=3),
          lambda: TN.AvgPool2d(2, divisor_override=3), (2, 2, 6, 5)),
    _case("lp_pool_2", lambda: nn.LPPool2d(2, 3, stride=2), lambda: TN.LPPool2d(2, 3, stride=2),
          (2, 3, 9, 8)),
    _case("lp_pool_1.5_ceil", lambda: nn.LPPool2d(1.5, (2, 3), ceil_mode=True),
          lambda: TN.LPPool2d(1.5, (2, 3), ceil_mode=True), (1, 2, 7, 8), positive=True),
    _case("mixed_pool", lambda: nn.MixedPool2d(3, stride=2, padding=1, alpha=0.3),
          lambda: _mixed_pool(0.3, 3, 2, 1), (2, 3, 9, 8)),
    _case("adaptive_avg", lambda: nn.AdaptiveAvgPool2d((3, 4)),
          lambda: TN.AdaptiveAvgPool2d((3, 4)), (2, 3, 10, 9)),
    _case("adaptive_avg_global", lambda: nn.AdaptiveAvgPool2d(1),
          lambda: TN.AdaptiveAvgPool2d(1), (1, 4, 5, 7)),
    _case("adaptive_max", lambda: nn.AdaptiveMaxPool2d(3), lambda: TN.AdaptiveMaxPool2d(3),
          (2, 3, 10, 7)),
    _case("adaptive_max_none", lambda: nn.AdaptiveMaxPool2d((None, 2)),
          lambda: TN.AdaptiveMaxPool2d((None, 2)), (1, 2, 5, 7)),
    _case("relu", lambda: nn.ReLU(), lambda: TN.ReLU(), (2, 3, 5, 4)),
    _case("leaky_relu", lambda: nn.LeakyReLU(0.2), lambda: TN.LeakyReLU(0.2), (3, 7)),
    _case("elu", lambda: nn.ELU(0.7), lambda: TN.ELU(0.7), (1, 3, 5)),
    _case("sigmoid", lambda: nn.Sigmoid(), lambda: TN.Sigmoid(), (2, 3, 5, 4)),
    _case("tanh", lambda: nn.Tanh(), lambda: TN.Tanh(), (2, 9)),
    _case("softplus", lambda: nn.Softplus(beta=2.0, threshold=1.5),
          lambda: TN.Softplus(beta=2.0, threshold=1.5), (3, 11)),
    _case("softmax_dim1", lambda: nn.Softmax(dim=1), lambda: TN.Softmax(dim=1), (3, 7, 2)),
    _case("softmax_dim0_batch1", lambda: nn.Softmax(dim=0), lambda: TN.Softmax(dim=0), (1, 5)),
    _case("log_softmax", lambda: nn.LogSoftmax(dim=-1), lambda: TN.LogSoftmax(dim=-1), (4, 9)),
    _case("lrn", lambda: nn.LocalResponseNorm(3), lambda: TN.LocalResponseNorm(3),
          (2, 5, 4, 3)),
    _case("lrn_args_3d", lambda: nn.LocalResponseNorm(4, alpha=0.1, beta=0.5, k=2.0),
          lambda: TN.LocalResponseNorm(4, alpha=0.1, beta=0.5, k=2.0), (1, 6, 7)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("make_ours,make_theirs,shape,kw", LAYER_CASES)
def test_layer_matches_torch(make_ours, make_theirs, shape, kw, dtype):
    torch.manual_seed(0)
    compare(make_ours(), make_theirs(), shape, dtype, **kw)


@pytest.mark.parametrize("inplace_layer,twin", [
    (lambda: nn.ReLU(inplace=True), lambda: TN.ReLU()),
    (lambda: nn.LeakyReLU(0.1, inplace=True), lambda: TN.LeakyReLU(0.1)),
    (lambda: nn.ELU(1.3, inplace=True), lambda: TN.ELU(1.3)),
], ids=["relu", "leaky_relu", "elu"])
def test_inplace_activation_overwrites_input_and_keeps_gradient(inplace_layer, twin):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8))
    xt = torch.tensor(x, requires_grad=True)
    yt = twin()(xt)
    layer = inplace_layer()
    y = layer(x)
    assert y is x  # written in place
    assert_close(y, yt.detach().numpy(), 1e-12)
    g = rng.standard_normal(x.shape)
    yt.backward(torch.tensor(g))
    assert_close(layer.backward(g), xt.grad.numpy(), 1e-12)


# -- batch norm ------------------------------------------------------------------------------

BN_CASES = [
    _case("bn2d", lambda: nn.BatchNorm2d(3), lambda: TN.BatchNorm2d(3), (2, 3, 5, 7), steps=3),
    _case("bn2d_batch1", lambda: nn.BatchNorm2d(4), lambda: TN.BatchNorm2d(4), (1, 4, 3, 5),
          steps=2),
    _case("bn2d_momentum_none", lambda: nn.BatchNorm2d(3, momentum=None),
          lambda: TN.BatchNorm2d(3, momentum=None), (3, 3, 4, 3), steps=4),
    _case("bn2d_no_affine_eps", lambda: nn.BatchNorm2d(2, eps=1e-3, momentum=0.3, affine=False),
          lambda: TN.BatchNorm2d(2, eps=1e-3, momentum=0.3, affine=False), (2, 2, 5, 3),
          steps=3),
    _case("bn2d_untracked", lambda: nn.BatchNorm2d(3, track_running_stats=False),
          lambda: TN.BatchNorm2d(3, track_running_stats=False), (2, 3, 4, 4), steps=2),
    _case("bn2d_no_bias", lambda: nn.BatchNorm2d(3, bias=False),
          lambda: TN.BatchNorm2d(3, bias=False), (2, 3, 3, 4), steps=2),
    _case("bn1d_2d_input", lambda: nn.BatchNorm1d(5), lambda: TN.BatchNorm1d(5), (6, 5),
          steps=3),
    _case("bn1d_3d_input", lambda: nn.BatchNorm1d(3, momentum=None),
          lambda: TN.BatchNorm1d(3, momentum=None), (4, 3, 7), steps=3),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("make_ours,make_theirs,shape,kw", BN_CASES)
def test_batch_norm_train_matches_torch_with_running_stats(make_ours, make_theirs, shape, kw,
                                                          dtype):
    torch.manual_seed(0)
    # compare() checks the running statistics and num_batches_tracked after all the steps.
    ours, theirs = compare(make_ours(), make_theirs(), shape, dtype, training=True, **kw)
    if ours.track_running_stats:
        assert int(ours.num_batches_tracked) == kw["steps"]
        assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.ndim == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("make_ours,make_theirs,shape,kw", BN_CASES)
def test_batch_norm_eval_matches_torch(make_ours, make_theirs, shape, kw, dtype):
    torch.manual_seed(0)
    theirs = make_theirs().double()
    # Non-trivial running statistics and affine parameters, then evaluation mode.
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(0.5, 1.5)
        theirs.train()
        theirs(torch.randn(shape, dtype=torch.float64) * 2 + 1)
    ours, theirs = compare(make_ours(), theirs, shape, dtype, training=False, steps=2)
    if ours.track_running_stats:
        assert int(ours.num_batches_tracked) == 1  # eval() leaves the statistics alone


def test_batch_norm_state_dict_keys_and_repr_match_torch():
    for ours, theirs in [(nn.BatchNorm2d(3), TN.BatchNorm2d(3)),
                         (nn.BatchNorm1d(4, affine=False), TN.BatchNorm1d(4, affine=False)),
                         (nn.BatchNorm2d(5, bias=False), TN.BatchNorm2d(5, bias=False)),
                         (nn.BatchNorm2d(2, track_running_stats=False),
                          TN.BatchNorm2d(2, track_running_stats=False))]:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for k, v in theirs.state_dict().items():
            np.testing.assert_array_equal(ours.state_dict()[k], v.numpy())
            assert ours.state_dict()[k].dtype == v.numpy().dtype
        assert repr(ours).split("  #")[0] == repr(theirs)


def test_dropout_eval_is_torchs_identity_and_train_matches_torch_given_the_mask():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5))
    d = nn.Dropout(0.3).eval()
    np.testing.assert_array_equal(d(x), TN.Dropout(0.3).eval()(torch.tensor(x)).numpy())
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(d.backward(g), g)
    # Training: torch's masks are its own, so compare the math given our mask.
    fc.manual_seed(1)
    d.train()
    y = d(x)
    kept = torch.tensor(y != 0)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt * kept / 0.7
    assert_close(y, yt.detach().numpy(), 1e-15)
    yt.backward(torch.tensor(g))
    assert_close(d.backward(g), xt.grad.numpy(), 1e-15)


# -- losses ------------------------------------------------------------------------------------

def _class_weight(c):
    return np.linspace(0.5, 2.0, c)


LOSS_CASES = [
    ("ce_mean", lambda w: dict(), (5, 4), "index"),
    ("ce_sum_weight", lambda w: dict(weight=w, reduction="sum"), (6, 3), "index"),
    ("ce_mean_weight_ignore_smooth",
     lambda w: dict(weight=w, ignore_index=1, label_smoothing=0.2), (7, 4), "index"),
    ("ce_none_spatial", lambda w: dict(reduction="none"), (2, 3, 4, 5), "index"),
    ("ce_probabilities", lambda w: dict(label_smoothing=0.1), (4, 5), "prob"),
    ("ce_batch1", lambda w: dict(), (1, 6), "index"),
    ("mse_mean", lambda w: dict(), (3, 4, 5), "same"),
    ("mse_sum", lambda w: dict(reduction="sum"), (1, 7), "same"),
    ("mse_none", lambda w: dict(reduction="none"), (4, 3), "same"),
    ("margin_p1", lambda w: dict(), (6, 5), "index"),
    ("margin_p2_weight_sum", lambda w: dict(p=2, margin=0.7, weight=w, reduction="sum"),
     (5, 4), "index"),
    ("margin_none_batch1", lambda w: dict(reduction="none"), (1, 3), "index"),
]
LOSSES = {"ce": (nn.CrossEntropyLoss, TN.CrossEntropyLoss), "mse": (nn.MSELoss, TN.MSELoss),
          "margin": (nn.MultiMarginLoss, TN.MultiMarginLoss)}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("id,kwargs,shape,target_kind", LOSS_CASES,
                         ids=[c[0] for c in LOSS_CASES])
def test_loss_matches_torch(id, kwargs, shape, target_kind, dtype):
    ours_cls, theirs_cls = LOSSES[id.split("_")[0]]
    rng = np.random.default_rng(7)
    C = shape[1]
    kw = kwargs(_class_weight(C))
    x = rng.standard_normal(shape).astype(dtype)
    if target_kind == "index":
        y = rng.integers(0, C, (shape[0],) + shape[2:])
        yt = torch.tensor(y)
    elif target_kind == "prob":
        y = rng.dirichlet(np.ones(C), shape[0]).astype(dtype)
        yt = torch.tensor(y.astype(np.float64))
    else:
        y = rng.standard_normal(shape).astype(dtype)
        yt = torch.tensor(y.astype(np.float64))
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    theirs = theirs_cls(**tkw)
    ours = ours_cls(**kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    lt = theirs(xt, yt)
    loss = ours(x, y)
    rtol = _rtol(dtype)
    if kw.get("reduction", "mean") == "none":
        assert isinstance(loss, np.ndarray)
        assert_close(loss, lt.detach().numpy(), rtol)
        g = rng.standard_normal(loss.shape)
        lt.backward(torch.tensor(g))
        dx = ours.backward(g.astype(dtype))
    else:
        assert isinstance(loss, float)
        assert math.isclose(loss, lt.item(), rel_tol=rtol)
        lt.backward()
        dx = ours.backward()
    assert dx.dtype == dtype
    assert_close(dx, xt.grad.numpy(), rtol)


def test_loss_none_backward_defaults_to_the_gradient_of_the_sum():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 3))
    y = rng.integers(0, 3, 4)
    xt = torch.tensor(x, requires_grad=True)
    TN.CrossEntropyLoss(reduction="none")(xt, torch.tensor(y)).sum().backward()
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    loss_fn(x, y)
    assert_close(loss_fn.backward(), xt.grad.numpy(), 1e-12)


# -- utilities ---------------------------------------------------------------------------------

def _grads_pair(rng, shapes, dtype=np.float64):
    """Our Parameters and torch parameters carrying the same gradients."""
    ours, theirs = [], []
    for shape in shapes:
        p = nn.Parameter(rng.standard_normal(shape).astype(dtype))
        p.grad = rng.standard_normal(shape).astype(dtype) * 3
        t = torch.tensor(p.data.astype(np.float64), requires_grad=True)
        t.grad = torch.tensor(p.grad.astype(np.float64))
        ours.append(p)
        theirs.append(t)
    return ours, theirs


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0),
                                                (2.0, 3.5), (1.0, math.inf)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    rng = np.random.default_rng(9)
    ours, theirs = _grads_pair(rng, [(4, 3, 2, 2), (4,), (5, 7)])
    ours.append(nn.Parameter(np.zeros(3)))  # no gradient: skipped, as by torch
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, float)
    assert math.isclose(total, expected.item(), rel_tol=1e-12)
    for p, t in zip(ours, theirs):
        assert_close(p.grad, t.grad.numpy(), 1e-12)


def test_clip_grad_norm_float32_and_nonfinite():
    rng = np.random.default_rng(10)
    ours, theirs = _grads_pair(rng, [(3, 5), (6,)], np.float32)
    total = nn.utils.clip_grad_norm_(iter(ours), 0.8)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 0.8)
    assert math.isclose(total, expected.item(), rel_tol=1e-6)
    for p, t in zip(ours, theirs):
        assert p.grad.dtype == np.float32
        assert_close(p.grad, t.grad.numpy(), 1e-6)
    ours[0].grad[0, 0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_with_a_nan_gradient_as_torch(norm_type):
    """A NaN norm left the gradients as they were (min(1.0, nan) is 1.0; torch makes them NaN),
    and with norm_type inf a NaN after the first gradient was dropped (Python's max), so
    error_if_nonfinite did not raise."""
    ours, theirs = _grads_pair(np.random.default_rng(11), [(2,), (3,)])
    ours[1].grad[1] = np.nan
    theirs[1].grad[1] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ours, 1.0, norm_type, error_if_nonfinite=True)
    total = nn.utils.clip_grad_norm_(ours, 1.0, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    assert math.isnan(total) and math.isnan(expected.item())
    for p, t in zip(ours, theirs):
        assert np.array_equal(np.isnan(p.grad), np.isnan(t.grad.numpy()))
        assert np.isnan(p.grad).all()


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(11)
    ours, theirs = _grads_pair(rng, [(4, 5), (7,)])
    nn.utils.clip_grad_value_(ours, 1.5)
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
    assert np.abs(ours[0].grad).max() == 1.5


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_max_norm_matches_torch_renorm(dim):
    rng = np.random.default_rng(12)
    w = rng.standard_normal((6, 3, 2, 2))
    norms = np.sqrt((w ** 2).sum(axis=tuple(a for a in range(4) if a != dim % 4)))
    limit = float(np.median(norms))  # some slices above the limit, some below: both branches
    assert (norms > limit).any() and (norms < limit).any()
    p = nn.Parameter(w.copy())
    nn.utils.max_norm_([p], limit, dim=dim)
    expected = torch.renorm(torch.tensor(w), 2, dim % 4, limit).numpy()
    assert_close(p.data, expected, 1e-12)


def test_l1_penalty_value_and_gradient_match_torch_autograd():
    rng = np.random.default_rng(13)
    ours, theirs = _grads_pair(rng, [(3, 4), (5,)])
    ours[1].data[2] = 0.0  # sign(0) = 0: torch's abs gradient at 0
    theirs[1].data[2] = 0.0
    value = nn.utils.l1_penalty(ours, 0.01)
    expected = 0.01 * sum(t.abs().sum() for t in theirs)
    expected.backward()  # adds into the gradients already there, as l1_penalty does
    assert math.isclose(value, expected.item(), rel_tol=1e-12)
    for p, t in zip(ours, theirs):
        assert_close(p.grad, t.grad.numpy(), 1e-12)


@pytest.mark.parametrize("stride, padding, dilation, in_hw, output_size", [
    (2, 1, 1, (5, 6), (10, 11)),
    (3, (1, 0), 1, (4, 5), (2, 3, 12, 16)),  # the whole shape, as a skip connection's
    (2, 0, (2, 1), (3, 4), (9, 10)),
])
def test_conv_transpose_output_size_picks_torchs_output_padding(stride, padding, dilation,
                                                                in_hw, output_size):
    """layer(x, output_size=...) as torch's: the output padding that gives that size, used by
    the backward too; a size out of the stride's reach is refused as torch refuses it."""
    fc.manual_seed(3)
    ours = nn.ConvTranspose2d(4, 3, 3, stride=stride, padding=padding, dilation=dilation,
                              ).to(np.float64)
    theirs = TN.ConvTranspose2d(4, 3, 3, stride=stride, padding=padding, dilation=dilation,
                                ).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((2, 4) + in_hw)
    xt = torch.tensor(x, requires_grad=True)
    expected = theirs(xt, output_size=list(output_size))
    got = ours(x, output_size=output_size)
    assert got.shape == tuple(expected.shape)
    assert_close(got, expected.detach().numpy(), 1e-12)
    dy = np.random.default_rng(5).standard_normal(got.shape)
    expected.backward(torch.tensor(dy))
    assert_close(ours.backward(dy), xt.grad.numpy(), 1e-12)
    assert_close(ours.weight.grad, theirs.weight.grad.numpy(), 1e-12)
    plain = ours(x)  # without output_size: the layer's own output_padding again
    assert plain.shape == tuple(theirs(xt).shape)
    too_big = tuple(s + 3 * (stride if isinstance(stride, int) else 1)
                    for s in output_size[-2:])
    with pytest.raises(ValueError, match="valid sizes range from"):
        theirs(xt, output_size=list(too_big))
    with pytest.raises(ValueError, match="valid sizes range from"):
        ours(x, output_size=too_big)
    with pytest.raises(ValueError, match="2 or 4 elements"):
        ours(x, output_size=(5,))
    as_tensor = torch.tensor(list(output_size))
    assert ours(x, output_size=as_tensor).shape == got.shape


# -- torch's factory arguments and Module API signatures -------------------------------------

FACTORY_LAYERS = [
    (lambda **kw: nn.Conv2d(2, 4, 3, **kw), lambda **kw: TN.Conv2d(2, 4, 3, **kw)),
    (lambda **kw: nn.ConvTranspose2d(2, 4, 3, **kw),
     lambda **kw: TN.ConvTranspose2d(2, 4, 3, **kw)),
    (lambda **kw: nn.Linear(3, 5, **kw), lambda **kw: TN.Linear(3, 5, **kw)),
    (lambda **kw: nn.BatchNorm1d(3, **kw), lambda **kw: TN.BatchNorm1d(3, **kw)),
    (lambda **kw: nn.BatchNorm2d(3, **kw), lambda **kw: TN.BatchNorm2d(3, **kw)),
]
FACTORY_IDS = ["Conv2d", "ConvTranspose2d", "Linear", "BatchNorm1d", "BatchNorm2d"]


def _floats(module):
    """dtype names of every parameter and floating buffer, in state_dict order."""
    return [str(v.dtype).replace("torch.", "") for v in module.state_dict().values()
            if str(v.dtype).replace("torch.", "").startswith("float")]


@pytest.mark.parametrize("ours,theirs", FACTORY_LAYERS, ids=FACTORY_IDS)
def test_layer_dtype_none_is_the_default_float32_as_torch(ours, theirs):
    """dtype=None reached np.empty, which made float64 parameters; torch's None is float32."""
    assert _floats(ours(dtype=None)) == _floats(theirs(dtype=None))
    assert set(_floats(ours(dtype=None))) == {"float32"}
    assert set(_floats(ours(dtype=np.float64))) == {"float64"}


@pytest.mark.parametrize("ours,theirs", FACTORY_LAYERS, ids=FACTORY_IDS)
def test_layer_takes_device_before_dtype_as_torch(ours, theirs):
    sig_ours = inspect.signature(type(ours()).__init__).parameters
    sig_theirs = inspect.signature(type(theirs()).__init__).parameters
    # torch's arguments in torch's order and with its defaults; ours may add more after them
    mine = [(p.name, p.kind, p.default) for p in sig_ours.values()][:len(sig_theirs)]
    assert mine == [(p.name, p.kind, p.default) for p in sig_theirs.values()]
    for device in (None, "cpu"):
        layer = ours(device=device)
        assert layer.device == "cpu" and all(isinstance(v, np.ndarray)
                                             for v in layer.state_dict().values())


def test_sequential_of_an_ordered_dict_names_the_children_as_torch():
    fc.manual_seed(0)

    def build(lib):
        return lib.Sequential(OrderedDict([("conv", lib.Conv2d(2, 3, 3)),
                                           ("bn", lib.BatchNorm2d(3)), ("relu", lib.ReLU()),
                                           ("flat", lib.Flatten())]))
    ours, theirs = build(nn).double(), build(TN).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert repr(ours).splitlines()[1] == "  (conv): " + repr(ours.conv)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    assert_close(ours(x), theirs(torch.tensor(x)).detach().numpy(), 1e-12)
    # append adds the next number and keeps the names; deleting renumbers, both as torch
    ours.append(nn.Linear(27, 2))
    theirs.append(TN.Linear(27, 2))
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    del ours[1]
    del theirs[1]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    for lib in (nn, TN):
        with pytest.raises(TypeError, match="dict"):
            lib.Sequential({"conv": lib.ReLU()})  # only an OrderedDict names, in both
        with pytest.raises(KeyError, match="a.b"):
            lib.Sequential(OrderedDict([("a.b", lib.ReLU())]))


def test_load_state_dict_returns_torchs_named_pair():
    def build(lib):
        return lib.Sequential(lib.Linear(3, 2), lib.BatchNorm1d(2))
    ours, theirs = build(nn), build(TN)
    sd = {k: v.numpy() for k, v in theirs.state_dict().items()}
    got, expected = ours.load_state_dict(sd), theirs.load_state_dict(theirs.state_dict())
    assert type(got).__name__ == type(expected).__name__ == "_IncompatibleKeys"
    assert got._fields == expected._fields and repr(got) == repr(expected)
    del sd["0.bias"]
    sd["extra"] = np.zeros(1)
    tsd = theirs.state_dict()
    del tsd["0.bias"]
    tsd["extra"] = torch.zeros(1)
    got, expected = ours.load_state_dict(sd, strict=False), theirs.load_state_dict(tsd, False)
    assert repr(got) == repr(expected)
    assert got.missing_keys == expected.missing_keys == ["0.bias"]
    assert got.unexpected_keys == expected.unexpected_keys == ["extra"]
    missing, unexpected = got
    assert (missing, unexpected) == (["0.bias"], ["extra"])


class _Shared:
    """A module holding one child under two names, and a child of that child, in `lib`."""

    @staticmethod
    def build(lib):
        class Net(lib.Module):
            def __init__(self):
                super().__init__()
                self.block = lib.Sequential(lib.Linear(2, 2), lib.BatchNorm1d(2))
                self.head = lib.Linear(2, 1)
                self.again = self.block
        return Net()


def _names(pairs):
    return [name for name, _ in pairs]


def test_named_modules_memo_prefix_and_duplicates_as_torch():
    ours, theirs = _Shared.build(nn), _Shared.build(TN)
    for kw in (dict(), dict(remove_duplicate=False), dict(prefix="net"),
               dict(prefix="net", remove_duplicate=False)):
        assert _names(ours.named_modules(**kw)) == _names(theirs.named_modules(**kw))
    assert (_names(ours.named_modules(None, "p", False))
            == _names(theirs.named_modules(None, "p", False)))
    assert (_names(ours.named_modules(memo={ours.head}))
            == _names(theirs.named_modules(memo={theirs.head})))
    assert len(list(ours.modules(remove_duplicate=False))) == len(
        list(theirs.modules(remove_duplicate=False))) == 8
    assert len(list(ours.modules())) == len(list(theirs.modules())) == 5


def test_state_dict_prefix_destination_and_keep_vars_as_torch():
    ours, theirs = _Shared.build(nn), _Shared.build(TN)
    assert list(ours.state_dict(prefix="model.")) == list(theirs.state_dict(prefix="model."))
    dest, tdest = {"other": 1}, {"other": 1}
    assert ours.state_dict(destination=dest, prefix="m.") is dest
    theirs.state_dict(destination=tdest, prefix="m.")
    assert list(dest) == list(tdest)
    kept, tkept = ours.state_dict(keep_vars=True), theirs.state_dict(keep_vars=True)
    assert list(kept) == list(tkept)
    assert kept["head.weight"] is ours.head.weight and tkept["head.weight"] is theirs.head.weight
    assert kept["block.1.running_mean"] is ours.block[1].running_mean
    copied = ours.state_dict()
    assert isinstance(copied["head.weight"], np.ndarray)
    assert not np.shares_memory(copied["head.weight"], ours.head.weight.data)


def test_load_state_dict_assign_takes_the_arrays_as_torch():
    def build(lib):
        return lib.Sequential(lib.Linear(3, 2), lib.BatchNorm1d(2))
    ours, theirs = build(nn), build(TN)
    tsd = {k: (v.double() if v.is_floating_point() else v)
           for k, v in theirs.state_dict().items()}
    sd = {k: v.numpy().copy() for k, v in tsd.items()}
    weight = ours[0].weight
    weight.grad = np.ones((2, 3), np.float32)
    opt = fc.optim.SGD(ours.parameters(), lr=0.5)
    theirs.load_state_dict(tsd, assign=True)
    assert ours.load_state_dict(sd, assign=True) == ([], [])
    # the state dict's arrays and dtypes, as torch's; the Parameter object kept
    assert ours[0].weight is weight and weight.data is sd["0.weight"] and weight.grad is None
    assert ours[1].running_var is sd["1.running_var"]
    assert _floats(ours) == _floats(theirs) and set(_floats(ours)) == {"float64"}
    weight.grad = np.ones((2, 3))
    opt.step()  # an optimizer built before the load steps the loaded array
    assert_close(sd["0.weight"], tsd["0.weight"].numpy() - 0.5, 1e-15)
    view = torch.zeros(2, dtype=torch.float64)
    ours.load_state_dict(dict(sd, **{"0.bias": view}), assign=True)
    assert np.shares_memory(ours[0].bias.data, view.numpy())  # a tensor viewed, not copied
    frozen = np.zeros((2, 3))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="0.weight is read-only"):
        ours.load_state_dict(dict(sd, **{"0.weight": frozen}), assign=True)
    with pytest.raises(ValueError, match="0.weight has shape"):
        ours.load_state_dict(dict(sd, **{"0.weight": np.zeros((3, 2))}), assign=True)
    with pytest.raises(TypeError, match="assign must be a bool"):
        ours.load_state_dict(sd, assign="yes")


@pytest.mark.parametrize("args,kwargs", [
    (("cpu",), {}), ((np.float64,), {}), (("cpu", np.float64), {}), ((), dict(dtype=np.float64)),
    ((), dict(device="cpu")), ((), dict(device="cpu", dtype=np.float64)),
    (("cpu",), dict(dtype=np.float64)), ((None,), {}),
], ids=["device", "dtype", "device-dtype", "kw-dtype", "kw-device", "kw-both", "device-kw-dtype",
        "none"])
def test_module_to_takes_torchs_forms(args, kwargs):
    ours, theirs = nn.Linear(3, 2), TN.Linear(3, 2)
    as_torch = tuple(torch.float64 if a is np.float64 else a for a in args)
    tkwargs = {k: torch.float64 if v is np.float64 else v for k, v in kwargs.items()}
    assert ours.to(*args, **kwargs) is ours
    theirs.to(*as_torch, **tkwargs)
    assert _floats(ours) == _floats(theirs) and ours.device == "cpu"


def test_module_to_an_array_takes_its_dtype_and_device_as_torch():
    ours, theirs = nn.Linear(3, 2), TN.Linear(3, 2)
    ours.to(np.zeros(2))
    theirs.to(torch.zeros(2, dtype=torch.float64))
    assert _floats(ours) == _floats(theirs) == ["float64", "float64"]
    ours.to(torch.zeros(1, dtype=torch.float32))  # a DLPack tensor too
    assert _floats(ours) == ["float32", "float32"]
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        ours.to(np.zeros(2, np.int64))
    with pytest.raises(TypeError):
        theirs.to(torch.zeros(2, dtype=torch.int64))


def test_torchs_own_dtype_and_device_objects_are_taken():
    """PyTorch code passes torch.float64 and torch.device("cpu"), and non_blocking=True."""
    ours, theirs = nn.Linear(3, 2), TN.Linear(3, 2)
    for args, kwargs in [((torch.float64,), {}), ((), {"dtype": torch.float32}),
                         ((torch.device("cpu"), torch.float64), {"non_blocking": True}),
                         (("cpu:0",), {}), ((), {"device": torch.device("cpu", 0)})]:
        assert ours.to(*args, **kwargs) is ours
        theirs.to(*args, **kwargs)
        assert _floats(ours) == _floats(theirs) and ours.device == "cpu"
    assert nn.Conv2d(1, 2, 3, dtype=torch.float64).weight.dtype == np.float64
    assert nn.BatchNorm2d(2, device=torch.device("cpu")).weight.dtype == np.float32
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int64"):
        ours.to(torch.int64)
    with pytest.raises(TypeError, match="non_blocking must be a bool"):
        ours.to("cpu", non_blocking="yes")


def test_a_state_dict_of_parameters_loads_back_as_torch():
    """state_dict(keep_vars=True) holds the Parameters themselves; torch loads it back."""
    def build(lib):
        return lib.Sequential(lib.Conv2d(1, 2, 3), lib.BatchNorm2d(2))
    ours, theirs = build(nn), build(TN)
    for assign in (False, True):
        theirs.load_state_dict(theirs.state_dict(keep_vars=True), assign=assign)
        before = {k: v.copy() for k, v in ours.state_dict().items()}
        result = ours.load_state_dict(ours.state_dict(keep_vars=True), assign=assign)
        assert result == ([], [])
        assert all(np.array_equal(before[k], v) for k, v in ours.state_dict().items())


def test_conv_layers_take_one_element_sequences_as_torch():
    x = np.random.default_rng(3).standard_normal((2, 4, 9, 9))
    fc.manual_seed(0)
    ours = nn.Conv2d(4, 2, 3, stride=[2], padding=(1,), dilation=(2,)).double()
    theirs = TN.Conv2d(4, 2, 3, stride=[2], padding=(1,), dilation=(2,)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    assert_close(ours(x), theirs(torch.tensor(x)).detach().numpy(), 1e-12)
    assert nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=[1])(x.astype(np.float32)).shape \
        == TN.ConvTranspose2d(4, 2, 3, stride=2, output_padding=[1])(
            torch.tensor(x, dtype=torch.float32)).shape
    with pytest.raises(ValueError, match="kernel_size"):  # torch's weight would be 3-D
        nn.Conv2d(4, 2, [3])
