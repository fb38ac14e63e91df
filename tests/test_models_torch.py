"""fastconv.models against hand-built torch twins with the same key names (torchvision's
layouts written out here, since torchvision is not a dependency): weights copied through
state_dict, float64; forward output, input gradient, every parameter gradient and the buffers
after the step (batch-norm running statistics) must agree to ~1e-10."""

from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
T = torch.nn

import fastconv as fc  # noqa: E402
from fastconv import models  # noqa: E402

from _util import assert_close  # noqa: E402

RTOL = 1e-10


def _torch_state(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def _compare(ours, twin, x, train, seed=0):
    """Load twin's weights into ours, run one forward/backward on both, compare everything."""
    twin = twin.double().train(train)
    ours = ours.double().train(train)
    assert list(ours.state_dict()) == list(twin.state_dict())
    ours.load_state_dict(_torch_state(twin))
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt)
    y = ours(x)
    assert_close(y, yt.detach().numpy(), RTOL, what="output")
    g = np.random.default_rng(seed).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    assert_close(ours.backward(g), xt.grad.numpy(), RTOL, what="input gradient")
    names = [n for n, _ in ours.named_parameters()]
    assert names == [n for n, _ in twin.named_parameters()]
    # Gradients that are zero in exact arithmetic (a conv bias before training-mode batch
    # norm) are rounding noise on both sides: judge those against the largest gradient.
    atol = RTOL * max(tp.grad.abs().max().item() for tp in twin.parameters())
    for (name, p), (_, tp) in zip(ours.named_parameters(), twin.named_parameters()):
        assert_close(p.grad, tp.grad.numpy(), RTOL, atol, what=f"{name}.grad")
    buffers = dict(ours.named_buffers())
    assert list(buffers) == [k for k, _ in twin.named_buffers()]
    for key, value in twin.named_buffers():      # running statistics moved the same way
        assert_close(buffers[key], value.numpy(), RTOL, what=key)


# -- twins ------------------------------------------------------------------------------
def torch_fashion_cnn():
    def block(cin, cout):
        return T.Sequential(T.Conv2d(cin, cout, 5, 1, 2), T.BatchNorm2d(cout), T.ReLU(),
                            T.MaxPool2d(2, 2))
    return T.Sequential(block(1, 16), block(16, 32), T.Flatten(), T.Linear(7 * 7 * 32, 10))


def torch_lenet5(padding=0):
    return T.Sequential(T.Conv2d(1, 6, 5, padding=padding), T.Tanh(), T.AvgPool2d(2),
                        T.Conv2d(6, 16, 5), T.Tanh(), T.AvgPool2d(2),
                        T.Conv2d(16, 120, 5), T.Tanh(), T.Flatten(),
                        T.Linear(120, 84), T.Tanh(), T.Linear(84, 10))


def torch_alexnet(num_classes, in_channels, dropout):
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    features = T.Sequential(
        T.Conv2d(in_channels, 64, 11, 4, 2), T.ReLU(), T.LocalResponseNorm(**lrn),
        T.MaxPool2d(3, 2),
        T.Conv2d(64, 192, 5, padding=2), T.ReLU(), T.LocalResponseNorm(**lrn), T.MaxPool2d(3, 2),
        T.Conv2d(192, 384, 3, padding=1), T.ReLU(), T.Conv2d(384, 256, 3, padding=1), T.ReLU(),
        T.Conv2d(256, 256, 3, padding=1), T.ReLU(), T.MaxPool2d(3, 2))
    classifier = T.Sequential(T.Dropout(dropout), T.Linear(9216, 4096), T.ReLU(),
                              T.Dropout(dropout), T.Linear(4096, 4096), T.ReLU(),
                              T.Linear(4096, num_classes))
    return T.Sequential(OrderedDict(features=features, avgpool=T.AdaptiveAvgPool2d((6, 6)),
                                    flatten=T.Flatten(), classifier=classifier))


class TorchBasicBlock(T.Module):       # torchvision.models.resnet.BasicBlock
    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = T.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = T.BatchNorm2d(planes)
        self.relu = T.ReLU()
        self.conv2 = T.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = T.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = T.Sequential(T.Conv2d(inplanes, planes, 1, stride, bias=False),
                                           T.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TorchBottleneck(T.Module):       # torchvision.models.resnet.Bottleneck (stride on 3x3)
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        out = planes * 4
        self.conv1 = T.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = T.BatchNorm2d(planes)
        self.conv2 = T.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = T.BatchNorm2d(planes)
        self.conv3 = T.Conv2d(planes, out, 1, bias=False)
        self.bn3 = T.BatchNorm2d(out)
        self.relu = T.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = T.Sequential(T.Conv2d(inplanes, out, 1, stride, bias=False),
                                           T.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class TorchResNet(T.Module):           # torchvision.models.resnet.ResNet, with a small stem
    def __init__(self, block, layers, num_classes, in_channels, small_input):
        super().__init__()
        if small_input:
            self.conv1 = T.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = T.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = T.BatchNorm2d(64)
        self.relu = T.ReLU()
        self.maxpool = T.Identity() if small_input else T.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(count):
                blocks.append(block(inplanes, planes, 2 if i > 0 and j == 0 else 1))
                inplanes = planes * block.expansion
            setattr(self, f"layer{i + 1}", T.Sequential(*blocks))
        self.avgpool = T.AdaptiveAvgPool2d((1, 1))
        self.fc = T.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TorchBasicConv2d(T.Module):      # torchvision.models.googlenet.BasicConv2d
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = T.Conv2d(cin, cout, bias=False, **kw)
        self.bn = T.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class TorchInception(T.Module):        # torchvision.models.googlenet.Inception, true 5x5
    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = TorchBasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = T.Sequential(TorchBasicConv2d(cin, ch3x3red, kernel_size=1),
                                    TorchBasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = T.Sequential(TorchBasicConv2d(cin, ch5x5red, kernel_size=1),
                                    TorchBasicConv2d(ch5x5red, ch5x5, kernel_size=5, padding=2))
        self.branch4 = T.Sequential(T.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                    TorchBasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def torch_inception_net(num_classes, in_channels, dropout):
    return T.Sequential(OrderedDict(
        conv1=T.Conv2d(in_channels, 64, 3, padding=1, bias=False), bn1=T.BatchNorm2d(64),
        relu=T.ReLU(),
        inception3a=TorchInception(64, 32, 48, 64, 8, 16, 16),
        inception3b=TorchInception(128, 64, 64, 96, 16, 48, 32),
        maxpool=T.MaxPool2d(3, 2, padding=1),
        inception4a=TorchInception(240, 96, 48, 104, 8, 24, 32),
        avgpool=T.AdaptiveAvgPool2d(1), flatten=T.Flatten(), dropout=T.Dropout(dropout),
        fc=T.Linear(256, num_classes)))


def torch_mlp(sizes):
    layers = [T.Flatten()]
    for i in range(len(sizes) - 1):
        layers.append(T.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(T.ReLU())
    return T.Sequential(*layers)


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# -- tests ------------------------------------------------------------------------------
@pytest.mark.parametrize("train", [True, False])
def test_fashion_cnn_matches_torch(train):
    torch.manual_seed(0)
    _compare(models.fashion_cnn(), torch_fashion_cnn(), _x((3, 1, 28, 28)), train)


@pytest.mark.parametrize("train", [True, False])
def test_lenet5_matches_torch(train):
    torch.manual_seed(0)
    _compare(models.lenet5(), torch_lenet5(), _x((3, 1, 32, 32)), train)


def test_lenet5_input_size_28_equals_padding_the_image():
    torch.manual_seed(0)
    _compare(models.lenet5(input_size=28), torch_lenet5(padding=2), _x((2, 1, 28, 28)), True)
    # and the twin on explicitly zero-padded 32x32 images gives the same output
    torch.manual_seed(0)
    twin = torch_lenet5().double()
    ours = models.lenet5(input_size=28).double()
    ours.load_state_dict(_torch_state(twin))
    x = _x((2, 1, 28, 28))
    padded = torch.nn.functional.pad(torch.tensor(x), (2, 2, 2, 2))
    assert_close(ours(x), twin(padded).detach().numpy(), RTOL)


def test_alexnet_matches_torch_eval_with_dropout():
    # Only eval mode: AlexNet has no batch norm, so train mode differs by dropout alone, and
    # the full-width classifier (58M weights) makes each comparison cost seconds.
    torch.manual_seed(0)
    _compare(models.alexnet(num_classes=5), torch_alexnet(5, 3, 0.5), _x((2, 3, 67, 63)),
             train=False)


@pytest.mark.parametrize("train", [True, False])
def test_resnet18_small_input_matches_torch(train):
    torch.manual_seed(0)
    twin = TorchResNet(TorchBasicBlock, (2, 2, 2, 2), 7, 3, small_input=True)
    _compare(models.resnet18(num_classes=7, small_input=True), twin, _x((2, 3, 12, 12)), train)


# Eval mode below: training-mode batch norm over the 2 values per channel that a 1x1 layer4
# sees for a batch of 2 is ill-conditioned (both sides differ by ~1e-8, relative), and larger
# inputs cost seconds; the training-mode path is covered by the resnet18 test above.
def test_resnet18_imagenet_stem_matches_torch():
    torch.manual_seed(0)
    twin = TorchResNet(TorchBasicBlock, (2, 2, 2, 2), 3, 1, small_input=False)
    _compare(models.resnet18(num_classes=3, in_channels=1), twin, _x((2, 1, 19, 17)), False)


def test_resnet50_small_input_matches_torch():
    torch.manual_seed(0)
    twin = TorchResNet(TorchBottleneck, (3, 4, 6, 3), 5, 3, small_input=True)
    _compare(models.resnet50(num_classes=5, small_input=True), twin, _x((2, 3, 7, 6)), False)


@pytest.mark.parametrize("train", [True, False])
def test_inception_net_matches_torch(train):
    torch.manual_seed(0)
    dropout = 0.0 if train else 0.2    # train mode: dropout off so both sides are deterministic
    _compare(models.inception_net(num_classes=10, in_channels=1, dropout=dropout),
             torch_inception_net(10, 1, dropout), _x((2, 1, 14, 13)), train)


@pytest.mark.parametrize("sizes", [(784, 300, 100, 10), (12, 5)])
def test_mlp_matches_torch(sizes):
    torch.manual_seed(0)
    x = _x((4, 1, 28, 28)) if sizes[0] == 784 else _x((4, 12))
    _compare(models.mlp(sizes), torch_mlp(sizes), x, True)


def test_models_state_dict_loads_back_into_torch_exactly(tmp_path):
    """The other direction: fastconv weights -> fc.save -> fc.load -> torch twin."""
    fc.manual_seed(3)
    ours = models.fashion_cnn()
    ours.train()
    ours(_x((4, 1, 28, 28)).astype(np.float32))     # move the running statistics
    fc.save(ours, tmp_path / "cnn.npz")
    twin = torch_fashion_cnn()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in fc.load(tmp_path / "cnn.npz").items()})
    twin.eval()
    ours.eval()
    x = _x((2, 1, 28, 28)).astype(np.float32)
    assert_close(ours(x), twin(torch.tensor(x)).detach().numpy(), 1e-5)


def test_torch_state_dict_saves_directly_and_loads_into_the_model(tmp_path):
    """fc.save takes CPU torch tensors as they come out of state_dict()."""
    torch.manual_seed(0)
    twin = torch_lenet5(padding=2).double().eval()
    fc.save(twin.state_dict(), tmp_path / "lenet.npz")
    ours = models.lenet5(input_size=28).double().eval()
    ours.load_state_dict(fc.load(tmp_path / "lenet.npz"))
    x = _x((2, 1, 28, 28))
    assert_close(ours(x), twin(torch.tensor(x)).detach().numpy(), RTOL)
