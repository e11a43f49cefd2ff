"""A real network on real data, measured against the unconstrained feature model (UFM).

The UFM (P) treats the last hidden layer's features ``H`` as free variables. A real network
produces them with a backbone, so the question is how far the model's predictions carry over.
This module trains a small network whose *head is exactly the UFM*:

``x (64) -> backbone (MLP, ReLU, width d) -> h (d) -> W_L ... W_1 h + b (K)``,

with the objective

.. math::

    \\frac{1}{2N}\\lVert W_L\\cdots W_1 H + b\\,\\mathbf 1^\\top - Y\\rVert_F^2
    + \\sum_l \\frac{\\lambda_{W}}{2}\\lVert W_l\\rVert_F^2
    + \\frac{\\lambda_H}{2}\\lVert H\\rVert_F^2
    + \\frac{\\mu}{2}\\lVert \\theta_{\\text{backbone}}\\rVert^2 ,

i.e. (P) of :mod:`nclab.objective` with ``H = backbone(X)`` (d x N, samples in columns) plus
weight decay ``mu`` (``weight_decay``) on the backbone's weights. The *feature decay*
``lambda_H/2 ||H||_F^2`` (summed over samples, as in (P), not averaged) is what makes the
analogy exact: for a backbone expressive enough to produce any ``H``, and ``mu -> 0``, the
network's minimisers are the UFM's. By default the last backbone layer is linear (no ReLU on
``h``), so ``H`` is unconstrained in sign as in the UFM; ``relu_features=True`` gives the usual
post-ReLU penultimate features instead.

It also loads user features (:func:`load_features`) and measures every collapse metric on them
(:func:`analyze_features`), with the UFM prediction for the same class counts after fitting one
scalar, an effective regularisation strength (:func:`fit_effective_lambda`).

Data: scikit-learn's handwritten digits (8x8 images, 10 classes, about 178 per class), shipped
with scikit-learn, so nothing is downloaded (:func:`load_digits`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as nc
from . import _validate
from ._validate import MAX_CLASSES, MAX_DEPTH, MAX_WIDTH, boolean, choice, nonneg, positive, whole
from .data import check_counts
from .theory import critical_lambda, global_minimizer, simplex_etf_gram, orthogonal_frame_gram
from .ufm import TrainingDivergedError, resolve_device

__all__ = [
    "load_digits",
    "MLPNetwork",
    "NetResult",
    "train_network",
    "load_features",
    "analyze_features",
    "LambdaFit",
    "fit_effective_lambda",
    "centred_gram",
]


# ----------------------------------------------------------------------------- data


def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as _sk_digits

    data = _sk_digits()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


def load_digits(n: Sequence[int] | np.ndarray, *, seed: int = 0, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Handwritten digits with a chosen class-count profile.

    Class ``k`` of the profile is digit ``k``. Each class is subsampled without replacement,
    reproducibly for a given ``seed``; samples come back ordered by class, like
    :func:`nclab.data.labels_from_counts`.

    Parameters
    ----------
    n : array_like of int, shape (K,)
        Samples per class, ``2 <= K <= 10``; ``n_k`` at most the number of images of digit
        ``k`` (174 to 183).
    seed : int, default 0
        Seed of the subsampling.
    standardize : bool, default True
        Centre and scale each pixel with the mean and standard deviation of the *whole*
        data set (constant pixels are only centred), so the scaling does not depend on ``n``.

    Returns
    -------
    X : numpy.ndarray, shape (N, 64), float64
    labels : numpy.ndarray, shape (N,), int64

    Raises
    ------
    ValueError
        If ``n`` is not a valid profile, has more than 10 classes, or asks for more images of
        a digit than exist.
    """
    counts = check_counts(n, "n")
    if counts.size > 10:
        raise ValueError(f"n must have at most 10 classes (digits 0-9); got {counts.size}")
    seed = _validate.seed(seed)
    standardize = boolean(standardize, "standardize")
    X_all, y_all = _digits_raw()
    available = np.bincount(y_all, minlength=10)
    too_many = [k for k in range(counts.size) if counts[k] > available[k]]
    if too_many:
        k = too_many[0]
        raise ValueError(
            f"n asks for {int(counts[k])} images of digit {k}, but only {int(available[k])} exist "
            f"(maximum per class: {dict((j, int(available[j])) for j in range(counts.size))})"
        )
    if standardize:
        mu, sd = X_all.mean(0), X_all.std(0)
        X_all = (X_all - mu) / np.where(sd > 0, sd, 1.0)
    rng = np.random.default_rng(int(seed))
    idx = []
    for k, nk in enumerate(counts.astype(int)):
        pool = np.flatnonzero(y_all == k)
        idx.append(np.sort(rng.choice(pool, size=nk, replace=False)))
    idx = np.concatenate(idx)
    return X_all[idx].copy(), y_all[idx].copy()


# ----------------------------------------------------------------------------- the network


class MLPNetwork(torch.nn.Module):
    """MLP backbone followed by the UFM's head ``W_L ... W_1 h + b``.

    Parameters
    ----------
    in_dim : int
        Input dimension (64 for the digits).
    K : int
        Number of classes.
    width : int
        Width ``d`` of every hidden layer, and so the feature dimension.
    depth : int
        Number of linear layers in the backbone (>= 1); a ReLU follows each but the last,
        and the last too if ``relu_features``.
    L : int
        Number of linear layers in the head: ``W_1..W_{L-1}`` (d x d) and ``W_L`` (K x d).
    bias : bool
        Whether the head has a bias ``b`` (never regularised).
    relu_features : bool
        Apply a ReLU to the features ``h``.
    """

    def __init__(self, in_dim: int, K: int, width: int, depth: int, L: int, bias: bool, relu_features: bool = False):
        super().__init__()
        in_dim, K = whole(in_dim, "in_dim", 1, MAX_WIDTH), whole(K, "K", 2, MAX_CLASSES)
        width, depth, L = whole(width, "width", 1, MAX_WIDTH), whole(depth, "depth", 1, MAX_DEPTH), whole(L, "L", 1, MAX_DEPTH)
        bias, relu_features = boolean(bias, "bias"), boolean(relu_features, "relu_features")
        mods: list[torch.nn.Module] = []
        dims = [in_dim] + [width] * depth
        for i in range(depth):
            mods.append(torch.nn.Linear(dims[i], dims[i + 1]))
            if i < depth - 1 or relu_features:
                mods.append(torch.nn.ReLU())
        self.backbone = torch.nn.Sequential(*mods)
        self.head = torch.nn.ModuleList(
            [torch.nn.Linear(width, width, bias=False) for _ in range(L - 1)] + [torch.nn.Linear(width, K, bias=False)]
        )
        self.b = torch.nn.Parameter(torch.zeros(K)) if bias else None

    def features(self, X: torch.Tensor) -> torch.Tensor:
        """Features ``h``, shape (B, d) (rows are samples here; the book's ``H`` is the transpose)."""
        return self.backbone(X)

    def classify(self, Hrows: torch.Tensor) -> torch.Tensor:
        """Logits ``W h + b`` of features given as rows, shape (B, K)."""
        z = Hrows
        for layer in self.head:
            z = layer(z)
        return z + self.b if self.b is not None else z

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(X))

    def backbone_weights(self) -> list[torch.Tensor]:
        """The backbone's weight matrices (the ones ``weight_decay`` acts on; biases are free)."""
        return [m.weight for m in self.backbone if isinstance(m, torch.nn.Linear)]


# ----------------------------------------------------------------------------- geometry helpers


def centred_gram(M: np.ndarray, n: Sequence[float] | np.ndarray, *, bias: bool = True) -> np.ndarray:
    """Gram ``M_c^T M_c`` of the class means the UFM's ``M^T M`` should be compared with.

    With a bias the UFM optimum has zero sample-weighted mean (``M n = 0``) and the bias
    absorbs any shift, so the means are centred by the *weighted* global mean first; without a
    bias nothing can absorb a shift and ``M`` is used as it is.

    Parameters
    ----------
    M : array, shape (d, K)
    n : array_like, shape (K,)
    bias : bool

    Returns
    -------
    numpy.ndarray, shape (K, K)
    """
    Mc = nc.ufm_centered_means(M, n, bias=bias)
    return Mc.T @ Mc


@dataclass(frozen=True)
class LambdaFit:
    """Result of :func:`fit_effective_lambda`.

    Attributes
    ----------
    lam : float
        The fitted common strength (``lam_W = lam_H = lam``).
    distance : float
        ``gram_distance`` between the given Gram and the prediction at ``lam``.
    grid, distances : numpy.ndarray
        Every strength tried and its distance.
    """

    lam: float
    distance: float
    grid: np.ndarray = field(repr=False)
    distances: np.ndarray = field(repr=False)


def _default_grid(counts: np.ndarray, L: int, bias: bool) -> np.ndarray:
    top = float(np.max(critical_lambda(counts, L=L, bias=bias)))
    return top * np.logspace(-4, 0, 161)[:-1]  # at and above the top critical value every mode is gone


def _theory_gram(counts: np.ndarray, lam: float, L: int, bias: bool, which: str) -> np.ndarray:
    g = global_minimizer(counts, lam, lam, L=L, bias=bias)
    return g.M_gram if which == "M" else g.W_gram


def fit_effective_lambda(
    G: np.ndarray,
    n: Sequence[float] | np.ndarray,
    *,
    L: int = 1,
    bias: bool = True,
    which: str = "M",
    grid: Sequence[float] | np.ndarray | None = None,
) -> LambdaFit:
    """The one scalar fitted when comparing a network with the UFM: an effective strength.

    A network's regularisation does not map one-to-one onto (P) (its backbone has its own
    weight decay, training stops at a finite time, ...), so the prediction is taken at the
    common strength ``lam = lam_W = lam_H`` whose Gram is closest in shape to ``G``:
    ``argmin_lam gram_distance(G, G_theory(n, lam))`` over a logarithmic grid. Nothing else is
    fitted (``gram_distance`` normalises both matrices, which fixes the overall scale).

    Parameters
    ----------
    G : array, shape (K, K)
        Measured Gram: ``M^T M`` of the (weighted-centred, with bias; see :func:`centred_gram`)
        class means if ``which="M"``, ``W W^T`` of the product classifier if ``which="W"``.
    n : array_like, shape (K,)
        Class counts.
    L : int, default 1
        Depth of the linear head.
    bias : bool, default True
        Compare with the UFM with (target ``Yhat``) or without (target ``D``) bias.
    which : {"M", "W"}
    grid : array_like, optional
        Strengths to try (> 0). Default: 160 values spaced logarithmically from 1e-4 times
        the largest critical strength (:func:`nclab.theory.critical_lambda`) up to it.

    Returns
    -------
    LambdaFit
    """
    counts = check_counts(n)
    which = choice(which, "which", ("M", "W"))
    L, bias = whole(L, "L", 1, MAX_DEPTH), boolean(bias, "bias")
    Gn = _validate.array(G, "G", shape=(counts.size, counts.size), describe=f"a (K, K) = {(counts.size, counts.size)} Gram matrix for n")
    if grid is None:
        grid_a = _default_grid(counts, L, bias)
    else:
        grid_a = _validate.array(grid, "grid", ndim=1, describe="a one-dimensional sequence of strengths")
        if np.any(grid_a <= 0):
            raise ValueError(f"grid must hold strengths > 0; got minimum {grid_a.min():g}")
    dist = np.array([nc.gram_distance(Gn, _theory_gram(counts, lam, L, bias, which)) for lam in grid_a])
    i = int(np.argmin(dist))
    return LambdaFit(lam=float(grid_a[i]), distance=float(dist[i]), grid=grid_a, distances=dist)


# ----------------------------------------------------------------------------- analysis of features


def _check_labels(labels: np.ndarray, N: int | None, what: str = "labels") -> tuple[np.ndarray, int]:
    """Labels of a feature set and ``K``: whole-valued floats accepted (as files store them), every class ``0..K-1`` present, ``K >= 2``."""
    if not _validate.is_tensor(labels) and np.asarray(labels).dtype.kind == "f":
        yf = _validate.array(labels, what, ndim=1, describe="one-dimensional, one class index per sample")
        if not np.all(yf == np.round(yf)):
            raise ValueError(f"{what} must be whole numbers (class indices 0..K-1); got non-integer values such as {yf[yf != np.round(yf)][:3]}")
        labels = yf.astype(np.int64)
    y = _validate.labels(labels, what, N=N)
    K = int(y.max()) + 1
    if K < 2:
        raise ValueError(f"{what} contain only class 0; at least 2 classes are needed")
    empty = np.flatnonzero(np.bincount(y, minlength=K) == 0).tolist()
    if empty:
        raise ValueError(f"{what}: classes {empty} have no samples (labels must use every class 0..{K - 1})")
    return y, K


def load_features(path: str | os.PathLike, labels: str | os.PathLike | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load features a user extracted from their own network (e.g. a CIFAR ResNet's penultimate layer).

    Parameters
    ----------
    path : str or path
        ``.npz`` with arrays ``features`` (N, d) and ``labels`` (N,), or ``.npy`` with the
        features (N, d) alone, in which case ``labels`` is required.
    labels : str, path or array, optional
        Labels (N,) for a ``.npy`` file: another ``.npy`` file or an array.

    Returns
    -------
    H : numpy.ndarray, shape (d, N), float64
        Features with samples in columns (the book's convention; note the transpose).
    labels : numpy.ndarray, shape (N,), int64
        Class indices ``0..K-1``, every class present.

    Raises
    ------
    ValueError
        Unknown file type, missing keys or labels, features not two-dimensional, label count
        not matching the samples, non-integer labels, or a class with no samples.
    """
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if ext == ".npz":
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in ("features", "labels") if k not in f.files]
            if missing:
                raise ValueError(f"{p}: an .npz file needs arrays 'features' (N, d) and 'labels' (N,); missing {missing}, found {f.files}")
            feats, y = f["features"], f["labels"]
        if labels is not None:
            raise ValueError("labels must be None for an .npz file (it carries its own 'labels')")
    elif ext == ".npy":
        feats = np.load(p, allow_pickle=False)
        if labels is None:
            raise ValueError(f"{p}: an .npy file holds only the features; pass labels= (an array or a .npy file of shape (N,))")
        y = np.load(os.fspath(labels), allow_pickle=False) if isinstance(labels, (str, os.PathLike)) else np.asarray(labels)
    else:
        raise ValueError(f"path must end in .npz or .npy; got {p!r}")
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"features must be a two-dimensional array (N samples, d features); got shape {feats.shape}")
    if feats.dtype.kind not in "fiu":
        raise ValueError(f"features must be numeric; got dtype {feats.dtype}")
    if not np.all(np.isfinite(feats)):
        raise ValueError("features contain NaN or infinite values")
    y, _ = _check_labels(y, feats.shape[0])
    return np.ascontiguousarray(feats.T, dtype=np.float64), y


def analyze_features(
    H: np.ndarray,
    labels: np.ndarray,
    W: np.ndarray | None = None,
    b: np.ndarray | None = None,
    *,
    lam_W: float | None = None,
    lam_H: float | None = None,
    L: int = 1,
    bias: bool = True,
    batch_size: int = 8192,
) -> dict[str, object]:
    """Every collapse metric of features ``H`` (and a classifier ``W``, ``b``), against the UFM.

    Statistics are accumulated with :class:`nclab.metrics.FeatureStats` in batches of
    ``batch_size`` samples (:func:`nclab.analysis.stream_statistics`), so large feature sets
    (ImageNet-sized) fit in memory. For a model and a dataset instead of extracted features,
    see :func:`nclab.analysis.analyze_model`.

    Parameters
    ----------
    H : array, shape (d, N)
        Features, samples in columns (:func:`load_features` returns this layout).
    labels : array of int, shape (N,)
    W : array, shape (K, d), optional
        Product classifier ``W_L ... W_1``.
    b : array, shape (K,), optional
        Bias of the classifier.
    lam_W, lam_H : float, optional
        Nominal strengths; if both are given the prediction at them is reported too.
    L : int, default 1
        Depth of the linear head (for the prediction).
    bias : bool, default True
        Compare with the UFM with bias (weighted-centred means, target ``Yhat``) or without.
    batch_size : int, default 8192

    Returns
    -------
    dict with
        ``K``, ``N``, ``d``, ``n`` (counts);
        ``nc1``, ``nc1_weighted``: NC1 in the unweighted and the sample-weighted convention;
        ``M_gram``: the class-mean Gram compared with theory (:func:`centred_gram`);
        ``M_etf``: distance of the unweighted-centred mean Gram to the simplex ETF (Papyan's NC2);
        ``M_equinorm``, ``M_equiangularity``;
        ``lam_eff_M``, ``M_theory``, ``M_theory_gram``: fitted strength, distance to the UFM
        prediction there, and the predicted Gram;
        ``M_theory_nominal``: distance at ``lam_W``, ``lam_H`` (if given).
        With ``W``: ``W_gram``, ``W_etf`` (to the simplex ETF with bias, the identity without),
        ``W_equinorm``, ``lam_eff_W``, ``W_theory``, ``W_theory_gram``, ``W_theory_nominal``,
        ``nc3`` (self-duality of ``W`` and the centred means), ``nc4`` (agreement with the
        nearest class mean), ``train_error``.
        The modes (:func:`nclab.analysis.summarize`): ``lam_eff`` (``lam_eff_W`` with ``W``,
        else ``lam_eff_M``), ``sv_theory`` and ``modes_theory`` (predicted singular values of
        ``W M D`` there, relative to the largest, and how many survive), with ``W`` also
        ``sv`` and ``modes`` measured; ``bias``.
    """
    from .analysis import stream_statistics, summarize  # the streaming core (it imports this module)

    Ht = _validate.array(H, "H", ndim=2, describe="of shape (d, N), samples in columns")
    y, K = _check_labels(labels, Ht.shape[1])
    lam_W = None if lam_W is None else nonneg(lam_W, "lam_W")
    lam_H = None if lam_H is None else nonneg(lam_H, "lam_H")
    L, bias = whole(L, "L", 1, MAX_DEPTH), boolean(bias, "bias")
    batch_size = whole(batch_size, "batch_size", 1)
    d, N = Ht.shape
    Wn = None if W is None else _validate.array(W, "W", shape=(K, d))
    bn = None if b is None else _validate.array(b, "b", shape=(K,))

    def batches():
        for start in range(0, N, batch_size):
            Hb = np.asarray(Ht[:, start : start + batch_size], dtype=float)
            logits = None if Wn is None else Wn @ Hb + (0.0 if bn is None else bn[:, None])
            yield Hb, y[start : start + batch_size], logits

    streamed = stream_statistics(batches, K, where="H")
    return summarize(streamed, Wn, lam_W=lam_W, lam_H=lam_H, L=L, bias=bias)


# ----------------------------------------------------------------------------- training


@dataclass(repr=False)
class NetResult:
    """A trained network, with its head and features as numpy arrays (float64, CPU).

    Attributes
    ----------
    layers : list of numpy.ndarray
        The head ``[W_1 (d, d), ..., W_L (K, d)]``.
    b : numpy.ndarray, shape (K,)
        Head bias (zeros without bias).
    H : numpy.ndarray, shape (d, N)
        Features of the training set under the final model.
    labels : numpy.ndarray, shape (N,)
    n : numpy.ndarray, shape (K,)
    history : dict of numpy.ndarray
        At each logged step: ``step``, ``objective`` ((P) with ``H = backbone(X)``), ``total``
        (plus backbone decay), ``loss`` (the data term), ``train_error``, ``nc1``,
        ``nc1_weighted``, ``M_etf``, ``W_etf`` (Gram distances to the simplex ETF, or the
        identity for ``W`` without bias), ``M_theory``, ``W_theory`` (Gram distances to the UFM
        optimum at the nominal ``lam_W``, ``lam_H``; NaN if either is 0 or the loss is CE),
        ``nc3``, ``nc4``.
    snapshots : dict
        ``step`` and, per logged step, ``M`` (d, K) class means, ``W`` (K, d), ``b`` (K,).
    model : MLPNetwork
        The trained torch module (on its training device).
    settings : dict
    seconds : float
    """

    layers: list
    b: np.ndarray
    H: np.ndarray
    labels: np.ndarray
    n: np.ndarray
    history: dict = field(default_factory=dict)
    snapshots: dict = field(default_factory=dict)
    model: MLPNetwork | None = None
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def W(self) -> np.ndarray:
        """Product classifier ``W_L ... W_1``, shape (K, d)."""
        W = self.layers[0]
        for layer in self.layers[1:]:
            W = layer @ W
        return W

    @property
    def K(self) -> int:
        return int(self.n.size)

    @property
    def bias(self) -> bool:
        return bool(self.settings.get("bias", True))

    @property
    def means(self) -> np.ndarray:
        """Class means of the final features, shape (d, K)."""
        return nc.class_means(self.H, self.labels, self.K)

    def features(self, X: np.ndarray) -> np.ndarray:
        """Features of new inputs ``X`` (B, in_dim) under the trained backbone, shape (d, B)."""
        p = next(self.model.parameters())
        in_dim = self.model.backbone[0].in_features
        Xn = _validate.array(X, "X", shape=(None, in_dim), describe=f"a (B, in_dim) = (B, {in_dim}) matrix, one row per input")
        with torch.no_grad():
            h = self.model.features(torch.as_tensor(Xn, dtype=p.dtype, device=p.device))
        return h.T.double().cpu().numpy()

    def analyze(self) -> dict[str, object]:
        """:func:`analyze_features` of the final features and head.

        The prediction at the nominal strengths is included for the MSE loss (the closed form
        does not cover cross-entropy; the fitted-strength comparison is reported either way).
        """
        s = self.settings
        mse = s["loss"] == "mse"
        return analyze_features(
            self.H, self.labels, self.W, self.b if self.bias else None,
            lam_W=s["lam_W"] if mse else None, lam_H=s["lam_H"] if mse else None, L=s["L"], bias=self.bias,
        )  # fmt: skip

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"NetResult(K={self.K}, N={int(self.n.sum())}, d={self.H.shape[0]}, L={s.get('L')}, bias={self.bias}, "
            f"loss={s.get('loss')!r}, steps={s.get('steps')}, train_error={self.history['train_error'][-1]:.3g}, "
            f"nc1={self.history['nc1'][-1]:.3g})"
        )


def _optimizer(model: MLPNetwork, optimizer: str, lr: float, momentum: float, lam_W: float,
               weight_decay: float) -> torch.optim.Optimizer:  # fmt: skip
    """Adam or SGD whose coupled weight decay is the gradient of the weight terms of the objective.

    The decay ``lam`` of a parameter group adds ``lam * p`` to the gradient of each ``p``,
    which is the gradient of ``lam/2 ||p||^2``: the same step as putting the term in the loss,
    without differentiating it (fewer operations per step on these small networks). Biases
    are not decayed. Adam uses the fused kernel where this torch has it.
    """
    weights = {id(p) for p in model.backbone_weights()} | {id(p) for p in model.head.parameters()}
    groups = [
        {"params": list(model.head.parameters()), "weight_decay": lam_W},
        {"params": model.backbone_weights(), "weight_decay": weight_decay},
        {"params": [p for p in model.parameters() if id(p) not in weights], "weight_decay": 0.0},
    ]
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    try:
        return torch.optim.Adam(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # no fused Adam for this device or torch version
        return torch.optim.Adam(groups, lr=lr)


def _log_steps(steps: int, log_every: int | None) -> np.ndarray:
    if log_every is None:  # about 60 steps spaced logarithmically, for plots on a log axis
        return np.unique(np.concatenate([[0], np.round(np.logspace(0, math.log10(steps), 60)).astype(int), [steps]]))
    return np.unique(np.concatenate([np.arange(0, steps + 1, log_every), [steps]]))


_DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05}

#: Progress bars without elapsed time or rate, so that a page built from an executed notebook
#: shows no numbers that depend on the machine.
PROGRESS_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt}{postfix}"


def train_network(
    n: Sequence[int] | np.ndarray | None = None,
    *,
    width: int = 64,
    depth: int = 3,
    L: int = 1,
    bias: bool = True,
    loss: str = "mse",
    lam_W: float = 5e-3,
    lam_H: float = 5e-3,
    weight_decay: float = 1e-4,
    relu_features: bool = False,
    optimizer: str = "adam",
    lr: float | None = None,
    momentum: float = 0.9,
    steps: int = 3000,
    batch_size: int | None = None,
    seed: int = 0,
    data_seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    log_every: int | None = None,
    X: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> NetResult:
    """Train an MLP with a UFM head on (a class-count profile of) the digits, into the terminal phase.

    The objective is (P) with ``H = backbone(X)``, plus ``weight_decay/2`` times the squared
    norm of the backbone's weight matrices (see the module docstring). With mini-batches of
    size ``B`` each step uses the unbiased estimate ``(1/2B) ||residual_batch||^2 +
    (N/B) lam_H/2 ||H_batch||^2`` plus the weight terms. Training runs well past zero training
    error (the terminal phase of Papyan et al., 2020).

    Parameters
    ----------
    n : array_like of int, shape (K,), optional
        Class counts for :func:`load_digits`; or give ``X`` and ``labels`` instead.
    width : int, default 64
        Width ``d`` of the backbone and the features.
    depth : int, default 3
        Linear layers of the backbone.
    L : int, default 1
        Linear layers of the head.
    bias : bool, default True
        Head bias (unregularised), as in Liu (2024); ``False`` as in Dang et al. (2023).
    loss : {"mse", "ce"}
        ``(1/2N) ||logits - Y||^2`` to one-hot targets as in (P), or mean cross-entropy.
    lam_W : float, default 5e-3
        Weight decay of each head layer (>= 0).
    lam_H : float, default 5e-3
        Feature decay on the last hidden layer (>= 0).
    weight_decay : float, default 1e-4
        Decay of the backbone's weight matrices (>= 0; biases are not decayed).
    relu_features : bool, default False
        ReLU on the features (post-activation features, non-negative).
    optimizer : {"adam", "sgd"}
        Adam, or SGD with ``momentum``.
    lr : float, optional
        Learning rate (default 1e-3 for Adam, 0.05 for SGD).
    momentum : float, default 0.9
    steps : int, default 3000
        Optimiser steps (full-batch steps are epochs).
    batch_size : int, optional
        ``None``: full batch. Otherwise mini-batches drawn by a seeded shuffle each epoch.
    seed : int, default 0
        Seed of the initialisation and the mini-batch order (the global RNG is untouched).
    data_seed : int, default 0
        Seed of :func:`load_digits`' subsampling.
    device : {None, "cpu", "cuda"}
        ``None`` uses CUDA when available (:func:`nclab.ufm.resolve_device`).
    dtype : torch.dtype, default torch.float32
        Float32 by default (the standard for networks, fast on every GPU); metrics are computed
        in float64 from the float32 features. ``torch.float64`` for NC1 far below 1e-6.
    progress : bool, default True
        ``tqdm.auto`` progress bar.
    log_every : int, optional
        Steps between history entries; default about 60 logarithmically spaced steps.
    X, labels : arrays, optional
        Training data (N, in_dim) and labels (N,) instead of the digits.

    Returns
    -------
    NetResult

    Raises
    ------
    ValueError
        For invalid arguments, naming the parameter.
    TrainingDivergedError
        If the objective becomes non-finite (lower ``lr``).
    """
    data_seed = _validate.seed(data_seed, "data_seed")
    bias, relu_features, progress = boolean(bias, "bias"), boolean(relu_features, "relu_features"), boolean(progress, "progress")
    if X is None and labels is None:
        if n is None:
            raise ValueError("give n (class counts for the digits) or both X and labels")
        X_np, y = load_digits(n, seed=data_seed)
    elif X is None or labels is None:
        raise ValueError("X and labels must be given together")
    else:
        X_np = _validate.array(X, "X", ndim=2, describe="an (N, in_dim) matrix, one row per sample")
        y, _ = _check_labels(labels, X_np.shape[0])
        if n is not None and not np.array_equal(check_counts(n), np.bincount(y).astype(float)):
            raise ValueError("n does not match the class counts of labels; pass n=None with X and labels")
    counts = np.bincount(y).astype(np.float64)
    K, N = counts.size, y.size
    width = whole(width, "width", 1, MAX_WIDTH)
    depth = whole(depth, "depth", 1, MAX_DEPTH)
    L = whole(L, "L", 1, MAX_DEPTH)
    lam_W = nonneg(lam_W, "lam_W")
    lam_H = nonneg(lam_H, "lam_H")
    weight_decay = nonneg(weight_decay, "weight_decay")
    loss = choice(loss, "loss", ("mse", "ce"))
    optimizer = choice(optimizer, "optimizer", ("adam", "sgd"))
    lr = _DEFAULT_LR[optimizer] if lr is None else lr
    lr = positive(lr, "lr")
    momentum = nonneg(momentum, "momentum")
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1); got {momentum}")
    steps = whole(steps, "steps", 1)
    if batch_size is not None:
        batch_size = whole(batch_size, "batch_size", 1)
        if batch_size >= N:
            batch_size = None
    seed = _validate.seed(seed)
    if log_every is not None:
        log_every = whole(log_every, "log_every", 1)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
    dev = resolve_device(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLPNetwork(X_np.shape[1], K, width, depth, L, bias, relu_features)
    model = model.to(device=dev, dtype=dtype)
    Xt = torch.as_tensor(X_np, dtype=dtype, device=dev)
    yt = torch.as_tensor(y, device=dev)
    Yt = torch.nn.functional.one_hot(yt, K).to(dtype)  # (N, K): rows are samples inside the module
    head_params = list(model.head.parameters())
    bb_weights = model.backbone_weights()
    opt = _optimizer(model, optimizer, lr, momentum, lam_W, weight_decay)
    gen = torch.Generator().manual_seed(seed + 1)

    def data_term(logits: torch.Tensor, Yb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if loss == "mse":
            return ((logits - Yb) ** 2).sum() / (2 * logits.shape[0])
        return torch.nn.functional.cross_entropy(logits, yb)

    def weights_term() -> tuple[torch.Tensor, torch.Tensor]:
        head = sum((lam_W / 2) * (p**2).sum() for p in head_params)
        bb = sum((weight_decay / 2) * (p**2).sum() for p in bb_weights)
        return head, bb

    def batch_objective(idx: torch.Tensor | None) -> torch.Tensor:
        """The data and feature terms; the weight terms' gradients come from the optimiser."""
        xb, Yb, yb = (Xt, Yt, yt) if idx is None else (Xt[idx], Yt[idx], yt[idx])
        h = model.features(xb)
        scale = 1.0 if idx is None else N / idx.numel()
        return data_term(model.classify(h), Yb, yb) + scale * (lam_H / 2) * (h**2).sum()

    nominal = loss == "mse" and lam_W > 0 and lam_H > 0
    g = global_minimizer(counts, lam_W, lam_H, L=L, bias=bias) if nominal else None
    etf = simplex_etf_gram(K)
    W_ref = etf if bias else orthogonal_frame_gram(K)
    keys = ("step", "objective", "total", "loss", "train_error", "nc1", "nc1_weighted", "M_etf", "W_etf", "M_theory", "W_theory", "nc3", "nc4")
    history: dict[str, list[float]] = {k: [] for k in keys}
    snapshots: dict[str, list] = {"step": [], "M": [], "W": [], "b": []}
    log_at = set(_log_steps(steps, log_every).tolist())

    def log(step: int) -> np.ndarray:
        with torch.no_grad():
            h = model.features(Xt)
            logits = model.classify(h)
            data = float(data_term(logits, Yt, yt))
            head, bb = weights_term()
            feat = float((lam_H / 2) * (h.double() ** 2).sum())
            obj = data + feat + float(head)
            total = obj + float(bb)
            err = float((logits.argmax(1) != yt).double().mean())
        if not math.isfinite(total):
            raise TrainingDivergedError(f"training diverged at step {step}: objective = {total:g}; lower the learning rate (lr={lr:g}; try lr={lr / 10:g})")
        H = h.T.double().cpu().numpy()
        layers = [p.detach().double().cpu().numpy() for p in (m.weight for m in model.head)]
        W = layers[0]
        for layer in layers[1:]:
            W = layer @ W
        b = model.b.detach().double().cpu().numpy() if model.b is not None else np.zeros(K)
        stats = nc.FeatureStats(K).update(H, y)
        M = stats.means
        Mu = nc.centered_means(M)
        G_M = centred_gram(M, counts, bias=bias)
        row = dict(
            step=step, objective=obj, total=total, loss=data, train_error=err,
            nc1=stats.nc1(False), nc1_weighted=stats.nc1(True),
            M_etf=nc.gram_distance(Mu.T @ Mu, etf), W_etf=nc.gram_distance(W @ W.T, W_ref),
            M_theory=nc.gram_distance(G_M, g.M_gram) if g is not None else float("nan"),
            W_theory=nc.gram_distance(W @ W.T, g.W_gram) if g is not None else float("nan"),
            nc3=nc.nc3(W, M, counts, bias=bias), nc4=nc.ncc_agreement(H, W, b if bias else None, M),
        )  # fmt: skip
        for k in keys:
            history[k].append(row[k])
        snapshots["step"].append(step)
        snapshots["M"].append(M)
        snapshots["W"].append(W)
        snapshots["b"].append(b)
        return H

    desc = f"net {'bias' if bias else 'no bias'} ({optimizer}, {loss})"
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=True, bar_format=PROGRESS_FORMAT)
    start = time.perf_counter()
    H_final = log(0)
    order: torch.Tensor | None = None
    pos = N
    for step in range(1, steps + 1):
        idx = None
        if batch_size is not None:
            if pos + batch_size > N:
                order, pos = torch.randperm(N, generator=gen).to(dev), 0
            idx, pos = order[pos : pos + batch_size], pos + batch_size
        opt.zero_grad(set_to_none=True)
        f = batch_objective(idx)
        f.backward()
        opt.step()
        if step in log_at:
            H_final = log(step)
            bar.update(step - bar.n)
            bar.set_postfix(objective=f"{history['objective'][-1]:.4g}", err=f"{history['train_error'][-1]:.3g}", refresh=False)
    bar.close()
    seconds = time.perf_counter() - start

    settings = dict(
        width=width, depth=depth, L=L, bias=bool(bias), loss=loss, lam_W=lam_W, lam_H=lam_H, weight_decay=weight_decay,
        relu_features=bool(relu_features), optimizer=optimizer, lr=lr, momentum=momentum if optimizer == "sgd" else None,
        steps=steps, batch_size=batch_size, seed=seed, data_seed=data_seed, device=str(dev), dtype=str(dtype).replace("torch.", ""),
    )  # fmt: skip
    return NetResult(
        layers=[p.detach().double().cpu().numpy() for p in (m.weight for m in model.head)],
        b=model.b.detach().double().cpu().numpy() if model.b is not None else np.zeros(K),
        H=H_final,
        labels=y,
        n=counts,
        history={k: np.asarray(v) for k, v in history.items()},
        snapshots={k: (np.asarray(v) if k == "step" else v) for k, v in snapshots.items()},
        model=model,
        settings=settings,
        seconds=seconds,
    )
