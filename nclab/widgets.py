"""Interactive explorers and their static counterparts.

* The **theory explorer** (:func:`theory_explorer`): class-count profile, strengths, depth and
  bias in, the closed-form optimum of the L-layer UFM (P) out. :func:`explorer_state` computes
  everything it shows in Python, :func:`draw_theory` / :func:`theory_figure` draw the static
  figure at chosen parameters; the widget itself recomputes in the browser (below).
* The **training view** (:func:`training_view`): runs of :func:`nclab.train` over a grid of
  settings, trained in advance (:func:`training_runs`), stepped through in the browser and
  compared with the closed form there.
* The **training explorer** (:func:`training_explorer`, ipywidgets): press *Train* to train any
  setting with a progress bar; it needs a kernel. Static counterpart: :func:`training_figure`.

Design notes: live explorers
----------------------------
The book is read as static HTML, and its explorers should still answer the sliders there, with
no kernel, no Binder and no network. The choices, and why:

* **anywidget, not ipywidgets callbacks.** An ipywidgets explorer recomputes in the kernel; in
  the static page the embedded state draws but does not move. An anywidget widget's front end
  is an ES module that runs in the browser, and its source travels in the widget state that
  executing the notebook stores (``_esm``). The book's offline widget manager
  (``@jupyter-widgets/html-manager`` 1.0.15) loads anywidget's own front end as an AMD module;
  ``book/_ext/offline_assets.py`` copies it from the installed Python package
  (``anywidget/nbextension/index.js``) into the build and maps the module name to it, so
  nothing is fetched from a CDN. The same widget runs in JupyterLab and Notebook 7 (anywidget's
  prebuilt extension), VS Code and Colab, where Python can read and set its traits.
* **The closed form in JavaScript, not Python in the browser.** Pyodide or JupyterLite would run
  :mod:`nclab.theory` itself, but ship tens of MB of runtime, numpy and scipy into the build
  and take seconds to start, for what is a K x K problem: the secular equation of
  ``diag(n) - n n^T / N`` (with its eigenvectors, ``u_k = n_k / (n_k - t)``, and the repeated
  counts), then one scalar problem per mode. ``nclab/static/theory_math.mjs`` ports it (and
  :func:`explorer_state`'s messages) in about 300 lines, with no library; a test runs it under
  Node on a grid of settings and compares every output with Python to 1e-9 relative. One slider
  move (compute and redraw) takes well under a frame (``benchmarks/explorer_frame.py``).
* **Training is precomputed.** Training needs torch, so :func:`training_runs` trains a grid
  when the book is built and the runs (about 1.5 kB each) travel in the view's state.
* **Plain SVG and native inputs.** Figures are SVG strings drawn at their pixel size, so their
  text is the page's body size; controls are ``<input type=range>``, ``<select>`` and
  checkboxes with labels and their values beside them: keyboard-operable and readable at a
  412 px phone width. The static matplotlib figure beside each explorer serves print and
  readers without JavaScript.

Costs: a second implementation of the closed form, kept small and tested against the first;
the widget state carries the front end's source (about 40 kB per explorer).
"""

from __future__ import annotations

import html
import itertools
import math
import re
from pathlib import Path
from typing import Any

import anywidget
import matplotlib.pyplot as plt
import numpy as np
import traitlets
from matplotlib.figure import Figure

from . import _validate, data, metrics, theory
from ._validate import choice
from .plots import plot_geometry, plot_gram, plot_history, plot_spectrum
from .ufm import TrainingDivergedError, TrainResult, train

__all__ = [
    "THEORY_DEFAULTS",
    "TRAINING_DEFAULTS",
    "TRAINING_GRID",
    "TRAINING_VIEW_DEFAULTS",
    "SLIDER_GRIDS",
    "explorer_state",
    "draw_theory",
    "theory_figure",
    "theory_explorer",
    "training_settings",
    "training_figure",
    "training_explorer",
    "training_runs",
    "training_view",
    "TheoryExplorer",
    "TrainingExplorer",
    "TrainingView",
]

#: Default parameters of the theory explorer: a step profile 200,200,50,50 at a strength where
#: some modes survive and some vanish. With the bias two modes of three survive and the two
#: minority classes share one mean (s_3 = 7.07 is below ``s_thr = 7.5``); without it the two
#: minority classes vanish altogether (their means are 0).
THEORY_DEFAULTS: dict[str, Any] = dict(
    kind="step", K=4, n_max=200, ratio=4.0, lam_W=0.015, lam_H=0.015, L=1, bias=True
)

#: Default parameters of the training explorer (``lam`` is used for every ``lam_W`` and ``lam_H``).
TRAINING_DEFAULTS: dict[str, Any] = dict(
    kind="step", K=4, n_max=200, ratio=4.0, lam=0.015, L=1, bias=True, optimizer="lbfgs", steps=2000, d=None, seed=0
)

_KINDS = ("balanced", "step", "long-tailed")
_OPTIMIZERS = ("lbfgs", "gd", "adam")
# Distance, relative to the largest class mean, under which two optimal class means count as the
# same point. The distances come from M^T M, whose cancellation limits them to about sqrt(eps)
# ~ 1e-8 of that scale: a tighter tolerance splits classes that coincide exactly.
_SAME_MEAN_RTOL = 1e-6
# A mode whose singular value is within this fraction of s_thr is called "near the threshold".
_NEAR = 0.05
# Font sizes of the static theory figure (points): at the book's width, about the body text.
_TITLE_PT, _LEGEND_PT = 11, 9


def _log_grid(low: int, high: int) -> list[float]:
    """Round values 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times 10^e for e = low..high-1, then 10^high."""
    mantissas = ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8")
    return [float(f"{m}e{e}") for e in range(low, high) for m in mantissas] + [float(f"1e{high}")]


#: The explorers' sliders, the one source of their ranges: integer sliders as ``[min, max, step]``,
#: log sliders as their positions (strengths from 1e-4 to 1 and imbalance ratios from 1 to 1000,
#: ten round values a decade, so the value shown is the value computed with; a value set from
#: Python that is not on the grid joins it). Python checks initial values against them, the
#: training explorer builds its ipywidgets from them, and the theory explorer sends them to its
#: front end (the ``grids`` trait), which builds its sliders from them.
SLIDER_GRIDS: dict[str, list] = {"K": [2, 12, 1], "n_max": [10, 1000, 10], "L": [1, 5, 1], "steps": [10, 10000, 10],
                                 "lam": _log_grid(-4, 0), "ratio": _log_grid(0, 3)}  # fmt: skip
_LOG_SLIDERS = {"lam_W": "lam", "lam_H": "lam", "lam": "lam", "ratio": "ratio"}  # parameter -> its grid
_SLIDERS = (*(key for key in SLIDER_GRIDS if key not in _LOG_SLIDERS.values()), *_LOG_SLIDERS)  # every slider parameter


def _slider_range(key: str) -> tuple[float, float]:
    """Lowest and highest value of the slider ``key`` (a parameter name)."""
    grid = SLIDER_GRIDS[_LOG_SLIDERS.get(key, key)]
    return (grid[0], grid[-1]) if key in _LOG_SLIDERS else (grid[0], grid[1])


def _int_slider(key: str, value: int, description: str, **kwargs: Any) -> "ipywidgets.IntSlider":  # noqa: F821
    """The ipywidgets slider of the integer parameter ``key``, with the range of :data:`SLIDER_GRIDS`."""
    import ipywidgets as w

    lo, hi, step = SLIDER_GRIDS[key]
    return w.IntSlider(value=value, min=lo, max=hi, step=step, description=description, **kwargs)


def _log_slider(key: str, value: float, description: str, **kwargs: Any) -> "ipywidgets.FloatLogSlider":  # noqa: F821
    """The ipywidgets log slider of ``key`` over the range of :data:`SLIDER_GRIDS`, 20 steps a decade."""
    import ipywidgets as w

    lo, hi = _slider_range(key)
    return w.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi), step=0.05, description=description,
                            **kwargs)  # fmt: skip


def _check_slider_defaults(p: dict[str, Any], where: str) -> None:
    """Refuse initial values the sliders cannot show (ipywidgets would clamp them without a word)."""
    for key in _SLIDERS:
        if key in p:
            lo, hi = _slider_range(key)
            _validate.real(p[key], f"{where}: {key}", low=lo, high=hi, what=f"a number in [{lo:g}, {hi:g}] (the slider's range)")
    for key in ("kind", "optimizer"):
        if key in p:
            _validate.choice(p[key], f"{where}: {key}", _KINDS if key == "kind" else _OPTIMIZERS)
    if "bias" in p:
        _validate.boolean(p["bias"], f"{where}: bias")


# ============================================================================ the theory explorer


def _mode_coordinates(g: theory.GlobalMinimizer) -> tuple[np.ndarray, np.ndarray]:
    """Class means and classifier rows in the orthonormal basis ``R`` of the modes.

    At the optimum ``M D = R diag(zeta) V^T`` and ``W = U diag(omega) R^T`` with ``R``
    orthonormal (math.md, the global minimiser), so in the basis ``R`` class mean ``k`` has
    coordinates ``zeta_i V[k, i] / sqrt(n_k)`` and classifier row ``k`` has ``omega_i U[k, i]``;
    collapsed modes give zero coordinates.

    Returns
    -------
    means, rows : numpy.ndarray, shape (K, K)
        Row ``k``: class ``k``'s mean (classifier row) in mode coordinates.
    """
    means = g.V * g.zeta[None, :] / np.sqrt(g.n)[:, None]
    rows = g.U * g.omega[None, :]
    return means, rows


def _coinciding_groups(g: theory.GlobalMinimizer) -> list[list[int]]:
    """Groups (of two or more classes, 1-based) whose optimal class means coincide."""
    dist = g.mean_distances
    scale = max(float(np.sqrt(np.max(np.diag(g.M_gram)))), 1e-300)
    close = dist <= _SAME_MEAN_RTOL * scale
    groups, seen = [], set()
    for k in range(g.K):
        if k in seen:
            continue
        members = [j for j in range(g.K) if close[k, j]]
        seen.update(members)
        if len(members) > 1:
            groups.append([j + 1 for j in members])
    return groups


def _fmt_list(values: np.ndarray, digits: int = 3) -> str:
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def explorer_state(
    kind: str = THEORY_DEFAULTS["kind"],
    K: int = THEORY_DEFAULTS["K"],
    n_max: int = THEORY_DEFAULTS["n_max"],
    ratio: float = THEORY_DEFAULTS["ratio"],
    lam_W: float = THEORY_DEFAULTS["lam_W"],
    lam_H: float = THEORY_DEFAULTS["lam_H"],
    L: int = THEORY_DEFAULTS["L"],
    bias: bool = THEORY_DEFAULTS["bias"],
) -> dict[str, Any]:
    """Everything the theory explorer shows, computed without drawing.

    The counts come from :func:`nclab.data.profile`, the optimum from
    :func:`nclab.theory.global_minimizer` (Liu 2024, claims 1-5, in the book's convention).

    Parameters
    ----------
    kind : {"balanced", "step", "long-tailed"}
        Class-count profile.
    K : int
        Number of classes (>= 2).
    n_max : int
        Count of the largest class.
    ratio : float
        Imbalance ratio ``n_max / n_min`` (>= 1; ignored for ``"balanced"``).
    lam_W : float
        Weight decay of every layer (> 0).
    lam_H : float
        Feature decay (> 0).
    L : int
        Number of linear layers (>= 1).
    bias : bool
        Unregularised bias (target ``Yhat``) or none (target ``D``).

    Returns
    -------
    dict
        ``params`` (the inputs), ``n`` (K,), ``N``, ``s`` (K, singular values of the target,
        descending), ``lower``/``upper`` (K, interlacing bounds; ``None`` without bias),
        ``threshold`` (``s_thr``), ``c``, ``x`` (K, optimal singular values of ``W M D``),
        ``active`` (K, bool), ``n_active``, ``critical_c`` (K, value of ``c`` at which each
        mode dies), ``W_gram``/``M_gram`` (K, K), ``b`` (K), ``objective`` (``f*``),
        ``mean_coords``/``row_coords`` (K, K, class means and classifier rows in the
        coordinates of the modes), ``coinciding`` (groups of classes with identical means),
        ``messages`` (list of str), ``level`` (``"ok"`` or ``"warning"``) and ``summary``
        (plain text).

    Raises
    ------
    ValueError
        For parameters outside their ranges (naming the parameter).
    """
    ratio = _validate.real(ratio, "ratio", low=1.0)  # checked even where the profile ignores it (it is shown)
    n = data.profile(kind, K, n_max, ratio)
    g = theory.global_minimizer(n, lam_W, lam_H, L=L, bias=bias)
    K, L, bias = g.K, g.L, g.bias
    N = g.N
    if bias:
        lower, upper = theory.interlacing_bounds(n)
    else:
        lower = upper = None
    critical_c = theory.critical_lambda(n, L=L, bias=bias)  # critical c per mode
    mean_coords, row_coords = _mode_coordinates(g)
    coinciding = _coinciding_groups(g) if g.n_active else []

    nonzero = g.s > 0
    n_modes = int(nonzero.sum())
    messages: list[str] = []
    level = "ok"
    if g.n_active == 0:
        level = "warning"
        predict = "the class frequencies b = n/N" if bias else "zero logits"
        messages.append(
            f"Every mode collapsed: the largest singular value s_1 = {g.s[0]:.3g} is below s_thr = {g.threshold:.3g}. "
            f"W = 0 and every class mean is 0, so the model predicts {predict} for every sample. "
            "Lower lambda_W or lambda_H to bring modes back."
        )
    elif g.n_active < n_modes:
        level = "warning"
        dead = [i + 1 for i in range(g.K) if nonzero[i] and not g.active[i]]
        messages.append(
            f"{g.n_active} of {n_modes} modes survive; mode(s) {dead} have s_i < s_thr = {g.threshold:.3g} and collapsed."
        )
    else:
        which = "The only nonzero mode survives" if n_modes == 1 else f"All {n_modes} nonzero modes survive"
        messages.append(f"{which} (s_i >= s_thr = {g.threshold:.3g}).")
    for group in coinciding:
        messages.append(f"Classes {group} have identical class means and classifier rows: minority collapse.")
    if bias:
        messages.append("With a bias the null mode of Yhat (s_K = 0) always vanishes: classifier rows sum to zero.")
    if bias and K == 2:
        messages.append("K = 2 with a bias: Yhat has rank 1, so the two class means lie on one line.")
    if kind == "balanced" and ratio != 1:
        messages.append("The ratio is ignored for the balanced profile.")
    near = [i + 1 for i in range(g.K) if nonzero[i] and abs(g.s[i] - g.threshold) <= _NEAR * g.threshold]
    if near:
        messages.append(f"Mode(s) {near} sit within {_NEAR:.0%} of the threshold: small changes flip them.")
    if L >= 2 and g.n_active:
        messages.append(
            f"Depth L = {L}: a surviving mode jumps in at s_thr with x = s_thr (L-1)/L = {g.threshold * (L - 1) / L:.3g}; "
            "x = 0 stays a local minimum, so training can lose modes."
        )

    lines = [
        f"profile {kind}, K = {K}, N = {N}, counts n = {_fmt_list(n, 4)}",
        f"c = {g.c:.3g}, s_thr = {g.threshold:.3g}, surviving modes: {g.n_active}",
        f"s = {_fmt_list(g.s)}",
        f"x = {_fmt_list(g.x)}",
        f"f* = {g.objective:.4g}",
    ]
    summary = "\n".join(lines + messages)
    return dict(
        params=dict(kind=kind, K=K, n_max=n_max, ratio=ratio, lam_W=lam_W, lam_H=lam_H, L=L, bias=bias),
        n=n,
        N=N,
        s=g.s,
        lower=lower,
        upper=upper,
        threshold=g.threshold,
        c=g.c,
        x=g.x,
        active=g.active,
        n_active=g.n_active,
        critical_c=critical_c,
        W_gram=g.W_gram,
        M_gram=g.M_gram,
        b=g.b,
        objective=g.objective,
        mean_coords=mean_coords,
        row_coords=row_coords,
        coinciding=coinciding,
        messages=messages,
        level=level,
        summary=summary,
    )


# ---------------------------------------------------------------------------- drawing helpers


def _unit(*mats: np.ndarray) -> tuple[float, str]:
    """A power of ten that brings the largest entry of ``mats`` to [1, 10), and a title suffix."""
    top = max(float(np.max(np.abs(G))) for G in mats)
    if not top > 0 or 1 <= top < 10:
        return 1.0, ""
    unit = 10.0 ** math.floor(math.log10(top))
    return unit, f" (unit {unit:.0e})"


def _draw_spectrum(ax, st: dict[str, Any]) -> None:
    """:func:`nclab.plots.plot_spectrum` plus the optimal ``x_i`` of every mode."""
    p = st["params"]
    plot_spectrum(st["n"], bias=p["bias"], threshold=st["threshold"], ax=ax)
    idx = np.arange(1, len(st["s"]) + 1)
    ax.plot(idx, st["x"], "_", color="k", ms=14, mew=2, label=r"optimal $x_i$")
    top = max(float(np.max(st["s"])), float(st["threshold"]))
    ax.set_ylim(-0.03 * top, 1.1 * top)
    ax.set_title("spectrum of the target", fontsize=_TITLE_PT)
    ax.legend(fontsize=_LEGEND_PT, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below: off the data


def draw_theory(state: dict[str, Any], fig: Figure | None = None) -> Figure:
    """Draw an :func:`explorer_state` result: spectrum, ``W W^T``, ``M^T M`` and the 2-D geometry.

    Parameters
    ----------
    state : dict
        Output of :func:`explorer_state`.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into (cleared first); a new pyplot figure of size (9, 7.6) otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    missing = {"params", "n", "s", "x", "threshold", "mean_coords", "row_coords", "W_gram", "M_gram", "coinciding", "n_active"} - set(state if isinstance(state, dict) else ())
    if not isinstance(state, dict) or missing:
        raise _validate.ArgumentTypeError(f"state must be the dict returned by explorer_state(...); missing keys {sorted(missing)}")
    if fig is not None and not isinstance(fig, Figure):
        raise _validate.ArgumentTypeError(f"fig must be a matplotlib Figure or None; got {type(fig).__name__}")
    if fig is None:
        fig = plt.figure(figsize=(9, 7.6), layout="constrained")
    else:
        fig.clf()
    top, bottom = fig.subfigures(2, 1)  # independent layouts: the legend beside the plane stays up there
    axes = np.array([top.subplots(1, 2), bottom.subplots(1, 2)])
    p = state["params"]
    _draw_spectrum(axes[0, 0], state)
    title = "means and classifiers (top 2 directions)"
    if state["coinciding"]:
        title += "\n" + "; ".join("=".join(str(k) for k in grp) for grp in state["coinciding"]) + " coincide"
    geo = axes[0, 1]
    plot_geometry(state["mean_coords"].T, state["row_coords"], geo, counts=state["n"], title=title,
                  legend=p["K"] <= 8)  # fmt: skip
    geo.title.set_fontsize(_TITLE_PT)
    if geo.get_legend() is not None:  # beside the plane, not on it
        handles = geo.get_legend().legend_handles
        geo.legend(handles=handles, fontsize=_LEGEND_PT, loc="center left", bbox_to_anchor=(1.02, 0.5))
    grams = ((axes[1, 0], "W_gram", r"$W W^\top$ (classifier Gram)", "W = 0"),
             (axes[1, 1], "M_gram", r"$M^\top M$ (class-mean Gram)", "M = 0"))  # fmt: skip
    for ax, key, name, zero in grams:
        G = np.where(np.abs(state[key]) > 1e-12 * np.abs(state[key]).max(), state[key], 0.0)  # no "-0.00"
        unit, suffix = _unit(G)
        plot_gram(G / unit + 0.0, ax, title=name + suffix, annotate=p["K"] <= 6)
        ax.title.set_fontsize(_TITLE_PT)
        ax.set_xlabel("class")
        if state["n_active"] == 0:
            ax.text(0.5, 0.5, f"{zero}\n(every mode collapsed)", transform=ax.transAxes, ha="center", va="center",
                    fontsize=_TITLE_PT, color="C3")  # fmt: skip
    fig.suptitle(
        f"{p['kind']}, K={p['K']}, ratio={p['ratio']:.3g}, $\\lambda_W$={p['lam_W']:.2g}, $\\lambda_H$={p['lam_H']:.2g}, "
        f"L={p['L']}, {'bias' if p['bias'] else 'no bias'}: {state['n_active']} mode(s) survive",
        fontsize=_TITLE_PT + 1,
    )
    return fig


def theory_figure(**params: Any) -> Figure:
    """Static counterpart of :func:`theory_explorer`: the same figure at given parameters.

    Parameters
    ----------
    **params
        Any of ``kind, K, n_max, ratio, lam_W, lam_H, L, bias`` (defaults: :data:`THEORY_DEFAULTS`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    unknown = set(params) - set(THEORY_DEFAULTS)
    if unknown:
        raise TypeError(f"theory_figure got unknown parameter(s) {sorted(unknown)}; allowed: {sorted(THEORY_DEFAULTS)}")
    return draw_theory(explorer_state(**{**THEORY_DEFAULTS, **params}))


# ---------------------------------------------------------------------------- the live front end


_STATIC = Path(__file__).with_name("static")
# A relative import between the static modules, on one line (the only form they use).
_RELATIVE_IMPORT = re.compile(r'^import \{[^}]*\} from "\./[a-z_]+\.mjs";\n', re.MULTILINE)


def _static_text(name: str) -> str:
    return (_STATIC / name).read_text(encoding="utf-8")


def _bundle(*names: str) -> str:
    """One ES module from the modules in ``nclab/static``, in dependency order.

    anywidget imports its front end from a string (a Blob URL in the browser), so relative
    imports cannot be resolved there: the modules are concatenated and their one-line imports
    of each other removed. Under Node (the tests) the same files import each other normally.
    """
    source = "\n".join(_RELATIVE_IMPORT.sub("", _static_text(name)) for name in names)
    if re.search(r"^\s*import\b", source, re.MULTILINE):
        raise RuntimeError(f"an import in {names} is not a one-line relative import of a static module")
    return source


def _theory_params(params: dict[str, Any], caller: str) -> dict[str, Any]:
    """:data:`THEORY_DEFAULTS` updated by ``params``, validated and cast to the traits' types."""
    unknown = set(params) - set(THEORY_DEFAULTS)
    if unknown:
        raise TypeError(f"{caller} got unknown parameter(s) {sorted(unknown)}; allowed: {sorted(THEORY_DEFAULTS)}")
    p = {**THEORY_DEFAULTS, **params}
    _check_slider_defaults(p, caller)
    explorer_state(**p)  # raises ValueError naming a parameter out of range
    casts = dict(kind=str, K=int, n_max=int, ratio=float, lam_W=float, lam_H=float, L=int, bias=bool)
    return {k: casts[k](v) for k, v in p.items()}


class TheoryExplorer(anywidget.AnyWidget):
    """The theory explorer: a widget that recomputes the closed form in the browser.

    Its front end (``nclab/static/theory_view.mjs`` with ``theory_math.mjs``, a JavaScript port
    of :func:`explorer_state`) draws the controls, the numbers, the per-mode table and the
    figure, and recomputes them on every slider move with no kernel: in JupyterLab, Colab and
    the static book alike. The traits below are the current setting; with a kernel they follow
    the sliders, and setting one from Python moves its slider.

    Attributes
    ----------
    kind, K, n_max, ratio, lam_W, lam_H, L, bias
        The setting (see :func:`explorer_state`).
    state : dict or None
        :func:`explorer_state` of the current setting, recomputed in Python when a trait
        changes (``None`` when the setting is invalid).
    message : str
        The summary of ``state``, or why the setting cannot be computed.
    """

    _esm = _bundle("svg.mjs", "ui.mjs", "theory_math.mjs", "theory_view.mjs")
    _css = _static_text("explorer.css")
    kind = traitlets.Unicode(THEORY_DEFAULTS["kind"]).tag(sync=True)
    K = traitlets.Int(THEORY_DEFAULTS["K"]).tag(sync=True)
    n_max = traitlets.Int(THEORY_DEFAULTS["n_max"]).tag(sync=True)
    ratio = traitlets.Float(THEORY_DEFAULTS["ratio"]).tag(sync=True)
    lam_W = traitlets.Float(THEORY_DEFAULTS["lam_W"]).tag(sync=True)
    lam_H = traitlets.Float(THEORY_DEFAULTS["lam_H"]).tag(sync=True)
    L = traitlets.Int(THEORY_DEFAULTS["L"]).tag(sync=True)
    bias = traitlets.Bool(THEORY_DEFAULTS["bias"]).tag(sync=True)
    grids = traitlets.Dict().tag(sync=True)

    def __init__(self, **params: Any):
        p = _theory_params(params, "theory_explorer")
        super().__init__(**p, grids=SLIDER_GRIDS)
        self.state: dict[str, Any] | None = None
        self.message = ""
        self.observe(self._on_change, names=list(THEORY_DEFAULTS))
        self.update()

    def params(self) -> dict[str, Any]:
        """The current setting, as keyword arguments of :func:`explorer_state`."""
        return {k: getattr(self, k) for k in THEORY_DEFAULTS}

    def _on_change(self, change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute :attr:`state` (the browser recomputes on its own); invalid input sets a message."""
        try:
            self.state = explorer_state(**self.params())
        except (ValueError, FloatingPointError, OverflowError) as exc:
            self.state = None
            self.message = f"Cannot compute this setting: {exc}"
            return
        self.message = self.state["summary"]


def theory_explorer(**defaults: Any) -> TheoryExplorer:
    """Interactive explorer of the closed-form optimum; it recomputes in the browser.

    Controls: count profile (balanced / step / long-tailed), K, n_max, imbalance ratio,
    ``lam_W`` and ``lam_H`` (log sliders), depth L and the bias. Shown: the singular values of
    the target with the threshold ``s_thr`` and the interlacing bounds, which modes survive
    and their optimal ``x_i``, the class means and classifier rows in the plane of the two
    strongest modes, ``W W^T`` and ``M^T M``, and the messages of :func:`explorer_state`. No
    kernel is needed to move the sliders (see the design notes in the module docstring).

    Parameters
    ----------
    **defaults
        Initial values, any of :data:`THEORY_DEFAULTS`.

    Returns
    -------
    TheoryExplorer

    Raises
    ------
    TypeError
        For an unknown parameter.
    ValueError
        For a value out of range (naming the parameter).
    """
    return TheoryExplorer(**defaults)



# ============================================================================ the training explorer


def _history_keys(history: dict[str, np.ndarray]) -> tuple[str, ...]:
    keys = tuple(k for k in ("gap", "nc1", "W_gram_error", "M_gram_error") if k in history and len(history[k]))
    return keys or ("objective",)


def training_figure(result: TrainResult) -> Figure:
    """Static counterpart of :func:`training_explorer`: a trained model against the theory.

    Top: the history of the run (gap to the optimum, NC1, Gram errors, whichever were logged).
    Bottom: ``W W^T`` and ``M^T M`` of the trained model beside their closed-form predictions
    (:func:`nclab.theory.global_minimizer`), with the relative distances in the titles.

    Parameters
    ----------
    result : nclab.TrainResult
        A run with ``loss="mse"`` and an unregularised bias (the setting of the closed form).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(result, TrainResult):
        raise _validate.ArgumentTypeError(f"result must be a nclab.TrainResult (from nclab.train); got {type(result).__name__}")
    g = result.theory()
    dist = result.distance_to_theory()
    W, M = result.W, result.means
    fig = plt.figure(figsize=(8, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.2])
    ax = fig.add_subplot(grid[0, :])
    plot_history(result.history, keys=_history_keys(result.history), ax=ax)
    ax.set_title("training", fontsize=9)
    uW, sW = _unit(g.W_gram, W @ W.T)
    uM, sM = _unit(g.M_gram, M.T @ M)
    vW = float(max(np.abs(g.W_gram).max(), np.abs(W @ W.T).max())) / uW or 1.0
    vM = float(max(np.abs(g.M_gram).max(), np.abs(M.T @ M).max())) / uM or 1.0
    annotate = result.K <= 4
    panels = [
        (W @ W.T / uW, f"trained $W W^\\top$\nrel. error {dist['W_gram']:.1e}", vW),
        (g.W_gram / uW, f"theory $W W^\\top$\n{sW.strip()}", vW),
        (M.T @ M / uM, f"trained $M^\\top M$\nrel. error {dist['M_gram']:.1e}", vM),
        (g.M_gram / uM, f"theory $M^\\top M$\n{sM.strip()}", vM),
    ]
    for j, (G, title, vmax) in enumerate(panels):
        ax = fig.add_subplot(grid[1, j])
        plot_gram(G, ax, title=title, annotate=annotate, vmax=vmax, colorbar=False)
        ax.title.set_fontsize(9)
        ax.tick_params(labelsize=7)
    s = result.settings
    fig.suptitle(
        f"{s['optimizer']}, L={result.L}, {'bias' if result.bias else 'no bias'}, {result.steps} steps: "
        f"gap to f* {'< 1e-10' if abs(result.gap) < 1e-10 else f'= {result.gap:.1e}'}, modes {int(np.sum(_trained_modes(result)))} trained / {g.n_active} theory",
        fontsize=10,
    )
    return fig


def training_settings(**params: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`nclab.train` for explorer parameters (defaults: :data:`TRAINING_DEFAULTS`).

    ``lam`` becomes both ``lam_W`` and ``lam_H``; ``d`` defaults to ``max(2K, 4)``; the history
    logs ``nc1`` and the ``gap`` to the closed form. Every optimiser moves the features as free
    parameters (``features="free"``), so the explorer shows them collapse. The static figure beside the training
    explorer uses ``nclab.train(**training_settings(), progress=False)``.

    Returns
    -------
    dict
        ``n, d, lam_W, lam_H, L, bias, optimizer, features, steps, seed, metrics``.
    """
    unknown = set(params) - set(TRAINING_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameter(s) {sorted(unknown)}; allowed: {sorted(TRAINING_DEFAULTS)}")
    p = {**TRAINING_DEFAULTS, **params}
    n = data.profile(p["kind"], p["K"], p["n_max"], p["ratio"])
    d = max(2 * n.size, 4) if p["d"] is None else _validate.whole(p["d"], "d (feature width)", 1, _validate.MAX_WIDTH)
    _validate.positive(p["lam"], "lam")
    _validate.whole(p["L"], "L (number of linear layers)", 1, _validate.MAX_DEPTH)
    _validate.boolean(p["bias"], "bias")
    _validate.choice(p["optimizer"], "optimizer", _OPTIMIZERS)
    _validate.whole(p["steps"], "steps", 1)
    _validate.seed(p["seed"])
    return dict(n=n, d=d, lam_W=p["lam"], lam_H=p["lam"], L=p["L"], bias=p["bias"], optimizer=p["optimizer"],
                features="free", steps=p["steps"], seed=p["seed"], metrics=("nc1", "gap"))  # fmt: skip


def _trained_modes(result: TrainResult) -> np.ndarray:
    """Surviving modes of a trained model: singular values of ``W M D`` above
    :func:`nclab.metrics.alive_tolerance` (an absolute scale, so a model stuck at the origin has none)."""
    return metrics.wmd_singular_values(result.W, result.means, result.n) > metrics.alive_tolerance(result.N)


def _result_html(result: TrainResult) -> str:
    g = result.theory()
    dist = result.distance_to_theory()
    n_tr = int(np.sum(_trained_modes(result)))
    gap = result.gap
    ok = n_tr == g.n_active and abs(gap) < 1e-4
    verdict = (
        "reached the closed-form optimum"
        if ok
        else "did not reach the optimum: "
        + ("it lost or kept a spurious mode (x = 0 is a local minimum for L >= 2); " if n_tr != g.n_active else "")
        + "more steps, L-BFGS, or a larger initialisation help"
    )
    color = "#1a6b1a" if ok else "#b35900"
    rows = "".join(f"<li>{html.escape(k)}: {v:.2e}</li>" for k, v in dist.items())
    return (
        f"<div style='color:{color}'><b>{html.escape(verdict)}</b><br>"
        f"objective {result.objective:.6g}, f* = {g.objective:.6g}, relative gap {gap:.2e}; "
        f"modes: {n_tr} trained, {g.n_active} in theory</div>"
        f"relative distances to theory:<ul>{rows}</ul>"
    )


class TrainingExplorer:
    """Controller of the training explorer; ``.widget`` is what a notebook displays.

    Attributes
    ----------
    controls : dict of ipywidgets widgets
        ``kind, K, n_max, ratio, lam, L, bias, optimizer, steps``.
    button : ipywidgets.Button
        Starts :meth:`run`.
    result : nclab.TrainResult or None
        The latest run.
    message : str
        The latest status or error message.
    """

    def __init__(self, **defaults: Any):
        import ipywidgets as w

        unknown = set(defaults) - set(TRAINING_DEFAULTS)
        if unknown:
            raise TypeError(
                f"training_explorer got unknown parameter(s) {sorted(unknown)}; allowed: {sorted(TRAINING_DEFAULTS)}"
            )
        p = {**TRAINING_DEFAULTS, **defaults}
        _check_slider_defaults(p, "training_explorer")
        training_settings(**p)  # checks d and seed too
        self.d, self.seed = p["d"], p["seed"]
        # Labels wide enough not to be cut, drop-downs rather than button rows (which wrap), and
        # a layout that stacks the controls above the results on a narrow screen.
        style = {"description_width": "150px"}
        lay = w.Layout(width="100%", max_width="440px")
        self.controls = dict(
            kind=w.Dropdown(options=list(_KINDS), value=p["kind"], description="profile", style=style, layout=lay),
            K=_int_slider("K", p["K"], "K (classes)", style=style, layout=lay),
            n_max=_int_slider("n_max", p["n_max"], "n_max (largest class)", style=style, layout=lay),
            ratio=_log_slider("ratio", p["ratio"], "ratio n_max / n_min", style=style, layout=lay, readout_format=".3g"),
            lam=_log_slider("lam", p["lam"], "λ (all layers, H)", style=style, layout=lay, readout_format=".2g"),
            L=_int_slider("L", p["L"], "depth L", style=style, layout=lay),
            bias=w.Checkbox(value=bool(p["bias"]), description="unregularised bias", style=style, layout=lay),
            optimizer=w.Dropdown(options=list(_OPTIMIZERS), value=p["optimizer"], description="optimizer", style=style,
                                 layout=lay),
            steps=_int_slider("steps", p["steps"], "steps (max)", style=style, layout=lay),
        )  # fmt: skip
        self.button = w.Button(description="Train", button_style="primary", icon="play")
        self.status = w.HTML("Choose a setting and press <b>Train</b>.")
        self.progress = w.Output()
        self.output = w.Output()
        self.result: TrainResult | None = None
        self.message = ""
        left = w.VBox(list(self.controls.values()) + [self.button, self.status],
                      layout=w.Layout(flex="1 1 340px", max_width="460px"))  # fmt: skip
        right = w.VBox([self.progress, self.output], layout=w.Layout(flex="2 1 400px", min_width="0"))
        self.widget = w.Box([left, right], layout=w.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.button.on_click(self._on_click)

    def settings(self) -> dict[str, Any]:
        """Keyword arguments of :func:`nclab.train` for the current controls (``n`` included)."""
        p = {k: c.value for k, c in self.controls.items()}
        return training_settings(**p, d=self.d, seed=self.seed)

    def _on_click(self, button: Any) -> None:
        self.run()

    def run(self) -> TrainResult | None:
        """Train with the current settings, show the progress bar, the figure and the numbers.

        Errors (invalid settings, a diverging run) are shown as a message, not raised.
        """
        from IPython.display import display

        self.button.disabled = True
        self.status.value = "training..."
        try:
            kwargs = self.settings()
            with self.progress:
                self.progress.clear_output()
                result = train(**kwargs, progress=True)
        except (ValueError, TrainingDivergedError) as exc:
            self.result = None
            self.message = f"Training failed: {exc}"
            self.status.value = f"<div style='color:#b30000'>{html.escape(self.message)}</div>"
            return None
        finally:
            self.button.disabled = False
        self.result = result
        self.message = _result_html(result)
        self.status.value = self.message
        with self.output:
            self.output.clear_output(wait=True)
            fig = training_figure(result)
            display(fig)
            plt.close(fig)
        return result


def training_explorer(**defaults: Any):
    """Interactive training of the UFM against its closed-form optimum (needs a running kernel).

    For readers without a kernel, :func:`training_view` shows runs trained in advance.

    Pick a count profile, K, a common strength ``lam`` (for every ``lam_W`` and ``lam_H``),
    the depth, the bias, the optimizer and the number of steps, then press *Train*: a
    ``tqdm`` progress bar follows :func:`nclab.train`, and the history and the trained Gram
    matrices beside the theory's appear when it finishes (:func:`training_figure`).

    Parameters
    ----------
    **defaults
        Initial values, any of :data:`TRAINING_DEFAULTS` (``d``: feature width, default
        ``max(2K, 4)``; ``seed``: initialisation seed).

    Returns
    -------
    ipywidgets.Widget
        A ``Box``; its ``explorer`` attribute is the :class:`TrainingExplorer` behind it.
    """
    ex = TrainingExplorer(**defaults)
    ex.widget.explorer = ex
    return ex.widget


# ============================================================================ the training view


#: The grid of :func:`training_runs` (the precomputed training view): a step profile, and every
#: combination of the values below. ``lam`` is every ``lam_W`` and ``lam_H``.
TRAINING_GRID: dict[str, Any] = dict(
    kind="step", K=4, n_max=200, ratio=(1.0, 4.0, 10.0), lam=(0.002, 0.008, 0.015, 0.025), L=(1, 3),
    bias=(True, False), init=("default", "small"),
)  # fmt: skip

#: The setting the training view opens on (the explorers' default: two modes of three survive).
TRAINING_VIEW_DEFAULTS: dict[str, Any] = dict(ratio=4.0, lam=0.015, L=1, bias=True, init="default")

#: Initialisations of the training view: extra keyword arguments of :func:`nclab.train`.
_INITS: dict[str, dict[str, Any]] = {"default": {}, "small": dict(init_std=0.05, restarts=1, prune=False)}
_INIT_LABELS = {
    "default": "nclab's defaults (initial std 0.5; for L >= 2 two starts and a polishing pass).",
    "small": "one start from initial std 0.05, no polishing: for L >= 2 this is how modes get lost.",
}
_AXES = ("ratio", "lam", "L", "bias", "init")


def _sig(values: Any, digits: int = 6) -> Any:
    """Nested lists of floats rounded to ``digits`` significant digits (small JSON)."""
    if np.ndim(values) == 0:
        return float(f"{float(values):.{digits}g}")
    return [_sig(v, digits) for v in values]


def _grid_axes(grid: dict[str, Any]) -> dict[str, list]:
    axes = {}
    for name in _AXES:
        values = list(grid[name]) if isinstance(grid[name], (list, tuple)) else [grid[name]]
        if not values:
            raise ValueError(f"{name} must list at least one value for the training grid")
        axes[name] = values
    for value in axes["init"]:
        choice(value, "init", tuple(_INITS))
    return axes


def _stored_run(result: TrainResult, setting: dict[str, Any]) -> dict[str, Any]:
    """What the training view keeps of one run (JSON-ready, 6 significant digits for arrays)."""
    h = result.history
    W, M = result.W, result.means
    dist = result.distance_to_theory()
    return dict(
        **setting, n=[int(v) for v in result.n], steps=int(result.steps), objective=float(result.objective),
        gap=float(result.gap), n_modes=int(np.sum(_trained_modes(result))),
        history=dict(step=[int(s) for s in h["step"]], gap=_sig(h["gap"], 3), nc1=_sig(h["nc1"], 3)),
        W_gram=_sig(W @ W.T), M_gram=_sig(M.T @ M), dist=dict(W_gram=float(dist["W_gram"]), M_gram=float(dist["M_gram"])),
    )  # fmt: skip


def training_runs(*, d: int | None = None, seed: int = 0, progress: bool = True, **grid: Any) -> dict[str, Any]:
    """Train the UFM on every setting of a grid, for the precomputed training view.

    Every run is ``nclab.train(**training_settings(...))``: L-BFGS with the features as free
    parameters, logging NC1 and the relative gap to the closed form, with the initialisation
    ``"default"`` (nclab's defaults) or ``"small"`` (one start from standard deviation 0.05, no
    polishing pass: how depth loses modes, chapter 5). The book runs this when it is built,
    so the static page steps through real training results without a kernel.

    Parameters
    ----------
    d : int, optional
        Feature width (default ``max(2K, 4)``).
    seed : int, default 0
        Initialisation seed of every run.
    progress : bool, default True
        Show a ``tqdm.auto`` bar over the runs.
    **grid
        Any of :data:`TRAINING_GRID`: ``kind, K, n_max`` (the profile) and the values of
        ``ratio, lam, L, bias, init`` (a single value or a sequence each).

    Returns
    -------
    dict
        ``profile`` (kind, K, n_max), ``d``, ``seed``, ``axes`` (the values of each grid axis),
        ``init_labels`` and ``runs``: per setting, the setting, ``n``, ``steps``, ``objective``,
        ``gap``, ``n_modes`` (surviving modes of the trained ``W M D``), ``history`` (``step``,
        ``gap``, ``nc1``), the trained ``W_gram`` and ``M_gram`` (K, K) and ``dist`` (their
        relative distances to the theory). About 1.5 kB a run.
    """
    from tqdm.auto import tqdm

    unknown = set(grid) - set(TRAINING_GRID)
    if unknown:
        raise TypeError(f"unknown grid parameter(s) {sorted(unknown)}; allowed: {sorted(TRAINING_GRID)}")
    g = {**TRAINING_GRID, **grid}
    axes = _grid_axes(g)
    settings = [dict(zip(_AXES, combo)) for combo in itertools.product(*(axes[a] for a in _AXES))]
    runs = []
    for s in tqdm(settings, desc="training runs", disable=not progress):
        kwargs = training_settings(kind=g["kind"], K=g["K"], n_max=g["n_max"], ratio=s["ratio"], lam=s["lam"], L=s["L"],
                                   bias=s["bias"], d=d, seed=seed)  # fmt: skip
        result = train(**{**kwargs, "steps": None, **_INITS[s["init"]]}, progress=False)
        runs.append(_stored_run(result, s))
    return dict(profile=dict(kind=g["kind"], K=int(g["K"]), n_max=int(g["n_max"])), d=int(kwargs["d"]), seed=seed,
                axes=axes, init_labels={k: _INIT_LABELS[k] for k in axes["init"]}, runs=runs)  # fmt: skip


class TrainingView(anywidget.AnyWidget):
    """The precomputed training view: step through stored runs, compared with the theory in the browser.

    Attributes
    ----------
    runs : dict
        The output of :func:`training_runs`.
    ratio, lam, L, bias, init
        The selected setting (one value of each axis of ``runs``).
    """

    _esm = _bundle("svg.mjs", "ui.mjs", "theory_math.mjs", "training_view.mjs")
    _css = _static_text("explorer.css")
    runs = traitlets.Dict().tag(sync=True)
    ratio = traitlets.Float().tag(sync=True)
    lam = traitlets.Float().tag(sync=True)
    L = traitlets.Int().tag(sync=True)
    bias = traitlets.Bool().tag(sync=True)
    init = traitlets.Unicode().tag(sync=True)

    def __init__(self, runs: dict[str, Any], **selection: Any):
        unknown = set(selection) - set(_AXES)
        if unknown:
            raise TypeError(f"training_view got unknown parameter(s) {sorted(unknown)}; allowed: {list(_AXES)}")
        axes = runs["axes"]
        chosen = {}
        for name in _AXES:
            default = TRAINING_VIEW_DEFAULTS[name] if TRAINING_VIEW_DEFAULTS[name] in axes[name] else axes[name][0]
            value = selection.get(name, default)
            if value not in axes[name]:
                raise ValueError(f"{name} must be one of the trained values {axes[name]}; got {value!r}")
            chosen[name] = value
        super().__init__(runs=runs, **chosen)

    def run(self) -> dict[str, Any]:
        """The stored run of the selected setting."""
        key = tuple(getattr(self, a) for a in _AXES)
        return next(r for r in self.runs["runs"] if tuple(r[a] for a in _AXES) == key)


def training_view(runs: dict[str, Any] | None = None, **selection: Any) -> TrainingView:
    """Trained runs over a grid, shown against the closed form; works without a kernel.

    Parameters
    ----------
    runs : dict, optional
        The output of :func:`training_runs`; trained on :data:`TRAINING_GRID` when omitted
        (about a minute on a laptop CPU).
    **selection
        The setting shown first: any of ``ratio, lam, L, bias, init`` (defaults
        :data:`TRAINING_VIEW_DEFAULTS` when they are on the grid).

    Returns
    -------
    TrainingView
    """
    return TrainingView(training_runs() if runs is None else runs, **selection)
