"""Long-tailed benchmarks: profiles, reproducible index lists, the on-disk formats, datasets."""

import gzip
import os
import pickle
import struct
import sys

import numpy as np
import pytest
import torch

from nclab import longtail as lt

pytestmark = pytest.mark.usefixtures("one_thread")


def _torchvision():
    """torchvision, or a skip: it is the optional extra nclab[vision], absent from the pins.

    A torchvision built for another torch fails on import with a RuntimeError (an operator it
    registers does not exist), which ``pytest.importorskip`` would not catch.
    """
    try:
        import torchvision
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"torchvision (nclab[vision]) is not usable here: {exc}")
    return torchvision


# ----------------------------------------------------------------------------- profiles and indices


@pytest.mark.parametrize(
    "K, n_max, ratio, total",
    # the sizes of the published long-tailed CIFAR training sets (Cao et al. 2019; Cui et al. 2019)
    [(10, 5000, 100, 12406), (10, 5000, 50, 13996), (10, 5000, 10, 20431),
     (100, 500, 100, 10847), (100, 500, 50, 12608), (100, 500, 10, 19573)],
)  # fmt: skip
def test_exponential_counts_give_the_published_cifar_lt_sizes(K, n_max, ratio, total):
    c = lt.longtail_counts(K, n_max, ratio)
    assert c.sum() == total and c[0] == n_max and c[-1] == n_max // ratio
    assert np.all(np.diff(c) <= 0) and c.dtype == np.int64


def test_step_counts_and_ratio_one():
    assert lt.longtail_counts(10, 5000, 100, "step").tolist() == [5000] * 5 + [50] * 5
    assert lt.longtail_counts(5, 100, 3, "step").tolist() == [100] * 3 + [33] * 2
    assert lt.longtail_counts(4, 7, 1).tolist() == [7] * 4
    assert lt.longtail_counts(3, 5, 1000).tolist() == [5, 1, 1]  # never below one image


@pytest.mark.parametrize(
    "kw, match",
    [(dict(ratio=0.5), "ratio"), (dict(ratio=float("nan")), "ratio"), (dict(ratio="many"), "ratio"),
     (dict(K=1), "K"), (dict(n_max=0), "n_max"), (dict(profile="linear"), "profile")],
)  # fmt: skip
def test_counts_reject_bad_parameters(kw, match):
    args = dict(K=10, n_max=50, ratio=10, profile="exp") | kw
    with pytest.raises(ValueError, match=match):
        lt.longtail_counts(**args)


def test_indices_are_reproducible_and_follow_the_profile():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(5), [60, 55, 70, 58, 65]))
    idx = lt.longtail_indices(labels, 10, seed=3)
    assert np.array_equal(idx, lt.longtail_indices(labels, 10, seed=3))
    assert not np.array_equal(idx, lt.longtail_indices(labels, 10, seed=4))
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    counts = np.bincount(labels[idx], minlength=5)
    assert counts.tolist() == lt.longtail_counts(5, 55, 10).tolist()  # n_max: the smallest class
    step = lt.longtail_indices(labels, 5, profile="step", n_max=40, seed=0)
    assert np.bincount(labels[step]).tolist() == [40, 40, 40, 8, 8]


def test_indices_reject_impossible_requests():
    labels = np.repeat(np.arange(3), [10, 10, 4])
    with pytest.raises(ValueError, match="class 2 has 4 samples but the profile asks for 5"):
        lt.longtail_indices(labels, 2, n_max=10, profile="step")
    with pytest.raises(ValueError, match=r"classes \[3, 4\] have no samples"):
        lt.longtail_indices(labels, 2, num_classes=5)
    with pytest.raises(ValueError, match="class indices 0..1"):
        lt.longtail_indices(labels, 2, num_classes=2)
    with pytest.raises(ValueError, match="integer"):
        lt.longtail_indices(labels.astype(float), 2)


# ----------------------------------------------------------------------------- on-disk formats


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("train", [True, False])
def test_cifar_round_trip(tmp_path, name, train):
    images, labels = lt.synthetic_images([7, 5, 3], seed=1)
    folder = lt.write_cifar(tmp_path, images, labels, name=name, train=train)
    assert os.path.basename(folder) == lt.DATASETS[name][0]
    X, y = lt.read_cifar(tmp_path, name, train=train)
    assert np.array_equal(X, images) and np.array_equal(y, labels) and X.dtype == np.uint8


def test_cifar_reader_refuses_anything_but_arrays(tmp_path):
    images, labels = lt.synthetic_images([4, 4], seed=0)
    folder = lt.write_cifar(tmp_path, images, labels)

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    with open(os.path.join(folder, "data_batch_3"), "wb") as f:
        pickle.dump({"data": Payload(), "labels": [0]}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        lt.read_cifar(tmp_path)
    with open(os.path.join(folder, "data_batch_3"), "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(ValueError, match="not a CIFAR batch"):
        lt.read_cifar(tmp_path)


def test_missing_data_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"download=True .*nclab\[vision\].*cifar-10-python.tar.gz"):
        lt.read_cifar(tmp_path)
    with pytest.raises(FileNotFoundError, match="FashionMNIST"):
        lt.long_tailed("fashion-mnist", tmp_path)


def test_download_without_torchvision_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision now raises ImportError
    with pytest.raises(ImportError, match=r"nclab\[vision\]"):
        lt.long_tailed("cifar10", tmp_path, download=True)


def _write_idx(path, array, gz=False):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name, folder, gz", [("mnist", "MNIST", False), ("fashion-mnist", "FashionMNIST", True)])
def test_mnist_idx_files(tmp_path, name, folder, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28))
    labels = np.repeat(np.arange(3), 4)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    _write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    X, y = lt.read_mnist(tmp_path, name, train=False)
    assert X.shape == (12, 28, 28, 1) and np.array_equal(X[..., 0], images) and np.array_equal(y, labels)
    _write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", labels[:, None], gz)
    with pytest.raises(ValueError, match="not an IDX file"):
        lt.read_mnist(tmp_path, name, train=False)


# ----------------------------------------------------------------------------- datasets


def test_long_tailed_cifar_from_disk(tmp_path):
    images, labels = lt.synthetic_images([20] * 10, seed=2)
    lt.write_cifar(tmp_path, images, labels)
    ds = lt.long_tailed("cifar10", tmp_path, ratio=10, seed=5)
    assert ds.counts.tolist() == lt.longtail_counts(10, 20, 10).tolist() and len(ds) == ds.counts.sum()
    assert np.array_equal(ds.labels, labels[ds.indices]) and ds.name == "cifar10" and ds.ratio == 10
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    raw = lt.long_tailed("cifar10", tmp_path, ratio=10, seed=5, normalize=False)
    assert torch.allclose(raw[0][0] * 255, torch.from_numpy(images[ds.indices[0]].transpose(2, 0, 1)).float())
    flipped = lt.long_tailed("cifar10", tmp_path, ratio=10, seed=5, transform=lambda t: t.flip(-1))
    assert torch.equal(flipped[0][0], x.flip(-1))
    X, Y = ds.tensors()
    assert X.shape == (len(ds), 3, 32, 32) and torch.equal(X[0], x) and Y.tolist() == ds.labels.tolist()
    test = lt.long_tailed("cifar10", tmp_path, ratio=1)
    assert test.counts.tolist() == [20] * 10


def test_subset_of_any_dataset():
    y = torch.arange(4).repeat_interleave(torch.tensor([9, 8, 9, 10]))
    base = torch.utils.data.TensorDataset(torch.randn(len(y), 2), y)
    sub = lt.long_tailed_subset(base, 8, seed=1)
    got = np.bincount([int(base[i][1]) for i in sub.indices])
    assert got.tolist() == lt.longtail_counts(4, 8, 8).tolist()
    assert np.array_equal(lt.dataset_labels(base), y.numpy())


def test_torchvision_fake_data_and_cifar_layout(tmp_path):
    tv = _torchvision()
    fake = tv.datasets.FakeData(size=120, image_size=(3, 32, 32), num_classes=4, transform=tv.transforms.ToTensor())
    sub = lt.long_tailed_subset(fake, 4, num_classes=4, n_max=10)
    labels = lt.dataset_labels(fake)
    assert np.bincount(labels[sub.indices], minlength=4).tolist() == lt.longtail_counts(4, 10, 4).tolist()
    images, y = lt.synthetic_images([5] * 10, seed=0)
    lt.write_cifar(tmp_path, images, y)
    theirs = tv.datasets.CIFAR10(tmp_path, train=True, download=False)
    assert np.array_equal(np.asarray(theirs.data), images) and list(theirs.targets) == y.tolist()
