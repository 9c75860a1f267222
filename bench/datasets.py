"""Datasets, found locally first: machines here have no internet.

Every dataset comes back the same way: flattened float32 features in [0, 1], int32 labels,
the first ``validation_size`` training examples held out for validation (as the notebook
did), optionally the training part cut to ``train_limit`` examples for quick runs, and a
held-out **test split** that neither training nor validation ever sees: the official test
split of MNIST and Fashion-MNIST (10,000 images each); for digits, the last
``DIGITS_TEST_SIZE`` examples of its fixed shuffle (so 1,500 remain for training and
validation); for synthetic, ``SYNTHETIC_TEST_SIZE`` further draws from the same
distribution (the 12,000 training examples are unchanged).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.factors import DATASETS


class DatasetError(RuntimeError):
    """A dataset that cannot be found or read; the message says where we looked."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # float32, (n_train, n_features)
    y_train: np.ndarray  # int32, (n_train,)
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    source: str  # where the data came from, recorded in the report's methods
    x_test: np.ndarray  # the held-out test split: evaluated once per run, never for choices
    y_test: np.ndarray
    fingerprint: str = ""  # hash of the arrays of all three splits: the run's data source

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


_PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Held-out test examples of the datasets that ship no test split (declared in bench.factors).
DIGITS_TEST_SIZE = DATASETS["digits"].test_size
SYNTHETIC_TEST_SIZE = DATASETS["synthetic"].test_size


@dataclass(frozen=True)
class _Raw:
    """A dataset as read: the training pool (validation comes from it) and the test split."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.x, self.y, self.x_test, self.y_test):
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()[:16]


def _mnist_candidates(data_path: str) -> list[Path]:
    """Where to look for mnist.npz, in order: the user's path, BNBENCH_DATA_DIR, shared/, Keras' cache."""
    found: list[Path] = []
    if data_path:
        p = Path(data_path).expanduser()
        found.append(p / "mnist.npz" if p.is_dir() else p)
    if os.environ.get("BNBENCH_DATA_DIR"):
        found.append(Path(os.environ["BNBENCH_DATA_DIR"]) / "mnist.npz")
    found += [
        _PROJECT_ROOT.parent / "shared" / "data" / "mnist.npz",
        Path.cwd().parent / "shared" / "data" / "mnist.npz",
        Path.home() / ".keras" / "datasets" / "mnist.npz",
    ]
    return list(dict.fromkeys(found))


def _fashion_candidates(data_path: str) -> list[Path]:
    found: list[Path] = []
    if data_path:
        found.append(Path(data_path).expanduser())
    if os.environ.get("BNBENCH_DATA_DIR"):
        found.append(Path(os.environ["BNBENCH_DATA_DIR"]) / "fashion-mnist")
    found += [
        Path("/usr/share/datasets/fashion-mnist"),
        Path.home() / ".keras" / "datasets" / "fashion-mnist",
    ]
    return list(dict.fromkeys(found))


def _check_images(name: str, source: str, x: np.ndarray, y: np.ndarray, n_min: int) -> None:
    if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y) or len(x) < n_min:
        raise DatasetError(
            f"{source}: {name} has wrong shapes (images {x.shape}, labels {y.shape}); "
            f"expected (N, 28, 28) images and N labels with N >= {n_min}"
        )


def _load_mnist(data_path: str) -> _Raw:
    tried = _mnist_candidates(data_path)
    if data_path and not tried[0].is_file():  # an explicit path is the user's choice: no fallback
        raise DatasetError(f"mnist: {tried[0]} does not exist")
    for path in tried:
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    x, y = f["x_train"], f["y_train"]
                    _check_images("mnist", str(path), x, y, 1000)
                    missing = [k for k in ("x_test", "y_test") if k not in f.files]
                    if missing:
                        raise DatasetError(f"{path}: mnist.npz has no test split ({', '.join(missing)} missing)")
                    xt, yt = f["x_test"], f["y_test"]
            # A truncated or corrupted file fails in zipfile (BadZipFile, EOFError) or zlib.
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise DatasetError(f"{path}: not a readable mnist.npz ({type(exc).__name__}: {exc})") from None
            _check_images("mnist test split", str(path), xt, yt, 100)
            return _Raw(x, y, xt, yt, str(path))
    try:
        import keras

        (x, y), (xt, yt) = keras.datasets.mnist.load_data()
        return _Raw(x, y, xt, yt, "keras.datasets.mnist (downloaded)")
    except Exception as exc:  # noqa: BLE001 - any download failure means "not available"
        looked = ", ".join(str(p) for p in tried)
        raise DatasetError(
            f"mnist: not found locally (looked in {looked}) and the download failed ({exc}); "
            "put mnist.npz in one of those places or pass grid.data_path"
        ) from None


def _read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or raw): the format MNIST and Fashion-MNIST ship in."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: IDX header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def _load_fashion(data_path: str) -> _Raw:
    tried = _fashion_candidates(data_path)
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if data_path:
        tried = tried[:1]  # an explicit folder is the user's choice: no fallback
    for folder in tried:
        files = [next((folder / (n + s) for s in (".gz", "") if (folder / (n + s)).is_file()), None)
                 for n in names]
        if all(files):
            try:
                x, y, xt, yt = (_read_idx(f) for f in files)
            except (OSError, EOFError, zlib.error) as exc:
                raise DatasetError(f"{folder}: cannot read Fashion-MNIST ({exc})") from None
            _check_images("fashion_mnist", str(folder), x, y, 1000)
            _check_images("fashion_mnist test split", str(folder), xt, yt, 100)
            return _Raw(x, y, xt, yt, str(folder))
    if data_path:
        raise DatasetError(f"fashion_mnist: no IDX files ({', '.join(names)}) in {tried[0]}")
    try:
        import keras

        (x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()
        return _Raw(x, y, xt, yt, "keras.datasets.fashion_mnist (downloaded)")
    except Exception as exc:  # noqa: BLE001
        looked = ", ".join(str(p) for p in tried)
        raise DatasetError(
            f"fashion_mnist: not found locally (looked in {looked}) and the download failed "
            f"({exc}); on Debian: apt-get install dataset-fashion-mnist"
        ) from None


def _load_digits(data_path: str = "") -> _Raw:
    """sklearn's 1,797 digits in a fixed shuffle; the last DIGITS_TEST_SIZE are the test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))  # fixed: classes interleave
    x = (bunch.data[order] / 16.0).astype(np.float32)
    y = bunch.target[order].astype(np.int32)
    k = len(y) - DIGITS_TEST_SIZE
    return _Raw(x[:k], y[:k], x[k:], y[k:], "sklearn.datasets.load_digits (bundled)")


def make_synthetic(n: int = 12000, n_features: int = 64, n_classes: int = 10,
                   n_test: int = 0) -> tuple[np.ndarray, ...]:
    """A fixed, offline 10-class problem: Gaussian clusters pushed through a random tanh map.

    Linearly inseparable enough that depth and normalization matter, small enough for tests.
    With ``n_test``, also ``n_test`` further draws from the same distribution (own random
    stream, scaled like the first ``n``, so those stay exactly as before): x, y, x_test, y_test.
    """
    rng = np.random.default_rng(2024)
    centers = rng.normal(0, 1.0, size=(n_classes, 16))
    y = rng.integers(0, n_classes, size=n)
    latent = centers[y] + rng.normal(0, 0.9, size=(n, 16))
    mix = rng.normal(0, 1 / 4, size=(16, n_features))
    x = np.tanh(latent @ mix)
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo)
    if not n_test:
        return x.astype(np.float32), y.astype(np.int32)
    test_rng = np.random.default_rng([2024, 1])
    yt = test_rng.integers(0, n_classes, size=n_test)
    xt = np.clip((np.tanh((centers[yt] + test_rng.normal(0, 0.9, size=(n_test, 16))) @ mix) - lo) / (hi - lo), 0, 1)
    return x.astype(np.float32), y.astype(np.int32), xt.astype(np.float32), yt.astype(np.int32)


def _load_synthetic(data_path: str = "") -> _Raw:
    return _Raw(*make_synthetic(n_test=SYNTHETIC_TEST_SIZE), "bench.datasets.make_synthetic (generated)")


@lru_cache(maxsize=8)
def _raw(name: str, data_path: str) -> tuple[_Raw, str]:
    """The dataset as float32 features in [0, 1] and its fingerprint (cached per process).

    The loader is the function of this module that ``bench.factors.DATASETS`` names.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}")
    info = DATASETS[name]
    raw = globals()[info.loader](data_path)
    fingerprint = raw.fingerprint()  # of the arrays as read (uint8 images: 4x less to hash)
    if info.uint8_images:
        def scale(a: np.ndarray) -> np.ndarray:
            return a.reshape(len(a), -1).astype(np.float32) / 255.0

        raw = _Raw(scale(raw.x), raw.y.astype(np.int32), scale(raw.x_test), raw.y_test.astype(np.int32),
                   raw.source)
    return raw, fingerprint


def load_dataset(name: str, validation_size: int, train_limit: int = 0, data_path: str = "") -> Dataset:
    """Load ``name`` and split it: the first ``validation_size`` examples validate, the rest train.

    The test split is always the dataset's whole held-out test split.
    """
    raw, fingerprint = _raw(name, data_path)
    x, y = raw.x, raw.y
    if validation_size >= len(x):
        raise DatasetError(f"{name}: validation_size {validation_size} >= {len(x)} examples")
    x_train, y_train = x[validation_size:], y[validation_size:]
    if train_limit:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train),
        y_train=np.ascontiguousarray(y_train),
        x_val=np.ascontiguousarray(x[:validation_size]),
        y_val=np.ascontiguousarray(y[:validation_size]),
        n_classes=int(y.max()) + 1,
        source=raw.source,
        x_test=np.ascontiguousarray(raw.x_test),
        y_test=np.ascontiguousarray(raw.y_test),
        fingerprint=hashlib.sha256(f"{fingerprint}|{validation_size}|{train_limit}".encode()).hexdigest()[:16],
    )
