"""Matplotlib figures shared by the chapters of the book.

Every function draws on an optional ``ax`` (created when ``None``) and returns the Axes (or the
Figure for multi-panel plots), so a chapter can compose panels freely. Colours come from
:func:`class_colors`, so class ``k`` has the same colour in every figure of the book. Classes
and modes are numbered from 1 in labels, as in the text (``n_1, ..., n_K``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import _validate, theory
from ._validate import boolean, whole

__all__ = [
    "class_colors",
    "plot_gram",
    "plot_grams",
    "plot_ufm_comparison",
    "plot_geometry",
    "plot_spectrum",
    "plot_history",
    "plot_scalar_problem",
    "plot_sweep",
    "plot_phase_diagram",
]

#: Diverging colour map of the Gram heatmaps (symmetric scale around 0).
GRAM_CMAP = "RdBu_r"

#: Readable names of the history keys logged by :func:`nclab.train`.
HISTORY_LABELS = {
    "objective": "objective $f$",
    "nc1": r"NC1 $\mathrm{tr}(\Sigma_W\Sigma_B^+)/K$",
    "nc1_weighted": "NC1 (weighted)",
    "nc3": "NC3 (self-duality)",
    "nc4": "NC4 (agreement with nearest class mean)",
    "W_gram_error": r"$\|WW^\top - $theory$\|/\|$theory$\|$",
    "M_gram_error": r"$\|M^\top M - $theory$\|/\|$theory$\|$",
    "gap": r"gap $(f - f^*)/f^*$",
}


def class_colors(K: int) -> list:
    """Qualitative colours of classes ``1..K``, the same in every figure of the book.

    Parameters
    ----------
    K : int
        Number of classes (>= 1).

    Returns
    -------
    list of K RGBA tuples
        ``tab10`` for ``K <= 10``, ``tab20`` for ``K <= 20``, evenly spaced ``turbo`` beyond.
    """
    K = whole(K, "K", 1, _validate.MAX_CLASSES)
    if K <= 10:
        cmap = plt.get_cmap("tab10")
        return [tuple(cmap(k)) for k in range(K)]
    if K <= 20:
        cmap = plt.get_cmap("tab20")
        return [tuple(cmap(k)) for k in range(K)]
    cmap = plt.get_cmap("turbo")
    return [tuple(cmap(t)) for t in np.linspace(0.05, 0.95, K)]


def _new_ax(ax: Axes | None, figsize: tuple[float, float] = (4.5, 3.5)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _square(G: object, name: str = "G") -> np.ndarray:
    G = _validate.array(G, name, ndim=2, describe="a square (K, K) matrix")
    if G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) matrix; got shape {G.shape}")
    return G


def _figsize(figsize: object) -> tuple[float, float] | None:
    """None, or a pair of positive numbers (inches)."""
    if figsize is None:
        return None
    if isinstance(figsize, (str, bytes)) or np.ndim(figsize) != 1 or len(figsize) != 2:  # type: ignore[arg-type]
        raise _validate.ArgumentTypeError(f"figsize must be a pair (width, height) of positive numbers; got {figsize!r}")
    return (_validate.positive(figsize[0], "figsize[0] (width)"), _validate.positive(figsize[1], "figsize[1] (height)"))  # type: ignore[index]


def plot_gram(
    G: np.ndarray,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    labels: Sequence[str] | None = None,
    annotate: bool = True,
    vmax: float | None = None,
    colorbar: bool = True,
) -> Axes:
    """Heatmap of a ``K x K`` Gram matrix on a symmetric diverging scale.

    Parameters
    ----------
    G : array_like, shape (K, K)
        Gram matrix, e.g. ``W W^T`` or ``M^T M``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when ``None``.
    title : str, optional
    labels : sequence of K str, optional
        Tick labels; default ``1..K``.
    annotate : bool, default True
        Write the values in the cells (only when ``K <= 10``).
    vmax : float, optional
        The scale runs over ``[-vmax, vmax]``; default ``max |G|`` (1 for a zero matrix).
    colorbar : bool, default True
        Add a colour bar beside the heatmap.

    Returns
    -------
    matplotlib Axes
    """
    G = _square(G)
    K = G.shape[0]
    annotate, colorbar = boolean(annotate, "annotate"), boolean(colorbar, "colorbar")
    if vmax is not None:
        vmax = _validate.real(vmax, "vmax", low=0.0, high=1e300, low_open=True)
    ax = _new_ax(ax, (3.8, 3.3))
    if vmax is None:
        vmax = float(np.max(np.abs(G))) if G.size else 1.0
        if not np.isfinite(vmax) or vmax == 0:
            vmax = 1.0
    im = ax.imshow(G, cmap=GRAM_CMAP, vmin=-vmax, vmax=vmax)
    ticks = np.arange(K)
    if labels is None:
        labels = [str(k + 1) for k in range(K)]
    elif len(labels) != K:
        raise ValueError(f"labels must have K = {K} entries; got {len(labels)}")
    if K <= 20:
        ax.set_xticks(ticks, labels)
        ax.set_yticks(ticks, labels)
    if annotate and K <= 10:
        for i in range(K):
            for j in range(K):
                v = G[i, j]
                dark = abs(v) > 0.6 * vmax
                ax.text(j, i, f"{round(v, 2) + 0.0:.2f}", ha="center", va="center", fontsize=8 if K <= 6 else 6,
                        color="white" if dark else "black")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_grams(
    grams: Mapping[str, np.ndarray],
    *,
    normalize: bool = True,
    figsize: tuple[float, float] | None = None,
    annotate: bool = True,
    ncols: int | None = None,
) -> Figure:
    """A grid of Gram heatmaps on one shared scale, titled by the keys of ``grams``.

    Parameters
    ----------
    grams : dict of str to array_like, each (K, K)
        The matrices, in display order.
    normalize : bool, default True
        Divide each matrix by its Frobenius norm (zero matrices are left as they are), so shapes
        can be compared regardless of scale.
    figsize : (float, float), optional
        Default ``(3.2 * len(grams) + 0.8, 3.2)``.
    annotate : bool, default True
        Write the values in the cells when ``K <= 10``.
    ncols : int, optional
        Heatmaps per row; default all in one row. Fewer columns keep the numbers readable
        when the figure is shrunk to a page's width (``ncols=2`` for four matrices).

    Returns
    -------
    matplotlib Figure
    """
    if not isinstance(grams, Mapping):
        raise _validate.ArgumentTypeError(f"grams must be a dict of title -> (K, K) matrix; got {type(grams).__name__}")
    if not grams:
        raise ValueError("grams must contain at least one matrix")
    normalize, annotate, figsize = boolean(normalize, "normalize"), boolean(annotate, "annotate"), _figsize(figsize)
    m = len(grams)
    ncols = m if ncols is None else whole(ncols, "ncols", 1)
    ncols = min(ncols, m)
    nrows = -(-m // ncols)
    mats = {}
    for name, G in grams.items():
        G = _square(G, f"grams[{name!r}]")
        if normalize:
            nrm = np.linalg.norm(G)
            if nrm > 0:
                G = G / nrm
        mats[name] = G
    vmax = max(float(np.max(np.abs(G))) for G in mats.values()) or 1.0
    if figsize is None:
        figsize = (3.2 * ncols + 0.8, 3.2 * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax, (name, G) in zip(flat, mats.items()):
        plot_gram(G, ax, title=name, annotate=annotate, vmax=vmax, colorbar=False)
    for ax in flat[m:]:
        ax.remove()
    im = flat[0].images[0]
    fig.colorbar(im, ax=flat[:m], fraction=0.046 / max(ncols, 1) * 2, pad=0.02,
                 label="normalised value" if normalize else "value")
    return fig


def plot_ufm_comparison(
    with_bias: Mapping[str, object],
    without_bias: Mapping[str, object],
    *,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """A network's Gram matrices and modes beside the UFM's, with bias and without.

    The first row compares with the UFM with bias, the second with the UFM without: the
    network's normalised ``M^T M`` (centred as that model prescribes) beside the prediction
    at the fitted strength, and the same for ``W W^T`` when the analysis has a classifier.
    The last row shows, for each model, the singular values of ``W M D`` relative to the
    largest by mode ``1..K``, predicted (line) and measured (circles).

    Parameters
    ----------
    with_bias, without_bias : dict
        Results of :func:`nclab.nets.analyze_features` (or :func:`nclab.analysis.summarize`)
        with ``bias=True`` and ``bias=False``, e.g. a :class:`nclab.analysis.CollapseReport`'s.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib Figure
    """
    rows = [(with_bias, "with bias"), (without_bias, "without bias")]
    pairs = [("M", r"$M^\top M$")] + ([("W", r"$WW^\top$")] if all("W_gram" in r for r, _ in rows) else [])
    ncols = 2 * len(pairs)
    fig = plt.figure(figsize=figsize or (2.3 * ncols + 0.6, 7.4), layout="constrained")
    grid = fig.add_gridspec(3, ncols, height_ratios=[1, 1, 0.9])
    for i, (r, label) in enumerate(rows):
        for j, (key, tex) in enumerate(pairs):
            net, th = (np.asarray(r[k], dtype=float) for k in (f"{key}_gram", f"{key}_theory_gram"))
            net, th = (G / (np.linalg.norm(G) or 1.0) for G in (net, th))
            vmax = max(np.abs(net).max(), np.abs(th).max()) or 1.0
            plot_gram(net, fig.add_subplot(grid[i, 2 * j]), title=f"network {tex}", annotate=False, vmax=vmax,
                      colorbar=False)  # fmt: skip
            plot_gram(th, fig.add_subplot(grid[i, 2 * j + 1]), annotate=False, vmax=vmax, colorbar=False,
                      title=f"UFM {label}\ndistance {r[f'{key}_theory']:.2f}")  # fmt: skip
        fig.axes[-2 * len(pairs)].set_ylabel(f"UFM {label}")
        span = ncols // 2
        ax = fig.add_subplot(grid[2, i * span : (i + 1) * span])
        k = np.arange(1, len(r["sv_theory"]) + 1)
        ax.plot(k, r["sv_theory"], "-", color="C0", lw=1.6, label=rf"UFM, $\lambda$ = {r['lam_eff']:.2g}")
        if "sv" in r:
            ax.plot(k, r["sv"], "o", color="C3", ms=4, mfc="none", label="network")
        ax.set(xlabel="mode", ylim=(-0.05, 1.08), title=f"modes of $WMD$, UFM {label}")
        ax.set_ylabel("singular value / largest" if i == 0 else "")
        ax.legend(fontsize=7)
    return fig


def _principal_directions(X: np.ndarray, dim: int) -> np.ndarray:
    """Top ``dim`` left singular vectors of ``X`` (d, m), padded with zeros when rank is lower.

    Signs are fixed so that the largest entry (in absolute value) of each direction is positive.
    """
    d = X.shape[0]
    P = np.zeros((d, dim))
    if np.any(X):
        U, s, _ = np.linalg.svd(X, full_matrices=False)
        r = min(dim, U.shape[1])
        P[:, :r] = U[:, :r]
        for j in range(r):
            i = np.argmax(np.abs(P[:, j]))
            if P[i, j] < 0:
                P[:, j] = -P[:, j]
    return P


def plot_geometry(
    M: np.ndarray,
    W: np.ndarray | None = None,
    ax: Axes | None = None,
    *,
    dim: int = 2,
    counts: Sequence[float] | None = None,
    title: str | None = None,
    rescale: bool = True,
    legend: bool = True,
) -> Axes:
    """Class means (solid arrows) and classifier rows (dashed) in their top principal plane.

    Parameters
    ----------
    M : array_like, shape (d, K)
        Class means as columns.
    W : array_like, shape (K, d), optional
        Classifier (product of the layers); row ``k`` is drawn in class ``k``'s colour.
    ax : matplotlib Axes, optional
        For ``dim = 3`` it must be a 3d Axes; a new figure is created when ``None``.
    dim : {2, 3}
        Project on the top ``dim`` principal directions (uncentred SVD) of ``[M, W^T]``.
    counts : sequence of K numbers, optional
        Class sizes, shown in the legend as ``class k (n_k)``.
    title : str, optional
    rescale : bool, default True
        Classifier rows and class means often differ in scale by a large factor; scale ``W``
        so its longest row is as long as the longest class mean (the legend states the factor).
    legend : bool, default True

    Returns
    -------
    matplotlib Axes

    Notes
    -----
    A vector of (numerically) zero length is drawn as a dot at the origin. When everything is
    zero the axes show the note "all vectors collapsed to 0".
    """
    dim = whole(dim, "dim", 2, 3)
    rescale, legend = boolean(rescale, "rescale"), boolean(legend, "legend")
    M = _validate.array(M, "M", ndim=2, describe="a (d, K) matrix, class means as columns")
    d, K = M.shape
    if W is not None:
        W = _validate.array(W, "W", shape=(K, d), describe=f"of shape (K, d) = {(K, d)}")
    if counts is not None:
        counts = _validate.array(counts, "counts", shape=(K,), describe=f"a sequence of K = {K} class sizes").tolist()
    if ax is None:
        fig = plt.figure(figsize=(4.5, 4.2))
        ax = fig.add_subplot(projection="3d" if dim == 3 else None)
    elif dim == 3 and getattr(ax, "name", "") != "3d":
        raise ValueError("dim = 3 needs a 3d Axes (projection='3d')")

    factor = 1.0
    m_max = float(np.max(np.linalg.norm(M, axis=0))) if K else 0.0
    if W is not None:
        w_max = float(np.max(np.linalg.norm(W, axis=1)))
        if rescale and w_max > 0 and m_max > 0:
            factor = m_max / w_max
        Wd = W * factor
        X = np.concatenate([M, Wd.T], axis=1)
    else:
        Wd = None
        X = M
    P = _principal_directions(X, dim)
    Pm = P.T @ M  # (dim, K)
    Pw = P.T @ Wd.T if Wd is not None else None
    scale = float(np.max(np.abs(X))) if X.size else 0.0
    colors = class_colors(K)
    tol = 1e-9 * max(scale, 1e-300)

    def draw(vec: np.ndarray, color: tuple, dashed: bool, gid: str) -> None:
        ls = "--" if dashed else "-"
        if np.linalg.norm(vec) <= tol or scale == 0:
            ax.plot(*[[0.0]] * dim, marker="o", ms=7 if not dashed else 4, color=color,
                    ls="none", gid=gid, mfc=color if not dashed else "none")
            return
        ax.plot(*[[0.0, v] for v in vec], ls=ls, lw=2.0 if not dashed else 1.5, color=color, gid=gid)
        if dim == 2:
            ax.annotate("", xy=tuple(vec), xytext=tuple(vec * 0.9), gid=gid + "-head",
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=1.5, shrinkA=0, shrinkB=0,
                                        mutation_scale=14))
        else:
            ax.plot(*[[v] for v in vec], marker="o" if not dashed else "^", ms=6, color=color,
                    mfc=color if not dashed else "none", ls="none", gid=gid + "-head")

    for k in range(K):
        draw(Pm[:, k], colors[k], False, f"mean-{k}")
        if Pw is not None:
            draw(Pw[:, k], colors[k], True, f"classifier-{k}")

    if scale == 0:
        if dim == 2:
            ax.text(0.5, 0.8, "all vectors collapsed to 0", transform=ax.transAxes, ha="center")
        else:
            ax.text2D(0.5, 0.85, "all vectors collapsed to 0", transform=ax.transAxes, ha="center")
        lim = 1.0
    else:
        allp = Pm if Pw is None else np.concatenate([Pm, Pw], axis=1)
        lim = 1.15 * float(np.max(np.abs(allp)))
        if lim == 0:
            lim = 1.0
    if dim == 2:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.85", lw=0.8, zorder=0)
        ax.axvline(0, color="0.85", lw=0.8, zorder=0)
        ax.set_xlabel("principal direction 1")
        ax.set_ylabel("principal direction 2")
    else:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_zlim(-lim, lim)
        ax.set_box_aspect((1, 1, 1))
        ax.locator_params(nbins=4)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_zlabel("PC 3")
    if title is not None:
        ax.set_title(title)
    if legend:
        handles = []
        for k in range(K):
            lab = f"class {k + 1}" + (f" ({counts[k]:g})" if counts is not None else "")
            handles.append(Line2D([], [], color=colors[k], lw=2, label=lab))
        handles.append(Line2D([], [], color="0.3", lw=2, label="class mean $m_k$"))
        if W is not None:
            wlab = "classifier row $w_k$"
            if factor != 1.0:
                wlab += f" (×{factor:.2g})"
            handles.append(Line2D([], [], color="0.3", lw=1.5, ls="--", label=wlab))
        if dim == 2:
            ax.legend(handles=handles, fontsize=7, loc="best")
        else:
            ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.05, 0.5))
    return ax


def plot_spectrum(
    n: Sequence[float] | np.ndarray,
    *,
    bias: bool = True,
    threshold: float | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Singular values ``s_i`` of the target against their index, with the interlacing bounds.

    Parameters
    ----------
    n : array_like, shape (K,)
        Class counts.
    bias : bool, default True
        Target ``Yhat = (I - n 1^T/N) D`` (with bias) or ``D = diag(sqrt(n))`` (without).
    threshold : float, optional
        ``s_thr`` (:func:`nclab.theory.threshold`): drawn as a horizontal line; modes with
        ``s_i >= s_thr`` are filled (survive), the others hollow (collapse to 0). Without a
        threshold every nonzero mode is filled.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Notes
    -----
    With the bias, ``sqrt(n_(i+1)) <= s_i <= sqrt(n_(i))`` (sorted counts) and ``s_K = 0``
    (:func:`nclab.theory.interlacing_bounds`); these intervals are drawn as grey bars.
    """
    s = theory.singular_values(n, bias)
    if threshold is not None:
        threshold = _validate.nonneg(threshold, "threshold")
    K = s.size
    idx = np.arange(1, K + 1)
    ax = _new_ax(ax)
    if bias:
        lower, upper = theory.interlacing_bounds(n)
        ax.vlines(idx[:-1], lower[:-1], upper[:-1], color="0.6", lw=6, alpha=0.5,
                  label=r"$[\sqrt{n_{(i+1)}}, \sqrt{n_{(i)}}]$")
    cut = threshold if threshold is not None else 0.0
    alive = s >= cut if threshold is not None else s > 0
    ax.plot(idx[alive], s[alive], "o", color="C0", ms=7, ls="none", label="$s_i$ (survives)")
    ax.plot(idx[~alive], s[~alive], "o", mfc="none", mec="C0", ms=7, ls="none",
            label="$s_i$ (collapses to 0)")
    if threshold is not None:
        ax.axhline(threshold, color="C3", ls="--", lw=1.2, label=r"$s_{\mathrm{thr}}$")
    ax.set_xticks(idx)
    ax.set_xlabel("mode $i$")
    ax.set_ylabel("singular value")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.legend(fontsize=8)
    return ax


def plot_history(
    history: Mapping[str, np.ndarray],
    keys: Sequence[str] = ("objective", "nc1"),
    ax: Axes | None = None,
    *,
    logy: bool = True,
) -> Axes:
    """Curves of logged metrics against ``history["step"]``.

    Parameters
    ----------
    history : dict of str to array_like, each (T,)
        As in :attr:`nclab.TrainResult.history`; must contain ``"step"`` and every key.
    keys : sequence of str
        Which series to draw, one curve each.
    ax : matplotlib Axes, optional
    logy : bool, default True
        Log scale on y. Non-positive values are clipped to half the smallest positive value
        drawn (``1e-16`` when there is none), so exact zeros stay visible at the bottom.

    Returns
    -------
    matplotlib Axes
    """
    if not isinstance(history, Mapping):
        raise _validate.ArgumentTypeError(f"history must be a dict of name -> values (e.g. TrainResult.history); got {type(history).__name__}")
    if "step" not in history:
        raise ValueError("history must contain 'step'")
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
        raise _validate.ArgumentTypeError(f"keys must be a sequence of names in history, e.g. ('objective', 'nc1'); got {keys!r}")
    logy = boolean(logy, "logy")
    steps = _validate.array(history["step"], "history['step']", ndim=1)
    for key in keys:
        if key not in history:
            raise ValueError(f"keys: {key!r} is not in history (has {sorted(history)})")
        _validate.array(history[key], f"history[{key!r}]", shape=(steps.size,), allow_nonfinite=True, describe=f"one value per step ({steps.size})")
    ax = _new_ax(ax)
    series = [np.asarray(history[key], dtype=float) for key in keys]
    floor = 1e-16
    if logy:
        pos = [v[np.isfinite(v) & (v > 0)] for v in series]
        pos = [p for p in pos if p.size]
        if pos:
            floor = 0.5 * min(float(p.min()) for p in pos)
    for i, (key, v) in enumerate(zip(keys, series)):
        if logy:
            v = np.where(np.isfinite(v), np.maximum(v, floor), v)
        ax.plot(steps, v, color=f"C{i}", lw=1.6, label=HISTORY_LABELS.get(key, key))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.legend(fontsize=8)
    return ax


def plot_scalar_problem(
    s_values: Sequence[float],
    N: float,
    c: float,
    L: int,
    ax: Axes | None = None,
    *,
    x_max: float | None = None,
) -> Axes:
    """The scalar problem ``phi(x; s) / phi(0; s)`` for several ``s``, with its global minimiser.

    Parameters
    ----------
    s_values : sequence of float
        Singular values of the target (``> 0``).
    N : float
        Number of samples.
    c : float
        Effective strength :func:`nclab.theory.effective_c`.
    L : int
        Depth.
    ax : matplotlib Axes, optional
    x_max : float, optional
        Right end of the x range; default ``1.1 max(s)``.

    Returns
    -------
    matplotlib Axes

    Notes
    -----
    ``phi(x; s) = (x - s)^2/(2N) + (L+1)/2 c x^(2/(L+1))`` (:func:`nclab.theory.scalar_objective`);
    the global minimiser (:func:`nclab.theory.scalar_minimizer`) is marked with a star. Dividing
    by ``phi(0; s) = s^2/(2N)`` puts every curve at 1 for ``x = 0``, so a curve dipping below 1
    is a mode that survives.
    """
    s_values = np.atleast_1d(_validate.array(s_values, "s_values", ndim=(0, 1)))
    if np.any(s_values <= 0):
        raise ValueError(f"s_values must be positive singular values; got {s_values.tolist()}")
    theory.threshold(N, c, L)  # checks N, c and L
    x_max = 1.1 * float(s_values.max()) if x_max is None else _validate.positive(x_max, "x_max")
    try:
        theory.scalar_objective(x_max, s_values, N, c, L)
    except ValueError as exc:
        raise ValueError(f"s_values and x_max are too large to plot phi: {exc}") from None
    ax = _new_ax(ax)
    x = np.linspace(0.0, x_max, 600)
    xs = theory.scalar_minimizer(s_values, N, c, L)
    for i, (s, xstar) in enumerate(zip(s_values, xs)):
        phi0 = float(theory.scalar_objective(0.0, s, N, c, L))
        y = theory.scalar_objective(x, s, N, c, L) / phi0
        ax.plot(x, y, color=f"C{i}", lw=1.6, label=f"s = {s:.3g}")
        ystar = float(theory.scalar_objective(xstar, s, N, c, L)) / phi0
        ax.plot([xstar], [ystar], marker="*", ms=12, color=f"C{i}", mec="black", mew=0.6, ls="none")
    ax.axhline(1.0, color="0.7", lw=0.8, zorder=0)
    lowest = min(float(np.min(ln.get_ydata())) for ln in ax.get_lines())
    ax.set_ylim(min(0.0, lowest - 0.05), 1.6)
    ax.plot([], [], marker="*", ms=10, color="0.5", mec="black", ls="none", label="global minimiser")
    ax.set_xlabel("$x$ (singular value of $W Z$)")
    ax.set_ylabel(r"$\varphi(x; s)\,/\,\varphi(0; s)$")
    ax.legend(fontsize=8)
    return ax


def plot_sweep(
    param: Sequence[float],
    theory_values: np.ndarray,
    trained_values: np.ndarray | None = None,
    ax: Axes | None = None,
    *,
    xlabel: str = "lambda",
    ylabel: str = "value",
    labels: Sequence[str] | None = None,
    logx: bool = True,
) -> Axes:
    """Theory curves (lines) and trained values (markers) over a parameter grid.

    Parameters
    ----------
    param : array_like, shape (m,)
        The grid, e.g. values of lambda.
    theory_values : array_like, shape (m,) or (m, k)
        ``k`` series predicted by the theory.
    trained_values : array_like, same shape as ``theory_values``, optional
        The same quantities measured on trained models; NaN entries are skipped.
    ax : matplotlib Axes, optional
    xlabel, ylabel : str
        Axis labels (``"lambda"`` is typeset as ``λ``).
    labels : sequence of k str, optional
        Series names for the legend; default ``series 1..k``.
    logx : bool, default True
        Log scale on x.

    Returns
    -------
    matplotlib Axes
    """
    logx = boolean(logx, "logx")
    p = _validate.array(param, "param", ndim=1)
    if logx and np.any(p <= 0):
        raise ValueError(f"param must be > 0 on a log axis (logx=True); got minimum {p.min():g}")
    tv = _validate.array(theory_values, "theory_values", ndim=(1, 2), allow_nonfinite=True)
    if tv.ndim == 1:
        tv = tv[:, None]
    if tv.ndim != 2 or tv.shape[0] != p.size:
        raise ValueError(f"theory_values must have shape (m,) or (m, k) with m = {p.size}; got {np.shape(theory_values)}")
    k = tv.shape[1]
    tr = None
    if trained_values is not None:
        tr = _validate.array(trained_values, "trained_values", ndim=(1, 2), allow_nonfinite=True)
        if tr.ndim == 1:
            tr = tr[:, None]
        if tr.shape != tv.shape:
            raise ValueError(f"trained_values must have the shape of theory_values {tv.shape}; got {tr.shape}")
    if labels is None:
        labels = [f"series {j + 1}" for j in range(k)] if k > 1 else [""]
    elif len(labels) != k:
        raise ValueError(f"labels must have k = {k} entries; got {len(labels)}")
    ax = _new_ax(ax)
    for j in range(k):
        name = labels[j]
        ax.plot(p, tv[:, j], color=f"C{j}", lw=1.6, label=(f"{name} theory" if name else "theory"))
        if tr is not None:
            ax.plot(p, tr[:, j], "o", color=f"C{j}", ms=5, mfc="none", mew=1.3, ls="none",
                    label=(f"{name} trained" if name else "trained"))
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(r"$\lambda$" if xlabel == "lambda" else xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def _phase_colors(kmax: int) -> list:
    """Colour of the region with ``k`` surviving modes, ``k = 0..kmax`` (pale: none, dark: many)."""
    cmap = plt.get_cmap("YlGnBu")
    return [(0.88, 0.88, 0.88, 1.0)] + [tuple(cmap(t)) for t in np.linspace(0.25, 0.9, max(kmax, 1))]


def plot_phase_diagram(
    maps: object,
    points: object = None,
    ax: Axes | None = None,
    *,
    titles: object = None,
    legend: bool = True,
    logratio: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Axes | Figure:
    """Phase diagram(s): theory regions over (imbalance ratio, lambda) with trained points.

    Regions are filled with one colour per number of surviving modes (the same colour in every
    panel), the critical curves ``lambda = lambda_i(ratio)`` are drawn as lines, and trained
    settings appear as markers filled with the colour of their *trained* mode count (black edge);
    a trained point that disagrees with the theory gets a red cross.

    Parameters
    ----------
    maps : nclab.phases.PhaseMap, or a grid (sequence of rows) of them
        One map draws one panel on ``ax``; a grid draws a figure with one panel per map and a
        shared legend.
    points : nclab.phases.PhasePoints, or a grid of them (or None entries), optional
        Trained settings, with the same nesting as ``maps``.
    ax : matplotlib Axes, optional
        For a single map only.
    titles : str, or grid of str, optional
        Panel titles; default ``"L = ..., with/without bias"``.
    legend : bool, default True
        Draw the legend naming the regions (in the panel, or below the grid).
    logratio : bool, default True
        Log scale on the ratio axis.
    figsize : (float, float), optional
        Size of the grid figure; default ``(2.9 * columns, 2.5 * rows + 1)``.

    Returns
    -------
    matplotlib Axes (one map) or Figure (a grid)
    """
    from matplotlib import colors as matplotlib_colors
    from matplotlib import ticker as matplotlib_ticker
    from matplotlib.patches import Patch

    from .phases import REGION_NAMES, PhaseMap, PhasePoints

    legend, logratio, figsize = boolean(legend, "legend"), boolean(logratio, "logratio"), _figsize(figsize)
    grid = not isinstance(maps, PhaseMap)
    if grid:
        try:
            rows = [list(r) for r in maps]  # type: ignore[union-attr]
        except TypeError as exc:
            raise ValueError(f"maps must be a PhaseMap or a grid (list of rows) of PhaseMaps; got {type(maps).__name__}") from exc
        if not rows or any(len(r) != len(rows[0]) or not r for r in rows):
            raise ValueError("maps must be a non-empty grid: every row with the same number of PhaseMaps")
        if ax is not None:
            raise ValueError("ax is for a single map; a grid of maps draws its own figure")
    else:
        rows = [[maps]]
    flat = [m for r in rows for m in r]
    if not all(isinstance(m, PhaseMap) for m in flat):
        raise ValueError("maps must contain only nclab.phases.PhaseMap objects (from nclab.phases.phase_map)")

    def nested(value: object, name: str) -> list:
        if value is None or not grid:
            return [[value] * len(rows[0]) for _ in rows]
        out = [list(r) for r in value]  # type: ignore[union-attr]
        if len(out) != len(rows) or any(len(a) != len(b) for a, b in zip(out, rows)):
            raise ValueError(f"{name} must have the same grid shape as maps ({len(rows)} x {len(rows[0])})")
        return out

    pts = nested(points, "points")
    if not all(p is None or isinstance(p, PhasePoints) for r in pts for p in r):
        raise ValueError("points must be nclab.phases.PhasePoints objects (from nclab.phases.train_phase_points) or None")
    tits = nested(titles, "titles")
    kmax = max([m.max_modes for m in flat] + [int(p.modes.max()) for r in pts for p in r if p is not None and len(p)])
    colors = _phase_colors(kmax)
    cmap = matplotlib_colors.ListedColormap(colors)
    norm = matplotlib_colors.BoundaryNorm(np.arange(-0.5, kmax + 1.5), cmap.N)

    if grid:
        fig, axes = plt.subplots(len(rows), len(rows[0]), squeeze=False, sharex=True, sharey=True,
                                 figsize=figsize or (2.9 * len(rows[0]), 2.5 * len(rows) + 1.0))  # fmt: skip
    else:
        axes = np.array([[_new_ax(ax, figsize or (4.5, 3.5))]])
        fig = axes[0, 0].figure
    mismatch = False
    for i, row in enumerate(rows):
        for j, m in enumerate(row):
            a = axes[i, j]
            a.pcolormesh(m.ratios, m.lambdas, m.modes.T, cmap=cmap, norm=norm, shading="nearest", rasterized=True)
            for col in range(m.critical.shape[1]):
                curve = m.critical[:, col]
                if np.all(curve > 0):
                    a.plot(m.ratios, curve, color="0.15", lw=0.9, gid="phase-boundary")
            p = pts[i][j]
            if p is not None:
                a.scatter(p.ratio, p.lam, c=[colors[k] for k in p.modes], edgecolors="k", linewidths=0.8, s=30, zorder=3, clip_on=False, gid="phase-points")
                bad = ~p.agree
                if bad.any():
                    mismatch = True
                    a.plot(p.ratio[bad], p.lam[bad], "x", color="red", ms=10, mew=2.5, ls="none", zorder=4, clip_on=False, gid="phase-mismatch")
            if logratio:
                a.set_xscale("log")
                a.set_xticks([t for t in (1, 2, 3, 5, 10, 20, 50, 100) if m.ratios.min() <= t <= m.ratios.max()])
                a.xaxis.set_major_formatter(matplotlib_ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                a.xaxis.set_minor_formatter(matplotlib_ticker.NullFormatter())
            a.set_yscale("log")
            a.set_xlim(m.ratios.min(), m.ratios.max())
            a.set_ylim(m.lambdas.min(), m.lambdas.max())
            title = tits[i][j]
            a.set_title(title if title is not None else f"L = {m.L}, {'with' if m.bias else 'without'} bias", fontsize=10)
            if i == len(rows) - 1:
                a.set_xlabel(r"imbalance ratio $n_A / n_B$")
            if j == 0:
                a.set_ylabel(r"$\lambda$ (all layers and $H$)")
    if legend:
        names: dict = {}
        for m in flat:
            for k, codes in m.region_labels.items():
                names.setdefault(k, set()).update(codes)
        handles = [Patch(facecolor=colors[k], edgecolor="0.5", label=f"{k} mode{'s' if k != 1 else ''}: " + " / ".join(REGION_NAMES[c] for c in sorted(v)))
                   for k, v in sorted(names.items(), reverse=True)]  # fmt: skip
        handles.append(Line2D([], [], color="0.15", lw=0.9, label=r"boundary $\lambda = \lambda_i$(ratio)"))
        if any(p is not None for r in pts for p in r):
            handles.append(Line2D([], [], marker="o", color="w", markerfacecolor="0.6", markeredgecolor="k", label="trained (fill = its modes)"))
        if mismatch:
            handles.append(Line2D([], [], marker="x", color="red", mew=2.5, ls="none", label="trained $\\neq$ theory"))
        if grid:
            fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
            fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(handles) - 1) // 4), 1, 1))
        else:
            axes[0, 0].legend(handles=handles, fontsize=7, loc="lower left")
    elif grid:
        fig.tight_layout()
    return fig if grid else axes[0, 0]
