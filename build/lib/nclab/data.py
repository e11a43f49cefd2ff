"""Class-count profiles and label matrices.

A *count profile* is the vector ``n = (n_1, ..., n_K)`` of training examples per class. Every
other part of :mod:`nclab` takes such a vector; this module builds the profiles a reader asks
for (balanced, step, long-tailed) and turns counts into labels and one-hot matrices, using the
book's convention (``Y`` is ``K x N`` with samples in columns, classes in order).
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

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
    ValueError
        If ``n`` is not one-dimensional, has fewer than 2 entries, or has an entry that is
        NaN, infinite, not a whole number, or smaller than 1.
    """
    try:
        arr = np.asarray(n, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of class counts (whole numbers >= 1); got {n!r}") from exc
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
    return arr


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number >= {low}; got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}; got {value}")
    return value


def _check_ratio(value: object, name: str = "ratio") -> float:
    try:
        r = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number >= 1; got {value!r}") from exc
    if not math.isfinite(r) or r < 1:
        raise ValueError(f"{name} must be a finite number >= 1 (largest count / smallest count); got {value!r}")
    return r


def balanced(K: int, n: int) -> np.ndarray:
    """Balanced profile: ``K`` classes of ``n`` examples each.

    Returns
    -------
    numpy.ndarray, shape (K,)
    """
    K = _check_int(K, "K", 2)
    n = _check_int(n, "n", 1)
    return np.full(K, float(n))


def step(K_A: int, n_A: int, K_B: int, n_B: int) -> np.ndarray:
    """Step imbalance: ``K_A`` majority classes of ``n_A`` then ``K_B`` minority classes of ``n_B``.

    This is the two-group profile of Fang et al. (2021) and Dang et al. (2023); the spectrum of
    the centred target has a closed form for it (:func:`nclab.theory.two_group_spectrum`).

    Returns
    -------
    numpy.ndarray, shape (K_A + K_B,)
    """
    K_A = _check_int(K_A, "K_A", 1)
    K_B = _check_int(K_B, "K_B", 1)
    n_A = _check_int(n_A, "n_A", 1)
    n_B = _check_int(n_B, "n_B", 1)
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
    K = _check_int(K, "K", 2)
    n_max = _check_int(n_max, "n_max", 1)
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
    if kind == "balanced":
        return balanced(K, n_max)
    if kind == "step":
        K = _check_int(K, "K", 2)
        n_max = _check_int(n_max, "n_max", 1)
        r = _check_ratio(ratio)
        K_A = (K + 1) // 2
        return step(K_A, n_max, K - K_A, max(1, round(n_max / r)))
    if kind == "long-tailed":
        return long_tailed(K, n_max, ratio)
    raise ValueError(f"kind must be one of 'balanced', 'step', 'long-tailed'; got {kind!r}")


def labels_from_counts(n: Sequence[float] | np.ndarray) -> np.ndarray:
    """Label vector with ``n_k`` copies of class ``k``, classes in order.

    Returns
    -------
    numpy.ndarray, shape (N,), dtype int64
    """
    counts = check_counts(n).astype(np.int64)
    return np.repeat(np.arange(counts.size), counts)


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
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty one-dimensional array; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {y.dtype}")
    if K is None:
        K = int(y.max()) + 1
    K = _check_int(K, "K", 2)
    if y.min() < 0 or y.max() >= K:
        raise ValueError(f"labels must lie in [0, {K - 1}]; got range [{y.min()}, {y.max()}]")
    Y = np.zeros((K, y.size))
    Y[y, np.arange(y.size)] = 1.0
    return Y


def counts_from_labels(labels: Sequence[int] | np.ndarray, K: int | None = None) -> np.ndarray:
    """Counts per class of a label vector (the inverse of :func:`labels_from_counts`).

    Returns
    -------
    numpy.ndarray, shape (K,), dtype float64
    """
    return one_hot(labels, K).sum(axis=1)


def imbalance_ratio(n: Sequence[float] | np.ndarray) -> float:
    """Largest count divided by smallest count."""
    counts = check_counts(n)
    return float(counts.max() / counts.min())
