"""nn layers against torch.nn with weights copied through state_dict."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastconv import nn  # noqa: E402

from _util import assert_close  # noqa: E402


def _torch_state(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kw", [dict(padding=2), dict(stride=2, groups=2, bias=False),
                                dict(padding="same", dilation=2), dict(stride=(2, 1))])
def test_conv2d_layer_matches_torch(kw):
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Conv2d(4, 6, (5, 3), **kw), torch.nn.Flatten()).double()
    ours = nn.Sequential(nn.Conv2d(4, 6, (5, 3), **kw), nn.Flatten()).double()
    ours.load_state_dict(_torch_state(t))
    assert list(ours.state_dict()) == list(t.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 11, 9))
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    assert_close(ours(x), yt.detach().numpy(), 1e-12)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    assert_close(ours.backward(g), xt.grad.numpy(), 1e-12)
    for (name, p), (_, tp) in zip(ours.named_parameters(), t.named_parameters()):
        assert_close(p.grad, tp.grad.numpy(), 1e-12, what=name)
    back = torch.nn.Sequential(torch.nn.Conv2d(4, 6, (5, 3), **kw), torch.nn.Flatten()).double()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert_close(back(xt).detach().numpy(), yt.detach().numpy(), 0)
