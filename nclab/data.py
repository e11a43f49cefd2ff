"""Class-count profiles and label matrices.

A *count profile* is the vector ``n = (n_1, ..., n_K)`` of training examples per class. Every
other part of :mod:`nclab` takes such a vector; this module builds the profiles a reader asks
for (balanced, step, long-tailed) and turns counts into labels and one-hot matrices, using the
book's convention (``Y`` is ``K x N`` with samples in columns, classes in order).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _validate
from ._validate import MAX_CLASSES, MAX_WHOLE, whole

__all__ = [
    "check_counts",
    "balanced",
    "step",
    "long_tailed",
    "profile",
    "labels_from_counts",
    "one_hot",
    "counts_from_labels",
    "imbalance_ratio",
]


def check_counts(n: Sequence[float] | np.ndarray, name: str = "n") -> np.ndarray:
    """Validate a count profile and return it as a float array.

    Parameters
    ----------
    n : array_like, shape (K,)
        Examples per class: whole numbers >= 1, at least two classes.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    numpy.ndarray, shape (K,), dtype float64

    Raises
    ------
    ArgumentTypeError
        If ``n`` is not a sequence of numbers (a ``TypeError`` and a ``ValueError``).
    ValueError
        If ``n`` is not one-dimensional, has fewer than 2 entries, or has an entry that is
        NaN, infinite, not a whole number, smaller than 1 or larger than ``2**53``, or if
        there are more than ``10**6`` classes.
    """
    if _validate.is_tensor(n) or isinstance(n, np.ndarray) or not np.isscalar(n):
        arr = _validate.array(n, name, allow_empty=True, allow_nonfinite=True)
    else:
        raise _validate.ArgumentTypeError(f"{name} must be a sequence of class counts (whole numbers >= 1); got {n!r}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one count per class); got shape {arr.shape}")
    if arr.size < 2:
        raise ValueError(f"{name} must have at least K = 2 classes; got K = {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain finite counts; got {arr.tolist()}")
    if np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must contain whole numbers (counts of examples); got {arr.tolist()}")
    if np.any(arr < 1):
        raise ValueError(f"{name} must contain counts >= 1 (every class needs an example); got {arr.tolist()}")
    if arr.size > MAX_CLASSES or arr.max() > MAX_WHOLE:
        raise ValueError(f"{name} must have at most {MAX_CLASSES} classes of at most 2**53 examples; got K = {arr.size}, largest count {arr.max():g}")
    return arr


def _check_ratio(value: object, name: str = "ratio") -> float:
    return _validate.real(value, f"{name} (largest count / smallest count)", low=1.0)


def balanced(K: int, n: int) -> np.ndarray:
    """Balanced profile: ``K`` classes of ``n`` examples each.

    Returns
    -------
    numpy.ndarray, shape (K,)
    """
    K = whole(K, "K", 2, MAX_CLASSES)
    n = whole(n, "n", 1)
    return np.full(K, float(n))


def step(K_A: int, n_A: int, K_B: int, n_B: int) -> np.ndarray:
    """Step imbalance: ``K_A`` majority classes of ``n_A`` then ``K_B`` minority classes of ``n_B``.

    This is the two-group profile of Fang et al. (2021) and Dang et al. (2023); the spectrum of
    the centred target has a closed form for it (:func:`nclab.theory.two_group_spectrum`).

    Returns
    -------
    numpy.ndarray, shape (K_A + K_B,)
    """
    K_A = whole(K_A, "K_A", 1, MAX_CLASSES)
    K_B = whole(K_B, "K_B", 1, MAX_CLASSES)
    n_A = whole(n_A, "n_A", 1)
    n_B = whole(n_B, "n_B", 1)
    return np.concatenate([np.full(K_A, float(n_A)), np.full(K_B, float(n_B))])


def long_tailed(K: int, n_max: int, ratio: float) -> np.ndarray:
    """Exponential long-tailed profile, ``n_k = round(n_max * ratio**(-k/(K-1)))``, k = 0..K-1.

    The first class has ``n_max`` examples and the last ``round(n_max / ratio)`` (at least 1),
    as in the long-tailed CIFAR benchmarks (Cui et al., 2019).

    Parameters
    ----------
    K : int
        Number of classes, >= 2.
    n_max : int
        Count of the largest class, >= 1.
    ratio : float
        Imbalance ratio ``n_max / n_min``, >= 1.

    Returns
    -------
    numpy.ndarray, shape (K,), non-increasing
    """
    K = whole(K, "K", 2, MAX_CLASSES)
    n_max = whole(n_max, "n_max", 1)
    r = _check_ratio(ratio)
    k = np.arange(K)
    counts = np.round(n_max * r ** (-k / (K - 1)))
    return np.maximum(counts, 1.0)


def profile(kind: str, K: int, n_max: int, ratio: float = 1.0) -> np.ndarray:
    """One entry point for the three profiles, as the explorers use it.

    Parameters
    ----------
    kind : {"balanced", "step", "long-tailed"}
        ``"step"`` puts the first ``ceil(K/2)`` classes at ``n_max`` and the rest at
        ``round(n_max / ratio)``.
    K, n_max, ratio
        As in :func:`long_tailed`; ``ratio`` is ignored for ``"balanced"``.

    Returns
    -------
    numpy.ndarray, shape (K,)
    """
    kind = _validate.choice(kind, "kind", ("balanced", "step", "long-tailed"))
    if kind == "balanced":
        return balanced(K, n_max)
    if kind == "step":
        K = whole(K, "K", 2, MAX_CLASSES)
        n_max = whole(n_max, "n_max", 1)
        r = _check_ratio(ratio)
        K_A = (K + 1) // 2
        return step(K_A, n_max, K - K_A, max(1, round(n_max / r)))
    return long_tailed(K, n_max, ratio)


def labels_from_counts(n: Sequence[float] | np.ndarray) -> np.ndarray:
    """Label vector with ``n_k`` copies of class ``k``, classes in order.

    Returns
    -------
    numpy.ndarray, shape (N,), dtype int64
    """
    counts = check_counts(n).astype(np.int64)
    return np.repeat(np.arange(counts.size), counts)


def _labels_and_K(labels: object, K: object) -> tuple[np.ndarray, int]:
    """Validated labels (int64) and the number of classes (``max(labels) + 1`` by default)."""
    y = _validate.labels(labels)
    if K is None:
        K = int(y.max()) + 1
        if K < 2:
            raise ValueError("labels contain only class 0, so K = max(labels) + 1 = 1; at least K = 2 classes are needed (pass K)")
    y = _validate.labels(y, K=whole(K, "K", 2, MAX_CLASSES))
    return y, int(K)


def one_hot(labels: Sequence[int] | np.ndarray, K: int | None = None) -> np.ndarray:
    """One-hot label matrix ``Y`` with samples in columns (the book's convention).

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Class indices in ``0..K-1``.
    K : int, optional
        Number of classes; defaults to ``max(labels) + 1``.

    Returns
    -------
    numpy.ndarray, shape (K, N)
    """
    y, K = _labels_and_K(labels, K)
    Y = np.zeros((K, y.size))
    Y[y, np.arange(y.size)] = 1.0
    return Y


def counts_from_labels(labels: Sequence[int] | np.ndarray, K: int | None = None) -> np.ndarray:
    """Counts per class of a label vector (the inverse of :func:`labels_from_counts`).

    Returns
    -------
    numpy.ndarray, shape (K,), dtype float64
    """
    y, K = _labels_and_K(labels, K)
    return np.bincount(y, minlength=K).astype(np.float64)


def imbalance_ratio(n: Sequence[float] | np.ndarray) -> float:
    """Largest count divided by smallest count."""
    counts = check_counts(n)
    return float(counts.max() / counts.min())
