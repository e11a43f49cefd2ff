"""A batched L-BFGS minimiser in PyTorch: B independent problems advance in lock step.

:mod:`torch.optim.LBFGS` spends most of its time in Python bookkeeping on problems as small
as the book's, and it minimises one problem at a time. This minimiser keeps the parameters
of ``B`` problems as one ``(B, P)`` tensor, so the two-loop recursion (Nocedal & Wright 2006,
Algorithm 7.4) and the backtracking Armijo line search are a handful of batched tensor
operations, on CPU or GPU. Problems that have converged are frozen while the others go on.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["BatchedLBFGS"]


class BatchedLBFGS:
    """Minimise ``fun(theta) -> (B,)`` over ``theta`` of shape (B, P), each row on its own.

    Parameters
    ----------
    fun : callable
        Maps a (B, P) tensor to the (B,) objective values; differentiated by autograd.
    theta : torch.Tensor, shape (B, P)
        Starting point (copied).
    history : int, default 10
        Number of curvature pairs kept.
    tol : float, default 1e-15
        A problem is converged after three steps in a row whose relative decrease is at most
        ``tol``, when its gradient vanishes, or when its line search finds no decrease.

    Attributes
    ----------
    theta : torch.Tensor, shape (B, P)
        Current iterate.
    f : torch.Tensor, shape (B,)
        Objective at ``theta``.
    done : torch.Tensor of bool, shape (B,)
        Converged problems.
    n_iter : int
        Iterations taken.
    """

    def __init__(self, fun: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *, history: int = 10, tol: float = 1e-15):
        self.fun = fun
        self.history = history
        self.tol = tol
        self.theta = theta.detach().clone()
        self.f, self.g = self._evaluate(self.theta)
        B = self.theta.shape[0]
        self.done = torch.zeros(B, dtype=torch.bool, device=self.theta.device)
        self._quiet = torch.zeros(B, dtype=torch.long, device=self.theta.device)
        self._s: list[torch.Tensor] = []
        self._y: list[torch.Tensor] = []
        self._rho: list[torch.Tensor] = []
        self.n_iter = 0

    def _evaluate(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            f = self.fun(t)
            (g,) = torch.autograd.grad(f.sum(), t)
        return f.detach(), g

    def _direction(self) -> torch.Tensor:
        q = self.g.clone()
        alphas = []
        for s, y, rho in zip(reversed(self._s), reversed(self._y), reversed(self._rho)):
            a = rho * (s * q).sum(1)
            q -= a[:, None] * y
            alphas.append(a)
        if self._s:
            s, y = self._s[-1], self._y[-1]
            yy = (y * y).sum(1)
            gamma = torch.where(yy > 0, (s * y).sum(1) / yy.clamp_min(1e-300), torch.ones_like(yy))
        else:
            gamma = 1.0 / self.g.norm(dim=1).clamp_min(1.0)
        r = q * gamma[:, None]
        for s, y, rho, a in zip(self._s, self._y, self._rho, reversed(alphas)):
            beta = rho * (y * r).sum(1)
            r += s * (a - beta)[:, None]
        return -r

    def step(self) -> None:
        """One L-BFGS iteration for every problem that is not yet converged."""
        if bool(self.done.all()):
            return
        p = self._direction()
        gtp = (self.g * p).sum(1)
        bad = gtp >= 0  # not a descent direction: fall back to steepest descent
        if bool(bad.any()):
            p[bad] = -self.g[bad]
            gtp = torch.where(bad, -(self.g * self.g).sum(1), gtp)
        alpha = torch.ones_like(self.f)
        pending = ~self.done
        new_theta, new_f, new_g = self.theta.clone(), self.f.clone(), self.g.clone()
        for _ in range(50):
            trial = self.theta + alpha[:, None] * p
            f_t, g_t = self._evaluate(trial)
            ok = pending & torch.isfinite(f_t) & (f_t <= self.f + 1e-4 * alpha * gtp)
            new_theta[ok], new_f[ok], new_g[ok] = trial[ok], f_t[ok], g_t[ok]
            pending &= ~ok
            if not bool(pending.any()):
                break
            alpha = torch.where(pending, alpha * 0.5, alpha)
        failed = pending  # no decrease found: at the limit of floating point
        s = new_theta - self.theta
        y = new_g - self.g
        sy = (s * y).sum(1)
        rho = torch.where(sy > 1e-300, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
        self._s.append(s)
        self._y.append(y)
        self._rho.append(rho)
        if len(self._s) > self.history:
            self._s.pop(0), self._y.pop(0), self._rho.pop(0)
        decrease = (self.f - new_f).abs() <= self.tol * new_f.abs().clamp_min(1e-300)
        self._quiet = torch.where(decrease, self._quiet + 1, torch.zeros_like(self._quiet))
        self.theta, self.f, self.g = new_theta, new_f, new_g
        vanished = self.g.abs().amax(1) == 0
        self.done |= failed | vanished | (self._quiet >= 3)
        self.n_iter += 1
