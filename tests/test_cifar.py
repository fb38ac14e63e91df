"""fastconv.data.CIFAR10 read from small archives written in the published binary layout,
Normalize and RandomCrop on colour batches, and `fastconv train cifar10` end to end."""

import gzip
import hashlib
import io
import json
import pickle
import re
import tarfile
import urllib.error

import numpy as np
import pytest

import fastconv as fc
from fastconv import cli, data, models

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
TRAIN_LABELS = (3, 0, 9, 5, 1, 7, 2)
TRAIN_COUNTS = (2, 1, 1, 2, 1)          # records in data_batch_1.bin ... data_batch_5.bin
TEST_LABELS = (4, 8, 6)
PUBLISHED_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"


def _pixel(k, c, r, col):
    """Record k's byte at channel c, row r, column col: differs when r and col swap, and
    between channels."""
    return (k * 37 + c * 101 + r * 7 + col * 3 + r * col) % 256


def _asymmetric():
    """One image whose only non-zero bytes are red (0, 1), green (1, 0) and blue (31, 30):
    a transposed, mirrored or channel-swapped reader puts them elsewhere."""
    x = np.zeros((3, 32, 32), np.uint8)
    x[0, 0, 1], x[1, 1, 0], x[2, 31, 30] = 200, 100, 50
    return x


def _expected_images(first, count):
    """The uint8 images written as records first .. first+count-1, built from _pixel
    independently of the byte layout."""
    c, r, col = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    images = np.stack([(k * 37 + c * 101 + r * 7 + col * 3 + r * col) % 256
                       for k in range(first, first + count)]).astype(np.uint8)
    if first == 0:
        images[0] = _asymmetric()
    return images


def _record(k, label):
    """One record as the format describes it: the label byte, then 1024 red, 1024 green and
    1024 blue bytes, each plane row by row."""
    out = bytearray([label])
    special = _asymmetric() if k == 0 else None
    for c in range(3):
        for r in range(32):
            for col in range(32):
                out.append(int(special[c, r, col]) if k == 0 else _pixel(k, c, r, col))
    return bytes(out)


def _bins(train_labels=TRAIN_LABELS, test_labels=TEST_LABELS):
    """{file name: bytes} of the five train batches, the test batch and batches.meta.txt.
    Train records are numbered 0.. across the batches, test records continue after them."""
    files, k = {}, 0
    for i, n in enumerate(TRAIN_COUNTS):
        files[f"data_batch_{i + 1}.bin"] = b"".join(_record(k + j, train_labels[k + j])
                                                    for j in range(n))
        k += n
    files["test_batch.bin"] = b"".join(_record(k + j, y) for j, y in enumerate(test_labels))
    files["batches.meta.txt"] = ("\n".join(CLASSES) + "\n\n").encode()  # as published: blank tail
    return files


def _write_archive(path, files, folder="cifar-10-batches-bin"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def _write_folder(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory):
    path = _write_archive(tmp_path_factory.mktemp("cifar") / "cifar-10-binary.tar.gz", _bins())
    return path.read_bytes()


@pytest.fixture
def archive_root(tmp_path, archive_bytes):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(archive_bytes)
    return tmp_path


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)


def test_archive_decodes_the_published_layout(archive_root):
    train = data.CIFAR10(archive_root, check_integrity=False)
    assert train.images.shape == (7, 3, 32, 32) and len(train) == 7
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert train.images.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(train.labels, TRAIN_LABELS)
    np.testing.assert_array_equal(train.images,
                                  _expected_images(0, 7).astype(np.float32) / np.float32(255))
    first = train.images[0]
    assert first[0, 0, 1] == np.float32(200) / 255 and first[1, 1, 0] == np.float32(100) / 255
    assert first[2, 31, 30] == np.float32(50) / 255 and np.count_nonzero(first) == 3
    assert train.classes == CLASSES and data.CIFAR10.classes == CLASSES
    x, y = train[3]
    np.testing.assert_array_equal(x, train.images[3])
    assert y == TRAIN_LABELS[3]


def test_train_and_test_splits_hold_their_own_records(archive_root):
    test = data.CIFAR10(archive_root, train=False, check_integrity=False)
    assert test.images.shape == (3, 3, 32, 32) and not test.train
    np.testing.assert_array_equal(test.labels, TEST_LABELS)
    np.testing.assert_array_equal(np.round(test.images * 255).astype(np.uint8),
                                  _expected_images(7, 3))


def test_normalize_standardises_each_channel_with_the_published_statistics(archive_root):
    assert data.CIFAR10.mean_std == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    x = data.CIFAR10(archive_root, normalize=True, check_integrity=False).images
    mean = np.array([0.4914, 0.4822, 0.4465]).reshape(3, 1, 1)
    std = np.array([0.2470, 0.2435, 0.2616]).reshape(3, 1, 1)
    expected = (_expected_images(0, 7) / 255.0 - mean) / std
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, expected, rtol=0, atol=2e-6)


def test_extracted_folder_reads_like_the_archive(tmp_path, archive_root, monkeypatch):
    folder = _write_folder(tmp_path / "extracted" / "cifar10" / "cifar-10-batches-bin", _bins())
    monkeypatch.setenv("FASTCONV_DATA", str(folder.parent.parent))
    for train in (True, False):
        a = data.CIFAR10(archive_root, train=train, check_integrity=False)
        b = data.CIFAR10(train=train, check_integrity=False)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert b.classes == CLASSES


def test_integrity_check_refuses_an_archive_that_is_not_the_published_one(archive_root):
    found = hashlib.md5((archive_root / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=rf"cifar-10-binary\.tar\.gz: md5 {found} does not match "
                                         rf"the published {PUBLISHED_MD5}"):
        data.CIFAR10(archive_root)
    assert len(data.CIFAR10(archive_root, check_integrity=False)) == 7


def test_integrity_check_of_a_folder_counts_the_records(tmp_path):
    _write_folder(tmp_path / "cifar-10-batches-bin", _bins())
    with pytest.raises(ValueError, match=r"test_batch\.bin: 3 records, the published file has "
                                         r"10000"):
        data.CIFAR10(tmp_path, train=False)


@pytest.mark.parametrize("where", ["archive", "folder"])
def test_python_version_is_refused_without_unpickling(tmp_path, no_unpickling, where):
    batch = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    if where == "archive":
        _write_archive(tmp_path / "cifar-10-python.tar.gz", {"data_batch_1": batch},
                       folder="cifar-10-batches-py")
    else:
        _write_folder(tmp_path / "cifar10" / "cifar-10-batches-py", {"data_batch_1": batch})
    with pytest.raises(FileNotFoundError, match=r"cifar-10-(python\.tar\.gz|batches-py) is "
                                                r"CIFAR-10's Python version.*refuses.*pickled.*"
                                                r"cifar-10-binary\.tar\.gz"):
        data.CIFAR10(tmp_path, check_integrity=False)


def test_binary_version_is_read_when_the_python_version_sits_beside_it(archive_root,
                                                                      no_unpickling):
    _write_folder(archive_root / "cifar-10-batches-py", {"data_batch_1": b"\x80\x04N."})
    assert len(data.CIFAR10(archive_root, check_integrity=False)) == 7


def test_truncated_files_and_bad_labels_are_named(tmp_path):
    files = _bins()
    files["data_batch_3.bin"] = files["data_batch_3.bin"][:-1]
    _write_archive(tmp_path / "a" / "cifar-10-binary.tar.gz", files)
    _write_folder(tmp_path / "f" / "cifar-10-batches-bin", files)
    for root in (tmp_path / "a", tmp_path / "f"):
        with pytest.raises(ValueError, match=r"data_batch_3\.bin: 3072 bytes is not a whole "
                                             r"number of 3073-byte records"):
            data.CIFAR10(root, check_integrity=False)
    bad = _bins(test_labels=(4, 10, 6))
    _write_folder(tmp_path / "b" / "cifar-10-batches-bin", bad)
    with pytest.raises(ValueError, match=r"test_batch\.bin: record 1 has label 10"):
        data.CIFAR10(tmp_path / "b", train=False, check_integrity=False)


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-binary\.tar\.gz not found.*"
                                                r"download=True"):
        data.CIFAR10(tmp_path)
    files = _bins()
    del files["data_batch_4.bin"]
    _write_folder(tmp_path / "f" / "cifar-10-batches-bin", files)
    with pytest.raises(FileNotFoundError, match=r"data_batch_4\.bin missing"):
        data.CIFAR10(tmp_path / "f", check_integrity=False)
    _write_archive(tmp_path / "a" / "cifar-10-binary.tar.gz", files)
    with pytest.raises(ValueError, match=r"has no cifar-10-batches-bin/data_batch_4\.bin"):
        data.CIFAR10(tmp_path / "a", check_integrity=False)
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "cifar-10-binary.tar.gz").write_bytes(b"not a tar.gz")
    with pytest.raises(ValueError, match="not a readable .tar.gz"):
        data.CIFAR10(tmp_path / "g", check_integrity=False)


def _deflate_span(archive):
    """(start, end) of the compressed data of a one-member gzip file: after the header (its
    FNAME field, which tarfile writes, ends in a zero byte) and before the 8-byte trailer."""
    assert archive[:4] == b"\x1f\x8b\x08\x08"  # gzip, deflate, FNAME set
    return archive.index(b"\0", 10) + 1, len(archive) - 8


@pytest.mark.parametrize("train", [True, False])
def test_a_corrupt_archive_is_refused_even_unchecked(tmp_path, archive_bytes, train):
    # check_integrity=False skips the md5, not gzip's own CRC and length: a damaged archive
    # must never load with wrong pixels, wherever the damage falls.
    start, end = _deflate_span(archive_bytes)
    path = tmp_path / "cifar-10-binary.tar.gz"
    for at in np.linspace(start, end - 1, 12).astype(int):
        corrupt = bytearray(archive_bytes)
        corrupt[at] ^= 0x55
        path.write_bytes(bytes(corrupt))
        with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz: not a readable "
                                             r"\.tar\.gz archive .*corrupt or truncated"):
            data.CIFAR10(tmp_path, train=train, check_integrity=False)


@pytest.mark.parametrize("cut", [1, 4, 8, 30])
@pytest.mark.parametrize("train", [True, False])
def test_a_truncated_archive_is_refused_even_unchecked(tmp_path, archive_bytes, cut, train):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(archive_bytes[:-cut])
    with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz: not a readable \.tar\.gz "
                                         r"archive .*corrupt or truncated"):
        data.CIFAR10(tmp_path, train=train, check_integrity=False)


def test_a_folder_named_like_the_archive_is_not_reported_missing(tmp_path, archive_bytes):
    (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"cifar10/cifar-10-binary\.tar\.gz is a folder, not "
                                         r"a file"):
        data.CIFAR10(tmp_path, check_integrity=False)
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(archive_bytes)
    assert len(data.CIFAR10(tmp_path, check_integrity=False)) == 7   # the real one still found
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "cifar-10-batches-bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"cifar-10-batches-bin is a file, not a folder"):
        data.CIFAR10(tmp_path / "f", check_integrity=False)


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match=r"could not download cifar-10-binary\.tar\.gz "
                                           r"\(offline\?\)"):
        data.CIFAR10(tmp_path, download=True)
    assert not any(tmp_path.rglob("*.part"))


def test_download_fetches_the_archive_and_always_checks_it(tmp_path, monkeypatch, archive_bytes):
    asked = []

    def serve(url, timeout):
        asked.append(url)
        return io.BytesIO(archive_bytes)
    monkeypatch.setattr(data.urllib.request, "urlopen", serve)
    with pytest.raises(ValueError, match="does not match the published"):
        data.CIFAR10(tmp_path / "x", download=True, check_integrity=False)
    monkeypatch.setattr(data.CIFAR10, "md5", hashlib.md5(archive_bytes).hexdigest())
    test = data.CIFAR10(tmp_path / "y", train=False, download=True, check_integrity=False)
    assert asked == [data.CIFAR10.url] * 2
    assert (tmp_path / "y" / "cifar10" / "cifar-10-binary.tar.gz").read_bytes() == archive_bytes
    np.testing.assert_array_equal(test.labels, TEST_LABELS)


def test_normalize_transform_matches_numpy():
    rng = np.random.default_rng(7)
    mean, std = [0.1, -0.4, 2.5, 0.0], [0.5, 1.5, 3.0, 0.25]
    t = data.Normalize(mean, std)
    m, s = np.array(mean).reshape(4, 1, 1), np.array(std).reshape(4, 1, 1)
    batch = rng.random((5, 4, 7, 9)).astype(np.float32)
    before = batch.copy()
    out = t(batch, rng)
    assert out.dtype == np.float32 and out.shape == batch.shape
    np.testing.assert_allclose(out, (before.astype(np.float64) - m) / s, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(batch, before)
    np.testing.assert_allclose(t(batch[2]), out[2], rtol=0, atol=0)
    double = rng.random((4, 3, 5))
    np.testing.assert_allclose(t(double), (double - m) / s, rtol=1e-15)
    assert t(double).dtype == np.float64
    ints = rng.integers(0, 256, (2, 4, 3, 3), dtype=np.uint8)
    np.testing.assert_allclose(t(ints), (ints - m) / s, rtol=1e-6)
    assert t(ints).dtype == np.float32
    state = np.random.default_rng(1)
    t(batch, state)
    assert state.random() == np.random.default_rng(1).random()  # draws nothing


def test_normalize_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="one value per channel each, or one for all channels, "
                                         "got 2 means and 3 stds"):
        data.Normalize([0.5, 0.5], [0.2, 0.2, 0.2])
    for std in ([0.2, 0.0], (0.0,), 0):
        with pytest.raises(ValueError, match="non-zero"):
            data.Normalize([0.5, 0.5], std)
    for bad in ([], [[0.5, 0.5]]):
        with pytest.raises(ValueError, match=r"Normalize: mean must be a number or a flat "
                                             r"sequence of at least one number"):
            data.Normalize(bad, 1.0)
    with pytest.raises(TypeError, match=r"Normalize: std must be a number or a sequence of "
                                        r"numbers, got 'a'"):
        data.Normalize(0.5, "a")
    t = data.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    with pytest.raises(ValueError, match=r"3 means and 3 stds for 1 channels .*one per channel, "
                                         r"or one for all"):
        t(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"1 means and 2 stds for 3 channels"):
        data.Normalize([0.5], [0.2, 0.3])(np.zeros((3, 4, 4), np.float32))
    # torchvision refuses a std that is 0 in the input's dtype: here float32, not float64.
    tiny = data.Normalize(0.0, 1e-50)
    with pytest.raises(ValueError, match=r"std \(1e-50,\) is 0 in float32"):
        tiny(np.ones((1, 2, 2), np.float32))
    np.testing.assert_array_equal(tiny(np.ones((1, 2, 2))), np.full((1, 2, 2), 1e50))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\)"):
        t(np.zeros((32, 32), np.float32))


def test_normalize_broadcasts_one_mean_and_std_over_every_channel():
    # torchvision's Normalize((0.5,), (0.5,)) on colour images: (x - 0.5) / 0.5 on each
    # channel, computed in the input's dtype.
    rng = np.random.default_rng(13)
    batch = rng.random((4, 3, 6, 5)).astype(np.float32)
    image = batch[1]
    half = np.float32(0.5)
    np.testing.assert_array_equal(data.Normalize((0.5,), (0.5,))(batch), (batch - half) / half)
    np.testing.assert_array_equal(data.Normalize([0.5], [0.5])(image), (image - half) / half)
    np.testing.assert_array_equal(data.Normalize(0.5, 0.5)(image), (image - half) / half)
    means, stds = np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.8, 0.9])
    np.testing.assert_array_equal(
        data.Normalize([0.25], stds)(batch),
        (batch - np.float32(0.25)) / stds.astype(np.float32).reshape(3, 1, 1))
    np.testing.assert_array_equal(
        data.Normalize(means, (2.0,))(batch),
        (batch - means.astype(np.float32).reshape(3, 1, 1)) / np.float32(2))
    grey = rng.random((2, 1, 3, 3))
    np.testing.assert_array_equal(data.Normalize((0.5,), (0.25,))(grey), (grey - 0.5) / 0.25)


def test_normalize_inplace_writes_into_the_input_and_returns_it():
    rng = np.random.default_rng(14)
    mean, std = (0.1, -0.2, 0.3), (0.5, 2.0, 0.25)
    batch = rng.random((3, 3, 4, 5)).astype(np.float32)
    expected = data.Normalize(mean, std)(batch)
    t = data.Normalize(mean, std, inplace=True)
    assert t(batch) is batch
    np.testing.assert_array_equal(batch, expected)
    # A view writes through to the array it views: an image of a batch, a strided slice.
    colour = rng.random((2, 3, 4, 4))
    before = colour.copy()
    t(colour[1])
    np.testing.assert_array_equal(colour[0], before[0])
    np.testing.assert_array_equal(colour[1], data.Normalize(mean, std)(before[1]))
    wide = rng.random((3, 4, 8))
    before = wide.copy()
    t(wide[:, :, ::2])
    np.testing.assert_array_equal(wide[:, :, 1::2], before[:, :, 1::2])
    np.testing.assert_array_equal(wide[:, :, ::2], data.Normalize(mean, std)(before[:, :, ::2]))
    np.testing.assert_array_equal(data.Normalize(0.5, 0.5, inplace=True)(batch[0]),
                                  (expected[0] - np.float32(0.5)) / np.float32(0.5))
    assert data.Normalize(mean, std).inplace is False
    with pytest.raises(TypeError, match=r"Normalize: inplace=True needs a floating "
                                        r"numpy.ndarray to write into, got ndarray of uint8"):
        t(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(TypeError, match=r"Normalize: inplace=True needs a floating "
                                        r"numpy.ndarray to write into, got list"):
        t(np.zeros((3, 2, 2)).tolist())
    frozen = np.zeros((3, 2, 2), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"Normalize: inplace=True needs a writable array"):
        t(frozen)
    with pytest.raises(TypeError, match=r"Normalize: inplace must be a bool, got 1"):
        data.Normalize(mean, std, inplace=1)


def _offsets(out, x, padding):
    """For each cropped image, every (top, left) of the zero-padded original whose window it
    equals, found by brute force."""
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, out.shape[2:], axis=(2, 3))
    match = (windows == out[:, :, None, None]).all(axis=(1, 4, 5))   # (N, tops, lefts)
    return [list(zip(*np.nonzero(m))) for m in match]


def test_random_crop_with_padding_on_colour_batches():
    x = np.random.default_rng(3).random((6, 3, 32, 32)).astype(np.float32) + 0.5
    before = x.copy()
    crop = data.RandomCrop(32, padding=4)
    out = crop(x, np.random.default_rng(11))
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(x, before)
    found = _offsets(out, x, 4)
    assert all(len(f) == 1 for f in found)                 # each image is one padded window
    offsets = [f[0] for f in found]
    assert all(0 <= t <= 8 and 0 <= l <= 8 for t, l in offsets)
    assert len(set(offsets)) > 1                           # offsets drawn per image
    assert any(t != 4 or l != 4 for t, l in offsets) and (out == 0).any()   # zeros came in
    np.testing.assert_array_equal(crop(x, np.random.default_rng(11)), out)
    assert not np.array_equal(crop(x, np.random.default_rng(12)), out)


@pytest.mark.parametrize("size,padding", [(None, 3), (32, 4), ([28], (1, 2, 3, 4))])
def test_crop_and_shift_take_a_single_colour_image_as_one_image(size, padding):
    # torchvision users hand transforms one (C, H, W) image: it is cut at one offset for all
    # its channels, with the draws of a batch of one, and comes back 3-D. size None: a shift.
    x = np.random.default_rng(15).random((3, 32, 32)).astype(np.float32) + 0.5
    if size is None:
        transform, (left, top, right, bottom) = data.RandomShift(padding), (padding,) * 4
    else:
        transform = data.RandomCrop(size, padding=padding)
        left, top, right, bottom = transform.padding
    padded = np.zeros((3, 32 + top + bottom, 32 + left + right), np.float32)
    padded[:, top:top + 32, left:left + 32] = x
    offsets = set()
    for seed in range(30):
        out = transform(x, np.random.default_rng(seed))
        assert out.ndim == 3 and out.shape[0] == 3 and out.dtype == x.dtype
        np.testing.assert_array_equal(out, transform(x[None], np.random.default_rng(seed))[0])
        windows = np.lib.stride_tricks.sliding_window_view(padded, out.shape[1:], axis=(1, 2))
        found = np.argwhere((windows == out[:, None, None]).all(axis=(0, 3, 4)))
        assert len(found) == 1                   # the same window of every channel
        offsets.add(tuple(found[0]))
    assert len(offsets) > 10


def test_random_crop_reaches_every_offset_independently_per_image():
    x = np.random.default_rng(5).random((3000, 3, 5, 7)).astype(np.float32) + 0.5
    out = data.RandomCrop((5, 7), padding=4)(x, np.random.default_rng(0))
    found = _offsets(out, x, 4)
    assert all(len(f) == 1 for f in found)
    tops = np.array([f[0][0] for f in found])
    lefts = np.array([f[0][1] for f in found])
    counts = np.zeros((9, 9), int)
    np.add.at(counts, (tops, lefts), 1)
    assert counts.min() > 0                 # 81 offsets, about 37 each
    assert abs(np.corrcoef(tops, lefts)[0, 1]) < 0.1


def test_check_integrity_false_also_reads_idx_files_of_another_md5(tmp_path):
    # `--no-integrity-check` reaches every dataset, so the IDX ones take the argument too.
    def idx(shape, values):
        header = bytes([0, 0, 0x08, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
        return gzip.compress(header + bytes(values))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(idx((2, 28, 28), [7] * 2 * 28 * 28))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(idx((2,), [3, 1]))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: md5"):
        data.MNIST(tmp_path, train=False)
    mnist = data.MNIST(tmp_path, train=False, check_integrity=False)
    assert mnist.images.shape == (2, 1, 28, 28) and list(mnist.labels) == [3, 1]


@pytest.mark.parametrize("name", models.MODELS)
def test_every_command_line_model_takes_cifar_images(name):
    fc.manual_seed(0)
    net = cli._model(name, "cifar10")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = net(x)
    assert y.shape == (2, 10)
    assert net.backward(np.ones_like(y)).shape == x.shape
    grey = {k: v.shape for k, v in cli._model(name, "mnist").state_dict().items()}
    assert grey == {k: v.shape for k, v in models.build_model(name).state_dict().items()}


def test_cli_trains_and_evaluates_on_cifar10(archive_root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "cifar10", "--model", "resnet18", "--epochs", "1", "--limit", "16",
            "--batch-size", "8", "--augment", "--data", str(archive_root), "--out", str(out)]
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fastconv train: ") and err.count("\n") == 1
    assert "does not match the published" in err and "--no-integrity-check reads it" in err
    assert "check_integrity=False" not in err
    assert cli.main(argv + ["--no-integrity-check"]) == 0
    assert json.loads((out / "run.json").read_text()) == {"model": "resnet18",
                                                         "dataset": "cifar10"}
    assert fc.load(out / "model.npz")["conv1.weight"].shape == (64, 3, 3, 3)
    assert "training resnet18 on cifar10 (7 images)" in capsys.readouterr().out
    assert cli.main(["evaluate", "--model-file", str(out / "model.npz"), "--data",
                     str(archive_root), "--no-integrity-check"]) == 0
    printed = capsys.readouterr().out
    assert "on the cifar10 test set (3 images)" in printed and "airplane" in printed


def test_cli_dataset_errors_are_one_line_with_status_2(tmp_path, capsys, archive_bytes):
    """Missing or damaged data ended `fastconv train` in a traceback that named Python
    arguments (root=, download=True, check_integrity=False) instead of the command's options."""
    weights = tmp_path / "m.npz"
    fc.save(cli._model("fashion_cnn", "mnist").state_dict(), weights)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "cifar-10-binary.tar.gz").write_bytes(archive_bytes[:-40])
    (tmp_path / "empty").mkdir()
    empty = str(tmp_path / "empty")
    cases = [(["train", "cifar10", "--data", empty], "train",
              r"CIFAR10: cifar-10-binary\.tar\.gz not found.*Pass --data the folder"),
             (["train", "fashion-mnist", "--data", empty], "train",
              r"FashionMNIST: train-images-idx3-ubyte\.gz not found, nor "
              r"train-images-idx3-ubyte .*Pass --data the folder"),
             (["evaluate", "--model-file", str(weights), "--model", "fashion_cnn", "--dataset",
               "mnist", "--data", empty], "evaluate", r"MNIST: t10k-images-idx3-ubyte\.gz not "
                                                      r"found.*set FASTCONV_DATA"),
             (["train", "cifar10", "--data", str(damaged), "--no-integrity-check"], "train",
              r"cifar-10-binary\.tar\.gz: not a readable \.tar\.gz archive")]
    for argv, command, match in cases:
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert captured.err.startswith(f"fastconv {command}: ")
        assert re.search(match, captured.err), captured.err
        assert "root=" not in captured.err and "Traceback" not in captured.err
