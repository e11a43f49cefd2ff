"""Neural-collapse metrics NC1-NC4 and distances to the closed-form theory.

Shapes follow the book: features ``H`` are (d, N) with samples in columns, class means ``M``
are (d, K), the product classifier ``W`` is (K, d), counts ``n`` are (K,). Every function
accepts numpy arrays or torch tensors. :class:`FeatureStats` (and :func:`class_means`,
:func:`covariances`, :func:`nc1` built on it) computes in float64 where the features live:
in numpy for numpy input, on the tensor's device for torch input. Every other function
computes in float64 numpy. Nothing here needs torch for numpy input.

**Conventions.** The literature's definitions differ under imbalance; each choice is a
keyword, with the default first. ``m_k`` is the mean of class ``k``, ``N = sum_k n_k``.

============  ================================  =================================================
quantity      option                            definition
============  ================================  =================================================
``Sigma_W``   (one convention)                  ``(1/N) sum_i (h_i - m_{y_i})(h_i - m_{y_i})^T``
NC1           ``convention="unweighted"``       ``mu_G = (1/K) sum_k m_k``;
                                                ``Sigma_B = (1/K) sum_k (m_k - mu_G)(m_k - mu_G)^T``
                                                (Papyan et al. 2020's code, rhubarbwu/neural-collapse)
NC1           ``convention="weighted"``         ``mu_G = sum_k n_k m_k / N``; weights ``n_k / N`` in
                                                ``Sigma_B``. Then ``Sigma_T = Sigma_W + Sigma_B``,
                                                and the UFM optimum with a bias has ``mu_G = 0``.
                                                (``weighted=True`` means this one.)
NC1           ``convention="sample_mean"``      ``mu_G = sum_k n_k m_k / N`` (the mean of all
                                                samples); weights ``1/K`` in ``Sigma_B``
                                                (the code of Zhu et al. 2021 and Dang et al. 2023)
NC1           all three                         ``NC1 = tr(Sigma_W Sigma_B^+) / K``
NC2           :func:`gram_distance`             ``|| G/||G||_F - T/||T||_F ||_F`` against a *given*
                                                target Gram (ETF, orthogonal frame, or the theory's
                                                prediction: under imbalance the ETF is not it)
NC3           :func:`nc3`, ``bias=True``        :func:`self_duality` of ``W`` and
                                                :func:`ufm_centered_means`: with a bias the means
                                                centred by the **sample-weighted** mean
NC3           :func:`nc3`, ``bias=False``       without a bias the means **as they are**
NC4           ``include_bias=True``             :func:`ncc_agreement`: fraction of samples where
                                                ``argmax_k (W h + b)_k`` equals the nearest class
                                                mean; the classifier's own decision
NC4           ``include_bias=False``            the same with ``argmax_k (W h)_k``
theory        :func:`distance_to_theory`        relative errors of ``W W^T``, ``M^T M`` (means as
                                                they are), ``b`` and the singular values of
                                                ``W M D`` against :func:`nclab.theory.global_minimizer`
============  ================================  =================================================

Why the NC3 rule (math.md, "Reduction"): with a bias, shifting every feature by ``v`` and the
bias by ``-W v`` leaves the fit unchanged, and the optimum is the representative with
``M n = 0``; centring by the sample-weighted mean removes the shift and is the identity at the
optimum (unweighted centring is not). Without a bias nothing absorbs a shift, the optimum's
means are an orthogonal-type frame around the origin, and any centring would distort it.
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any, Sequence

import numpy as np

from . import _validate
from ._validate import boolean, choice, whole
from .data import check_counts
from .theory import global_minimizer, target_svd

__all__ = [
    "NC1_CONVENTIONS",
    "FeatureStats",
    "class_means",
    "covariances",
    "nc1",
    "centered_means",
    "ufm_centered_means",
    "normalized",
    "gram_distance",
    "equinorm",
    "equiangularity",
    "self_duality",
    "nc3",
    "mode_alignment",
    "ncc_agreement",
    "wmd_singular_values",
    "alive_tolerance",
    "distance_to_theory",
]

ArrayLike = Any  # numpy array or torch tensor

#: The NC1 conventions of :func:`nc1` (see the module docstring's table).
NC1_CONVENTIONS = ("unweighted", "weighted", "sample_mean")


_BATCH = "a non-empty (d, B) matrix, samples in columns"


def _convention(convention: object, weighted: object) -> str:
    """The NC1 convention from ``convention=`` or the older ``weighted=`` (not contradicting)."""
    if weighted is not None:
        weighted = boolean(weighted, "weighted")
    if convention is None:
        return "weighted" if weighted else "unweighted"
    convention = choice(convention, "convention", NC1_CONVENTIONS)
    if weighted is not None and weighted != (convention == "weighted"):
        raise ValueError(f"weighted={weighted} contradicts convention={convention!r}: pass convention alone")
    return convention


def _numpy(x: ArrayLike) -> np.ndarray:
    """A float64 numpy copy of a torch tensor; numpy arrays unchanged."""
    return x.detach().cpu().double().numpy() if _validate.is_tensor(x) else np.asarray(x)


class FeatureStats:
    """Streaming class statistics of features, for NC1 on data that does not fit at once.

    Batches are merged with the pairwise update of Chan, Golub & LeVeque (1983), so the
    within-class scatter stays accurate when features have nearly collapsed (where the naive
    ``E[h h^T] - m m^T`` loses every digit). The first batch fixes where the statistics live:
    numpy arrays keep them in numpy (torch is never imported), a torch tensor keeps them in
    float64 on its device (later batches are moved there).

    Parameters
    ----------
    K : int
        Number of classes (>= 2).

    Examples
    --------
    >>> stats = FeatureStats(K=10)
    >>> for H_batch, y_batch in batches:      # H_batch: (d, B)
    ...     stats.update(H_batch, y_batch)
    >>> stats.nc1()
    """

    def __init__(self, K: int):
        self.K = whole(K, "K (number of classes)", 2, _validate.MAX_CLASSES)
        self._torch: Any = None  # the torch module when the statistics live in torch
        self._device: Any = None
        self._counts: Any = None
        self._means: Any = None
        self._scatter: Any = None

    # -- backend helpers (numpy or torch, same operations) --

    def _batch(self, H: ArrayLike) -> Any:
        """``H`` as a float64 (d, B) array of the statistics' backend, checked."""
        if self._means is None and _validate.is_tensor(H):
            self._torch, self._device = sys.modules["torch"], H.device
        if self._torch is None:
            return _validate.array(H, "H", ndim=2, describe=_BATCH)
        torch = self._torch
        Hb = H.detach() if _validate.is_tensor(H) else torch.as_tensor(_validate.array(H, "H", ndim=2, describe=_BATCH))
        Hb = Hb.to(dtype=torch.float64, device=self._device)
        if Hb.ndim != 2 or Hb.numel() == 0:
            raise ValueError(f"H must be {_BATCH}; got shape {tuple(Hb.shape)}")
        _validate.finite(Hb, "H")
        return Hb

    def _zeros(self, *shape: int) -> Any:
        if self._torch is None:
            return np.zeros(shape)
        return self._torch.zeros(shape, dtype=self._torch.float64, device=self._device)

    def _xp(self) -> Any:
        return np if self._torch is None else self._torch

    def update(self, H: ArrayLike, labels: ArrayLike) -> "FeatureStats":
        """Add a batch: features ``H`` of shape (d, B) and their labels of shape (B,).

        Raises
        ------
        ValueError
            ``H`` not two-dimensional, empty, not finite, or with another ``d`` than earlier
            batches; labels not one per column, or outside ``0..K-1``.
        """
        Hb = self._batch(H)
        y = _validate.labels(labels, N=Hb.shape[1], K=self.K)
        d = Hb.shape[0]
        if self._means is None:
            self._counts, self._means, self._scatter = self._zeros(self.K), self._zeros(d, self.K), self._zeros(d, d)
        elif d != self._means.shape[0]:
            raise ValueError(f"H must have d = {self._means.shape[0]} rows like earlier batches; got {d}")
        xp = self._xp()
        if self._torch is not None:
            y = self._torch.as_tensor(y, device=self._device)
        onehot = xp.eye(self.K, dtype=xp.float64, **({} if self._torch is None else {"device": self._device}))[y]  # (B, K)
        nb = onehot.sum(0)
        mb = (Hb @ onehot) / xp.clip(nb, 1, None)  # batch class means (d, K)
        centred = Hb - mb[:, y]
        delta = mb - self._means
        tot = self._counts + nb
        safe = xp.clip(tot, 1, None)
        # classes absent from both sides have na = nb = 0, so both corrections vanish there
        self._scatter = self._scatter + centred @ centred.T + (delta * (self._counts * nb / safe)) @ delta.T
        self._means = self._means + delta * (nb / safe)
        self._counts = tot
        return self

    def _require(self) -> None:
        if self._means is None:
            raise ValueError("no features yet: call update(H, labels) first")
        empty = np.flatnonzero(_numpy(self._counts) == 0).tolist()
        if empty:
            raise ValueError(f"classes {empty} have no samples; every class 0..{self.K - 1} needs at least one (check labels and K)")

    @property
    def counts(self) -> np.ndarray:
        """Samples per class, shape (K,), numpy."""
        self._require()
        return _numpy(self._counts)

    @property
    def means(self) -> Any:
        """Class means ``M``, shape (d, K): numpy, or a float64 tensor on the features' device."""
        self._require()
        return self._means

    @property
    def within_cov(self) -> Any:
        """``Sigma_W``, shape (d, d) (numpy, or a tensor on the features' device)."""
        self._require()
        return self._scatter / self._counts.sum()

    def global_mean(self, weighted: bool | None = None, *, convention: str | None = None) -> Any:
        """``mu_G`` of the chosen NC1 convention (see the module docstring), shape (d,)."""
        self._require()
        if _convention(convention, weighted) == "unweighted":
            return self._means.mean(1)
        return self._means @ self._counts / self._counts.sum()

    def between_cov(self, weighted: bool | None = None, *, convention: str | None = None) -> Any:
        """``Sigma_B`` of the chosen NC1 convention, shape (d, d)."""
        conv = _convention(convention, weighted)
        C = self._means - self.global_mean(convention=conv)[:, None]
        w = self._counts / self._counts.sum() if conv == "weighted" else self._counts * 0 + 1 / self.K
        return (C * w) @ C.T

    def nc1(self, weighted: bool | None = None, *, convention: str | None = None) -> float:
        """``tr(Sigma_W Sigma_B^+) / K``: within-class variability relative to between-class.

        ``Sigma_B^+`` is the pseudo-inverse, from the eigenvalues above ``d eps`` times the
        largest (the rule of :func:`torch.linalg.pinv`). NC1 is 0 for collapsed features, and
        ``inf`` when every class mean coincides but the features vary (no between-class spread).
        """
        xp = self._xp()
        Sb = self.between_cov(weighted, convention=convention)
        lam, V = xp.linalg.eigh(Sb)
        top = float(abs(lam).max())
        if top == 0:  # every class mean coincides: no between-class spread
            return 0.0 if float(abs(self.within_cov).max()) == 0 else math.inf
        keep = lam > np.finfo(np.float64).eps * Sb.shape[0] * top
        inv = keep / xp.where(keep, lam, 1.0 + 0 * lam)
        return float((((V.T @ self.within_cov) @ V).diagonal() * inv).sum()) / self.K


def _stats(H: ArrayLike, labels: ArrayLike, K: int | None) -> FeatureStats:
    if K is None:
        y = _validate.labels(labels)
        K = int(y.max()) + 1
        if K < 2:
            raise ValueError("labels contain only class 0, so K = max(labels) + 1 = 1; class statistics need at least K = 2 classes")
    return FeatureStats(K).update(H, labels)


def class_means(H: ArrayLike, labels: ArrayLike, K: int | None = None) -> np.ndarray:
    """Class means ``M``, shape (d, K), from features ``H`` (d, N).

    Parameters
    ----------
    H : array, shape (d, N)
        Finite features, samples in columns.
    labels : array of int, shape (N,)
        Class indices ``0..K-1``; every class needs a sample.
    K : int, optional
        Number of classes (default ``max(labels) + 1``, at least 2).
    """
    return _numpy(_stats(H, labels, K).means)


def covariances(
    H: ArrayLike, labels: ArrayLike, K: int | None = None, *, convention: str | None = None, weighted: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(Sigma_W, Sigma_B)``, each (d, d), in the chosen NC1 convention (module docstring)."""
    s = _stats(H, labels, K)
    return _numpy(s.within_cov), _numpy(s.between_cov(weighted, convention=convention))


def nc1(H: ArrayLike, labels: ArrayLike, K: int | None = None, *, convention: str | None = None, weighted: bool | None = None) -> float:
    """NC1 ``= tr(Sigma_W Sigma_B^+) / K`` (Papyan et al. 2020), 0 for collapsed features.

    Parameters
    ----------
    H : array, shape (d, N)
        Finite features, samples in columns.
    labels : array of int, shape (N,)
    K : int, optional
        Number of classes (default ``max(labels) + 1``).
    convention : {"unweighted", "weighted", "sample_mean"}, default "unweighted"
        How ``mu_G`` and ``Sigma_B`` are formed (the table in the module docstring).
    weighted : bool, optional
        The older switch: ``True`` is ``convention="weighted"``, ``False`` "unweighted".
    """
    return _stats(H, labels, K).nc1(weighted, convention=convention)


def _means_arg(M: ArrayLike, K: int | None = None, name: str = "M") -> np.ndarray:
    """Class means (d, K) as a finite float64 array, with ``K`` columns if given."""
    Mn = _validate.array(M, name, ndim=2)
    if K is not None and Mn.shape[1] != K:
        raise ValueError(f"{name} must have shape (d, K) with K = {K} columns (one per class); got shape {Mn.shape}")
    return Mn


def centered_means(M: ArrayLike, counts: Sequence[float] | None = None, *, weighted: bool = False) -> np.ndarray:
    """Class means minus the global mean (unweighted, or weighted by ``counts``), shape (d, K).

    Parameters
    ----------
    M : array, shape (d, K)
    counts : array_like, shape (K,), optional
        Class counts; required when ``weighted``.
    weighted : bool, default False
        Subtract ``sum_k n_k m_k / N`` instead of ``(1/K) sum_k m_k``.
    """
    if boolean(weighted, "weighted"):
        if counts is None:
            raise ValueError("counts are required when weighted=True")
        w = check_counts(counts, "counts")
        Mn = _means_arg(M, w.size)
        return Mn - (Mn @ w / w.sum())[:, None]
    Mn = _means_arg(M)
    return Mn - Mn.mean(1, keepdims=True)


def ufm_centered_means(M: ArrayLike, n: Sequence[float], *, bias: bool = True) -> np.ndarray:
    """Class means in the frame of the UFM: centred by the sample-weighted mean with a bias, as they are without.

    The one centring rule for NC3 and for Gram comparisons with the theory (module docstring):
    with a bias the optimum has ``M n = 0`` and the bias absorbs any common shift; without a
    bias nothing absorbs it.

    Parameters
    ----------
    M : array, shape (d, K)
    n : array_like, shape (K,)
        Class counts.
    bias : bool, default True

    Returns
    -------
    numpy.ndarray, shape (d, K)
    """
    if boolean(bias, "bias"):
        return centered_means(M, n, weighted=True)
    return _means_arg(M, check_counts(n).size)


def normalized(G: ArrayLike) -> np.ndarray:
    """``G / ||G||_F`` for a finite matrix (a zero matrix stays zero)."""
    Gn = _validate.array(G, "G", ndim=2)
    norm = np.linalg.norm(Gn)
    return Gn / norm if norm > 0 else Gn


def _gram(G: ArrayLike, name: str = "G") -> np.ndarray:
    """A finite square (K, K) matrix with a non-negative diagonal (what a Gram matrix has)."""
    Gn = _validate.array(G, name, ndim=2)
    if Gn.shape[0] != Gn.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) Gram matrix; got shape {Gn.shape}")
    diag = np.diag(Gn)
    if np.any(diag < -1e-12 * max(np.abs(Gn).max(), 1e-300)):
        raise ValueError(f"{name} must be a Gram matrix (squared lengths >= 0 on the diagonal); got diagonal entry {diag.min():g}")
    return Gn


def gram_distance(G: ArrayLike, target: ArrayLike) -> float:
    """``|| G/||G||_F - T/||T||_F ||_F``: shape distance of two Gram matrices, in [0, 2].

    Scale-free, so one fitted scalar (an effective regularisation strength) is implicit. A
    zero matrix is compared as zero: distance 0 if both vanish, 1 if only one does.

    Parameters
    ----------
    G, target : array, shape (K, K)
        Finite square matrices of the same shape.
    """
    A, B = _gram(G), _gram(target, "target")
    if A.shape != B.shape:
        raise ValueError(f"G and target must have the same shape; got {A.shape} and {B.shape}")
    return float(np.linalg.norm(normalized(A) - normalized(B)))


def equinorm(G: ArrayLike) -> float:
    """Coefficient of variation (std / mean) of the vector lengths ``sqrt(diag(G))``; 0 if equal.

    Parameters
    ----------
    G : array, shape (K, K)
        Gram matrix of the vectors (e.g. ``M^T M`` or ``W W^T``), not the vectors.
    """
    norms = np.sqrt(np.clip(np.diag(_gram(G)), 0, None))
    mean = norms.mean()
    if mean == 0:
        raise ValueError("G: all vectors are zero, so their lengths have no coefficient of variation")
    return float(norms.std() / mean)


def equiangularity(G: ArrayLike) -> float:
    """Standard deviation of the pairwise cosines ``G_ij / sqrt(G_ii G_jj)``, i != j; 0 if equal.

    Parameters
    ----------
    G : array, shape (K, K), K >= 2
        Gram matrix of nonzero vectors.
    """
    Gn = _gram(G)
    if Gn.shape[0] < 2:
        raise ValueError(f"G must be at least 2 x 2 (angles need two vectors); got shape {Gn.shape}")
    norms = np.sqrt(np.clip(np.diag(Gn), 0, None))
    if np.any(norms == 0):
        raise ValueError(f"G: vector(s) {np.flatnonzero(norms == 0).tolist()} are zero, so their angles are undefined; drop collapsed classes first")
    cos = Gn / np.outer(norms, norms)
    return float(cos[~np.eye(len(norms), dtype=bool)].std())


def _classifier_and_means(W: ArrayLike, M: ArrayLike, K: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``W`` (K, d) and ``M`` (d, K) as finite float64 arrays with matching shapes."""
    Wn = _validate.array(W, "W", ndim=2)
    Mn = _validate.array(M, "M", ndim=2)
    K = Wn.shape[0] if K is None else K
    if Wn.shape[0] != K:
        raise ValueError(f"W must have shape (K, d) with K = {K} rows (one per class); got shape {Wn.shape}")
    if Mn.shape != (Wn.shape[1], K):
        raise ValueError(f"M must have shape (d, K) = {(Wn.shape[1], K)} to match W of shape {Wn.shape}; got shape {Mn.shape}")
    return Wn, Mn


def self_duality(W: ArrayLike, M: ArrayLike) -> float:
    """``|| W/||W||_F - M^T/||M||_F ||_F`` for ``W`` (K, d) and means ``M`` (d, K), in [0, 2].

    The means are used as given; :func:`nc3` applies the book's centring rule first.
    """
    Wn, Mn = _classifier_and_means(W, M)
    return float(np.linalg.norm(normalized(Wn) - normalized(Mn).T))


def nc3(W: ArrayLike, M: ArrayLike, n: Sequence[float], *, bias: bool = True) -> float:
    """NC3 (self-duality) with the book's one centring rule: ``self_duality(W, ufm_centered_means(M, n, bias))``.

    With a bias the class means are centred by their sample-weighted mean, without a bias they
    are used as they are (module docstring). 0 at the balanced optimum; under imbalance the
    optimum is not self-dual (Liu 2024: row ``i`` of ``U^T W`` aligns with column ``i`` of
    ``M D V`` instead, see :func:`mode_alignment`).

    Parameters
    ----------
    W : array, shape (K, d)
        Product classifier.
    M : array, shape (d, K)
        Class means (not centred).
    n : array_like, shape (K,)
        Class counts.
    bias : bool, default True
        Whether the model has a bias.
    """
    counts = check_counts(n)
    Wn, Mn = _classifier_and_means(W, M, counts.size)
    return self_duality(Wn, ufm_centered_means(Mn, counts, bias=bias))


def mode_alignment(W: ArrayLike, M: ArrayLike, n: Sequence[float], *, bias: bool = True) -> dict[str, np.ndarray]:
    """Liu (2024), claims 2-4: rows of ``U^T W`` against columns of ``M D V``.

    ``U, V`` are the singular vectors of the target (``Yhat`` with bias, ``D`` without). At the
    optimum row i and column i are parallel, mutually orthogonal across i, and vanish together.

    Parameters
    ----------
    W : array, shape (K, d)
    M : array, shape (d, K)
    n : array_like, shape (K,)
    bias : bool, default True

    Returns
    -------
    dict with
        ``row_norms`` (K,): lengths of the rows of ``U^T W``;
        ``col_norms`` (K,): lengths of the columns of ``M D V``;
        ``cos`` (K,): cosine between row i and column i (0 where either vanishes);
        ``rows_gram``, ``cols_gram`` (K, K): their Gram matrices (diagonal at the optimum).
    """
    counts = check_counts(n)
    Wn, Mn = _classifier_and_means(W, M, counts.size)
    U, _, V = target_svd(counts, boolean(bias, "bias"))
    rows = U.T @ Wn  # (K, d)
    cols = Mn @ np.diag(np.sqrt(counts)) @ V  # (d, K)
    rn, cn = np.linalg.norm(rows, axis=1), np.linalg.norm(cols, axis=0)
    dot = np.einsum("id,di->i", rows, cols)
    tiny = 1e-12 * max(rn.max(), cn.max(), 1e-300)
    ok = (rn > tiny) & (cn > tiny)
    cos = np.where(ok, dot / np.where(ok, rn * cn, 1.0), 0.0)
    return {"row_norms": rn, "col_norms": cn, "cos": cos, "rows_gram": rows @ rows.T, "cols_gram": cols.T @ cols}


def ncc_agreement(H: ArrayLike, W: ArrayLike, b: ArrayLike | None, M: ArrayLike, *, include_bias: bool = True) -> float:
    """NC4: fraction of samples whose classifier decision equals the nearest class mean.

    Parameters
    ----------
    H : array, shape (d, N)
    W : array, shape (K, d)
    b : array, shape (K,), or None
    M : array, shape (d, K)
        Class means (the nearest-class-centre rule uses them as they are).
    include_bias : bool, default True
        The decision ``argmax_k (W h + b)_k`` (the classifier's own, as in Papyan et al.
        2020), or ``argmax_k (W h)_k`` with ``False``. Ignored when ``b`` is None.
    """
    include_bias = boolean(include_bias, "include_bias")
    Wn, Mn = _classifier_and_means(W, M)
    K, d = Wn.shape
    Hn = _validate.array(H, "H", shape=(d, None))
    bn = None if b is None or not include_bias else _validate.array(b, "b", shape=(K,))
    centre = Mn.mean(1, keepdims=True)  # distances measured from here: less cancellation
    Mc = Mn - centre
    m_sq = (Mc**2).sum(0)
    agree = 0
    chunk = max(1, 2**22 // K)  # bounds the (K, chunk) work arrays
    for start in range(0, Hn.shape[1], chunk):
        Hb = Hn[:, start : start + chunk]
        logits = Wn @ Hb if bn is None else Wn @ Hb + bn[:, None]
        nearest = (m_sq[:, None] - 2 * Mc.T @ (Hb - centre)).argmin(0)  # ||h - m_k||^2 minus a per-sample constant
        agree += int((logits.argmax(0) == nearest).sum())
    return agree / Hn.shape[1]


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
    Wn, Mn = _classifier_and_means(W, M, counts.size)
    return np.linalg.svd(Wn @ Mn * np.sqrt(counts)[None, :], compute_uv=False)


def alive_tolerance(N: float) -> float:
    """Singular values of ``W M D`` above ``1e-6 sqrt(N)`` count as surviving modes.

    An absolute scale (the target's singular values are at most ``sqrt(N)``): a tolerance
    relative to the largest mode would count every mode of a model that has collapsed to the
    origin as alive.

    Parameters
    ----------
    N : float
        Number of samples (> 0).
    """
    return 1e-6 * float(np.sqrt(_validate.positive(N, "N (number of samples)")))


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

    Parameters
    ----------
    W : array, shape (K, d)
    M : array, shape (d, K)
        Class means, as they are (the optimum of the model with a bias has ``M n = 0``).
    b : array, shape (K,), or None
    n, lam_W, lam_H, L, bias
        The problem, as in :func:`nclab.theory.global_minimizer`.

    Returns
    -------
    dict with ``W_gram`` (``W W^T``), ``M_gram`` (``M^T M``), ``b`` and ``singular_values``
    (of ``W M D`` against ``x``).

    Warns
    -----
    UserWarning
        When ``d`` is smaller than the number of modes that survive in the closed form: a
        model of width ``d`` cannot reach that optimum, so these are not convergence errors.
    """
    g = global_minimizer(n, lam_W, lam_H, L=L, bias=bias)
    Wn, Mn = _classifier_and_means(W, M, g.K)
    bn = np.zeros(g.K) if b is None else _validate.array(b, "b", shape=(g.K,))
    if Wn.shape[1] < g.n_active:
        warnings.warn(
            f"d = {Wn.shape[1]} is smaller than the {g.n_active} modes that survive in the closed form: a model of "
            "width d cannot reach global_minimizer's optimum, so these distances do not measure convergence",
            UserWarning,
            stacklevel=2,
        )
    sv = wmd_singular_values(Wn, Mn, g.n)
    return {
        "W_gram": _relative(Wn @ Wn.T, g.W_gram),
        "M_gram": _relative(Mn.T @ Mn, g.M_gram),
        "b": _relative(bn, g.b),
        "singular_values": _relative(np.sort(sv)[::-1], np.sort(g.x)[::-1]),
    }
