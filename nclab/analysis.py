"""Collapse analysis of any network's features, streamed in batches, against the UFM.

The book's analysis of a network (chapter 6) needs only class statistics of the last-layer
features and the classifier: NC1 from the within- and between-class covariances, the Gram
matrices of the class means and of ``W``, NC3 from both, and NC4 from each sample's decision
and nearest class mean. None of it needs the feature matrix at once, so this module streams
it: batches of features, from a matrix (:func:`nclab.nets.analyze_features`) or from a
``torch.nn.Module`` run over a dataset with a forward hook (:func:`analyze_model`), are merged
into :class:`nclab.metrics.FeatureStats` (Chan's pairwise update). Memory holds one batch of
activations plus ``K x d`` means and a ``d x d`` scatter matrix, whatever the dataset size.

Two passes over the data: the first accumulates the statistics (and the training error), the
second compares each sample's decision with its nearest class mean (NC4), which needs the
final means.

The comparison with the UFM (Liu 2024 with a bias, Dang et al. 2023 without) follows
chapter 6: the network's Gram matrices against the closed-form optimum
(:func:`nclab.theory.global_minimizer`) at a fitted effective strength
(:func:`nclab.nets.fit_effective_lambda`), with and without bias, and the modes that survive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as nc
from ._validate import positive, whole
from .nets import PROGRESS_FORMAT, _theory_gram, centred_gram, fit_effective_lambda
from .theory import global_minimizer, orthogonal_frame_gram, simplex_etf_gram

__all__ = [
    "last_linear",
    "Streamed",
    "stream_statistics",
    "summarize",
    "CollapseReport",
    "analyze_model",
]

Batches = Callable[[], Iterable[tuple]]


# ----------------------------------------------------------------------------- the two passes


def _batch_labels(y: object, K: int, i: int) -> torch.Tensor:
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.ndim != 1 or t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise ValueError(
            f"labels must be one-dimensional integer class indices 0..{K - 1}; batch {i} has "
            f"dtype {t.dtype} and shape {tuple(t.shape)}"
        )
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= K):
        bad = t[(t < 0) | (t >= K)][0]
        raise ValueError(
            f"labels must be class indices 0..{K - 1} (K = {K} classes); batch {i} has label {int(bad)}"
        )
    return t.long()


def _tensor(x: object, device: torch.device | str | None = None) -> torch.Tensor:
    """A float64 tensor of a batch (numpy or torch), on ``device`` or where it already is."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype=torch.float64, device=device or x.device)
    return torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=device)


def _finite(H: torch.Tensor, i: int, where: str) -> torch.Tensor:
    if not bool(torch.isfinite(H).all()):
        raise ValueError(
            f"features of batch {i} ({where}) contain NaN or infinite values: the activations "
            "diverged or the inputs contain NaN"
        )
    return H


def _decisions(logits: torch.Tensor, H: torch.Tensor, y: torch.Tensor, M: torch.Tensor) -> tuple[int, int]:
    """Samples whose decision equals their nearest class mean (NC4), and errors, in one batch.

    ``logits`` (K, B), ``H`` (d, B), ``M`` (d, K); nearest mean as :func:`nclab.metrics.ncc_agreement`.
    """
    decision = logits.argmax(0)
    nearest = torch.cdist(H.T, M.T).argmin(1)
    return int((decision == nearest).sum()), int((decision != y).sum())


@dataclass
class Streamed:
    """What the two passes of :func:`stream_statistics` collect.

    Attributes
    ----------
    stats : nclab.metrics.FeatureStats
        Class counts, means and scatter of the features.
    nc4 : float or None
        Fraction of samples whose decision is their nearest class mean (``None`` without
        decisions).
    train_error : float or None
        Fraction of samples whose decision is not their label.
    """

    stats: nc.FeatureStats
    nc4: float | None = None
    train_error: float | None = None


def stream_statistics(
    batches: Batches,
    K: int,
    *,
    decide: bool = True,
    total: int | None = None,
    progress: bool = False,
    where: str = "features",
) -> Streamed:
    """Two passes over batches of features: class statistics, then NC4 and the error.

    Parameters
    ----------
    batches : callable
        ``batches()`` returns a fresh iterable of ``(H, labels, logits)``: features ``H``
        (d, B), labels (B,) in ``0..K-1``, and the decisions' scores ``logits`` (K, B), or
        ``None`` when there is no classifier. Called once per pass.
    K : int
        Number of classes.
    decide : bool, default True
        Run the second pass (NC4, training error) when the batches carry logits.
    total : int, optional
        Batches per pass, for the progress bar.
    progress : bool, default False
        ``tqdm.auto`` progress bar over both passes.
    where : str
        Names the features' origin in error messages.

    Returns
    -------
    Streamed

    Raises
    ------
    ValueError
        Labels outside ``0..K-1``, features with NaN, a class with no samples.
    """
    K = whole(K, "K", 2)
    stats = nc.FeatureStats(K)
    bar = tqdm(total=None if total is None else 2 * total if decide else total,
               desc="collapse analysis", disable=not progress, leave=True, bar_format=PROGRESS_FORMAT)  # fmt: skip
    has_logits, seen = False, 0
    for i, (H, y, logits) in enumerate(batches()):
        Ht = _finite(_tensor(H), i, where)
        stats.update(Ht, _batch_labels(y, K, i).cpu().numpy())
        has_logits, seen = logits is not None, seen + 1
        bar.update()
    if not seen:
        raise ValueError("the data yielded no batches")
    try:
        N = float(stats.counts.sum())
    except ValueError as exc:  # a class with no samples
        raise ValueError(f"{exc} (labels must cover every class 0..{K - 1})") from None
    out = Streamed(stats)
    if decide and has_logits:
        agree = errors = 0
        M = stats.means
        for i, (H, y, logits) in enumerate(batches()):
            Ht = _tensor(H)
            a, e = _decisions(_tensor(logits, Ht.device), Ht, _batch_labels(y, K, i).to(Ht.device), M)
            agree, errors = agree + a, errors + e
            bar.update()
        out.nc4, out.train_error = agree / N, errors / N
    bar.close()
    return out


# ----------------------------------------------------------------------------- the summary


def _theory_sv(counts: np.ndarray, lam: float, L: int, bias: bool) -> tuple[np.ndarray, int]:
    g = global_minimizer(counts, lam, lam, L=L, bias=bias)
    x = g.x
    return (x / x.max() if x.max() > 0 else x), g.n_active


def summarize(
    streamed: Streamed,
    W: np.ndarray | None = None,
    *,
    lam_W: float | None = None,
    lam_H: float | None = None,
    L: int = 1,
    bias: bool = True,
    mode_tol: float = 1e-2,
) -> dict[str, object]:
    """The book's collapse analysis from streamed statistics (see :func:`nclab.nets.analyze_features`).

    Parameters
    ----------
    streamed : Streamed
        From :func:`stream_statistics`.
    W : array, shape (K, d), optional
        The (product) classifier.
    lam_W, lam_H : float, optional
        Nominal strengths; with both, the distances at them are reported too.
    L : int, default 1
        Depth of the linear head, for the prediction.
    bias : bool, default True
        Compare with the UFM with bias (weighted-centred means, target ``Yhat``; Liu 2024) or
        without (raw means, target ``D``; Dang et al. 2023).
    mode_tol : float, default 1e-2
        A measured mode survives when its singular value of ``W M D`` is above ``mode_tol``
        times the largest (a network's dead modes are small, not zero).

    Returns
    -------
    dict
        The keys of :func:`nclab.nets.analyze_features`, and ``bias``, ``lam_eff`` (the
        strength the modes are predicted at: from ``W`` if given, else from ``M``),
        ``sv_theory`` (K,) the predicted singular values of ``W M D`` there, divided by the
        largest, and ``modes_theory`` how many survive; with ``W`` also ``sv`` and ``modes``,
        the same measured on the network (``M`` centred as for ``M_gram``).
    """
    L = whole(L, "L", 1)
    mode_tol = positive(mode_tol, "mode_tol")
    stats = streamed.stats
    counts = stats.counts
    K = counts.size
    M = nc._numpy(stats.means)
    d = M.shape[0]
    out: dict[str, object] = {"K": K, "N": int(counts.sum()), "d": d, "n": counts, "bias": bool(bias)}
    out["nc1"] = stats.nc1(weighted=False)
    out["nc1_weighted"] = stats.nc1(weighted=True)
    G_M = centred_gram(M, counts, bias=bias)
    out["M_gram"] = G_M
    Mu = nc.centered_means(M)
    out["M_etf"] = nc.gram_distance(Mu.T @ Mu, simplex_etf_gram(K))
    out["M_equinorm"] = nc.equinorm(Mu.T @ Mu)
    out["M_equiangularity"] = nc.equiangularity(Mu.T @ Mu)
    fit = fit_effective_lambda(G_M, counts, L=L, bias=bias, which="M")
    out["lam_eff_M"], out["M_theory"] = fit.lam, fit.distance
    out["M_theory_gram"] = _theory_gram(counts, fit.lam, L, bias, "M")
    nominal = lam_W is not None and lam_H is not None and lam_W > 0 and lam_H > 0
    g = global_minimizer(counts, lam_W, lam_H, L=L, bias=bias) if nominal else None
    out["M_theory_nominal"] = nc.gram_distance(G_M, g.M_gram) if g is not None else float("nan")
    out["lam_eff"] = fit.lam
    if W is not None:
        Wn = np.asarray(W, dtype=float)
        if Wn.shape != (K, d):
            raise ValueError(f"W must have shape (K, d) = {(K, d)}; got {Wn.shape}")
        G_W = Wn @ Wn.T
        out["W_gram"] = G_W
        out["W_etf"] = nc.gram_distance(G_W, simplex_etf_gram(K) if bias else orthogonal_frame_gram(K))
        out["W_equinorm"] = nc.equinorm(G_W)
        fitW = fit_effective_lambda(G_W, counts, L=L, bias=bias, which="W")
        out["lam_eff_W"], out["W_theory"] = fitW.lam, fitW.distance
        out["W_theory_gram"] = _theory_gram(counts, fitW.lam, L, bias, "W")
        out["W_theory_nominal"] = nc.gram_distance(G_W, g.W_gram) if g is not None else float("nan")
        Mc = nc.centered_means(M, counts, weighted=True) if bias else M
        out["nc3"] = nc.self_duality(Wn, Mc)
        sv = nc.wmd_singular_values(Wn, Mc, counts)
        out["sv"] = sv / sv.max() if sv.max() > 0 else sv
        out["modes"] = int(np.sum(out["sv"] > mode_tol))
        out["lam_eff"] = fitW.lam
    out["sv_theory"], out["modes_theory"] = _theory_sv(counts, out["lam_eff"], L, bias)
    if streamed.nc4 is not None:
        out["nc4"], out["train_error"] = streamed.nc4, streamed.train_error
    return out


# ----------------------------------------------------------------------------- the report


@dataclass(repr=False)
class CollapseReport:
    """A network's features against the UFM with and without bias (:func:`analyze_model`).

    Attributes
    ----------
    with_bias, without_bias : dict
        :func:`summarize` against the UFM with bias (Liu 2024) and without (Dang et al. 2023):
        the keys of :func:`nclab.nets.analyze_features` and the modes.
    layer : str
        Where the features were taken ("input of <name>" or "output of <name>").
    stats : nclab.metrics.FeatureStats
        The streamed class statistics (means, scatter, counts; float64).
    W : numpy.ndarray, shape (K, d), or None
        The classifier compared with the theory.
    """

    with_bias: dict
    without_bias: dict
    layer: str
    stats: nc.FeatureStats = field(repr=False)
    W: np.ndarray | None = field(default=None, repr=False)

    def __getitem__(self, bias: bool) -> dict:
        """``report[True]`` is :attr:`with_bias`, ``report[False]`` :attr:`without_bias`."""
        return self.with_bias if bias else self.without_bias

    @property
    def n(self) -> np.ndarray:
        """Samples per class, shape (K,)."""
        return self.with_bias["n"]

    @property
    def means(self) -> np.ndarray:
        """Class means of the features, shape (d, K)."""
        return nc._numpy(self.stats.means)

    def table(self) -> str:
        """The comparison as fixed-width text, rounded to 3 significant digits."""
        a, b = self.with_bias, self.without_bias
        lines = [
            f"features: {self.layer}; K = {a['K']}, N = {a['N']}, d = {a['d']}",
            f"NC1 {a['nc1']:.3g} (weighted {a['nc1_weighted']:.3g})"
            + (f", NC4 {a['nc4']:.3g}, training error {a['train_error']:.3g}" if "nc4" in a else ""),
            f"{'':30s}{'UFM with bias':>16s}{'UFM without bias':>18s}",
        ]
        rows = [("fitted lambda", "lam_eff", "{:.3g}"), ("M^T M: distance to UFM", "M_theory", "{:.3f}")]
        if self.W is not None:
            rows += [("W W^T: distance to UFM", "W_theory", "{:.3f}"), ("NC3 (self-duality)", "nc3", "{:.3f}"),
                     ("modes alive: network", "modes", "{:d}")]  # fmt: skip
        rows += [("modes alive: UFM", "modes_theory", "{:d}")]
        for name, key, fmt in rows:
            lines.append(f"{name:30s}{fmt.format(a[key]):>16s}{fmt.format(b[key]):>18s}")
        return "\n".join(lines)

    def plot(self, **kwargs):
        """:func:`nclab.plots.plot_ufm_comparison` of this report."""
        from .plots import plot_ufm_comparison

        return plot_ufm_comparison(self.with_bias, self.without_bias, **kwargs)

    def __repr__(self) -> str:
        a = self.with_bias
        return f"CollapseReport(K={a['K']}, N={a['N']}, d={a['d']}, layer={self.layer!r}, nc1={a['nc1']:.3g})"


# ----------------------------------------------------------------------------- any torch model


def last_linear(model: torch.nn.Module) -> tuple[str, torch.nn.Linear]:
    """The last ``torch.nn.Linear`` registered in ``model`` (its output layer in usual models).

    Returns
    -------
    (name, module)

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    ValueError
        If the model has no linear layer.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not found:
        names = [name for name, _ in model.named_modules() if name][:8]
        raise ValueError(
            "model has no torch.nn.Linear layer, so it has no linear head whose input could be "
            f"taken as the features; pass layer='<name>' of the module whose output are the "
            f"features (modules: {names})"
        )
    return found[-1]


class _Hook:
    """Captures one tensor per forward pass: the input of a module, or its output."""

    def __init__(self, module: torch.nn.Module, name: str, on_input: bool):
        self.name, self.on_input, self.seen = name, on_input, []
        if on_input:
            self.handle = module.register_forward_pre_hook(lambda m, args: self.seen.append(args[0]))
        else:
            self.handle = module.register_forward_hook(lambda m, args, out: self.seen.append(out))

    @property
    def where(self) -> str:
        return f"{'input' if self.on_input else 'output'} of {self.name!r}"

    def take(self) -> torch.Tensor:
        """The captured features as (B, d) rows; clears the capture."""
        seen, self.seen = self.seen, []
        if len(seen) != 1:
            raise ValueError(f"the {self.where} was seen {len(seen)} times in one forward pass; name a layer that runs once")
        h = seen[0]
        if not isinstance(h, torch.Tensor):
            raise ValueError(f"the {self.where} is a {type(h).__name__}, not a tensor; name another layer")
        if self.on_input and h.ndim != 2:
            raise ValueError(f"the {self.where} has shape {tuple(h.shape)}, not (B, d); name the feature layer with layer=")
        return h.detach().flatten(1)


def _as_loader(data: object, batch_size: int) -> Iterable:
    if isinstance(data, torch.utils.data.DataLoader):
        if data.drop_last:
            raise ValueError("data is a DataLoader with drop_last=True, which leaves samples out; use drop_last=False")
        return data
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, Iterable) or iter(data) is data:
        raise TypeError(
            "data must be a torch Dataset, a DataLoader or a re-iterable sequence of (inputs, labels) "
            f"batches (it is read twice); got {type(data).__name__}"
        )
    return data


def _classifier(model: torch.nn.Module, layer: str | None, classifier: object) -> tuple[torch.nn.Module, str, bool, np.ndarray | None]:
    """The hooked module, its name, whether its input is hooked, and the classifier ``W``."""
    if layer is None:
        name, lin = last_linear(model)
        module, on_input = lin, True
    else:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"layer {layer!r} is not a module of the model; names include {[n for n in modules if n][:12]}")
        name, module, on_input = layer, modules[layer], False
    if classifier is None:
        W = None
    elif isinstance(classifier, str) and classifier == "auto":
        W = last_linear(model)[1].weight.detach().double().cpu().numpy() if layer is None else None
    else:
        W = np.asarray(classifier, dtype=float)
        if W.ndim != 2:
            raise ValueError(f"classifier must be 'auto', None or an array W of shape (K, d); got shape {W.shape}")
    return module, name, on_input, W


def analyze_model(
    model: torch.nn.Module,
    data: object,
    *,
    layer: str | None = None,
    classifier: object = "auto",
    num_classes: int | None = None,
    lam_W: float | None = None,
    lam_H: float | None = None,
    L: int = 1,
    batch_size: int = 256,
    nc4: bool = True,
    progress: bool = True,
) -> CollapseReport:
    """Collapse analysis of a trained network on a dataset, against the UFM with and without bias.

    The features are taken with a forward hook, by default at the input of the model's last
    ``torch.nn.Linear`` (the penultimate layer), and streamed in batches through
    :func:`stream_statistics` on the model's device (CPU or GPU): memory holds one batch of
    activations plus ``K x d`` means and a ``d x d`` scatter, whatever the size of the data.
    The model runs in eval mode (batch norm uses its running statistics) without gradients,
    and is returned to its previous mode. Decisions (NC4, training error) are the argmax of
    the model's output.

    Parameters
    ----------
    model : torch.nn.Module
        A trained classifier whose output is the logits, shape (B, K).
    data : Dataset, DataLoader or sequence of (inputs, labels) batches
        Read twice (statistics, then NC4). A Dataset is read in order in batches of
        ``batch_size``. Usually the training set, without augmentation.
    layer : str, optional
        Name (as in ``model.named_modules()``) of the module whose output are the features,
        flattened to (B, d). Default: the input of the last ``torch.nn.Linear``.
    classifier : "auto", None or array (K, d)
        ``W`` compared with the theory: ``"auto"`` takes the weight of the last linear layer
        when ``layer`` is None (nothing otherwise); or pass ``W``, e.g. the product of a deep
        linear head; ``None`` skips the classifier's comparisons.
    num_classes : int, optional
        ``K``; default the number of rows of ``W``, else the model's output size.
    lam_W, lam_H : float, optional
        Nominal strengths for (P); with both, distances at them are reported too.
    L : int, default 1
        Depth of the linear head, for the prediction.
    batch_size : int, default 256
        Batch size when ``data`` is a Dataset.
    nc4 : bool, default True
        Run the second pass (NC4 against the final class means).
    progress : bool, default True
        ``tqdm.auto`` progress bar.

    Returns
    -------
    CollapseReport

    Raises
    ------
    TypeError
        ``model`` is not a module, or ``data`` cannot be read twice.
    ValueError
        The model has no linear layer (and no ``layer`` is named), an unknown ``layer``,
        labels outside ``0..K-1``, a class with no samples, features with NaN or infinite
        values, or a classifier whose shape does not match the features.
    """
    module, name, on_input, W = _classifier(model, layer, classifier)
    batch_size = whole(batch_size, "batch_size", 1)
    loader = _as_loader(data, batch_size)
    if num_classes is not None:
        K = whole(num_classes, "num_classes", 2)
        if W is not None and W.shape[0] != K:
            raise ValueError(f"num_classes = {K} but the classifier has {W.shape[0]} rows")
    elif W is not None:
        K = W.shape[0]
    else:
        K = None  # the model's output size, read from the first batch
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    hook = _Hook(module, name, on_input)
    sizes: dict[str, int] = {}

    def batches() -> Iterator[tuple]:
        for i, batch in enumerate(loader):
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError(f"each batch must be a pair (inputs, labels); batch {i} is a {type(batch).__name__}")
            x, y = batch
            out = model(x.to(device) if isinstance(x, torch.Tensor) else x)
            h = hook.take()
            if sizes.setdefault("d", h.shape[1]) != h.shape[1]:
                raise ValueError(f"features of batch {i} have d = {h.shape[1]}, earlier batches {sizes['d']}")
            logits = out.T if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] == sizes["K"] else None
            yield h.T, y, logits

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if K is None:  # one forward pass of the first batch tells the model's output size
                x0 = next(iter(loader))[0]
                out0 = model(x0.to(device) if isinstance(x0, torch.Tensor) else x0)
                hook.take()
                if not (isinstance(out0, torch.Tensor) and out0.ndim == 2 and out0.shape[1] >= 2):
                    raise ValueError("cannot tell K from the model's output; pass num_classes=")
                K = int(out0.shape[1])
            sizes["K"] = K
            total = len(loader) if hasattr(loader, "__len__") else None
            streamed = stream_statistics(batches, K, decide=nc4, total=total, progress=progress, where=hook.where)
    finally:
        hook.handle.remove()
        model.train(was_training)
    if W is not None and W.shape[1] != sizes["d"]:
        raise ValueError(
            f"the classifier has {W.shape[1]} columns but the {hook.where} has d = {sizes['d']} features; "
            "pass classifier=None or the matching W"
        )
    reports = {b: summarize(streamed, W, lam_W=lam_W, lam_H=lam_H, L=L, bias=b) for b in (True, False)}
    return CollapseReport(reports[True], reports[False], hook.where, streamed.stats, W)
