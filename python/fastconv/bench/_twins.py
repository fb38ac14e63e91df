"""PyTorch twins of the networks in fastconv.models, layer for layer with the same state_dict
keys, so the benchmark runs both on identical weights."""

import numpy as np


def torch_model(torch, name):
    """The torch.nn network matching fastconv.models.build_model(name)."""
    tnn = torch.nn
    if name == "fashion_cnn":
        def block(cin, cout):
            return tnn.Sequential(tnn.Conv2d(cin, cout, 5, 1, 2), tnn.BatchNorm2d(cout),
                                  tnn.ReLU(), tnn.MaxPool2d(2, 2))
        return tnn.Sequential(block(1, 16), block(16, 32), tnn.Flatten(), tnn.Linear(1568, 10))
    if name == "lenet5":
        return tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
            tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2),
            tnn.Conv2d(16, 120, 5), tnn.Tanh(), tnn.Flatten(),
            tnn.Linear(120, 84), tnn.Tanh(), tnn.Linear(84, 10))
    if name == "resnet18":
        return _resnet18(torch)
    raise ValueError(f"no torch twin for {name!r}")


def _resnet18(torch):
    """torchvision's resnet18 layout with the small-input stem (3x3 conv, no max-pool), one
    input channel and ten classes: fastconv.models.resnet18(10, 1, small_input=True)."""
    tnn = torch.nn

    class BasicBlock(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(cout))

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            return torch.relu(h + (x if self.downsample is None else self.downsample(x)))

    class ResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 64, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            cin = 64
            for i, width in enumerate((64, 128, 256, 512)):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", tnn.Sequential(BasicBlock(cin, width, stride),
                                                              BasicBlock(width, width, 1)))
                cin = width
            self.fc = tnn.Linear(512, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet()


def load_fastconv_weights(torch, model, state_dict):
    """Copy a fastconv state_dict (NumPy arrays, PyTorch key names) into a torch model."""
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})
    return model
