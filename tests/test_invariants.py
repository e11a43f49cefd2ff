"""Invariants of the closed form and of the metrics, as properties over generated problems.

Each invariant is derived in its test's docstring before it is tested.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nclab import data, metrics, phases, theory

FAST = settings(max_examples=25, deadline=None)
counts = st.lists(st.integers(1, 300), min_size=2, max_size=6)
depths = st.sampled_from([1, 2, 3])
log_lams = st.floats(-4.5, -0.5)  # log10 of a strength


def close(a, b, rtol=1e-8):
    """Equal up to round-off relative to the larger of the two (matrices, vectors, scalars)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), 1e-300)
    return bool(np.allclose(a, b, rtol=0, atol=rtol * scale))


@FAST
@given(counts, depths, log_lams, log_lams, st.randoms(use_true_random=False), st.booleans())
def test_permuting_classes_permutes_the_optimum(n, L, lw, lh, rnd, bias):
    """Relabel the classes by a permutation matrix P (counts P n). Then D' = P D P^T and
    I - P n 1^T / N = P (I - n 1^T / N) P^T, so the target becomes T' = P T P^T: the same
    singular values, singular vectors P U and P V. Hence x, s_thr and f* are unchanged, and
    W W^T, M^T M, b are permuted: G' = P G P^T, b' = P b."""
    perm = list(range(len(n)))
    rnd.shuffle(perm)
    g = theory.global_minimizer(n, 10**lw, 10**lh, L=L, bias=bias)
    gp = theory.global_minimizer(np.asarray(n)[perm], 10**lw, 10**lh, L=L, bias=bias)
    assert close(gp.s, g.s) and close(gp.x, g.x) and close(gp.objective, g.objective)
    assert close(gp.W_gram, g.W_gram[np.ix_(perm, perm)]) and close(gp.M_gram, g.M_gram[np.ix_(perm, perm)])
    assert close(gp.b, g.b[perm])
    assert close(theory.critical_lambda(np.asarray(n)[perm], L=L, bias=bias), theory.critical_lambda(n, L=L, bias=bias))


@FAST
@given(counts, depths, log_lams, log_lams, st.sampled_from([2, 3, 7]), st.booleans())
def test_scaling_the_counts_scales_the_optimum(n, L, lw, lh, k, bias):
    """Multiply every count by k: Yhat(k n) = sqrt(k) Yhat(n) (and D likewise), N -> k N.
    Scale every strength by k^(-1/(L+1)): c -> k^(-1/(L+1)) c. Substituting x = sqrt(k) y,
    phi(sqrt(k) y; sqrt(k) s, k N, c') = (y - s)^2/(2N) + (L+1)/2 c y^(2/(L+1)) = phi(y; s, N, c),
    so x' = sqrt(k) x, s_thr' = sqrt(k) s_thr and f*' = f*. Then omega^2 = prod(c/lam_l) x^(2L/(L+1))
    gives W W^T' = k^(L/(L+1)) W W^T, zeta^2 = (c/lam_H) x^(2/(L+1)) with D' = sqrt(k) D gives
    M^T M' = k^(1/(L+1) - 1) M^T M, and b = n/N is unchanged. The critical strengths (common
    lam at which s_i = s_thr) scale as k^(-1/(L+1))."""
    f = k ** (-1 / (L + 1))
    g = theory.global_minimizer(n, 10**lw, 10**lh, L=L, bias=bias)
    h = theory.global_minimizer(k * np.asarray(n), f * 10**lw, f * 10**lh, L=L, bias=bias)
    assume(np.all(np.abs(g.s - g.threshold) > 1e-9 * g.threshold))  # a mode exactly at the jump may go either way
    assert close(h.s, math.sqrt(k) * g.s) and close(h.threshold, math.sqrt(k) * g.threshold)
    assert close(h.x, math.sqrt(k) * g.x, 1e-7) and close(h.objective, g.objective, 1e-7)
    assert close(h.W_gram, k ** (L / (L + 1)) * g.W_gram, 1e-7)
    assert close(h.M_gram, k ** (1 / (L + 1) - 1) * g.M_gram, 1e-7)
    assert close(h.b, g.b)
    assert close(theory.critical_lambda(k * np.asarray(n), L=L, bias=bias), f * theory.critical_lambda(n, L=L, bias=bias))


def _features(n, d, seed):
    rng = np.random.default_rng(seed)
    y = data.labels_from_counts(n)
    H = 2 * rng.standard_normal((d, len(n)))[:, y] + rng.standard_normal((d, y.size))
    return H, y


@FAST
@given(counts, st.integers(1, 6), st.integers(0, 10**6), st.randoms(use_true_random=False))
def test_nc1_ignores_labels_rotations_shifts_and_scale(n, d, seed, rnd):
    """Sigma_W and Sigma_B (every convention) are sums over classes, so renaming classes leaves
    them unchanged; h -> a Q h + t maps both to a^2 Q Sigma Q^T, and
    tr(a^2 Q Sw Q^T (a^2 Q Sb Q^T)^+) = tr(Sw Sb^+): NC1 is invariant. Class means permute
    with the labels."""
    H, y = _features(n, d, seed)
    perm = list(range(len(n)))
    rnd.shuffle(perm)
    relabel = np.asarray(perm)[y]  # class k is called perm[k]
    Q, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((d, d)))
    H2 = 3.5 * Q @ H + np.arange(d)[:, None]
    for conv in metrics.NC1_CONVENTIONS:
        ref = metrics.nc1(H, y, convention=conv)
        assert metrics.nc1(H, relabel, convention=conv) == pytest.approx(ref, rel=1e-8, abs=1e-12)
        assert metrics.nc1(H2, y, convention=conv) == pytest.approx(ref, rel=1e-6, abs=1e-12)
    M = metrics.class_means(H, y)
    assert close(metrics.class_means(H, relabel)[:, perm], M)


@FAST
@given(st.integers(2, 5), st.integers(0, 10**6), st.floats(0.01, 100))
def test_gram_distance_is_a_scale_free_symmetric_distance(K, seed, scale):
    """||A/|A| - B/|B|||: symmetric, unchanged by positive scaling, 0 on equal shapes, at most 2."""
    rng = np.random.default_rng(seed)
    A, B = (X @ X.T for X in rng.standard_normal((2, K, K + 1)))
    dist = metrics.gram_distance(A, B)
    assert dist == pytest.approx(metrics.gram_distance(B, A), abs=1e-14)
    assert dist == pytest.approx(metrics.gram_distance(scale * A, B), abs=1e-12)
    assert metrics.gram_distance(scale * A, A) == pytest.approx(0, abs=1e-12)
    assert 0 <= dist <= 2


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(2, 5), st.integers(2, 3000))
def test_whole_ratios_agree_with_the_definition(K_A, K_B, N):
    """A ratio r qualifies iff some whole n_B >= 1 gives K_A r n_B + K_B n_B = N (the brute
    force over n_B that the divisor search replaces)."""
    assume(N >= K_A + K_B)
    brute = sorted({r for n_B in range(1, N // (K_A + K_B) + 1) for r in [(N - K_B * n_B) / (K_A * n_B)] if r >= 1 and float(r).is_integer()})
    assert phases.whole_ratios(K_A=K_A, K_B=K_B, N=N).tolist() == brute
