"""Transfer learning with fastconv.models: freeze a trained body, replace and train the head,
unfreeze more and fine-tune; and the feature-extractor path (frozen body run once in eval
mode, a new Linear head fitted on its features). Small synthetic tasks, fixed seeds."""

import numpy as np
import pytest

import fastconv as fc
from fastconv import models, nn


def blobs(n, seed, noise=1.0, amplitude=0.8):
    """28x28 images with a faint 6x6 square in one of four quadrants (label 0..3) on noise
    (faint enough that training takes more than a handful of steps)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = noise * rng.standard_normal((n, 1, 28, 28))
    for i, q in enumerate(y):
        r, c = 14 * (q // 2) + rng.integers(2, 7), 14 * (q % 2) + rng.integers(2, 7)
        x[i, 0, r:r + 6, c:c + 6] += amplitude
    return x.astype(np.float32), y.astype(np.int64)


def train_steps(model, x, y, opt, steps, batch=32):
    """SGD steps over x in order; returns the loss of every step."""
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for s in range(steps):
        i = (s * batch) % len(x)
        xb, yb = x[i:i + batch], y[i:i + batch]
        model.zero_grad()
        losses.append(loss_fn(model(xb), yb))
        model.backward(loss_fn.backward())
        opt.step()
    return losses


def accuracy(model, x, y):
    model.eval()
    acc = float(np.mean(np.argmax(model(x), axis=1) == y))
    model.train()
    return acc


@pytest.fixture(scope="module")
def trained_state(tmp_path_factory):
    """A fashion_cnn body trained on the 4-quadrant task, saved and loaded as users would."""
    fc.manual_seed(0)
    model = models.fashion_cnn()
    x, y = blobs(256, seed=1)
    train_steps(model, x, y, fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), 24)
    path = tmp_path_factory.mktemp("transfer") / "body.npz"
    fc.save(model, path)
    return fc.load(path)


def new_task(n, seed):
    """The transfer task: is the square in the top half (0) or the bottom half (1)?"""
    x, q = blobs(n, seed)
    return x, (q // 2).astype(np.int64)


def test_transfer_frozen_body_stays_bit_identical_and_new_head_learns(trained_state):
    fc.manual_seed(0)
    model = models.fashion_cnn()
    model.load_state_dict(trained_state)
    model.freeze()
    setattr(model, "3", nn.Linear(7 * 7 * 32, 2))     # replace the head: model[-1]
    assert list(model.state_dict()) == list(trained_state)
    assert [p.requires_grad for p in model.parameters()] == [False] * 8 + [True] * 2
    body = {k: v.copy() for k, v in model.state_dict().items() if not k.startswith("3.")}
    x, y = new_task(256, seed=2)
    xt, yt = new_task(128, seed=3)
    # weight decay and momentum on every parameter: a frozen one would still move if the
    # optimizer did not skip it
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    model.train()
    for m in list(model[0].modules()) + list(model[1].modules()):
        m.eval()                # frozen body: keep its batch-norm statistics fixed too
    losses = train_steps(model, x, y, opt, 24)
    state = model.state_dict()
    for key, value in body.items():
        assert state[key].tobytes() == value.tobytes(), key
    assert all(p.grad is None for p in model[0].parameters())   # no gradient work at all
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    assert accuracy(model, xt, yt) > 0.9


def test_transfer_batch_norm_statistics_follow_train_and_eval(trained_state):
    fc.manual_seed(0)
    model = models.fashion_cnn()
    model.load_state_dict(trained_state)
    model.freeze()
    x, _ = new_task(32, seed=4)
    model.eval()
    model(x)
    assert model.state_dict()["0.1.running_mean"].tobytes() == \
        trained_state["0.1.running_mean"].tobytes()
    model.train()               # as in PyTorch, requires_grad=False does not stop the updates
    model(x)
    state = model.state_dict()
    assert not np.array_equal(state["0.1.running_mean"], trained_state["0.1.running_mean"])
    assert state["1.1.num_batches_tracked"] == trained_state["1.1.num_batches_tracked"] + 1
    assert state["0.0.weight"].tobytes() == trained_state["0.0.weight"].tobytes()


def test_transfer_unfreeze_and_fine_tune_with_small_lr(trained_state):
    fc.manual_seed(0)
    model = models.fashion_cnn()
    model.load_state_dict(trained_state)
    model.freeze()
    setattr(model, "3", nn.Linear(7 * 7 * 32, 2))
    x, y = new_task(256, seed=2)
    train_steps(model, x, y, fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), 24)
    model[1].unfreeze()         # fine-tune the second conv block and the head
    before = model.state_dict()
    opt = fc.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                       momentum=0.9)
    losses = train_steps(model, x, y, opt, 8)
    after = model.state_dict()
    for key in before:
        same = after[key].tobytes() == before[key].tobytes()
        # block 0 frozen (its BN statistics move in train mode, as in PyTorch); block 1 and
        # the head train
        if key.startswith("0.") and "running" not in key and "num_batches" not in key:
            assert same, key
        if key in ("1.0.weight", "1.1.weight", "3.weight"):
            assert not same, key
    step = np.abs(after["1.0.weight"] - before["1.0.weight"]).max()
    assert 0 < step < 0.05 * np.abs(before["1.0.weight"]).max()   # small steps
    assert np.all(np.isfinite(losses)) and np.mean(losses[-3:]) < 0.7
    assert accuracy(model, *new_task(128, seed=3)) > 0.9


def test_transfer_feature_extractor_then_linear_head(trained_state):
    fc.manual_seed(0)
    model = models.fashion_cnn()
    model.load_state_dict(trained_state)
    body = nn.Sequential(model[0], model[1], model[2]).freeze().eval()
    x, y = new_task(256, seed=2)
    xt, yt = new_task(128, seed=3)
    features, features_t = body(x), body(xt)    # the frozen body runs once per image
    assert features.shape == (256, 1568)
    for key, value in model.state_dict().items():
        if not key.startswith("3."):
            assert value.tobytes() == trained_state[key].tobytes(), key
    head = nn.Linear(1568, 2)
    opt = fc.optim.Adam(head.parameters(), lr=1e-3)
    losses = train_steps(head, features, y, opt, 40)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert accuracy(head, features_t, yt) > 0.9


def test_transfer_resnet_replace_fc_and_freeze():
    fc.manual_seed(0)
    model = models.resnet18(num_classes=4, in_channels=1, small_input=True)
    keys = list(model.state_dict())
    model.freeze()
    model.fc = nn.Linear(model.fc.in_features, 2)
    assert list(model.state_dict()) == keys           # fc replaced in place, still last
    body = {k: v.copy() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 0, 1])
    model.eval()                # frozen batch-norm statistics too
    train_steps(model, x, y, fc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), 2, batch=4)
    state = model.state_dict()
    for key, value in body.items():
        assert state[key].tobytes() == value.tobytes(), key
    assert model.fc.weight.grad is not None and model.conv1.weight.grad is None
    assert model(x).shape == (4, 2)


def test_transfer_frozen_training_matches_torch():
    """Frozen body in train mode (BN statistics moving), new head, SGD with momentum: the
    head's weights and every buffer follow torch step by step."""
    torch = pytest.importorskip("torch")
    T = torch.nn
    torch.manual_seed(0)
    twin = T.Sequential(
        T.Sequential(T.Conv2d(1, 16, 5, 1, 2), T.BatchNorm2d(16), T.ReLU(), T.MaxPool2d(2, 2)),
        T.Sequential(T.Conv2d(16, 32, 5, 1, 2), T.BatchNorm2d(32), T.ReLU(), T.MaxPool2d(2, 2)),
        T.Flatten(), T.Linear(1568, 2)).double()
    fc.manual_seed(0)
    model = models.fashion_cnn().double()
    setattr(model, "3", nn.Linear(1568, 2).double())
    model.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    for p in twin[:3].parameters():
        p.requires_grad_(False)
    model.freeze()
    model[3].unfreeze()
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt = fc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x, y = new_task(48, seed=5)
    x = x.astype(np.float64)
    loss_fn = nn.CrossEntropyLoss()
    for s in range(3):
        xb, yb = x[16 * s:16 * s + 16], y[16 * s:16 * s + 16]
        topt.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(xb)), torch.tensor(yb)).backward()
        topt.step()
        model.zero_grad()
        loss_fn(model(xb), yb)
        model.backward(loss_fn.backward())
        opt.step()
    state = model.state_dict()
    for key, value in twin.state_dict().items():
        np.testing.assert_allclose(state[key], value.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=key)
