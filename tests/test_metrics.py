"""NC metrics: exact values on hand-built inputs, conventions, streaming."""

import numpy as np
import pytest
import torch

from nclab import data, metrics, theory


def features(n, d=5, noise=0.1, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    y = data.labels_from_counts(n)
    M = rng.standard_normal((d, len(n))) + offset
    H = M[:, y] + noise * rng.standard_normal((d, y.size))
    return H, y


def test_collapsed_features_have_zero_nc1():
    H, y = features([5, 3, 2], noise=0.0)
    assert metrics.nc1(H, y) == pytest.approx(0, abs=1e-20)
    assert metrics.nc1(H, y, weighted=True) == pytest.approx(0, abs=1e-20)


def test_nc1_by_hand():
    # two classes on a line: means -1 and +1, within-class spread 0.1
    H = np.array([[-1.1, -0.9, 0.9, 1.1]])
    y = np.array([0, 0, 1, 1])
    # Sigma_W = 0.01, Sigma_B (unweighted) = 1, NC1 = 0.01 / 2
    assert metrics.nc1(H, y) == pytest.approx(0.005)


def test_total_covariance_decomposes():
    n = [40, 10, 5]
    H, y = features(n, seed=1)
    Sw, Sb_w = metrics.covariances(H, y, weighted=True)
    Sigma_T = np.cov(H, bias=True)
    assert np.allclose(Sigma_T, Sw + Sb_w, atol=1e-12)
    # unweighted convention: around mu_u the total is Sw + Sb_w + (mu_w - mu_u)(mu_w - mu_u)^T
    M = metrics.class_means(H, y)
    mu_u, mu_w = M.mean(1), M @ np.array(n) / sum(n)
    around_u = (H - mu_u[:, None]) @ (H - mu_u[:, None]).T / H.shape[1]
    assert np.allclose(around_u, Sw + Sb_w + np.outer(mu_w - mu_u, mu_w - mu_u), atol=1e-12)
    _, Sb_u = metrics.covariances(H, y)
    assert np.allclose(Sb_u, (M - mu_u[:, None]) @ (M - mu_u[:, None]).T / 3, atol=1e-12)


def test_weighted_and_unweighted_differ_as_predicted():
    # K = 2: Sigma_B^u = (1/4) dd^T, Sigma_B^w = pi_1 pi_2 dd^T with d = m_1 - m_2,
    # so NC1^w / NC1^u = (1/4) / (pi_1 pi_2)
    n = [90, 10]
    H, y = features(n, seed=2)
    ratio = metrics.nc1(H, y, weighted=True) / metrics.nc1(H, y)
    assert ratio == pytest.approx(0.25 / (0.9 * 0.1), rel=1e-10)


def test_streaming_equals_one_shot_in_any_order():
    n = [50, 20, 7, 3]
    H, y = features(n, d=6, seed=3)
    perm = np.random.default_rng(0).permutation(y.size)
    stats = metrics.FeatureStats(4)
    for chunk in np.array_split(perm, 7):
        stats.update(H[:, chunk], y[chunk])
    for weighted in (False, True):
        assert stats.nc1(weighted) == pytest.approx(metrics.nc1(H, y, weighted=weighted), rel=1e-12)
    assert isinstance(stats.means, np.ndarray)  # numpy in, numpy statistics (no torch)
    assert np.allclose(stats.means, metrics.class_means(H, y), atol=1e-14)
    assert np.allclose(stats.counts, n)


def test_streaming_is_accurate_near_collapse():
    # within-class spread 1e-7 on means of size 1e4: E[hh^T] - mm^T would lose every digit
    n = [30, 20, 10]
    H, y = features(n, d=4, noise=1e-7, seed=4, offset=1e4)
    stats = metrics.FeatureStats(3)
    for chunk in np.array_split(np.arange(y.size), 6):
        stats.update(H[:, chunk], y[chunk])
    M = metrics.class_means(H, y)
    centred = H - M[:, y]
    Sw = centred @ centred.T / y.size
    assert np.allclose(stats.within_cov, Sw, rtol=1e-3, atol=1e-25)  # naive: error ~1e-8 >> 1e-14


def test_numpy_and_torch_inputs_agree():
    H, y = features([10, 6, 4], seed=5)
    a = metrics.nc1(H, y)
    b = metrics.nc1(torch.tensor(H, dtype=torch.float32), torch.tensor(y))
    assert a == pytest.approx(b, rel=1e-5)


def test_etf_and_frame_distances_are_zero_on_exact_geometry():
    K = 5
    etf = theory.simplex_etf_gram(K)
    assert metrics.gram_distance(3.0 * etf, etf) == pytest.approx(0, abs=1e-14)
    assert metrics.equinorm(etf) == pytest.approx(0, abs=1e-14)
    assert metrics.equiangularity(etf) == pytest.approx(0, abs=1e-14)
    assert metrics.gram_distance(np.eye(K), etf) > 0.3
    assert metrics.gram_distance(np.zeros((K, K)), np.zeros((K, K))) == 0
    assert metrics.gram_distance(np.zeros((K, K)), etf) == pytest.approx(1)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_metrics_on_the_closed_form_optimum(L):
    n = [40, 20, 10, 10]
    g = theory.global_minimizer(n, 0.002, 0.003, L=L)
    p = g.construct(d=6, seed=0)
    W, M = p.W, p.M
    assert metrics.nc1(p.H, p.labels) == pytest.approx(0, abs=1e-20)
    assert metrics.ncc_agreement(p.H, W, p.b, M) == 1.0
    dist = metrics.distance_to_theory(W, M, p.b, n, 0.002, 0.003, L=L)
    assert max(dist.values()) < 1e-10
    sv = metrics.wmd_singular_values(W, M, n)  # the optimal W M D = U diag(x) V^T
    assert np.allclose(sv, np.sort(g.x)[::-1], atol=1e-10)
    assert np.sum(sv > metrics.alive_tolerance(sum(n))) == g.n_active
    assert np.sum(metrics.wmd_singular_values(1e-9 * W, M, n) > metrics.alive_tolerance(sum(n))) == 0
    al = metrics.mode_alignment(W, M, n)
    active = g.active
    assert np.allclose(al["cos"][active], 1, atol=1e-10)  # claim (4): row i aligns with column i
    assert np.allclose(al["row_norms"][~active], 0, atol=1e-10)
    for G in (al["rows_gram"], al["cols_gram"]):  # claim (3): orthogonal rows / columns
        assert np.allclose(G, np.diag(np.diag(G)), atol=1e-10)
    # the Gram matched against the theory's own prediction is at distance 0; against the ETF not
    assert metrics.gram_distance(M.T @ M, g.M_gram) < 1e-10
    assert metrics.gram_distance(M.T @ M, theory.simplex_etf_gram(4)) > 0.05


def test_self_duality_is_zero_for_a_balanced_optimum():
    g = theory.global_minimizer(data.balanced(4, 10), 0.01, 0.01)
    p = g.construct(d=5, seed=1)
    assert metrics.self_duality(p.W, metrics.centered_means(p.M)) == pytest.approx(0, abs=1e-10)


def test_bad_metric_input():
    H, y = features([4, 3], seed=6)
    with pytest.raises(ValueError, match="one entry per sample"):
        metrics.nc1(H, y[:-1])
    with pytest.raises(ValueError, match="integer"):
        metrics.nc1(H, y.astype(float))
    with pytest.raises(ValueError, match=r"classes \[2\] have no samples"):
        metrics.nc1(H, y, K=3)
    with pytest.raises(ValueError, match=r"\(d, B\) matrix"):
        metrics.FeatureStats(2).update(H[0], y)
    with pytest.raises(ValueError, match="counts are required"):
        metrics.centered_means(H[:, :2], weighted=True)
    with pytest.raises(ValueError, match="zero"):
        metrics.equiangularity(np.diag([1.0, 0.0, 1.0]))


# ----------------------------------------------------------------- conventions (module table)

# one-dimensional features, class 0 = {-1.1, -0.9}, class 1 = {0.9, 1.0, 1.1}: m_0 = -1, m_1 = 1,
# Sigma_W = (4 * 0.01) / 5 = 0.008; the sample mean is 0.2.
H_HAND = np.array([[-1.1, -0.9, 0.9, 1.0, 1.1]])
Y_HAND = np.array([0, 0, 1, 1, 1])
NC1_HAND = {
    # mu_G = 0, Sigma_B = (1 + 1) / 2 = 1: NC1 = 0.008 / 1 / 2
    "unweighted": 0.004,
    # mu_G = 0.2, Sigma_B = 2/5 * 1.2^2 + 3/5 * 0.8^2 = 0.96
    "weighted": 0.008 / 0.96 / 2,
    # mu_G = 0.2, Sigma_B = (1.2^2 + 0.8^2) / 2 = 1.04
    "sample_mean": 0.008 / 1.04 / 2,
}


@pytest.mark.parametrize("convention", metrics.NC1_CONVENTIONS)
def test_nc1_conventions_by_hand(convention):
    assert metrics.nc1(H_HAND, Y_HAND, convention=convention) == pytest.approx(NC1_HAND[convention], rel=1e-12)
    torch_value = metrics.nc1(torch.tensor(H_HAND), torch.tensor(Y_HAND), convention=convention)
    assert torch_value == pytest.approx(NC1_HAND[convention], rel=1e-12)


def _nc1_direct(H, y, convention):
    """NC1 from its definition, with loops and numpy's pinv (an independent route)."""
    K, N = int(y.max()) + 1, y.size
    means = np.stack([H[:, y == k].mean(1) for k in range(K)], axis=1)
    n = np.bincount(y).astype(float)
    Sw = sum(np.outer(H[:, i] - means[:, y[i]], H[:, i] - means[:, y[i]]) for i in range(N)) / N
    mu = means.mean(1) if convention == "unweighted" else H.mean(1)
    w = n / N if convention == "weighted" else np.full(K, 1 / K)
    Sb = sum(w[k] * np.outer(means[:, k] - mu, means[:, k] - mu) for k in range(K))
    return np.trace(Sw @ np.linalg.pinv(Sb)) / K


@pytest.mark.parametrize("convention", metrics.NC1_CONVENTIONS)
def test_nc1_conventions_match_their_definitions(convention):
    H, y = features([30, 9, 4, 2], d=6, noise=0.4, seed=7, offset=2.0)
    assert metrics.nc1(H, y, convention=convention) == pytest.approx(_nc1_direct(H, y, convention), rel=1e-9)
    stats = metrics.FeatureStats(4)
    for chunk in np.array_split(np.arange(y.size), 5):
        stats.update(H[:, chunk], y[chunk])
    assert stats.nc1(convention=convention) == pytest.approx(_nc1_direct(H, y, convention), rel=1e-9)


def test_weighted_keyword_is_the_weighted_convention():
    H, y = features([12, 5, 3], seed=8)
    assert metrics.nc1(H, y, weighted=True) == metrics.nc1(H, y, convention="weighted")
    assert metrics.nc1(H, y, weighted=False) == metrics.nc1(H, y) == metrics.nc1(H, y, convention="unweighted")
    assert metrics.FeatureStats(3).update(H, y).nc1(True) == metrics.nc1(H, y, convention="weighted")
    with pytest.raises(ValueError, match="contradicts"):
        metrics.nc1(H, y, convention="sample_mean", weighted=True)


def test_nc1_without_between_class_spread():
    H = np.array([[0.0, 1.0, 0.0, 1.0]])  # both class means are 0.5
    assert metrics.nc1(H, np.array([0, 0, 1, 1])) == np.inf
    assert metrics.nc1(np.zeros((2, 4)), np.array([0, 0, 1, 1])) == 0.0


def test_ncc_agreement_with_and_without_the_bias():
    M = np.array([[1.0, -1.0], [0.0, 0.0]])  # class means at (1, 0) and (-1, 0)
    W = np.array([[1.0, 0.0], [-1.0, 0.0]])
    b = np.array([0.0, 5.0])  # pushes every decision to class 1
    H = M.copy()  # one sample at each mean
    assert metrics.ncc_agreement(H, W, b, M) == 0.5
    assert metrics.ncc_agreement(H, W, b, M, include_bias=False) == 1.0
    assert metrics.ncc_agreement(H, W, None, M) == 1.0


def test_nc3_centres_by_the_weighted_mean_with_a_bias_and_not_without():
    # with a bias the optimum has M n = 0, so the rule leaves its means unchanged
    g = theory.global_minimizer([40, 20, 10, 10], 0.002, 0.003)
    p = g.construct(d=6, seed=0)
    assert np.allclose(metrics.ufm_centered_means(p.M, g.n), p.M, atol=1e-14)
    shifted = p.M + np.arange(6)[:, None]  # a common shift, which the bias absorbs
    assert metrics.nc3(p.W, shifted, g.n) == pytest.approx(metrics.self_duality(p.W, p.M), abs=1e-12)
    # without a bias the balanced optimum is an orthogonal frame with W proportional to M^T:
    # NC3 = 0 with the means as they are, not after centring them
    g0 = theory.global_minimizer(data.balanced(4, 10), 0.01, 0.01, bias=False)
    p0 = g0.construct(d=5, seed=1)
    assert metrics.nc3(p0.W, p0.M, g0.n, bias=False) == pytest.approx(0, abs=1e-12)
    assert metrics.self_duality(p0.W, metrics.centered_means(p0.M)) > 0.3


def test_distance_to_theory_warns_when_d_is_below_the_surviving_modes():
    g = theory.global_minimizer([40, 20, 10, 10], 0.002, 0.003)
    p = g.construct(d=6, seed=0)
    with pytest.warns(UserWarning, match="smaller than the 3 modes"):
        metrics.distance_to_theory(p.W[:, :2], p.M[:2], p.b, g.n, 0.002, 0.003)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_feature_stats_stay_on_the_gpu():
    H, y = features([20, 7, 3], d=5, seed=9)
    stats = metrics.FeatureStats(3)
    for chunk in np.array_split(np.arange(y.size), 3):
        stats.update(torch.tensor(H[:, chunk], device="cuda"), torch.tensor(y[chunk], device="cuda"))
    assert stats.means.device.type == "cuda"
    for convention in metrics.NC1_CONVENTIONS:
        assert stats.nc1(convention=convention) == pytest.approx(metrics.nc1(H, y, convention=convention), rel=1e-10)


def test_feature_stats_keep_torch_statistics_for_torch_batches():
    H, y = features([20, 7, 3], d=5, seed=9)
    stats = metrics.FeatureStats(3).update(torch.tensor(H[:, :15]), torch.tensor(y[:15])).update(H[:, 15:], y[15:])
    assert isinstance(stats.means, torch.Tensor) and stats.means.dtype == torch.float64
    assert np.allclose(stats.means.numpy(), metrics.class_means(H, y), atol=1e-14)
