"""Training the L-layer unconstrained feature model (P) in PyTorch, on CPU or GPU.

The model has free features ``H`` (d x N), layers ``W_1..W_L`` and an optional bias; its
objective is :func:`nclab.objective.ufm_objective`. :func:`train` minimises it with

* ``optimizer="lbfgs"`` (default): full-batch L-BFGS in float64 (:mod:`nclab.lbfgs`), several
  random starts run as one batch, then a *pruning* pass. By default the features and the bias
  are *exact*: for fixed layers (P) is a ridge regression in ``(H, b)``, solved in closed form
  at every evaluation (:func:`nclab.objective.exact_features`; variable projection), so
  L-BFGS moves only the layers: ``d K + (L-1) d^2`` unknowns instead of ``d N`` more.
  ``features="free"`` keeps ``H`` and ``b`` as optimiser parameters. For ``L >= 2`` the origin of every
  mode is a local minimum and, just below the threshold, so is a spurious nonzero mode
  (``nclab.theory.nonzero_branch``). A polishing pass removes the weakest surviving mode, then
  plants the mode the residual misses, keeping each move only if (P) went down. With the
  defaults, training reaches the closed-form optimum on the book's problems;
* ``optimizer="gd"`` (full-batch gradient descent with momentum) or ``"adam"``, for chapters
  that show training dynamics.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics as nc
from ._validate import choice, nonneg, positive, whole
from .data import check_counts, labels_from_counts, one_hot
from .lbfgs import BatchedLBFGS
from .objective import collapsed_objective, exact_features, product, ufm_objective
from .theory import GlobalMinimizer, check_lambdas, effective_c, global_minimizer

__all__ = ["TrainingDivergedError", "TrainResult", "resolve_device", "train", "train_many", "HISTORY_METRICS"]


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite or exploding objective."""


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


@dataclass(repr=False)
class TrainResult:
    """A trained UFM, as numpy arrays on the CPU.

    Attributes
    ----------
    layers : list of numpy.ndarray
        ``[W_1 (d, d), ..., W_L (K, d)]``.
    H : numpy.ndarray, shape (d, N)
        Trained features.
    b : numpy.ndarray, shape (K,)
        Trained bias (zeros for a model without bias).
    labels : numpy.ndarray, shape (N,)
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
    """

    layers: list
    H: np.ndarray
    b: np.ndarray
    labels: np.ndarray
    n: np.ndarray
    objective: float
    history: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0

    @property
    def W(self) -> np.ndarray:
        """Product classifier ``W_L ... W_1``, shape (K, d)."""
        return product(self.layers)

    @property
    def means(self) -> np.ndarray:
        """Class means ``M`` of the trained features, shape (d, K)."""
        return nc.class_means(self.H, self.labels, self.K)

    @property
    def K(self) -> int:
        return int(self.n.size)

    @property
    def N(self) -> int:
        return int(self.n.sum())

    @property
    def d(self) -> int:
        return int(self.H.shape[0])

    @property
    def L(self) -> int:
        return len(self.layers)

    @property
    def bias(self) -> bool:
        return bool(self.settings.get("bias", True))

    def theory(self) -> GlobalMinimizer:
        """The closed-form optimum for the same counts and strengths (MSE with free bias only)."""
        s = self.settings
        if s["loss"] != "mse" or s["lam_b"] != 0:
            raise ValueError("the closed form covers loss='mse' with an unregularised bias (lam_b=0) only")
        return global_minimizer(self.n, s["lam_W"], s["lam_H"], L=self.L, bias=self.bias)

    @property
    def gap(self) -> float:
        """Relative gap ``(f - f*) / f*`` to the closed-form optimum."""
        f_star = self.theory().objective
        return (self.objective - f_star) / f_star

    def distance_to_theory(self) -> dict[str, float]:
        """Relative errors of ``W W^T``, ``M^T M``, ``b`` and the singular values of ``W M D``."""
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


def _nc1(st: "_State") -> float:
    return nc.nc1(st.H, st.labels, st.K)


def _nc1_weighted(st: "_State") -> float:
    return nc.nc1(st.H, st.labels, st.K, weighted=True)


def _nc3(st: "_State") -> float:
    return nc.self_duality(st.W, nc.centered_means(st.M))


def _nc4(st: "_State") -> float:
    return nc.ncc_agreement(st.H, st.W, st.b, st.M)


def _gram_error(which: str) -> Callable[["_State"], float]:
    def metric(st: "_State") -> float:
        g = st.minimizer()
        G = st.W @ st.W.T if which == "W" else st.M.T @ st.M
        ref = g.W_gram if which == "W" else g.M_gram
        return nc._relative(G, ref)

    return metric


def _gap(st: "_State") -> float:
    f_star = st.minimizer().objective
    return (st.objective - f_star) / f_star


#: Metrics :func:`train` can log in ``history`` (pass their names in ``metrics=``).
HISTORY_METRICS: dict[str, Callable[["_State"], float]] = {
    "nc1": _nc1,
    "nc1_weighted": _nc1_weighted,
    "nc3": _nc3,
    "nc4": _nc4,
    "W_gram_error": _gram_error("W"),
    "M_gram_error": _gram_error("M"),
    "gap": _gap,
}


@dataclass
class _State:
    """Numpy view of one point, handed to the history metrics."""

    layers: list
    H: np.ndarray
    b: np.ndarray | None
    labels: np.ndarray
    K: int
    objective: float
    minimizer: Callable[[], GlobalMinimizer]

    @property
    def W(self) -> np.ndarray:
        return product(self.layers)

    @property
    def M(self) -> np.ndarray:
        return nc.class_means(self.H, self.labels, self.K)


# ----------------------------------------------------------------------------- the problem on packed parameters


class _Problem:
    """(P) for one problem or a batch of B problems (same K, d, N, L), on packed parameters.

    ``theta`` of shape (B, P) holds, per row, ``W_1..W_L`` and, with *free features*, ``H``
    and ``b``. With *exact features* (variable projection, Golub & Pereyra 1973) it holds the
    layers only: for fixed layers, (P) is a ridge regression in ``(H, b)`` whose minimiser is
    collapsed, ``H = M Y`` (:func:`nclab.objective.exact_features`), so (P) is evaluated at
    class level and its gradient is the gradient of ``min_{H, b} f`` (envelope theorem).

    Parameters
    ----------
    Y : torch.Tensor, shape (K, N) or (B, K, N)
        One-hot labels (samples ordered by class).
    counts : numpy.ndarray, shape (K,) or (B, K)
    lam_W : list of L floats or (B,) tensors
    lam_H : float or (B,) tensor
    d, L, bias, lam_b, loss
        As in :func:`train`.
    exact : bool
        Exact features (needs ``loss="mse"`` and ``lam_b = 0``) or free features.
    """

    def __init__(self, Y, counts, lam_W, lam_H, *, d: int, L: int, bias: bool, lam_b: float = 0.0, loss: str = "mse", exact: bool = False):
        K, N = Y.shape[-2], Y.shape[-1]
        self.Y, self.counts, self.lam_W, self.lam_H = Y, counts, list(lam_W), lam_H
        self.n = torch.as_tensor(counts, dtype=Y.dtype, device=Y.device)
        self.d, self.L, self.bias, self.lam_b, self.loss, self.exact, self.K = d, L, bias, lam_b, loss, exact, K
        self.shapes = [(d, d)] * (L - 1) + [(K, d)] + ([] if exact else [(d, N)] + ([(K,)] if bias else []))
        self.sizes = [math.prod(s) for s in self.shapes]
        self.P = sum(self.sizes)

    @staticmethod
    def _pick(v, rows):
        return v[rows] if rows is not None and torch.is_tensor(v) and v.ndim > 0 else v

    def _data(self, rows):
        """Labels, counts and strengths of the problems ``rows`` (all of them if None)."""
        pick = self._pick
        Y = self.Y if self.Y.ndim == 2 else pick(self.Y, rows)
        n = self.n if self.n.ndim == 1 else pick(self.n, rows)
        return Y, n, [pick(v, rows) for v in self.lam_W], pick(self.lam_H, rows)

    def row(self, i: int) -> tuple[np.ndarray, torch.Tensor, np.ndarray, float]:
        """Counts (K,), labels Y (K, N), layer strengths (L,) and lam_H of problem ``i``."""
        Y, n, lam_W, lam_H = self._data(torch.tensor([i], device=self.Y.device))
        one = lambda v: float(v[0]) if torch.is_tensor(v) and v.ndim else float(v)  # noqa: E731
        return n.reshape(-1, self.K)[0].cpu().numpy(), Y.reshape(-1, *Y.shape[-2:])[0], np.array([one(v) for v in lam_W]), one(lam_H)

    def split(self, theta: torch.Tensor) -> list[torch.Tensor]:
        B = theta.shape[0]
        return [p.reshape(B, *s) for p, s in zip(torch.split(theta, self.sizes, dim=1), self.shapes)]

    def unpack(self, theta: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """Layers, ``H`` (b, d, N) and ``b`` (b, K) or None, of the problems ``rows``."""
        parts = self.split(theta)
        if not self.exact:
            return parts[: self.L], parts[self.L], (parts[self.L + 1] if self.bias else None)
        Y, n, _, lam_H = self._data(rows)
        M, b = exact_features(parts, n, lam_H, bias=self.bias)
        return parts, M @ Y, (None if b is None else b.expand(theta.shape[0], self.K))

    def pack(self, layers: Sequence[torch.Tensor], H: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """Inverse of :meth:`unpack` (exact features keep the layers only)."""
        pieces = list(layers) + ([] if self.exact else [H] + ([b] if self.bias else []))
        return torch.cat([p.reshape(p.shape[0], -1) for p in pieces], dim=1)

    def __call__(self, theta: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(P) of the problems ``rows`` (b,) at ``theta`` (b, P): shape (b,)."""
        Y, n, lam_W, lam_H = self._data(rows)
        if self.exact:
            layers = self.split(theta)
            M, b = exact_features(layers, n, lam_H, bias=self.bias)
            return collapsed_objective(layers, M, b, n, lam_W, lam_H)
        layers, H, b = self.unpack(theta)
        return ufm_objective(layers, H, b, Y, lam_W, lam_H, self.lam_b, self.loss)

    def to_numpy(self, theta_row: torch.Tensor, row: int | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
        """Layers, ``H`` and ``b`` of one problem (``theta_row`` of shape (P,)) as float64 numpy arrays."""
        rows = None if row is None else torch.tensor([row], device=theta_row.device)
        layers, H, b = self.unpack(theta_row.reshape(1, -1), rows)
        arr = lambda t: t[0].detach().cpu().double().numpy()  # noqa: E731
        return [arr(W) for W in layers], arr(H), (None if b is None else arr(b))

    def init(self, B: int, std: float, generator: torch.Generator) -> torch.Tensor:
        theta = std * torch.randn(B, self.P, generator=generator, dtype=torch.float64)
        if self.bias and not self.exact:
            theta[:, -self.K :] = 0.0
        return theta


# ----------------------------------------------------------------------------- training


_DEFAULT_LR = {"gd": 0.1, "adam": 1e-2}
_DEFAULT_STEPS = {"lbfgs": 5000, "gd": 2000, "adam": 2000}


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
    prune = (deep and loss == "mse") if prune is None else bool(prune)
    return restarts, prune


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
        (variable projection). Both minimise the same (P); ``"exact"`` has far fewer unknowns
        and is the default for L-BFGS with the MSE loss and an unregularised bias, ``"free"``
        otherwise (the only choice for ``loss="ce"`` or ``lam_b > 0``).
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
        models with L-BFGS, 1 otherwise).
    prune : bool, optional
        After L-BFGS, try removing the weakest surviving mode, then planting the mode the
        residual misses, each kept only if (P) decreases (default: on for ``L >= 2`` with
        L-BFGS and MSE).
    seed : int, default 0
        Seed of the initialisation; the same seed gives the same result on the same device.
    log_every : int, optional
        Iterations between history entries (default 10 for L-BFGS, ``steps // 200`` otherwise).
    metrics : sequence of str, default ("nc1",)
        Metrics to log besides the objective; names from :data:`HISTORY_METRICS`.
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
    ValueError
        For invalid arguments, naming the parameter and the allowed values.
    TrainingDivergedError
        If the objective becomes non-finite or explodes (lower ``lr``).
    """
    counts = check_counts(n)
    lams, lam_H, L = check_lambdas(lam_W, lam_H, L)
    d = whole(d, "d", 1)
    lam_b = nonneg(lam_b, "lam_b")
    loss = choice(loss, "loss", ("mse", "ce"))
    optimizer = choice(optimizer, "optimizer", ("lbfgs", "gd", "adam"))
    if lr is None:
        lr = _DEFAULT_LR.get(optimizer, 1.0)
    else:
        lr = positive(lr, "lr")
    momentum = nonneg(momentum, "momentum")
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1); got {momentum}")
    steps = whole(_DEFAULT_STEPS[optimizer] if steps is None else steps, "steps", 1)
    init_std = positive(init_std, "init_std")
    restarts, prune = _resolve_search(restarts, prune, L, optimizer, loss)
    features = _resolve_features(features, optimizer, loss, lam_b)
    seed = whole(seed, "seed", 0)
    if log_every is None:
        log_every = 10 if optimizer == "lbfgs" else max(1, steps // 200)
    log_every = whole(log_every, "log_every", 1)
    unknown = [m for m in metrics if m not in HISTORY_METRICS]
    if unknown:
        raise ValueError(f"metrics must be names from {sorted(HISTORY_METRICS)}; unknown: {unknown}")
    if loss != "mse" and any(m in ("W_gram_error", "M_gram_error", "gap") for m in metrics):
        raise ValueError("metrics comparing with the closed form need loss='mse'")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
    dev = resolve_device(device)

    labels = labels_from_counts(counts)
    K = counts.size
    Y = torch.as_tensor(one_hot(labels, K), dtype=dtype, device=dev)
    problem = _Problem(Y, counts, [float(v) for v in lams], lam_H, d=d, L=L, bias=bias, lam_b=lam_b, loss=loss, exact=features == "exact")

    cache: dict[str, GlobalMinimizer] = {}

    def minimizer() -> GlobalMinimizer:
        if "g" not in cache:
            cache["g"] = global_minimizer(counts, lams, lam_H, L=L, bias=bias)
        return cache["g"]

    history: dict[str, list[float]] = {"step": [], "seconds": [], "objective": [], **{m: [] for m in metrics}}

    def state_of(theta_row: torch.Tensor, f: float) -> _State:
        layers, H, b = problem.to_numpy(theta_row)
        return _State(layers, H, b, labels, K, f, minimizer)

    def log(step: int, theta: torch.Tensor, f: torch.Tensor) -> None:
        best = int(torch.argmin(torch.nan_to_num(f, nan=math.inf)))
        value = float(f[best])
        history["step"].append(step)
        history["seconds"].append(time.perf_counter() - start)
        history["objective"].append(value)
        if metrics:
            st = state_of(theta[best], value)
            for m in metrics:
                history[m].append(HISTORY_METRICS[m](st))

    generator = torch.Generator().manual_seed(seed)
    theta0 = problem.init(restarts, init_std, generator).to(device=dev, dtype=dtype)
    f0 = problem(theta0).detach()
    if not bool(torch.isfinite(f0).all()):
        raise TrainingDivergedError("the objective is not finite at the initial point; lower init_std")

    desc = f"UFM L={L} {'bias' if bias else 'no bias'} ({optimizer})"
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=True)
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
        solver = BatchedLBFGS(problem, theta0)
        while solver.n_iter < steps and not bool(solver.done.all()):
            before = solver.n_iter
            for _ in range(min(log_every, steps - solver.n_iter)):
                solver.step()
                if bool(solver.done.all()):
                    break
            diverged(solver.n_iter, solver.f)
            log(solver.n_iter, solver.theta, solver.f)
            bar.update(solver.n_iter - before)
            bar.set_postfix(objective=f"{float(solver.f.min()):.8g}", refresh=False)
        best = int(torch.argmin(solver.f))
        theta, f_best, taken = solver.theta[best : best + 1], float(solver.f[best]), solver.n_iter
        if prune:
            theta, f_pol, extra = _polish(theta, solver.f[best : best + 1], problem, steps)
            f_best, extra = float(f_pol[0]), int(extra[0])
            taken += extra
            if extra:
                log(taken, theta, torch.tensor([f_best]))
    else:
        theta = theta0.clone().requires_grad_(True)
        opt = torch.optim.SGD([theta], lr=lr, momentum=momentum) if optimizer == "gd" else torch.optim.Adam([theta], lr=lr)
        f = f0
        for step in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            f = problem(theta)
            f.sum().backward()
            opt.step()
            if step % log_every == 0 or step == steps:
                f = problem(theta).detach()
                diverged(step, f)
                log(step, theta.detach(), f)
                bar.update(step - bar.n)
                bar.set_postfix(objective=f"{float(f.min()):.8g}", refresh=False)
        f = problem(theta).detach()
        diverged(steps, f)
        best = int(torch.argmin(f))
        theta, f_best, taken = theta.detach()[best : best + 1], float(f[best]), steps
    bar.total = max(bar.n, 1)
    bar.refresh()
    bar.close()
    seconds = time.perf_counter() - start

    final = state_of(theta[0], f_best)
    settings = dict(
        d=d, lam_W=lams.tolist(), lam_H=lam_H, L=L, bias=bool(bias), lam_b=lam_b, loss=loss, optimizer=optimizer,
        lr=lr if optimizer != "lbfgs" else None, momentum=momentum if optimizer == "gd" else None, steps=steps,
        init_std=init_std, restarts=restarts, prune=bool(prune), features=features, seed=seed, device=str(dev),
        dtype=str(dtype).replace("torch.", ""),
    )  # fmt: skip
    return TrainResult(
        layers=final.layers,
        H=final.H,
        b=final.b if final.b is not None else np.zeros(K),
        labels=labels,
        n=counts,
        objective=f_best,
        history={k: np.asarray(v) for k, v in history.items()},
        settings=settings,
        steps=taken,
        seconds=seconds,
    )


def train_many(
    n: Sequence[Sequence[float]] | np.ndarray,
    *,
    d: int,
    lam_W: float | Sequence[float],
    lam_H: float | Sequence[float],
    L: int = 1,
    bias: bool = True,
    steps: int = 5000,
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
    This is the tool for sweeps: phase diagrams, grids over imbalance and strength.

    Parameters
    ----------
    n : array_like, shape (B, K) or (K,)
        Counts per setting, all with the same total N (a single profile is shared).
    d : int
        Feature width.
    lam_W, lam_H : float or array_like of shape (B,)
        Strengths per setting (one ``lam_W`` for every layer of a setting).
    L, bias, steps, init_std, restarts, prune, features, seed, progress, device, dtype
        As in :func:`train` (MSE loss, unregularised bias); the ``restarts`` of all settings
        run in the same batch.

    Returns
    -------
    list of TrainResult
        One per setting, in order; ``history`` holds the final objective of each, ``steps``
        its L-BFGS iterations and ``seconds`` the wall time of the call divided by B.

    Examples
    --------
    >>> import numpy as np
    >>> from nclab.ufm import train_many
    >>> runs = train_many([[30, 10], [20, 20]], d=4, lam_W=[1e-3, 1e-2], lam_H=1e-3, progress=False)
    >>> bool(max(r.gap for r in runs) < 1e-8)
    True
    """
    counts = np.atleast_2d(np.asarray(n, dtype=float))
    if counts.ndim != 2:
        raise ValueError(f"n must have shape (B, K) or (K,); got {np.shape(n)}")
    sizes = {len(counts) if len(counts) > 1 else 1, np.size(lam_W), np.size(lam_H)} - {1}
    if len(sizes) > 1 or np.ndim(lam_W) > 1 or np.ndim(lam_H) > 1:
        raise ValueError(f"n (rows), lam_W and lam_H must be single values or share one batch size B; got sizes {sorted(sizes)}")
    B = sizes.pop() if sizes else 1
    counts = np.stack([check_counts(row, name="n[i]") for row in np.broadcast_to(counts, (B, counts.shape[1]))])
    K = counts.shape[1]
    lam_W_b = np.broadcast_to(np.asarray(lam_W, dtype=float), (B,)).copy()
    lam_H_b = np.broadcast_to(np.asarray(lam_H, dtype=float), (B,)).copy()
    if np.any(counts.sum(1) != counts[0].sum()):
        raise ValueError(f"every row of n must have the same total N; got totals {sorted(set(counts.sum(1).astype(int).tolist()))}")
    for i in range(B):
        check_lambdas(float(lam_W_b[i]), float(lam_H_b[i]), L)
    d = whole(d, "d", 1)
    steps = whole(steps, "steps", 1)
    R, prune = _resolve_search(restarts, prune, L, "lbfgs", "mse")
    features = _resolve_features(features, "lbfgs", "mse", 0.0)
    dev = resolve_device(device)
    labels = [labels_from_counts(row) for row in counts]
    Y = torch.as_tensor(np.stack([one_hot(y, K) for y in labels]), dtype=dtype, device=dev)  # (B, K, N)
    lw = torch.as_tensor(lam_W_b, dtype=dtype, device=dev)
    lh = torch.as_tensor(lam_H_b, dtype=dtype, device=dev)
    problem = _Problem(Y, counts, [lw] * L, lh, d=d, L=L, bias=bias, exact=features == "exact")
    # restart r of setting i is row r * B + i
    fun = lambda theta, rows: problem(theta, rows % B)  # noqa: E731

    theta0 = problem.init(R * B, init_std, torch.Generator().manual_seed(seed)).to(device=dev, dtype=dtype)
    start = time.perf_counter()
    solver = BatchedLBFGS(fun, theta0)
    bar = tqdm(total=R * B, desc=f"{B} UFMs L={L}", disable=not progress, leave=True)
    while solver.n_iter < steps and not bool(solver.done.all()):
        solver.step()
        bar.update(int(solver.done.sum()) - bar.n)
    if not bool(torch.isfinite(solver.f).all()):
        bar.close()
        raise TrainingDivergedError("a batched problem has a non-finite objective; lower init_std")
    best = solver.f.reshape(R, B).argmin(0) * B + torch.arange(B, device=dev)
    theta, f, taken = solver.theta[best], solver.f[best], solver.iterations[best]
    if prune:
        theta, f, extra = _polish(theta, f, problem, steps)
        taken = taken + extra
    bar.update(R * B - bar.n)
    bar.close()
    seconds = time.perf_counter() - start
    results = []
    for i in range(B):
        layers, H, b = problem.to_numpy(theta[i], i)
        settings = dict(d=d, lam_W=[float(lam_W_b[i])] * L, lam_H=float(lam_H_b[i]), L=L, bias=bool(bias), lam_b=0.0,
                        loss="mse", optimizer="lbfgs", features=features, steps=steps, init_std=init_std, restarts=R, prune=prune,
                        seed=seed, device=str(dev), dtype=str(dtype).replace("torch.", ""), batch=B)  # fmt: skip
        results.append(
            TrainResult(
                layers=layers, H=H, b=b if b is not None else np.zeros(K), labels=labels[i],
                n=counts[i], objective=float(f[i]), history={"objective": np.array([float(f[i])])}, settings=settings,
                steps=int(taken[i]), seconds=seconds / B,
            )  # fmt: skip
        )
    return results


def _run_lbfgs(fun: Callable, theta: torch.Tensor, steps: int) -> BatchedLBFGS:
    """Run :class:`BatchedLBFGS` until every problem converges, or for ``steps`` iterations."""
    solver = BatchedLBFGS(fun, theta)
    while solver.n_iter < steps and not bool(solver.done.all()):
        solver.step()
    return solver


def _modes(theta: torch.Tensor, problem: _Problem, i: int):
    """Layers, H, b of problem ``i`` (``theta`` of shape (1, P)), ``Z = M D`` and the SVD of ``W Z`` (K x K)."""
    counts, Y, _, _ = problem.row(i)
    layers, H, b = problem.unpack(theta, torch.tensor([i], device=theta.device))
    sqrt_n = torch.as_tensor(np.sqrt(counts), dtype=theta.dtype, device=theta.device)
    Z = (H[0] @ Y.T) / sqrt_n  # M D, shape (d, K)
    _, sig, Vh = torch.linalg.svd(product([W[0] for W in layers]) @ Z)
    return layers, H, b, Z, sig, Vh, sqrt_n


def _without_weakest_mode(theta: torch.Tensor, problem: _Problem, i: int) -> torch.Tensor | None:
    """Project the weakest surviving mode out of ``H`` and the input of ``W_1``; None if none."""
    layers, H, b, Z, sig, Vh, sqrt_n = _modes(theta, problem, i)
    alive = (sig > nc.alive_tolerance(float(sqrt_n.square().sum()))).nonzero().flatten()
    if alive.numel() == 0:
        return None
    q = Z @ Vh[int(alive[-1])]
    q = q / q.norm()
    P = torch.eye(q.numel(), dtype=q.dtype, device=q.device) - torch.outer(q, q)
    new_layers = [W.clone() for W in layers]
    new_layers[0] = new_layers[0] @ P
    return problem.pack(new_layers, P @ H, b)


def _with_new_mode(theta: torch.Tensor, problem: _Problem, i: int) -> torch.Tensor | None:
    """Seed a mode along the top singular pair of the class-space residual; None if no room.

    The residual of (P) on the class means is ``R = (I - W M - b 1^T) D`` (K x K). A lost mode is a
    local minimum at zero for ``L >= 2``: gradients cannot bring it back, so it is planted, with
    balanced layer scales, on a feature direction orthogonal to the surviving ones.
    """
    layers, H, b, Z, sig, Vh, sqrt_n = _modes(theta, problem, i)
    _, Y, lams, lam_H = problem.row(i)
    K = Z.shape[1]
    W = [layer[0] for layer in layers]
    logits = product(W) @ (Z / sqrt_n)
    if b is not None:
        logits = logits + b[0][:, None]
    R = (torch.eye(K, dtype=Z.dtype, device=Z.device) - logits) * sqrt_n
    U_r, s_r, Vh_r = torch.linalg.svd(R)
    rank = int((sig > nc.alive_tolerance(float(sqrt_n.square().sum()))).sum())
    if s_r[0] <= 0:
        return None
    # the new mode's path q_0 -> q_1 -> ... -> u must avoid the surviving modes in every space:
    # q_0 (features) misses the columns of Z and the rows of W_1, q_l the top columns of W_l and
    # the top rows of W_{l+1}, so that no cross term with the existing layers appears
    top_cols = lambda A: torch.linalg.svd(A)[0][:, :rank]  # noqa: E731
    top_rows = lambda A: torch.linalg.svd(A)[2][:rank].T  # noqa: E731
    gen = torch.Generator().manual_seed(rank)
    path = []
    for l in range(problem.L):
        taken = torch.cat([top_cols(Z if l == 0 else W[l - 1]), top_rows(W[l])], dim=1)
        q = _direction_avoiding(taken, rank, gen)
        if q is None:
            return None
        path.append(q)
    path.append(U_r[:, 0])
    L = problem.L
    c = effective_c(lams, lam_H, L)
    x0 = float(s_r[0]) ** (1 / (L + 1))
    new_layers = [layer.clone() for layer in layers]
    for l in range(L):
        new_layers[l][0] += np.sqrt(c / lams[l]) * x0 * torch.outer(path[l + 1], path[l])
    new_Z = np.sqrt(c / lam_H) * x0 * torch.outer(path[0], Vh_r[0])
    new_H = H + (new_Z / sqrt_n) @ Y
    return problem.pack(new_layers, new_H, b)


def _direction_avoiding(taken: torch.Tensor, rank: int, gen: torch.Generator) -> torch.Tensor | None:
    """A random unit vector orthogonal to the main ``rank``-dimensional subspace of the columns of ``taken``.

    ``taken`` (d, 2 rank) stacks two orthonormal bases of what should be one subspace (the
    surviving modes seen from both sides of a space); near a critical point they agree only up
    to round-off, so the subspace is their top ``rank`` left singular vectors. None if
    ``rank >= d`` (no room for another mode).
    """
    d = taken.shape[0]
    if rank >= d:
        return None
    U = torch.linalg.svd(taken, full_matrices=False)[0][:, :rank]
    q = torch.randn(d, generator=gen, dtype=torch.float64).to(taken)
    q = q - U @ (U.T @ q)
    return q / q.norm()


def _polish(theta: torch.Tensor, f: torch.Tensor, problem: _Problem, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Escape the two traps of depth, for a batch of B problems: spurious modes and lost modes.

    First remove the weakest surviving mode while that lowers (P) (a spurious mode is a local
    minimum just below the threshold); then plant the mode the residual misses while that lowers
    (P) (the origin of every mode is a local minimum for ``L >= 2``). The candidates of all
    problems are re-optimised together by L-BFGS and each is kept only if its objective
    decreases; a problem stops a move at its first failure.

    Parameters
    ----------
    theta : torch.Tensor, shape (B, P)
        One point per problem of ``problem`` (a batch of B problems, or one problem and B = 1).
    f : torch.Tensor, shape (B,)
        Objective at ``theta``.
    problem : _Problem
    steps : int
        Iteration limit of each L-BFGS run.

    Returns
    -------
    theta, f, iterations (a (B,) long tensor of the extra L-BFGS iterations)
    """
    theta, f = theta.clone(), f.clone()
    taken = torch.zeros(len(theta), dtype=torch.long, device=theta.device)
    for move in (_without_weakest_mode, _with_new_mode):
        trying = list(range(len(theta)))
        while trying:
            made = [(i, move(theta[i : i + 1], problem, i)) for i in trying]
            made = [(i, c) for i, c in made if c is not None]
            if not made:
                break
            rows = torch.tensor([i for i, _ in made], device=theta.device)
            solver = _run_lbfgs(lambda t, r: problem(t, rows[r]), torch.cat([c for _, c in made]), steps)
            taken[rows] += solver.iterations
            better = solver.f < f[rows] - 1e-13 * f[rows].abs()
            theta[rows[better]], f[rows[better]] = solver.theta[better], solver.f[better]
            trying = rows[better].tolist()
    return theta, f, taken
