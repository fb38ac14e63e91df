"""fastconv.onnx.export: every model and layer written as ONNX, checked by onnx.checker (inside
export) and run by ONNX Runtime on CPU at batch 1 and another batch size, against fastconv's own
eval-mode output (float32, 1e-4 relative to the output's largest magnitude)."""

import numpy as np
import pytest

import fastconv
from fastconv import models, nn

onnx = pytest.importorskip("onnx", reason="onnx: pip install \"fastconv[onnx]\"")
ort = pytest.importorskip("onnxruntime", reason="onnx: pip install \"fastconv[onnx]\"")

from fastconv import onnx as fonnx  # noqa: E402

RTOL = 1e-4


def _warm(model, shape, rng):
    """A few training-mode batches so batch norm's running statistics are not 0 and 1."""
    model.train()
    for _ in range(2):
        model(rng.standard_normal((4,) + shape).astype(np.float32))
    model.eval()


def _compare(got, want, what=""):
    """Same shape, NaN where fastconv has NaN, and the rest within RTOL of the largest
    magnitude. ONNX Runtime's max pooling gives the float's extreme where torch gives -inf (a
    window wholly in padding); that is its own behaviour, so those count as equal."""
    assert got.shape == want.shape, what
    extreme = np.finfo(got.dtype).max
    got = np.where(np.isinf(want) & (np.abs(got) >= extreme), want, got)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN patterns differ"
    assert np.array_equal(np.isinf(got), np.isinf(want)), f"{what}: infinities differ"
    finite = np.isfinite(want)
    assert finite.any(), what
    scale = max(float(np.abs(want[finite]).max()), 1e-30)
    err = float(np.abs(got[finite] - want[finite]).max()) / scale
    assert err <= RTOL, f"{what}: relative difference {err:.2e}"


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _check(model, shape, tmp_path, batches=(1, 3), seed=0, **kw):
    rng = np.random.default_rng(seed)
    path = tmp_path / "model.onnx"
    example = rng.standard_normal((2,) + shape).astype(np.float32)
    fonnx.export(model, example, path, **kw)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in batches:
        x = rng.standard_normal((b,) + shape).astype(np.float32)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        _compare(got, model(x), f"batch {b}")
    return path


MODELS = [
    ("fashion_cnn", models.fashion_cnn, (1, 28, 28)),
    ("lenet5", models.lenet5, (1, 32, 32)),
    ("lenet5_28", lambda: models.lenet5(input_size=28), (1, 28, 28)),
    ("mlp", models.mlp, (1, 28, 28)),
    ("inception_net", models.inception_net, (1, 28, 28)),
    ("alexnet", lambda: models.alexnet(num_classes=10), (3, 67, 67)),
    ("resnet18", lambda: models.resnet18(num_classes=10), (3, 48, 40)),
    ("resnet18_small", lambda: models.resnet18(num_classes=10, small_input=True), (3, 32, 32)),
    ("resnet34", lambda: models.resnet34(num_classes=10, in_channels=1), (1, 40, 40)),
    ("resnet34_small", lambda: models.resnet34(num_classes=10, small_input=True), (3, 28, 28)),
    ("resnet50", lambda: models.resnet50(num_classes=10), (3, 64, 56)),
    ("resnet50_small", lambda: models.resnet50(num_classes=10, small_input=True), (3, 20, 20)),
]


@pytest.mark.parametrize("make, shape", [m[1:] for m in MODELS], ids=[m[0] for m in MODELS])
def test_models_run_in_onnxruntime(make, shape, tmp_path):
    fastconv.manual_seed(0)
    model = make()
    _warm(model, shape, np.random.default_rng(1))
    _check(model, shape, tmp_path)


LAYERS = [
    ("conv_stride_pad", lambda: nn.Conv2d(3, 5, 3, stride=2, padding=1), (3, 9, 8)),
    ("conv_dilation_groups", lambda: nn.Conv2d(4, 6, (3, 2), dilation=(2, 1), groups=2),
     (4, 11, 7)),
    ("conv_same_even", lambda: nn.Conv2d(2, 3, 4, padding="same", bias=False), (2, 7, 6)),
    ("conv_valid", lambda: nn.Conv2d(2, 3, 2, padding="valid"), (2, 5, 5)),
    ("conv_transpose", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                                  groups=2, dilation=2), (4, 5, 6)),
    # output_padding of the stride or more (below the dilation): rows ORT's attribute refuses
    ("conv_transpose_output_padding_past_stride",
     lambda: nn.ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), padding=(2, 0),
                                output_padding=(1, 2), groups=2, dilation=(2, 3)), (4, 5, 4)),
    ("conv_transpose_output_padding_past_stride_no_bias",
     lambda: nn.ConvTranspose2d(2, 3, 2, output_padding=1, dilation=2, bias=False), (2, 4, 4)),
    ("linear_3d", lambda: nn.Sequential(nn.Flatten(2), nn.Linear(12, 5)), (3, 4, 3)),
    ("max_ceil_dilation", lambda: nn.MaxPool2d(3, 2, padding=1, dilation=2, ceil_mode=True),
     (2, 10, 9)),
    # a dilated ceil_mode window whose end pad reaches the kernel size
    ("max_ceil_dilation_pad_past_kernel",
     lambda: nn.MaxPool2d(2, 3, dilation=2, ceil_mode=True), (1, 4, 4)),
    ("max_ceil", lambda: nn.MaxPool2d(2, ceil_mode=True), (2, 7, 5)),
    ("min", lambda: nn.MinPool2d(3, 2, padding=1, ceil_mode=True), (2, 8, 7)),
    ("min_ceil_dilation_pad_past_kernel",
     lambda: nn.MinPool2d((3, 2), (2, 3), padding=1, dilation=(2, 3), ceil_mode=True),
     (2, 8, 7)),
    ("avg_include_pad_ceil", lambda: nn.AvgPool2d(3, 2, padding=1, ceil_mode=True), (2, 8, 9)),
    ("avg_exclude_pad_ceil", lambda: nn.AvgPool2d(3, 2, padding=1, ceil_mode=True,
                                                  count_include_pad=False), (2, 8, 9)),
    ("avg_plain", lambda: nn.AvgPool2d((2, 3), (1, 2)), (2, 6, 7)),
    ("avg_divisor", lambda: nn.AvgPool2d(3, 2, padding=1, divisor_override=5), (2, 7, 7)),
    ("lp2", lambda: nn.LPPool2d(2, 3, 2), (2, 7, 8)),
    # odd p: a window whose sum of x^p is negative is NaN, as in torch
    ("lp3_ceil", lambda: nn.LPPool2d(3, 2, ceil_mode=True), (2, 7, 5)),
    ("lp1", lambda: nn.LPPool2d(1, 2), (2, 4, 6)),
    ("lp_inf", lambda: nn.LPPool2d(float("inf"), 2), (2, 6, 6)),
    ("mixed", lambda: nn.MixedPool2d(3, 2, padding=1, alpha=0.3), (2, 7, 8)),
    ("adaptive_avg_global", lambda: nn.AdaptiveAvgPool2d(1), (3, 5, 7)),
    ("adaptive_avg_uneven", lambda: nn.AdaptiveAvgPool2d((3, 5)), (2, 7, 11)),
    ("adaptive_max_even", lambda: nn.AdaptiveMaxPool2d((2, 3)), (2, 6, 9)),
    ("adaptive_max_uneven", lambda: nn.AdaptiveMaxPool2d((3, 4)), (2, 7, 6)),
    ("relu", nn.ReLU, (3, 4, 5)), ("leaky_relu", lambda: nn.LeakyReLU(0.2), (3, 4, 5)),
    ("elu", lambda: nn.ELU(0.7), (3, 4, 5)), ("sigmoid", nn.Sigmoid, (3, 4, 5)),
    ("tanh", nn.Tanh, (3, 4, 5)), ("softplus", lambda: nn.Softplus(2.0, 1.0), (3, 4, 5)),
    ("gelu", nn.GELU, (3, 4, 5)), ("gelu_tanh", lambda: nn.GELU("tanh"), (3, 4, 5)),
    ("silu", nn.SiLU, (3, 4, 5)), ("mish", nn.Mish, (3, 4, 5)),
    ("hardswish", nn.Hardswish, (3, 4, 5)), ("hardsigmoid", nn.Hardsigmoid, (3, 4, 5)),
    ("hardtanh", lambda: nn.Hardtanh(-0.5, 2.0), (3, 4, 5)), ("relu6", nn.ReLU6, (3, 4, 5)),
    ("selu", nn.SELU, (3, 4, 5)), ("celu", lambda: nn.CELU(0.7), (3, 4, 5)),
    ("softmax", lambda: nn.Softmax(dim=1), (6, 3)),
    ("log_softmax", lambda: nn.LogSoftmax(dim=-1), (3, 7)),
    ("batch_norm_1d", lambda: nn.BatchNorm1d(6), (6,)),
    ("batch_norm_1d_seq", lambda: nn.BatchNorm1d(4), (4, 9)),
    ("batch_norm_2d_no_affine", lambda: nn.BatchNorm2d(3, affine=False, eps=1e-3), (3, 5, 4)),
    ("lrn_odd", lambda: nn.LocalResponseNorm(3, alpha=0.1, beta=0.75, k=2.0), (7, 4, 5)),
    ("lrn_even", lambda: nn.LocalResponseNorm(4, alpha=0.2, beta=0.6, k=1.5), (7, 4, 5)),
    ("lrn_odd_3d", lambda: nn.LocalResponseNorm(3, alpha=0.3, beta=0.75, k=1.2), (6, 9)),
    ("lrn_even_3d", lambda: nn.LocalResponseNorm(2, alpha=0.3, beta=0.6, k=1.5), (6, 9)),
    ("lrn_odd_5d", lambda: nn.LocalResponseNorm(5, alpha=0.2, beta=0.75, k=1.0), (6, 2, 3, 4)),
    ("lrn_even_5d", lambda: nn.LocalResponseNorm(4, alpha=0.2, beta=0.6, k=1.5), (5, 3, 2, 3)),
    ("dropout_identity_flatten", lambda: nn.Sequential(nn.Dropout(0.4), nn.Identity(),
                                                       nn.Flatten(1, 2)), (3, 4, 5)),
    ("dropout2d", lambda: nn.Dropout2d(0.3), (3, 4, 5)),
    ("basic_block", lambda: nn.BasicBlock(4, 6, stride=2), (4, 9, 8)),
    ("bottleneck", lambda: nn.Bottleneck(8, 3, stride=2), (8, 7, 7)),
    ("inception_double3x3", lambda: nn.Inception(5, 2, 3, 4, 2, 3, 2, five_by_five="double3x3"),
     (5, 6, 7)),
]


@pytest.mark.parametrize("make, shape", [m[1:] for m in LAYERS], ids=[m[0] for m in LAYERS])
def test_layers_run_in_onnxruntime(make, shape, tmp_path):
    fastconv.manual_seed(2)
    layer = make()
    _warm(layer, shape, np.random.default_rng(3))
    _check(layer, shape, tmp_path)


def test_export_restores_training_mode_and_writes_a_symbolic_batch(tmp_path):
    model = models.fashion_cnn()
    model.train()
    path = tmp_path / "m.onnx"
    proto = fonnx.export(model, np.zeros((2, 1, 28, 28), np.float32), path,
                         input_names=["images"], output_names=["logits"])
    assert model.training and all(m.training for m in model.modules())
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert proto.graph.input[0].name == "images" and proto.graph.output[0].name == "logits"
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert onnx.load(str(path)).opset_import[0].version == fonnx.DEFAULT_OPSET
    fixed = fonnx.export(model, np.zeros((2, 1, 28, 28), np.float32), path, dynamic_batch=False,
                         opset_version=18)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_a_later_opset_runs_too(tmp_path):
    layer = nn.Sequential(nn.AdaptiveMaxPool2d((3, 4)), nn.GELU())
    _check(layer, (2, 7, 6), tmp_path, opset_version=18)


def test_conv_transpose_output_padding_past_the_stride(tmp_path):
    """Random configurations with output_padding >= stride on some axis (torch allows it below
    the dilation): the rows past ONNX Runtime's limit hold products of the dilated kernel where
    the padding cropped them, zeros past the full output, and the bias everywhere."""
    rng = np.random.default_rng(7)
    path, tried = tmp_path / "m.onnx", 0
    while tried < 24:
        stride, dilation = rng.integers(1, 4, 2), rng.integers(1, 4, 2)
        output_padding = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)]
        if all(op < s for op, s in zip(output_padding, stride)):
            continue
        groups, (h, w) = int(rng.integers(1, 3)), rng.integers(1, 6, 2)
        layer = nn.ConvTranspose2d(2 * groups, 3 * groups, tuple(rng.integers(1, 4, 2)),
                                   stride=tuple(stride), padding=tuple(rng.integers(0, 4, 2)),
                                   output_padding=tuple(output_padding), groups=groups,
                                   dilation=tuple(dilation), bias=bool(rng.integers(0, 2)))
        x = rng.standard_normal((2, 2 * groups, h, w)).astype(np.float32)
        try:
            want = layer(x)
        except ValueError:  # padding that leaves no output
            continue
        tried += 1
        fonnx.export(layer, x, path)
        _compare(_run(path, x), want, repr(layer))


def test_lp_pool_odd_norm_is_nan_for_negative_window_sums(tmp_path):
    x = -np.abs(np.random.default_rng(0).standard_normal((1, 1, 4, 4))).astype(np.float32)
    x[0, 0, 0, 0] = 3.0  # one window with a positive sum, the others NaN
    layer = nn.LPPool2d(3, 2)
    want = layer(x)
    assert np.isnan(want).sum() == 3
    fonnx.export(layer, x, tmp_path / "m.onnx")
    _compare(_run(tmp_path / "m.onnx", x), want)


def test_an_output_whose_first_dim_is_not_the_batch(tmp_path):
    path = tmp_path / "m.onnx"
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    proto = fonnx.export(nn.Flatten(0), x, path)
    dim = proto.graph.output[0].type.tensor_type.shape.dim[0]
    assert not dim.dim_param and not dim.dim_value
    for b in (2, 3):
        xb = np.random.default_rng(b).standard_normal((b, 3)).astype(np.float32)
        _compare(_run(path, xb), nn.Flatten(0)(xb))
    proto = fonnx.export(nn.Flatten(0), x, path, dynamic_batch=False)
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [6]
    _compare(_run(path, x), nn.Flatten(0)(x))
    # merging the batch with dimensions of size 1 leaves it the batch
    proto = fonnx.export(nn.Flatten(0, 1), np.zeros((2, 1, 5), np.float32), path)
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 5


def test_linear_on_more_than_two_dims_stores_its_weight_once(tmp_path):
    proto = fonnx.export(nn.Linear(3, 2), np.zeros((2, 4, 3), np.float32), tmp_path / "m.onnx")
    assert sorted(init.name for init in proto.graph.initializer) == ["bias", "weight_t"]


class _Custom(nn.Module):
    def forward(self, x):
        return x * 2


@pytest.mark.parametrize("model, match", [
    (nn.Sequential(nn.ReLU(), nn.MixedPool2d(2, alpha=None)), r"1 \(MixedPool2d\): alpha=None"),
    (nn.Sequential(nn.Sequential(nn.ReLU(), _Custom())), r"0\.1 \(_Custom\)"),
    (nn.Sequential(nn.BatchNorm2d(1, track_running_stats=False)), r"0 \(BatchNorm2d\)"),
    (nn.MaxPool2d(2, return_indices=True), r"the model \(MaxPool2d\): return_indices=True"),
    (nn.Sequential(nn.MinPool2d(2, return_indices=True)), r"0 \(MinPool2d\): return_indices"),
    (nn.Sequential(nn.ReLU(), nn.AdaptiveMaxPool2d(2, return_indices=True)),
     r"1 \(AdaptiveMaxPool2d\): return_indices"),
])
def test_layers_that_cannot_be_exported_are_named(model, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        fonnx.export(model, np.zeros((2, 1, 4, 4), np.float32), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_model_with_forward_hooks_is_refused_until_they_are_removed(tmp_path):
    model = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Tanh()))
    handle = model[1][0].register_forward_hook(lambda m, args, out: out * 2)
    with pytest.raises(ValueError, match=r"Tanh at '1\.0' has forward hooks"):
        fonnx.export(model, np.zeros((2, 3), np.float32), tmp_path / "m.onnx")
    handle.remove()
    fonnx.export(model, np.zeros((2, 3), np.float32), tmp_path / "m.onnx")


@pytest.mark.parametrize("kw, match", [
    (dict(opset_version=12), "opset_version"), (dict(opset_version="17"), "opset_version"),
    (dict(input_names=["a", "b"]), "input_names"), (dict(output_names=[""]), "output_names"),
    (dict(input_names=["x"], output_names=["x"]), "output_names"),
])
def test_export_argument_errors(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        fonnx.export(nn.ReLU(), np.zeros((1, 2), np.float32), tmp_path / "m.onnx", **kw)
    with pytest.raises(ValueError, match="example_input"):
        fonnx.export(nn.ReLU(), np.zeros((1, 2), np.int64), tmp_path / "m.onnx")


def test_export_command(tmp_path):
    from fastconv import cli, save

    fastconv.manual_seed(4)
    model = models.fashion_cnn()
    _warm(model, (1, 28, 28), np.random.default_rng(5))
    save(model.state_dict(), tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert cli.main(["export", "--model-file", str(tmp_path / "model.npz"), "--model",
                     "fashion_cnn", "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(6).standard_normal((5, 1, 28, 28)).astype(np.float32)
    got = session.run(None, {"input": x})[0]
    want = model(x)
    assert float(np.abs(got - want).max()) <= RTOL * float(np.abs(want).max())
