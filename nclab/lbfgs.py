"""A batched L-BFGS minimiser in PyTorch: B independent problems advance in lock step.

:mod:`torch.optim.LBFGS` spends most of its time in Python bookkeeping on problems as small
as the book's, and it minimises one problem at a time. This minimiser keeps the parameters
of ``B`` problems as one ``(B, P)`` tensor and applies the inverse-Hessian approximation in
its *compact form* (Byrd, Nocedal & Schnabel 1994; Nocedal & Wright 2006, eq. 7.24):

.. math::

    H_k = \\gamma I + [S \\;\\; \\gamma Y]
          \\begin{bmatrix} R^{-T}(D + \\gamma Y^\\top Y) R^{-1} & -R^{-T} \\\\ -R^{-1} & 0 \\end{bmatrix}
          \\begin{bmatrix} S^\\top \\\\ \\gamma Y^\\top \\end{bmatrix},

with ``S, Y`` the last ``m`` steps and gradient changes, ``R`` the upper triangle of
``S^T Y`` and ``D`` its diagonal. The curvature pairs of all problems live in one
``(B, P, 2m)`` buffer, so a direction costs two batched matrix products over the history
plus ``m x m`` triangular solves, instead of the ``4m`` sequential passes of the two-loop
recursion. A backtracking Armijo line search evaluates only the problems still searching,
and problems that converge leave the batch, so the work per iteration follows the problems
that are left.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import _validate

#: Numbers (trial points x parameters) one batched evaluation of the line search may hold.
PROBE = 2**16

__all__ = ["BatchedLBFGS"]

#: ``fun(theta, rows)``: objective values (b,) of the problems ``rows`` (b,) at ``theta`` (b, P).
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class BatchedLBFGS:
    """Minimise ``B`` independent smooth problems, the parameters of each a row of ``theta``.

    Parameters
    ----------
    fun : callable
        ``fun(theta, rows) -> (b,)``: the objectives of problems ``rows`` (a long tensor of
        row indices into the original batch, shape (b,)) at ``theta`` of shape (b, P);
        differentiated by autograd (or, with ``jac=True``, returning the pair ``(f, g)`` with
        the gradient ``g`` of shape (b, P) itself). A function of one problem may ignore ``rows``.
    theta : torch.Tensor, shape (B, P)
        Starting points (copied).
    history : int, default 10
        Number of curvature pairs ``m`` kept per problem (>= 1).
    tol : float, default 1e-15
        A problem is converged after three steps in a row whose relative decrease is at most
        ``tol`` (>= 0), when the decrease that its quasi-Newton step and a steepest-descent step
        predict are both below ``tol`` (relative), when its gradient vanishes, or when its line
        search finds no decrease twice in a row (the second time from steepest descent, its
        curvature memory cleared).
    jac : bool, default False
        ``fun`` returns ``(f, g)``, its values and their gradient (b, P), instead of ``f`` alone.

    Raises
    ------
    TypeError, ValueError
        ``fun`` not callable, ``theta`` not a finite (B, P) float tensor, ``history < 1``,
        ``tol`` negative or not finite, ``jac`` not a bool.

    Attributes
    ----------
    theta : torch.Tensor, shape (B, P)
        Current iterate of every problem.
    f : torch.Tensor, shape (B,)
        Objective at ``theta``.
    done : torch.Tensor of bool, shape (B,)
        Converged problems (frozen).
    iterations : torch.Tensor of long, shape (B,)
        Iterations taken by each problem.
    n_iter : int
        Iterations taken by the batch (the most of any problem).
    """

    def __init__(self, fun: Objective, theta: torch.Tensor, *, history: int = 10, tol: float = 1e-15, jac: bool = False):
        if not callable(fun):
            raise _validate.ArgumentTypeError(f"fun must be a callable fun(theta, rows) -> (b,) objectives; got {type(fun).__name__}")
        if not isinstance(theta, torch.Tensor) or not theta.is_floating_point():
            raise _validate.ArgumentTypeError(f"theta must be a floating-point torch tensor of shape (B, P); got {type(theta).__name__}")
        if theta.ndim != 2 or theta.numel() == 0:
            raise ValueError(f"theta must have shape (B, P) with B, P >= 1 (one row per problem); got shape {tuple(theta.shape)}")
        _validate.finite(theta, "theta")
        self.fun = fun
        self.jac = _validate.boolean(jac, "jac")
        self.m = _validate.whole(history, "history (curvature pairs kept)", 1, 1000)
        self.tol = _validate.nonneg(tol, "tol")
        self.theta = theta.detach().clone()
        B, P = self.theta.shape
        dev, dt = self.theta.device, self.theta.dtype
        self.f, g = self._evaluate(self.theta, torch.arange(B, device=dev))
        self.done = torch.zeros(B, dtype=torch.bool, device=dev)
        self.iterations = torch.zeros(B, dtype=torch.long, device=dev)
        self.n_iter = 0
        # state of the problems still running ("active"), compacted as problems finish
        self._rows = torch.arange(B, device=dev)
        self._x, self._f, self._g = self.theta.clone(), self.f.clone(), g
        # columns by slot: s_0..s_{m-1}, y_0..y_{m-1}; stored (B, P, 2m), not (B, 2m, P), because batched products
        # with a row vector on the left run several times faster there
        self._hist = torch.zeros(B, P, 2 * self.m, dtype=dt, device=dev)
        self._SY = torch.zeros(B, self.m, self.m, dtype=dt, device=dev)  # s_i . y_j by slot
        self._YY = torch.zeros(B, self.m, self.m, dtype=dt, device=dev)  # y_i . y_j by slot
        self._gamma = 1.0 / g.norm(dim=1).clamp_min(1.0)
        self._quiet = torch.zeros(B, dtype=torch.long, device=dev)
        self._fresh = torch.zeros(B, dtype=torch.bool, device=dev)  # memory just cleared after a failed search
        self._refreshed = False  # whether any is
        self._everyone = True  # no problem has finished yet
        self._index: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._order: list[int] = []  # slots from oldest to newest pair

    def _evaluate(self, theta: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.jac:
            f, g = self.fun(theta, rows)
            return f.detach(), g.detach()
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            f = self.fun(t, rows)
            (g,) = torch.autograd.grad(f.sum(), t)
        return f.detach(), g

    def _slots(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Index tensors of the stored pairs from oldest to newest, ``o`` into the m slots and ``o2`` into both halves
        of the history; None while the slots are in order (before the memory wraps around)."""
        order = tuple(self._order)
        if order == tuple(range(len(order))):
            return None, None
        if order not in self._index:
            o = torch.tensor(order, device=self.theta.device)
            self._index[order] = (o, torch.cat([o, o + self.m]))
        return self._index[order]

    def _direction(self) -> torch.Tensor:
        """``-H_k g`` for every active problem, by the compact form (eq. 7.24 of N&W)."""
        g, gamma = self._g, self._gamma[:, None]
        k = len(self._order)
        if not k:
            return -gamma * g
        o, o2 = self._slots()
        ab = torch.bmm(g[:, None, :], self._hist)[:, 0, :]  # (b, 2m): S^T g, Y^T g by slot
        if o is None:  # slots 0..k-1 in order: views
            a, bq, SY, YY = ab[:, :k], ab[:, self.m : self.m + k], self._SY[:, :k, :k], self._YY[:, :k, :k]
        else:
            a, bq = ab.index_select(1, o2).split(k, dim=1)
            SY = self._SY.index_select(1, o).index_select(2, o)
            YY = self._YY.index_select(1, o).index_select(2, o)
        D = torch.diagonal(SY, dim1=1, dim2=2)
        # a pair a problem rejected is zero, which leaves its row and column of R empty: put 1 there
        R = torch.triu(SY) + torch.diag_embed((D == 0).to(g.dtype))
        u = torch.linalg.solve_triangular(R, a[:, :, None], upper=True)
        rhs = D[:, :, None] * u + gamma[:, :, None] * (YY @ u - bq[:, :, None])
        top = torch.linalg.solve_triangular(R.transpose(1, 2), rhs, upper=False)
        w = torch.zeros_like(ab)  # weights of the stored vectors, by slot
        if o is None:
            w[:, :k], w[:, self.m : self.m + k] = top[:, :, 0], -gamma * u[:, :, 0]
        else:
            w.index_copy_(1, o2, torch.cat([top[:, :, 0], -gamma * u[:, :, 0]], dim=1))
        return -(gamma * g + torch.bmm(self._hist, w[:, :, None])[:, :, 0])

    def step(self) -> None:
        """One L-BFGS iteration for every problem that is not yet converged."""
        if self._rows.numel() == 0:
            return
        x, f, g = self._x, self._f, self._g
        p = self._direction()
        gtp = (g * p).sum(1)
        bad = ~(gtp < 0)  # not a descent direction: fall back to steepest descent
        if bool(bad.any()):
            p = torch.where(bad[:, None], -g, p)
            gtp = torch.where(bad, -(g * g).sum(1), gtp)
        # converged: the decrease that the quasi-Newton model and its scalar start (gamma I)
        # both predict is below the tolerance; a line search there only meets round-off
        tiny = 2 * self.tol * f.abs()
        stationary = (-gtp <= tiny) & (self._gamma * (g * g).sum(1) <= tiny)
        new_x = x + p  # the unit step, accepted by most problems at most iterations
        new_f, new_g = self._evaluate(new_x, self._rows)
        ok = torch.isfinite(new_f) & (new_f <= f + 1e-4 * gtp)
        searching = ~ok & ~stationary
        if bool((stationary & ~ok).any()):  # a converged problem keeps its point
            keep = stationary & ~ok
            new_x[keep], new_f[keep], new_g[keep] = x[keep], f[keep], g[keep]
        failed = None
        if bool(searching.any()):
            idx = self._backtrack(searching.nonzero().flatten(), x, f, gtp, p, new_x, new_f, new_g)
            if idx.numel():
                failed = torch.zeros_like(searching)
                failed[idx] = True  # no decrease found along p
        if failed is not None or self._refreshed:
            # a stale curvature memory can point nearly across the gradient: forget it and try
            # again from steepest descent; a problem that fails from a fresh memory is at the
            # limit of floating point
            failed = torch.zeros_like(searching) if failed is None else failed
            retry = failed & ~self._fresh
            self._fresh = retry
            self._refreshed = bool(retry.any())
            if self._refreshed:
                self._hist[retry], self._SY[retry], self._YY[retry] = 0.0, 0.0, 0.0
                failed = failed & ~retry
        self._remember(new_x - x, new_g - g)
        decrease = (f - new_f).abs() <= self.tol * new_f.abs().clamp_min(1e-300)
        self._quiet = (self._quiet + 1) * decrease
        self._x, self._f, self._g = new_x, new_f, new_g
        if self._everyone:  # no problem has finished: the state is the batch's
            self.theta, self.f = new_x, new_f
            self.iterations += 1
        else:
            rows = self._rows
            self.theta[rows], self.f[rows] = new_x, new_f
            self.iterations[rows] += 1
        self.n_iter += 1
        finished = (self._quiet >= 3) | (new_g.abs().amax(1) == 0) | stationary
        if failed is not None:
            finished = finished | failed
        if bool(finished.any()):
            self._finish(finished)

    def _backtrack(self, idx: torch.Tensor, x: torch.Tensor, f: torch.Tensor, gtp: torch.Tensor, p: torch.Tensor,
                   new_x: torch.Tensor, new_f: torch.Tensor, new_g: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Armijo backtracking ``alpha = 1/2, 1/4, ...`` (49 halvings at most) for the active problems ``idx``,
        writing the accepted points into ``new_x, new_f, new_g`` (the old point where none is found);
        returns the problems that found no decrease.

        Several halvings are tried in one batched evaluation while they fit in :data:`PROBE`
        numbers: on small problems the cost of an evaluation is its overhead, not its arithmetic.
        The first accepted step of the sequence is kept, as a one-at-a-time search would keep it.
        """
        P, halvings = x.shape[1], 1
        while idx.numel() and halvings <= 49:
            width = max(1, min(8, 50 - halvings, PROBE // (idx.numel() * P)))
            alphas = 0.5 ** torch.arange(halvings, halvings + width, dtype=x.dtype, device=x.device)  # exact powers of two
            trial = x[idx, None, :] + alphas[None, :, None] * p[idx, None, :]  # (s, width, P)
            f_t, g_t = self._evaluate(trial.reshape(-1, P), self._rows[idx].repeat_interleave(width))
            f_t = f_t.reshape(-1, width)
            ok = torch.isfinite(f_t) & (f_t <= f[idx, None] + 1e-4 * alphas[None, :] * gtp[idx, None])
            found = ok.any(1)
            first = ok.to(torch.int8).argmax(1)[found]  # the largest accepted step
            acc = idx[found]
            new_x[acc], new_f[acc] = trial[found, first], f_t[found, first]
            new_g[acc] = g_t.reshape(-1, width, P)[found, first]
            idx, halvings = idx[~found], halvings + width
        if idx.numel():  # no decrease found: these keep their point
            new_x[idx], new_f[idx], new_g[idx] = x[idx], f[idx], self._g[idx]
        return idx

    def _finish(self, finished: torch.Tensor) -> None:
        """Mark the active problems ``finished`` (a mask over them) done and drop them from the active state."""
        if self._everyone:  # from here on theta and f are written row by row, so they must not share the state's memory
            self.theta, self.f, self._everyone = self.theta.clone(), self.f.clone(), False
        self.done[self._rows[finished]] = True
        self._keep(~finished)

    def stop(self, rows: torch.Tensor) -> None:
        """Freeze the problems ``rows`` (indices into the batch, shape (b,)) where they are: they count as done."""
        self._finish(torch.isin(self._rows, rows))

    def _remember(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store the pair (s, y) in the oldest slot; a problem with ``s . y <= 0`` stores zeros."""
        pair = torch.stack([s, y], dim=2)  # (b, P, 2)
        gram = torch.bmm(pair.transpose(1, 2), pair)  # s.s, s.y / y.s, y.y
        ss, sy, yy = gram[:, 0, 0], gram[:, 0, 1], gram[:, 1, 1]
        valid = sy > 1e-300 * ss.clamp_min(1e-300)
        if not bool(valid.all()):
            pair, yy = pair * valid[:, None, None], yy * valid
        self._gamma = torch.where(valid & (yy > 0), sy / yy.clamp_min(1e-300), self._gamma)
        k = self._order.pop(0) if len(self._order) == self.m else len(self._order)
        self._order.append(k)
        self._hist[:, :, k], self._hist[:, :, self.m + k] = pair[:, :, 0], pair[:, :, 1]
        prods = torch.bmm(pair.transpose(1, 2).contiguous(), self._hist)  # (b, 2, 2m): s_new, y_new . every slot
        self._SY[:, :, k] = prods[:, 1, : self.m]  # s_i . y_new
        self._SY[:, k, :] = prods[:, 0, self.m :]  # s_new . y_j
        self._YY[:, :, k] = self._YY[:, k, :] = prods[:, 1, self.m :]

    def _keep(self, keep: torch.Tensor) -> None:
        """Drop the finished problems from the active state."""
        keep = keep.nonzero().flatten()  # once, rather than once per tensor by boolean indexing
        for name in ("_rows", "_x", "_f", "_g", "_hist", "_SY", "_YY", "_gamma", "_quiet", "_fresh"):
            setattr(self, name, getattr(self, name).index_select(0, keep))
