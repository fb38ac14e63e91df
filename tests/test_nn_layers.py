"""nn layers, losses, blocks and utilities without torch: input validation naming the layer,
repr, initialisation, frozen parameters, gradient accumulation, dropout masks, random
mixed-pool alpha, batch-norm statistics by hand, and finite differences through composites.
"""

import math
import re

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from fastconv._arrays import is_cuda

from _cuda import REASON
from _util import assert_close


def _x(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- input validation ----------------------------------------------------------------------

BAD_INPUTS = [
    (lambda: nn.Linear(7, 5), (3, 6), r"Linear\(in_features=7, out_features=5, bias=True\) "
                                      r"expected input \(\*, 7\), got \(3, 6\)"),
    (lambda: nn.ConvTranspose2d(4, 6, 3), (2, 3, 5, 5),
     r"ConvTranspose2d\(4, 6, kernel_size=\(3, 3\).* expected input with 4 channels, "
     r"got \(2, 3, 5, 5\)"),
    (lambda: nn.ConvTranspose2d(4, 6, 3), (4, 5, 5), r"ConvTranspose2d\(4, 6.*4-D"),
    (lambda: nn.MaxPool2d(2), (2, 3, 4, 4, 4), r"MaxPool2d\(kernel_size=2, stride=2.*"
                                               r"\(N, C, H, W\) input, got \(2, 3, 4, 4, 4\)"),
    (lambda: nn.MinPool2d(2), (4, 4), r"MinPool2d\(kernel_size=2"),
    (lambda: nn.AvgPool2d(3), (1, 9), r"AvgPool2d\(kernel_size=3, stride=3, padding=0\)"),
    (lambda: nn.LPPool2d(2, 2), (8,), r"LPPool2d\(norm_type=2"),
    (lambda: nn.MixedPool2d(2), (2, 2), r"MixedPool2d\(kernel_size=2"),
    (lambda: nn.AdaptiveAvgPool2d(1), (2, 8), r"AdaptiveAvgPool2d\(output_size=1\)"),
    (lambda: nn.AdaptiveMaxPool2d((2, 3)), (2, 8), r"AdaptiveMaxPool2d\(output_size=\(2, 3\)\)"),
    (lambda: nn.BatchNorm2d(3), (4, 3, 5), r"BatchNorm2d\(3, eps=1e-05.* 4-D"),
    (lambda: nn.BatchNorm2d(3), (4, 2, 5, 5), r"BatchNorm2d\(3, .*expected input with 3 "
                                              r"channels, got \(4, 2, 5, 5\)"),
    (lambda: nn.BatchNorm1d(5), (4, 5, 2, 2), r"BatchNorm1d\(5, .*\(N, C\) or 3-D"),
    (lambda: nn.BatchNorm1d(5), (4, 6), r"BatchNorm1d\(5, .*5 channels, got \(4, 6\)"),
    (lambda: nn.LocalResponseNorm(3), (4, 5), r"LocalResponseNorm\(3, alpha=0.0001"),
    (lambda: nn.Softmax(dim=2), (4, 5), r"Softmax\(dim=2\): dim 2 is out of range"),
    (lambda: nn.LogSoftmax(dim=-3), (4, 5), r"LogSoftmax\(dim=-3\): dim -3"),
    (lambda: nn.BasicBlock(4, 8), (2, 3, 6, 6), r"BasicBlock\(4, 8, stride=1\) expected input "
                                                r"with 4 channels"),
    (lambda: nn.Bottleneck(4, 2, 2), (2, 4, 6), r"Bottleneck\(4, 2, stride=2, expansion=4\)"),
    (lambda: nn.Inception(5, 3, 2, 4, 2, 3, 2), (1, 4, 6, 6),
     r"Inception\(5, 3, 2, 4, 2, 3, 2, five_by_five='5x5'\) expected input with 5 channels"),
]


@pytest.mark.parametrize("make,shape,message", BAD_INPUTS,
                         ids=[re.match(r"\w+", m).group() + f"_{i}"
                              for i, (_, _, m) in enumerate(BAD_INPUTS)])
def test_layer_rejects_wrong_input_shape_naming_the_layer(make, shape, message):
    layer = make().double()
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(shape))


TOO_SMALL = [
    (lambda: nn.Conv2d(3, 4, 3), (2, 3, 2, 2), "conv2d: output size would be (0, 0)"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, padding=3), (2, 3, 1, 1),
     "conv_transpose2d: output size would be (-3, -3)"),
    (lambda: nn.MaxPool2d(5), (1, 1, 3, 3), "max_pool2d: output size would be (0, 0)"),
    (lambda: nn.MinPool2d(5), (1, 1, 3, 3), "min_pool2d: output size would be (0, 0)"),
    (lambda: nn.AvgPool2d(5), (1, 1, 3, 3), "avg_pool2d: output size would be (0, 0)"),
    (lambda: nn.LPPool2d(2, 5), (1, 1, 3, 3), "lp_pool2d: output size would be (0, 0)"),
    (lambda: nn.MixedPool2d(5), (1, 1, 3, 3), "mixed_pool2d: output size would be (0, 0)"),
    (lambda: nn.AdaptiveAvgPool2d(2), (1, 1, 0, 3), "adaptive_avg_pool2d: input must have"),
    (lambda: nn.AdaptiveMaxPool2d(2), (1, 1, 0, 3), "adaptive_max_pool2d: input must have"),
    (lambda: nn.BatchNorm1d(3), (1, 3), "batch_norm: expected more than 1 value per channel"),
    (lambda: nn.BatchNorm2d(3), (1, 3, 1, 1), "batch_norm: expected more than 1 value"),
    (lambda: nn.Dropout2d(), (4,), "dropout2d: feature dropout needs at least 2 dimensions"),
]


@pytest.mark.parametrize("make,shape,message", TOO_SMALL,
                         ids=[m.split(":")[0] for _, _, m in TOO_SMALL])
def test_layer_names_itself_when_its_op_refuses_the_input(make, shape, message):
    """The functional op's ValueError (an input too small for the kernel) said which op, not
    which of a network's layers: the layer's name now comes first, the op's message after it,
    and the op's error is the cause."""
    layer = make()
    with pytest.raises(ValueError) as info:
        layer(np.zeros(shape, np.float32))
    assert str(info.value).startswith(layer._name() + ": " + message)
    assert type(info.value.__cause__) is ValueError and str(info.value.__cause__).startswith(
        message)


def test_layer_error_is_named_once_by_the_innermost_layer():
    conv = nn.Conv2d(3, 4, 3)
    inner = "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1)): conv2d: output size would be"
    with pytest.raises(ValueError) as info:  # containers pass it on
        nn.Sequential(nn.ReLU(), nn.Sequential(conv))(np.zeros((2, 3, 2, 2), np.float32))
    assert str(info.value).startswith(inner) and "Sequential" not in str(info.value)

    class Wrapper(nn.Module):  # a leaf that calls a layer it does not register
        def __init__(self):
            super().__init__()
            object.__setattr__(self, "hidden", nn.Conv2d(3, 4, 3))

        def forward(self, x):
            return self.hidden(x)
    with pytest.raises(ValueError) as info:
        Wrapper()(np.zeros((2, 3, 2, 2), np.float32))
    assert str(info.value).startswith(inner) and "Wrapper" not in str(info.value)
    # a message that already names the layer is left as it is
    with pytest.raises(ValueError) as info:
        nn.Linear(3, 2)(np.zeros((2, 4), np.float32))
    assert str(info.value).count("Linear(") == 1


@pytest.mark.parametrize("make,channels,expected", [
    (lambda c: nn.Conv2d(c, 16, 3), 1, "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1)) "
                                       "expected input with 1 channel, got (8, 3, 28, 28)"),
    (lambda c: nn.Conv2d(c, 16, 3), 2, "expected input with 2 channels, got (8, 3, 28, 28)"),
    (lambda c: nn.ConvTranspose2d(c, 2, 3), 1, "expected input with 1 channel, got"),
    (lambda c: nn.BatchNorm2d(c), 1, "expected input with 1 channel, got"),
    (lambda c: nn.BatchNorm1d(c), 1, "expected input with 1 channel, got"),
    (lambda c: nn.BasicBlock(c, 2), 1, "expected input with 1 channel, got"),
    (lambda c: nn.Inception(c, 1, 1, 1, 1, 1, 1), 1, "expected input with 1 channel, got"),
], ids=["Conv2d", "Conv2d-2", "ConvTranspose2d", "BatchNorm2d", "BatchNorm1d", "BasicBlock",
        "Inception"])
def test_layer_counts_one_channel_in_the_singular(make, channels, expected):
    """The issue's example, `Conv2d(1, 16, ...) expected input with 1 channel, got (8, 3, 28,
    28)`: fastconv said "1 channels"."""
    layer = make(channels)
    shape = (8, 3, 28, 28) if not isinstance(layer, nn.BatchNorm1d) else (8, 3)
    with pytest.raises(ValueError) as info:
        layer(np.zeros(shape, np.float32))
    assert expected in str(info.value) and str(info.value).startswith(layer._name())


FACTORIES = {
    "Conv2d": lambda **kw: nn.Conv2d(2, 4, 3, **kw),
    "ConvTranspose2d": lambda **kw: nn.ConvTranspose2d(2, 4, 3, **kw),
    "Linear": lambda **kw: nn.Linear(3, 5, **kw),
    "BatchNorm1d": lambda **kw: nn.BatchNorm1d(3, **kw),
    "BatchNorm2d": lambda **kw: nn.BatchNorm2d(3, **kw),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_layer_dtype_and_device_arguments(name):
    """dtype=None was float64 (None reached np.empty); device was not an argument."""
    make = FACTORIES[name]
    floats = [v for v in make(dtype=None).state_dict().values() if v.dtype.kind == "f"]
    assert floats and all(v.dtype == np.float32 for v in floats)
    with pytest.raises(TypeError, match=f"{name}: dtype must be float32 or float64, got int32"):
        make(dtype=np.int32)
    with pytest.raises(TypeError, match=f"{name}: dtype must be float32 or float64, got 'x'"):
        make(dtype="x")
    assert make(device="cpu").device == "cpu"
    with pytest.raises(ValueError, match=f"{name}: device must be 'cpu' or 'cuda', got 'cuda:1'; "
                                         "select the GPU with cupy.cuda.Device"):
        make(device="cuda:1")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'tpu'"):
        make(device="tpu")
    with pytest.raises(TypeError, match="device must be 'cpu', 'cuda' or None, got "):
        make(device=np.float64)  # a dtype where torch's order has the device
    if REASON is None:
        layer = make(device="cuda")  # built, then moved as .to("cuda") moves it
        assert layer.device == "cuda" and all(p.device == "cuda" for p in layer.parameters())
        assert all(is_cuda(b) for b in layer.buffers() if b.dtype.kind == "f")
    else:  # refused before anything is built, as .to("cuda") refuses it
        with pytest.raises(RuntimeError, match=rf"{name}\(device='cuda'\): .*(CUDA|CuPy)"):
            make(device="cuda")


@pytest.mark.parametrize("loss_fn,x,y,message", [
    (nn.MSELoss(), np.zeros((3, 4)), np.zeros((3, 5)), r"MSELoss\(\): mse_loss"),
    (nn.CrossEntropyLoss(), np.zeros((3, 4)), np.zeros(2, dtype=np.int64),
     r"CrossEntropyLoss\(\): cross_entropy"),
    (nn.MultiMarginLoss(), np.zeros((3, 4)), np.zeros(4, dtype=np.int64),
     r"MultiMarginLoss\(\): multi_margin_loss"),
], ids=["mse", "cross_entropy", "multi_margin"])
def test_loss_rejects_wrong_shapes_naming_the_loss(loss_fn, x, y, message):
    with pytest.raises(ValueError, match=message):
        loss_fn(x, y)


def test_layers_reject_non_arrays_and_bad_arguments():
    with pytest.raises(TypeError, match=r"ReLU\(\) expected a numpy.ndarray"):
        nn.ReLU()([1.0, 2.0])
    with pytest.raises(TypeError, match=r"Sigmoid\(\) expected a numpy.ndarray"):
        nn.Sigmoid()(3.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="MultiMarginLoss: p must be 1 or 2, got 3"):
        nn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="five_by_five"):
        nn.Inception(5, 3, 2, 4, 2, 3, 2, five_by_five="7x7")
    with pytest.raises(ValueError, match="alpha"):
        nn.MixedPool2d(2, alpha=1.5)
    with pytest.raises(ValueError, match="groups"):
        nn.ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(RuntimeError, match=r"MSELoss\(\).backward: call the loss"):
        nn.MSELoss().backward()


@pytest.mark.parametrize("make,exc,match", [
    # groups 0 was a ZeroDivisionError, a 1-tuple kernel an IndexError, negative groups NumPy's
    # "negative dimensions": none named the argument
    (lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, "Conv2d: groups must be a positive"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, groups=-2), ValueError, "groups must be a positive"),
    (lambda: nn.Conv2d(4, 4, (3,)), ValueError, "Conv2d: kernel_size must be an int or a pair"),
    (lambda: nn.Conv2d(4, 4, 3.0), TypeError, "Conv2d: kernel_size must be an int or a pair"),
    (lambda: nn.Conv2d(-1, 4, 3), ValueError, "Conv2d: in_channels must be a non-negative"),
    (lambda: nn.Conv2d(4, 4, 3, stride=0), ValueError, "Conv2d: stride must be positive"),
    (lambda: nn.Conv2d(4, 4, 3, dilation=(1, 0)), ValueError, "dilation must be positive"),
    (lambda: nn.Conv2d(4, 4, 3, padding=-1), ValueError, "padding must be non-negative"),
    # torch refuses these at construction; ours waited for the first forward
    (lambda: nn.Conv2d(4, 4, 3, padding="same", stride=2), ValueError, "'same' needs stride 1"),
    (lambda: nn.Conv2d(4, 4, 3, padding="full"), ValueError, "padding must be 'valid', 'same'"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding="same"), TypeError, "ConvTranspose2d: padding"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2), ValueError,
     "output_padding must be smaller than the stride or the dilation"),
])
def test_conv_layers_check_their_arguments_when_built(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("start,end,shape,expected", [
    (1, -1, (0, 3, 4, 4), (0, 48)),
    (0, 0, (2, 0, 3), (2, 0, 3)),
    (-1, -1, (0, 3), (0, 3)),
    (1, 2, (2, 0, 5, 3), (2, 0, 3)),
])
def test_flatten_of_zero_size_input_as_torch(start, end, shape, expected):
    """NumPy cannot infer reshape's -1 when a size is 0: Flatten refused a batch of 0."""
    layer = nn.Flatten(start, end)
    x = np.zeros(shape)
    assert layer(x).shape == expected
    assert layer.backward(np.zeros(expected)).shape == shape


def test_identity_takes_and_ignores_arguments_as_torch():
    layer = nn.Identity(54, unused="x")
    x = _x(2, 3)
    assert layer(x) is x


@pytest.mark.parametrize("layer,shape,exc,match", [
    # Out-of-range dims were wrapped modulo the rank: Flatten(5) returned a 2-D input unchanged.
    (nn.Flatten(5), (2, 3), ValueError, r"Flatten\(start_dim=5, end_dim=-1\): start_dim 5 "),
    (nn.Flatten(0, -4), (2, 3, 4), ValueError, "end_dim -4 is out of range"),
    (nn.Flatten(1), (5,), ValueError, "start_dim 1 is out of range"),
    (nn.Flatten("1"), (2, 3), TypeError, "start_dim must be an int"),
    (nn.Flatten(), [1.0, 2.0], TypeError, r"Flatten\(.*\) expected a numpy.ndarray"),
    # A str dim met the range check's '<=' first: a TypeError naming nothing.
    (nn.Softmax(dim="1"), (2, 3), TypeError, r"Softmax\(dim=1\): dim must be an int"),
    (nn.LogSoftmax(dim=1.0), (2, 3), TypeError, "dim must be an int"),
])
def test_layers_reject_bad_dims_by_name(layer, shape, exc, match):
    x = np.zeros(shape) if isinstance(shape, tuple) else shape
    with pytest.raises(exc, match=match):
        layer(x)


def test_layers_with_no_input_features_construct_and_run_as_torch():
    """Initialising a zero-element weight divided by a fan-in of 0 (ZeroDivisionError); torch
    makes it a no-op."""
    layer = nn.Linear(0, 3).double()
    assert (layer.weight.data.shape == (3, 0)) and (layer.bias.data == 0).all()
    np.testing.assert_array_equal(layer(np.zeros((2, 0))), np.zeros((2, 3)))
    assert nn.Conv2d(0, 2, 3).weight.data.shape == (2, 0, 3, 3)
    assert nn.ConvTranspose2d(2, 3, 0).weight.data.shape == (2, 3, 0, 0)
    assert nn.BasicBlock(0, 2).conv1.weight.data.shape == (2, 0, 3, 3)
    w = np.empty((0, 4))
    for init in (nn.init.xavier_uniform_, nn.init.xavier_normal_, nn.init.kaiming_uniform_,
                 nn.init.kaiming_normal_):
        assert init(w) is w


def test_softmax_without_dim_warns_and_uses_torchs_legacy_choice():
    x = _x(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = nn.Softmax()(x)
    assert_close(y.sum(axis=1), np.ones(2), 1e-15)  # 2-D input: dim 1


# -- repr, matching torch's extra_repr strings -------------------------------------------------

@pytest.mark.parametrize("layer,expected", [
    (nn.Linear(3, 4, bias=False), "Linear(in_features=3, out_features=4, bias=False)"),
    (nn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=1),
     "ConvTranspose2d(2, 4, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1))"),
    (nn.MaxPool2d(3, 2, 1), "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, "
                            "ceil_mode=False)"),
    (nn.AvgPool2d(2), "AvgPool2d(kernel_size=2, stride=2, padding=0)"),
    (nn.LPPool2d(2, 3), "LPPool2d(norm_type=2, kernel_size=3, stride=None, ceil_mode=False)"),
    (nn.AdaptiveAvgPool2d((5, 7)), "AdaptiveAvgPool2d(output_size=(5, 7))"),
    (nn.ReLU(inplace=True), "ReLU(inplace=True)"),
    (nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (nn.ELU(alpha=0.5), "ELU(alpha=0.5)"),
    (nn.Softplus(), "Softplus(beta=1.0, threshold=20.0)"),
    (nn.LogSoftmax(dim=1), "LogSoftmax(dim=1)"),
    (nn.BatchNorm1d(4, momentum=None), "BatchNorm1d(4, eps=1e-05, momentum=None, affine=True, "
                                       "bias=True, track_running_stats=True)"),
    (nn.LocalResponseNorm(5), "LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)"),
    (nn.Dropout(0.25), "Dropout(p=0.25, inplace=False)"),
    (nn.CrossEntropyLoss(), "CrossEntropyLoss()"),
])
def test_layer_repr_is_torchs(layer, expected):
    assert repr(layer).split("  #")[0] == expected


# -- initialisation ----------------------------------------------------------------------------

@pytest.mark.parametrize("make,fan_in", [
    (lambda g: nn.Linear(50, 40, generator=g), 50),
    (lambda g: nn.ConvTranspose2d(6, 8, (3, 2), groups=2, generator=g), 4 * 3 * 2),
], ids=["linear", "conv_transpose"])
def test_dense_layers_default_init_uses_torchs_bounds(make, fan_in):
    layer = make(np.random.default_rng(0))
    bound = 1 / math.sqrt(fan_in)
    w, b = layer.weight.data, layer.bias.data
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound) has standard deviation bound / sqrt(3).
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.1
    assert np.abs(b).max() > bound / 2  # the bias is drawn too, not left at zero


def test_batch_norm_initial_state_and_eval_before_training():
    bn = nn.BatchNorm2d(3).double()
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert (bn.weight.data == 1).all() and (bn.bias.data == 0).all()
    bn.weight.data[:] = [1.0, 2.0, 3.0]
    bn.bias.data[:] = [0.5, 0.0, -1.0]
    x = _x(2, 3, 4, 5)
    y = bn.eval()(x)
    # Running statistics are mean 0, variance 1 before any training step.
    scale = np.array([1.0, 2.0, 3.0])[:, None, None] / math.sqrt(1 + 1e-5)
    assert_close(y, x * scale + np.array([0.5, 0.0, -1.0])[:, None, None], 1e-14)
    assert int(bn.num_batches_tracked) == 0


def test_batch_norm_cumulative_average_by_hand():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    batches = [_x(5, 2, seed=s) * (s + 1) + s for s in range(4)]
    for b in batches:
        bn(b)
    # momentum=None: the running statistics are plain averages of the batch statistics.
    assert_close(bn.running_mean, np.mean([b.mean(0) for b in batches], axis=0), 1e-13)
    assert_close(bn.running_var, np.mean([b.var(0, ddof=1) for b in batches], axis=0), 1e-13)
    assert bn.state_dict()["num_batches_tracked"] == 4
    fresh = nn.BatchNorm1d(2, momentum=None).double()
    fresh.load_state_dict(bn.state_dict())
    assert fresh.num_batches_tracked == 4 and fresh.num_batches_tracked.dtype == np.int64


# -- frozen parameters and accumulation -----------------------------------------------------

PARAM_LAYERS = [
    (lambda: nn.Linear(6, 4), (3, 6)),
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2), (2, 3, 4, 5)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4, 5)),
    (lambda: nn.BatchNorm1d(3), (5, 3)),
    (lambda: nn.BasicBlock(3, 4, 2), (2, 3, 6, 6)),
    (lambda: nn.Inception(3, 2, 2, 2, 1, 2, 1, "double3x3"), (1, 3, 5, 5)),
]
PARAM_IDS = ["linear", "conv_transpose", "bn2d", "bn1d", "basic_block", "inception"]


@pytest.mark.parametrize("make,shape", PARAM_LAYERS, ids=PARAM_IDS)
def test_frozen_parameters_get_no_gradient_and_the_input_gradient_is_unchanged(make, shape):
    fc.manual_seed(0)
    layer = make().double()
    x = _x(*shape)
    y = layer(x)
    g = _x(*y.shape, seed=1)
    dx = layer.backward(g)
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer.zero_grad()
    layer.freeze()
    layer(x)
    assert_close(layer.backward(g), dx, 1e-14)
    assert all(p.grad is None for p in layer.parameters())
    # Freezing one parameter (a weight) leaves the others' gradients as they were.
    layer.unfreeze()
    name, first = next(layer.named_parameters())
    first.requires_grad = False
    layer(x)
    layer.backward(g)
    for n, p in layer.named_parameters():
        if n == name:
            assert p.grad is None
        else:
            assert_close(p.grad, grads[n], 1e-14, what=n)


@pytest.mark.parametrize("make,shape", PARAM_LAYERS, ids=PARAM_IDS)
def test_parameter_gradients_accumulate_over_backward_calls(make, shape):
    fc.manual_seed(0)
    layer = make().double().eval()
    x = _x(*shape)
    g = _x(*layer(x).shape, seed=1)
    layer.backward(g)
    once = {n: p.grad.copy() for n, p in layer.named_parameters()}
    layer(x)
    layer.backward(g)
    for n, p in layer.named_parameters():
        assert_close(p.grad, 2 * once[n], 1e-14, what=n)


# -- dropout -----------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_forward_and_backward_use_one_mask_and_scale(p):
    x = _x(40, 50) + 5.0  # no zeros in x, so y == 0 exactly where an element was dropped
    fc.manual_seed(3)
    d = nn.Dropout(p)
    y = d(x)
    kept = y != 0
    assert_close(y[kept], x[kept] / (1 - p), 1e-15)
    # 2000 Bernoulli draws: the kept fraction is within 5 standard deviations of 1 - p.
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / kept.size)
    g = _x(40, 50, seed=1)
    dx = d.backward(g)
    np.testing.assert_array_equal(dx == 0, ~kept)
    assert_close(dx[kept], g[kept] / (1 - p), 1e-15)
    fc.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout(p)(x), y)  # reproducible from the seed
    assert not np.array_equal(d(x), y)  # and a new mask on the next call


def test_dropout_edge_probabilities_eval_and_inplace():
    x = _x(3, 4) + 5.0
    np.testing.assert_array_equal(nn.Dropout(0.0)(x), x)
    d = nn.Dropout(1.0)
    assert (d(x) == 0).all() and (d.backward(np.ones_like(x)) == 0).all()
    d = nn.Dropout(0.5).eval()
    assert d(x) is x and d.backward(x) is x
    z = x.copy()
    fc.manual_seed(4)
    y = nn.Dropout(0.5, inplace=True)(z)
    assert y is z and (z == 0).any()


# -- mixed pooling with a random alpha -----------------------------------------------------------

def test_mixed_pool_random_alpha_is_recorded_and_used_by_backward():
    x = _x(2, 3, 8, 7)
    g = _x(2, 3, 4, 3, seed=1)
    fc.manual_seed(5)
    layer = nn.MixedPool2d(2, alpha=None)
    y1 = layer(x)
    a1 = layer.last_alpha
    assert 0.0 <= a1 <= 1.0
    dx = layer.backward(g)
    fixed = nn.MixedPool2d(2, alpha=a1)
    np.testing.assert_array_equal(y1, fixed(x))
    np.testing.assert_array_equal(dx, fixed.backward(g))
    # mixed = a * max + (1 - a) * avg, from the separate layers.
    assert_close(y1, a1 * nn.MaxPool2d(2)(x) + (1 - a1) * nn.AvgPool2d(2)(x), 1e-14)
    layer(x)
    assert layer.last_alpha != a1  # a fresh draw per forward
    fc.manual_seed(5)
    nn.MixedPool2d(2, alpha=None)(x)
    seeded = nn.MixedPool2d(2, alpha=None, generator=np.random.default_rng(0))
    seeded(x)
    assert seeded.last_alpha == np.random.default_rng(0).random()


def test_pool_return_indices_gives_torch_style_pairs():
    x = _x(1, 2, 4, 4)
    out, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert idx.dtype == np.int64 and out.shape == idx.shape == (1, 2, 2, 2)
    flat = x.reshape(1, 2, 16)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.reshape(1, 2, 4), 2),
                                  out.reshape(1, 2, 4))


@pytest.mark.parametrize("layer", [nn.MaxPool2d(3, 2, 1), nn.MinPool2d(2)],
                         ids=["max", "min"])
def test_extreme_pool_in_eval_mode_keeps_no_indices_and_still_has_a_backward(layer):
    """In eval mode the layer asks the kernel for the pooled values alone (no argmax is
    computed or kept); a backward then recomputes the argmax from the input, and gives what
    training mode's saved indices give."""
    x = _x(2, 3, 7, 6)
    layer.train()
    y_train = layer(x)
    dy = np.random.default_rng(3).standard_normal(y_train.shape)
    dx_train = layer.backward(dy)
    layer.eval()
    y_eval = layer(x)
    assert layer._indices is None
    np.testing.assert_array_equal(y_eval, y_train)
    np.testing.assert_array_equal(layer.backward(dy), dx_train)


# -- losses ------------------------------------------------------------------------------------

def test_cross_entropy_loss_by_hand_and_backward_of_the_last_call():
    x = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = np.array([1, 2])
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(x, y)
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    assert isinstance(loss, float)
    assert math.isclose(loss, -(logp[0, 1] + logp[1, 2]) / 2, rel_tol=1e-14)
    expected = (np.exp(logp) - np.eye(3)[y]) / 2
    assert_close(loss_fn.backward(), expected, 1e-14)
    assert_close(loss_fn.backward(2.0), 2 * expected, 1e-14)
    loss_fn(x[:1], y[:1])  # backward follows the latest call
    assert loss_fn.backward().shape == (1, 3)


def test_mse_loss_by_hand_and_none_reduction():
    x, t = _x(3, 4), _x(3, 4, seed=1)
    loss_fn = nn.MSELoss(reduction="sum")
    assert math.isclose(loss_fn(x, t), ((x - t) ** 2).sum(), rel_tol=1e-14)
    assert_close(loss_fn.backward(), 2 * (x - t), 1e-14)
    per = nn.MSELoss(reduction="none")
    assert_close(per(x, t), (x - t) ** 2, 1e-14)
    g = _x(3, 4, seed=2)
    assert_close(per.backward(g), 2 * (x - t) * g, 1e-14)


def test_weighted_losses_keep_the_weight_as_a_state_dict_buffer():
    w = np.array([1.0, 2.0, 0.5])
    loss_fn = nn.CrossEntropyLoss(weight=w)
    assert list(loss_fn.state_dict()) == ["weight"]
    assert loss_fn.weight.dtype == np.float64
    x = _x(4, 3).astype(np.float32)
    assert isinstance(loss_fn(x, np.array([0, 1, 2, 1])), float)
    assert loss_fn.backward().dtype == np.float32
    assert list(nn.MultiMarginLoss().state_dict()) == []


# -- finite differences through composites ---------------------------------------------------

def _finite_difference_check(net, x, seed=0, h=1e-6, checks=6):
    """<dL/dx, v> and <dL/dp, v> against central differences of L = <net(x), g>."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(net(x).shape)
    net.zero_grad()
    net(x)
    dx = net.backward(g)

    def loss():
        return float(np.sum(net(x) * g))

    targets = [("input", x, dx)] + [(n, p.data, p.grad) for n, p in net.named_parameters()]
    for name, value, grad in targets[:checks]:
        v = rng.standard_normal(value.shape)
        value += h * v
        up = loss()
        value -= 2 * h * v
        down = loss()
        value += h * v
        fd = (up - down) / (2 * h)
        assert math.isclose(fd, float(np.sum(grad * v)), rel_tol=1e-6, abs_tol=1e-8), name


def test_sequential_of_new_layers_passes_finite_differences():
    fc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ELU(),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
                        nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3), nn.LogSoftmax(dim=1))
    net.double()
    # Training-mode batch norm couples the batch: the check covers that coupling too.
    _finite_difference_check(net, _x(3, 2, 6, 7), checks=20)


@pytest.mark.parametrize("make", [lambda: nn.Bottleneck(4, 2, 2),
                                  lambda: nn.Inception(3, 2, 2, 2, 1, 2, 1)],
                         ids=["bottleneck", "inception"])
def test_blocks_pass_finite_differences(make):
    fc.manual_seed(1)
    net = make().double()
    _finite_difference_check(net, _x(2, net.in_channels, 5, 6), checks=8)


# -- utilities ---------------------------------------------------------------------------------

def test_clip_grad_norm_by_hand_and_without_gradients():
    p = nn.Parameter(np.zeros(2))
    assert nn.utils.clip_grad_norm_([p], 1.0) == 0.0
    p.grad = np.array([3.0, 4.0])
    assert nn.utils.clip_grad_norm_(p, 1.0) == 5.0
    assert_close(p.grad, np.array([3.0, 4.0]) / (5.0 + 1e-6), 1e-15)
    q = nn.Parameter(np.zeros(2))
    q.grad = np.array([0.3, 0.4])
    nn.utils.clip_grad_norm_([q], 1.0)
    np.testing.assert_array_equal(q.grad, [0.3, 0.4])  # below max_norm: unchanged


def test_max_norm_on_a_module_constrains_weights_only():
    fc.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Linear(4, 5)).double()
    for p in net.parameters():
        p.data *= 10
    biases = [net[0].bias.data.copy(), net[1].bias.data.copy()]
    nn.utils.max_norm_(net, 1.5)
    for w in (net[0].weight.data, net[1].weight.data):
        norms = np.sqrt((w.reshape(w.shape[0], -1) ** 2).sum(1))
        assert np.all(norms <= 1.5) and np.all(norms > 1.5 - 1e-6)
    np.testing.assert_array_equal(net[0].bias.data, biases[0])
    np.testing.assert_array_equal(net[1].bias.data, biases[1])


def test_l1_penalty_by_hand_skips_frozen_gradients():
    a = nn.Parameter(np.array([1.0, -2.0, 0.0]))
    b = nn.Parameter(np.array([[0.5, -0.25]]), requires_grad=False)
    a.grad = np.array([0.1, 0.1, 0.1])
    value = nn.utils.l1_penalty([a, b], 0.1)
    assert math.isclose(value, 0.1 * 3.75, rel_tol=1e-15)
    assert_close(a.grad, np.array([0.2, 0.0, 0.1]), 1e-15)
    assert b.grad is None
