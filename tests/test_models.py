"""fastconv.models shapes, parameter counts and errors, and fastconv.summary."""

import numpy as np
import pytest

import fastconv as fc
from fastconv import models, nn


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_fashion_cnn_parameter_count_by_hand():
    conv1 = 16 * 1 * 5 * 5 + 16
    bn1 = 2 * 16                    # weight and bias; running statistics are buffers
    conv2 = 32 * 16 * 5 * 5 + 32
    bn2 = 2 * 32
    fc_ = 7 * 7 * 32 * 10 + 10
    assert models.fashion_cnn().num_parameters() == conv1 + bn1 + conv2 + bn2 + fc_ == 29034


def test_resnet_parameter_counts_are_torchvisions():
    assert models.resnet18().num_parameters() == 11_689_512
    assert models.resnet34().num_parameters() == 21_797_672
    assert models.resnet50().num_parameters() == 25_557_032


def test_resnet_init_is_torchvisions():
    fc.manual_seed(0)
    net = models.resnet18(num_classes=10, small_input=True)
    w = net.layer3[0].conv1.weight.data          # (256, 128, 3, 3): fan_out = 256 * 9
    assert abs(w.std() / np.sqrt(2.0 / (256 * 9)) - 1) < 0.02
    assert np.all(net.layer2[1].bn2.weight.data == 1) and np.all(net.bn1.bias.data == 0)


@pytest.mark.parametrize("build, shape, out", [
    (models.fashion_cnn, (2, 1, 28, 28), (2, 10)),
    (models.lenet5, (2, 1, 32, 32), (2, 10)),
    (lambda: models.lenet5(input_size=28), (2, 1, 28, 28), (2, 10)),
    (lambda: models.resnet18(num_classes=10, in_channels=1, small_input=True), (2, 1, 28, 28),
     (2, 10)),
    (lambda: models.resnet34(num_classes=4), (1, 3, 40, 40), (1, 4)),
    (lambda: models.inception_net(), (2, 1, 28, 28), (2, 10)),
    (lambda: models.mlp(), (3, 1, 28, 28), (3, 10)),
    (lambda: models.mlp([20, 7, 6, 5, 2]), (3, 20), (3, 2)),
])
def test_models_output_shapes(build, shape, out):
    fc.manual_seed(0)
    net = build()
    y = net(_x(shape))
    assert y.shape == out and y.dtype == np.float32
    assert net.backward(np.ones_like(y)).shape == shape


def test_models_reject_wrong_input_naming_the_layer():
    with pytest.raises(ValueError, match=r"Conv2d\(1, 16.*expected input with 1 channel,"):
        models.fashion_cnn()(_x((2, 3, 28, 28)))
    with pytest.raises(ValueError, match="Linear"):
        models.fashion_cnn()(_x((2, 1, 32, 32)))           # 32x8x8 is not 1568 features
    with pytest.raises(ValueError, match="Conv2d"):
        models.resnet18()(_x((2, 3, 32)))
    with pytest.raises(ValueError, match="input_size"):
        models.lenet5(input_size=30)
    with pytest.raises(ValueError, match=r"LeNet5\(input_size=32.*\(2, 1, 28, 28\).*input_size=28"):
        models.lenet5()(_x((2, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"Conv2d\(1, 6.*1 channel,"):
        models.lenet5(input_size=28)(_x((2, 3, 28, 28)))
    with pytest.raises(ValueError, match="sizes"):
        models.mlp([10])


def test_named_models_keep_their_order_when_a_child_is_replaced():
    fc.manual_seed(0)
    net = models.inception_net().eval()
    x = _x((2, 1, 12, 12))
    before = net(x)
    net.relu = nn.ReLU()        # re-registered last; must still run right after bn1
    np.testing.assert_array_equal(net(x), before)
    assert net.backward(np.ones_like(before)).shape == x.shape


def test_mlp_layout():
    net = models.mlp([784, 300, 100, 10])
    assert [type(m).__name__ for m in net] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU",
                                               "Linear"]
    assert list(net.state_dict()) == ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight",
                                      "5.bias"]


def test_resnet_small_input_has_3x3_stem_and_no_maxpool():
    net = models.resnet18(small_input=True)
    assert net.conv1.weight.shape == (64, 3, 3, 3) and isinstance(net.maxpool, nn.Identity)
    assert models.resnet18().conv1.weight.shape == (64, 3, 7, 7)
    assert list(net.state_dict()) == list(models.resnet18().state_dict())


# -- summary ------------------------------------------------------------------------------
def test_summary_fashion_cnn_shapes_and_counts(capsys):
    net = models.fashion_cnn()
    rows = fc.summary(net, (1, 1, 28, 28))
    printed = capsys.readouterr().out
    assert [r["name"] for r in rows] == ["0.0", "0.1", "0.2", "0.3", "1.0", "1.1", "1.2", "1.3",
                                         "2", "3"]
    assert [r["type"] for r in rows] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2 + [
        "Flatten", "Linear"]
    shapes = [r["output_shape"][1:] for r in rows]
    assert shapes == [(16, 28, 28)] * 3 + [(16, 14, 14)] + [(32, 14, 14)] * 3 + [(32, 7, 7),
                                                                                 (1568,), (10,)]
    assert [r["params"] for r in rows] == [416, 32, 0, 0, 12832, 64, 0, 0, 0, 15690]
    for text in ["(1, 16, 28, 28)", "(1, 16, 14, 14)", "(1, 32, 14, 14)", "(1, 32, 7, 7)",
                 "(1, 1568)", "(1, 10)", "Total params: 29,034", "Trainable params: 29,034",
                 "0.0 (Conv2d)", "3 (Linear)"]:
        assert text in printed, text


def test_summary_counts_frozen_parameters_and_leaves_the_model_as_it_was(capsys):
    net = models.fashion_cnn()
    net[0].freeze()
    net.train()
    net[1].eval()
    before = net.state_dict()
    rows = fc.summary(net, (2, 1, 28, 28), dtype=np.float32)
    printed = capsys.readouterr().out
    assert rows[0]["trainable_params"] == 0 and rows[4]["trainable_params"] == 12832
    assert "Trainable params: 28,586" in printed and "Non-trainable params: 448" in printed
    for key, value in net.state_dict().items():       # eval pass: no statistic moved
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    assert all(m.training for m in net[0].modules()) and not any(m.training for m in net[1])
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_summary_restores_forwards_when_the_forward_fails(capsys):
    net = models.fashion_cnn()
    with pytest.raises(ValueError, match="Linear"):
        fc.summary(net, (1, 1, 32, 32))
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert all(m.training for m in net.modules())
    assert net(_x((1, 1, 28, 28))).shape == (1, 10)


def test_summary_float64_model(capsys):
    net = models.mlp([12, 5, 3]).double()
    rows = fc.summary(net, (4, 12), dtype=np.float64)
    assert [(r["type"], r["output_shape"], r["params"]) for r in rows] == [
        ("Flatten", (4, 12), 0), ("Linear", (4, 5), 65), ("ReLU", (4, 5), 0),
        ("Linear", (4, 3), 18)]
    assert "dtype float64" in capsys.readouterr().out


def test_summary_resnet_lists_blocks_in_execution_order(capsys):
    net = models.resnet18(num_classes=10, in_channels=1, small_input=True)
    rows = fc.summary(net, (1, 1, 28, 28))
    names = [r["name"] for r in rows]
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"] and names[-2:] == ["avgpool", "fc"]
    assert rows[-1]["output_shape"] == (1, 10)
    assert sum(r["params"] for r in rows) == net.num_parameters()
    layer4 = [r for r in rows if r["name"].startswith("layer4.")]
    assert layer4[-1]["output_shape"] == (1, 512, 4, 4)


def test_resnet_takes_an_empty_batch():
    """x.reshape(N, -1) cannot infer -1 from an empty batch."""
    model = models.resnet18(10, small_input=True)
    for training in (True, False):
        model.train(training)
        assert model(np.zeros((0, 3, 8, 8), np.float32)).shape == (0, 10)
