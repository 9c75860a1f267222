"""Datasets, found locally first: machines here have no internet.

Every dataset comes back the same way: flattened float32 features in [0, 1], int32 labels,
the first ``validation_size`` training examples held out for validation (as the notebook
did), optionally the training part cut to ``train_limit`` examples for quick runs.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np


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

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


_PROJECT_ROOT = Path(__file__).resolve().parents[1]


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


def _load_mnist(data_path: str) -> tuple[np.ndarray, np.ndarray, str]:
    tried = _mnist_candidates(data_path)
    if data_path and not tried[0].is_file():  # an explicit path is the user's choice: no fallback
        raise DatasetError(f"mnist: {tried[0]} does not exist")
    for path in tried:
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    x, y = f["x_train"], f["y_train"]
            # A truncated or corrupted file fails in zipfile (BadZipFile, EOFError) or zlib.
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise DatasetError(f"{path}: not a readable mnist.npz ({type(exc).__name__}: {exc})") from None
            _check_images("mnist", str(path), x, y, 1000)
            return x, y, str(path)
    try:
        import keras

        (x, y), _ = keras.datasets.mnist.load_data()
        return x, y, "keras.datasets.mnist (downloaded)"
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


def _load_fashion(data_path: str) -> tuple[np.ndarray, np.ndarray, str]:
    tried = _fashion_candidates(data_path)
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    if data_path:
        tried = tried[:1]  # an explicit folder is the user's choice: no fallback
    for folder in tried:
        files = [next((folder / (n + s) for s in (".gz", "") if (folder / (n + s)).is_file()), None)
                 for n in names]
        if all(files):
            try:
                x, y = _read_idx(files[0]), _read_idx(files[1])
            except (OSError, EOFError, zlib.error) as exc:
                raise DatasetError(f"{folder}: cannot read Fashion-MNIST ({exc})") from None
            _check_images("fashion_mnist", str(folder), x, y, 1000)
            return x, y, str(folder)
    if data_path:
        raise DatasetError(f"fashion_mnist: no IDX files ({', '.join(names)}) in {tried[0]}")
    try:
        import keras

        (x, y), _ = keras.datasets.fashion_mnist.load_data()
        return x, y, "keras.datasets.fashion_mnist (downloaded)"
    except Exception as exc:  # noqa: BLE001
        looked = ", ".join(str(p) for p in tried)
        raise DatasetError(
            f"fashion_mnist: not found locally (looked in {looked}) and the download failed "
            f"({exc}); on Debian: apt-get install dataset-fashion-mnist"
        ) from None


def _load_digits() -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))  # fixed: classes interleave
    x = (bunch.data[order] / 16.0).astype(np.float32)
    return x, bunch.target[order].astype(np.int32), "sklearn.datasets.load_digits (bundled)"


def make_synthetic(n: int = 12000, n_features: int = 64, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, offline 10-class problem: Gaussian clusters pushed through a random tanh map.

    Linearly inseparable enough that depth and normalization matter, small enough for tests.
    """
    rng = np.random.default_rng(2024)
    centers = rng.normal(0, 1.0, size=(n_classes, 16))
    y = rng.integers(0, n_classes, size=n)
    latent = centers[y] + rng.normal(0, 0.9, size=(n, 16))
    mix = rng.normal(0, 1 / 4, size=(16, n_features))
    x = np.tanh(latent @ mix)
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype(np.float32), y.astype(np.int32)


@lru_cache(maxsize=8)
def _raw(name: str, data_path: str) -> tuple[np.ndarray, np.ndarray, str]:
    if name == "mnist":
        x, y, src = _load_mnist(data_path)
    elif name == "fashion_mnist":
        x, y, src = _load_fashion(data_path)
    elif name == "digits":
        return _load_digits()
    elif name == "synthetic":
        x, y = make_synthetic()
        return x, y, "bench.datasets.make_synthetic (generated)"
    else:
        raise DatasetError(f"unknown dataset {name!r}")
    x = (x.reshape(len(x), -1).astype(np.float32) / 255.0)
    return x, y.astype(np.int32), src


def load_dataset(name: str, validation_size: int, train_limit: int = 0, data_path: str = "") -> Dataset:
    """Load ``name`` and split it: the first ``validation_size`` examples validate, the rest train."""
    x, y, source = _raw(name, data_path)
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
        source=source,
    )
