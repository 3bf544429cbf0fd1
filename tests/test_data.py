"""initlab.data against independent references: scikit-learn, mnist1d, numpy, IDX files
written here byte by byte, and the real MNIST / Fashion-MNIST files in ../shared/data."""

from __future__ import annotations

import gzip
import hashlib
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mnist1d.data
import numpy as np
import pytest
import sklearn.datasets
import torch
from sklearn.model_selection import train_test_split

from initlab import data

# ----------------------------------------------------------------------------- IDX writer

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``, written from the format's definition."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


# A tiny "MNIST": 3 training and 2 test images of 4×5 pixels with known values.
TRAIN_IMAGES = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 4).astype(np.uint8)  # 0, 4, …, 236
TEST_IMAGES = (255 - np.arange(2 * 4 * 5).reshape(2, 4, 5)).astype(np.uint8)
TRAIN_LABELS = np.array([5, 0, 9], dtype=np.uint8)
TEST_LABELS = np.array([1, 7], dtype=np.uint8)
STEMS = {
    "train-images-idx3-ubyte": TRAIN_IMAGES,
    "train-labels-idx1-ubyte": TRAIN_LABELS,
    "t10k-images-idx3-ubyte": TEST_IMAGES,
    "t10k-labels-idx1-ubyte": TEST_LABELS,
}


def write_mnist(
    directory: Path,
    *,
    gz: bool = True,
    checksums: bool = True,
    train_labels: np.ndarray = TRAIN_LABELS,
) -> dict[str, bytes]:
    """Write the tiny set's four files (and MD5SUMS/SHA256SUMS); their bytes by name."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {**STEMS, "train-labels-idx1-ubyte": train_labels}
    written = {}
    for stem, array in arrays.items():
        content = idx_bytes(array)
        name = stem
        if gz:
            content, name = gzip.compress(content, mtime=0), f"{stem}.gz"
        (directory / name).write_bytes(content)
        written[name] = content
    if checksums:
        write_sums(directory, written)
    return written


def write_sums(directory: Path, files: dict[str, bytes]) -> None:
    for sums, algorithm in (("MD5SUMS", "md5"), ("SHA256SUMS", "sha256")):
        lines = [f"{hashlib.new(algorithm, b).hexdigest()}  {name}" for name, b in files.items()]
        (directory / sums).write_text("\n".join(lines) + "\n")


def no_labels(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.int64)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.delenv("INITLAB_DATA", raising=False)
    # The user cache is searched too: an empty one, whatever this machine has fetched.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


# ----------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_matches_the_format(tmp_path: Path, dtype: np.dtype, gz: bool) -> None:
    values = np.arange(-6, 6).reshape(3, 2, 2) * 3
    array = values.astype(dtype) if dtype.kind != "u" else (values + 20).astype(dtype)
    content = idx_bytes(array)
    # The name says the opposite of the content: gzip is told by its magic bytes.
    path = tmp_path / ("plain.idx" if gz else "looks.gz")
    path.write_bytes(gzip.compress(content) if gz else content)
    got = data.read_idx(path)
    assert got.dtype == torch.from_numpy(array).dtype
    assert torch.equal(got, torch.from_numpy(array))
    assert torch.equal(data.read_idx(path, limit=2), torch.from_numpy(array[:2]))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b"\x01" + b[1:], "not an IDX file"),  # magic must start with 0x0000
        (lambda b: b[:2] + b"\x07" + b[3:], "not an IDX file"),  # unknown type code
        (lambda b: b[:-1], "truncated"),  # one byte missing
        (lambda b: b + b"\x00", "1 bytes after"),  # one byte too many
        (lambda b: b[:6], "truncated"),  # header cut in the dimensions
    ],
)
def test_read_idx_rejects_damaged_files(
    tmp_path: Path, mutate: Callable[[bytes], bytes], match: str
) -> None:
    path = tmp_path / "bad"
    path.write_bytes(mutate(idx_bytes(TRAIN_IMAGES)))
    with pytest.raises(ValueError, match=match):
        data.read_idx(path)


# ----------------------------------------------------------------------------- tiny MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_reads_hand_written_files(tmp_path: Path, gz: bool) -> None:
    written = write_mnist(tmp_path / "mnist", gz=gz)
    ds = data.load_mnist(root=tmp_path)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    expected = torch.from_numpy(TRAIN_IMAGES.reshape(3, 20).astype(np.float32)) / 255
    assert torch.equal(ds.x_train, expected)
    assert ds.y_train.tolist() == [5, 0, 9] and ds.y_test.tolist() == [1, 7]
    assert torch.equal(ds.x_test * 255, torch.from_numpy(TEST_IMAGES.reshape(2, 20)).float())
    assert ds.params["verified"] == {name: ("md5", "sha256") for name in written}
    assert ds.params["root"] == str(tmp_path / "mnist")

    raw64 = data.load_mnist(root=tmp_path, raw=True, flatten=False, dtype=torch.float64)
    assert raw64.x_train.shape == (3, 1, 4, 5) and raw64.dtype == torch.float64
    assert torch.equal(raw64.x_train[:, 0], torch.from_numpy(TRAIN_IMAGES).double())

    few = data.load_mnist(root=tmp_path, limit=2)
    assert few.n_train == 2 and few.n_test == 2
    assert torch.equal(few.x_train, expected[:2])


def test_missing_checksum_files_are_allowed_and_recorded(tmp_path: Path) -> None:
    # Documented choice: no MD5SUMS/SHA256SUMS means nothing to verify against; the load
    # goes on and params["verified"] says that no algorithm checked the files.
    write_mnist(tmp_path, checksums=False)
    ds = data.load_mnist(root=tmp_path)  # <root> itself holds the files
    assert ds.y_train.tolist() == [5, 0, 9]
    assert set(ds.params["verified"].values()) == {()}


def test_a_file_the_checksum_lists_omit_is_read_with_a_warning(tmp_path: Path) -> None:
    written = write_mnist(tmp_path)
    listed = {k: v for k, v in written.items() if not k.startswith("train-labels")}
    write_sums(tmp_path, listed)  # the lists no longer mention the training labels
    with pytest.warns(UserWarning, match=r"train-labels-idx1-ubyte.gz is not listed"):
        ds = data.load_mnist(root=tmp_path)
    assert ds.params["verified"]["train-labels-idx1-ubyte.gz"] == ()


def test_checksum_mismatch_is_an_error(tmp_path: Path) -> None:
    written = write_mnist(tmp_path / "mnist")
    name = "train-labels-idx1-ubyte.gz"
    other = gzip.compress(idx_bytes(np.array([1, 1, 1], dtype=np.uint8)))
    (tmp_path / "mnist" / name).write_bytes(other)
    # MD5SUMS is checked first: the message names the file, the expected and the actual.
    expected, got = hashlib.md5(written[name]).hexdigest(), hashlib.md5(other).hexdigest()
    with pytest.raises(ValueError, match="Checksum mismatch") as caught:
        data.load_mnist(root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "mnist" / name) in message and "it was not used" in message
    assert f"MD5SUMS lists md5 {expected}, the file has {got}" in message
    (tmp_path / "mnist" / "MD5SUMS").unlink()  # the other list still guards the file
    with pytest.raises(
        ValueError, match=f"SHA256SUMS lists sha256 {hashlib.sha256(written[name]).hexdigest()}"
    ):
        data.load_mnist(root=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_gzip_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    written = write_mnist(tmp_path)
    name = "train-images-idx3-ubyte.gz"
    good = written[name]
    if damage == "truncate":
        broken = good[: len(good) // 2]
    else:  # damage the deflate stream past the 10-byte gzip header
        middle = bytearray(good)
        for i in range(12, len(middle) - 8):
            middle[i] ^= 0xFF
        broken = bytes(middle)
    (tmp_path / name).write_bytes(broken)
    # Checksums updated to the broken bytes: the checksum passes, the gzip check must not.
    write_sums(tmp_path, {**written, name: broken})
    with pytest.raises(ValueError, match=rf"{name}.*(not a valid gzip|truncated)"):
        data.load_mnist(root=tmp_path)


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_mnist(tmp_path, train_labels=np.array([1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="3 images but .* 2 labels"):
        data.load_mnist(root=tmp_path)


def test_missing_files_list_every_place_and_the_fix(tmp_path: Path, no_env: None) -> None:
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as caught:
        data.load_mnist(root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "mnist") in message and "lacks train-labels-idx1-ubyte" in message
    assert f"{tmp_path} (none of the files)" in message
    assert "root=" in message and "INITLAB_DATA=" in message


def test_directory_resolution_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None
) -> None:
    def first_label(**kw: object) -> int:
        return int(data.load_mnist(**kw).y_train[0])  # type: ignore[arg-type]

    # Three copies that differ in their first label, to tell which one was read.
    write_mnist(tmp_path / "explicit" / "mnist", train_labels=np.array([1, 0, 0], np.uint8))
    write_mnist(tmp_path / "env", train_labels=np.array([2, 0, 0], np.uint8))
    up = tmp_path / "up" / "shared" / "data" / "mnist"
    write_mnist(up, train_labels=np.array([3, 0, 0], np.uint8))
    deep = tmp_path / "up" / "repo" / "sub"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert first_label() == 3  # walk up from the working directory to up/shared/data
    monkeypatch.setenv("INITLAB_DATA", str(tmp_path / "env"))
    assert first_label() == 2  # the environment variable beats the search
    assert first_label(root=tmp_path / "explicit") == 1  # an explicit root beats both
    assert data.locate("mnist", str(tmp_path / "explicit")) == tmp_path / "explicit" / "mnist"


# ----------------------------------------------------------------------------- real data


def _real(name: str) -> Path:
    try:
        return data.locate(name)  # type: ignore[arg-type]
    except FileNotFoundError as error:  # pragma: no cover - a machine without ../shared/data
        pytest.skip(f"no {name} files: {error}")


def _parse_gz(path: Path, offset: int) -> np.ndarray:
    """Reference parse, independent of initlab: skip the header, read bytes."""
    content = gzip.decompress(path.read_bytes())
    return np.frombuffer(content, dtype=np.uint8, offset=offset).copy()


@pytest.fixture(scope="module")
def mnist() -> data.Dataset:
    _real("mnist")
    return data.load_mnist()  # the whole set: ~0.4 s, every checksum verified


def test_real_mnist(mnist: data.Dataset) -> None:
    directory = _real("mnist")
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert int(mnist.y_train[0]) == 5  # the famous first training digit
    images = _parse_gz(directory / "train-images-idx3-ubyte.gz", 16).reshape(60000, 784)
    labels = _parse_gz(directory / "train-labels-idx1-ubyte.gz", 8)
    assert torch.equal(mnist.x_train * 255, torch.from_numpy(images).float())
    assert torch.equal(mnist.y_train, torch.from_numpy(labels).long())
    assert (
        mnist.y_test.bincount().tolist()
        == np.bincount(_parse_gz(directory / "t10k-labels-idx1-ubyte.gz", 8)).tolist()
    )
    # Every file was hashed in full and matched both published lists.
    assert set(mnist.params["verified"].values()) == {("md5", "sha256")}
    for line in (directory / "MD5SUMS").read_text().split("\n"):
        if line:
            digest, name = line.split()
            assert hashlib.md5((directory / name).read_bytes()).hexdigest() == digest


def test_real_fashion_mnist_with_limit() -> None:
    _real("fashion-mnist")
    ds = data.load_fashion_mnist(limit=100, flatten=False)
    assert ds.x_train.shape == (100, 1, 28, 28) and ds.n_test == 100
    assert int(ds.y_train[0]) == 9 and ds.classes[9] == "Ankle boot"
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0
    assert set(ds.params["verified"].values()) == {("md5", "sha256")}
    raw = data.load("fashion-mnist", limit=3, raw=True)
    assert float(raw.x_train.max()) == 255.0


# ----------------------------------------------------------------------------- toys


SKLEARN_TOYS: dict[str, tuple[Callable[..., data.Dataset], Callable[..., Any]]] = {
    "circles": (
        data.load_circles,
        lambda n, noise, seed: sklearn.datasets.make_circles(
            n, noise=noise, factor=0.5, random_state=seed
        ),
    ),
    "moons": (
        data.load_moons,
        lambda n, noise, seed: sklearn.datasets.make_moons(n, noise=noise, random_state=seed),
    ),
    "blobs": (
        data.load_blobs,
        lambda n, noise, seed: sklearn.datasets.make_blobs(
            n, centers=[(2.0, 2.0), (-2.0, -2.0)], cluster_std=noise, random_state=seed
        ),
    ),
}


@pytest.mark.parametrize("name", list(SKLEARN_TOYS))
def test_sklearn_toys_match_sklearn(name: str) -> None:
    loader, reference = SKLEARN_TOYS[name]
    x, y = reference(101, 0.2, 7)
    ds = loader(101, noise=0.2, seed=7, test_size=0.3, dtype=torch.float64)
    assert (ds.n_train, ds.n_test) == (71, 30)  # round(0.3 · 101) = 30 test points
    assert torch.equal(ds.x_train, torch.from_numpy(x[:71]))
    assert torch.equal(ds.x_test, torch.from_numpy(x[71:]))
    assert torch.equal(torch.cat([ds.y_train, ds.y_test]), torch.from_numpy(y).long())
    by_name = data.load(name, n=101, noise=0.2, seed=7, test_size=30)
    assert by_name.dtype == torch.float32 and by_name.name == name
    assert torch.equal(by_name.x_train, ds.x_train.float())


def test_xor_labels_are_the_sign_xor_and_noise_only_moves_points() -> None:
    clean = data.load_xor(400, noise=0.0, seed=3, dtype=torch.float64)
    noisy = data.load_xor(400, noise=0.1, seed=3, dtype=torch.float64)
    x = clean.x_train
    assert bool((x.abs() <= 1).all())
    assert torch.equal(clean.y_train, ((x[:, 0] > 0) != (x[:, 1] > 0)).long())
    assert torch.equal(noisy.y_train, clean.y_train)  # labels are drawn before the noise
    shift = noisy.x_train - clean.x_train
    assert abs(shift.std().item() - 0.1) < 0.01  # 640 draws: std error ≈ 0.003
    other_seed = data.load_xor(400, seed=4, dtype=torch.float64)
    assert not torch.equal(other_seed.x_train, noisy.x_train)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_spiral_points_lie_on_their_arm(num_classes: int) -> None:
    ds = data.load_spiral(
        301, noise=0.0, num_classes=num_classes, test_size=0, seed=5, dtype=torch.float64
    )
    x, y = ds.x_train.numpy(), ds.y_train.numpy()
    counts = np.bincount(y)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 301
    r = np.hypot(x[:, 0], x[:, 1])
    assert r.max() == pytest.approx(1.0)
    theta = np.arctan2(x[:, 0], x[:, 1])  # x = r sin θ, y = r cos θ
    predicted = 2 * np.pi * 1.75 * r + 2 * np.pi * y / num_classes
    wrapped = np.angle(np.exp(1j * (theta - predicted)))
    assert np.abs(wrapped).max() < 1e-9
    # Seeded: the same seed gives the same points, in the same shuffled order.
    again = data.load_spiral(301, noise=0.0, num_classes=num_classes, test_size=0, seed=5)
    assert torch.equal(again.y_train, ds.y_train)


def test_digits_match_sklearn_split() -> None:
    bunch = sklearn.datasets.load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=360, random_state=11
    )
    ds = data.load_digits(test_size=360, seed=11, dtype=torch.float64)
    assert ds.x_train.shape == (1437, 64) and ds.num_classes == 10
    assert torch.equal(ds.x_train, torch.from_numpy(x_train) / 16)
    assert torch.equal(ds.x_test, torch.from_numpy(x_test) / 16)
    assert torch.equal(ds.y_train, torch.from_numpy(y_train).long())
    assert torch.equal(ds.y_test, torch.from_numpy(y_test).long())
    images = data.load("digits", test_size=0, raw=True, flatten=False)
    assert images.x_train.shape == (1797, 1, 8, 8) and float(images.x_train.max()) == 16.0


def test_mnist1d_defaults_are_the_published_set() -> None:
    ds = data.load_mnist1d()
    reference = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert torch.equal(ds.x_train, torch.from_numpy(reference["x"]).float())
    assert torch.equal(ds.y_test, torch.from_numpy(reference["y_test"]))


def test_mnist1d_options_and_global_state() -> None:
    before, py_state = np.random.get_state(legacy=False), random.getstate()
    ds = data.load("mnist1d", n=200, seed=3, iid_noise_scale=0.1, dtype=torch.float64)
    after = np.random.get_state(legacy=False)  # make_dataset seeds both; both are restored
    assert np.array_equal(after["state"]["key"], before["state"]["key"])
    assert after["state"]["pos"] == before["state"]["pos"] and random.getstate() == py_state
    args = mnist1d.data.get_dataset_args()
    args.num_samples, args.seed, args.iid_noise_scale = 200, 3, 0.1
    reference = mnist1d.data.make_dataset(args)  # its own 0.8 split: 160 / 40
    assert torch.equal(ds.x_train, torch.from_numpy(reference["x"]))
    assert torch.equal(ds.x_test, torch.from_numpy(reference["x_test"]))
    with pytest.raises(ValueError, match="multiple of 10"):
        data.load_mnist1d(205)
    with pytest.raises(ValueError, match="Did you mean 'shear_scale'"):
        data.load("mnist1d", shear_scal=0.5)


# ----------------------------------------------------------------------------- dispatch


def test_load_dispatches_every_name(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist")
    write_mnist(tmp_path / "fashion-mnist")
    small: dict[str, object] = {"n": 100}
    options: dict[str, dict[str, object]] = {
        **{name: small for name in ("circles", "moons", "xor", "blobs", "spiral")},
        "digits": {},
        "mnist": {"root": tmp_path},
        "fashion-mnist": {"root": tmp_path},
        "mnist1d": {"n": 100},
    }
    assert set(options) == set(data.DATASETS)
    for name, kw in options.items():
        ds = data.load(name, **kw)
        assert isinstance(ds, data.Dataset) and ds.name == name
        assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64


def test_unknown_name_or_option() -> None:
    with pytest.raises(ValueError, match=r"'circles', 'moons'.*Did you mean 'spiral'\?"):
        data.load("spirals")
    with pytest.raises(ValueError, match=r"Unknown option 'sed'.*Did you mean 'seed'\?"):
        data.load("xor", sed=1)


# ----------------------------------------------------------------------------- validation


def test_empty_set_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"at least one example. Got shape \(0, 3\)"):
        data.check_dataset(torch.empty(0, 3), torch.empty(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty.x_train must hold at least one example"):
        data.Dataset("empty", torch.empty(0, 2), no_labels(0), torch.zeros(1, 2), no_labels(1), 2)


def test_non_finite_features_give_count_and_first_position() -> None:
    x = torch.zeros(6, 3)
    x[4, 2], x[1, 0], x[5, 1] = float("inf"), float("nan"), float("-inf")
    with pytest.raises(ValueError, match=r"3 non-finite values; the first is x\[1, 0\] = nan"):
        data.check_dataset(x, torch.zeros(6, dtype=torch.int64))


@pytest.mark.parametrize(
    ("labels", "num_classes", "match"),
    [
        ([0, 1, 3, 2, 5], 3, r"labels in \[0, 3\). Got 2 out of range; the first is y\[2\] = 3"),
        ([0, -1, 1, 0, 0], 3, r"Got 1 out of range; the first is y\[1\] = -1"),
        ([0, -2, 7, 0, 0], None, r"labels >= 0. Got 1 out of range; the first is y\[1\] = -2"),
    ],
)
def test_labels_out_of_range(labels: list[int], num_classes: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        data.check_dataset(torch.zeros(5, 2), torch.tensor(labels), num_classes)


def test_features_and_labels_of_different_lengths() -> None:
    with pytest.raises(ValueError, match=r"len\(x\) = 5 and len\(y\) = 4"):
        data.check_dataset(torch.zeros(5, 2), torch.zeros(4, dtype=torch.int64))


def test_types_are_checked() -> None:
    with pytest.raises(TypeError, match="floating-point features"):
        data.check_dataset(torch.zeros(2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="integer class labels"):
        data.check_dataset(torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(TypeError, match="int64 labels"):
        int32 = torch.zeros(2, dtype=torch.int32)
        data.Dataset("t", torch.zeros(2, 2), int32, torch.zeros(0, 2), no_labels(0), 1)
    with pytest.raises(TypeError, match="'dtype' parameter of load_moons"):
        data.load_moons(dtype="float32")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'test_size' parameter of load_xor"):
        data.load_xor(10, test_size=10)


def test_dataset_is_frozen_and_describes_itself() -> None:
    ds = data.load_moons(50, test_size=0.2)
    assert repr(ds) == (
        "Dataset('moons', train=(40, 2), test=(10, 2), num_classes=2, dtype=torch.float32)"
    )
    assert ds.feature_shape == (2,) and ds.num_features == 2 and ds.classes == ("0", "1")
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ds.params["seed"] = 1  # type: ignore[index]
    assert ds.to(dtype=torch.float64).x_test.dtype == torch.float64


# ----------------------------------------------------------------------------- batching


@pytest.mark.parametrize("batch_size", [1, 3, 7, 10, "full"])
@pytest.mark.parametrize("seeds", [0, [0, 1, 2]])
def test_each_epoch_visits_every_index_once(batch_size: data.BatchSize, seeds: object) -> None:
    batcher = data.Batcher(10, batch_size, seeds)  # type: ignore[arg-type]
    for epoch in (0, 1, 5):
        batches = list(batcher.epoch(epoch))
        assert len(batches) == batcher.steps_per_epoch
        rows = torch.cat(batches, dim=-1).reshape(batcher.num_members, 10)
        assert all(b.dtype == torch.int64 for b in batches)
        for row in rows:
            assert row.sort().values.tolist() == list(range(10))


def test_epoch_orders_are_reproducible_and_independent_of_history() -> None:
    batcher = data.Batcher(50, 8, seeds=42)
    for epoch in range(5):  # draw epochs 0..4 first
        list(batcher.epoch(epoch))
    after = torch.cat(list(batcher.epoch(3)))
    fresh = torch.cat(list(data.Batcher(50, 8, seeds=42).epoch(3)))  # a "resumed" run
    assert torch.equal(after, fresh)
    reference = np.random.default_rng(np.random.SeedSequence(42).spawn(4)[3]).permutation(50)
    assert after.tolist() == reference.tolist()
    assert not torch.equal(batcher.order(0), batcher.order(1))  # reshuffled every epoch


def test_stacked_members_follow_their_own_seeds() -> None:
    stacked = data.Batcher(30, 4, seeds=[7, 8, 7])
    batches = list(stacked.epoch(2))
    assert [tuple(b.shape) for b in batches] == [(3, 4)] * 7 + [(3, 2)]
    order = torch.cat(batches, dim=1)
    for m, seed in enumerate((7, 8, 7)):
        alone = torch.cat(list(data.Batcher(30, 4, seeds=seed).epoch(2)))
        assert torch.equal(order[m], alone)  # member m sees what it would see alone
    assert not torch.equal(order[0], order[1]) and torch.equal(order[0], order[2])


def test_full_batch_is_the_identity_and_sgd_takes_n_steps() -> None:
    full = data.Batcher(6, "full", seeds=[1, 2])
    assert full.steps_per_epoch == 1 and full.size == 6
    (only,) = full.epoch(9)
    assert torch.equal(only, torch.arange(6).expand(2, 6))
    sgd = data.Batcher(6, 1, seeds=3)
    assert sgd.steps_per_epoch == 6
    assert [tuple(b.shape) for b in sgd.epoch(0)] == [(1,)] * 6


def test_drop_last() -> None:
    kept, dropped = data.Batcher(10, 3, seeds=5), data.Batcher(10, 3, seeds=5, drop_last=True)
    assert kept.steps_per_epoch == 4 and dropped.steps_per_epoch == 3
    assert [len(b) for b in kept.epoch(0)] == [3, 3, 3, 1]
    assert [len(b) for b in dropped.epoch(0)] == [3, 3, 3]
    assert torch.equal(torch.cat(list(dropped.epoch(0))), kept.order(0)[:9])
    assert data.Batcher(9, 3, drop_last=True).steps_per_epoch == 3  # nothing to drop


@pytest.mark.parametrize("batch_size", [0, 11])
def test_batch_size_out_of_range_names_both_numbers(batch_size: int) -> None:
    with pytest.raises(ValueError, match=rf"\[1, n\] = \[1, 10\]. Got {batch_size} instead"):
        data.Batcher(10, batch_size)


def test_batcher_argument_types() -> None:
    with pytest.raises(TypeError, match="'batch_size' parameter of Batcher"):
        data.Batcher(10, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Did you mean 'full'"):
        data.Batcher(10, "ful")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'seeds' parameter"):
        data.Batcher(10, 2, seeds=[])
    with pytest.raises(ValueError, match="'n' parameter of Batcher"):
        data.Batcher(0, 1)
    with pytest.raises(ValueError, match="'epoch' parameter"):
        list(data.Batcher(10, 2).epoch(-1))


# ----------------------------------------------------------------------------- scaling


def test_standardizer_uses_train_statistics_only() -> None:
    ds = data.load_blobs(200, noise=1.5, seed=2)
    scaled, scaler = data.scale(ds, "standard")
    assert isinstance(scaler, data.Standardizer)
    train = ds.x_train.double().numpy()
    mean, std = train.mean(axis=0), train.std(axis=0)  # numpy, ddof = 0
    np.testing.assert_allclose(scaler.mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(scaler.std.numpy(), std, rtol=1e-12)
    everything = np.concatenate([train, ds.x_test.double().numpy()])
    assert not np.allclose(everything.mean(axis=0), mean, rtol=1e-6)  # the test split differs
    expected = (ds.x_test.double().numpy() - mean) / std
    np.testing.assert_allclose(scaled.x_test.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaled.x_train.double().mean(0).numpy(), 0.0, atol=1e-6)
    assert scaled.params["scaling"] == "standard"
    back = scaler.inverse_transform(scaled.x_test)
    torch.testing.assert_close(back, ds.x_test)


def test_minmax_uses_train_statistics_only() -> None:
    ds = data.load_moons(200, noise=0.3, seed=4)
    scaled, scaler = data.scale(ds, "minmax")
    assert isinstance(scaler, data.MinMaxScaler)
    train = ds.x_train.double().numpy()
    np.testing.assert_array_equal(scaler.data_min.numpy(), train.min(axis=0))
    np.testing.assert_array_equal(scaler.data_max.numpy(), train.max(axis=0))
    assert scaled.x_train.amin(0).tolist() == [0.0, 0.0]
    assert scaled.x_train.amax(0).tolist() == [1.0, 1.0]
    wide = data.MinMaxScaler.fit(ds.x_train, feature_range=(-1.0, 1.0))
    expected = (ds.x_test.double().numpy() - train.min(0)) / np.ptp(train, 0) * 2 - 1
    np.testing.assert_allclose(wide.transform(ds.x_test).numpy(), expected, rtol=1e-5, atol=1e-6)
    reused, same = data.scale(ds, scaler)  # a fitted scaler is applied as it is
    assert same is scaler and torch.equal(reused.x_test, scaled.x_test)


def test_constant_features_do_not_divide_by_zero() -> None:
    x_train = torch.tensor([[0.1, 1.0], [0.1, 3.0], [0.1, 5.0]])  # column 0 is constant
    x_test = torch.tensor([[0.6, 3.0]])
    standard = data.Standardizer.fit(x_train)
    assert standard.constant is not None and standard.constant.tolist() == [True, False]
    assert standard.std[0].item() == 1.0  # documented: a constant feature is only centred
    assert standard.transform(x_train)[:, 0].tolist() == [0.0, 0.0, 0.0]
    assert standard.transform(x_test)[0, 0].item() == pytest.approx(0.5)
    minmax = data.MinMaxScaler.fit(x_train)
    assert minmax.transform(x_train)[:, 0].tolist() == [0.0, 0.0, 0.0]
    assert minmax.transform(x_test)[0].tolist() == pytest.approx([0.5, 0.5])


def test_global_statistics_and_shape_check() -> None:
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    scaler = data.Standardizer.fit(x, per_feature=False)
    assert scaler.mean.shape == ()
    assert scaler.mean.item() == pytest.approx(np.mean(x.double().numpy()))
    assert scaler.std.item() == pytest.approx(np.std(x.double().numpy()))
    assert scaler.transform(x).shape == x.shape
    per_feature = data.Standardizer.fit(x)
    with pytest.raises(ValueError, match=r"feature shape the scaler was fitted on, \(1, 4, 4\)"):
        per_feature.transform(torch.zeros(3, 16))
