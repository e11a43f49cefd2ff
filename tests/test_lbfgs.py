"""The batched L-BFGS: compact form against the BFGS recursion, batches against single runs."""

import numpy as np
import pytest
import torch

from nclab.lbfgs import BatchedLBFGS


def quadratics(B, P, seed=0):
    """B convex quadratics 0.5 x^T A_i x - c_i^T x with condition numbers from 10 to 1e3."""
    rng = np.random.default_rng(seed)
    A, c = [], []
    for i in range(B):
        Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
        A.append(Q @ np.diag(np.geomspace(1, 10 ** (1 + 2 * i / max(B - 1, 1)), P)) @ Q.T)
        c.append(rng.standard_normal(P))
    A, c = torch.tensor(np.array(A)), torch.tensor(np.array(c))

    def fun(theta, rows):
        return 0.5 * torch.einsum("bp,bpq,bq->b", theta, A[rows], theta) - (c[rows] * theta).sum(1)

    return fun, A, c


def test_compact_direction_equals_the_bfgs_recursion():
    """-H_k g from eq. 7.24 equals m BFGS updates of gamma I applied one by one (N&W eq. 6.17)."""
    fun, A, c = quadratics(3, 12)
    solver = BatchedLBFGS(fun, torch.zeros(3, 12, dtype=torch.float64), history=4)
    for _ in range(7):  # more steps than pairs: the ring buffer has wrapped
        solver.step()
    assert not bool(solver.done.any())
    p = solver._direction()
    for b in range(3):
        pairs = [(solver._hist[b, :, k], solver._hist[b, :, solver.m + k]) for k in solver._order]
        s, y = pairs[-1]
        H = (s @ y) / (y @ y) * torch.eye(12, dtype=torch.float64)
        for s, y in pairs:
            rho = 1 / (s @ y)
            V = torch.eye(12, dtype=torch.float64) - rho * torch.outer(y, s)
            H = V.T @ H @ V + rho * torch.outer(s, s)
        torch.testing.assert_close(p[b], -H @ solver._g[b], rtol=1e-9, atol=1e-12)


def test_batched_problems_reach_their_own_minimisers_and_leave_the_batch():
    fun, A, c = quadratics(6, 20)
    solver = BatchedLBFGS(fun, torch.zeros(6, 20, dtype=torch.float64))
    while not bool(solver.done.all()) and solver.n_iter < 1000:
        solver.step()
    assert bool(solver.done.all())
    x_star = torch.linalg.solve(A, c)
    f_star = fun(x_star, torch.arange(6))
    assert torch.all(solver.f - f_star <= 1e-13 * f_star.abs())  # f is flat at x*: x is good to sqrt(eps)
    torch.testing.assert_close(solver.theta, x_star, rtol=1e-5, atol=1e-6)
    # ill-conditioned problems need more iterations; the batch ran as long as the slowest
    its = solver.iterations
    assert its[-1] > its[0] and solver.n_iter == int(its.max())


def test_a_problem_does_not_depend_on_its_batch():
    fun, A, c = quadratics(5, 10, seed=1)
    start = torch.randn(5, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    together = BatchedLBFGS(fun, start)
    for _ in range(15):
        together.step()
    for b in (0, 3):
        alone = BatchedLBFGS(lambda t, r, b=b: fun(t, torch.full_like(r, b)), start[b : b + 1])
        for _ in range(15):
            alone.step()
        # equal up to the round-off of batched against single matrix products
        torch.testing.assert_close(alone.theta[0], together.theta[b], rtol=1e-9, atol=1e-12)
        assert int(alone.iterations[0]) == int(together.iterations[b])


@pytest.mark.parametrize("history", [1, 3, 10])
def test_rosenbrock_batch_converges(history):
    """A non-convex test function: negative curvature pairs are skipped, not used."""

    def fun(theta, rows):
        x, y = theta[:, 0], theta[:, 1]
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    start = torch.tensor([[-1.2, 1.0], [2.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    solver = BatchedLBFGS(fun, start, history=history)
    while not bool(solver.done.all()) and solver.n_iter < 2000:
        solver.step()
    torch.testing.assert_close(solver.theta, torch.ones(3, 2, dtype=torch.float64), rtol=1e-6, atol=1e-6)


def test_a_gradient_given_by_the_function_equals_autograd():
    fun, A, c = quadratics(4, 12, seed=2)

    def with_grad(theta, rows):
        return fun(theta, rows), torch.einsum("bpq,bq->bp", A[rows], theta) - c[rows]

    start = torch.randn(4, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    auto, jac = BatchedLBFGS(fun, start), BatchedLBFGS(with_grad, start, jac=True)
    for _ in range(12):
        auto.step()
        jac.step()
    torch.testing.assert_close(jac.theta, auto.theta, rtol=1e-9, atol=1e-12)


def test_stopped_problems_freeze_and_the_others_run_on():
    fun, A, c = quadratics(3, 10, seed=3)
    solver = BatchedLBFGS(fun, torch.zeros(3, 10, dtype=torch.float64))
    for _ in range(3):
        solver.step()
    frozen = solver.theta[1].clone()
    solver.stop(torch.tensor([1]))
    assert solver.done.tolist() == [False, True, False]
    for _ in range(5):
        solver.step()
    assert torch.equal(solver.theta[1], frozen) and int(solver.iterations[1]) == 3 and int(solver.iterations[0]) == 8
