"""The closed-form theory, each fact checked by an independent route."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from nclab import data, theory
from nclab.objective import product, ufm_objective

counts_strategy = st.lists(st.integers(1, 500), min_size=2, max_size=8)
DEPTHS = [1, 2, 3, 4]


def evaluate(point, g):
    """(P) evaluated directly on an explicit point."""
    Y = data.one_hot(point.labels, g.K)
    return float(ufm_objective(point.layers, point.H, point.b, Y, g.lam_W, g.lam_H))


# ----------------------------------------------------------------- the spectrum of Yhat


def test_useful_numbers_of_the_reference():
    n = [200, 100, 50, 50]
    assert np.allclose(theory.singular_values(n), [11.92, 8.39, 7.07, 0], atol=5e-3)
    assert np.allclose(theory.critical_lambda(n)[:3], [0.0298, 0.0210, 0.0177], atol=5e-5)


def test_target_identities():
    n = np.array([7.0, 3.0, 3.0, 1.0])
    T = theory.target(n)
    N = n.sum()
    assert np.allclose(T @ T.T, np.diag(n) - np.outer(n, n) / N)
    assert np.allclose(np.ones(4) @ T, 0)  # classifier rows sum to zero
    assert np.allclose(T @ np.sqrt(n), 0)
    assert np.array_equal(theory.target(n, bias=False), np.diag(np.sqrt(n)))


@settings(max_examples=60, deadline=None)
@given(counts_strategy)
def test_interlacing(n):
    s = theory.singular_values(n)
    lower, upper = theory.interlacing_bounds(n)
    assert np.all(s >= lower - 1e-9) and np.all(s <= upper + 1e-9)
    assert s[-1] == 0


@settings(max_examples=60, deadline=None)
@given(counts_strategy)
def test_trace_and_pseudo_determinant(n):
    s = theory.singular_values(n)
    assert np.sum(s**2) == pytest.approx(theory.spectrum_trace(n), rel=1e-10)
    assert np.prod(s[:-1] ** 2) == pytest.approx(theory.spectrum_pdet(n), rel=1e-8)


@settings(max_examples=60, deadline=None)
@given(counts_strategy)
def test_secular_equation_matches_svd(n):
    roots = theory.secular_roots(n)
    assert np.allclose(roots, theory.singular_values(n), rtol=1e-9, atol=1e-9)
    # where s^2 is not a count, the secular function vanishes there
    simple = [r for r in roots[:-1] if np.min(np.abs(r**2 - np.asarray(n))) > 1e-6 * max(n)]
    if simple:
        scale = np.sum(np.asarray(n) / np.abs(np.asarray(n) - np.asarray(simple)[:, None] ** 2), axis=1)
        assert np.all(np.abs(theory.secular_function(np.array(simple), n)) <= 1e-7 * scale)


@pytest.mark.parametrize("K_A,n_A,K_B,n_B", [(2, 200, 3, 20), (1, 50, 4, 5), (5, 10, 5, 1), (3, 9, 1, 9)])
def test_two_group_closed_form(K_A, n_A, K_B, n_B):
    assert np.allclose(
        theory.two_group_spectrum(K_A, n_A, K_B, n_B), theory.singular_values(data.step(K_A, n_A, K_B, n_B)), atol=1e-10
    )


# ----------------------------------------------------------------- the scalar problem


@pytest.mark.parametrize("L", DEPTHS)
def test_scalar_minimizer_against_a_dense_grid(L):
    N, c = 100.0, 0.01
    s_thr = theory.threshold(N, c, L)
    grid = np.linspace(0, 3 * s_thr, 300001)
    for s in np.linspace(0.05, 2.5, 23) * s_thr:
        x = theory.scalar_minimizer(s, N, c, L)[0]
        phi = theory.scalar_objective(grid, s, N, c, L)
        assert theory.scalar_objective(x, s, N, c, L) <= phi.min() + 1e-12
        assert abs(x - grid[np.argmin(phi)]) <= 2 * (grid[1] - grid[0]) + 1e-9


def test_soft_threshold_for_one_layer():
    s = np.array([0.0, 0.5, 1.0, 3.0])
    assert np.allclose(theory.scalar_minimizer(s, 10.0, 0.1, 1), [0, 0, 0, 2.0])
    assert theory.threshold(10.0, 0.1, 1) == pytest.approx(1.0)


@pytest.mark.parametrize("L", [2, 3, 4, 6])
def test_jump_at_the_threshold(L):
    N, c = 50.0, 0.02
    s_thr = theory.threshold(N, c, L)
    x_thr = s_thr * (L - 1) / L
    # zero and the nonzero branch tie at s_thr, and the branch there is s_thr (L-1)/L
    assert theory.nonzero_branch(s_thr, N, c, L)[0] == pytest.approx(x_thr, rel=1e-10)
    assert theory.scalar_objective(x_thr, s_thr, N, c, L) == pytest.approx(theory.scalar_objective(0.0, s_thr, N, c, L), rel=1e-10)
    below, above = theory.scalar_minimizer(np.array([s_thr * (1 - 1e-9), s_thr]), N, c, L)
    assert below == 0 and above == pytest.approx(x_thr, rel=1e-8)
    # just below the threshold a positive stationary point exists, but it is only local
    s = s_thr * 0.99
    x_loc = theory.nonzero_branch(s, N, c, L)[0]
    assert x_loc > 0
    assert theory.scalar_objective(x_loc, s, N, c, L) > theory.scalar_objective(0.0, s, N, c, L)
    # far below, there is no positive stationary point at all
    assert np.isnan(theory.nonzero_branch(s_thr * 0.3, N, c, L)[0])


@settings(max_examples=40, deadline=None)
@given(counts_strategy, st.integers(1, 4), st.booleans())
def test_x_is_non_increasing_in_lambda(n, L, bias):
    lams = np.geomspace(1e-5, 1.0, 25)
    xs = np.array([theory.global_minimizer(n, lam, lam, L=L, bias=bias).x for lam in lams])
    assert np.all(np.diff(xs, axis=0) <= 1e-9)


@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize("bias", [True, False])
def test_critical_lambda_separates_alive_from_dead(L, bias):
    n = [200, 100, 50, 50]
    for i, lam_c in enumerate(theory.critical_lambda(n, L=L, bias=bias)):
        if lam_c == 0:
            continue
        assert theory.global_minimizer(n, lam_c * (1 - 1e-6), lam_c * (1 - 1e-6), L=L, bias=bias).x[i] > 0
        assert theory.global_minimizer(n, lam_c * (1 + 1e-6), lam_c * (1 + 1e-6), L=L, bias=bias).x[i] == 0


# ----------------------------------------------------------------- the global minimiser


CASES = [
    # (counts, lam_W, lam_H): nothing cut, some modes cut, everything cut
    ([20, 10, 5, 5], 1e-3, 1e-3),
    ([20, 10, 5, 5], 0.06, 0.05),
    ([30, 30, 30], 0.02, 0.03),
    ([40, 8, 8, 8], 0.04, 0.02),
    ([20, 10, 5, 5], 2.0, 2.0),
]


@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n, lam_W, lam_H", CASES)
def test_construction_attains_the_objective(n, lam_W, lam_H, L, bias):
    lam_Ws = [lam_W * (1 + 0.3 * l) for l in range(L)]  # per-layer strengths differ
    g = theory.global_minimizer(n, lam_Ws, lam_H, L=L, bias=bias)
    point = g.construct(d=6, seed=3)
    assert evaluate(point, g) == pytest.approx(g.objective, rel=1e-10, abs=1e-14)
    W = point.W
    assert np.allclose(W @ W.T, g.W_gram, atol=1e-10)
    assert np.allclose(point.M.T @ point.M, g.M_gram, atol=1e-10)
    assert np.allclose(W @ point.M, g.WM, atol=1e-10)
    # balancedness at a critical point
    lam = g.lam_W
    assert np.allclose(lam[0] * point.layers[0].T @ point.layers[0], g.lam_H * point.H @ point.H.T, atol=1e-10)
    for l in range(L - 1):
        A, B = point.layers[l], point.layers[l + 1]
        assert np.allclose(lam[l + 1] * B.T @ B, lam[l] * A @ A.T, atol=1e-10)
    if bias:
        assert np.allclose(point.b, np.asarray(n) / np.sum(n))
        assert np.allclose(point.M @ np.asarray(n, float), 0, atol=1e-10)  # weighted mean of features is 0


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_perturbations_and_random_points_never_beat_the_optimum(L, bias):
    g = theory.global_minimizer([20, 10, 5, 5], 0.03, 0.02, L=L, bias=bias)
    point = g.construct(d=5, seed=0)
    Y = data.one_hot(point.labels, g.K)
    rng = np.random.default_rng(0)
    for eps in [1e-1, 1e-3, 1e-5]:
        for _ in range(20):
            layers = [W + eps * rng.standard_normal(W.shape) for W in point.layers]
            H = point.H + eps * rng.standard_normal(point.H.shape)
            b = None if point.b is None else point.b + eps * rng.standard_normal(g.K)
            assert ufm_objective(layers, H, b, Y, g.lam_W, g.lam_H) >= g.objective - 1e-13
    for _ in range(50):
        scale = 10 ** rng.uniform(-2, 0.5)
        layers = [scale * rng.standard_normal(W.shape) for W in point.layers]
        H = scale * rng.standard_normal(point.H.shape)
        b = None if point.b is None else rng.standard_normal(g.K)
        assert ufm_objective(layers, H, b, Y, g.lam_W, g.lam_H) >= g.objective


def direct_lbfgs(n, lam_W, lam_H, L, bias, d=5, restarts=4, std=0.8, seed=0):
    """Minimise (P) over (layers, H, b) directly with scipy's L-BFGS; best of a few restarts."""
    K = len(n)
    y = data.labels_from_counts(n)
    Y = torch.tensor(data.one_hot(y, K), dtype=torch.float64)
    shapes = [(d, d)] * (L - 1) + [(K, d), (d, len(y))] + ([(K,)] if bias else [])
    sizes = [int(np.prod(s)) for s in shapes]
    lams = [lam_W] * L

    def unpack(theta):
        parts = torch.split(theta, sizes)
        parts = [p.reshape(s) for p, s in zip(parts, shapes)]
        return parts[:L], parts[L], (parts[L + 1] if bias else None)

    def fun(flat):
        theta = torch.tensor(flat, dtype=torch.float64, requires_grad=True)
        layers, H, b = unpack(theta)
        f = ufm_objective(layers, H, b, Y, lams, lam_H)
        f.backward()
        return f.item(), theta.grad.numpy()

    rng = np.random.default_rng(seed)
    best = np.inf
    for _ in range(restarts):
        theta0 = std * rng.standard_normal(sum(sizes))
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", options=dict(maxiter=20000, ftol=1e-16, gtol=1e-12, maxcor=30))
        best = min(best, res.fun)
    return best


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lam", [0.01, 0.04])
def test_direct_optimisation_reaches_the_closed_form(L, bias, lam):
    n = [20, 10, 5, 5]
    g = theory.global_minimizer(n, lam, lam, L=L, bias=bias)
    best = direct_lbfgs(n, lam, lam, L, bias)
    assert best >= g.objective * (1 - 1e-10)
    assert best == pytest.approx(g.objective, rel=1e-8)


def test_logits_formula_of_the_reference():
    n = np.array([30.0, 12.0, 6.0, 6.0])
    for L in DEPTHS:
        g = theory.global_minimizer(n, 0.01, 0.02, L=L)
        shrink = g.omega**2 / (g.omega**2 + g.N * g.lam_H)
        predicted = (g.U * shrink) @ g.U.T @ (np.eye(4) - np.outer(n, np.ones(4)) / n.sum())
        assert np.allclose(g.WM, predicted, atol=1e-10)


@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize("bias", [True, False])
def test_grams_are_equivariant_under_permuting_classes(L, bias):
    n = np.array([50.0, 20.0, 9.0, 9.0, 3.0])
    perm = np.array([3, 0, 4, 2, 1])
    g = theory.global_minimizer(n, 0.01, 0.02, L=L, bias=bias)
    gp = theory.global_minimizer(n[perm], 0.01, 0.02, L=L, bias=bias)
    assert np.allclose(gp.W_gram, g.W_gram[np.ix_(perm, perm)], atol=1e-10)
    assert np.allclose(gp.M_gram, g.M_gram[np.ix_(perm, perm)], atol=1e-10)
    assert np.allclose(gp.b, g.b[perm])
    assert gp.objective == pytest.approx(g.objective, rel=1e-12)


@pytest.mark.parametrize("L", DEPTHS)
def test_balanced_with_bias_is_a_simplex_etf(L):
    K, n = 5, 30
    g = theory.global_minimizer(data.balanced(K, n), 0.005, 0.005, L=L)
    etf = theory.simplex_etf_gram(K)
    for G in (g.W_gram, g.M_gram):
        assert np.allclose(G / G[0, 0], etf, atol=1e-10)
    assert np.allclose(g.b, 1 / K)
    assert np.allclose(g.s[:-1], np.sqrt(n)) and g.s[-1] == 0


@pytest.mark.parametrize("L", DEPTHS)
def test_balanced_without_bias_is_an_orthogonal_frame(L):
    K, n = 4, 30
    g = theory.global_minimizer(data.balanced(K, n), 0.005, 0.005, L=L, bias=False)
    for G in (g.W_gram, g.M_gram):
        assert np.allclose(G / G[0, 0], theory.orthogonal_frame_gram(K), atol=1e-10)
    assert np.all(g.b == 0)


@pytest.mark.parametrize("L", DEPTHS)
def test_balanced_modes_die_together(L):
    n = data.balanced(4, 25)
    lam_c = theory.critical_lambda(n, L=L)[0]
    assert np.allclose(theory.critical_lambda(n, L=L)[:-1], lam_c)
    assert theory.global_minimizer(n, 1.01 * lam_c, 1.01 * lam_c, L=L).n_active == 0
    assert theory.global_minimizer(n, 0.99 * lam_c, 0.99 * lam_c, L=L).n_active == 3


@pytest.mark.parametrize("L", DEPTHS)
def test_minority_collapse_without_bias(L):
    n = np.array([200.0, 100.0, 50.0, 20.0])
    crit = theory.critical_lambda(n, L=L, bias=False)
    lam = np.sqrt(crit[2] * crit[3])  # between the deaths of classes 3 and 4
    g = theory.global_minimizer(n, lam, lam, L=L, bias=False)
    for G in (g.W_gram, g.M_gram):
        assert np.allclose(G, np.diag(np.diag(G)), atol=1e-12)  # orthogonal, lengths set by n_k
    alive = np.sqrt(n) >= g.threshold
    assert np.array_equal(np.diag(g.W_gram) > 0, alive)
    assert alive.tolist() == [True, True, True, False]


def test_two_group_minority_means_merge_with_bias():
    n = data.step(2, 200, 3, 20)
    s_B = np.sqrt(20)
    lam = 0.5 * (theory.critical_lambda(n)[1] + s_B / n.sum())  # kills the n_B modes only
    g = theory.global_minimizer(n, lam, lam)
    assert g.n_active == 2
    dist = g.mean_distances
    assert np.allclose(dist[2:, 2:], 0, atol=1e-9)  # all minority class means identical
    assert dist[0, 1] > 0 and dist[0, 2] > 0


@pytest.mark.parametrize("L", DEPTHS)
@pytest.mark.parametrize("bias", [True, False])
def test_identities_hold_for_every_depth(L, bias):
    n = np.array([60.0, 25.0, 25.0, 7.0, 3.0])
    g = theory.global_minimizer(n, [0.002 * (l + 1) for l in range(L)], 0.003, L=L, bias=bias)
    assert np.allclose(g.omega * g.zeta, g.x, rtol=1e-12, atol=1e-14)
    assert np.allclose(np.linalg.eigvalsh(g.W_gram)[::-1], np.sort(g.omega**2)[::-1], atol=1e-8)
    sv = np.linalg.svd(g.WM * np.sqrt(n)[None, :], compute_uv=False)
    assert np.allclose(sv, np.sort(g.x)[::-1], atol=1e-8)
    assert np.all((g.x > 0) == (g.s >= g.threshold))


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=[]), "n must have at least"),
        (dict(n=[5]), "n must have at least"),
        (dict(n=[5, 2.5]), "n must contain whole"),
        (dict(n=[5, 0]), "n must contain counts >= 1"),
        (dict(n=[5, -1]), "n must contain counts >= 1"),
        (dict(n=[5, np.nan]), "n must contain finite"),
        (dict(n=[5, np.inf]), "n must contain finite"),
        (dict(lam_W=0.0), "lam_W must be a positive"),
        (dict(lam_W=-1.0), "lam_W must be a positive"),
        (dict(lam_W=np.nan), "lam_W must be a positive"),
        (dict(lam_W=np.inf), "lam_W must be a positive"),
        (dict(lam_H=0.0), "lam_H must be a positive"),
        (dict(lam_H=np.nan), "lam_H must be a positive"),
        (dict(lam_H=np.inf), "lam_H must be a positive"),
        (dict(L=0), "L .* >= 1"),
        (dict(L=1.5), "L .* >= 1"),
        (dict(L=2, lam_W=[0.1, 0.2, 0.3]), "L = 2 values"),
        (dict(L=2, lam_W=[0.1, -0.2]), r"lam_W\[1\]"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, match):
    args = dict(n=[5, 3, 2], lam_W=0.01, lam_H=0.01, L=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        theory.global_minimizer(args["n"], args["lam_W"], args["lam_H"], L=args["L"])


def test_width_too_small_for_the_active_modes():
    g = theory.global_minimizer([20, 10, 5, 5], 1e-3, 1e-3)
    assert g.n_active == 3
    with pytest.raises(ValueError, match="d .* >= 3"):
        g.construct(d=2)
    g.construct(d=3)  # exactly enough


def test_product_order():
    A, B, C = (np.random.default_rng(i).standard_normal((3, 3)) for i in range(3))
    assert np.allclose(product([A, B, C]), C @ B @ A)


def test_all_modes_dead_is_the_origin():
    g = theory.global_minimizer([4, 3, 2], 5.0, 5.0, L=2)
    assert g.n_active == 0
    point = g.construct(d=1)
    assert all(np.all(W == 0) for W in point.layers) and np.all(point.H == 0)
    # f* is then the loss at W = 0, H = 0 with the optimal bias: (1/2N) ||Yhat||^2
    assert g.objective == pytest.approx(theory.spectrum_trace([4, 3, 2]) / (2 * 9))


def test_all_permutations_small():
    # every ordering of a small profile gives the same spectrum
    base = theory.singular_values([9, 4, 1])
    for perm in itertools.permutations([9, 4, 1]):
        assert np.allclose(theory.singular_values(list(perm)), base)
