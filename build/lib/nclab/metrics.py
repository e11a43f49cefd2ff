"""Neural-collapse metrics NC1-NC4 and distances to the closed-form theory.

Shapes follow the book: features ``H`` are (d, N) with samples in columns, class means ``M``
are (d, K), the product classifier ``W`` is (K, d). Every function accepts numpy arrays or
torch tensors (CPU or GPU) and computes in float64 on the input's device; results come back as
Python floats or numpy arrays.

Conventions (they differ between papers; see the book's chapter on metrics):

* ``Sigma_W = (1/N) sum_i (h_i - m_{y_i})(h_i - m_{y_i})^T`` always.
* ``weighted=False`` (default, Papyan et al. 2020 and most code): global mean
  ``mu_G = (1/K) sum_k m_k`` and ``Sigma_B = (1/K) sum_k (m_k - mu_G)(m_k - mu_G)^T``.
* ``weighted=True``: ``mu_G = sum_k n_k m_k / N`` and weights ``n_k / N`` in ``Sigma_B``; then
  ``Sigma_T = Sigma_W + Sigma_B`` and the optimum of the UFM with bias has ``mu_G = 0``.
* ``NC1 = tr(Sigma_W Sigma_B^+) / K``.

NC2 is measured on Gram matrices (``M^T M`` or ``W W^T``), compared with a *given* target Gram
(the simplex ETF, the orthogonal frame, or the theory's prediction) after scaling both to unit
Frobenius norm, because under imbalance the ETF is not the right reference.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ._validate import whole
from .data import check_counts
from .theory import global_minimizer, target_svd

__all__ = [
    "FeatureStats",
    "class_means",
    "covariances",
    "nc1",
    "centered_means",
    "normalized",
    "gram_distance",
    "equinorm",
    "equiangularity",
    "self_duality",
    "mode_alignment",
    "ncc_agreement",
    "wmd_singular_values",
    "alive_tolerance",
    "distance_to_theory",
]

ArrayLike = Any  # numpy array or torch tensor


def _tensor(x: ArrayLike, device: torch.device | str | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype=torch.float64, device=device or x.device)
    return torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=device)


def _labels(labels: ArrayLike, device: torch.device) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        y = labels.detach().to(device)
    else:
        y = torch.as_tensor(np.asarray(labels), device=device)
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be a one-dimensional integer array; got dtype {y.dtype}, shape {tuple(y.shape)}")
    return y.long()


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class FeatureStats:
    """Streaming class statistics of features, for NC1 on data that does not fit at once.

    Batches are merged with the pairwise update of Chan, Golub & LeVeque (1983), so the
    within-class scatter stays accurate when features have nearly collapsed (where the naive
    ``E[h h^T] - m m^T`` loses every digit).

    Parameters
    ----------
    K : int
        Number of classes.

    Examples
    --------
    >>> stats = FeatureStats(K=10)
    >>> for H_batch, y_batch in batches:      # H_batch: (d, B)
    ...     stats.update(H_batch, y_batch)
    >>> stats.nc1()
    """

    def __init__(self, K: int):
        self.K = whole(K, "K", 2)
        self._counts: torch.Tensor | None = None
        self._means: torch.Tensor | None = None
        self._scatter: torch.Tensor | None = None

    def update(self, H: ArrayLike, labels: ArrayLike) -> "FeatureStats":
        """Add a batch: features ``H`` of shape (d, B) and their labels of shape (B,)."""
        Hb = _tensor(H)
        if Hb.ndim != 2:
            raise ValueError(f"H must have shape (d, B) with samples in columns; got shape {tuple(Hb.shape)}")
        y = _labels(labels, Hb.device)
        if y.numel() != Hb.shape[1]:
            raise ValueError(f"labels must have one entry per column of H: {Hb.shape[1]}; got {y.numel()}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.K):
            raise ValueError(f"labels must lie in [0, {self.K - 1}]; got range [{int(y.min())}, {int(y.max())}]")
        d = Hb.shape[0]
        if self._means is None:
            self._counts = torch.zeros(self.K, dtype=torch.float64, device=Hb.device)
            self._means = torch.zeros(d, self.K, dtype=torch.float64, device=Hb.device)
            self._scatter = torch.zeros(d, d, dtype=torch.float64, device=Hb.device)
        elif d != self._means.shape[0]:
            raise ValueError(f"H must have d = {self._means.shape[0]} rows like earlier batches; got {d}")
        onehot = torch.nn.functional.one_hot(y, self.K).to(torch.float64)  # (B, K)
        nb = onehot.sum(0)
        mb = (Hb @ onehot) / nb.clamp_min(1)  # batch class means (d, K)
        centred = Hb - mb[:, y]
        delta = mb - self._means
        na = self._counts
        tot = na + nb
        w = torch.where(tot > 0, na * nb / tot.clamp_min(1), torch.zeros_like(tot))
        self._scatter = self._scatter + centred @ centred.T + (delta * w) @ delta.T
        self._means = torch.where(tot > 0, self._means + delta * (nb / tot.clamp_min(1)), self._means)
        self._counts = tot
        return self

    def _require(self) -> None:
        if self._means is None:
            raise ValueError("no features yet: call update(H, labels) first")
        empty = (self._counts == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"classes {empty} have no samples; every class needs at least one")

    @property
    def counts(self) -> np.ndarray:
        """Samples per class, shape (K,)."""
        self._require()
        return _numpy(self._counts)

    @property
    def means(self) -> torch.Tensor:
        """Class means ``M``, shape (d, K) (a float64 tensor on the features' device)."""
        self._require()
        return self._means

    @property
    def within_cov(self) -> torch.Tensor:
        """``Sigma_W``, shape (d, d)."""
        self._require()
        return self._scatter / self._counts.sum()

    def global_mean(self, weighted: bool = False) -> torch.Tensor:
        """``mu_G``: unweighted mean of class means, or the sample mean if ``weighted``; shape (d,)."""
        self._require()
        if weighted:
            return self._means @ self._counts / self._counts.sum()
        return self._means.mean(1)

    def between_cov(self, weighted: bool = False) -> torch.Tensor:
        """``Sigma_B`` under the chosen convention, shape (d, d)."""
        C = self._means - self.global_mean(weighted)[:, None]
        w = self._counts / self._counts.sum() if weighted else torch.full_like(self._counts, 1 / self.K)
        return (C * w) @ C.T

    def nc1(self, weighted: bool = False) -> float:
        """``tr(Sigma_W Sigma_B^+) / K``: within-class variability relative to between-class."""
        Sb_pinv = torch.linalg.pinv(self.between_cov(weighted), hermitian=True)
        return float(torch.trace(self.within_cov @ Sb_pinv)) / self.K


def _stats(H: ArrayLike, labels: ArrayLike, K: int | None) -> FeatureStats:
    if K is None:
        K = int(np.max(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels))) + 1
    return FeatureStats(K).update(H, labels)


def class_means(H: ArrayLike, labels: ArrayLike, K: int | None = None) -> np.ndarray:
    """Class means ``M``, shape (d, K), from features ``H`` (d, N)."""
    return _numpy(_stats(H, labels, K).means)


def covariances(H: ArrayLike, labels: ArrayLike, K: int | None = None, *, weighted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(Sigma_W, Sigma_B)``, each (d, d), under the chosen convention."""
    s = _stats(H, labels, K)
    return _numpy(s.within_cov), _numpy(s.between_cov(weighted))


def nc1(H: ArrayLike, labels: ArrayLike, K: int | None = None, *, weighted: bool = False) -> float:
    """NC1 ``= tr(Sigma_W Sigma_B^+) / K`` (Papyan et al. 2020), 0 for collapsed features.

    Parameters
    ----------
    H : array, shape (d, N)
    labels : array of int, shape (N,)
    K : int, optional
        Number of classes (default ``max(labels) + 1``).
    weighted : bool, default False
        Sample-weighted ``mu_G`` and ``Sigma_B`` instead of the unweighted convention.
    """
    return _stats(H, labels, K).nc1(weighted)


def centered_means(M: ArrayLike, counts: Sequence[float] | None = None, *, weighted: bool = False) -> np.ndarray:
    """Class means minus the global mean (unweighted, or weighted by ``counts``), shape (d, K)."""
    Mt = _tensor(M)
    if weighted:
        if counts is None:
            raise ValueError("counts are required when weighted=True")
        w = _tensor(check_counts(counts), Mt.device)
        mu = Mt @ w / w.sum()
    else:
        mu = Mt.mean(1)
    return _numpy(Mt - mu[:, None])


def normalized(G: ArrayLike) -> np.ndarray:
    """``G / ||G||_F`` (a zero matrix stays zero)."""
    Gn = np.asarray(_numpy(_tensor(G)))
    norm = np.linalg.norm(Gn)
    return Gn / norm if norm > 0 else Gn


def gram_distance(G: ArrayLike, target: ArrayLike) -> float:
    """``|| G/||G||_F - T/||T||_F ||_F``: shape distance of two Gram matrices, in [0, 2].

    Scale-free, so one fitted scalar (an effective regularisation strength) is implicit. A
    zero matrix is compared as zero: distance 0 if both vanish, 1 if only one does.
    """
    A, B = normalized(G), normalized(target)
    if A.shape != B.shape:
        raise ValueError(f"G and target must have the same shape; got {A.shape} and {B.shape}")
    return float(np.linalg.norm(A - B))


def equinorm(G: ArrayLike) -> float:
    """Coefficient of variation (std / mean) of the vector lengths ``sqrt(diag(G))``; 0 if equal."""
    norms = np.sqrt(np.clip(np.diag(_numpy(_tensor(G))), 0, None))
    mean = norms.mean()
    if mean == 0:
        raise ValueError("all vectors are zero: lengths have no coefficient of variation")
    return float(norms.std() / mean)


def equiangularity(G: ArrayLike) -> float:
    """Standard deviation of the pairwise cosines ``G_ij / sqrt(G_ii G_jj)``, i != j; 0 if equal."""
    Gn = _numpy(_tensor(G))
    norms = np.sqrt(np.clip(np.diag(Gn), 0, None))
    if np.any(norms == 0):
        raise ValueError("a vector is zero, so its angles are undefined; drop collapsed classes first")
    cos = Gn / np.outer(norms, norms)
    return float(cos[~np.eye(len(norms), dtype=bool)].std())


def self_duality(W: ArrayLike, M: ArrayLike) -> float:
    """NC3: ``|| W/||W||_F - M^T/||M||_F ||_F`` for ``W`` (K, d) and (centred) means ``M`` (d, K)."""
    Wn, Mn = normalized(W), normalized(M)
    if Wn.shape != Mn.T.shape:
        raise ValueError(f"W must be (K, d) and M must be (d, K); got {Wn.shape} and {Mn.shape}")
    return float(np.linalg.norm(Wn - Mn.T))


def mode_alignment(W: ArrayLike, M: ArrayLike, n: Sequence[float], *, bias: bool = True) -> dict[str, np.ndarray]:
    """Liu (2024), claims 2-4: rows of ``U^T W`` against columns of ``M D V``.

    ``U, V`` are the singular vectors of the target (``Yhat`` with bias, ``D`` without). At the
    optimum row i and column i are parallel, mutually orthogonal across i, and vanish together.

    Returns
    -------
    dict with
        ``row_norms`` (K,): lengths of the rows of ``U^T W``;
        ``col_norms`` (K,): lengths of the columns of ``M D V``;
        ``cos`` (K,): cosine between row i and column i (0 where either vanishes);
        ``rows_gram``, ``cols_gram`` (K, K): their Gram matrices (diagonal at the optimum).
    """
    counts = check_counts(n)
    U, _, V = target_svd(counts, bias)
    Wn, Mn = _numpy(_tensor(W)), _numpy(_tensor(M))
    rows = U.T @ Wn  # (K, d)
    cols = Mn @ np.diag(np.sqrt(counts)) @ V  # (d, K)
    rn, cn = np.linalg.norm(rows, axis=1), np.linalg.norm(cols, axis=0)
    dot = np.einsum("id,di->i", rows, cols)
    tiny = 1e-12 * max(rn.max(), cn.max(), 1e-300)
    ok = (rn > tiny) & (cn > tiny)
    cos = np.where(ok, dot / np.where(ok, rn * cn, 1.0), 0.0)
    return {"row_norms": rn, "col_norms": cn, "cos": cos, "rows_gram": rows @ rows.T, "cols_gram": cols.T @ cols}


def ncc_agreement(H: ArrayLike, W: ArrayLike, b: ArrayLike | None, M: ArrayLike) -> float:
    """NC4: fraction of samples whose classifier decision equals the nearest class mean.

    Parameters
    ----------
    H : array, shape (d, N)
    W : array, shape (K, d)
    b : array, shape (K,), or None
    M : array, shape (d, K)
    """
    Ht = _tensor(H)
    Wt, Mt = _tensor(W, Ht.device), _tensor(M, Ht.device)
    logits = Wt @ Ht
    if b is not None:
        logits = logits + _tensor(b, Ht.device)[:, None]
    nearest = torch.cdist(Ht.T, Mt.T).argmin(1)
    return float((logits.argmax(0) == nearest).double().mean())


def wmd_singular_values(W: ArrayLike, M: ArrayLike, n: Sequence[float]) -> np.ndarray:
    """Singular values of ``W M D`` with ``D = diag(sqrt(n))``, descending, shape (K,).

    The trained counterpart of the closed form's ``x`` (Liu 2024, claims 1-5; Dang et al. 2023
    without a bias): at the optimum they equal :attr:`nclab.theory.GlobalMinimizer.x`, and a
    mode survives where its value is above :func:`alive_tolerance`.

    Parameters
    ----------
    W : array, shape (K, d)
        Product classifier.
    M : array, shape (d, K)
        Class means (not centred).
    n : array_like, shape (K,)
        Class counts.
    """
    counts = check_counts(n)
    Wn, Mn = _numpy(_tensor(W)), _numpy(_tensor(M))
    return np.linalg.svd(Wn @ Mn * np.sqrt(counts)[None, :], compute_uv=False)


def alive_tolerance(N: float) -> float:
    """Singular values of ``W M D`` above ``1e-6 sqrt(N)`` count as surviving modes.

    An absolute scale (the target's singular values are at most ``sqrt(N)``): a tolerance
    relative to the largest mode would count every mode of a model that has collapsed to the
    origin as alive.
    """
    return 1e-6 * float(np.sqrt(N))


def _relative(a: np.ndarray, ref: np.ndarray) -> float:
    scale = np.linalg.norm(ref)
    err = np.linalg.norm(a - ref)
    return float(err / scale) if scale > 0 else float(err)


def distance_to_theory(
    W: ArrayLike,
    M: ArrayLike,
    b: ArrayLike | None,
    n: Sequence[float],
    lam_W: float | Sequence[float],
    lam_H: float,
    *,
    L: int = 1,
    bias: bool = True,
) -> dict[str, float]:
    """Relative errors of a trained model against :func:`nclab.theory.global_minimizer`.

    Each entry is ``||trained - predicted|| / ||predicted||`` (Frobenius or Euclidean), or the
    absolute error where the prediction is exactly zero (every mode collapsed).

    Returns
    -------
    dict with ``W_gram`` (``W W^T``), ``M_gram`` (``M^T M``), ``b`` and ``singular_values``
    (of ``W M D`` against ``x``).
    """
    g = global_minimizer(n, lam_W, lam_H, L=L, bias=bias)
    Wn, Mn = _numpy(_tensor(W)), _numpy(_tensor(M))
    bn = np.zeros(g.K) if b is None else _numpy(_tensor(b))
    sv = wmd_singular_values(Wn, Mn, g.n)
    return {
        "W_gram": _relative(Wn @ Wn.T, g.W_gram),
        "M_gram": _relative(Mn.T @ Mn, g.M_gram),
        "b": _relative(bn, g.b),
        "singular_values": _relative(np.sort(sv)[::-1], np.sort(g.x)[::-1]),
    }
