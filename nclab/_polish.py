"""The polishing pass of :func:`nclab.train`: repairing lost and spurious modes of a deep UFM.

For ``L >= 2`` the origin of every mode is a local minimum of (P) and, just below the
threshold, so is a spurious nonzero mode (``nclab.theory.nonzero_branch``): L-BFGS from a
random start can end with modes lost or kept wrongly. Two moves repair them, and each is
judged by the objective alone:

* *remove*: project the ``j`` weakest surviving modes out of every layer (and of the features);
* *plant*: seed the ``j`` strongest singular pairs of the class-space residual
  ``R = (I - W M - b 1^T) D`` as new modes, with balanced layer scales, on directions that avoid
  the surviving ones, at a few amplitudes.

At a critical point the modes decouple and (P) is a sum over modes, so the value of a
candidate already tells whether the move helps: every candidate (several ``j``, several
amplitudes) is evaluated, the best is re-optimised by L-BFGS and kept only if (P) went down.
Moving blocks of modes at once matters for large K, where a random start of a deep model can
lose hundreds of modes. Nothing here uses the closed form: the candidates come from the
current point and its residual, and the objective decides.

The problem is the ``_Problem`` of :mod:`nclab.ufm` (its ``point``, ``pack``, ``row``,
``value_and_grad``, and its call for values).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from . import metrics as nc
from .lbfgs import BatchedLBFGS
from .objective import product
from .theory import effective_c

#: Relative decrease a move must achieve to be kept.
GAIN = 1e-13
#: Amplitudes of a single planted mode, relative to fitting the residual's singular value whole.
ONE_SCALES = np.geomspace(0.1, 1.2, 12)
#: Amplitudes of a block of planted modes (a deep mode that survives sits at 0.5 to 1 of it).
BLOCK_SCALES = (0.6, 0.8, 0.9, 1.0)
#: Most parameters evaluated in one batch while screening candidates (a larger family is searched).
CHUNK = 1 << 22
#: Most rounds of moves.
ROUNDS = 50


def svd(A: torch.Tensor, full_matrices: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """SVD of a small matrix; None when it fails.

    LAPACK's default driver (gesdd) fails to converge on some badly conditioned matrices that
    gesvd factors (issue #17: K = 200, L = 6, ratio 1e4), so SciPy's gesvd is the fallback, and
    a move whose matrix neither factors is skipped rather than the run lost.
    """
    try:
        return torch.linalg.svd(A, full_matrices=full_matrices)
    except RuntimeError:  # torch.linalg.LinAlgError is a RuntimeError
        pass
    import scipy.linalg

    try:
        parts = scipy.linalg.svd(A.detach().cpu().double().numpy(), full_matrices=full_matrices, lapack_driver="gesvd")
    except (np.linalg.LinAlgError, ValueError):
        return None
    return tuple(torch.as_tensor(p, dtype=A.dtype, device=A.device) for p in parts)  # type: ignore[return-value]


def svds(A: torch.Tensor, full_matrices: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[bool]]:
    """SVD of a batch ``A`` (b, m, n) of small matrices in one call: ``U, S, Vh`` and which matrices factored.

    When the batched call fails, each matrix goes through :func:`svd` (and its fallback) on its
    own; one that no driver factors is marked False (its factors are zeros).
    """
    try:
        return (*torch.linalg.svd(A, full_matrices=full_matrices), [True] * len(A))
    except RuntimeError:  # torch.linalg.LinAlgError is a RuntimeError
        pass
    m, n = A.shape[-2:]
    k = min(m, n)
    U = A.new_zeros(len(A), m, m if full_matrices else k)
    S, Vh = A.new_zeros(len(A), k), A.new_zeros(len(A), n if full_matrices else k, n)
    ok = []
    for j, a in enumerate(A):
        parts = svd(a, full_matrices)
        ok.append(parts is not None)
        if parts is not None:
            U[j], S[j], Vh[j] = parts
    return U, S, Vh, ok


@functools.lru_cache(maxsize=None)
def counts_to_try(most: int) -> tuple[int, ...]:
    """How many modes a block move tries: every count up to 16, then steps of about 1.5x, and ``most``."""
    small = tuple(range(1, min(most, 16) + 1))
    big = np.unique(np.round(16 * 1.5 ** np.arange(1, 40)).astype(int))
    return small + tuple(int(j) for j in big if 16 < j < most) + ((most,) if most > 16 else ())


@dataclass
class Modes:
    """Problem ``i`` at one point: layers, ``H`` (free features) and ``b``, ``Z = M D`` and the SVD of ``W Z``."""

    layers: list[torch.Tensor]  # each (1, rows, cols)
    H: torch.Tensor | None
    b: torch.Tensor | None
    Z: torch.Tensor
    sig: torch.Tensor
    Vh: torch.Tensor
    sqrt_n: torch.Tensor
    Y: torch.Tensor | None
    lams: np.ndarray
    lam_H: float
    rank: int  # number of surviving modes (:func:`nclab.metrics.alive_tolerance`)


def modes(theta: torch.Tensor, problem, rows: Sequence[int]) -> dict[int, Modes | None]:
    """The :class:`Modes` of the problems ``rows`` at their points ``theta[rows]``, computed for all of them at once
    (one batched SVD); None for a problem whose ``W M D`` does not factor."""
    idx = torch.tensor(list(rows), dtype=torch.long, device=theta.device)
    layers, M, b, H = problem.point(theta[idx], idx)
    n = problem.n if problem.n.ndim == 1 else problem.n[idx]
    sqrt_n = n.sqrt().expand(len(idx), -1)
    Z = M * sqrt_n[:, None, :]  # M D, shape (b, r, K)
    _, sig, Vh, ok = svds(product(layers) @ Z)
    N = sqrt_n.square().sum(1).tolist()
    alive = (sig > torch.tensor([nc.alive_tolerance(v) for v in N], dtype=sig.dtype, device=sig.device)[:, None]).sum(1).tolist()
    out: dict[int, Modes | None] = {}
    for j, i in enumerate(rows):
        _, lams, lam_H, Y = problem.row(i)
        one = slice(j, j + 1)
        out[i] = Modes([W[one] for W in layers], None if H is None else H[one], None if b is None else b[one], Z[j], sig[j],
                       Vh[j], sqrt_n[j], Y, lams, lam_H, int(alive[j])) if ok[j] else None  # fmt: skip
    return out


@dataclass
class Family:
    """Candidates of one move for one problem: ``build(ks)`` makes the candidates at positions
    ``ks`` as one batch (len(ks), P). ``ordered``: by the number of modes moved, along which (P)
    is unimodal at a critical point (a long such family is searched, not evaluated whole)."""

    size: int
    build: Callable[[Sequence[int]], torch.Tensor]
    ordered: bool = True


def _outer(A: torch.Tensor, x: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A diag(x_k) B^T`` for every row ``x_k`` of ``x`` (k, i): shape (k, a, b), from ``A`` (a, i) and ``B`` (b, i)
    (``einsum("ai,ki,bi->kab")``, written as one broadcast product: einsum's overhead dominates at these sizes)."""
    return (A[None] * x[:, None, :]) @ B.T


def _nested_basis(A: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns whose first j span the first j columns of ``A`` for every j (QR); a
    column that adds no direction becomes zero."""
    Q, R = torch.linalg.qr(A)
    diag = R.diagonal().abs()
    return Q * (diag > 1e-12 * max(float(diag.max()), 1e-300)) if diag.numel() else Q


def without_weakest(theta: torch.Tensor, problem, at: dict[int, Modes | None]) -> dict[int, list[Family]]:
    """:func:`weakest_family` of every problem of ``at`` (its modes), where there is one."""
    return {i: fams for i, m in at.items() if m is not None and (fams := weakest_family(theta, problem, m))}


def weakest_family(theta: torch.Tensor, problem, m: Modes) -> list[Family] | None:
    """Candidates without the ``j`` weakest surviving modes, for ``j`` in :func:`counts_to_try` (one family); None if none survives.

    The modes enter ``W_1`` along their feature directions ``Z v`` and leave layer l along
    the span of ``W_l q_{l-1}``; each layer loses its component on its input block, so the
    modes leave the product and the layers' norms alike. Weakest first, the blocks are nested,
    so one QR per space serves every ``j``.
    """
    if m.rank == 0:
        return None
    bases = [_nested_basis(m.Z @ m.Vh[: m.rank].flip(0).T)]  # (r, rank), weakest mode first
    for W in m.layers[:-1]:
        bases.append(_nested_basis(W[0] @ bases[-1]))
    counts = counts_to_try(m.rank)

    def build(ks: Sequence[int]) -> torch.Tensor:
        mask = (torch.arange(m.rank, device=theta.device)[None, :] < torch.tensor([counts[k] for k in ks], device=theta.device)[:, None]).to(theta.dtype)
        layers = [W - _outer(W[0] @ q, mask, q) for W, q in zip(m.layers, bases)]
        H = None if m.H is None else m.H - _outer(bases[0], mask, bases[0]) @ m.H[0]
        return problem.pack(layers, H, None if m.b is None else m.b.expand(len(ks), -1))

    return [Family(len(counts), build)]


def _avoiding(taken: torch.Tensor, rank: int, j: int, gen: torch.Generator) -> tuple[torch.Tensor, list[bool]]:
    """For each of a batch ``taken`` (g, r, 2 rank) (``rank + j <= r``): ``j`` random orthonormal directions
    orthogonal to the main ``rank``-dimensional subspace of its columns (g, r, j), and which factored.

    ``taken`` stacks two orthonormal bases of what should be one subspace (the surviving modes
    seen from both sides of a space); near a critical point they agree only up to round-off, so
    the subspace is their top ``rank`` left singular vectors. The batch shares one draw of
    ``gen``: each problem of it would draw the same from a generator seeded with ``rank``.
    """
    g, r = taken.shape[:2]
    q = torch.randn(r, j, generator=gen, dtype=torch.float64).to(taken).expand(g, r, j)
    ok = [True] * g
    if rank:
        U, _, _, ok = svds(taken, full_matrices=False)
        U = U[:, :, :rank]
        q = q - U @ (U.transpose(1, 2) @ q)
    return torch.linalg.qr(q).Q, ok


def with_new_modes(theta: torch.Tensor, problem, at: dict[int, Modes | None]) -> dict[int, list[Family]]:
    """:func:`planted_families` of every problem of ``at`` (its modes), where there is room; the SVDs they need
    (the residual and every space the new modes pass) and the paths of the new modes are computed for all
    problems at once (the paths for all problems with the same number of surviving and new modes)."""
    rows = [i for i, m in at.items() if m is not None]
    if not rows:
        return {}
    ms = [at[i] for i in rows]
    L = problem.L
    W = [torch.cat([m.layers[l] for m in ms]) for l in range(L)]
    Z, sqrt_n = torch.stack([m.Z for m in ms]), torch.stack([m.sqrt_n for m in ms])[:, None, :]
    logits = product(W) @ (Z / sqrt_n)
    if ms[0].b is not None:
        logits = logits + torch.cat([m.b for m in ms])[:, :, None]
    res = svds((torch.eye(Z.shape[2], dtype=Z.dtype, device=Z.device) - logits) * sqrt_n)
    spaces = [svds(A) for A in [Z] + W]  # features, then the output of every layer
    # new modes: the residual's pairs above round-off, as many as there is room for beside the surviving ones
    above = (res[1] > 1e-12 * res[1][:, :1].clamp_min(1e-300)).sum(1).tolist()
    groups: dict[tuple[int, int], list[int]] = {}  # (surviving, new) -> positions in rows
    for j, m in enumerate(ms):
        most = min(above[j], Z.shape[1] - m.rank)
        if most > 0 and res[3][j] and all(sp[3][j] for sp in spaces):
            groups.setdefault((m.rank, most), []).append(j)
    out = {}
    for (rank, most), js in groups.items():
        gen = torch.Generator().manual_seed(rank)
        at_js = torch.tensor(js, device=Z.device)
        path, ok = [], [True] * len(js)  # an orthonormal block per space, features first: (g, r, most) ...
        for l in range(L):
            taken = torch.cat([spaces[l][0][at_js, :, :rank], spaces[l + 1][2][at_js, :rank].transpose(1, 2)], dim=2)
            q, good = _avoiding(taken, rank, most, gen)
            path.append(q)
            ok = [a and b for a, b in zip(ok, good)]
        for t, j in enumerate(js):
            if ok[t]:
                out[rows[j]] = planted_families(theta, problem, ms[j], (res[0][j], res[1][j], res[2][j]), [q[t] for q in path], most)
    return out


def planted_families(theta: torch.Tensor, problem, m: Modes, residual: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                     path: list[torch.Tensor], most: int) -> list[Family]:  # fmt: skip
    """Candidates with the ``j <= most`` top singular pairs of the class-space residual planted as new modes.

    ``residual``: the SVD ``U, s, Vh`` of ``R = (I - W M - b 1^T) D``; ``path``: the directions
    (an orthonormal (r, most) block per space, features first) that the new modes take through
    the layers, avoiding the surviving modes in every space, so that no cross term with the
    existing layers appears (:func:`_avoiding`).

    Families: one mode at the amplitudes :data:`ONE_SCALES`, then, for each amplitude of
    :data:`BLOCK_SCALES`, blocks of ``j`` modes for ``j`` in :func:`counts_to_try`.

    Mode ``k`` gets the balanced layer scales of a deep mode, ``sqrt(c / lam_l) x`` with
    ``x = a s_k^(1/(L+1))`` (``a = 1`` fits the residual's singular value ``s_k`` whole), at the
    amplitudes :data:`ONE_SCALES` for one mode and :data:`BLOCK_SCALES` for blocks.
    """
    L = problem.L
    W = [layer[0] for layer in m.layers]
    U_r, s_r, Vh_r = residual
    path = path + [U_r[:, :most]]
    c = effective_c(m.lams, m.lam_H, L)
    root = s_r[:most] ** (1 / (L + 1))
    coef = [math.sqrt(c / lam) for lam in m.lams]

    def planted(x: torch.Tensor) -> torch.Tensor:
        """Candidates with the modes planted at the amplitudes ``x`` (k, most) (zero: not planted)."""
        layers = [W[l][None] + coef[l] * _outer(path[l + 1], x, path[l]) for l in range(L)]
        H = None
        if m.H is not None:
            new_Z = math.sqrt(c / m.lam_H) * _outer(path[0], x, Vh_r[:most].T)
            H = m.H + (new_Z / m.sqrt_n) @ m.Y
        return problem.pack(layers, H, None if m.b is None else m.b.expand(len(x), -1))

    one = torch.as_tensor(ONE_SCALES, dtype=theta.dtype, device=theta.device)
    first = torch.zeros(most, dtype=theta.dtype, device=theta.device)
    first[0] = root[0]
    amplitudes = [one[:, None] * first[None, :]]  # per family, the amplitudes (k, most) of its candidates
    blocks = counts_to_try(most)[1:]
    if blocks:
        inside = torch.arange(most, device=theta.device)[None, :] < torch.tensor(blocks, device=theta.device)[:, None]
        amplitudes += [a * root[None, :] * inside for a in BLOCK_SCALES]
    if sum(len(x) for x in amplitudes) * problem.P <= CHUNK:  # small: one family, evaluated whole
        every = torch.cat(amplitudes)
        return [Family(len(every), lambda ks: planted(every[list(ks)]), ordered=False)]
    return [Family(len(x), lambda ks, x=x: planted(x[list(ks)]), ordered=k > 0) for k, x in enumerate(amplitudes)]


def best_candidates(problem, families: dict[int, list[Family]]) -> dict[int, tuple[float, torch.Tensor]]:
    """For every problem ``i``, the candidate of ``families[i]`` with the lowest (P), and that value.

    Families whose candidates fit in :data:`CHUNK` parameters (and the short, unordered ones)
    are built whole and evaluated together, for all problems, in batches of about
    :data:`CHUNK` parameters. A long ordered family is searched problem by problem, a
    candidate at a time: along it (P) is unimodal at a critical point, where the modes
    decouple (it falls while the moves help, then rises), and a ternary search needs about
    ``2 log_1.5`` of its length evaluations.
    """
    best: dict[int, tuple[float, torch.Tensor]] = {}

    def offer(i: int, f: torch.Tensor, cands: torch.Tensor) -> None:
        k = int(torch.argmin(f))
        if float(f[k]) < best.get(i, (math.inf,))[0]:
            best[i] = (float(f[k]), cands[k : k + 1])

    def values(cands: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.nan_to_num(problem(cands, owners), nan=math.inf)

    P = problem.P
    whole: list[tuple[int, torch.Tensor]] = []  # (problem, candidates) to evaluate in batches
    for i, fams in families.items():
        for fam in fams:
            if not fam.ordered or fam.size * P <= CHUNK:
                per = max(1, CHUNK // P)
                whole += [(i, fam.build(range(k, min(k + per, fam.size)))) for k in range(0, fam.size, per)]
                continue
            cache: dict[int, float] = {}

            def at(k: int) -> float:
                if k not in cache:
                    cand = fam.build([k])
                    cache[k] = float(values(cand, torch.tensor([i], device=cand.device))[0])
                    offer(i, torch.tensor([cache[k]]), cand)
                return cache[k]

            lo, hi = 0, fam.size - 1
            while hi - lo > 2:
                m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
                if at(m1) <= at(m2):
                    hi = m2
                else:
                    lo = m1
            for k in range(lo, hi + 1):
                at(k)
    per = max(1, CHUNK // P)
    pending: list[tuple[int, torch.Tensor]] = []
    held = 0  # candidates in pending

    def flush() -> None:
        nonlocal held
        held = 0
        if pending:
            cands = torch.cat([c for _, c in pending])
            owners = torch.cat([torch.full((len(c),), i, device=cands.device) for i, c in pending])
            f, start = values(cands, owners), 0
            for i, c in pending:
                offer(i, f[start : start + len(c)], c)
                start += len(c)
            pending.clear()

    for i, cands in whole:
        if pending and held + len(cands) > per:
            flush()
        pending.append((i, cands))
        held += len(cands)
    flush()
    return best


def run_lbfgs(fun: Callable, theta: torch.Tensor, steps: int) -> BatchedLBFGS:
    """Run :class:`BatchedLBFGS` on ``fun(theta, rows) -> (f, g)`` until every problem converges, or for ``steps`` iterations."""
    solver = BatchedLBFGS(fun, theta, jac=True)
    while solver.n_iter < steps and not bool(solver.done.all()):
        solver.step()
    return solver


MOVES: tuple[Callable, ...] = (without_weakest, with_new_modes)


def polish(theta: torch.Tensor, f: torch.Tensor, problem, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Escape the two traps of depth, for a batch of B problems: spurious modes and lost modes.

    Rounds of: remove the weakest surviving modes, then plant the residual's strongest pairs,
    until neither lowers (P) (at most :data:`ROUNDS`). A move is screened first: (P) is
    evaluated at its candidates, and only a problem whose best candidate is already below its
    objective is re-optimised by L-BFGS (all such problems together) and keeps the result if
    its objective decreased by more than :data:`GAIN`. At a critical point the modes decouple,
    so a move that does not lower (P) at once does not lower it after re-optimisation either.

    Parameters
    ----------
    theta : torch.Tensor, shape (B, P)
        One point per problem of ``problem`` (a batch of B problems, or one problem and B = 1).
    f : torch.Tensor, shape (B,)
        Objective at ``theta``.
    problem : nclab.ufm._Problem
    steps : int
        Iteration limit of each L-BFGS run.

    Returns
    -------
    theta, f, iterations (a (B,) long tensor of the extra L-BFGS iterations)
    """
    theta, f = theta.clone(), f.clone()
    taken = torch.zeros(len(theta), dtype=torch.long, device=theta.device)
    trying = list(range(len(theta)))
    for _ in range(ROUNDS):
        improved: set[int] = set()
        at = modes(theta, problem, trying)
        for move in MOVES:
            if stale := sorted(improved & at.keys()):  # moved by the previous move
                at.update(modes(theta, problem, stale))
            families = move(theta, problem, at)
            found = best_candidates(problem, families)
            rows = [i for i, (fc, _) in found.items() if fc < float(f[i]) - GAIN * abs(float(f[i]))]
            starts = [found[i][1] for i in rows]
            if not rows:
                continue
            rows_t = torch.tensor(rows, device=theta.device)
            solver = run_lbfgs(lambda t, r: problem.value_and_grad(t, rows_t[r]), torch.cat(starts), steps)
            taken[rows_t] += solver.iterations
            better = solver.f < f[rows_t] - GAIN * f[rows_t].abs()
            theta[rows_t[better]], f[rows_t[better]] = solver.theta[better], solver.f[better]
            improved.update(rows_t[better].tolist())
        trying = sorted(improved)
        if not trying:
            break
    return theta, f, taken
