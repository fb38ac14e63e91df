"""The Module API: registration, traversal, state_dict, freezing, dtype, Conv2d, init."""

import math
from collections import OrderedDict

import numpy as np
import pytest

from _cuda import REASON

import fastconv as fc
from fastconv import nn

from fastconv._opinfo.conv import conv2d_backward_ref, conv2d_ref
from _util import assert_close


def small_net(dtype=np.float64):
    fc.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Identity(),
                         nn.Conv2d(4, 6, (3, 2), stride=2, groups=2, bias=False),
                         nn.Flatten()).to(dtype)


def test_module_registers_parameters_and_children_in_order():
    net = small_net()
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight"]
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight"]
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "2", "3"]
    assert len(list(net.children())) == 4 and len(net) == 4
    assert net.num_parameters() == 4 * 3 * 9 + 4 + 6 * 2 * 6


def test_module_forward_backward_compose_like_the_reference():
    net = small_net()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    c0, c2 = net[0], net[2]
    h = conv2d_ref(x, c0.weight.data, c0.bias.data, 1, 1, 1, 1)
    y = conv2d_ref(h, c2.weight.data, None, 2, 0, 1, 2)
    out = net(x)
    assert_close(out, y.reshape(2, -1), 1e-12)
    g = rng.standard_normal(out.shape)
    dx = net.backward(g)
    dh, dw2, _ = conv2d_backward_ref(g.reshape(y.shape), h, c2.weight.data, 2, 0, 1, 2)
    dx_ref, dw0, db0 = conv2d_backward_ref(dh, x, c0.weight.data, 1, 1, 1, 1)
    for actual, expected in [(dx, dx_ref), (c0.weight.grad, dw0), (c0.bias.grad, db0),
                             (c2.weight.grad, dw2)]:
        assert_close(actual, expected, 1e-12)
    net.backward(g)  # a second backward accumulates
    assert_close(c0.weight.grad, 2 * dw0, 1e-12)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_module_state_dict_round_trips_exactly():
    a, b = small_net(), small_net()
    for p in b.parameters():
        p.data[...] = 0
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)


def test_module_load_state_dict_checks_keys_and_shapes():
    net = small_net()
    sd = net.state_dict()
    del sd["0.bias"]
    with pytest.raises(KeyError, match="0.bias"):
        net.load_state_dict(sd)
    assert net.load_state_dict(sd, strict=False) == (["0.bias"], [])
    sd = net.state_dict()
    sd["0.weight"] = np.zeros((4, 3, 3, 2))
    with pytest.raises(ValueError, match="0.weight"):
        net.load_state_dict(sd)


def test_module_freeze_keeps_parameters_bit_identical():
    net = small_net()
    net[0].freeze()
    frozen = {k: v.copy() for k, v in net.state_dict().items() if k.startswith("0.")}
    opt = fc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(2)
    for _ in range(3):
        out = net(rng.standard_normal((2, 3, 7, 6)))
        net.backward(rng.standard_normal(out.shape))
        opt.step()
        opt.zero_grad()
    assert net[0].weight.grad is None and net[0].bias.grad is None
    for k, v in frozen.items():
        np.testing.assert_array_equal(net.state_dict()[k], v)
    assert not np.array_equal(net.state_dict()["2.weight"], small_net().state_dict()["2.weight"])
    net.unfreeze()
    assert all(p.requires_grad for p in net.parameters())


def test_module_to_changes_dtype_and_train_eval_recurse():
    net = small_net(np.float32)
    assert all(p.dtype == np.float32 for p in net.parameters())
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    with pytest.raises(TypeError, match="float32 or float64"):
        net.to(np.int32)
    assert net.to("cpu") is net and all(p.dtype == np.float64 for p in net.parameters())
    assert net.device == "cpu"
    with pytest.raises(ValueError, match="cupy.cuda.Device"):
        net.to("cuda:1")
    if REASON is not None:  # no usable GPU here: the move says why, and nothing moved
        with pytest.raises(RuntimeError, match="CUDA|CuPy"):
            net.to("cuda")
        assert all(isinstance(p.data, np.ndarray) for p in net.parameters())
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_conv2d_layer_rejects_wrong_input_naming_the_layer():
    conv = nn.Conv2d(1, 16, 5, padding=2)
    with pytest.raises(ValueError, match=r"Conv2d\(1, 16, .*expected input with 1 channel, "
                                         r"got \(8, 3, 28, 28\)"):
        conv(np.zeros((8, 3, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Conv2d\(1, 16.*4-D"):
        conv(np.zeros((3, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_conv2d_default_init_uses_torchs_bounds():
    conv = nn.Conv2d(8, 32, 3, generator=np.random.default_rng(0))
    bound = 1 / math.sqrt(8 * 9)
    w, b = conv.weight.data, conv.bias.data
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound) has standard deviation bound / sqrt(3); 2304 samples pin it to ~3%.
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.06


@pytest.mark.parametrize("fn,shape,expected_std", [
    (lambda t, g: nn.init.xavier_uniform_(t, generator=g), (64, 32, 3, 3),
     math.sqrt(2 / (32 * 9 + 64 * 9))),
    (lambda t, g: nn.init.xavier_normal_(t, gain=2.0, generator=g), (300, 200),
     2 * math.sqrt(2 / 500)),
    (lambda t, g: nn.init.kaiming_uniform_(t, nonlinearity="relu", generator=g), (64, 32, 3, 3),
     math.sqrt(2 / (32 * 9))),
    (lambda t, g: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", generator=g),
     (64, 32, 3, 3), math.sqrt(2 / (64 * 9))),
])
def test_init_functions_have_the_documented_spread(fn, shape, expected_std):
    a = np.zeros(shape)
    fn(a, np.random.default_rng(4))
    assert abs(a.mean()) < 4 * expected_std / math.sqrt(a.size)
    assert abs(a.std() / expected_std - 1) < 0.05


def test_init_is_reproducible_with_manual_seed():
    fc.manual_seed(123)
    a = nn.Conv2d(3, 4, 3).weight.data.copy()
    fc.manual_seed(123)
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3).weight.data, a)
    nn.init.constant_(a, 0.5)
    assert (a == 0.5).all()
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.init.calculate_gain("swish")


def test_replacing_a_child_keeps_its_place_in_run_order_and_state_dict():
    net = small_net()
    keys = list(net.state_dict())
    net[0] = nn.Conv2d(3, 4, 3, padding=1).double()
    net[-1] = nn.Flatten()
    assert list(net.state_dict()) == keys
    assert [type(m).__name__ for m in net] == ["Conv2d", "Identity", "Conv2d", "Flatten"]
    assert net(np.zeros((1, 3, 7, 6))).shape == (1, 6 * 3 * 3)
    with pytest.raises(TypeError, match="Modules"):
        net[1] = np.zeros(3)


def test_assigning_an_array_to_a_buffer_name_replaces_the_buffer():
    m = nn.Module()
    m.register_buffer("stat", np.zeros(3))
    m.other = np.ones(2)
    m.stat = np.full(3, 7.0)
    assert list(m.state_dict()) == ["stat"]
    np.testing.assert_array_equal(m.state_dict()["stat"], [7.0, 7.0, 7.0])


@pytest.mark.parametrize("name", ["fashion_cnn", "lenet5", "resnet18", "inception_net", "mlp"])
def test_backward_params_gives_backwards_parameter_gradients_bit_for_bit(name):
    """backward_params (a training step's backward: no input gradient) accumulates exactly the
    parameter gradients backward does; the input gradients it leaves out never feed them."""
    from fastconv.models import build_model
    nets = []
    for _ in range(2):
        fc.manual_seed(3)
        nets.append(build_model(name, input_size=28))
    x = np.random.default_rng(5).standard_normal((3, 1, 28, 28)).astype(np.float32)
    dout = np.random.default_rng(6).standard_normal((3, 10)).astype(np.float32)
    full, params_only = nets
    for net in nets:
        fc.manual_seed(7)  # the same dropout mask in both
        net(x)
    assert full.backward(dout).shape == x.shape
    assert params_only.backward_params(dout) is None
    pairs = list(zip(full.named_parameters(), params_only.named_parameters()))
    assert pairs
    for (key, a), (_, b) in pairs:
        assert a.grad is not None, key
        np.testing.assert_array_equal(a.grad, b.grad, err_msg=key)


def test_backward_params_skips_the_frozen_prefix_and_the_first_input_gradient(monkeypatch):
    """Layers before the first trainable parameter get no backward at all, the first trainable
    layer no input gradient; a custom module without backward_params runs its backward."""
    class Scale(nn.Module):
        def forward(self, x):
            return 2 * x

        def backward(self, dout):
            calls.append("scale")
            return 2 * dout

    calls = []
    fc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3), Scale(), nn.Flatten(),
                        nn.Linear(4 * 3 * 3, 5))
    net[0].freeze()
    for i in (0, 1):
        monkeypatch.setattr(net[i], "backward", lambda d, i=i: pytest.fail(f"layer {i} ran"))
    import fastconv.functional as F
    masks = []
    real = F.conv2d_backward

    def spy(*args, output_mask=(True, True, True), **kw):
        masks.append(tuple(output_mask))
        return real(*args, output_mask=output_mask, **kw)

    monkeypatch.setattr(net[2], "_backward", staticmethod(spy))
    x = np.random.default_rng(1).standard_normal((2, 2, 7, 7)).astype(np.float32)
    net(x)
    net.backward_params(np.ones((2, 5), np.float32))
    assert calls == ["scale"] and masks == [(False, True, True)]
    assert net[0].weight.grad is None and net[2].weight.grad is not None
    net.freeze()
    net.backward_params(np.ones((2, 5), np.float32))  # nothing trains: no layer runs
    assert calls == ["scale"]


def test_deleting_a_child_or_parameter_unregisters_it_as_torch():
    """Module had no __delattr__: a deleted layer still ran and stayed in state_dict."""
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 4)).double()
    delattr(s, "2")
    assert len(s) == 2 and list(s.state_dict()) == ["0.weight", "0.bias"]
    assert s(np.ones((1, 2))).shape == (1, 3)
    lin = nn.Linear(2, 3)
    del lin.bias
    assert [n for n, _ in lin.named_parameters()] == ["weight"]


def test_a_shared_module_counts_once_and_saves_under_each_name_as_torch():
    lin = nn.Linear(3, 3)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = lin, lin

        def forward(self, x):
            return self.b(self.a(x))

    m = Twice()
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias"]
    assert [n for n, _ in m.named_modules()] == ["", "a"]
    assert m.num_parameters() == 12
    assert list(m.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == [
        "a.weight", "a.bias", "b.weight", "b.bias"]
    fc.optim.SGD(m.parameters(), lr=0.1)  # refused a parameter "in more than one group"
    m.load_state_dict(m.state_dict())
    rows = fc.summary(m, (2, 3), print_fn=lambda text: None)  # wrapped it twice: refused
    assert [r["name"] for r in rows] == ["a", "a"]


def test_sequential_refuses_one_module_twice():
    """Its backward keeps one forward's input: a ReLU in two places gave wrong gradients."""
    relu = nn.ReLU()
    with pytest.raises(ValueError, match="the module at 2, ReLU, is also at 0"):
        nn.Sequential(relu, nn.Linear(2, 2), relu)
    s = nn.Sequential(relu, nn.Linear(2, 2))
    with pytest.raises(ValueError, match="already in this Sequential"):
        s[1] = relu
    with pytest.raises(ValueError, match="is also at"):
        s.append(relu)


def test_sequential_slices_deletes_inserts_and_extends_as_torch():
    a, b, c, d = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.Tanh()
    s = nn.Sequential(a, b, c)
    head = s[0:2]
    assert isinstance(head, nn.Sequential) and list(head) == [a, b]
    assert [n for n, _ in s[1:].named_children()] == ["1", "2"]  # torch keeps the names
    with pytest.raises(IndexError, match="index 5 out of range for 3 modules"):
        s.insert(5, nn.Tanh())
    del s[1]
    assert list(s) == [a, c] and list(s.state_dict()) == ["0.weight", "0.bias", "1.weight",
                                                         "1.bias"]
    s.insert(1, d)
    assert list(s) == [a, d, c]
    s.extend([b])
    assert list(s) == [a, d, c, b] and [n for n, _ in s.named_children()] == ["0", "1", "2", "3"]
    block = nn.BasicConv2d(2, 3, kernel_size=3)
    block[1] = nn.BatchNorm2d(3)  # a named child keeps its name
    assert [n for n, _ in block.named_children()] == ["conv", "bn", "relu"]


def test_register_buffer_over_a_parameter_and_train_with_a_non_bool_are_refused():
    lin = nn.Linear(2, 3)
    with pytest.raises(KeyError, match="'bias' already exists"):
        lin.register_buffer("bias", np.zeros(3))
    with pytest.raises(TypeError, match="cannot assign a ndarray as parameter 'weight'"):
        lin.weight = np.zeros((3, 2))  # it was unregistered silently
    lin.note = 1
    with pytest.raises(KeyError, match="'note' already exists"):
        lin.register_buffer("note", np.zeros(3))
    with pytest.raises(KeyError, match="without '.'"):
        lin.register_buffer("a.b", np.zeros(3))
    with pytest.raises(ValueError, match="mode must be a bool"):
        lin.train("no")


def test_strict_load_takes_a_checkpoint_without_the_batch_counter_as_torch():
    bn = nn.BatchNorm2d(3)
    bn.num_batches_tracked = np.array(5)
    state = {k: v for k, v in nn.BatchNorm2d(3).state_dict().items()
             if not k.endswith("num_batches_tracked")}
    missing, unexpected = bn.load_state_dict(state)
    assert (missing, unexpected) == ([], []) and int(bn.num_batches_tracked) == 5


@pytest.mark.parametrize("layer,shape", [(nn.Conv2d(2, 3, 3), (1, 3, 2, 2)),
                                         (nn.MaxPool2d(2), (1, 2, 2, 2)),
                                         (nn.BatchNorm2d(2), (1, 2, 2, 2))])
def test_backward_before_forward_says_so(layer, shape):
    """It was an AttributeError about '_input' or '_split', naming neither layer nor cause."""
    with pytest.raises(AttributeError, match=rf"{type(layer).__name__} has no _\w+ \(kept by "
                                             r"forward\(\): was backward\(\) called before it\?\)"):
        layer.backward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape,groups", [((4, 2, 3, 3), 2), ((6, 3, 5), 1), ((3, 5, 2, 4, 3), 3),
                                          ((2, 7, 1, 1), 1)])
def test_eye_and_dirac_match_torch(shape, groups):
    torch = pytest.importorskip("torch")
    w = np.full(shape, 7.0)
    expected = torch.nn.init.dirac_(torch.full(shape, 7.0, dtype=torch.float64), groups)
    np.testing.assert_array_equal(nn.init.dirac_(w, groups), expected.numpy())
    for rows, cols in ((3, 5), (5, 3), (4, 4)):
        np.testing.assert_array_equal(nn.init.eye_(np.ones((rows, cols))),
                                      torch.nn.init.eye_(torch.ones(rows, cols)).numpy())
    with pytest.raises(ValueError, match="dim 0 .* divisible by groups"):
        nn.init.dirac_(np.empty((5, 2, 3, 3)), 2)
    with pytest.raises(ValueError, match="only arrays with 2 dimensions"):
        nn.init.eye_(np.empty(3))


@pytest.mark.parametrize("shape,gain", [((5, 8), 1.0), ((8, 3, 2), 2.0), ((6, 6), 0.5)])
def test_orthogonal_gives_orthonormal_rows_or_columns_times_the_gain(shape, gain):
    w = nn.init.orthogonal_(np.empty(shape), gain, generator=np.random.default_rng(0))
    flat = w.reshape(shape[0], -1)
    small = min(flat.shape)
    product = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
    assert_close(product, gain ** 2 * np.eye(small), 1e-12)


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (0.0, 1.0, 2.0, 3.0),
                                          (1.0, 0.5, 0.0, 1.2)])
def test_trunc_normal_has_the_truncated_distributions_moments(mean, std, a, b):
    """Both of torch's samplers: redrawn normals (most of the mass inside) and uniform draws
    kept by the density (little of it, [2, 3] for N(0, 1))."""
    t = nn.init.trunc_normal_(np.empty(400_000), mean, std, a, b,
                              generator=np.random.default_rng(1))
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2  # noqa: E731
    alpha, beta = (a - mean) / std, (b - mean) / std
    mass = cdf(beta) - cdf(alpha)
    expected_mean = mean + std * (phi(alpha) - phi(beta)) / mass
    expected_var = std ** 2 * (1 + (alpha * phi(alpha) - beta * phi(beta)) / mass
                               - ((phi(alpha) - phi(beta)) / mass) ** 2)
    assert a <= t.min() and t.max() <= b
    assert abs(t.mean() - expected_mean) < 5 * math.sqrt(expected_var / t.size)
    assert abs(t.var() / expected_var - 1) < 0.02


def test_calculate_gain_refuses_a_slope_that_is_not_a_number():
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        nn.init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match="not a valid number"):
        nn.init.calculate_gain("leaky_relu", "0.2")


def test_a_parameter_set_to_none_keeps_its_slot_as_torch():
    conv = nn.Conv2d(2, 3, 3)
    conv.weight = None
    assert [n for n, _ in conv.named_parameters()] == ["bias"]
    assert list(conv.state_dict()) == ["bias"]
    conv.to(np.float64)  # an empty slot is skipped, not cast
    conv.weight = nn.Parameter(np.ones((3, 2, 3, 3)))
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert list(conv.state_dict()) == ["weight", "bias"]


def test_registration_and_lookup_by_torchs_names():
    net = small_net()
    net.register_parameter("scale", nn.Parameter(np.full(1, 2.0)))
    net.register_parameter("spare", None)
    net.add_module("head", nn.ReLU())
    net[0].register_buffer("seen", np.zeros(3))
    assert [n for n, _ in net.named_parameters()][0] == "scale"  # its own first, as torch
    assert net.get_parameter("scale") is net.scale
    assert net.get_parameter("2.weight") is net[2].weight
    assert net.get_submodule("head") is net.head and net.get_submodule("") is net
    assert net.get_buffer("0.seen") is net[0].seen
    assert [n for n, _ in net.named_buffers()] == ["0.seen"]
    assert list(net.buffers(recurse=False)) == []
    for call, error in [(lambda: net.get_submodule("0.nothing"), AttributeError),
                        (lambda: net.get_parameter("spare"), AttributeError),
                        (lambda: net.get_parameter("0.seen"), AttributeError),
                        (lambda: net.get_buffer("0.weight"), AttributeError),
                        (lambda: net.register_parameter("a.b", None), KeyError),
                        (lambda: net.register_parameter("training", None), KeyError),
                        (lambda: net.register_parameter(3, None), TypeError),
                        (lambda: net.register_parameter("w", np.ones(2)), TypeError),
                        (lambda: net.add_module("scale", nn.ReLU()), KeyError),
                        (lambda: net.add_module("x", np.ones(2)), TypeError),
                        (lambda: net.requires_grad_("no"), TypeError)]:
        with pytest.raises(error):
            call()
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_visits_children_before_their_parent_as_torch():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Conv2d", "ReLU", "Linear", "Sequential", "Sequential"]


def test_forward_hooks_see_and_replace_inputs_and_outputs_in_order():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU()).to(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    calls = []
    net[1].register_forward_hook(lambda m, args, out: calls.append(("second", out.copy())))
    handle = net[1].register_forward_hook(lambda m, args, out: calls.append(("first", m)),
                                          prepend=True)
    pre = net[0].register_forward_pre_hook(lambda m, args: 2 * args[0])
    y = net(x)
    expected = np.maximum(2 * x @ net[0].weight.data.T + net[0].bias.data, 0)
    assert_close(y, expected, 1e-15)
    assert [c[0] for c in calls] == ["first", "second"] and calls[0][1] is net[1]
    assert_close(calls[1][1], expected, 0)
    handle.remove()
    handle.remove()  # a second remove() is harmless
    pre.remove()
    with net.register_forward_hook(lambda m, args, out: out + 1):
        assert_close(net(x), np.maximum(x @ net[0].weight.data.T + net[0].bias.data, 0) + 1, 0)
    assert len(calls) == 2 + 1 and not net._forward_hooks
    loss_args = []
    loss = nn.CrossEntropyLoss()
    loss.register_forward_hook(lambda m, args, out: loss_args.append(len(args)))
    loss(np.zeros((2, 3)), np.array([0, 2]))
    assert loss_args == [2]
    with pytest.raises(TypeError, match="callable"):
        net.register_forward_hook("not a function")


def test_a_child_set_to_none_keeps_its_slot_and_refuses_other_values_as_torch():
    net = nn.Module()
    net.a, net.b = nn.ReLU(), nn.Linear(2, 2)
    net.a = None
    assert [n for n, _ in net.named_children()] == ["b"]
    net.a = nn.Linear(3, 3)
    assert [n for n, _ in net.named_children()] == ["a", "b"]
    assert list(net.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    with pytest.raises(TypeError, match="cannot assign a ndarray as child module 'a'"):
        net.a = np.zeros(1)
    net.add_module("c", None)
    with pytest.raises(TypeError, match="child module 'c'"):
        net.c = 5
    with pytest.raises(TypeError, match="must be a Module"):  # the value first, as torch
        net.add_module("x.y", 5)


def test_a_module_or_buffer_under_two_names_is_visited_once_as_torch():
    shared = nn.ReLU()
    net = nn.Module()
    net.x, net.y = shared, shared
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["ReLU", "Module"] and len(list(net.children())) == 1
    a = np.zeros(2)
    net.register_buffer("u", a)
    net.register_buffer("v", a)
    assert [n for n, _ in net.named_buffers()] == ["u"]


def test_register_buffer_takes_torchs_persistent_and_checks_its_arguments():
    net = nn.Module()
    net.register_buffer("kept", np.ones(2))
    net.register_buffer("scratch", np.zeros(2), persistent=False)
    assert list(net.state_dict()) == ["kept"]
    net.load_state_dict({"kept": np.full(2, 3.0)})
    assert [n for n, _ in net.named_buffers()] == ["kept", "scratch"]
    with pytest.raises(TypeError, match="must be an array or None"):
        net.register_buffer("count", 5)
    with pytest.raises(TypeError, match="must be a str"):
        net.register_buffer(3, np.ones(1))


def test_hooks_on_a_module_whose_init_predates_them():
    """An unpickled module of an older fastconv has no hook registries: registering one
    creates its own, and the call does not need the other."""
    relu = nn.ReLU()
    del relu.__dict__["_forward_pre_hooks"], relu.__dict__["_forward_hooks"]
    assert np.array_equal(relu(np.array([-1.0, 2.0])), [0.0, 2.0])
    relu.register_forward_hook(lambda m, args, out: out * 3)
    assert np.array_equal(relu(np.array([-1.0, 2.0])), [0.0, 6.0])


def test_a_module_of_several_inputs_takes_them_all_as_torch():
    torch = pytest.importorskip("torch")

    class Blend(nn.Module):
        def forward(self, x, y, weight=0.5):
            return weight * x + (1 - weight) * y

    got = Blend()(np.ones(3), torch.zeros(3), weight=0.25)  # a tensor viewed through DLPack
    assert isinstance(got, np.ndarray) and np.array_equal(got, np.full(3, 0.25))


@pytest.mark.parametrize("args,kwargs,exc,match", [
    (("cpu", np.int32), {}, TypeError, r"Sequential.to: dtype must be float32 or float64, got "
                                       "int32"),
    (("cuda:1", np.float32), {}, ValueError, "cupy.cuda.Device"),
    ((np.float64, "cpu"), {}, TypeError, "device must be 'cpu', 'cuda' or None"),
    (("tpu",), {}, ValueError, r"expected a device \('cpu' or 'cuda'\) or a dtype \(float32 "
                               r"or float64\), got 'tpu'"),
    (("cpu", np.float32, 1), {}, TypeError, "at most 2 positional arguments"),
    ((np.float64,), dict(dtype=np.float32), TypeError, "dtype both as an argument and as a "
                                                       "keyword"),
    ((np.zeros(2),), dict(device="cpu"), TypeError, "an array comes alone"),
    ((), dict(memory_format="channels_last"), TypeError,
     "unexpected keyword argument 'memory_format'"),
    ((), dict(device="cpu", dtype="int8"), TypeError, "got int8"),
], ids=["int-dtype", "cuda-n", "swapped", "unknown", "three", "twice", "array-and-device",
        "keyword", "kw-int-dtype"])
def test_module_to_checks_both_arguments_before_changing_anything(args, kwargs, exc, match):
    net = small_net(np.float32)
    before = {k: (v.dtype, v.copy()) for k, v in net.state_dict().items()}
    with pytest.raises(exc, match=match):
        net.to(*args, **kwargs)
    for k, v in net.state_dict().items():
        assert v.dtype == before[k][0]
        np.testing.assert_array_equal(v, before[k][1])


def test_module_to_device_and_dtype_together():
    net = small_net(np.float32)
    assert net.to("cpu", np.float64) is net and {p.dtype for p in net.parameters()} == {
        np.dtype(np.float64)}
    net.to(device="cpu", dtype="float32")
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float32)}
    net.to(np.zeros((), np.float64))
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float64)}
    if REASON is not None:  # "cuda" refused before the cast: nothing changed
        with pytest.raises(RuntimeError, match="CUDA|CuPy"):
            net.to("cuda", np.float32)
        assert {p.dtype for p in net.parameters()} == {np.dtype(np.float64)}


def test_sequential_of_an_ordered_dict_keeps_its_names_when_extended():
    a, b, c = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)
    s = nn.Sequential(OrderedDict([("fc", a), ("act", b)]))
    assert s.fc is a and s[1] is b and list(s.state_dict()) == ["fc.weight", "fc.bias"]
    s.append(c)
    assert [n for n, _ in s.named_children()] == ["fc", "act", "2"]
    with pytest.raises(ValueError, match="is also at 0"):
        nn.Sequential(OrderedDict([("x", a), ("y", a)]))
    with pytest.raises(TypeError, match="argument y is a int, not a Module"):
        nn.Sequential(OrderedDict([("x", a), ("y", 3)]))
    with pytest.raises(KeyError, match="attribute 'training' already exists"):
        nn.Sequential(OrderedDict([("training", a)]))
    tail = nn.Sequential(a, b, c)[1:]  # named "1" and "2": the next is numbered afresh
    tail.append(nn.Tanh())
    assert [n for n, _ in tail.named_children()] == ["0", "1", "2"] and len(tail) == 3
