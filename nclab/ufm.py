"""Training the L-layer unconstrained feature model (P) in PyTorch, on CPU or GPU.

The model has free features ``H`` (d x N), layers ``W_1..W_L`` and an optional bias; its
objective is :func:`nclab.objective.ufm_objective`. :func:`train` minimises it with

* ``optimizer="lbfgs"`` (default): full-batch L-BFGS in float64 (:mod:`nclab.lbfgs`), several
  random starts run as one batch, then a *polishing* pass. By default the features and the bias
  are *exact*: for fixed layers (P) is a ridge regression in ``(H, b)`` whose minimiser is
  collapsed (:func:`nclab.objective.exact_features`; variable projection), so L-BFGS moves only
  the layers and evaluates (P) from the K x K Gram matrix ``W W^T``
  (:func:`nclab.objective.projected_objective`). Nothing of size N is built: the time and the
  memory of a call do not grow with N, and :attr:`TrainResult.H` is made from the class means
  on first access. The layers are trained in random subspaces of dimension ``r = min(d, K)``
  (the optimum has rank at most K): the start is the Gaussian start with the parts of each
  layer that cannot reach the classifier's output removed, and L-BFGS never leaves those
  subspaces (every gradient lies in them), so only r x r blocks are stored and multiplied; for
  ``L = 1`` this is exactly L-BFGS on the full ``K x d`` layer. ``features="free"`` keeps ``H``
  and ``b`` as optimiser parameters, at full width. For ``L >= 2`` the origin of every mode is
  a local minimum and, just below the threshold, so is a spurious nonzero mode
  (``nclab.theory.nonzero_branch``). The polishing pass removes the weakest surviving mode,
  then plants the mode the residual misses, keeping each move only if (P) went down. With the
  defaults, training reaches the closed-form optimum on the book's problems;
* ``optimizer="gd"`` (full-batch gradient descent with momentum) or ``"adam"``, for chapters
  that show training dynamics.

A run that does not converge says so: :class:`TrainingDivergedError` when the objective
becomes non-finite or explodes, a :class:`TrainingWarning` naming the parameter to change when
it ends far from stationarity or rose by orders of magnitude on the way.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as nc
from ._polish import polish
from ._validate import boolean, choice, nonneg, positive, whole
from .data import check_counts, labels_from_counts, one_hot
from .lbfgs import BatchedLBFGS
from .objective import _exact_features, _projected_fit, _projected_objective, _projection_target, product, ufm_objective
from .theory import MAX_DEPTH, GlobalMinimizer, check_lambdas, global_minimizer

__all__ = [
    "TrainingDivergedError",
    "TrainingWarning",
    "TrainResult",
    "resolve_device",
    "train",
    "train_many",
    "HISTORY_METRICS",
]


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite or exploding objective."""


class TrainingWarning(RuntimeWarning):
    """A run that ended far from stationarity, or whose objective rose by orders of magnitude."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` picks CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be None, 'cpu' or 'cuda[:i]'; got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA GPU is available; use device=None or 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")
    return dev


# ----------------------------------------------------------------------------- the result


def _check_width(d: int, g: GlobalMinimizer) -> None:
    """The closed form assumes ``d >= `` its number of surviving modes; refuse a narrower model."""
    if d < g.n_active:
        raise ValueError(
            f"d = {d} is smaller than the {g.n_active} modes that survive at the closed-form optimum, which assumes "
            f"d >= {g.n_active}: at this width the optimum is not known in closed form (f* is only a lower bound). "
            f"Use d >= {g.n_active} to compare with the theory."
        )


@dataclass(repr=False)
class TrainResult:
    """A trained UFM, as numpy arrays on the CPU.

    Attributes
    ----------
    layers : list of numpy.ndarray
        ``[W_1 (d, d), ..., W_L (K, d)]``.
    means : numpy.ndarray, shape (d, K)
        Class means ``M`` of the trained features.
    b : numpy.ndarray, shape (K,)
        Trained bias (zeros for a model without bias).
    n : numpy.ndarray, shape (K,)
    objective : float
        Final value of (P) (or of its cross-entropy variant).
    history : dict of numpy.ndarray
        ``"step"``, ``"seconds"`` (wall time since the start) and ``"objective"``, plus the
        requested metrics, logged every ``log_every`` steps.
    settings : dict
        Everything :func:`train` was called with, resolved (``lam_W`` per layer, device, ...).
    steps : int
        Optimiser iterations taken.
    seconds : float
        Wall time of the training.
    features : numpy.ndarray of shape (d, N), or None
        The trained per-sample features of a run with ``features="free"``; None with exact
        features, which are collapsed (:attr:`H` builds them from the class means).
    """

    layers: list
    means: np.ndarray
    b: np.ndarray
    n: np.ndarray
    objective: float
    history: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    features: np.ndarray | None = None

    @cached_property
    def labels(self) -> np.ndarray:
        """Labels, shape (N,): samples ordered by class (:func:`nclab.data.labels_from_counts`)."""
        return labels_from_counts(self.n)

    @cached_property
    def H(self) -> np.ndarray:
        """Features, shape (d, N): the trained ones, or, with exact features, ``H = M Y``
        (every sample at its class mean), built on first access."""
        return self.features if self.features is not None else self.means[:, self.labels]

    @property
    def W(self) -> np.ndarray:
        """Product classifier ``W_L ... W_1``, shape (K, d)."""
        return product(self.layers)

    @property
    def K(self) -> int:
        return int(self.n.size)

    @property
    def N(self) -> int:
        return int(self.n.sum())

    @property
    def d(self) -> int:
        return int(self.means.shape[0])

    @property
    def L(self) -> int:
        return len(self.layers)

    @property
    def bias(self) -> bool:
        return bool(self.settings.get("bias", True))

    def theory(self) -> GlobalMinimizer:
        """The closed-form optimum for the same counts and strengths (MSE with free bias only).

        Raises
        ------
        ValueError
            For a cross-entropy or regularised-bias run, or when ``d`` is smaller than the
            number of modes that survive at the closed-form optimum (which assumes it is not).
        """
        if "_theory" not in self.__dict__:
            s = self.settings
            if s["loss"] != "mse" or s["lam_b"] != 0:
                raise ValueError("the closed form covers loss='mse' with an unregularised bias (lam_b=0) only")
            g = global_minimizer(self.n, s["lam_W"], s["lam_H"], L=self.L, bias=self.bias)
            _check_width(self.d, g)
            self.__dict__["_theory"] = g
        return self.__dict__["_theory"]

    @property
    def gap(self) -> float:
        """Relative gap ``(f - f*) / f*`` to the closed-form optimum (see :meth:`theory`)."""
        f_star = self.theory().objective
        return (self.objective - f_star) / f_star

    def distance_to_theory(self) -> dict[str, float]:
        """Relative errors of ``W W^T``, ``M^T M``, ``b`` and the singular values of ``W M D`` (see :meth:`theory`)."""
        self.theory()
        s = self.settings
        b = self.b if self.bias else None
        return nc.distance_to_theory(self.W, self.means, b, self.n, s["lam_W"], s["lam_H"], L=self.L, bias=self.bias)

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"TrainResult(K={self.K}, N={self.N}, d={self.d}, L={self.L}, bias={self.bias}, loss={s.get('loss')!r}, "
            f"optimizer={s.get('optimizer')!r}, objective={self.objective:.10g}, steps={self.steps}, "
            f"device={s.get('device')!r}, seconds={self.seconds:.2f})"
        )


# ----------------------------------------------------------------------------- metrics logged in the history


class _State:
    """One point as the history metrics see it, built on first use.

    ``layers``, ``M`` and ``b`` are class-level and in the coordinates of the optimiser (the
    r-dimensional subspaces with exact features; every logged metric is invariant under their
    isometric embedding). ``H`` is the per-sample feature matrix of a free-feature run, and
    None with exact features, which are collapsed: every sample sits at its class mean.
    """

    def __init__(self, problem: "_Problem", theta_row: torch.Tensor, objective: float, minimizer: Callable[[], GlobalMinimizer]):
        self.problem, self.theta_row, self.objective, self.minimizer = problem, theta_row, objective, minimizer
        self.n, self.bias, self.K = problem.row(0)[0], problem.bias, problem.K

    @cached_property
    def _point(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None, np.ndarray | None]:
        return self.problem.to_numpy(self.theta_row)

    layers = property(lambda self: self._point[0])
    M = property(lambda self: self._point[1])
    b = property(lambda self: self._point[2])
    H = property(lambda self: self._point[3])

    @property
    def W(self) -> np.ndarray:
        return product(self.layers)

    @property
    def labels(self) -> np.ndarray:
        return labels_from_counts(self.n)


def _nc1(st: _State, weighted: bool = False) -> float:
    # exact features are collapsed by construction: Sigma_W = 0, so NC1 = 0 exactly
    return 0.0 if st.problem.exact else nc.nc1(st.H, st.labels, st.K, weighted=weighted)


def _nc3(st: _State) -> float:
    return nc.nc3(st.W, st.M, st.n, bias=st.bias)


def _nc4(st: _State) -> float:
    if not st.problem.exact:
        return nc.ncc_agreement(st.H, st.W, st.b, st.M)
    # collapsed features: every sample of class k sits at m_k, so NC4 is the count-weighted
    # fraction of classes whose mean the classifier assigns to its nearest mean (itself, or the
    # first of several coinciding means, as nc.ncc_agreement does sample by sample)
    M, W = st.M, st.W
    logits = W @ M + (0.0 if st.b is None else st.b[:, None])
    dist = np.linalg.norm(M[:, :, None] - M[:, None, :], axis=0)
    return float(st.n @ (logits.argmax(0) == dist.argmin(1)) / st.n.sum())


def _gram_error(which: str) -> Callable[[_State], float]:
    def metric(st: _State) -> float:
        g = st.minimizer()
        G = st.W @ st.W.T if which == "W" else st.M.T @ st.M
        ref = g.W_gram if which == "W" else g.M_gram
        return nc._relative(G, ref)

    return metric


def _gap(st: _State) -> float:
    f_star = st.minimizer().objective
    return (st.objective - f_star) / f_star


def _bias_error(st: "_State") -> float:
    """``||b - n/N|| / ||n/N||``: the bias against the class frequencies of the optimum."""
    return nc._relative(st.b, st.minimizer().b)


def _kept_modes(st: "_State") -> tuple[dict, np.ndarray]:
    """Rows of ``U^T W`` and columns of ``M D V`` (:func:`nclab.metrics.mode_alignment`), and
    the mask of the modes the optimum keeps."""
    g = st.minimizer()
    return nc.mode_alignment(st.W, st.M, g.n, bias=g.bias), g.active


def _alignment_error(st: "_State") -> float:
    """Worst ``1 - |cos(row i, column i)|`` over the modes the optimum keeps (Liu 2024, claim 4)."""
    geo, kept = _kept_modes(st)
    return float(np.max(1 - np.abs(geo["cos"][kept]))) if kept.any() else 0.0


def _orthogonality_error(st: "_State") -> float:
    """Worst ``|cos(row i, row j)|``, ``i != j``, among the rows of ``U^T W`` of the kept modes
    (claim 3: they are orthogonal); a vanished row counts as orthogonal to every other."""
    geo, kept = _kept_modes(st)
    G = geo["rows_gram"][np.ix_(kept, kept)]
    norms = np.sqrt(np.diag(G))
    tiny = 1e-12 * max(float(norms.max(initial=0.0)), 1e-300)
    unit = np.where(norms > tiny, 1 / np.where(norms > tiny, norms, 1.0), 0.0)
    C = np.abs(G * unit[:, None] * unit[None, :])
    np.fill_diagonal(C, 0.0)
    return float(C.max(initial=0.0))


def _sv_error(st: "_State") -> float:
    """Relative error of the singular values of ``W M D`` against the optimal ``x``."""
    g = st.minimizer()
    return nc._relative(np.sort(nc.wmd_singular_values(st.W, st.M, g.n))[::-1], np.sort(g.x)[::-1])


#: Metrics :func:`train` can log in ``history`` (pass their names in ``metrics=``).
HISTORY_METRICS: dict[str, Callable[[_State], float]] = {
    "nc1": _nc1,
    "nc1_weighted": lambda st: _nc1(st, weighted=True),
    "nc3": _nc3,
    "nc4": _nc4,
    "W_gram_error": _gram_error("W"),
    "M_gram_error": _gram_error("M"),
    "gap": _gap,
    "bias_error": _bias_error,
    "alignment_error": _alignment_error,
    "orthogonality_error": _orthogonality_error,
    "sv_error": _sv_error,
}

#: History metrics that compare with the closed form (they need ``loss="mse"``).
_CLOSED_FORM_METRICS = ("W_gram_error", "M_gram_error", "gap", "bias_error", "alignment_error",
                        "orthogonality_error", "sv_error")  # fmt: skip


# ----------------------------------------------------------------------------- the problem on packed parameters


class _LastTwo:
    """``fn(rows)`` for the last two ``rows`` tensors seen, each recomputed only when a new tensor comes (or the
    same one changed in place).

    A solver passes the same rows until a problem finishes, alternating with the rows of its
    line search: keeping both, the data of the problems are picked once per line search, not
    twice per iteration (on small problems the cost of an operation is its overhead).
    """

    def __init__(self, fn: Callable[[torch.Tensor | None], Any]):
        self.fn, self.slots = fn, []

    def __call__(self, rows: torch.Tensor | None) -> Any:
        version = None if rows is None else rows._version
        for seen, seen_version, value in self.slots:
            if seen is rows and seen_version == version:
                return value
        value = self.fn(rows)
        self.slots = [(rows, version, value)] + self.slots[:1]
        return value


class _Problem:
    """(P) for one problem or a batch of B problems (same K, d, N, L), on packed parameters.

    ``theta`` of shape (B, P) holds, per row, the layers and, with *free features*, ``H`` and
    ``b``. With *exact features* (variable projection, Golub & Pereyra 1973) it holds the layers
    only, at width ``r = min(d, K)`` (:meth:`init`): for fixed layers, (P) minimised over
    ``(H, b)`` is :func:`nclab.objective.projected_objective`, whose gradient is the gradient of
    ``min_{H, b} f`` (envelope theorem), and the minimiser is collapsed, ``H = M Y``
    (:func:`nclab.objective.exact_features`). Nothing of size N is stored then.

    Parameters
    ----------
    counts : numpy.ndarray, shape (K,) or (B, K)
    lam_W : list of L floats or (B,) tensors
    lam_H : float or (B,) tensor
    d, L, bias, lam_b, loss
        As in :func:`train`.
    exact : bool
        Exact features (needs ``loss="mse"`` and ``lam_b = 0``) or free features.
    dtype, device
        Of every tensor.
    """

    def __init__(self, counts, lam_W, lam_H, *, d: int, L: int, bias: bool, lam_b: float = 0.0, loss: str = "mse",
                 exact: bool = False, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):  # fmt: skip
        counts = np.asarray(counts, dtype=float)
        self.counts, self.lam_W, self.lam_H = counts, list(lam_W), lam_H
        self.n = torch.as_tensor(counts, dtype=dtype, device=device)
        self.K = K = counts.shape[-1]
        self.d, self.L, self.bias, self.lam_b, self.loss, self.exact = d, L, bias, lam_b, loss, exact
        self.r = r = min(d, K) if exact else d
        self.Y = None  # one-hot labels (K, N) or (B, K, N): free features only
        if not exact:
            Y = np.stack([one_hot(labels_from_counts(row), K) for row in np.atleast_2d(counts)])
            self.Y = torch.as_tensor(Y if counts.ndim == 2 else Y[0], dtype=dtype, device=device)
        N = int(counts.reshape(-1, K)[0].sum())
        self.shapes = [(r, r)] * (L - 1) + [(K, r)] + ([] if exact else [(d, N)] + ([(K,)] if bias else []))
        self.sizes = [math.prod(s) for s in self.shapes]
        self.P = sum(self.sizes)
        if exact:  # what value_and_grad needs, once: C, N lam_H and every parameter's weight decay
            self._C = _projection_target(self.n, bias)
            self._ridge = N * lam_H
            self._decay = torch.cat([torch.as_tensor(v, dtype=dtype, device=device).reshape(-1, 1).expand(-1, size)
                                     for v, size in zip(self.lam_W, self.sizes)], dim=1).squeeze(0)  # fmt: skip
            self._picked = _LastTwo(self._pick_data)  # C, ridge, lam_H and decay of the rows value_and_grad saw last

    @staticmethod
    def _pick(v, rows):
        return v[rows] if rows is not None and torch.is_tensor(v) and v.ndim > 0 else v

    def data(self, rows):
        """Counts, strengths and labels (None with exact features) of the problems ``rows`` (all if None)."""
        pick = self._pick
        n = self.n if self.n.ndim == 1 else pick(self.n, rows)
        Y = self.Y if self.Y is None or self.Y.ndim == 2 else pick(self.Y, rows)
        return n, [pick(v, rows) for v in self.lam_W], pick(self.lam_H, rows), Y

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray, float, torch.Tensor | None]:
        """Counts (K,), layer strengths (L,), lam_H and labels Y (K, N; None with exact features) of problem ``i``."""
        one = lambda v: float(v[i]) if torch.is_tensor(v) and v.ndim else float(v)  # noqa: E731
        Y = self.Y if self.Y is None or self.Y.ndim == 2 else self.Y[i]
        return self.counts.reshape(-1, self.K)[i if self.counts.ndim == 2 else 0], np.array([one(v) for v in self.lam_W]), one(self.lam_H), Y

    def split(self, theta: torch.Tensor) -> list[torch.Tensor]:
        B = theta.shape[0]
        return [p.reshape(B, *s) for p, s in zip(torch.split(theta, self.sizes, dim=1), self.shapes)]

    def point(self, theta: torch.Tensor, rows: torch.Tensor | None = None):
        """Layers, class means ``M`` (b, r, K), bias (b, K) or None, and ``H`` (b, d, N) (None with exact features)."""
        parts = self.split(theta)
        n, _, lam_H, Y = self.data(rows)
        layers = parts[: self.L]
        if self.exact:
            M, b = _exact_features(layers, n, lam_H, self.bias)
            return layers, M, (None if b is None else b.expand(theta.shape[0], self.K)), None
        H, b = parts[self.L], (parts[self.L + 1] if self.bias else None)
        return layers, (H @ Y.transpose(-1, -2)) / n[..., None, :], b, H

    def pack(self, layers: Sequence[torch.Tensor], H: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
        """Inverse of :meth:`split` (exact features keep the layers only)."""
        pieces = list(layers) + ([] if self.exact else [H] + ([b] if self.bias else []))
        return torch.cat([p.reshape(p.shape[0], -1) for p in pieces], dim=1)

    def __call__(self, theta: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(P) of the problems ``rows`` (b,) at ``theta`` (b, P): shape (b,)."""
        n, lam_W, lam_H, Y = self.data(rows)
        parts = self.split(theta)
        if self.exact:
            return _projected_objective(parts, n, lam_W, lam_H, self.bias)
        b = parts[self.L + 1] if self.bias else None
        return ufm_objective(parts[: self.L], parts[self.L], b, Y, lam_W, lam_H, self.lam_b, self.loss)

    def value_and_grad(self, theta: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(P) of the problems ``rows`` at ``theta`` and its gradient (b, P): by hand with exact features
        (:func:`nclab.objective._projected_fit`, plus the weight decay on the packed parameters), by
        autograd otherwise."""
        if not self.exact:
            with torch.enable_grad():
                t = theta.detach().requires_grad_(True)
                f = self(t, rows)
                return f.detach(), torch.autograd.grad(f.sum(), t)[0]
        C, ridge, lam_H, decay = self._picked(rows)
        fit, grads = _projected_fit(self.split(theta), C, ridge, lam_H)
        decayed = theta * decay
        f = fit + 0.5 * (decayed * theta).sum(1)
        return f, torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1) + decayed

    def _pick_data(self, rows: torch.Tensor | None) -> tuple:
        """C, N lam_H and lam_H (as (b, 1, 1) where they differ between problems) and the decay of the problems ``rows``."""
        pick = self._pick
        as_matrix = lambda v: v[:, None, None] if torch.is_tensor(v) and v.ndim else v  # noqa: E731
        C = self._C if self._C.ndim == 2 else pick(self._C, rows)
        decay = self._decay if self._decay.ndim == 1 else pick(self._decay, rows)
        return C, as_matrix(pick(self._ridge, rows)), as_matrix(pick(self.lam_H, rows)), decay

    def to_numpy(self, theta_row: torch.Tensor, row: int | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Layers, class means, ``b`` and ``H`` (None with exact features) of one problem, as float64 numpy arrays."""
        rows = None if row is None else torch.tensor([row], device=theta_row.device)
        layers, M, b, H = self.point(theta_row.reshape(1, -1), rows)
        arr = lambda t: None if t is None else t[0].detach().cpu().double().numpy()  # noqa: E731
        return [arr(W) for W in layers], arr(M), arr(b), arr(H)

    def init(self, B: int, std: float, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """B Gaussian starting points (B, P) in float64 on the CPU, and their embeddings.

        The layers are drawn at full width, as ``d x d`` and ``K x d`` Gaussian matrices. With
        exact features and ``r = min(d, K) < d`` each start is then reduced to r-dimensional
        subspaces: ``Q_{l-1}`` (d x r) spans the rows of ``W_L ... W_l``, the part of the input of
        layer l that reaches the output, and the reduced layers are ``Q_l^T W_l Q_{l-1}``
        (``W_L Q_{L-1}``). The product ``W`` is unchanged; only the parts of the layers that do
        not reach it are dropped. :func:`_embed` maps a reduced point back.

        Returns
        -------
        theta : torch.Tensor, shape (B, P)
        Q : list of L tensors of shape (B, d, r) (``Q_0 .. Q_{L-1}``), or None when ``r = d``
        """
        d, K, L = self.d, self.K, self.L
        full = [(d, d)] * (L - 1) + [(K, d)]
        size = sum(math.prod(s) for s in full) + (0 if self.exact else self.P - sum(self.sizes[:L]))
        theta = std * torch.randn(B, size, generator=generator, dtype=torch.float64)
        if not self.exact:
            if self.bias:
                theta[:, -K:] = 0.0
            return theta, None
        return self.reduce([p.reshape(B, *s) for p, s in zip(torch.split(theta, [math.prod(s) for s in full], dim=1), full)])

    def reduce(self, layers: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Full-width layers (B, d, d) ... (B, K, d) packed at width r (exact features; see :meth:`init`), and their bases Q."""
        B, L = layers[0].shape[0], self.L
        if self.r == self.d:
            return torch.cat([A.reshape(B, -1) for A in layers], dim=1), None
        Q: list[torch.Tensor] = [None] * L  # type: ignore[list-item]
        reach = layers[-1]  # W_L ... W_l, shape (B, K, d)
        for l in range(L - 1, -1, -1):
            Q[l] = torch.linalg.qr(reach.transpose(1, 2)).Q  # (B, d, K): its row space
            if l > 0:
                reach = reach @ layers[l - 1]
        reduced = [Q[l + 1].transpose(1, 2) @ layers[l] @ Q[l] for l in range(L - 1)] + [layers[-1] @ Q[-1]]
        return torch.cat([A.reshape(B, -1) for A in reduced], dim=1), Q


def _embed(layers: list[np.ndarray], M: np.ndarray, Q: list[torch.Tensor] | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Full-width layers ``Q_l A_l Q_{l-1}^T`` (``A_L Q_{L-1}^T``) and means ``Q_0 M`` of a reduced point (Q: one row's bases)."""
    if Q is None:
        return layers, M
    q = [t.detach().cpu().double().numpy() for t in Q]
    full = [q[l + 1] @ A @ q[l].T for l, A in enumerate(layers[:-1])] + [layers[-1] @ q[-1].T]
    return full, q[0] @ M


# ----------------------------------------------------------------------------- settings shared by train and train_many


def _packed_start(init: object, problem: _Problem) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """``init`` (an object with ``layers``, ``H``, ``b``) as a start ``theta`` (1, P) and its bases (:meth:`_Problem.init`), shapes checked.

    With exact features only the layers are used: reduced to width r (:meth:`_Problem.reduce`),
    which keeps their product and drops only the parts that do not reach it. A
    :class:`TrainResult` with exact features is checked by its class means, so that its ``H``
    (d, N) is not built.
    """
    try:
        layers, b = list(init.layers), init.b
        lazy = isinstance(init, TrainResult) and init.features is None
        H = init.means if lazy else init.H
    except (AttributeError, TypeError):
        raise TypeError(f"init must have attributes layers, H and b (a TrainResult or a UFMPoint); got {type(init).__name__}") from None
    K, d, L, N = problem.K, problem.d, problem.L, int(problem.counts.sum())
    expected = [(d, d)] * (L - 1) + [(K, d)]
    got = [np.shape(W) for W in layers]
    if got != expected:
        raise ValueError(f"init.layers must have the shapes {expected} (L = {L}, d = {d}, K = {K}); got {got}")
    H_shape = (init.d, init.N) if lazy else np.shape(H)
    if H_shape != (d, N):
        raise ValueError(f"init.H must have the shape {(d, N)} (d, N); got {H_shape}")
    if b is None:
        b = np.zeros(K)
    if np.shape(b) != (K,):
        raise ValueError(f"init.b must have the shape {(K,)} or be None; got {np.shape(b)}")
    pieces = [np.asarray(a, dtype=float) for a in (*layers, H, b)]
    if not all(np.all(np.isfinite(a)) for a in pieces):
        raise ValueError("init must contain finite numbers only")
    t = [torch.as_tensor(a, dtype=torch.float64)[None] for a in pieces]
    if problem.exact:
        return problem.reduce(t[:L])
    return problem.pack(t[:L], t[L], t[L + 1] if problem.bias else None), None


_DEFAULT_LR = {"gd": 0.1, "adam": 1e-2}
_DEFAULT_STEPS = {"lbfgs": 5000, "gd": 2000, "adam": 2000}
#: Restarts whose objectives agree with the best one to this relative tolerance stop early.
_AGREE = 1e-9


def _resolve_features(features: str | None, optimizer: str, loss: str, lam_b: float) -> str:
    """``"exact"`` by default for L-BFGS on (P) with an unregularised bias, else ``"free"``."""
    closed = loss == "mse" and lam_b == 0
    if features is None:
        return "exact" if optimizer == "lbfgs" and closed else "free"
    features = choice(features, "features", ("exact", "free"))
    if features == "exact" and not closed:
        raise ValueError("features='exact' needs loss='mse' and lam_b=0 (the features have a closed form only there); use features='free'")
    return features


def _resolve_search(restarts: int | None, prune: bool | None, L: int, optimizer: str, loss: str) -> tuple[int, bool]:
    """Random starts and polishing pass: by default 2 starts and the polish for L-BFGS at ``L >= 2``.

    Depth makes the origin of every mode a local minimum; the polish (MSE loss only) repairs
    lost and spurious modes, and a second start guards against the rest.
    """
    deep = L >= 2 and optimizer == "lbfgs"
    restarts = whole((2 if deep else 1) if restarts is None else restarts, "restarts", 1)
    prune = (deep and loss == "mse") if prune is None else boolean(prune, "prune")
    return restarts, prune


def _resolve(*, L: int, d: int, bias: bool, steps: int | None, init_std: float, restarts: int | None, prune: bool | None,
             features: str | None, seed: int, progress: bool, device, dtype, optimizer: str = "lbfgs", loss: str = "mse",
             lam_b: float = 0.0) -> dict:  # fmt: skip
    """Validate and resolve the settings :func:`train` and :func:`train_many` share (one path for both)."""
    lam_b = nonneg(lam_b, "lam_b")
    loss = choice(loss, "loss", ("mse", "ce"))
    optimizer = choice(optimizer, "optimizer", ("lbfgs", "gd", "adam"))
    restarts, prune = _resolve_search(restarts, prune, L, optimizer, loss)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
    return dict(
        d=whole(d, "d", 1), bias=boolean(bias, "bias"), lam_b=lam_b, loss=loss, optimizer=optimizer,
        steps=whole(_DEFAULT_STEPS[optimizer] if steps is None else steps, "steps", 1),
        init_std=positive(init_std, "init_std"), restarts=restarts, prune=prune,
        features=_resolve_features(features, optimizer, loss, lam_b), seed=whole(seed, "seed", 0),
        progress=boolean(progress, "progress"), device=resolve_device(device), dtype=dtype,
    )  # fmt: skip


def _batch_strengths(lam_W, lam_H, L: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-setting strengths of :func:`train_many`: lam_W (B, L) and lam_H (B,), each setting checked as :func:`train` checks it."""
    lw, lh = np.asarray(lam_W, dtype=object), np.asarray(lam_H, dtype=object)
    if lw.ndim > 2 or lh.ndim > 1:
        raise ValueError(f"lam_W must be a number, (B,) or (B, L) and lam_H a number or (B,); got shapes {lw.shape} and {lh.shape}")
    sizes = {rows, lw.shape[0] if lw.ndim else 1, lh.size} - {1}
    if len(sizes) > 1:
        raise ValueError(f"n (rows), lam_W and lam_H must be single values or share one batch size B; got sizes {sorted(sizes)}")
    B = sizes.pop() if sizes else 1

    def pick(a: np.ndarray, i: int):
        v = a if a.ndim == 0 else a[i if a.shape[0] > 1 else 0]
        return v.tolist() if isinstance(v, np.ndarray) else v

    out_W, out_H = np.empty((B, L)), np.empty(B)
    for i in range(B):
        try:
            out_W[i], out_H[i], _ = check_lambdas(pick(lw, i), pick(lh, i), L)
        except ValueError as exc:
            raise type(exc)(f"setting {i}: {exc}") from None
    return out_W, out_H


# ----------------------------------------------------------------------------- L-BFGS with restarts and the polish


@dataclass
class _Search:
    """Outcome of :func:`_minimise` for B problems."""

    theta: torch.Tensor  # (B, P), the best start of each problem, polished
    f: torch.Tensor  # (B,)
    iterations: torch.Tensor  # (B,) L-BFGS iterations of the kept start, plus the polish's
    converged: torch.Tensor  # (B,) bool: the kept start stopped by its convergence test (not by `steps`)
    start: torch.Tensor  # (B,) row of theta0 each kept point comes from


def _minimise(problem: "_Problem", theta0: torch.Tensor, B: int, *, steps: int, prune: bool, block: int = 10,
              on_block: Callable[[BatchedLBFGS], None] | None = None) -> _Search:  # fmt: skip
    """Batched L-BFGS from R starts of B problems (row ``r * B + i`` is start r of problem i), then the polish.

    A start whose objective agrees with the best start of its problem to :data:`_AGREE` (and
    is not that start) stops: it is in the same basin, and running it on costs time for
    nothing. ``on_block(solver)`` is called every ``block`` iterations (history, progress bar).
    """
    R = len(theta0) // B
    problems = _LastTwo(lambda rows: rows % B)  # row r B + i of the solver is start r of problem i

    def fun(t: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return problem.value_and_grad(t, problems(rows))

    solver = BatchedLBFGS(fun, theta0, jac=True)
    while solver.n_iter < steps and not bool(solver.done.all()):
        for _ in range(min(block, steps - solver.n_iter)):
            solver.step()
            if bool(solver.done.all()):
                break
        if on_block is not None:
            on_block(solver)
        if R > 1:
            fr = solver.f.reshape(R, B)
            best = fr.argmin(0) * B + torch.arange(B, device=fr.device)
            agree = (fr - fr.min(0).values <= _AGREE * fr.min(0).values.abs()).flatten() & ~solver.done
            agree[best] = False
            if bool(agree.any()):
                solver.stop(agree.nonzero().flatten())
    finite = torch.nan_to_num(solver.f, nan=math.inf)
    start = finite.reshape(R, B).argmin(0) * B + torch.arange(B, device=theta0.device)
    theta, f, taken = solver.theta[start], solver.f[start], solver.iterations[start]
    converged = solver.done[start] & (solver.iterations[start] < steps)
    del solver  # its curvature memory, before the polish allocates its own
    if prune:
        theta, f, extra = polish(theta, f, problem, steps)
        taken = taken + extra
    return _Search(theta, f, taken, converged, start)


# ----------------------------------------------------------------------------- training


def _warn(message: str) -> None:
    warnings.warn(message, TrainingWarning, stacklevel=3)


def _check_first_order_run(f0: float, history: list[float], optimizer: str, lr: float, steps: int, log_every: int) -> None:
    """Warn about a gd/Adam run whose objective rose by orders of magnitude, or fell steeply to its last step."""
    peak, final = max(history), history[-1]
    if peak > 100 * f0:
        _warn(f"the objective rose from {f0:.3g} to {peak:.3g} on the way and ended at {final:.3g} ({optimizer}, lr={lr:g}): "
              f"the step is too large; lower lr (try lr={lr / 10:g})")  # fmt: skip
        return
    tail = max(1, len(history) // 10)  # the last tenth of the run
    earlier = history[-1 - tail]
    if len(history) > 2 and earlier - final > 1e-2 * abs(final):
        _warn(f"the objective still fell by {100 * (earlier - final) / abs(final):.2g}% over the last {tail * log_every} steps "
              f"(of steps={steps}, {optimizer}): the run ended far from stationarity; raise steps (or lr)")  # fmt: skip


def train(
    n: Sequence[float] | np.ndarray,
    *,
    d: int,
    lam_W: float | Sequence[float],
    lam_H: float,
    L: int = 1,
    bias: bool = True,
    lam_b: float = 0.0,
    loss: str = "mse",
    optimizer: str = "lbfgs",
    features: str | None = None,
    lr: float | None = None,
    momentum: float = 0.9,
    steps: int | None = None,
    init_std: float = 0.5,
    restarts: int | None = None,
    prune: bool | None = None,
    seed: int = 0,
    init: object | None = None,
    log_every: int | None = None,
    metrics: Sequence[str] = ("nc1",),
    progress: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> TrainResult:
    """Train the L-layer UFM (P) on counts ``n``.

    Parameters
    ----------
    n : array_like, shape (K,)
        Class counts; samples are ordered by class.
    d : int
        Feature width.
    lam_W : float or sequence of L floats
        Weight decay, shared or per layer (> 0).
    lam_H : float
        Feature decay (> 0).
    L : int, default 1
        Number of linear layers.
    bias : bool, default True
        Include a bias ``b``; it is unregularised unless ``lam_b > 0``.
    lam_b : float, default 0
        Decay of the bias, for comparison with the regularised-bias variant.
    loss : {"mse", "ce"}
        Squared loss of (P) or cross-entropy.
    optimizer : {"lbfgs", "gd", "adam"}
        Full-batch L-BFGS (default), gradient descent with ``momentum``, or Adam.
    features : {"exact", "free"}, optional
        ``"free"``: the features ``H`` and the bias are parameters of the optimiser, like the
        layers (watch them collapse). ``"exact"``: they are set, at every evaluation, to their
        exact minimiser given the layers (:func:`nclab.objective.exact_features`, a ridge
        regression whose solution is collapsed), and the optimiser moves the layers only
        (variable projection), in r-dimensional subspaces, ``r = min(d, K)`` (see the module
        notes). Both minimise the same (P); ``"exact"`` has far fewer unknowns, costs nothing
        that grows with N, and is the default for L-BFGS with the MSE loss and an unregularised
        bias, ``"free"`` otherwise (the only choice for ``loss="ce"`` or ``lam_b > 0``).
    lr : float, optional
        Learning rate of ``"gd"`` (default 0.1) or ``"adam"`` (default 0.01); unused by L-BFGS.
    momentum : float, default 0.9
        Momentum of ``"gd"`` (0 is plain gradient descent).
    steps : int, optional
        Maximum iterations (default 5000 for L-BFGS, which stops at convergence; 2000 otherwise).
    init_std : float, default 0.5
        Standard deviation of the Gaussian entries of the initial layers and features.
    restarts : int, optional
        Random starts trained side by side, the best kept (default 1 for ``L = 1``, 2 for deeper
        models with L-BFGS, 1 otherwise). A start whose objective agrees with a better one to
        1e-9 stops early.
    prune : bool, optional
        After L-BFGS, try removing the weakest surviving mode, then planting the mode the
        residual misses, each kept only if (P) decreases (default: on for ``L >= 2`` with
        L-BFGS and MSE).
    seed : int, default 0
        Seed of the initialisation; the same seed gives the same result on the same device.
    init : optional
        A starting point instead of a random one (a *warm start*, e.g. to follow a solution as
        the strengths change): any object with ``layers`` (``[W_1 (d, d), ..., W_L (K, d)]``),
        ``H`` (d, N) and ``b`` (K,) or None, such as a :class:`TrainResult` or the point of
        :meth:`nclab.theory.GlobalMinimizer.construct`. It is one start (``restarts`` must be 1
        or None) and ``init_std`` is unused; with exact features only its layers are used.
    log_every : int, optional
        Iterations between history entries (default 10 for L-BFGS, ``steps // 200`` otherwise).
    metrics : sequence of str, default ("nc1",)
        Metrics to log besides the objective; names from :data:`HISTORY_METRICS`. With exact
        features they are computed from class-level statistics (NC1 is 0: the features are
        collapsed).
    progress : bool, default True
        Show a ``tqdm.auto`` progress bar (a widget in notebooks, text in terminals).
    device : {None, "cpu", "cuda"} or torch.device
        ``None`` uses CUDA when available, else the CPU.
    dtype : torch.dtype, default torch.float64
        Float64 on every device by default (the 1e-8 agreement with theory needs it);
        ``torch.float32`` is faster on consumer GPUs and agrees to about 1e-5.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, naming the parameter and the allowed values; ``ValueError``
        also when a metric compares with the closed form and ``d`` is smaller than the number
        of modes that survive there.
    TrainingDivergedError
        If the objective becomes non-finite or explodes (lower ``lr``).

    Warns
    -----
    TrainingWarning
        If L-BFGS stops at ``steps`` before converging (raise ``steps``), or a gd/Adam run
        ends still falling steeply (raise ``steps``) or rose by orders of magnitude on the way
        (lower ``lr``).
    """
    counts = check_counts(n)
    lams, lam_H, L = check_lambdas(lam_W, lam_H, L)
    if init is not None:
        if restarts not in (None, 1):
            raise ValueError(f"restarts must be 1 (or None) with init, which is a single start; got {restarts!r}")
        restarts = 1
    s = _resolve(L=L, d=d, bias=bias, steps=steps, init_std=init_std, restarts=restarts, prune=prune, features=features,
                 seed=seed, progress=progress, device=device, dtype=dtype, optimizer=optimizer, loss=loss, lam_b=lam_b)  # fmt: skip
    optimizer, steps, dev = s["optimizer"], s["steps"], s["device"]
    lr = _DEFAULT_LR.get(optimizer, 1.0) if lr is None else positive(lr, "lr")
    momentum = nonneg(momentum, "momentum")
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1); got {momentum}")
    log_every = whole((10 if optimizer == "lbfgs" else max(1, steps // 200)) if log_every is None else log_every, "log_every", 1)
    unknown = [m for m in metrics if m not in HISTORY_METRICS]
    if unknown:
        raise ValueError(f"metrics must be names from {sorted(HISTORY_METRICS)}; unknown: {unknown}")
    closed_form = [m for m in metrics if m in _CLOSED_FORM_METRICS]
    if closed_form and s["loss"] != "mse":
        raise ValueError("metrics comparing with the closed form need loss='mse'")
    if not s["bias"] and "bias_error" in metrics:
        raise ValueError("metrics: 'bias_error' needs a model with a bias (bias=True)")

    cache: dict[str, GlobalMinimizer] = {}

    def minimizer() -> GlobalMinimizer:
        if "g" not in cache:
            cache["g"] = global_minimizer(counts, lams, lam_H, L=L, bias=s["bias"])
        return cache["g"]

    if closed_form:
        _check_width(s["d"], minimizer())

    problem = _Problem(counts, [float(v) for v in lams], lam_H, d=s["d"], L=L, bias=s["bias"], lam_b=s["lam_b"], loss=s["loss"],
                       exact=s["features"] == "exact", dtype=s["dtype"], device=dev)  # fmt: skip
    history: dict[str, list[float]] = {"step": [], "seconds": [], "objective": [], **{m: [] for m in metrics}}

    def log(step: int, theta: torch.Tensor, f: torch.Tensor) -> None:
        best = int(torch.argmin(torch.nan_to_num(f, nan=math.inf)))
        value = float(f[best])
        history["step"].append(step)
        history["seconds"].append(time.perf_counter() - start)
        history["objective"].append(value)
        if metrics:
            st = _State(problem, theta[best], value, minimizer)
            for m in metrics:
                history[m].append(HISTORY_METRICS[m](st))

    if init is None:
        theta0, Q = problem.init(s["restarts"], s["init_std"], torch.Generator().manual_seed(s["seed"]))
    else:
        theta0, Q = _packed_start(init, problem)
    theta0 = theta0.to(device=dev, dtype=s["dtype"])
    with torch.no_grad():
        f0 = problem(theta0)
    if not bool(torch.isfinite(f0).all()):
        raise TrainingDivergedError("the objective is not finite at the initial point; lower init_std")

    desc = f"UFM L={L} {'bias' if s['bias'] else 'no bias'} ({optimizer})"
    bar = tqdm(total=steps, desc=desc, disable=not s["progress"], leave=True)
    start = time.perf_counter()
    log(0, theta0, f0)

    def diverged(step: int, f: torch.Tensor) -> None:
        bad = ~torch.isfinite(f) | (f > 1e6 * f0.clamp_min(1.0))
        if bool(bad.any()):
            bar.close()
            value = float(f[bad][0])
            hint = f"lower the learning rate (lr={lr:g}; try lr={lr / 10:g})" if optimizer != "lbfgs" else "lower init_std"
            raise TrainingDivergedError(f"training diverged at step {step}: objective = {value:g} ({optimizer}); {hint}")

    if optimizer == "lbfgs":

        def on_block(solver: BatchedLBFGS) -> None:
            diverged(solver.n_iter, solver.f)
            log(solver.n_iter, solver.theta, solver.f)
            bar.update(solver.n_iter - bar.n)
            bar.set_postfix(objective=f"{float(solver.f.min()):.8g}", refresh=False)

        found = _minimise(problem, theta0, 1, steps=steps, prune=s["prune"], block=log_every, on_block=on_block)
        theta, f_best, taken, row = found.theta, float(found.f[0]), int(found.iterations[0]), int(found.start[0])
        if taken > history["step"][-1]:
            log(taken, theta, found.f)
        if not bool(found.converged[0]):
            _warn(f"L-BFGS stopped at steps={steps} before converging; raise steps")
    else:
        theta = theta0.clone().requires_grad_(True)
        opt = torch.optim.SGD([theta], lr=lr, momentum=momentum) if optimizer == "gd" else torch.optim.Adam([theta], lr=lr)
        for step in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            problem(theta).sum().backward()
            opt.step()
            if step % log_every == 0 or step == steps:
                with torch.no_grad():
                    f = problem(theta)
                diverged(step, f)
                log(step, theta.detach(), f)
                bar.update(step - bar.n)
                bar.set_postfix(objective=f"{float(f.min()):.8g}", refresh=False)
        with torch.no_grad():
            f = problem(theta)
        diverged(steps, f)
        row = int(torch.argmin(f))
        theta, f_best, taken = theta.detach()[row : row + 1], float(f[row]), steps
        _check_first_order_run(float(f0.min()), history["objective"], optimizer, lr, steps, log_every)
    bar.total = max(bar.n, 1)
    bar.refresh()
    bar.close()
    seconds = time.perf_counter() - start

    settings = dict(
        d=s["d"], lam_W=lams.tolist(), lam_H=lam_H, L=L, bias=s["bias"], lam_b=s["lam_b"], loss=s["loss"], optimizer=optimizer,
        lr=lr if optimizer != "lbfgs" else None, momentum=momentum if optimizer == "gd" else None, steps=steps,
        init_std=s["init_std"], restarts=s["restarts"], prune=s["prune"], features=s["features"], seed=s["seed"],
        warm_start=init is not None, device=str(dev), dtype=str(s["dtype"]).replace("torch.", ""),
    )  # fmt: skip
    return _result(problem, theta[0], 0, Q, row, f_best, history, settings, taken, seconds)


def _result(problem: _Problem, theta_row: torch.Tensor, i: int, Q: list[torch.Tensor] | None, row: int, objective: float,
            history: dict, settings: dict, steps: int, seconds: float, point: tuple | None = None) -> TrainResult:  # fmt: skip
    """The :class:`TrainResult` of problem ``i`` at ``theta_row`` (start ``row`` of theta0, whose bases ``Q`` embed it);
    ``point``: its :meth:`_Problem.to_numpy`, where the caller computed it (for many problems at once)."""
    layers, M, b, H = problem.to_numpy(theta_row, i) if point is None else point
    layers, M = _embed(layers, M, None if Q is None else [q[row] for q in Q])
    return TrainResult(
        layers=layers, means=M, b=b if b is not None else np.zeros(problem.K), n=problem.row(i)[0].copy(), objective=objective,
        history={k: np.asarray(v) for k, v in history.items()}, settings=settings, steps=steps, seconds=seconds, features=H,
    )  # fmt: skip


def train_many(
    n: Sequence[Sequence[float]] | np.ndarray,
    *,
    d: int,
    lam_W: float | Sequence[float],
    lam_H: float | Sequence[float],
    L: int = 1,
    bias: bool = True,
    steps: int | None = None,
    init_std: float = 0.5,
    restarts: int | None = None,
    prune: bool | None = None,
    features: str = "exact",
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> list[TrainResult]:
    """Train B settings of the UFM at once: one batched L-BFGS over all of them.

    Every problem has its own counts and strengths but the same K, N, d and L, so the
    parameters of all B problems form one (B, P) tensor and each iteration is a few batched
    tensor operations (:class:`nclab.lbfgs.BatchedLBFGS`); problems that converge leave the
    batch. For ``L >= 2`` the polishing pass of :func:`train` then runs on all settings at once.
    This is the tool for sweeps: phase diagrams, grids over imbalance and strength. Arguments
    are checked by the same code as :func:`train`'s, setting by setting.

    Parameters
    ----------
    n : array_like, shape (B, K) or (K,)
        Counts per setting, all with the same total N (a single profile is shared).
    d : int
        Feature width.
    lam_W : float or array_like of shape (B,) or (B, L)
        Weight decay per setting: one value for every layer of a setting, or one per layer.
    lam_H : float or array_like of shape (B,)
        Feature decay per setting.
    L, bias, steps, init_std, restarts, prune, features, seed, progress, device, dtype
        As in :func:`train` (MSE loss, unregularised bias, L-BFGS); the ``restarts`` of all
        settings run in the same batch.

    Returns
    -------
    list of TrainResult
        One per setting, in order; ``history`` holds the final objective of each, ``steps``
        its L-BFGS iterations and ``seconds`` the wall time of the call divided by B.

    Warns
    -----
    TrainingWarning
        If L-BFGS stops at ``steps`` before some setting converged (raise ``steps``).

    Examples
    --------
    >>> import numpy as np
    >>> from nclab.ufm import train_many
    >>> runs = train_many([[30, 10], [20, 20]], d=4, lam_W=[1e-3, 1e-2], lam_H=1e-3, progress=False)
    >>> bool(max(r.gap for r in runs) < 1e-8)
    True
    """
    L = whole(L, "L (number of linear layers)", 1, MAX_DEPTH)
    s = _resolve(L=L, d=d, bias=bias, steps=steps, init_std=init_std, restarts=restarts, prune=prune, features=features,
                 seed=seed, progress=progress, device=device, dtype=dtype)  # fmt: skip
    counts = np.atleast_2d(np.asarray(n, dtype=float))
    if counts.ndim != 2:
        raise ValueError(f"n must have shape (B, K) or (K,); got {np.shape(n)}")
    lam_W_b, lam_H_b = _batch_strengths(lam_W, lam_H, L, len(counts))
    B = len(lam_W_b)
    counts = np.stack([check_counts(row, name=f"n[{i}]") for i, row in enumerate(np.broadcast_to(counts, (B, counts.shape[1])))])
    if np.any(counts.sum(1) != counts[0].sum()):
        raise ValueError(f"every row of n must have the same total N; got totals {sorted(set(counts.sum(1).astype(int).tolist()))}")
    dev, dt, R = s["device"], s["dtype"], s["restarts"]
    lw = [torch.as_tensor(lam_W_b[:, l].copy(), dtype=dt, device=dev) for l in range(L)]
    problem = _Problem(counts, lw, torch.as_tensor(lam_H_b, dtype=dt, device=dev), d=s["d"], L=L, bias=s["bias"],
                       exact=s["features"] == "exact", dtype=dt, device=dev)  # fmt: skip

    theta0, Q = problem.init(R * B, s["init_std"], torch.Generator().manual_seed(s["seed"]))
    start = time.perf_counter()
    bar = tqdm(total=R * B, desc=f"{B} UFMs L={L}", disable=not s["progress"], leave=True)
    found = _minimise(problem, theta0.to(device=dev, dtype=dt), B, steps=s["steps"], prune=s["prune"],
                      on_block=lambda solver: bar.update(int(solver.done.sum()) - bar.n))  # fmt: skip
    bar.update(R * B - bar.n)
    bar.close()
    if not bool(torch.isfinite(found.f).all()):
        raise TrainingDivergedError("a batched problem has a non-finite objective; lower init_std")
    if not bool(found.converged.all()):
        _warn(f"L-BFGS stopped at steps={s['steps']} before {int((~found.converged).sum())} of {B} settings converged; raise steps")
    seconds = time.perf_counter() - start
    host = lambda t: None if t is None else t.detach().cpu().double().numpy()  # noqa: E731
    layers, M, b, H = problem.point(found.theta, torch.arange(B, device=dev))  # of every setting at once
    layers, M, b, H = [host(W) for W in layers], host(M), host(b), host(H)
    results = []
    for i in range(B):
        point = ([W[i].copy() for W in layers], M[i].copy(), None if b is None else b[i].copy(), None if H is None else H[i].copy())
        settings = dict(d=s["d"], lam_W=lam_W_b[i].tolist(), lam_H=float(lam_H_b[i]), L=L, bias=s["bias"], lam_b=0.0,
                        loss="mse", optimizer="lbfgs", features=s["features"], steps=s["steps"], init_std=s["init_std"],
                        restarts=R, prune=s["prune"], seed=s["seed"], device=str(dev), dtype=str(dt).replace("torch.", ""),
                        batch=B)  # fmt: skip
        f = float(found.f[i])
        results.append(_result(problem, found.theta[i], i, Q, int(found.start[i]), f, {"objective": np.array([f])}, settings,
                               int(found.iterations[i]), seconds / B, point))  # fmt: skip
    return results
