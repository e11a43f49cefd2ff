"""Phase diagrams of the unconstrained feature model over (imbalance ratio, strength).

The setting is the two-group step profile of Fang et al. (2021) and Dang et al. (2023): ``K_A``
majority classes with ``n_A`` examples each and ``K_B >= 2`` minority classes with ``n_B``, the
imbalance ratio ``rho = n_A / n_B >= 1`` and a fixed total ``N = K_A n_A + K_B n_B``. All layers
and the features share one strength ``lam = lam_W_l = lam_H``. By Liu (2024) (with a bias) and
Dang et al. (2023) (without), mode ``i`` of the target survives iff ``lam`` is below its
critical strength ``lam_i`` (:func:`nclab.theory.critical_lambda`), so the plane
``(rho, lam)`` splits into regions with a fixed number of surviving modes, separated by the
curves ``lam = lam_i(rho)``. Two functions build the picture:

* :func:`phase_map` -- the theory's map on a grid (continuous ratio axis), with a label per
  region saying which classes collapse;
* :func:`train_phase_points` -- trained settings on a grid of whole-count ratios, all of one
  panel in a single batched call of :func:`nclab.ufm.train_many`, with the theory's prediction
  beside every measurement.

Scaling. Multiplying every count by ``k`` multiplies the singular values of the target by
``sqrt(k)`` and ``N`` by ``k``; substituting ``x = sqrt(k) y`` in the scalar problem shows that
the critical strengths scale as ``lam_i(k n) = k^(-1/(L+1)) lam_i(n)``. They are **not**
functions of the proportions ``n / N`` alone (the feature penalty is a sum over samples, the
data term an average). :func:`phase_map` uses this law to evaluate the theory at real-valued
counts with a fine, continuous ratio axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import metrics, theory
from ._validate import positive, whole
from .data import check_counts, step

__all__ = [
    "REGION_NAMES",
    "APART",
    "MINORITY",
    "TOTAL",
    "two_group_counts",
    "whole_ratios",
    "critical_lambdas",
    "PhaseMap",
    "phase_map",
    "PhasePoints",
    "train_phase_points",
]

#: Names of the collapse labels (codes 0, 1, 2) used by :class:`PhaseMap` and :class:`PhasePoints`.
REGION_NAMES = ("all classes apart", "minority collapse", "total collapse")
#: Label codes: every class mean distinct; the minority class means coincide; no mode survives.
APART, MINORITY, TOTAL = 0, 1, 2

#: Minority count of the integer profile on which :func:`phase_map` evaluates the theory before
#: rescaling to ``N`` (ratios are rounded to 1 / _SCALE).
_SCALE = 10**6


# --------------------------------------------------------------------------- validation


def _groups(K_A: object, K_B: object) -> tuple[int, int]:
    K_A = whole(K_A, "K_A (number of majority classes)", 1)
    K_B = whole(K_B, "K_B (number of minority classes)", 2)
    return K_A, K_B


def _setting(K_A: object, K_B: object, L: object, bias: object) -> tuple[int, int, int, bool]:
    """The validated ``K_A, K_B, L, bias`` of one panel."""
    K_A, K_B = _groups(K_A, K_B)
    return K_A, K_B, whole(L, "L (number of linear layers)", 1), _bool(bias, "bias")


def _ratios(ratios: object, name: str = "ratios") -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(ratios, dtype=float))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers >= 1 (n_A / n_B); got {ratios!r}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty one-dimensional sequence; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 1):
        raise ValueError(f"{name} must be finite numbers >= 1 (the majority has at least as many examples); got {arr.tolist()}")
    return arr


def _lambdas(lambdas: object, name: str = "lambdas") -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(lambdas, dtype=float))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be positive numbers; got {lambdas!r}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty one-dimensional sequence; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite numbers > 0; got {arr.tolist()}")
    return arr


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


# --------------------------------------------------------------------------- counts


def two_group_counts(ratio: float, *, K_A: int, K_B: int, N: float) -> np.ndarray:
    """Counts of the two-group profile with imbalance ``ratio`` and total ``N`` (real numbers).

    ``n_B = N / (K_A ratio + K_B)`` and ``n_A = ratio n_B``.

    Parameters
    ----------
    ratio : float
        ``n_A / n_B >= 1``.
    K_A, K_B : int
        Numbers of majority (>= 1) and minority (>= 2) classes.
    N : float
        Total number of examples (> 0).

    Returns
    -------
    numpy.ndarray, shape (K_A + K_B,)
        ``K_A`` entries ``n_A`` then ``K_B`` entries ``n_B``; not necessarily whole numbers.
    """
    K_A, K_B = _groups(K_A, K_B)
    if np.ndim(ratio) != 0:
        raise ValueError(f"ratio must be a single number >= 1; got {ratio!r}")
    rho = float(_ratios(ratio, "ratio")[0])
    N = positive(N, "N (total number of examples)")
    n_B = N / (K_A * rho + K_B)
    return np.concatenate([np.full(K_A, rho * n_B), np.full(K_B, n_B)])


def _whole_counts(ratio: float, K_A: int, K_B: int, N: int) -> np.ndarray | None:
    n = two_group_counts(ratio, K_A=K_A, K_B=K_B, N=N)
    rounded = np.round(n)
    if np.all(np.abs(n - rounded) <= 1e-9 * N) and np.all(rounded >= 1) and rounded.sum() == N:
        return rounded
    return None


def whole_ratios(*, K_A: int, K_B: int, N: int, max_ratio: float = math.inf) -> np.ndarray:
    """Imbalance ratios that the two-group profile with total ``N`` realises in whole counts.

    These are the ratios :func:`train_phase_points` accepts: ``n_A = ratio n_B`` with ``n_B``
    and ``n_A`` whole numbers and ``K_A n_A + K_B n_B = N``.

    Parameters
    ----------
    K_A, K_B : int
        Numbers of majority (>= 1) and minority (>= 2) classes.
    N : int
        Total number of examples (>= K_A + K_B).
    max_ratio : float, optional
        Largest ratio to list.

    Returns
    -------
    numpy.ndarray, shape (m,)
        Ascending; starts at 1 when ``N`` is a multiple of ``K_A + K_B``.
    """
    K_A, K_B = _groups(K_A, K_B)
    N = whole(N, "N (total number of examples)", K_A + K_B)
    out = set()
    for n_B in range(1, N // (K_A + K_B) + 1):
        rest = N - K_B * n_B
        if rest % K_A == 0 and rest // K_A >= n_B and (rest // K_A) % n_B == 0:
            out.add((rest // K_A) // n_B)
    return np.array(sorted(r for r in out if r <= max_ratio), dtype=float)


# --------------------------------------------------------------------------- the theory's map


def _reference_profile(ratio: float, K_A: int, K_B: int, N: float, L: int) -> tuple[np.ndarray, float]:
    """Whole counts with ``n_B = 10^6`` at ``ratio`` (rounded to ``10^-6``), and ``k^(1/(L+1))``.

    ``k`` is their total over ``N``: a strength at total ``N`` is the strength at these counts
    times the factor (``lam_i(k n) = k^(-1/(L+1)) lam_i(n)``, see the module docstring).
    """
    counts = step(K_A, int(round(ratio * _SCALE)), K_B, _SCALE)
    return counts, (counts.sum() / N) ** (1 / (L + 1))


def critical_lambdas(ratios: Sequence[float] | np.ndarray, *, K_A: int, K_B: int, N: float, L: int = 1, bias: bool = True) -> np.ndarray:
    """Critical common strengths of every mode, for real-valued ratios.

    For each ratio the profile is evaluated in whole counts with ``n_B = 10^6`` (ratios rounded
    to ``10^-6``) by :func:`nclab.theory.critical_lambda`, then rescaled to the total ``N`` by
    ``lam_i(k n) = k^(-1/(L+1)) lam_i(n)`` (see the module docstring).

    Parameters
    ----------
    ratios : array_like, shape (R,)
        Imbalance ratios ``n_A / n_B >= 1``.
    K_A, K_B : int
        Numbers of majority (>= 1) and minority (>= 2) classes.
    N : float
        Total number of examples.
    L : int
        Depth.
    bias : bool
        With (target ``Yhat``) or without (target ``D``) an unregularised bias.

    Returns
    -------
    numpy.ndarray, shape (R, K_A + K_B)
        Row ``r`` lists ``lam_i`` aligned with the descending singular values of the target
        (0 for the null mode of ``Yhat``): mode ``i`` survives iff ``lam < lam_i``.
    """
    K_A, K_B, L, bias = _setting(K_A, K_B, L, bias)
    rho = _ratios(ratios)
    N = positive(N, "N (total number of examples)")
    out = np.empty((rho.size, K_A + K_B))
    for r, value in enumerate(rho):
        counts, factor = _reference_profile(value, K_A, K_B, N, L)
        out[r] = theory.critical_lambda(counts, L=L, bias=bias) * factor
    return out


def _label(n_modes: int, minority_spread: float, tol: float) -> int:
    """TOTAL if no mode survives, else MINORITY if the minority means lie within ``tol``, else APART."""
    if n_modes == 0:
        return TOTAL
    return MINORITY if minority_spread <= tol else APART


def _collapse_label(g: theory.GlobalMinimizer, K_A: int) -> int:
    """The label of a closed-form minimiser (tolerance relative to the largest distance of means)."""
    dist = g.mean_distances
    return _label(g.n_active, dist[K_A:, K_A:].max(), 1e-6 * dist.max())


@dataclass(frozen=True)
class PhaseMap:
    """The theory's phase diagram on a grid; built by :func:`phase_map`.

    Attributes
    ----------
    ratios : numpy.ndarray, shape (R,)
        Imbalance ratios ``n_A / n_B`` (x axis).
    lambdas : numpy.ndarray, shape (M,)
        Common strengths ``lam = lam_W_l = lam_H`` (y axis).
    K_A, K_B, N, L, bias
        The setting.
    critical : numpy.ndarray, shape (R, K)
        Critical strengths of the modes at each ratio (:func:`critical_lambdas`).
    modes : numpy.ndarray of int, shape (R, M)
        Number of surviving modes at ``(ratios[r], lambdas[m])``.
    label : numpy.ndarray of int, shape (R, M)
        0 all classes apart, 1 minority collapse (the ``K_B`` minority class means coincide),
        2 total collapse (no mode survives); names in :data:`REGION_NAMES`.
    region_labels : dict
        Number of surviving modes -> sorted tuple of the label codes met with it on this map.
    """

    ratios: np.ndarray
    lambdas: np.ndarray
    K_A: int
    K_B: int
    N: float
    L: int
    bias: bool
    critical: np.ndarray = field(repr=False)
    modes: np.ndarray = field(repr=False)
    label: np.ndarray = field(repr=False)

    @property
    def K(self) -> int:
        """Number of classes."""
        return self.K_A + self.K_B

    @property
    def max_modes(self) -> int:
        """Most modes that can survive: ``K - 1`` with a bias (its null mode is removed), ``K`` without."""
        return self.K - 1 if self.bias else self.K

    @property
    def region_labels(self) -> dict:
        """Number of surviving modes -> sorted tuple of the label codes found with it."""
        out: dict = {}
        for k, lab in zip(self.modes.ravel(), self.label.ravel()):
            out.setdefault(int(k), set()).add(int(lab))
        return {k: tuple(sorted(v)) for k, v in sorted(out.items())}


def phase_map(
    ratios: Sequence[float] | np.ndarray,
    lambdas: Sequence[float] | np.ndarray,
    *,
    K_A: int = 2,
    K_B: int = 2,
    N: float = 120,
    L: int = 1,
    bias: bool = True,
) -> PhaseMap:
    """The theory's phase diagram: surviving modes and collapse label over (ratio, lambda).

    Mode ``i`` survives iff ``lam < lam_i(ratio)`` (Liu 2024 with a bias; Dang et al. 2023
    without), so the number of surviving modes is a count of critical strengths above ``lam``.
    Between two consecutive critical strengths the surviving set is fixed, so the collapse label
    is computed once per interval from the closed-form minimiser
    (:func:`nclab.theory.global_minimizer`, at the interval's geometric midpoint): whether the
    minority class means coincide, or every mode has died.

    Parameters
    ----------
    ratios : array_like, shape (R,)
        Imbalance ratios ``n_A / n_B >= 1``; any real values (see :func:`critical_lambdas`).
    lambdas : array_like, shape (M,)
        Common strengths ``> 0``.
    K_A, K_B : int
        Numbers of majority (>= 1) and minority (>= 2) classes.
    N : float
        Total number of examples; the critical strengths scale as ``N^(-1/(L+1))``.
    L : int
        Depth.
    bias : bool
        With or without an unregularised bias.

    Returns
    -------
    PhaseMap

    Examples
    --------
    >>> m = phase_map([1, 4], [1e-3, 0.03, 1.0], K_A=2, K_B=2, N=120, L=1, bias=True)
    >>> m.modes.tolist()
    [[3, 3, 0], [3, 2, 0]]
    """
    K_A, K_B, L, bias = _setting(K_A, K_B, L, bias)
    rho = _ratios(ratios)
    lams = _lambdas(lambdas)
    crit = critical_lambdas(rho, K_A=K_A, K_B=K_B, N=N, L=L, bias=bias)
    modes = np.sum(crit[:, :, None] > lams[None, None, :], axis=1)
    label = np.empty_like(modes)
    for r, value in enumerate(rho):
        counts, factor = _reference_profile(value, K_A, K_B, float(N), L)  # lam at N -> at counts: divide
        edges = np.unique(crit[r][crit[r] > 0])  # ascending distinct critical strengths
        # label of the interval with k surviving modes (k = number of crit above lam)
        probes = np.concatenate([[edges[0] / 2], np.sqrt(edges[:-1] * edges[1:]), [edges[-1] * 2]])
        by_modes = {}
        for lam in probes:
            k = int(np.sum(crit[r] > lam))
            g = theory.global_minimizer(counts, lam / factor, lam / factor, L=L, bias=bias)
            by_modes[k] = _collapse_label(g, K_A)
        label[r] = [by_modes[int(k)] for k in modes[r]]
    return PhaseMap(ratios=rho, lambdas=lams, K_A=K_A, K_B=K_B, N=float(N), L=L, bias=bias, critical=crit, modes=modes, label=label)


# --------------------------------------------------------------------------- trained points


@dataclass(frozen=True)
class PhasePoints:
    """Trained settings over a grid with the theory's prediction beside each; see :func:`train_phase_points`.

    Attributes
    ----------
    ratio, lam : numpy.ndarray, shape (P,)
        Imbalance ratio and common strength of each setting.
    counts : numpy.ndarray, shape (P, K)
        Whole class counts (total ``N`` each).
    K_A, K_B, N, L, bias
        The setting.
    singular_values : numpy.ndarray, shape (P, K)
        Singular values of the trained ``W M D``, descending.
    modes : numpy.ndarray of int, shape (P,)
        Trained surviving modes: singular values above ``tol`` (absolute).
    label : numpy.ndarray of int, shape (P,)
        Trained collapse label (codes of :data:`REGION_NAMES`).
    modes_theory, label_theory : numpy.ndarray of int, shape (P,)
        The same from the closed form at the same counts.
    critical : numpy.ndarray, shape (P, K)
        Critical strengths of the modes at the setting's counts.
    margin : numpy.ndarray, shape (P,)
        Relative distance ``min_i |lam / lam_i - 1|`` to the nearest boundary (``inf`` if none).
    gap : numpy.ndarray, shape (P,)
        Relative objective gap ``(f - f*) / f*`` of each trained model.
    tol : float
        Absolute tolerance on singular values, ``1e-6 sqrt(N)``.
    mean_tol : float
        Absolute tolerance on distances between class means.
    """

    ratio: np.ndarray
    lam: np.ndarray
    counts: np.ndarray = field(repr=False)
    K_A: int
    K_B: int
    N: int
    L: int
    bias: bool
    singular_values: np.ndarray = field(repr=False)
    modes: np.ndarray = field(repr=False)
    label: np.ndarray = field(repr=False)
    modes_theory: np.ndarray = field(repr=False)
    label_theory: np.ndarray = field(repr=False)
    critical: np.ndarray = field(repr=False)
    margin: np.ndarray = field(repr=False)
    gap: np.ndarray = field(repr=False)
    tol: float = 0.0
    mean_tol: float = 0.0

    @property
    def agree(self) -> np.ndarray:
        """Boolean (P,): the trained mode count and collapse label match the theory."""
        return (self.modes == self.modes_theory) & (self.label == self.label_theory)

    def __len__(self) -> int:
        return int(self.ratio.size)


def train_phase_points(
    ratios: Sequence[float] | np.ndarray,
    lambdas: Sequence[float] | np.ndarray,
    *,
    K_A: int = 2,
    K_B: int = 2,
    N: int = 120,
    L: int = 1,
    bias: bool = True,
    d: int | None = None,
    mean_tol: float = 1e-5,
    seed: int = 0,
    progress: bool = False,
    device: str | None = None,
) -> PhasePoints:
    """Train every ``(ratio, lambda)`` of a grid in ONE batched call and compare with the theory.

    All ``len(ratios) * len(lambdas)`` settings go to :func:`nclab.ufm.train_many` together
    (``lam_W = lam_H = lambda``). A trained mode survives when its singular value of ``W M D``
    exceeds the absolute tolerance ``1e-6 sqrt(N)`` (never a tolerance relative to the largest
    singular value: a model at the origin has only tiny ones). The minority classes count as
    collapsed when all their class means lie within ``mean_tol`` of each other, and the model
    as totally collapsed when no mode survives.

    Parameters
    ----------
    ratios : array_like, shape (R,)
        Ratios realisable in whole counts with total ``N`` (see :func:`whole_ratios`).
    lambdas : array_like, shape (M,)
        Common strengths ``> 0``.
    K_A, K_B : int
        Numbers of majority (>= 1) and minority (>= 2) classes.
    N : int
        Total number of examples, shared by all settings (``train_many`` needs one ``N``).
    L : int
        Depth.
    bias : bool
        With or without an unregularised bias.
    d : int, optional
        Feature width; default ``2 K``. (With ``d = K`` the trainer's repair of lost modes for
        ``L >= 2`` can find no free direction and a mode stays lost, without a bias in
        particular; ``2 K`` leaves room.)
    mean_tol : float
        Absolute tolerance on the distances between minority class means.
    seed, progress, device
        Passed to :func:`nclab.ufm.train_many`.

    Returns
    -------
    PhasePoints
        Settings in the order ``ratios`` (outer) x ``lambdas`` (inner).
    """
    from .ufm import train_many

    K_A, K_B, L, bias = _setting(K_A, K_B, L, bias)
    rho = _ratios(ratios)
    lams = _lambdas(lambdas)
    N = whole(N, "N (total number of examples)", K_A + K_B)
    K = K_A + K_B
    d = 2 * K if d is None else whole(d, "d (feature width)", 1)
    mean_tol = positive(mean_tol, "mean_tol")
    profiles = []
    for value in rho:
        counts = _whole_counts(float(value), K_A, K_B, N)
        if counts is None:
            raise ValueError(
                f"ratios must give whole counts with N = {N}, K_A = {K_A}, K_B = {K_B}; ratio {value:g} does not "
                f"(allowed: {whole_ratios(K_A=K_A, K_B=K_B, N=N, max_ratio=50).astype(int).tolist()} up to 50)"
            )
        profiles.append(check_counts(counts))
    n = np.repeat(np.stack(profiles), lams.size, axis=0)
    crit = np.repeat([theory.critical_lambda(c, L=L, bias=bias) for c in profiles], lams.size, axis=0)
    lam = np.tile(lams, rho.size)
    ratio = np.repeat(rho, lams.size)
    runs = train_many(n, d=d, lam_W=lam, lam_H=lam, L=L, bias=bias, seed=seed, progress=progress, device=device)
    tol = metrics.alive_tolerance(N)
    P = len(runs)
    sv = np.empty((P, K))
    modes, label, modes_th, label_th = (np.empty(P, dtype=int) for _ in range(4))
    gap = np.empty(P)
    for p, run in enumerate(runs):
        M = run.means
        sv[p] = metrics.wmd_singular_values(run.W, M, n[p])
        modes[p] = int(np.sum(sv[p] > tol))
        minority = M[:, K_A:]
        spread = np.max(np.linalg.norm(minority[:, :, None] - minority[:, None, :], axis=0))
        label[p] = _label(modes[p], spread, mean_tol)
        g = run.theory()
        modes_th[p] = g.n_active
        label_th[p] = _collapse_label(g, K_A)
        gap[p] = (run.objective - g.objective) / g.objective
    with np.errstate(divide="ignore"):
        rel = np.where(crit > 0, np.abs(lam[:, None] / np.where(crit > 0, crit, 1.0) - 1.0), np.inf)
    margin = rel.min(axis=1)
    return PhasePoints(
        ratio=ratio, lam=lam, counts=n, K_A=K_A, K_B=K_B, N=N, L=L, bias=bias, singular_values=sv, modes=modes,
        label=label, modes_theory=modes_th, label_theory=label_th, critical=crit, margin=margin, gap=gap,
        tol=tol, mean_tol=mean_tol,
    )  # fmt: skip
