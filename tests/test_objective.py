"""The objective (P): collapsed evaluation and the exact features against autograd and perturbations."""

import numpy as np
import pytest
import torch

from nclab.data import labels_from_counts, one_hot
from nclab.objective import collapsed_objective, exact_features, projected_objective, projected_value_and_grad, ufm_objective

N_COUNTS = np.array([7.0, 4.0, 2.0])


def layers_for(L, K=3, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((d, d)) for _ in range(L - 1)] + [rng.standard_normal((K, d))]


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_exact_features_are_a_stationary_point_in_H_and_b(L, bias):
    """Independent route: autograd of the full (P) at H = M Y, b vanishes in H and b."""
    layers = [torch.tensor(W, requires_grad=False) for W in layers_for(L)]
    n = torch.tensor(N_COUNTS)
    M, b = exact_features(layers, n, 0.05, bias=bias)
    Y = torch.tensor(one_hot(labels_from_counts(N_COUNTS), 3))
    H = (M @ Y).requires_grad_(True)
    bb = b.clone().requires_grad_(True) if bias else None
    f = ufm_objective(layers, H, bb, Y, [0.1] * L, 0.05)
    grads = torch.autograd.grad(f, [H] + ([bb] if bias else []))
    assert all(float(g.abs().max()) < 1e-14 for g in grads)


@pytest.mark.parametrize("bias", [True, False])
def test_exact_features_minimise_and_collapsed_objective_matches(bias):
    layers = layers_for(2)
    M, b = exact_features(layers, N_COUNTS, 0.05, bias=bias)
    Y = one_hot(labels_from_counts(N_COUNTS), 3)
    f = ufm_objective(layers, M @ Y, b, Y, [0.1, 0.1], 0.05)
    assert collapsed_objective(layers, M, b, N_COUNTS, [0.1, 0.1], 0.05) == pytest.approx(f, rel=1e-13)
    rng = np.random.default_rng(1)
    for _ in range(20):  # (P) is a strictly convex quadratic in (H, b): every move goes up
        H = M @ Y + 1e-2 * rng.standard_normal((5, Y.shape[1]))
        b2 = None if b is None else b + 1e-2 * rng.standard_normal(3)
        assert ufm_objective(layers, H, b2, Y, [0.1, 0.1], 0.05) > f
    if bias:  # the optimal bias is the class frequency vector, and the optimal features are centred
        np.testing.assert_allclose(b, N_COUNTS / N_COUNTS.sum())
        np.testing.assert_allclose(M @ N_COUNTS, 0, atol=1e-13)


def test_batched_exact_features_equal_one_by_one():
    rng = np.random.default_rng(2)
    Ws = rng.standard_normal((4, 3, 5))
    n = np.array([[7.0, 4, 2], [5, 5, 3], [1, 1, 11], [4, 4, 5]])
    lam_H = np.array([0.01, 0.1, 0.05, 1.0])
    M, b = exact_features([torch.tensor(Ws)], torch.tensor(n), torch.tensor(lam_H))
    f = collapsed_objective([torch.tensor(Ws)], M, b, torch.tensor(n), [0.1], torch.tensor(lam_H))
    for i in range(4):
        Mi, bi = exact_features([Ws[i]], n[i], lam_H[i])
        np.testing.assert_allclose(M[i].numpy(), Mi, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b[i].numpy(), bi)
        assert float(f[i]) == pytest.approx(collapsed_objective([Ws[i]], Mi, bi, n[i], [0.1], lam_H[i]), rel=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_projected_objective_is_the_minimum_over_features_and_bias(L, bias):
    """Independent route: the exact features plugged into the collapsed objective (numpy and torch)."""
    layers = layers_for(L)
    M, b = exact_features(layers, N_COUNTS, 0.05, bias=bias)
    f = collapsed_objective(layers, M, b, N_COUNTS, [0.1] * L, 0.05)
    assert projected_objective(layers, N_COUNTS, [0.1] * L, 0.05, bias=bias) == pytest.approx(f, rel=1e-13)
    tl = [torch.tensor(W) for W in layers]
    assert float(projected_objective(tl, torch.tensor(N_COUNTS), [0.1] * L, 0.05, bias=bias)) == pytest.approx(f, rel=1e-13)


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_projected_gradient_equals_autograd_in_a_batch(L, bias):
    rng = np.random.default_rng(L)
    B, K, r = 3, 3, 4
    layers = [torch.tensor(rng.standard_normal((B, r, r))) for _ in range(L - 1)] + [torch.tensor(rng.standard_normal((B, K, r)))]
    n = torch.tensor([[7.0, 4, 2], [5, 5, 3], [1, 1, 11]])
    lam_W = [torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)] * L
    lam_H = torch.tensor([0.05, 0.01, 0.5], dtype=torch.float64)
    leaves = [W.clone().requires_grad_(True) for W in layers]
    f = projected_objective(leaves, n, lam_W, lam_H, bias=bias)
    auto = torch.autograd.grad(f.sum(), leaves)
    value, grads = projected_value_and_grad(layers, n, lam_W, lam_H, bias=bias)
    torch.testing.assert_close(value, f.detach(), rtol=1e-13, atol=0)
    for a, g in zip(auto, grads):
        torch.testing.assert_close(g, a, rtol=1e-10, atol=1e-13)


def test_projected_objective_is_nan_at_a_non_finite_point():
    W = torch.tensor([[float("inf"), 0.0], [0.0, 1.0]], dtype=torch.float64)
    value, _ = projected_value_and_grad([W], torch.tensor([3.0, 2.0]), [0.1], 0.1)
    assert torch.isnan(value) and torch.isnan(projected_objective([W], torch.tensor([3.0, 2.0]), [0.1], 0.1))
