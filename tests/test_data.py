"""fastconv.data: the IDX reader, the real Fashion-MNIST/MNIST files, DataLoader, augmentation."""

import gzip
import shutil
import urllib.error

import numpy as np
import pytest

from fastconv import data

from _util import ROOT, needs_data


@needs_data
@pytest.mark.parametrize("cls,first_label", [(data.FashionMNIST, 9), (data.MNIST, 5)])
def test_real_datasets_load_with_the_published_shapes_and_labels(cls, first_label):
    train, test = cls(ROOT, train=True), cls(ROOT, train=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    assert train.labels[0] == first_label
    assert set(np.unique(test.labels)) == set(range(10)) and len(cls.classes) == 10
    if cls is data.FashionMNIST:
        assert (np.bincount(train.labels) == 6000).all() and (np.bincount(test.labels) == 1000).all()


@needs_data
def test_normalize_gives_zero_mean_unit_std_on_the_training_set():
    x = data.FashionMNIST(ROOT, train=True, normalize=True).images
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01


@needs_data
def test_root_comes_from_fastconv_data_when_not_given(monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", str(ROOT))
    assert len(data.MNIST(train=False)) == 10000


def test_missing_files_say_where_they_were_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\.gz not found, nor "
                                                r"t10k-images-idx3-ubyte \(looked in .*"
                                                r"download=True"):
        data.FashionMNIST(tmp_path, train=False)


@needs_data
def test_corrupt_file_is_named_by_its_md5(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.MNIST.files:
        shutil.copy(ROOT / "mnist" / name, folder / name)
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(bad.read_bytes())
    raw[-10] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: md5"):
        data.MNIST(tmp_path, train=False)


def test_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="could not download .*offline"):
        data.MNIST(tmp_path, train=False, download=True)


def _idx(shape, values, magic=0x08):
    header = bytes([0, 0, magic, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + bytes(values)


def test_read_idx_reads_raw_and_gzip_and_rejects_truncation(tmp_path):
    values = list(range(24))
    raw = tmp_path / "a.idx"
    raw.write_bytes(_idx((2, 3, 4), values))
    gz = tmp_path / "a.idx.gz"
    gz.write_bytes(gzip.compress(_idx((2, 3, 4), values)))
    expected = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.read_idx(raw), expected)
    np.testing.assert_array_equal(data.read_idx(gz), expected)
    raw.write_bytes(_idx((2, 3, 4), values[:-1]))
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(raw)
    raw.write_bytes(b"\x12\x34\x56\x78")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(raw)
    gz.write_bytes(gzip.compress(_idx((2, 3, 4), values))[:-6])
    with pytest.raises(ValueError, match="corrupt gzip"):
        data.read_idx(gz)


def test_dataloader_covers_every_sample_once_per_epoch_and_is_reproducible():
    x = np.arange(10 * 1 * 2 * 2, dtype=np.float32).reshape(10, 1, 2, 2)
    y = np.arange(10)
    loader = data.DataLoader(x, y, batch_size=4, shuffle=True, seed=3)
    assert len(loader) == 3
    epoch1 = [b for _, b in loader]
    epoch2 = [b for _, b in loader]
    assert sorted(np.concatenate(epoch1)) == list(range(10)) == sorted(np.concatenate(epoch2))
    assert [len(b) for b in epoch1] == [4, 4, 2]
    assert not all(np.array_equal(a, b) for a, b in zip(epoch1, epoch2))
    again = data.DataLoader(x, y, batch_size=4, shuffle=True, seed=3)
    for (xa, ya), yb in zip(again, epoch1):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, x[ya])
    assert len(data.DataLoader(x, y, batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match="labels"):
        data.DataLoader(x, y[:5])


def test_augmentations():
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(data.RandomHorizontalFlip(1.0)(x, rng), x[..., ::-1])
    np.testing.assert_array_equal(data.RandomHorizontalFlip(0.0)(x, rng), x)
    np.testing.assert_array_equal(data.RandomCrop((5, 7))(x, rng), x)
    shifted = data.RandomShift(2)(x, rng)
    assert shifted.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(len(x)):
        assert any(np.array_equal(shifted[i], padded[i, :, t:t + 5, l:l + 7])
                   for t in range(5) for l in range(5))
    crop = data.Compose([data.RandomCrop(4, padding=1), data.RandomHorizontalFlip()])(x, rng)
    assert crop.shape == (6, 1, 4, 4)
    with pytest.raises(ValueError, match="larger"):
        data.RandomCrop(9)(x, rng)


def test_read_idx_names_the_file_for_any_corruption_of_the_gzip_stream(tmp_path):
    # Depending on where the damage falls, gzip reports it as a zlib.error, a bad CRC or an
    # early end: each is the same corrupt download to the caller.
    gz = gzip.compress(_idx((2, 3, 4), range(24)), mtime=0)
    path = tmp_path / "a.idx.gz"
    for at in range(10, len(gz) - 8):  # the compressed data, between gzip's header and trailer
        corrupt = bytearray(gz)
        corrupt[at] ^= 0xFF
        path.write_bytes(bytes(corrupt))
        with pytest.raises(ValueError, match=r"a\.idx\.gz: corrupt gzip data"):
            data.read_idx(path)


def test_read_idx_reports_the_true_size_of_a_huge_header(tmp_path):
    path = tmp_path / "huge.idx"
    path.write_bytes(_idx((2 ** 32 - 1,) * 3, []))
    promised = 16 + (2 ** 32 - 1) ** 3
    with pytest.raises(ValueError, match=rf"huge\.idx: the header promises {promised} bytes"):
        data.read_idx(path)


def test_a_folder_in_place_of_an_idx_file_is_named(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").mkdir()
    for check in (True, False):
        with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz is a folder, not a file"):
            data.FashionMNIST(tmp_path, train=False, check_integrity=check)


def test_horizontal_flip_mirrors_whole_images():
    x = np.random.default_rng(1).random((200, 3, 4, 5)).astype(np.float32)
    out = data.RandomHorizontalFlip(0.5)(x, np.random.default_rng(0))
    flipped = [np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept))      # every channel of an image together
    assert 50 < sum(flipped) < 150


def test_horizontal_flip_takes_a_single_image_as_one_image():
    # As torchvision reads it: a (C, H, W) image is mirrored whole, never channel by channel,
    # with the draw a batch of one would take.
    img = np.random.default_rng(2).random((3, 4, 5)).astype(np.float32)
    flip = data.RandomHorizontalFlip(0.5)
    outcomes = []
    for seed in range(40):
        out = flip(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == img.dtype
        np.testing.assert_array_equal(out, flip(img[None], np.random.default_rng(seed))[0])
        mirrored = np.array_equal(out, img[:, :, ::-1])
        assert mirrored or np.array_equal(out, img)
        outcomes.append(mirrored)
    assert 5 < sum(outcomes) < 35
    np.testing.assert_array_equal(data.RandomHorizontalFlip(1.0)(img), img[:, :, ::-1])
    for bad in (img[0], img[None, None]):
        with pytest.raises(ValueError, match=r"RandomHorizontalFlip: expected an image "
                                             r"\(C, H, W\) or a batch \(N, C, H, W\), got "
                                             r"shape"):
            flip(bad, np.random.default_rng(0))


def test_crop_and_shift_arguments_and_shapes_are_checked():
    x = np.zeros((2, 1, 5, 7), np.float32)
    rng = np.random.default_rng(0)
    for padding in ((1, 2, 3), ()):  # torchvision: a ValueError for the length
        with pytest.raises(ValueError, match=r"RandomCrop: padding must be a sequence of 1, 2 "
                                             r"or 4 ints, got [03]"):
            data.RandomCrop(5, padding=padding)
    for padding in (1.5, True, (1, 2.0), "1"):
        with pytest.raises(TypeError, match=r"RandomCrop: padding must be None, an int or a "
                                            r"sequence of 1, 2 or 4 ints, got"):
            data.RandomCrop(5, padding=padding)
    for padding in (-1, (1, -1), (0, 0, 0, -2)):
        with pytest.raises(ValueError, match=r"RandomCrop: padding must be >= 0, got"):
            data.RandomCrop(5, padding=padding)
    for size in (0, (), (5, 0), 2.5, (5, 7, 1), True, (True,)):
        with pytest.raises((TypeError, ValueError), match=r"RandomCrop: size must be"):
            data.RandomCrop(size)
    with pytest.raises(TypeError, match=r"RandomCrop: pad_if_needed must be a bool, got 1"):
        data.RandomCrop(5, pad_if_needed=1)
    for fill in ("0", None, True, (0, 0, 0)):
        with pytest.raises(TypeError, match=r"RandomCrop: fill must be a real number"):
            data.RandomCrop(5, fill=fill)
    with pytest.raises(ValueError, match=r"RandomCrop: padding_mode must be one of constant, "
                                         r"edge, reflect, symmetric, got 'wrap'"):
        data.RandomCrop(5, padding_mode="wrap")
    for shift in (-1, 1.5, (1, 2)):
        with pytest.raises((TypeError, ValueError), match=r"RandomShift: max_shift must be"):
            data.RandomShift(shift)
    with pytest.raises(ValueError, match=r"RandomShift: expected an image \(C, H, W\) or a "
                                         r"batch \(N, C, H, W\), got shape \(5, 7\)"):
        data.RandomShift(2)(x[0, 0], rng)
    assert data.RandomCrop(np.int64(4), padding=np.int64(1))(x, rng).shape == (2, 1, 4, 4)


def test_augmentations_take_an_empty_batch():
    x = np.zeros((0, 3, 5, 7), np.float32)
    rng = np.random.default_rng(0)
    for t, shape in [(data.RandomCrop(4, padding=1), (0, 3, 4, 4)),
                     (data.RandomShift(2), (0, 3, 5, 7)),
                     (data.RandomHorizontalFlip(), (0, 3, 5, 7)),
                     (data.Compose([data.RandomCrop(5, padding=2), data.RandomHorizontalFlip()]),
                      (0, 3, 5, 5))]:
        out = t(x, rng)
        assert out.shape == shape and out.dtype == x.dtype
    with pytest.raises(ValueError, match="larger"):
        data.RandomCrop(9)(x, rng)


def _pad_reference(img, left, top, right, bottom, mode, fill=0):
    """img (C, H, W) padded as torchvision's modes are documented, by index arithmetic: edge
    repeats the border pixel; reflect mirrors about it ([1, 2, 3] -> 3 2 | 1 2 3 | 2 1);
    symmetric mirrors with it ([1, 2, 3] -> 2 1 | 1 2 3 | 3 2). Pads below the size only."""
    _, H, W = img.shape
    rows, cols = np.arange(-top, H + bottom), np.arange(-left, W + right)

    def source(k, n):
        if mode == "reflect":
            return np.where(k < 0, -k, np.where(k >= n, 2 * (n - 1) - k, k))
        if mode == "symmetric":
            return np.where(k < 0, -k - 1, np.where(k >= n, 2 * n - 1 - k, k))
        return np.clip(k, 0, n - 1)  # edge; constant overwrites the border below
    out = img[:, source(rows, H)][:, :, source(cols, W)]
    if mode == "constant":
        inside = ((rows >= 0) & (rows < H))[:, None] & (cols >= 0) & (cols < W)
        out = np.where(inside, out, np.asarray(fill, img.dtype))
    return out


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_random_crop_padding_follows_torchvision_order_and_modes(mode):
    # torchvision: an int pads every side, (a,) too, (a, b) is left/right a and top/bottom b,
    # (l, t, r, b) is left, top, right, bottom. A crop of the whole padded size shows the pad.
    img = np.random.default_rng(4).random((3, 5, 6)).astype(np.float32) + 1
    for padding, (l, t, r, b) in [(2, (2, 2, 2, 2)), ([3], (3, 3, 3, 3)), ((1, 3), (1, 3, 1, 3)),
                                  ([1, 2, 3, 4], (1, 2, 3, 4)), ((0, 4, 2, 0), (0, 4, 2, 0)),
                                  (None, (0, 0, 0, 0))]:
        expected = _pad_reference(img, l, t, r, b, mode, fill=-7)
        crop = data.RandomCrop(expected.shape[1:], padding=padding, fill=-7, padding_mode=mode)
        np.testing.assert_array_equal(crop(img, np.random.default_rng(0)), expected)
        np.testing.assert_array_equal(crop(np.stack([img, img + 1])),
                                      np.stack([expected, _pad_reference(
                                          img + 1, l, t, r, b, mode, fill=-7)]))


def _window_offsets(out, padded):
    """Every (top, left) of padded (C, H', W') whose window equals out (C, h, w)."""
    windows = np.lib.stride_tricks.sliding_window_view(padded, out.shape[1:], axis=(1, 2))
    return list(zip(*np.nonzero((windows == out[:, None, None]).all(axis=(0, 3, 4)))))


def test_random_crop_windows_of_sequence_padding_and_fill_reach_every_offset():
    x = np.random.default_rng(6).random((400, 2, 4, 5)).astype(np.float32) + 1
    crop = data.RandomCrop([4], padding=(1, 0, 2, 3), fill=0.5)
    out = crop(x, np.random.default_rng(1))
    assert out.shape == (400, 2, 4, 4)
    seen = set()
    for o, i in zip(out, x):
        found = _window_offsets(o, _pad_reference(i, 1, 0, 2, 3, "constant", fill=0.5))
        assert len(found) == 1
        seen.add(found[0])
    assert seen == {(t, l) for t in range(4) for l in range(5)}   # 7x8 padded, 4x4 window


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_random_crop_pad_if_needed_pads_the_shortfall_on_both_sides_after_padding(mode):
    # torchvision pads by `padding` first, then an axis still short of size by its shortfall
    # on both sides, as a second pad: a window of 5x8 from 3x4 padded by 1 on the left only.
    x = np.random.default_rng(8).random((300, 1, 3, 4)).astype(np.float32) + 1
    crop = data.RandomCrop((5, 8), padding=(1, 0, 0, 0), pad_if_needed=True, padding_mode=mode)
    out = crop(x, np.random.default_rng(2))
    assert out.shape == (300, 1, 5, 8)
    seen = set()
    for o, i in zip(out, x):
        once = _pad_reference(i, 1, 0, 0, 0, mode)                       # 3 x 5
        padded = _pad_reference(_pad_reference(once, 3, 0, 3, 0, mode), 0, 2, 0, 2, mode)
        found = _window_offsets(o, padded)                                 # 7 x 11
        assert len(found) == 1
        seen.add(found[0])
    assert seen == {(t, l) for t in range(3) for l in range(4)}
    with pytest.raises(ValueError, match="larger"):
        data.RandomCrop((5, 8), padding=(1, 0, 0, 0))(x, np.random.default_rng(2))


def test_idx_datasets_read_decompressed_files_when_the_gz_is_absent(tmp_path):
    # torchvision keeps the files decompressed; they have no published md5, so they are read
    # with check_integrity=True, checked by the IDX reader alone.
    pixels = np.random.default_rng(9).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(_idx((3, 28, 28), pixels.ravel().tolist()))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx((3,), [9, 0, 4]))
    fm = data.FashionMNIST(tmp_path, train=False)
    np.testing.assert_array_equal(fm.images, pixels[:, None].astype(np.float32) / 255)
    np.testing.assert_array_equal(fm.labels, [9, 0, 4])
    # The published .gz, when there, is preferred in its folder, and md5-checked.
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx((3, 28, 28),
                                                                          [0] * 3 * 784)))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: md5 .*"
                                         r"\(check_integrity=False reads it anyway\)"):
        data.FashionMNIST(tmp_path, train=False)
    assert not data.FashionMNIST(tmp_path, train=False, check_integrity=False).images.any()
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    (folder / "t10k-images-idx3-ubyte").write_bytes(_idx((3, 28, 28), [1] * (3 * 784 - 1)))
    with pytest.raises(ValueError, match=r"fashion-mnist/t10k-images-idx3-ubyte: the header "
                                         r"promises .* truncated"):
        data.FashionMNIST(tmp_path, train=False)
    (folder / "t10k-images-idx3-ubyte").unlink()
    (folder / "t10k-images-idx3-ubyte").mkdir()
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is a folder, not a file"):
        data.FashionMNIST(tmp_path, train=False)


def test_idx_datasets_read_torchvisions_folder_layout(tmp_path):
    """torchvision keeps the decompressed files in root/MNIST/raw (root/FashionMNIST/raw)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    pixels = np.random.default_rng(10).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx((2, 28, 28), pixels.ravel().tolist()))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx((2,), [7, 2]))
    mnist = data.MNIST(tmp_path, train=False)
    np.testing.assert_array_equal(mnist.images, pixels[:, None].astype(np.float32) / 255)
    np.testing.assert_array_equal(mnist.labels, [7, 2])
    with pytest.raises(FileNotFoundError, match="FashionMNIST/raw"):
        data.FashionMNIST(tmp_path, train=False)


@needs_data
def test_decompressed_real_files_read_like_the_published_gz(tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        gz = ROOT / "mnist" / (name + ".gz")
        (tmp_path / name).write_bytes(gzip.decompress(gz.read_bytes()))
    raw, gz = data.MNIST(tmp_path, train=False), data.MNIST(ROOT, train=False)
    np.testing.assert_array_equal(raw.images, gz.images)
    np.testing.assert_array_equal(raw.labels, gz.labels)


def test_dataset_errors_keep_their_problem_apart_from_the_python_advice(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as missing:
        data.MNIST(tmp_path)
    assert isinstance(missing.value, FileNotFoundError)
    assert "root=" in str(missing.value) and "root=" not in missing.value.problem
    assert missing.value.problem.startswith("MNIST: train-images-idx3-ubyte.gz not found")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx((0, 28, 28), [])))
    with pytest.raises(data.IntegrityError) as unpublished:
        data.MNIST(tmp_path)
    assert isinstance(unpublished.value, ValueError)
    assert str(unpublished.value) == (unpublished.value.problem
                                      + " (check_integrity=False reads it anyway)")
