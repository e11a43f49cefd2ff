"""The objective (P): collapsed evaluation and the exact features against autograd and perturbations."""

import numpy as np
import pytest
import torch

from nclab.data import labels_from_counts, one_hot
from nclab.objective import collapsed_objective, exact_features, ufm_objective

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
