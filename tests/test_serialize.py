"""fastconv.save / fastconv.load: exact round trips, order, no pickle, clear errors."""

import io
import json
import pathlib
import re
import signal
import stat
import struct
import subprocess
import sys
import textwrap
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


# -- damaged, foreign and hostile files ----------------------------------------------------------

def _small_state():
    rng = np.random.default_rng(3)
    return OrderedDict([("conv.weight", rng.standard_normal((2, 1, 3, 3)).astype(np.float32)),
                        ("bn.num_batches_tracked", np.array(5, dtype=np.int64)),
                        ("fc.bias", rng.standard_normal(3))])


def _saved_bytes(tmp_path, state=None):
    path = tmp_path / "ref.npz"
    fc.save(_small_state() if state is None else state, path)
    return path.read_bytes()


def _layout(data):
    """Offsets in an archive written by fc.save: each entry's local header and data, and the
    central directory (from the end-of-central-directory record)."""
    entries = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            n, e = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + n + e
            entries.append((info.header_offset, start, start + info.compress_size))
    central = struct.unpack("<I", data[-6:-2])[0]
    return entries, central


def _same_state(loaded, state):
    return list(loaded) == list(state) and all(
        loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
        and loaded[k].tobytes() == v.tobytes() for k, v in state.items())


@pytest.mark.parametrize("where", ["local header", "npy header", "middle of an entry",
                                   "between entries", "central directory", "end record"])
def test_load_refuses_truncated_files(tmp_path, where):
    data = _saved_bytes(tmp_path)
    entries, central = _layout(data)
    cut = {"local header": entries[1][0] + 10, "npy header": entries[1][1] + 20,
           "middle of an entry": (entries[2][1] + entries[2][2]) // 2,
           "between entries": entries[1][0], "central directory": central + 40,
           "end record": len(data) - 5}[where]
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=re.escape(repr(str(path))) + ".*truncated or corrupt"):
        fc.load(path)


def test_load_refuses_every_truncation(tmp_path):
    data = _saved_bytes(tmp_path)
    for cut in range(len(data)):
        with pytest.raises(ValueError, match="fastconv.load: "):
            fc.load(io.BytesIO(data[:cut]))


def test_load_detects_any_corrupted_byte(tmp_path):
    # Every byte flipped in turn: an error, or (for zip bookkeeping nobody reads, such as
    # timestamps) the very same arrays; never other arrays, never another exception. A flip in
    # an entry's .npy header or data fails its CRC-32.
    state = _small_state()
    data = _saved_bytes(tmp_path, state)
    entries, _ = _layout(data)
    inside = set()
    for _, start, end in entries:
        inside.update(range(start, end))
    refused = 0
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        try:
            loaded = fc.load(io.BytesIO(bytes(bad)))
        except ValueError as e:
            assert str(e).startswith("fastconv.load: "), (i, e)
            refused += 1
            continue
        assert i not in inside, f"a corrupted byte {i} inside an entry went unnoticed"
        assert _same_state(loaded, state), f"byte {i} changed the loaded arrays"
    assert refused >= len(inside)


def test_load_refuses_a_corrupted_file_by_name(tmp_path):
    data = bytearray(_saved_bytes(tmp_path))
    entries, _ = _layout(bytes(data))
    data[entries[2][2] - 1] ^= 0x01   # the last byte of fc.bias's data
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"entry 'fc.bias' of .*flipped.npz.*CRC"):
        fc.load(path)


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in entries:
            zf.writestr(name, payload)
    return path


def _npy_bytes(array, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


@pytest.mark.parametrize("entries, message", [
    ([("word/document.xml", b"<w:document/>")], r"entry 'word/document.xml' that is not an \.npy"),
    ([("a.npy", _npy_bytes(np.ones(2))), ("docs/", b"")], r"entry 'docs/' that is not an \.npy"),
    ([(".npy", _npy_bytes(np.ones(2)))], r"entry '\.npy' that is not an \.npy"),
    ([("w.npy", b"PK\x03\x04 not an array")], r"entry 'w' of .* cannot be read"),
    ([("w.npy", _npy_bytes(np.ones(4))[:-8])], r"entry 'w' of .* declares \(4,\) float64 "
                                                r"\(32 bytes\) but holds 24 bytes"),
    ([("w.npy", _npy_bytes(np.array(["abc", "de"])))], r"entry 'w' of .* has dtype <U3"),
    ([("w.npy", _npy_bytes(np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])))],
     r"entry 'w' .* has dtype \[\('a', '<f4'\), \('b', '<i4'\)\]"),
    ([("w.npy", _npy_bytes(np.zeros(2, dtype="M8[s]")))], r"entry 'w' .* has dtype datetime64"),
], ids=["foreign-zip", "directory", "empty-key", "not-npy", "short-data", "strings",
        "structured", "datetime"])
def test_load_refuses_foreign_archives(tmp_path, entries, message):
    with pytest.raises(ValueError, match=message):
        fc.load(_zip(tmp_path / "foreign.npz", entries))


def test_load_refuses_duplicate_entries(tmp_path):
    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", _npy_bytes(np.ones(2)))
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("w.npy", _npy_bytes(np.zeros(2)))
    with pytest.raises(ValueError, match="two entries named 'w.npy'"):
        fc.load(path)


def test_load_refuses_text_and_empty_files(tmp_path):
    for name, payload in [("text.npz", b"weights: 1 2 3\n"), ("empty.npz", b"")]:
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ValueError, match=f"'{tmp_path / name}' is not an .npz archive"):
            fc.load(tmp_path / name)


class _Payload:
    """Unpickling this runs Path.touch(marker): what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_load_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    path = _zip(tmp_path / "hostile.npz", [("ok.npy", _npy_bytes(np.ones(2))),
                                          ("evil.npy", _npy_bytes(payload, allow_pickle=True))])
    with np.load(path, allow_pickle=True) as npz:   # the payload really runs when unpickled
        npz["evil"]
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match=r"entry 'evil' of .*hostile.npz.* pickled \(object\)"):
        fc.load(path)
    assert not marker.exists()


def test_load_reads_what_numpy_writes(tmp_path):
    # np.savez_compressed (deflate) and Fortran-ordered arrays are ordinary .npz content.
    a = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    b = np.arange(5, dtype=">i4")
    np.savez_compressed(tmp_path / "c.npz", a=a, b=b)
    loaded = fc.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded["a"], a)
    np.testing.assert_array_equal(loaded["b"], b)
    assert loaded["b"].dtype == b.dtype
    loaded["a"][0, 0] = 7.0   # the arrays are writable, as np.load's
    assert fc.load(_zip(tmp_path / "none.npz", [])) == OrderedDict()


@pytest.mark.parametrize("value", [np.array(["a", "b"]), np.zeros(2, dtype=[("a", "f4")]),
                                   np.array([1, "a"], dtype=object), None, "weights"],
                         ids=["strings", "structured", "object", "None", "str"])
def test_save_refuses_non_numeric_arrays(tmp_path, value):
    with pytest.raises(TypeError, match="'w' is an array of dtype"):
        fc.save({"w": value}, tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


# -- load_state_dict: wrong values leave the model unchanged -----------------------------------

def _bn_net():
    fc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    net.train()(np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32))
    return net


def _snapshot(net):
    """Every parameter and buffer: its array object and its bytes."""
    out = {}
    for prefix, module in net.named_modules():
        for name in list(module._parameters) + list(module._buffers):
            value = getattr(module, name)
            array = value.data if isinstance(value, nn.Parameter) else value
            out[f"{prefix}.{name}"] = (id(array), array.dtype, array.tobytes())
    return out


@pytest.mark.parametrize("key, value, error, message", [
    ("0.weight", np.zeros((2, 1, 3, 3), np.int64), TypeError,
     r"0.weight has dtype int64, expected float32 or float64"),
    ("0.weight", np.zeros((2, 1, 3, 3), np.complex64), TypeError, r"0.weight has dtype complex64"),
    ("0.weight", np.zeros((2, 1, 3, 3), np.float16), TypeError, r"0.weight has dtype float16"),
    ("1.running_var", np.ones(2, bool), TypeError, r"1.running_var has dtype bool"),
    ("3.bias", np.array(["a", "b", "c"]), TypeError, r"3.bias has dtype <U1"),
    ("3.bias", None, TypeError, r"3.bias has dtype object"),
    ("3.bias", {"not": "an array"}, TypeError, r"3.bias has dtype object"),
    ("1.num_batches_tracked", np.array(3.0), TypeError,
     r"1.num_batches_tracked has dtype float64, expected int64 or an integer dtype"),
    ("1.num_batches_tracked", np.array(3, np.uint64), TypeError,
     r"1.num_batches_tracked has dtype uint64"),
    ("0.weight", np.zeros((2, 1, 3, 2), np.float32), ValueError,
     r"0.weight has shape \(2, 1, 3, 2\), expected \(2, 1, 3, 3\)"),
    ("1.num_batches_tracked", np.array([3]), ValueError,
     r"1.num_batches_tracked has shape \(1,\), expected \(\)"),
], ids=["int", "complex", "float16", "bool", "strings", "None", "dict", "float-counter",
        "uint64-counter", "shape", "counter-shape"])
def test_load_state_dict_refuses_wrong_values_and_changes_nothing(key, value, error, message):
    net = _bn_net()
    # Every other entry differs from the model's: a load that copied as it checked would change
    # the model before reaching a bad key late in the module's order (3.bias, the counter).
    sd = OrderedDict((k, v + 1) for k, v in net.state_dict().items())
    sd[key] = value
    before = _snapshot(net)
    with pytest.raises(error, match=r"Sequential.load_state_dict: " + message):
        net.load_state_dict(sd)
    assert _snapshot(net) == before


def test_load_state_dict_keys_strict_and_not(tmp_path):
    net = _bn_net()
    before = _snapshot(net)
    sd = net.state_dict()
    new_bias = sd["3.bias"] + 1
    sd["3.bias"] = new_bias
    del sd["1.running_mean"]
    sd["extra.weight"] = np.ones(2, np.float32)
    sd[7] = np.ones(1)
    for errors in (KeyError, ValueError):     # StateDictKeyError is both
        with pytest.raises(errors, match=r"missing keys \['1.running_mean'\], unexpected keys "
                                         r"\['extra.weight', 7\]"):
            net.load_state_dict(sd)
        assert _snapshot(net) == before
    # strict=False: as PyTorch, the keys in common are loaded and the others reported.
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["1.running_mean"] and unexpected == ["extra.weight", 7]
    assert net[3].bias.data.tobytes() == new_bias.tobytes()
    assert _snapshot(net)["1.running_mean"] == before["1.running_mean"]
    # ... but a shape mismatch is an error even then, and changes nothing.
    sd["0.bias"] = np.zeros(5, np.float32)
    before = _snapshot(net)
    with pytest.raises(ValueError, match="0.bias has shape"):
        net.load_state_dict(sd, strict=False)
    assert _snapshot(net) == before
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        net.load_state_dict([("0.weight", np.zeros((2, 1, 3, 3)))])


def test_load_state_dict_converts_what_fits():
    # float64 into float32 (and back), int32 counters into int64: cast, in place.
    net = _bn_net()
    weight = net[0].weight.data
    sd = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v.astype(np.int32))
          for k, v in net.state_dict().items()}
    sd["0.weight"] = sd["0.weight"] * 2
    net.load_state_dict(sd)
    assert net[0].weight.data is weight and weight.dtype == np.float32
    np.testing.assert_array_equal(weight, sd["0.weight"].astype(np.float32))
    assert net[1].num_batches_tracked.dtype == np.int64


def test_load_refused_file_leaves_model_unchanged(tmp_path):
    net = _bn_net()
    before = _snapshot(net)
    sd = net.state_dict()
    sd["3.weight"] = sd["3.weight"].astype(np.complex64)
    fc.save(sd, tmp_path / "complex.npz")
    with pytest.raises(TypeError, match="3.weight has dtype complex64"):
        net.load_state_dict(fc.load(tmp_path / "complex.npz"))
    assert _snapshot(net) == before


# -- atomic saves --------------------------------------------------------------------------------

def _fail_midway(monkeypatch, exc):
    """Make the .npy writer write the header and half of the second array, then raise."""
    real = np.lib.format.write_array
    calls = []

    def write_array(f, array, *args, **kwargs):
        calls.append(array)
        if len(calls) < 2:
            return real(f, array, *args, **kwargs)
        buf = io.BytesIO()
        real(buf, array, *args, **kwargs)
        f.write(buf.getvalue()[:len(buf.getvalue()) // 2])
        raise exc

    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    return calls


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "interrupt"])
def test_save_failing_midway_keeps_the_old_file(tmp_path, monkeypatch, exc):
    path = tmp_path / "model.npz"
    old = _small_state()
    fc.save(old, path)
    original = path.read_bytes()
    new = OrderedDict((k, v + 1) for k, v in old.items())
    calls = _fail_midway(monkeypatch, exc)
    with pytest.raises(type(exc)):
        fc.save(new, path)
    assert len(calls) == 2
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    with pytest.raises(type(exc)):
        fc.save(new, tmp_path / "fresh.npz")         # a failed first save leaves nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    monkeypatch.undo()
    assert _same_state(fc.load(path), old)


def test_save_replaces_the_file_whole_and_keeps_the_usual_mode(tmp_path):
    path = tmp_path / "model.npz"
    fc.save(_small_state(), path)
    newer = OrderedDict([("only", np.arange(3.0))])
    fc.save(newer, path)
    assert _same_state(fc.load(path), newer)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "plain"]


_KILLED = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import fastconv as fc

    path = sys.argv[1]
    real = np.lib.format.write_array
    def write_array(f, array, *args, **kwargs):
        f.write(b"\\x93NUMPY half of an array")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    np.lib.format.write_array = write_array
    fc.save({"w": np.full((256, 256), 2.0)}, path)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_save_killed_midway_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.npz"
    old = _small_state()
    fc.save(old, path)
    original = path.read_bytes()
    run = subprocess.run([sys.executable, "-c", _KILLED, str(path)], timeout=120)
    assert run.returncode == -signal.SIGKILL
    assert path.read_bytes() == original
    assert _same_state(fc.load(path), old)
    # What a kill leaves is the temporary file beside it, never a partial model.npz.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.npz"]
    assert len(leftovers) == 1 and re.fullmatch(r"\.model\.npz\.[0-9a-f]{12}\.tmp", leftovers[0])


def test_checkpoint_and_cli_files_are_written_atomically(tmp_path, monkeypatch):
    from fastconv import _atomic, cli
    from fastconv.train import Checkpoint

    net = _bn_net()
    ckpt = Checkpoint(tmp_path / "best.npz", best_only=False)
    ckpt.on_train_begin(net, None)
    ckpt.on_epoch_end(1, {}, net, None)
    saved = (tmp_path / "best.npz").read_bytes()
    cli._write_json(tmp_path / "history.json", {"epochs": [1]})
    history = (tmp_path / "history.json").read_text()
    assert json.loads(history) == {"epochs": [1]}

    def no_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_atomic.os, "fsync", no_fsync)
    net[0].weight.data += 1
    with pytest.raises(OSError, match="Input/output error"):
        ckpt.on_epoch_end(2, {}, net, None)
    with pytest.raises(OSError, match="Input/output error"):
        cli._write_json(tmp_path / "history.json", {"epochs": [1, 2]})
    assert (tmp_path / "best.npz").read_bytes() == saved
    assert (tmp_path / "history.json").read_text() == history
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "history.json"]


def test_load_checks_the_entry_count_of_zip64_archives(tmp_path, monkeypatch):
    # A zip64 end record (written here for 3 entries by lowering zipfile's threshold), with
    # the plain record's count set to 0xFFFF, "see zip64", as large archives have it.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    state = _small_state()
    data = bytearray(_saved_bytes(tmp_path, state))
    monkeypatch.undo()
    assert data[-22:-18] == b"PK\x05\x06" and data[-42:-38] == b"PK\x06\x07"
    data[-14:-10] = b"\xff\xff\xff\xff"     # entries on this disk and in total
    assert _same_state(fc.load(io.BytesIO(bytes(data))), state)
    zip64_end = struct.unpack("<Q", data[-34:-26])[0]
    assert data[zip64_end:zip64_end + 4] == b"PK\x06\x06"
    data[zip64_end + 32] = 5      # entries in total
    data[zip64_end + 24] = 5      # entries on this disk
    with pytest.raises(ValueError, match="declares 5 entries but its central directory lists 3"):
        fc.load(io.BytesIO(bytes(data)))
