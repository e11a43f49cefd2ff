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
``(B, 2m, P)`` buffer, so a direction costs two batched matrix products over the history
plus ``m x m`` triangular solves, instead of the ``4m`` sequential passes of the two-loop
recursion. A backtracking Armijo line search evaluates only the problems still searching,
and problems that converge leave the batch, so the work per iteration follows the problems
that are left.
"""

from __future__ import annotations

from typing import Callable

import torch

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
        differentiated by autograd. A function of one problem may ignore ``rows``.
    theta : torch.Tensor, shape (B, P)
        Starting points (copied).
    history : int, default 10
        Number of curvature pairs ``m`` kept per problem.
    tol : float, default 1e-15
        A problem is converged after three steps in a row whose relative decrease is at most
        ``tol``, when its gradient vanishes, or when its line search finds no decrease.

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

    def __init__(self, fun: Objective, theta: torch.Tensor, *, history: int = 10, tol: float = 1e-15):
        self.fun = fun
        self.m = int(history)
        self.tol = tol
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
        self._hist = torch.zeros(B, 2 * self.m, P, dtype=dt, device=dev)  # slots: s_0..s_{m-1}, y_0..y_{m-1}
        self._SY = torch.zeros(B, self.m, self.m, dtype=dt, device=dev)  # s_i . y_j by slot
        self._YY = torch.zeros(B, self.m, self.m, dtype=dt, device=dev)  # y_i . y_j by slot
        self._gamma = 1.0 / g.norm(dim=1).clamp_min(1.0)
        self._quiet = torch.zeros(B, dtype=torch.long, device=dev)
        self._order: list[int] = []  # slots from oldest to newest pair

    def _evaluate(self, theta: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            f = self.fun(t, rows)
            (g,) = torch.autograd.grad(f.sum(), t)
        return f.detach(), g

    def _direction(self) -> torch.Tensor:
        """``-H_k g`` for every active problem, by the compact form (eq. 7.24 of N&W)."""
        g, gamma = self._g, self._gamma[:, None]
        if not self._order:
            return -gamma * g
        o = torch.tensor(self._order, device=g.device)
        ab = torch.bmm(self._hist, g[:, :, None])[:, :, 0]  # (b, 2m_max): S^T g, Y^T g by slot
        a, bq = ab[:, o], ab[:, self.m + o]
        SY = self._SY[:, o][:, :, o]
        YY = self._YY[:, o][:, :, o]
        D = torch.diagonal(SY, dim1=1, dim2=2)
        # a pair a problem rejected is zero, which leaves its row and column of R empty: put 1 there
        R = torch.triu(SY) + torch.diag_embed((D == 0).to(g.dtype))
        u = torch.linalg.solve_triangular(R, a[:, :, None], upper=True)
        rhs = D[:, :, None] * u + gamma[:, :, None] * (YY @ u - bq[:, :, None])
        top = torch.linalg.solve_triangular(R.transpose(1, 2), rhs, upper=False)
        w = torch.zeros_like(ab)
        w[:, o] = top[:, :, 0]
        w[:, self.m + o] = -gamma * u[:, :, 0]
        return -(gamma * g + torch.bmm(w[:, None, :], self._hist)[:, 0, :])

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
        alpha = torch.ones_like(f)
        new_x, new_f, new_g = x.clone(), f.clone(), g.clone()
        idx = torch.arange(x.shape[0], device=x.device)  # problems still searching
        for _ in range(50):
            trial = x[idx] + alpha[idx, None] * p[idx]
            f_t, g_t = self._evaluate(trial, self._rows[idx])
            ok = torch.isfinite(f_t) & (f_t <= f[idx] + 1e-4 * alpha[idx] * gtp[idx])
            acc = idx[ok]
            new_x[acc], new_f[acc], new_g[acc] = trial[ok], f_t[ok], g_t[ok]
            idx = idx[~ok]
            if idx.numel() == 0:
                break
            alpha[idx] *= 0.5
        failed = torch.zeros_like(self._quiet, dtype=torch.bool)
        failed[idx] = True  # no decrease found: at the limit of floating point
        self._remember(new_x - x, new_g - g)
        decrease = (f - new_f).abs() <= self.tol * new_f.abs().clamp_min(1e-300)
        self._quiet = torch.where(decrease, self._quiet + 1, torch.zeros_like(self._quiet))
        self._x, self._f, self._g = new_x, new_f, new_g
        rows = self._rows
        self.theta[rows], self.f[rows] = new_x, new_f
        self.iterations[rows] += 1
        self.n_iter += 1
        finished = failed | (new_g.abs().amax(1) == 0) | (self._quiet >= 3)
        if bool(finished.any()):
            self.done[rows[finished]] = True
            self._keep(~finished)

    def _remember(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store the pair (s, y) in the oldest slot; a problem with ``s . y <= 0`` stores zeros."""
        sy = (s * y).sum(1)
        valid = sy > 1e-300 * (s * s).sum(1).clamp_min(1e-300)
        s = torch.where(valid[:, None], s, torch.zeros_like(s))
        y = torch.where(valid[:, None], y, torch.zeros_like(y))
        yy = (y * y).sum(1)
        self._gamma = torch.where(valid & (yy > 0), sy / yy.clamp_min(1e-300), self._gamma)
        k = self._order.pop(0) if len(self._order) == self.m else len(self._order)
        self._order.append(k)
        self._hist[:, k], self._hist[:, self.m + k] = s, y
        prods = torch.bmm(self._hist, torch.stack([s, y], dim=2))  # (b, 2m, 2)
        self._SY[:, :, k] = prods[:, : self.m, 1]  # s_i . y_new
        self._SY[:, k, :] = prods[:, self.m :, 0]  # s_new . y_j
        self._YY[:, :, k] = self._YY[:, k, :] = prods[:, self.m :, 1]

    def _keep(self, keep: torch.Tensor) -> None:
        """Drop the finished problems from the active state."""
        for name in ("_rows", "_x", "_f", "_g", "_hist", "_SY", "_YY", "_gamma", "_quiet"):
            setattr(self, name, getattr(self, name)[keep])
