"""Long-tailed versions of the standard image benchmarks: CIFAR-10/100, MNIST, Fashion-MNIST.

A long-tailed training set keeps ``n_k`` images of class ``k``, chosen at random with a seed:

* ``"exp"``: ``n_k = floor(n_max * ratio**(-k / (K - 1)))``, ``k = 0..K-1``, the profile of
  CIFAR-10-LT and CIFAR-100-LT (Cao et al., 2019, LDAM-DRW; Cui et al., 2019): with ratio 100,
  CIFAR-10-LT has 5000, 2997, ..., 50 images, 12,406 in all;
* ``"step"``: the first ``K - K // 2`` classes keep ``n_max`` images, the others
  ``floor(n_max / ratio)`` (Buda et al., 2018; the two-group profile of the book).

The subsampling works on a plain label array (:func:`longtail_counts`,
:func:`longtail_indices`), so the index list is reproducible and can be saved with the
results. The datasets are read from their standard on-disk formats without torchvision
(:func:`read_cifar`, :func:`read_mnist`): CIFAR's python batches through an unpickler that only
admits numpy arrays (never an arbitrary pickle), MNIST's IDX files directly. torchvision (the
optional extra ``nclab[vision]``) is needed only to *download* them (``download=True``), and
:func:`long_tailed_subset` subsamples any torchvision-style dataset.

:func:`write_cifar` and :func:`synthetic_images` write small data in CIFAR's format, for tests
and for runs without the real data.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from typing import Callable, Sequence

import numpy as np
import torch

from ._validate import choice, whole
from .data import _check_ratio, check_counts

__all__ = [
    "DATASETS",
    "longtail_counts",
    "longtail_indices",
    "read_cifar",
    "read_mnist",
    "ImageArrays",
    "long_tailed",
    "dataset_labels",
    "long_tailed_subset",
    "synthetic_images",
    "write_cifar",
]

#: Name -> (folder under ``root``, number of classes, torchvision class, download hint).
DATASETS = {
    "cifar10": ("cifar-10-batches-py", 10, "CIFAR10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-python", 100, "CIFAR100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    "mnist": ("MNIST/raw", 10, "MNIST", "the four *-ubyte files of MNIST"),
    "fashion-mnist": ("FashionMNIST/raw", 10, "FashionMNIST", "the four *-ubyte files of Fashion-MNIST"),
}

#: Per-channel mean and standard deviation of each training set, for normalisation.
_NORMALIZE = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
}


# ----------------------------------------------------------------------------- the profiles


def longtail_counts(K: int, n_max: int, ratio: float, profile: str = "exp") -> np.ndarray:
    """Images per class of a long-tailed set: exponential or step profile (module docstring).

    Parameters
    ----------
    K : int
        Number of classes (>= 2).
    n_max : int
        Images of the largest class (>= 1).
    ratio : float
        Imbalance ratio ``n_max / n_min`` (>= 1).
    profile : {"exp", "step"}

    Returns
    -------
    numpy.ndarray, shape (K,), int64, non-increasing, every entry >= 1
    """
    K = whole(K, "K", 2)
    n_max = whole(n_max, "n_max", 1)
    r = _check_ratio(ratio)
    profile = choice(profile, "profile", ("exp", "step"))
    if profile == "exp":
        # floor, as in the public code of Cao et al. (2019) that fixed the published CIFAR-LT sets
        # (nclab.data.long_tailed rounds instead); the tiny offset guards exact powers such as
        # 5000 * 0.01 = 50 against landing just below an integer
        counts = np.floor(n_max * r ** (-np.arange(K) / (K - 1)) + 1e-9)
    else:
        counts = np.where(np.arange(K) < K - K // 2, n_max, np.floor(n_max / r + 1e-9))
    return np.maximum(counts, 1).astype(np.int64)


def _labels_array(labels: Sequence[int] | np.ndarray, num_classes: int | None) -> tuple[np.ndarray, int]:
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or y.dtype.kind not in "iu":
        raise ValueError(f"labels must be a non-empty one-dimensional integer array; got dtype {y.dtype}, shape {y.shape}")
    K = int(y.max()) + 1 if num_classes is None else whole(num_classes, "num_classes", 2)
    if y.min() < 0 or y.max() >= K:
        raise ValueError(f"labels must be class indices 0..{K - 1}; got range [{int(y.min())}, {int(y.max())}]")
    return y.astype(np.int64), K


def longtail_indices(
    labels: Sequence[int] | np.ndarray,
    ratio: float,
    *,
    profile: str = "exp",
    seed: int = 0,
    n_max: int | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """Indices of a reproducible long-tailed subset of a labelled set.

    Class ``k`` keeps ``longtail_counts(K, n_max, ratio, profile)[k]`` of its samples, drawn
    without replacement by ``numpy.random.default_rng(seed)`` (one permutation per class, in
    class order), so the same labels, ratio, profile and seed give the same list everywhere.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Class indices ``0..K-1`` of the full set.
    ratio : float
        Imbalance ratio (>= 1).
    profile : {"exp", "step"}
    seed : int, default 0
    n_max : int, optional
        Images of class 0; default the size of the smallest class of ``labels`` (5000 for
        CIFAR-10, 500 for CIFAR-100, 5421 for MNIST).
    num_classes : int, optional
        ``K``; default ``max(labels) + 1``.

    Returns
    -------
    numpy.ndarray, shape (sum of the counts,), int64
        Sorted indices into ``labels``.

    Raises
    ------
    ValueError
        Bad labels or parameters, a class with no samples, or a class with fewer samples
        than its count.
    """
    y, K = _labels_array(labels, num_classes)
    seed = whole(seed, "seed", 0)
    available = np.bincount(y, minlength=K)
    if np.any(available == 0):
        raise ValueError(f"classes {np.flatnonzero(available == 0).tolist()} have no samples in labels")
    n_max = int(available.min()) if n_max is None else whole(n_max, "n_max", 1)
    counts = longtail_counts(K, n_max, ratio, profile)
    short = np.flatnonzero(counts > available)
    if short.size:
        k = int(short[0])
        raise ValueError(f"class {k} has {int(available[k])} samples but the profile asks for {int(counts[k])}; lower n_max")
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == k))[: counts[k]] for k in range(K)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


# ----------------------------------------------------------------------------- on-disk formats


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, and nothing else (no code can run)."""

    _reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array reconstructor
    _allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return self._reconstruct
        if (module, name) in self._allowed:
            return self._allowed[module, name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays, lists and strings")


def _load_batch(path: str) -> dict:
    with open(path, "rb") as f:
        batch = _ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR batch (a dict); got {type(batch).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}


def _missing(name: str, root: str, files: list[str]) -> FileNotFoundError:
    folder, _, tv_class, hint = DATASETS[name]
    return FileNotFoundError(
        f"{name} is not in {os.path.join(root, folder)} (missing {files[0]}{' ...' if len(files) > 1 else ''}). "
        f"Pass download=True (needs torchvision: pip install 'nclab[vision]'; torchvision.datasets.{tv_class} "
        f"writes this layout), or unpack {hint} into {os.path.join(root, folder)}"
    )


def read_cifar(root: str | os.PathLike, name: str = "cifar10", *, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR-10 or CIFAR-100 from the python version's batches under ``root``.

    The layout is the one the archives unpack to and torchvision writes:
    ``root/cifar-10-batches-py/data_batch_1..5, test_batch`` and
    ``root/cifar-100-python/train, test`` (fine labels). The pickled batches are read by an
    unpickler that admits only numpy arrays, lists and strings.

    Returns
    -------
    images : numpy.ndarray, shape (N, 32, 32, 3), uint8
    labels : numpy.ndarray, shape (N,), int64

    Raises
    ------
    FileNotFoundError
        If a batch is missing (the message says how to get the data).
    ValueError
        If a file is not a CIFAR batch.
    """
    name = choice(name, "name", ("cifar10", "cifar100"))
    root = os.fspath(root)
    folder = os.path.join(root, DATASETS[name][0])
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    else:
        files = ["train" if train else "test"]
    missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise _missing(name, root, missing)
    images, labels = [], []
    key = "labels" if name == "cifar10" else "fine_labels"
    for f in files:
        batch = _load_batch(os.path.join(folder, f))
        if "data" not in batch or key not in batch:
            raise ValueError(f"{os.path.join(folder, f)} is not a {name} batch: it needs 'data' and {key!r}")
        data = np.asarray(batch["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{os.path.join(folder, f)}: 'data' must be uint8 of shape (n, 3072); got {data.dtype} {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[key], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def _read_idx(path: str, ndim: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, dims = struct.unpack(">HBB", raw[:4]), raw[3]
    if magic[0] != 0 or magic[1] != 0x08 or dims != ndim:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


def read_mnist(root: str | os.PathLike, name: str = "mnist", *, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST or Fashion-MNIST from its IDX files (``root/MNIST/raw``, ``root/FashionMNIST/raw``).

    Plain or gzipped (``.gz``) files are read, as the archives and torchvision leave them.

    Returns
    -------
    images : numpy.ndarray, shape (N, 28, 28, 1), uint8
    labels : numpy.ndarray, shape (N,), int64
    """
    name = choice(name, "name", ("mnist", "fashion-mnist"))
    root = os.fspath(root)
    folder = os.path.join(root, DATASETS[name][0])
    prefix = "train" if train else "t10k"
    paths = []
    for stem in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        found = [p for p in (os.path.join(folder, stem), os.path.join(folder, stem + ".gz")) if os.path.isfile(p)]
        if not found:
            raise _missing(name, root, [stem])
        paths.append(found[0])
    images, labels = _read_idx(paths[0], 3), _read_idx(paths[1], 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images[..., None].copy(), labels.astype(np.int64)


# ----------------------------------------------------------------------------- datasets


class ImageArrays(torch.utils.data.Dataset):
    """Images held as a uint8 array, served as normalised float tensors with their labels.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, H, W, C), uint8
    labels : numpy.ndarray, shape (N,), int
    mean, std : sequence of C floats, optional
        Per-channel normalisation after scaling to [0, 1]; none if omitted.
    transform : callable, optional
        Applied to each (C, H, W) float tensor after normalisation (e.g. augmentation).

    Attributes
    ----------
    images, labels, targets
        ``targets`` is ``labels`` as a list, as in torchvision's datasets.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, transform: Callable | None = None):  # fmt: skip
        images = np.asarray(images)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 of shape (N, H, W, C); got {images.dtype} {images.shape}")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        if self.labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape (N,) = ({images.shape[0]},); got {self.labels.shape}")
        C = images.shape[-1]
        self.mean = torch.tensor(mean if mean is not None else [0.0] * C, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std if std is not None else [1.0] * C, dtype=torch.float32)[:, None, None]
        self.transform = transform

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __len__(self) -> int:
        return int(self.labels.size)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images at once, normalised, shape (N, C, H, W) float32, and the labels (N,).

        Without ``transform``: for training loops that keep the whole (small) set on a device.
        """
        x = torch.from_numpy(np.ascontiguousarray(self.images.transpose(0, 3, 1, 2))).float() / 255.0
        return (x - self.mean) / self.std, torch.from_numpy(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(np.ascontiguousarray(self.images[i].transpose(2, 0, 1))).float() / 255.0
        x = (x - self.mean) / self.std
        return (self.transform(x) if self.transform is not None else x), int(self.labels[i])


def _download(name: str, root: str, train: bool) -> None:
    try:
        import torchvision
    except ImportError as exc:  # the optional extra
        raise ImportError(
            f"downloading {name} needs torchvision, the optional extra nclab[vision]: "
            "pip install 'nclab[vision]' (a torchvision built for your torch)"
        ) from exc
    getattr(torchvision.datasets, DATASETS[name][2])(root, train=train, download=True)


def long_tailed(
    name: str,
    root: str | os.PathLike,
    *,
    ratio: float = 100.0,
    profile: str = "exp",
    seed: int = 0,
    train: bool = True,
    n_max: int | None = None,
    download: bool = False,
    normalize: bool = True,
    transform: Callable | None = None,
) -> ImageArrays:
    """A long-tailed version of CIFAR-10, CIFAR-100, MNIST or Fashion-MNIST.

    The data are read from ``root`` (:func:`read_cifar`, :func:`read_mnist`); with
    ``download=True`` torchvision fetches them first if they are missing. The subset is
    :func:`longtail_indices` of the labels; ``ratio=1`` keeps ``n_max`` images of every class
    (the usual balanced test set: ``train=False, ratio=1``).

    Parameters
    ----------
    name : {"cifar10", "cifar100", "mnist", "fashion-mnist"}
    root : str or path
        Folder holding (or receiving) the data.
    ratio, profile, seed, n_max
        As in :func:`longtail_indices`.
    train : bool, default True
        Training or test split.
    download : bool, default False
        Fetch missing data with torchvision (the extra ``nclab[vision]``).
    normalize : bool, default True
        Normalise each channel with the full training set's mean and standard deviation.
    transform : callable, optional
        Applied to each normalised (C, H, W) tensor, e.g. augmentation.

    Returns
    -------
    ImageArrays
        With extra attributes ``indices`` (into the full split), ``counts`` (K,), ``name``,
        ``ratio``, ``profile`` and ``seed``.

    Raises
    ------
    FileNotFoundError
        Data missing and ``download=False``; the message says where to put them.
    ImportError
        ``download=True`` without torchvision.
    """
    name = choice(name, "name", tuple(DATASETS))
    root = os.fspath(root)
    reader = read_cifar if name.startswith("cifar") else read_mnist
    try:
        images, labels = reader(root, name, train=train)
    except FileNotFoundError:
        if not download:
            raise
        _download(name, root, train)
        images, labels = reader(root, name, train=train)
    idx = longtail_indices(labels, ratio, profile=profile, seed=seed, n_max=n_max, num_classes=DATASETS[name][1])
    mean, std = _NORMALIZE[name] if normalize else (None, None)
    ds = ImageArrays(images[idx], labels[idx], mean=mean, std=std, transform=transform)
    ds.indices, ds.counts = idx, np.bincount(labels[idx], minlength=DATASETS[name][1])
    ds.name, ds.ratio, ds.profile, ds.seed = name, float(ratio), profile, int(seed)
    return ds


def dataset_labels(dataset: torch.utils.data.Dataset) -> np.ndarray:
    """Labels of a map-style dataset: its ``targets`` or ``labels`` attribute, else read item by item.

    Reading item by item (datasets such as torchvision's ``FakeData``) loads every sample once.

    Returns
    -------
    numpy.ndarray, shape (len(dataset),), int64
    """
    for attr in ("targets", "labels"):
        values = getattr(dataset, attr, None)
        if values is not None and not callable(values):
            y = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values)
            if y.ndim == 1 and y.size == len(dataset):
                return _labels_array(y, None)[0]
    return _labels_array(np.array([int(dataset[i][1]) for i in range(len(dataset))]), None)[0]


def long_tailed_subset(
    dataset: torch.utils.data.Dataset,
    ratio: float,
    *,
    profile: str = "exp",
    seed: int = 0,
    n_max: int | None = None,
    num_classes: int | None = None,
) -> torch.utils.data.Subset:
    """A long-tailed ``torch.utils.data.Subset`` of any labelled map-style dataset.

    E.g. a torchvision dataset with its own transforms. Labels come from
    :func:`dataset_labels`; the indices from :func:`longtail_indices` (``subset.indices``).
    """
    idx = longtail_indices(dataset_labels(dataset), ratio, profile=profile, seed=seed, n_max=n_max, num_classes=num_classes)
    return torch.utils.data.Subset(dataset, idx.tolist())


# ----------------------------------------------------------------------------- small data in the same format


def synthetic_images(
    n: Sequence[int], *, size: int = 32, channels: int = 3, noise: float = 0.35, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Learnable random images: one smooth template per class plus pixel noise.

    Parameters
    ----------
    n : sequence of int, shape (K,)
        Images per class.
    size, channels : int
        Image shape ``(size, size, channels)``.
    noise : float
        Standard deviation of the noise, relative to the templates' spread.
    seed : int

    Returns
    -------
    images : numpy.ndarray, shape (N, size, size, channels), uint8
    labels : numpy.ndarray, shape (N,), int64, classes in order
    """
    counts = check_counts(n).astype(np.int64)
    size, channels = whole(size, "size", 4), whole(channels, "channels", 1)
    rng = np.random.default_rng(whole(seed, "seed", 0))
    coarse = rng.standard_normal((len(counts), 4, 4, channels))
    templates = np.repeat(np.repeat(coarse, size // 4 + 1, axis=1), size // 4 + 1, axis=2)[:, :size, :size]
    labels = np.repeat(np.arange(len(counts)), counts)
    x = templates[labels] + noise * rng.standard_normal((labels.size, size, size, channels))
    return np.clip(128 + 40 * x, 0, 255).astype(np.uint8), labels.astype(np.int64)


def write_cifar(root: str | os.PathLike, images: np.ndarray, labels: np.ndarray, *, name: str = "cifar10",
                train: bool = True) -> str:  # fmt: skip
    """Write images in CIFAR's python on-disk format, as :func:`read_cifar` and torchvision read it.

    CIFAR-10's training split is written as five batches (``data_batch_1..5``), its test split
    as ``test_batch``; CIFAR-100's as ``train`` or ``test`` with fine and coarse labels.

    Parameters
    ----------
    root : str or path
    images : numpy.ndarray, shape (N, 32, 32, 3), uint8
    labels : numpy.ndarray, shape (N,), int
    name : {"cifar10", "cifar100"}
    train : bool

    Returns
    -------
    str
        The folder written.
    """
    name = choice(name, "name", ("cifar10", "cifar100"))
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must be uint8 of shape (N, 32, 32, 3); got {images.dtype} {images.shape}")
    labels = np.asarray(labels, dtype=np.int64)
    folder = os.path.join(os.fspath(root), DATASETS[name][0])
    os.makedirs(folder, exist_ok=True)
    flat = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    if name == "cifar10":
        parts = np.array_split(np.arange(len(images)), 5) if train else [np.arange(len(images))]
        files = [f"data_batch_{i + 1}" for i in range(5)] if train else ["test_batch"]
    else:
        parts, files = [np.arange(len(images))], ["train" if train else "test"]
    for part, f in zip(parts, files):
        # str keys, as the original (Python 2) batches load with encoding="latin1", which is how
        # torchvision and read_cifar open them; protocol 4 pickles arrays through _reconstruct
        batch = {"batch_label": f, "data": flat[part], "filenames": [f"{i}.png" for i in part]}
        if name == "cifar10":
            batch["labels"] = labels[part].tolist()
        else:
            batch["fine_labels"], batch["coarse_labels"] = labels[part].tolist(), (labels[part] // 5).tolist()
        with open(os.path.join(folder, f), "wb") as fh:
            pickle.dump(batch, fh, protocol=4)
    return folder
