"""fastconv.save / fastconv.load: exact round trips, order, no pickle, clear errors."""

import io
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import fastconv as fc
from fastconv import nn


def _state(dtype):
    rng = np.random.default_rng(0)
    return OrderedDict([
        ("layer1.0.conv1.weight", rng.standard_normal((4, 3, 3, 3)).astype(dtype)),
        ("bn.running_var", rng.random(4).astype(dtype)),
        ("bn.num_batches_tracked", np.array(7, dtype=np.int64)),    # 0-d, as torch saves it
        ("a.bias", np.array([np.pi, -0.0, np.finfo(dtype).tiny], dtype=dtype)),
        ("file", np.arange(3, dtype=np.int32)),                     # np.savez's own argument names
        ("allow_pickle", np.zeros((0, 2), dtype=dtype)),
        ("mask", np.array([True, False])),
    ])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trips_bit_identical_in_order(tmp_path, dtype):
    state = _state(dtype)
    path = tmp_path / "state.npz"
    fc.save(state, path)
    loaded = fc.load(str(path))
    assert isinstance(loaded, OrderedDict)
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape, key
        assert loaded[key].tobytes() == value.tobytes(), key
    # numpy reads the archive as any other .npz
    with np.load(path, allow_pickle=False) as npz:
        assert npz.files == list(state)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_module_writes_its_state_dict(tmp_path, dtype):
    fc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1, bias=False)).to(dtype)
    fc.save(net, tmp_path / "net.npz")
    loaded = fc.load(tmp_path / "net.npz")
    assert list(loaded) == ["0.weight", "0.bias", "1.weight"]
    fc.manual_seed(1)
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1, bias=False)).to(dtype)
    other.load_state_dict(loaded)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items()):
        assert a.dtype == b.dtype == dtype and a.tobytes() == b.tobytes(), k


def test_save_load_file_objects():
    buf = io.BytesIO()
    fc.save({"w": np.ones((2, 2))}, buf)
    buf.seek(0)
    loaded = fc.load(buf)
    np.testing.assert_array_equal(loaded["w"], np.ones((2, 2)))


def test_save_rejects_object_arrays_and_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="'w'.*object"):
        fc.save({"w": np.array([1, "a"], dtype=object)}, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(ValueError, match=r"\.npz"):
        fc.save({"w": np.ones(2)}, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="Module or a state_dict"):
        fc.save([np.ones(2)], tmp_path / "x.npz")
    with pytest.raises(TypeError, match="keys"):
        fc.save({3: np.ones(2)}, tmp_path / "x.npz")


def test_load_rejects_non_npz_and_pickled_arrays(tmp_path):
    npy = tmp_path / "w.npz"
    np.save(tmp_path / "w.npy", np.ones(3))      # a plain .npy renamed: not a zip
    (tmp_path / "w.npy").rename(npy)
    with pytest.raises(ValueError, match="not an .npz archive"):
        fc.load(npy)
    with pytest.raises(ValueError, match=r"\.npz"):
        fc.load(tmp_path / "w.npy")
    with pytest.raises(FileNotFoundError):
        fc.load(tmp_path / "missing.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, ok=np.ones(2), bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="'bad'.*pickled"):
        fc.load(pickled)
    with zipfile.ZipFile(pickled) as zf:           # the file really holds a pickle
        assert "bad.npy" in zf.namelist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("build, shape", [
    (fc.models.fashion_cnn, (4, 1, 28, 28)),
    (fc.models.lenet5, (2, 1, 32, 32)),
    (lambda: fc.models.resnet18(num_classes=10, in_channels=1, small_input=True), (4, 1, 8, 8)),
    (fc.models.inception_net, (4, 1, 8, 8)),
    (fc.models.mlp, (2, 784)),
], ids=["fashion_cnn", "lenet5", "resnet18", "inception_net", "mlp"])
def test_model_state_dict_round_trips_bit_identical(tmp_path, build, shape, dtype):
    fc.manual_seed(0)
    model = build().to(dtype)
    model.train()(np.random.default_rng(0).standard_normal(shape).astype(dtype))  # move BN stats
    state = model.state_dict()
    fc.save(model, tmp_path / "model.npz")
    loaded = fc.load(tmp_path / "model.npz")
    assert list(loaded) == list(state)
    fc.manual_seed(1)
    other = build().to(dtype)
    other.load_state_dict(loaded)
    for key, value in other.state_dict().items():
        assert value.dtype == state[key].dtype and value.tobytes() == state[key].tobytes(), key
