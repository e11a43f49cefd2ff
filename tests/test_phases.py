"""Tests of nclab.phases: the theory's phase map against independent routes, and trained grids."""

import dataclasses
import doctest

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nclab import data, phases, plots, theory  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _crit_from_two_group(K_A, n_A, K_B, n_B, L, bias):
    """Critical strengths from the closed-form spectrum (with bias) or from sqrt(n) (without)."""
    N = K_A * n_A + K_B * n_B
    s = theory.two_group_spectrum(K_A, n_A, K_B, n_B) if bias else np.sqrt(np.sort(data.step(K_A, n_A, K_B, n_B))[::-1])
    factor = (L - 1) ** ((L - 1) / (2 * L)) / L if L > 1 else 1.0
    return (s * factor) ** (2 * L / (L + 1)) / N


def test_doctests():
    assert doctest.testmod(phases).failed == 0


def test_counts_and_whole_ratios():
    n = phases.two_group_counts(2.5, K_A=2, K_B=3, N=100)
    assert np.isclose(n.sum(), 100) and np.isclose(n[0] / n[-1], 2.5) and n.size == 5
    ratios = phases.whole_ratios(K_A=2, K_B=2, N=120)
    assert ratios.tolist() == [1, 2, 3, 4, 5, 9, 11, 14, 19, 29, 59]
    for r in ratios:
        counts = phases.two_group_counts(r, K_A=2, K_B=2, N=120)
        assert np.allclose(counts, np.round(counts))
    brute = sorted({a // b for a in range(1, 50) for b in range(1, a + 1) if 3 * a + 2 * b == 50 and a % b == 0})
    assert phases.whole_ratios(K_A=3, K_B=2, N=50).tolist() == brute == [1, 16]
    assert phases.whole_ratios(K_A=3, K_B=2, N=50, max_ratio=4).tolist() == [1]


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_critical_lambdas_match_two_group_closed_form(L, bias):
    ratios = [1, 2, 3, 5, 9]
    crit = phases.critical_lambdas(ratios, K_A=2, K_B=2, N=120, L=L, bias=bias)
    for r, row in zip(ratios, crit):
        n_B = 120 // (2 * r + 2)
        expected = _crit_from_two_group(2, r * n_B, 2, n_B, L, bias)
        np.testing.assert_allclose(np.sort(row), np.sort(expected), rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(row, theory.critical_lambda(data.step(2, r * n_B, 2, n_B), L=L, bias=bias), rtol=1e-5)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_scaling_law_not_proportions_alone(L):
    n = np.array([45.0, 45.0, 15.0, 15.0])
    for bias in (True, False):
        base = theory.critical_lambda(n, L=L, bias=bias)
        for k in (2, 5, 10):
            scaled = theory.critical_lambda(k * n, L=L, bias=bias)
            np.testing.assert_allclose(scaled, base * k ** (-1 / (L + 1)), rtol=1e-12, atol=1e-15)
            assert not np.allclose(scaled, base)  # same proportions, different critical strengths
    # the map follows the law in N: the same ratio at 10 N has critical strengths 10^(-1/(L+1)) lower
    a = phases.critical_lambdas([3.7], K_A=2, K_B=2, N=120, L=L)
    b = phases.critical_lambdas([3.7], K_A=2, K_B=2, N=1200, L=L)
    np.testing.assert_allclose(b, a * 10 ** (-1 / (L + 1)), rtol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_map_against_global_minimizer(L, bias):
    ratios = [1, 2, 3, 4, 5, 9, 14]
    lambdas = np.geomspace(1e-3, 0.3, 23)
    m = phases.phase_map(ratios, lambdas, K_A=2, K_B=2, N=120, L=L, bias=bias)
    assert m.modes.shape == m.label.shape == (7, 23)
    for i, r in enumerate(ratios):
        n_B = 120 // (2 * r + 2)
        n = data.step(2, r * n_B, 2, n_B)
        crit = theory.critical_lambda(n, L=L, bias=bias)
        minority_mode = np.argmin(np.where(crit > 0, crit, np.inf))  # the weakest mode: s = sqrt(n_B)
        for j, lam in enumerate(lambdas):
            if np.min(np.abs(lam / crit[crit > 0] - 1)) < 1e-4:
                continue  # on a boundary: both sides are right
            g = theory.global_minimizer(n, lam, lam, L=L, bias=bias)
            assert m.modes[i, j] == g.n_active
            if g.n_active == 0:
                assert m.label[i, j] == phases.TOTAL
            elif r > 1 and lam > crit[minority_mode]:
                assert m.label[i, j] == phases.MINORITY
                assert np.max(g.mean_distances[2:, 2:]) < 1e-6 * np.max(g.mean_distances)
            else:
                assert m.label[i, j] == phases.APART
                assert np.min(g.mean_distances[np.triu_indices(4, 1)]) > 1e-3 * np.max(g.mean_distances)


def test_map_structure():
    ratios = np.geomspace(1, 20, 60)
    lambdas = np.geomspace(1e-3, 0.3, 80)
    for bias in (True, False):
        for L in (1, 2, 3):
            m = phases.phase_map(ratios, lambdas, L=L, bias=bias)
            assert m.modes.max() == m.max_modes == (3 if bias else 4)
            assert m.modes.min() == 0
            assert np.all(np.diff(m.modes, axis=1) <= 0)  # stronger regularisation never revives a mode
            # the minority-collapse region: only for ratio > 1, between the first and the last death
            minority = m.label == phases.MINORITY
            assert not minority[0].any() and minority[1:].any()
            first = m.critical[:, m.critical[0] > 0].min(axis=1)
            last = m.critical.max(axis=1)
            lam = np.broadcast_to(lambdas, minority.shape)
            assert np.all((lam[minority] > first[:, None].repeat(80, 1)[minority]) & (lam[minority] < last[:, None].repeat(80, 1)[minority]))


@pytest.mark.parametrize("L,bias", [(1, True), (2, False), (3, True)])
def test_trained_grid_agrees(one_thread, L, bias):
    lambdas = [3e-3, 0.025, 0.12]
    pts = phases.train_phase_points([1, 3, 9], lambdas, L=L, bias=bias)
    assert len(pts) == 9
    assert pts.ratio.tolist() == [1, 1, 1, 3, 3, 3, 9, 9, 9] and np.allclose(pts.lam[:3], lambdas)
    assert np.all(pts.counts.sum(1) == 120)
    assert np.all(pts.margin > 0.02)
    assert np.all(pts.agree), (pts.modes, pts.modes_theory, pts.label, pts.label_theory)
    assert np.max(np.abs(pts.gap)) < 1e-8
    assert set(pts.modes.tolist()) >= {0, 3 if bias else 4}


def test_bad_inputs():
    with pytest.raises(ValueError, match="ratios"):
        phases.phase_map([0.5, 2], [0.01])
    with pytest.raises(ValueError, match="lambdas"):
        phases.phase_map([1, 2], [0.01, -1])
    with pytest.raises(ValueError, match="K_B"):
        phases.phase_map([1, 2], [0.01], K_B=1)
    with pytest.raises(ValueError, match="K_A"):
        phases.critical_lambdas([1], K_A=0, K_B=2, N=10)
    with pytest.raises(ValueError, match="L"):
        phases.phase_map([1, 2], [0.01], L=0)
    with pytest.raises(ValueError, match="bias"):
        phases.phase_map([1, 2], [0.01], bias="yes")
    with pytest.raises(ValueError, match="N"):
        phases.two_group_counts(2, K_A=2, K_B=2, N=0)
    with pytest.raises(ValueError, match="ratio"):
        phases.two_group_counts([2, 3], K_A=2, K_B=2, N=10)
    with pytest.raises(ValueError, match="whole counts"):
        phases.train_phase_points([2.5], [0.01], N=120)
    with pytest.raises(ValueError, match="N"):
        phases.train_phase_points([1], [0.01], N=120.5)
    with pytest.raises(ValueError, match="mean_tol"):
        phases.train_phase_points([1], [0.01], mean_tol=0)


def test_plot_phase_diagram_single_and_grid(one_thread):
    m = phases.phase_map(np.geomspace(1, 10, 30), np.geomspace(1e-3, 0.2, 30), L=1)
    pts = phases.train_phase_points([1, 4], [3e-3, 0.03, 0.15], L=1)
    ax = plots.plot_phase_diagram(m, pts)
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    assert len([ln for ln in ax.get_lines() if ln.get_gid() == "phase-boundary"]) == 3
    assert not [ln for ln in ax.get_lines() if ln.get_gid() == "phase-mismatch"]
    assert "mode" in ax.get_legend().get_texts()[0].get_text()
    # a point that disagrees gets a red cross
    wrong = dataclasses.replace(pts, modes=pts.modes + 1)
    ax = plots.plot_phase_diagram(m, wrong)
    cross = [ln for ln in ax.get_lines() if ln.get_gid() == "phase-mismatch"]
    assert len(cross) == 1 and len(cross[0].get_xdata()) == len(pts)
    # a grid: one panel per map, the same colour for the same number of modes everywhere
    m0 = phases.phase_map(np.geomspace(1, 10, 30), np.geomspace(1e-3, 0.2, 30), L=2, bias=False)
    fig = plots.plot_phase_diagram([[m, m0]], [[pts, None]])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[0].startswith("4 modes") and any(t.startswith("0 modes") for t in texts)
    c1, c2 = (ax.collections[0] for ax in fig.axes)
    assert c1.norm.vmax == c2.norm.vmax and c1.cmap.colors == c2.cmap.colors
    with pytest.raises(ValueError, match="maps"):
        plots.plot_phase_diagram([[m], [m, m]])
    with pytest.raises(ValueError, match="points"):
        plots.plot_phase_diagram([[m, m0]], [[pts]])
    with pytest.raises(ValueError, match="maps"):
        plots.plot_phase_diagram("map")
