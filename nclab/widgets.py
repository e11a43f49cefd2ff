"""Interactive explorers (ipywidgets + matplotlib) and their static counterparts.

Two explorers, each split into a pure computation, a drawing function and the widget that
wires controls to both:

* the **theory explorer**: class-count profile, strengths and depth in, the closed-form
  optimum of the L-layer UFM (P) out (:func:`explorer_state` computes, :func:`draw_theory`
  draws, :func:`theory_explorer` is the widget, :func:`theory_figure` the static figure at
  chosen parameters);
* the **training explorer**: pick a setting, press *Train*, watch :func:`nclab.train` run
  with a progress bar and compare the trained geometry with the theory
  (:func:`training_explorer`, static counterpart :func:`training_figure`).

The widgets need a running kernel to recompute. In the static book the state embedded at
build time is shown, which is why every interactive cell has a static figure beside it.
"""

from __future__ import annotations

import html
import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from . import _validate, data, metrics, theory
from .plots import plot_geometry, plot_gram, plot_history, plot_spectrum
from .ufm import TrainingDivergedError, TrainResult, train

__all__ = [
    "THEORY_DEFAULTS",
    "TRAINING_DEFAULTS",
    "explorer_state",
    "draw_theory",
    "theory_figure",
    "theory_explorer",
    "training_settings",
    "training_figure",
    "training_explorer",
    "TheoryExplorer",
    "TrainingExplorer",
]

#: Default parameters of the theory explorer: a step profile 200,200,50,50 at a strength where
#: the minority mode has just collapsed (its singular value 7.07 is below ``s_thr = 7.5``).
THEORY_DEFAULTS: dict[str, Any] = dict(
    kind="step", K=4, n_max=200, ratio=4.0, lam_W=0.015, lam_H=0.015, L=1, bias=True
)

#: Default parameters of the training explorer (``lam`` is used for every ``lam_W`` and ``lam_H``).
TRAINING_DEFAULTS: dict[str, Any] = dict(
    kind="step", K=4, n_max=200, ratio=4.0, lam=0.015, L=1, bias=True, optimizer="lbfgs", steps=2000, d=None, seed=0
)

_KINDS = ("balanced", "step", "long-tailed")
_OPTIMIZERS = ("lbfgs", "gd", "adam")
# Relative tolerance under which two optimal class means count as the same point.
_SAME_MEAN_RTOL = 1e-9
# A mode whose singular value is within this fraction of s_thr is called "near the threshold".
_NEAR = 0.05
# Ranges of the explorers' sliders: a default outside them would be clamped silently by ipywidgets.
_SLIDER_RANGES = {"K": (2, 12), "n_max": (10, 1000), "ratio": (1.0, 1000.0), "lam_W": (1e-4, 1.0), "lam_H": (1e-4, 1.0),
                  "lam": (1e-4, 1.0), "L": (1, 5), "steps": (10, 10000)}  # fmt: skip


def _check_slider_defaults(p: dict[str, Any], where: str) -> None:
    """Refuse initial values the sliders cannot show (ipywidgets would clamp them without a word)."""
    for key, (lo, hi) in _SLIDER_RANGES.items():
        if key in p:
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
    ax.set_ylim(-0.03 * top, 1.45 * top)
    ax.set_title("spectrum of the target", fontsize=9)
    ax.legend(fontsize=6.5, loc="upper right", ncol=2)


def draw_theory(state: dict[str, Any], fig: Figure | None = None) -> Figure:
    """Draw an :func:`explorer_state` result: spectrum, ``W W^T``, ``M^T M`` and the 2-D geometry.

    Parameters
    ----------
    state : dict
        Output of :func:`explorer_state`.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into (cleared first); a new pyplot figure of size (8, 6.6) otherwise.

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
        fig = plt.figure(figsize=(8, 6.6), layout="constrained")
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
    geo.title.set_fontsize(9)
    if geo.get_legend() is not None:  # beside the plane, not on it
        handles = geo.get_legend().legend_handles
        geo.legend(handles=handles, fontsize=6.5, loc="center left", bbox_to_anchor=(1.02, 0.5))
    grams = ((axes[1, 0], "W_gram", r"$W W^\top$ (classifier Gram)", "W = 0"),
             (axes[1, 1], "M_gram", r"$M^\top M$ (class-mean Gram)", "M = 0"))  # fmt: skip
    for ax, key, name, zero in grams:
        G = np.where(np.abs(state[key]) > 1e-12 * np.abs(state[key]).max(), state[key], 0.0)  # no "-0.00"
        unit, suffix = _unit(G)
        plot_gram(G / unit + 0.0, ax, title=name + suffix, annotate=p["K"] <= 6)
        ax.title.set_fontsize(9)
        ax.set_xlabel("class")
        if state["n_active"] == 0:
            ax.text(0.5, 0.5, f"{zero}\n(every mode collapsed)", transform=ax.transAxes, ha="center", va="center",
                    fontsize=9, color="C3")  # fmt: skip
    fig.suptitle(
        f"{p['kind']}, K={p['K']}, ratio={p['ratio']:.3g}, $\\lambda_W$={p['lam_W']:.2g}, $\\lambda_H$={p['lam_H']:.2g}, "
        f"L={p['L']}, {'bias' if p['bias'] else 'no bias'}: {state['n_active']} mode(s) survive",
        fontsize=10,
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


def _messages_html(state: dict[str, Any]) -> str:
    color = "#b35900" if state["level"] == "warning" else "#1a6b1a"
    items = "".join(f"<li>{html.escape(m)}</li>" for m in state["messages"])
    head = html.escape(state["summary"].split("\n")[0]) + "<br>" + html.escape(state["summary"].split("\n")[1])
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{s:.3g}</td><td>{x:.3g}</td><td>{'yes' if a else 'no'}</td><td>{cc:.3g}</td></tr>"
        for i, (s, x, a, cc) in enumerate(zip(state["s"], state["x"], state["active"], state["critical_c"]))
    )
    table = (
        "<table style='font-size:90%'><tr><th>mode</th><th>s<sub>i</sub></th><th>x<sub>i</sub></th>"
        f"<th>survives</th><th>dies at c =</th></tr>{rows}</table>"
    )
    return f"<div style='color:{color}'>{head}<ul>{items}</ul></div>{table}"


class TheoryExplorer:
    """Controller of the theory explorer; ``.widget`` is what a notebook displays.

    Attributes
    ----------
    controls : dict of ipywidgets widgets
        ``kind, K, n_max, ratio, lam_W, lam_H, L, bias``.
    state : dict
        The latest :func:`explorer_state` (``None`` if the parameters were invalid).
    summary : ipywidgets.HTML
        Messages and the per-mode table.
    output : ipywidgets.Output
        Where the figure is drawn.
    widget : ipywidgets.VBox
    """

    def __init__(self, **defaults: Any):
        import ipywidgets as w

        unknown = set(defaults) - set(THEORY_DEFAULTS)
        if unknown:
            raise TypeError(f"theory_explorer got unknown parameter(s) {sorted(unknown)}; allowed: {sorted(THEORY_DEFAULTS)}")
        p = {**THEORY_DEFAULTS, **defaults}
        _check_slider_defaults(p, "theory_explorer")
        style = {"description_width": "90px"}
        lay = w.Layout(width="330px")
        self.controls = dict(
            kind=w.ToggleButtons(options=list(_KINDS), value=p["kind"], description="profile", style=style),
            K=w.IntSlider(value=p["K"], min=2, max=12, description="K (classes)", style=style, layout=lay, continuous_update=False),
            n_max=w.IntSlider(value=p["n_max"], min=10, max=1000, step=10, description="n_max", style=style, layout=lay,
                              continuous_update=False),
            ratio=w.FloatLogSlider(value=p["ratio"], base=10, min=0, max=3, step=0.05, description="ratio n_max/n_min",
                                   style=style, layout=lay, continuous_update=False, readout_format=".3g"),
            lam_W=w.FloatLogSlider(value=p["lam_W"], base=10, min=-4, max=0, step=0.05, description="λ_W",
                                   style=style, layout=lay, continuous_update=False, readout_format=".2g"),
            lam_H=w.FloatLogSlider(value=p["lam_H"], base=10, min=-4, max=0, step=0.05, description="λ_H",
                                   style=style, layout=lay, continuous_update=False, readout_format=".2g"),
            L=w.IntSlider(value=p["L"], min=1, max=5, description="depth L", style=style, layout=lay, continuous_update=False),
            bias=w.Checkbox(value=bool(p["bias"]), description="bias (unregularised)", style=style),
        )  # fmt: skip
        self.summary = w.HTML()
        self.output = w.Output()
        self.state: dict[str, Any] | None = None
        self.message = ""
        left = w.VBox(list(self.controls.values()) + [self.summary], layout=w.Layout(width="350px"))
        self.widget = w.HBox([left, self.output])
        for c in self.controls.values():
            c.observe(self._on_change, names="value")
        self.update()

    def params(self) -> dict[str, Any]:
        """Current control values, as keyword arguments of :func:`explorer_state`."""
        return {k: c.value for k, c in self.controls.items()}

    def _on_change(self, change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state and redraw; invalid input shows a message, never a traceback."""
        from IPython.display import display

        p = self.params()
        self.controls["ratio"].disabled = p["kind"] == "balanced"
        try:
            self.state = explorer_state(**p)
        except (ValueError, FloatingPointError, OverflowError) as exc:
            self.state = None
            self.message = f"Cannot compute this setting: {exc}"
            self.summary.value = f"<div style='color:#b30000'>{html.escape(self.message)}</div>"
            return
        self.message = self.state["summary"]
        self.summary.value = _messages_html(self.state)
        with self.output:
            self.output.clear_output(wait=True)
            fig = draw_theory(self.state)
            display(fig)
            plt.close(fig)


def theory_explorer(**defaults: Any):
    """Interactive explorer of the closed-form optimum (needs a running kernel to recompute).

    Controls: count profile (balanced / step / long-tailed), K, n_max, imbalance ratio,
    ``lam_W`` and ``lam_H`` (log sliders), depth L and the bias. Shown: the singular values of
    the target with the threshold ``s_thr`` and the interlacing bounds, which modes survive,
    ``W W^T`` and ``M^T M``, and the class means and classifier rows in the plane of the two
    strongest modes.

    Parameters
    ----------
    **defaults
        Initial values, any of :data:`THEORY_DEFAULTS`.

    Returns
    -------
    ipywidgets.Widget
        An ``HBox``; its ``explorer`` attribute is the :class:`TheoryExplorer` behind it.
    """
    ex = TheoryExplorer(**defaults)
    ex.widget.explorer = ex
    return ex.widget


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
    """Singular values of the trained ``W M D`` above 1e-4 of the largest (the surviving modes)."""
    sv = metrics.wmd_singular_values(result.W, result.means, result.n)
    top = sv.max() if sv.size else 0.0
    return sv > 1e-4 * top if top > 0 else np.zeros_like(sv, dtype=bool)


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
        style = {"description_width": "90px"}
        lay = w.Layout(width="330px")
        self.controls = dict(
            kind=w.ToggleButtons(options=list(_KINDS), value=p["kind"], description="profile", style=style),
            K=w.IntSlider(value=p["K"], min=2, max=12, description="K (classes)", style=style, layout=lay),
            n_max=w.IntSlider(value=p["n_max"], min=10, max=1000, step=10, description="n_max", style=style, layout=lay),
            ratio=w.FloatLogSlider(value=p["ratio"], base=10, min=0, max=3, step=0.05, description="ratio n_max/n_min",
                                   style=style, layout=lay, readout_format=".3g"),
            lam=w.FloatLogSlider(value=p["lam"], base=10, min=-4, max=0, step=0.05, description="λ (all)",
                                 style=style, layout=lay, readout_format=".2g"),
            L=w.IntSlider(value=p["L"], min=1, max=5, description="depth L", style=style, layout=lay),
            bias=w.Checkbox(value=bool(p["bias"]), description="bias (unregularised)", style=style),
            optimizer=w.ToggleButtons(options=list(_OPTIMIZERS), value=p["optimizer"], description="optimizer", style=style),
            steps=w.IntSlider(value=p["steps"], min=10, max=10000, step=10, description="steps (max)", style=style, layout=lay),
        )  # fmt: skip
        self.button = w.Button(description="Train", button_style="primary", icon="play")
        self.status = w.HTML("Choose a setting and press <b>Train</b>.")
        self.progress = w.Output()
        self.output = w.Output()
        self.result: TrainResult | None = None
        self.message = ""
        left = w.VBox(list(self.controls.values()) + [self.button, self.status], layout=w.Layout(width="350px"))
        self.widget = w.HBox([left, w.VBox([self.progress, self.output])])
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
        An ``HBox``; its ``explorer`` attribute is the :class:`TrainingExplorer` behind it.
    """
    ex = TrainingExplorer(**defaults)
    ex.widget.explorer = ex
    return ex.widget
