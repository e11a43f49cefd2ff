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

The problem is the ``_Problem`` of :mod:`nclab.ufm` (its ``point``, ``pack``, ``data``,
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
from .theory import _effective_c

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
    """A batch of g problems at their points: layers, ``H`` (free features) and ``b``, ``Z = M D`` and the SVD of ``W Z``."""

    rows: list[int]  # the problems (indices into the batch of the _Problem), g of them
    layers: list[torch.Tensor]  # each (g, rows, cols)
    H: torch.Tensor | None  # (g, d, N)
    b: torch.Tensor | None  # (g, K)
    Z: torch.Tensor  # (g, r, K)
    sig: torch.Tensor  # (g, min(K, r))
    Vh: torch.Tensor  # (g, K, K)
    sqrt_n: torch.Tensor  # (g, K)
    Y: torch.Tensor | None  # (K, N) shared or (g, K, N); None with exact features
    lams: np.ndarray  # (g, L)
    lam_H: np.ndarray  # (g,)
    rank: np.ndarray  # (g,) number of surviving modes (:func:`nclab.metrics.alive_tolerance`)

    def take(self, js: Sequence[int]) -> "Modes":
        """The sub-batch at positions ``js``."""
        if len(js) == len(self.rows):
            return self
        t = torch.as_tensor(list(js), dtype=torch.long, device=self.Z.device)
        pick = lambda v: None if v is None else v.index_select(0, t)  # noqa: E731
        return Modes([self.rows[j] for j in js], [pick(W) for W in self.layers], pick(self.H), pick(self.b), pick(self.Z),
                     pick(self.sig), pick(self.Vh), pick(self.sqrt_n), self.Y if self.Y is None or self.Y.ndim == 2 else pick(self.Y),
                     self.lams[js], self.lam_H[js], self.rank[js])  # fmt: skip


def _groups(keys: Sequence) -> dict:
    """Positions grouped by ``keys`` (one hashable per position): ``key -> [positions]``."""
    groups: dict = {}
    for j, key in enumerate(keys):
        groups.setdefault(key, []).append(j)
    return groups


def _per_problem(v, g: int) -> np.ndarray:
    """A strength of ``_Problem.data`` (a float or a (g,) tensor) as a float64 array (g,)."""
    return np.broadcast_to(v.detach().cpu().double().numpy() if torch.is_tensor(v) else np.float64(v), (g,))


def modes(theta: torch.Tensor, problem, rows: Sequence[int]) -> Modes:
    """The :class:`Modes` of the problems ``rows`` at their points ``theta[rows]``, computed for all of them at once
    (one batched SVD); a problem whose ``W M D`` does not factor is left out."""
    idx = torch.tensor(list(rows), dtype=torch.long, device=theta.device)
    layers, M, b, H = problem.point(theta[idx], idx)
    n, lam_W, lam_H, Y = problem.data(idx)
    g = len(idx)
    sqrt_n = n.sqrt().expand(g, -1)
    Z = M * sqrt_n[:, None, :]  # M D, shape (g, r, K)
    _, sig, Vh, ok = svds(product(layers) @ Z)
    N = sqrt_n.square().sum(1).tolist()
    alive = (sig > torch.tensor([nc.alive_tolerance(v) for v in N], dtype=sig.dtype, device=sig.device)[:, None]).sum(1)
    lams = np.stack([_per_problem(v, g) for v in lam_W], axis=1)
    at = Modes(list(rows), layers, H, b, Z, sig, Vh, sqrt_n, Y, lams, _per_problem(lam_H, g), alive.cpu().numpy())
    return at.take([j for j in range(g) if ok[j]])


@dataclass
class Family:
    """Candidates of one move for the problems ``owners`` (g of them), ``size`` per problem:
    ``build(sel, pos)`` makes, for the owners at positions ``sel`` (a,), their candidates at
    positions ``pos`` (a, k), as one batch (a, k, P). ``ordered``: by the number of modes moved,
    along which (P) is unimodal at a critical point (a long such family is searched, not
    evaluated whole)."""

    owners: list[int]
    size: int
    build: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ordered: bool = True


def _outer(A: torch.Tensor, x: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A diag(x_k) B^T`` for every problem and every row ``x_k`` of its ``x``: shape (g, k, a, b), from ``A``
    (g, a, i), ``x`` (g, k, i) and ``B`` (g, b, i) (``einsum("gai,gki,gbi->gkab")``, written as one broadcast
    product: einsum's overhead dominates at these sizes)."""
    return (A[:, None] * x[:, :, None, :]) @ B.transpose(-1, -2)[:, None]


def _pack(problem, layers: list[torch.Tensor], H: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    """Candidates (a, k, P) from their layers (a, k, rows, cols), ``H`` (a, k, d, N) and ``b`` (a, k, K)."""
    a, k = layers[0].shape[:2]
    flat = lambda t: None if t is None else t.reshape(a * k, *t.shape[2:])  # noqa: E731
    return problem.pack([flat(W) for W in layers], flat(H), flat(b)).reshape(a, k, -1)


def _nested_basis(A: torch.Tensor) -> torch.Tensor:
    """For each matrix of ``A`` (g, r, j): orthonormal columns whose first j span its first j columns for every j
    (QR); a column that adds no direction becomes zero."""
    Q, R = torch.linalg.qr(A)
    diag = R.diagonal(0, -2, -1).abs()
    if not diag.numel():
        return Q
    return Q * (diag > 1e-12 * diag.amax(-1, keepdim=True).clamp_min(1e-300))[:, None, :]


def without_weakest(theta: torch.Tensor, problem, at: Modes) -> list[Family]:
    """:func:`weakest_family` of the problems of ``at`` with surviving modes, one family per number of them."""
    return [weakest_family(problem, at.take(js), rank) for rank, js in _groups(at.rank.tolist()).items() if rank > 0]


def weakest_family(problem, m: Modes, rank: int) -> Family:
    """Candidates without the ``j`` weakest surviving modes, for ``j`` in :func:`counts_to_try`, for a batch ``m`` of
    problems with ``rank`` surviving modes each.

    The modes enter ``W_1`` along their feature directions ``Z v`` and leave layer l along
    the span of ``W_l q_{l-1}``; each layer loses its component on its input block, so the
    modes leave the product and the layers' norms alike. Weakest first, the blocks are nested,
    so one QR per space serves every ``j``.
    """
    bases = [_nested_basis(m.Z @ m.Vh[:, :rank].flip(1).transpose(1, 2))]  # (g, r, rank), weakest mode first
    for W in m.layers[:-1]:
        bases.append(_nested_basis(W @ bases[-1]))
    counts = torch.tensor(counts_to_try(rank), device=m.Z.device)
    inputs = [W @ q for W, q in zip(m.layers, bases)]  # where the modes leave each layer

    def build(sel: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(rank, device=pos.device) < counts[pos][..., None]).to(m.Z.dtype)  # (a, k, rank)
        layers = [W[sel][:, None] - _outer(Wq[sel], mask, q[sel]) for W, Wq, q in zip(m.layers, inputs, bases)]
        H = None if m.H is None else m.H[sel][:, None] - _outer(bases[0][sel], mask, bases[0][sel]) @ m.H[sel][:, None]
        return _pack(problem, layers, H, None if m.b is None else m.b[sel][:, None].expand(-1, pos.shape[1], -1))

    return Family(m.rows, len(counts), build)


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


def with_new_modes(theta: torch.Tensor, problem, at: Modes) -> list[Family]:
    """:func:`planted_families` of the problems of ``at`` with room for new modes; the SVDs they need (the residual
    and every space the new modes pass) are computed for all problems at once, and the paths of the new modes
    and the candidates for all problems with the same number of surviving and new modes."""
    if not at.rows:
        return []
    logits = product(at.layers) @ (at.Z / at.sqrt_n[:, None, :])
    if at.b is not None:
        logits = logits + at.b[:, :, None]
    res = svds((torch.eye(at.Z.shape[2], dtype=at.Z.dtype, device=at.Z.device) - logits) * at.sqrt_n[:, None, :])
    spaces = [svds(A) for A in [at.Z] + at.layers]  # features, then the output of every layer
    # new modes: the residual's pairs above round-off, as many as there is room for beside the surviving ones
    above = (res[1] > 1e-12 * res[1][:, :1].clamp_min(1e-300)).sum(1).tolist()
    most = [min(a, at.Z.shape[1] - int(r)) for a, r in zip(above, at.rank)]
    usable = [j for j in range(len(at.rows)) if most[j] > 0 and res[3][j] and all(sp[3][j] for sp in spaces)]
    out = []
    for (rank, new), js in _groups([(int(at.rank[j]), most[j]) for j in usable]).items():
        js = [usable[j] for j in js]
        gen = torch.Generator().manual_seed(rank)
        at_js = torch.tensor(js, device=at.Z.device)
        path, ok = [], [True] * len(js)  # an orthonormal block per space, features first: (g, r, new) ...
        for l in range(problem.L):
            taken = torch.cat([spaces[l][0][at_js, :, :rank], spaces[l + 1][2][at_js, :rank].transpose(1, 2)], dim=2)
            q, good = _avoiding(taken, rank, new, gen)
            path.append(q)
            ok = [a and b for a, b in zip(ok, good)]
        keep = [t for t in range(len(js)) if ok[t]]
        if keep:
            chosen = [js[t] for t in keep]  # positions in at
            kt, rows = torch.tensor(keep, device=at.Z.device), torch.tensor(chosen, device=at.Z.device)
            residual = tuple(part.index_select(0, rows) for part in res[:3])
            out += planted_families(problem, at.take(chosen), residual, [q.index_select(0, kt) for q in path], new)
    return out


def planted_families(problem, m: Modes, residual: tuple[torch.Tensor, torch.Tensor, torch.Tensor], path: list[torch.Tensor],
                     most: int) -> list[Family]:  # fmt: skip
    """Candidates with the ``j <= most`` top singular pairs of the class-space residual planted as new modes, for a
    batch ``m`` of problems (each with room for ``most`` new modes).

    ``residual``: the SVDs ``U, s, Vh`` (g, K, K), (g, K), (g, K, K) of ``R = (I - W M - b 1^T) D``;
    ``path``: the directions (an orthonormal (g, r, most) block per space, features first) that
    the new modes take through the layers, avoiding the surviving modes in every space, so that
    no cross term with the existing layers appears (:func:`_avoiding`).

    Families: one mode at the amplitudes :data:`ONE_SCALES`, then, for each amplitude of
    :data:`BLOCK_SCALES`, blocks of ``j`` modes for ``j`` in :func:`counts_to_try`.

    Mode ``k`` gets the balanced layer scales of a deep mode, ``sqrt(c / lam_l) x`` with
    ``x = a s_k^(1/(L+1))`` (``a = 1`` fits the residual's singular value ``s_k`` whole), at the
    amplitudes :data:`ONE_SCALES` for one mode and :data:`BLOCK_SCALES` for blocks.
    """
    L, like = problem.L, m.Z
    U_r, s_r, Vh_r = residual
    path = path + [U_r[:, :, :most]]
    c = _effective_c(m.lams, m.lam_H)  # (g,): the strengths were checked by train
    root = s_r[:, :most] ** (1 / (L + 1))  # (g, most)
    coef = torch.as_tensor(np.sqrt(c[:, None] / m.lams), dtype=like.dtype, device=like.device)  # (g, L)
    feature_coef = torch.as_tensor(np.sqrt(c / m.lam_H), dtype=like.dtype, device=like.device)  # (g,)

    def planted(sel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Candidates of the owners ``sel`` (a,) with the modes planted at the amplitudes ``x`` (a, k, most) (zero: not planted)."""
        layers = [m.layers[l][sel][:, None] + coef[sel, l, None, None, None] * _outer(path[l + 1][sel], x, path[l][sel]) for l in range(L)]
        H = None
        if m.H is not None:
            new_Z = feature_coef[sel, None, None, None] * _outer(path[0][sel], x, Vh_r[sel, :most].transpose(1, 2))
            Y = m.Y if m.Y.ndim == 2 else m.Y[sel][:, None]
            H = m.H[sel][:, None] + (new_Z / m.sqrt_n[sel][:, None, None, :]) @ Y
        return _pack(problem, layers, H, None if m.b is None else m.b[sel][:, None].expand(-1, x.shape[1], -1))

    g = len(m.rows)
    one = torch.as_tensor(ONE_SCALES, dtype=like.dtype, device=like.device)
    first = torch.zeros(g, 1, most, dtype=like.dtype, device=like.device)
    first[:, 0, 0] = root[:, 0]
    amplitudes = [one[None, :, None] * first]  # per family, the amplitudes (g, k, most) of its candidates
    blocks = counts_to_try(most)[1:]
    if blocks:
        inside = torch.arange(most, device=like.device)[None, :] < torch.tensor(blocks, device=like.device)[:, None]
        amplitudes += [a * root[:, None, :] * inside for a in BLOCK_SCALES]
    pick = lambda x: lambda sel, pos: planted(sel, x[sel[:, None], pos])  # noqa: E731
    if sum(x.shape[1] for x in amplitudes) * problem.P <= CHUNK:  # small: one family, evaluated whole
        every = torch.cat(amplitudes, dim=1)
        return [Family(m.rows, every.shape[1], pick(every), ordered=False)]
    return [Family(m.rows, x.shape[1], pick(x), ordered=k > 0) for k, x in enumerate(amplitudes)]


class _Screen:
    """The lowest (P) found so far for every problem, and its candidate; candidates are evaluated in batches of
    about :data:`CHUNK` parameters (:meth:`queue`, :meth:`flush`) or at once (:meth:`values`)."""

    def __init__(self, problem):
        self.problem, self.best = problem, {}
        self.per = max(1, CHUNK // problem.P)  # candidates per batch
        self.pending: list[tuple[list[int], torch.Tensor]] = []  # (owners, their candidates (a, k, P))
        self.held = 0

    def _objective(self, pieces: list[tuple[list[int], torch.Tensor]]) -> list[torch.Tensor]:
        """(P) of the candidates (a, k, P) of each ``(owners, candidates)`` of ``pieces`` in one evaluation, as (a, k)
        each; inf where it is not finite."""
        P = self.problem.P
        flat = torch.cat([c.reshape(-1, P) for _, c in pieces])
        rows = torch.tensor([i for o, c in pieces for i in o for _ in range(c.shape[1])], device=flat.device)
        with torch.no_grad():
            f = torch.nan_to_num(self.problem(flat, rows), nan=math.inf)
        return [part.reshape(c.shape[:2]) for (_, c), part in zip(pieces, f.split([c.shape[0] * c.shape[1] for _, c in pieces]))]

    def values(self, owners: list[int], cands: torch.Tensor) -> torch.Tensor:
        """(P) of the candidates (a, k, P) of ``owners`` now, shape (a, k); each owner's best is offered."""
        (f,) = self._objective([(owners, cands)])
        self.offer(owners, f, cands)
        return f

    def offer(self, owners: list[int], f: torch.Tensor, cands: torch.Tensor) -> None:
        """Keep each owner's lowest value of ``f`` (a, k) and its candidate of ``cands`` (a, k, P) if it beats its best."""
        k = f.argmin(1)
        for j, (i, v, kj) in enumerate(zip(owners, f.gather(1, k[:, None])[:, 0].tolist(), k.tolist())):
            if v < self.best.get(i, (math.inf,))[0]:
                self.best[i] = (v, cands[j, kj : kj + 1])

    def queue(self, owners: list[int], cands: torch.Tensor) -> None:
        """Evaluate the candidates (a, k, P) of ``owners`` with the next batch."""
        if self.pending and self.held + cands.shape[0] * cands.shape[1] > self.per:
            self.flush()
        self.pending.append((owners, cands))
        self.held += cands.shape[0] * cands.shape[1]

    def flush(self) -> None:
        """Evaluate the queued candidates in one batch."""
        if self.pending:
            for (owners, cands), f in zip(self.pending, self._objective(self.pending)):
                self.offer(owners, f, cands)
        self.pending, self.held = [], 0


def _screen_whole(fam: Family, screen: _Screen) -> None:
    """Evaluate every candidate of ``fam``, as many owners per batch as fit."""
    a = max(1, screen.per // fam.size)  # owners per build
    for lo in range(0, len(fam.owners), a):
        sel = torch.arange(lo, min(lo + a, len(fam.owners)))
        for k in range(0, fam.size, screen.per):
            pos = torch.arange(k, min(k + screen.per, fam.size)).expand(len(sel), -1)
            screen.queue(fam.owners[lo : lo + len(sel)], fam.build(sel, pos))


def _search(fam: Family, screen: _Screen) -> None:
    """Ternary search along an ordered family for each owner (about ``2 log_1.5 size`` evaluations), all owners in lock
    step; every candidate evaluated is offered."""
    a = max(1, screen.per // 3)  # owners per batch
    for first in range(0, len(fam.owners), a):
        owners = np.arange(first, min(first + a, len(fam.owners)))
        lo, hi = np.zeros(len(owners), dtype=np.int64), np.full(len(owners), fam.size - 1)

        def probe(js: np.ndarray, pos: np.ndarray) -> torch.Tensor:
            sel = torch.as_tensor(owners[js])
            return screen.values([fam.owners[j] for j in owners[js]], fam.build(sel, torch.as_tensor(pos)))

        while (act := np.nonzero(hi - lo > 2)[0]).size:
            m1, m2 = lo[act] + (hi[act] - lo[act]) // 3, hi[act] - (hi[act] - lo[act]) // 3
            f = probe(act, np.stack([m1, m2], axis=1))
            left = (f[:, 0] <= f[:, 1]).cpu().numpy()
            hi[act], lo[act] = np.where(left, m2, hi[act]), np.where(left, lo[act], m1)
        probe(np.arange(len(owners)), np.minimum(lo[:, None] + np.arange(3), hi[:, None]))


def best_candidates(problem, families: list[Family]) -> dict[int, tuple[float, torch.Tensor]]:
    """For every problem, the candidate of its families with the lowest (P), and that value.

    Families whose candidates fit in :data:`CHUNK` parameters (and the unordered ones) are
    built whole and evaluated together, for all problems, in batches of about :data:`CHUNK`
    parameters. A long ordered family is searched: along it (P) is unimodal at a critical
    point, where the modes decouple (it falls while the moves help, then rises), and a ternary
    search needs about ``2 log_1.5`` of its length evaluations.
    """
    screen = _Screen(problem)
    for fam in families:
        if fam.ordered and fam.size * problem.P > CHUNK:
            _search(fam, screen)
        else:
            _screen_whole(fam, screen)
    screen.flush()
    return screen.best


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
            if improved:  # some problems moved with the previous move: their modes changed
                at = modes(theta, problem, trying)
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
