"""Classic CNNs built from fastconv.nn layers, with PyTorch's (torchvision's) key names.

Every model is a Module whose backward composes its children's backwards: nn.Sequential, a
_Chain of named children run in a fixed order, or ResNet's written-out forward and backward.
Weights load from an equivalent torch model with
``model.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})``.

Transfer learning: load a trained model, freeze it, replace the head (new layers are
trainable) and train; then unfreeze more of the body and fine-tune with a small lr::

    model = fastconv.models.resnet18(num_classes=10, small_input=True)
    model.load_state_dict(fastconv.load("trained.npz"))
    model.freeze()                                   # requires_grad=False everywhere
    model.fc = nn.Linear(model.fc.in_features, 3)    # new head
    ...train...
    model.layer4.unfreeze()                          # fine-tune the last stage as well

For an nn.Sequential model, replace a layer by its index:
``model[-1] = nn.Linear(...)`` (AlexNet's head: ``model.classifier[6] = ...``). Assigning an
existing attribute keeps the child's place, so any child of any model can be replaced.

Frozen batch-norm layers still follow train()/eval(), as in PyTorch: put the frozen part in
eval mode to keep its running statistics. Feature extraction: run the frozen body once in
eval mode over the data and fit a new nn.Linear on the features it returns (for fashion_cnn
the body is ``nn.Sequential(model[0], model[1], model[2])``, features (N, 1568)).
"""

from ._arrays import is_array
from . import nn
from .nn.module import backward_params_chain
from .nn import init

__all__ = ["fashion_cnn", "LeNet5", "lenet5", "AlexNet", "alexnet", "ResNet", "resnet18",
           "resnet34", "resnet50", "InceptionNet", "inception_net", "mlp"]


def fashion_cnn(in_channels=1, input_size=28, num_classes=10):
    """The seed CNN for 28x28 Fashion-MNIST: two conv blocks (5x5 'same' conv, batch norm,
    ReLU, 2x2 max-pool: 1x28x28 -> 16x14x14 -> 32x7x7), flatten, Linear(7*7*32, 10).

    in_channels and input_size shape it for other images: 3 and 32 for CIFAR-10
    (3x32x32 -> 16x16x16 -> 32x8x8, Linear(2048, num_classes)).

    Keys as torch.nn.Sequential(Sequential(conv, bn, relu, pool), Sequential(...), Flatten(),
    Linear(1568, 10)): "0.0.weight", "0.1.running_mean", ..., "3.weight", "3.bias".
    """
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 5, stride=1, padding=2), nn.BatchNorm2d(cout),
                             nn.ReLU(), nn.MaxPool2d(2, 2))

    side = input_size // 2 // 2
    if side < 1:
        raise ValueError(f"fashion_cnn: input_size must be at least 4, got {input_size}")
    return nn.Sequential(block(in_channels, 16), block(16, 32), nn.Flatten(),
                         nn.Linear(side * side * 32, num_classes))


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al. 1998) with tanh and average pooling, for 1-channel images
    (in_channels=3 widens C1 for colour ones such as CIFAR-10).

    C1 Conv2d(1, 6, 5) -> tanh -> S2 AvgPool2d(2) -> C3 Conv2d(6, 16, 5) -> tanh ->
    S4 AvgPool2d(2) -> C5 Conv2d(16, 120, 5) -> tanh -> flatten -> F6 Linear(120, 84) -> tanh
    -> Linear(84, num_classes), as an nn.Sequential (keys "0.weight" ... "11.bias").
    The network expects 32x32 input (C5 then sees 5x5 maps); 28x28 MNIST images are
    classically zero-padded by 2 pixels to 32x32. input_size=28 does that padding inside C1
    instead (padding=2), so 28x28 batches go in as they are; both variants have the same
    weights and give the same outputs.
    """

    def __init__(self, input_size=32, num_classes=10, in_channels=1):
        if input_size not in (28, 32):
            raise ValueError(f"lenet5: input_size must be 32 or 28, got {input_size}")
        super().__init__(
            nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0), nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
            nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))
        self.input_size, self.num_classes, self.in_channels = input_size, num_classes, in_channels

    def extra_repr(self):
        return (f"input_size={self.input_size}, num_classes={self.num_classes}, "
                f"in_channels={self.in_channels}")

    def forward(self, x):
        # Any other size fails deep inside C5 with a message about a 5x5 kernel on 4x4 maps.
        if is_array(x) and x.ndim == 4 and x.shape[2:] != (self.input_size,) * 2:
            hint = " (28x28 images: use lenet5(input_size=28))" if x.shape[2:] == (28, 28) else ""
            raise ValueError(f"{self._name()} expected (N, {self.in_channels}, {self.input_size}, "
                             f"{self.input_size}) input, got {x.shape}{hint}")
        return super().forward(x)


def lenet5(input_size=32, num_classes=10, in_channels=1):
    """LeNet-5 for 32x32 images, or 28x28 ones with input_size=28 (see LeNet5)."""
    return LeNet5(input_size, num_classes, in_channels)


class _Chain(nn.Module):
    """Named children run in the fixed order `_order`, backward in reverse (not in registration
    order: a subclass may register them in another)."""

    _order = ()

    def forward(self, x):
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    def backward(self, dout):
        for name in reversed(self._order):
            dout = getattr(self, name).backward(dout)
        return dout

    def backward_params(self, dout):
        backward_params_chain([getattr(self, name) for name in self._order], dout)


class AlexNet(_Chain):
    """AlexNet as torchvision lays it out (features, avgpool, classifier; any input from
    63x63 up), plus the original paper's local response normalisation (size 5, alpha 1e-4,
    beta 0.75, k 2) after the ReLUs of the first two convolutions.

    Forward: features -> avgpool (AdaptiveAvgPool2d((6, 6))) -> flatten ->
    classifier (Dropout, Linear(9216, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU,
    Linear(4096, num_classes)). The LRN layers shift the indices inside `features` against
    torchvision's ("features.4.weight" here is torchvision's "features.3.weight").
    """

    _order = ("features", "avgpool", "flatten", "classifier")

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes))


def alexnet(num_classes=1000, in_channels=3, dropout=0.5):
    """AlexNet with LRN (see AlexNet); about 61 million parameters for 1000 classes."""
    return AlexNet(num_classes, in_channels, dropout)


class ResNet(nn.Module):
    """ResNet (He et al. 2016) with torchvision's layout and keys: conv1, bn1, relu, maxpool,
    layer1..layer4 (Sequentials of blocks), avgpool, fc. Stride sits on the 3x3 convolution
    of a Bottleneck, as in torchvision ("ResNet v1.5").

    block is nn.BasicBlock or nn.Bottleneck, layers the number of blocks per stage.
    small_input=True is the CIFAR-style stem for 28x28/32x32 images: conv1 is 3x3, stride 1,
    padding 1, and the max-pool is an Identity (no keys change: neither has parameters).
    Initialised as torchvision: convolutions kaiming_normal_(mode="fan_out", relu), batch-norm
    weight 1 and bias 0, fc as nn.Linear.
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, small_input=False):
        super().__init__()
        if block not in (nn.BasicBlock, nn.Bottleneck):
            raise TypeError(f"ResNet: block must be nn.BasicBlock or nn.Bottleneck, got {block!r}")
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must give the block count of 4 stages, got {layers}")
        self.expansion = 1 if block is nn.BasicBlock else 4
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for i, (width, count) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                if block is nn.BasicBlock:
                    blocks.append(nn.BasicBlock(channels, width, stride))
                else:
                    blocks.append(nn.Bottleneck(channels, width, stride))
                channels = width * self.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        self._pooled_shape = x.shape
        return self.fc(x.reshape(x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]))

    def backward(self, dout):
        d = self.fc.backward(dout).reshape(self._pooled_shape)
        d = self.avgpool.backward(d)
        d = self.layer1.backward(self.layer2.backward(self.layer3.backward(
            self.layer4.backward(d))))
        return self.conv1.backward(self.bn1.backward(self.relu.backward(
            self.maxpool.backward(d))))

    def backward_params(self, dout):
        chain = [self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2,
                 self.layer3, self.layer4, self.avgpool, self.fc]
        backward_params_chain(chain, dout, {8: lambda d: d.reshape(self._pooled_shape)})


def resnet18(num_classes=1000, in_channels=3, small_input=False):
    """ResNet-18: BasicBlock x [2, 2, 2, 2]; 11,689,512 parameters for 1000 classes."""
    return ResNet(nn.BasicBlock, (2, 2, 2, 2), num_classes, in_channels, small_input)


def resnet34(num_classes=1000, in_channels=3, small_input=False):
    """ResNet-34: BasicBlock x [3, 4, 6, 3]; 21,797,672 parameters for 1000 classes."""
    return ResNet(nn.BasicBlock, (3, 4, 6, 3), num_classes, in_channels, small_input)


def resnet50(num_classes=1000, in_channels=3, small_input=False):
    """ResNet-50: Bottleneck x [3, 4, 6, 3]; 25,557,032 parameters for 1000 classes."""
    return ResNet(nn.Bottleneck, (3, 4, 6, 3), num_classes, in_channels, small_input)


class InceptionNet(_Chain):
    """A small GoogLeNet-style network for small images (28x28 Fashion-MNIST, 32x32 CIFAR).

    stem (3x3 conv without bias, batch norm, ReLU; 64 channels) -> inception3a (-> 128 ch)
    -> inception3b (-> 240 ch) -> 3x3/2 max-pool (halves the size) -> inception4a (-> 256 ch)
    -> global average pool -> flatten -> dropout -> fc. The Inception widths are GoogLeNet's
    3a, 3b and 4a (Szegedy et al. 2015, table 1) at half width; 233,322 parameters (10 classes,
    1 input channel).
    """

    _order = ("conv1", "bn1", "relu", "inception3a", "inception3b", "maxpool", "inception4a",
              "avgpool", "flatten", "dropout", "fc")

    def __init__(self, num_classes=10, in_channels=1, dropout=0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.inception3a = nn.Inception(64, 32, 48, 64, 8, 16, 16)
        self.inception3b = nn.Inception(128, 64, 64, 96, 16, 48, 32)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inception4a = nn.Inception(240, 96, 48, 104, 8, 24, 32)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(256, num_classes)


def inception_net(num_classes=10, in_channels=1, dropout=0.2):
    """A small GoogLeNet-style network (see InceptionNet)."""
    return InceptionNet(num_classes, in_channels, dropout)


def mlp(sizes=(784, 300, 100, 10)):
    """Flatten, then Linear + ReLU between consecutive sizes; the last Linear has no activation.
    Keys as torch.nn.Sequential(Flatten(), Linear, ReLU, ..., Linear): "1.weight", ..."""
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes needs at least an input and an output size, got {sizes}")
    layers = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# The networks `fastconv train` and `fastconv bench` build by name.
MODELS = ("fashion_cnn", "lenet5", "resnet18", "inception_net", "mlp")


def build_model(name, in_channels=1, num_classes=10, input_size=28):
    """The network the command line trains as `name` (one of MODELS), for square inputs of
    in_channels x input_size x input_size: 1x28x28 (MNIST, Fashion-MNIST) by default, 3x32x32
    for CIFAR-10. lenet5 takes 28 or 32."""
    if name == "fashion_cnn":
        return fashion_cnn(in_channels, input_size, num_classes)
    if name == "lenet5":
        return lenet5(input_size=input_size, num_classes=num_classes, in_channels=in_channels)
    if name == "resnet18":
        return resnet18(num_classes=num_classes, in_channels=in_channels, small_input=True)
    if name == "inception_net":
        return inception_net(num_classes=num_classes, in_channels=in_channels)
    if name == "mlp":
        return mlp([in_channels * input_size * input_size, 300, 100, num_classes])
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
