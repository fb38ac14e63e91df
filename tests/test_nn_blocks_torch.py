"""Residual and Inception blocks against hand-built torch twins with torchvision's layouts and
key names (torchvision itself is not a dependency): the state_dict keys must be equal, and with
torch's weights loaded, the forward output, input gradient, every parameter gradient and the
batch-norm running statistics must agree, in train() and eval().
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

from fastconv import nn  # noqa: E402

from _util import assert_close  # noqa: E402

TN = torch.nn


def _conv3x3(cin, cout, stride=1):
    return TN.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _downsample(cin, cout, stride):
    if stride == 1 and cin == cout:
        return None
    return TN.Sequential(TN.Conv2d(cin, cout, 1, stride=stride, bias=False), TN.BatchNorm2d(cout))


class TorchBasicBlock(TN.Module):
    """torchvision.models.resnet.BasicBlock, written out."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = TN.BatchNorm2d(cout)
        self.relu = TN.ReLU()
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = TN.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class TorchBottleneck(TN.Module):
    """torchvision.models.resnet.Bottleneck (stride on the 3x3), written out."""

    def __init__(self, cin, mid, stride=1, expansion=4):
        super().__init__()
        self.conv1 = TN.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = TN.BatchNorm2d(mid)
        self.conv2 = _conv3x3(mid, mid, stride)
        self.bn2 = TN.BatchNorm2d(mid)
        self.conv3 = TN.Conv2d(mid, mid * expansion, 1, bias=False)
        self.bn3 = TN.BatchNorm2d(mid * expansion)
        self.relu = TN.ReLU()
        self.downsample = _downsample(cin, mid * expansion, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class TorchBasicConv2d(TN.Module):
    """torchvision.models.googlenet.BasicConv2d."""

    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = TN.Conv2d(cin, cout, bias=False, **kw)
        self.bn = TN.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return TF.relu(self.bn(self.conv(x)))


class TorchInception(TN.Module):
    """torchvision.models.googlenet.Inception with a true 5x5 (or two 3x3) third branch."""

    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, five_by_five):
        super().__init__()
        self.branch1 = TorchBasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = TN.Sequential(TorchBasicConv2d(cin, ch3x3red, kernel_size=1),
                                     TorchBasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        if five_by_five == "5x5":
            tail = [TorchBasicConv2d(ch5x5red, ch5x5, kernel_size=5, padding=2)]
        else:
            tail = [TorchBasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
                    TorchBasicConv2d(ch5x5, ch5x5, kernel_size=3, padding=1)]
        self.branch3 = TN.Sequential(TorchBasicConv2d(cin, ch5x5red, kernel_size=1), *tail)
        self.branch4 = TN.Sequential(TN.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     TorchBasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def _randomise_batch_norms(module, generator):
    """Non-trivial affine parameters and running statistics, so eval() is really tested."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, TN.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.uniform_(-0.5, 0.5, generator=generator)
                m.running_mean.uniform_(-0.5, 0.5, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
                m.num_batches_tracked.fill_(3)


def _compare(ours, theirs, shape, dtype, training, steps=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    theirs = theirs.double().train(training)
    _randomise_batch_norms(theirs, gen)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.to(dtype).train(training)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    rng = np.random.default_rng(seed)
    for step in range(steps):  # gradients accumulate over the steps, in both
        x = rng.standard_normal(shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        y = ours(x.astype(dtype))
        assert y.dtype == dtype
        assert_close(y, yt.detach().numpy(), rtol, what=f"step {step} forward")
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(g))
        assert_close(ours.backward(g.astype(dtype)), xt.grad.numpy(), rtol,
                     what=f"step {step} grad_input")
    tparams = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(tparams)
    for name, p in ours.named_parameters():
        assert_close(p.grad, tparams[name].grad.numpy(), rtol, what=f"{name}.grad")
    for name, b in theirs.named_buffers():
        assert_close(ours.state_dict()[name], b.numpy(), rtol, what=name)


DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["f64", "f32"]
MODES = [True, False]
MODE_IDS = ["train", "eval"]


@pytest.mark.parametrize("training", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cin,cout,stride,shape", [
    (4, 4, 1, (2, 4, 7, 6)),    # identity shortcut
    (3, 6, 2, (2, 3, 9, 8)),    # projection shortcut: stride 2 and more channels
    (4, 6, 1, (1, 4, 5, 5)),    # projection for channels only, batch 1
], ids=["identity", "stride2_in_ne_out", "in_ne_out_batch1"])
def test_basic_block_matches_torch(cin, cout, stride, shape, dtype, training):
    torch.manual_seed(0)
    ours = nn.BasicBlock(cin, cout, stride)
    assert (ours.downsample is None) == (stride == 1 and cin == cout)
    _compare(ours, TorchBasicBlock(cin, cout, stride), shape, dtype, training)


@pytest.mark.parametrize("training", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cin,mid,stride,expansion,shape", [
    (8, 2, 1, 4, (2, 8, 5, 6)),     # identity shortcut
    (4, 3, 2, 4, (2, 4, 7, 9)),     # stride 2 on the 3x3 and projection
    (6, 3, 1, 2, (1, 6, 5, 4)),     # other expansion, identity (6 = 3 * 2), batch 1
], ids=["identity", "stride2", "expansion2_batch1"])
def test_bottleneck_matches_torch(cin, mid, stride, expansion, shape, dtype, training):
    torch.manual_seed(0)
    _compare(nn.Bottleneck(cin, mid, stride, expansion),
             TorchBottleneck(cin, mid, stride, expansion), shape, dtype, training)


@pytest.mark.parametrize("training", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("five_by_five", ["5x5", "double3x3"])
def test_inception_matches_torch(five_by_five, dtype, training):
    torch.manual_seed(0)
    args = (5, 3, 2, 4, 2, 3, 2)
    ours = nn.Inception(*args, five_by_five=five_by_five)
    assert ours.out_channels == 3 + 4 + 3 + 2
    _compare(ours, TorchInception(*args, five_by_five), (2, 5, 7, 6), dtype, training)


def test_blocks_key_names_are_torchvisions():
    keys = list(nn.BasicBlock(3, 6, 2).state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "downsample.0.weight" in keys and "downsample.1.running_var" in keys
    keys = list(nn.Inception(5, 3, 2, 4, 2, 3, 2).state_dict())
    for key in ["branch1.conv.weight", "branch1.bn.num_batches_tracked", "branch2.0.conv.weight",
                "branch2.1.bn.running_mean", "branch3.1.conv.weight", "branch4.1.conv.weight"]:
        assert key in keys
    assert nn.Inception(5, 3, 2, 4, 2, 3, 2).branch3[1].conv.weight.shape == (3, 2, 5, 5)
