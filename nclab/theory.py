"""Closed-form theory of the L-layer unconstrained feature model (UFM), pure numpy.

The model is (P) of :mod:`nclab.objective`: ``K`` classes with counts ``n``, features ``H``,
layers ``W_1..W_L`` and an optional unregularised bias ``b``. Every critical point has
collapsed features ``H = M Y`` (NC1), and with ``Z = M D``, ``D = diag(sqrt(n))``, the problem
becomes a deep factorisation of a ``K x K`` target

* ``T = Yhat = (I - n 1^T / N) D`` with the bias (Liu, 2024, arXiv 2411.17278),
* ``T = D`` without it (Dang et al., ICML 2023).

The optimum shares the singular vectors of ``T``; each singular value ``s_i`` of ``T`` maps to
the minimiser ``x_i`` of the scalar problem

``phi(x; s) = (x - s)^2 / (2N) + (L+1)/2 * c * x^(2/(L+1))``,
``c = (lam_H * prod_l lam_W_l)^(1/(L+1))``,

a soft threshold for ``L = 1`` and a jump from 0 to ``s_thr (L-1)/L`` at ``s_thr`` for ``L >= 2``.
Everything the book states about the optimum is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import brentq

from . import _validate
from ._validate import MAX_CLASSES, MAX_DEPTH, MAX_WIDTH, boolean, positive, whole
from .data import check_counts, labels_from_counts, one_hot, step

__all__ = [
    "check_lambdas",
    "target",
    "target_svd",
    "singular_values",
    "interlacing_bounds",
    "secular_function",
    "secular_roots",
    "spectrum_trace",
    "spectrum_pdet",
    "two_group_spectrum",
    "effective_c",
    "threshold",
    "scalar_objective",
    "nonzero_branch",
    "scalar_minimizer",
    "critical_lambda",
    "simplex_etf_gram",
    "orthogonal_frame_gram",
    "GlobalMinimizer",
    "UFMPoint",
    "global_minimizer",
]

# --------------------------------------------------------------------------- validation


def check_lambdas(lam_W: float | Sequence[float], lam_H: float, L: int = 1) -> tuple[np.ndarray, float, int]:
    """Validate the regularisation strengths and the depth.

    Parameters
    ----------
    lam_W : float or sequence of L floats
        Weight decay, one value for all layers or one per layer ``W_1..W_L``.
    lam_H : float
        Feature decay.
    L : int
        Number of linear layers, >= 1.

    Returns
    -------
    lam_W : numpy.ndarray, shape (L,)
    lam_H : float
    L : int

    Raises
    ------
    ValueError
        Naming the offending parameter and the allowed range.
    """
    L = whole(L, "L (number of linear layers)", 1, MAX_DEPTH)
    lam_H = positive(lam_H, "lam_H")
    if np.ndim(lam_W) == 0 or isinstance(lam_W, (str, bytes)):
        lams = [positive(lam_W, "lam_W")] * L
    else:
        try:
            seq = list(lam_W)  # type: ignore[arg-type]
        except TypeError as exc:
            raise _validate.ArgumentTypeError(f"lam_W must be a positive number or a sequence of L = {L} positive numbers; got {lam_W!r}") from exc
        if len(seq) != L:
            raise ValueError(f"lam_W must have one value per layer: L = {L} values; got {len(seq)}")
        lams = [positive(v, f"lam_W[{i}]") for i, v in enumerate(seq)]
    return np.asarray(lams, dtype=float), lam_H, L


# --------------------------------------------------------------------------- the target


def target(n: Sequence[float] | np.ndarray, bias: bool = True) -> np.ndarray:
    """Target matrix of the reduced problem.

    ``Yhat = (I - n 1^T / N) diag(sqrt(n))`` with the bias, ``diag(sqrt(n))`` without.

    Parameters
    ----------
    n : array_like, shape (K,)
        Class counts.
    bias : bool
        Whether the model has an (unregularised) bias.

    Returns
    -------
    numpy.ndarray, shape (K, K)
    """
    counts = check_counts(n)
    bias = boolean(bias, "bias")
    D = np.diag(np.sqrt(counts))
    if not bias:
        return D
    K, N = counts.size, counts.sum()
    return (np.eye(K) - np.outer(counts, np.ones(K)) / N) @ D


def target_svd(n: Sequence[float] | np.ndarray, bias: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Singular value decomposition ``T = U diag(s) V^T`` with ``s`` in descending order.

    Singular vectors are not unique where singular values repeat (repeated counts); compare
    Gram matrices or projectors built from them, never the vectors themselves.

    Returns
    -------
    U : numpy.ndarray, shape (K, K)
    s : numpy.ndarray, shape (K,)
    V : numpy.ndarray, shape (K, K)
        Right singular vectors as columns (not transposed).
    """
    bias = boolean(bias, "bias")
    U, s, Vt = np.linalg.svd(target(n, bias))
    if bias:
        s[-1] = 0.0  # exactly singular: 1^T Yhat = 0; remove round-off
    # LAPACK's sign of each pair (u_i, v_i) depends on the CPU's code path; fix it so that the
    # largest entry of v_i (by magnitude, first on ties) is positive.
    V = Vt.T
    signs = np.sign(V[np.argmax(np.abs(V) > np.abs(V).max(axis=0) - 1e-12, axis=0), np.arange(V.shape[1])])
    return U * signs, s, V * signs


def singular_values(n: Sequence[float] | np.ndarray, bias: bool = True) -> np.ndarray:
    """Singular values of the target, descending (Liu 2024, claim 5).

    Returns
    -------
    numpy.ndarray, shape (K,)
    """
    return target_svd(n, bias)[1]


def interlacing_bounds(n: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``sqrt(n_(i+1)) <= s_i <= sqrt(n_(i))`` on the singular values of ``Yhat``.

    ``Yhat Yhat^T = diag(n) - n n^T / N`` is a rank-one downdate of ``diag(n)``, so its
    eigenvalues interlace the sorted counts (Cauchy interlacing); the last one is 0.

    Returns
    -------
    lower, upper : numpy.ndarray, shape (K,)
        ``lower[i] = sqrt(n_(i+1))`` and ``upper[i] = sqrt(n_(i))`` for ``i < K-1``; both 0 for
        the last index.
    """
    root = np.sqrt(np.sort(check_counts(n))[::-1])
    lower = np.append(root[1:], 0.0)
    upper = np.append(root[:-1], 0.0)
    return lower, upper


def secular_function(s: float | np.ndarray, n: Sequence[float] | np.ndarray) -> np.ndarray:
    """``sum_k n_k / (n_k - s^2)``: zero exactly at the nonzero singular values of ``Yhat``.

    At a value ``s^2`` equal to some count the sum has a pole; it returns ``inf``/``nan`` there
    (numpy division semantics), which is where a repeated count's singular value lives.

    Parameters
    ----------
    s : float or array, shape (m,)
    n : array_like, shape (K,)

    Returns
    -------
    numpy.ndarray, shape of ``s``
    """
    counts = check_counts(n)
    t = _validate.array(s, "s", allow_empty=True) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(counts / (counts - t[..., None]), axis=-1)


def secular_roots(n: Sequence[float] | np.ndarray) -> np.ndarray:
    """Singular values of ``Yhat`` from the secular equation, without an SVD.

    A count value ``v`` repeated ``m`` times gives ``s^2 = v`` with multiplicity ``m - 1``; between
    consecutive distinct counts ``v_{j+1} < v_j`` there is exactly one root of
    ``sum_j m_j v_j / (v_j - t) = 0`` (found by Brent's method, :func:`scipy.optimize.brentq`);
    and ``s = 0`` closes the list.

    Returns
    -------
    numpy.ndarray, shape (K,), descending
    """
    counts = check_counts(n)
    values, mult = np.unique(counts, return_counts=True)
    values, mult = values[::-1], mult[::-1]  # descending

    def reduced(t: float) -> float:
        return float(np.sum(mult * values / (values - t)))

    roots = [v for v, m in zip(values, mult) for _ in range(m - 1)]
    for hi, lo in zip(values[:-1], values[1:]):
        eps = 1e-14 * hi
        roots.append(brentq(reduced, lo + eps, hi - eps, xtol=1e-15 * hi, rtol=1e-15, maxiter=500))
    roots.append(0.0)
    return np.sort(np.sqrt(np.asarray(roots)))[::-1]


def spectrum_trace(n: Sequence[float] | np.ndarray) -> float:
    """``sum_i s_i^2 = N - sum_k n_k^2 / N`` (the trace of ``Yhat Yhat^T``)."""
    counts = check_counts(n)
    N = counts.sum()
    return float(N - np.sum(counts**2) / N)


def spectrum_pdet(n: Sequence[float] | np.ndarray) -> float:
    """``prod_{i<K} s_i^2 = K prod_k n_k / N`` (the pseudo-determinant of ``Yhat Yhat^T``)."""
    counts = check_counts(n)
    log_pdet = np.log(counts.size) + np.sum(np.log(counts)) - np.log(counts.sum())
    if log_pdet > np.log(np.finfo(float).max):
        raise ValueError(f"n: the pseudo-determinant K prod(n) / N = 10^{log_pdet / np.log(10):.1f} of these counts exceeds the float range")
    return float(np.exp(log_pdet))


def two_group_spectrum(K_A: int, n_A: int, K_B: int, n_B: int) -> np.ndarray:
    """Closed-form singular values of ``Yhat`` for ``K_A`` classes of ``n_A`` and ``K_B`` of ``n_B``.

    ``s^2`` takes the values ``n_A`` (``K_A - 1`` times), ``n_B`` (``K_B - 1`` times),
    ``K n_A n_B / N`` (once) and 0.

    Returns
    -------
    numpy.ndarray, shape (K_A + K_B,), descending
    """
    counts = step(K_A, n_A, K_B, n_B)
    K, N = counts.size, counts.sum()
    sq = [float(n_A)] * (K_A - 1) + [float(n_B)] * (K_B - 1) + [K * n_A * n_B / N, 0.0]
    return np.sort(np.sqrt(sq))[::-1]


# --------------------------------------------------------------------------- the scalar problem


def effective_c(lam_W: float | Sequence[float], lam_H: float, L: int = 1) -> float:
    """``c = (lam_H * prod_l lam_W_l)^(1/(L+1))``, the single strength the optimum depends on."""
    lams, lam_H, L = check_lambdas(lam_W, lam_H, L)
    return float(_effective_c(lams, lam_H))


def _effective_c(lams: np.ndarray, lam_H: np.ndarray | float) -> np.ndarray:
    """:func:`effective_c` of checked strengths, for many problems at once: ``lams`` (..., L), ``lam_H`` (...)."""
    return np.exp((np.log(lam_H) + np.log(lams).sum(-1)) / (lams.shape[-1] + 1))


def threshold(N: float, c: float, L: int = 1) -> float:
    """Smallest singular value of the target that survives: ``s_thr``.

    ``s_thr = L (N c)^((L+1)/(2L)) (L-1)^(-(L-1)/(2L))``, which is ``N c`` for ``L = 1``.
    At ``s = s_thr`` the zero and the nonzero branch of the scalar problem have equal value.

    Parameters
    ----------
    N : float
        Number of samples.
    c : float
        Effective strength (:func:`effective_c`).
    L : int
        Depth.
    """
    N, c, L = _scalar_setting(N, c, L)
    return _threshold(N * c, L)


def _scalar_setting(N: object, c: object, L: object) -> tuple[float, float, int]:
    """Validated ``N`` (> 0), ``c`` (> 0) and ``L`` (>= 1) of the scalar problem, with ``N c`` finite."""
    N, c = positive(N, "N (number of samples)"), positive(c, "c (effective strength)")
    L = whole(L, "L (number of linear layers)", 1, MAX_DEPTH)
    if not np.isfinite(2 * N * c) or not np.isfinite(2 * N):
        raise ValueError(f"N and c: 2 N and N c must be finite floats; got N = {N:g}, c = {c:g}")
    return N, c, L


def _singular_values_arg(s: object, name: str = "s") -> np.ndarray:
    """Singular values: finite numbers >= 0 (a scalar or an array of any shape, empty included)."""
    return _validate.array(s, name, low=0.0, allow_empty=True)


def _threshold(a: float, L: int) -> float:
    """``s_thr`` from ``a = N c``; raises if it overflows."""
    if L == 1:
        return a
    with np.errstate(over="ignore"):
        out = L * a ** ((L + 1) / (2 * L)) * (L - 1) ** (-(L - 1) / (2 * L))
    if not np.isfinite(out):
        raise ValueError(f"N, c, L: the threshold s_thr overflows for N c = {a:g} and L = {L}")
    return float(out)


def scalar_objective(x: float | np.ndarray, s: float | np.ndarray, N: float, c: float, L: int = 1) -> np.ndarray:
    """``phi(x; s) = (x - s)^2/(2N) + (L+1)/2 * c * x^(2/(L+1))``, for ``x >= 0``.

    The contribution of one singular value to (P) once every layer and the features are
    balanced (the Schatten quasi-norm view of depth).
    """
    x, s = _singular_values_arg(x, "x"), _singular_values_arg(s)
    N, c, L = _scalar_setting(N, c, L)
    try:
        np.broadcast_shapes(x.shape, s.shape)
    except ValueError as exc:
        raise ValueError(f"x and s must have broadcastable shapes; got {x.shape} and {s.shape}") from exc
    with np.errstate(over="ignore"):
        value = (x - s) ** 2 / (2 * N) + (L + 1) / 2 * c * x ** (2 / (L + 1))
    if not np.all(np.isfinite(value)):
        raise ValueError(f"x, s: phi(x; s) overflows float64 for entries as large as {max(x.max(), s.max()):g}")
    return value


def _largest_root(s: np.ndarray, a: float, L: int) -> np.ndarray:
    """Largest root of ``x + a x^(-p) = s``, ``p = (L-1)/(L+1)``, by Newton from ``x = s``.

    ``g(x) = x + a x^(-p)`` is convex, so Newton started right of the root decreases
    monotonically to it. Assumes the root exists.
    """
    p = (L - 1) / (L + 1)
    x = s.copy()
    for _ in range(200):
        g = x + a * x ** (-p) - s
        dg = 1 - p * a * x ** (-p - 1)
        step = g / dg
        x = x - step
        if np.all(np.abs(step) <= 1e-15 * np.maximum(s, 1e-300)):
            break
    return x


def nonzero_branch(s: float | np.ndarray, N: float, c: float, L: int = 1) -> np.ndarray:
    """Largest positive stationary point of ``phi(.; s)``, the candidate surviving value.

    For ``L = 1`` it is ``s - N c`` when positive. For ``L >= 2`` it is the largest root of
    ``x + N c x^(-(L-1)/(L+1)) = s``; it exists for ``s`` a little below ``s_thr`` too, where it
    is a local minimiser only. Where no such point exists the entry is ``nan`` (by design: there
    is no branch to report).

    Returns
    -------
    numpy.ndarray, shape of ``s``
    """
    s = np.atleast_1d(_singular_values_arg(s))
    N, c, L = _scalar_setting(N, c, L)
    a = N * c
    out = np.full(s.shape, np.nan)
    if L == 1:
        ok = s > a
        out[ok] = s[ok] - a
        return out
    p = (L - 1) / (L + 1)
    x_min = (p * a) ** (1 / (1 + p))
    ok = s >= x_min + a * x_min ** (-p)
    out[ok] = _largest_root(s[ok], a, L)
    return out


def scalar_minimizer(s: float | np.ndarray, N: float, c: float, L: int = 1) -> np.ndarray:
    """Global minimiser ``x(s)`` of ``phi(.; s)`` over ``x >= 0``.

    ``L = 1``: soft threshold ``max(s - N c, 0)``. ``L >= 2``: 0 for ``s < s_thr``, else the
    largest root of ``x + N c x^(-(L-1)/(L+1)) = s``, which jumps from 0 to ``s_thr (L-1)/L``.
    At ``s = s_thr`` exactly both are optimal; the nonzero one is returned.

    Returns
    -------
    numpy.ndarray, shape of ``s``
    """
    s = np.atleast_1d(_singular_values_arg(s))
    N, c, L = _scalar_setting(N, c, L)
    a = N * c
    if L == 1:
        return np.maximum(s - a, 0.0)
    x = np.zeros_like(s)
    alive = s >= _threshold(a, L)
    x[alive] = _largest_root(s[alive], a, L)
    return x


def critical_lambda(n: Sequence[float] | np.ndarray, *, L: int = 1, bias: bool = True) -> np.ndarray:
    """Per mode, the common strength ``lam = lam_W_l = lam_H`` above which the mode dies.

    Mode ``i`` survives iff ``s_i >= s_thr``; with all strengths equal ``c = lam`` and solving
    ``s_i = s_thr`` gives ``N lam_i = (s_i (L-1)^((L-1)/(2L)) / L)^(2L/(L+1))`` (``s_i / N`` for
    ``L = 1``). For unequal strengths the same numbers are critical values of ``c``.

    Returns
    -------
    numpy.ndarray, shape (K,)
        Aligned with :func:`singular_values` (descending); 0 for the null mode of ``Yhat``.
    """
    L = whole(L, "L (number of linear layers)", 1, MAX_DEPTH)
    counts = check_counts(n)
    s = singular_values(counts, boolean(bias, "bias"))
    N = counts.sum()
    factor = (L - 1) ** ((L - 1) / (2 * L)) / L if L > 1 else 1.0
    return (s * factor) ** (2 * L / (L + 1)) / N


def simplex_etf_gram(K: int) -> np.ndarray:
    """Gram matrix of a simplex equiangular tight frame with unit vectors: ``K/(K-1) (I - 11^T/K)``.

    Returns
    -------
    numpy.ndarray, shape (K, K)
    """
    K = whole(K, "K", 2, MAX_CLASSES)
    return K / (K - 1) * (np.eye(K) - np.ones((K, K)) / K)


def orthogonal_frame_gram(K: int) -> np.ndarray:
    """Gram matrix of ``K`` orthonormal vectors, the identity (balanced, without bias)."""
    K = whole(K, "K", 2, MAX_CLASSES)
    return np.eye(K)


# --------------------------------------------------------------------------- the global minimiser


@dataclass(frozen=True)
class UFMPoint:
    """One point ``(layers, H, b)`` of the UFM, e.g. an explicit global minimiser.

    Attributes
    ----------
    layers : list of numpy.ndarray
        ``[W_1 (d, d), ..., W_L (K, d)]``.
    H : numpy.ndarray, shape (d, N)
    b : numpy.ndarray, shape (K,), or None without bias
    M : numpy.ndarray, shape (d, K)
        Class means (``H = M Y``).
    labels : numpy.ndarray, shape (N,)
    """

    layers: list
    H: np.ndarray
    b: np.ndarray | None
    M: np.ndarray
    labels: np.ndarray

    @property
    def W(self) -> np.ndarray:
        """Product classifier ``W_L ... W_1``, shape (K, d)."""
        from .objective import product

        return product(self.layers)


@dataclass(frozen=True)
class GlobalMinimizer:
    """The global minimiser of (P) in closed form; see :func:`global_minimizer`.

    Attributes
    ----------
    n : numpy.ndarray, shape (K,)
        Counts.
    lam_W : numpy.ndarray, shape (L,)
    lam_H : float
    L : int
    bias : bool
    c : float
        ``(lam_H prod lam_W)^(1/(L+1))``.
    s : numpy.ndarray, shape (K,)
        Singular values of the target, descending.
    U, V : numpy.ndarray, shape (K, K)
        Left and right singular vectors of the target (columns).
    x : numpy.ndarray, shape (K,)
        Optimal singular values of ``W M D``.
    threshold : float
        ``s_thr``: modes with ``s_i < s_thr`` vanish.
    omega, zeta : numpy.ndarray, shape (K,)
        Singular values of the product classifier ``W`` and of ``M D`` on each mode.
    objective : float
        Optimal value ``f* = sum_i phi(x_i; s_i)``.
    W_gram : numpy.ndarray, shape (K, K)
        ``W W^T = U diag(omega^2) U^T``.
    M_gram : numpy.ndarray, shape (K, K)
        ``M^T M = D^-1 V diag(zeta^2) V^T D^-1``.
    b : numpy.ndarray, shape (K,)
        Optimal bias ``n / N`` (zeros without bias).
    """

    n: np.ndarray
    lam_W: np.ndarray
    lam_H: float
    L: int
    bias: bool
    c: float
    s: np.ndarray
    U: np.ndarray
    V: np.ndarray
    x: np.ndarray
    threshold: float
    omega: np.ndarray = field(repr=False)
    zeta: np.ndarray = field(repr=False)
    objective: float
    W_gram: np.ndarray = field(repr=False)
    M_gram: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)

    @property
    def K(self) -> int:
        """Number of classes."""
        return int(self.n.size)

    @property
    def N(self) -> int:
        """Number of samples."""
        return int(self.n.sum())

    @property
    def active(self) -> np.ndarray:
        """Boolean mask of surviving modes (``x_i > 0``), shape (K,)."""
        return self.x > 0

    @property
    def n_active(self) -> int:
        """Number of surviving modes (the rank of ``W`` and of ``M D``)."""
        return int(self.active.sum())

    @property
    def layer_singular_values(self) -> np.ndarray:
        """Singular values of each layer on each mode, ``sqrt(c/lam_W_l) x^(1/(L+1))``, shape (L, K)."""
        return np.sqrt(self.c / self.lam_W)[:, None] * self.x[None, :] ** (1 / (self.L + 1))

    @property
    def WM(self) -> np.ndarray:
        """``W M = U diag(x) V^T D^-1``, shape (K, K): column k is class k's logits minus ``b``."""
        return (self.U * self.x) @ self.V.T / np.sqrt(self.n)[None, :]

    @property
    def logits(self) -> np.ndarray:
        """Logits of each class mean, ``W M + b 1^T``, shape (K, K) (column k for class k)."""
        return self.WM + self.b[:, None]

    @property
    def mean_distances(self) -> np.ndarray:
        """Distances ``||m_i - m_j||`` between optimal class means, shape (K, K).

        Zero off the diagonal means two classes collapsed onto each other (minority collapse).
        """
        g = self.M_gram
        d2 = np.diag(g)[:, None] + np.diag(g)[None, :] - 2 * g
        return np.sqrt(np.maximum(d2, 0.0))

    def construct(self, d: int, seed: int | None = None) -> UFMPoint:
        """An explicit optimal point ``(layers, H, b)`` of width ``d``.

        With ``Q`` (d x r) orthonormal, r = number of active modes:
        ``W_l = Q diag(a_l) Q^T`` for ``l < L``, ``W_L = U_r diag(a_L) Q^T``,
        ``M D = Q diag(zeta) V_r^T``, ``a_l = sqrt(c/lam_W_l) x^(1/(L+1))``.

        Parameters
        ----------
        d : int
            Feature width, at least the number of active modes.
        seed : int, optional
            If given, ``Q`` is a random orthonormal frame (any rotation is optimal too);
            otherwise the first ``r`` coordinate axes.

        Returns
        -------
        UFMPoint
        """
        r = self.n_active
        d = whole(d, "d (feature width, at least the number of surviving modes)", max(r, 1), MAX_WIDTH)
        if seed is None:
            Q = np.eye(d)[:, :r]
        else:
            Q, _ = np.linalg.qr(np.random.default_rng(_validate.seed(seed)).standard_normal((d, max(r, 1))))
            Q = Q[:, :r]
        act = self.active
        Q = Q @ _canonical_rotation(self.V[:, act]).T
        a = self.layer_singular_values[:, act]
        layers = [(Q * a[l]) @ Q.T for l in range(self.L - 1)]
        layers.append((self.U[:, act] * a[-1]) @ Q.T)
        Z = (Q * self.zeta[act]) @ self.V[:, act].T
        M = Z / np.sqrt(self.n)[None, :]
        labels = labels_from_counts(self.n)
        H = M @ one_hot(labels, self.K)
        b = self.b.copy() if self.bias else None
        return UFMPoint(layers=layers, H=H, b=b, M=M, labels=labels)


def _canonical_rotation(V_active: np.ndarray) -> np.ndarray:
    """An ``r x r`` rotation ``O`` that makes :meth:`GlobalMinimizer.construct` basis-free.

    Singular vectors are unique only up to a sign per pair and a rotation inside each repeated
    singular value, and LAPACK's choice differs between CPUs. With ``A = V_r^T G`` for a fixed
    generic ``K x r`` matrix ``G`` and ``O`` the orthogonal polar factor of ``A``, another valid
    choice ``V_r S`` (``S`` orthogonal, commuting with the singular values) turns ``O`` into
    ``S^T O``, so the frame ``Q O^T`` absorbs ``S`` and the constructed point is the same.
    """
    K, r = V_active.shape
    G = np.random.default_rng(20241126).standard_normal((K, r))
    X, _, Yt = np.linalg.svd(V_active.T @ G)
    return X @ Yt


def global_minimizer(
    n: Sequence[float] | np.ndarray,
    lam_W: float | Sequence[float],
    lam_H: float,
    *,
    L: int = 1,
    bias: bool = True,
) -> GlobalMinimizer:
    """Closed-form global minimiser of the L-layer UFM (P), with or without bias.

    Liu (2024), claims 1-5, in the book's convention: the optimal ``W M D`` is
    ``U diag(x) V^T`` where ``T = U diag(s) V^T`` is the target and ``x_i`` minimises the scalar
    problem ``phi(.; s_i)``. Modes with ``s_i < s_thr`` vanish; the others give orthogonal rows of
    ``U^T W`` aligned with the columns of ``M D V``.

    Parameters
    ----------
    n : array_like, shape (K,)
        Class counts (whole numbers >= 1, K >= 2).
    lam_W : float or sequence of L floats
        Weight decay (> 0), shared or per layer.
    lam_H : float
        Feature decay (> 0).
    L : int, default 1
        Number of linear layers.
    bias : bool, default True
        Unregularised bias (target ``Yhat``) or none (target ``D``).

    Returns
    -------
    GlobalMinimizer
    """
    counts = check_counts(n)
    lams, lam_H, L = check_lambdas(lam_W, lam_H, L)
    bias = boolean(bias, "bias")
    N = counts.sum()
    c = effective_c(lams, lam_H, L)
    U, s, V = target_svd(counts, bias)
    x = scalar_minimizer(s, N, c, L)
    omega = np.sqrt(np.prod(c / lams)) * x ** (L / (L + 1))
    zeta = np.sqrt(c / lam_H) * x ** (1 / (L + 1))
    objective = float(np.sum(scalar_objective(x, s, N, c, L)))
    W_gram = (U * omega**2) @ U.T
    inv_sqrt = 1 / np.sqrt(counts)
    M_gram = inv_sqrt[:, None] * ((V * zeta**2) @ V.T) * inv_sqrt[None, :]
    b = counts / N if bias else np.zeros_like(counts)
    return GlobalMinimizer(
        n=counts,
        lam_W=lams,
        lam_H=lam_H,
        L=L,
        bias=bool(bias),
        c=c,
        s=s,
        U=U,
        V=V,
        x=x,
        threshold=threshold(N, c, L),
        omega=omega,
        zeta=zeta,
        objective=objective,
        W_gram=W_gram,
        M_gram=M_gram,
        b=b,
    )
