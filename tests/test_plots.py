"""Smoke and structure tests of nclab.plots (Agg backend, small inputs)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nclab import plots, theory  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _gids(ax, prefix):
    return [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith(prefix) and "head" not in ln.get_gid()]


def test_class_colors_consistent():
    assert len(plots.class_colors(4)) == 4
    assert plots.class_colors(4) == plots.class_colors(10)[:4]
    assert len(set(plots.class_colors(25))) == 25
    with pytest.raises(ValueError, match="K"):
        plots.class_colors(0)


def test_plot_gram_annotates_small_K():
    G = theory.simplex_etf_gram(4)
    ax = plots.plot_gram(G, title="ETF")
    assert isinstance(ax, Axes)
    assert len(ax.texts) == 16
    lo, hi = ax.images[0].get_clim()
    assert lo == -hi
    ax = plots.plot_gram(np.eye(12), annotate=True)
    assert len(ax.texts) == 0
    ax = plots.plot_gram(np.zeros((3, 3)))
    assert ax.images[0].get_clim() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="G"):
        plots.plot_gram(np.zeros((2, 3)))


def test_plot_grams_row_and_normalisation():
    fig = plots.plot_grams({"A": 5 * np.eye(3), "B": theory.simplex_etf_gram(3), "zero": np.zeros((3, 3))})
    assert isinstance(fig, Figure)
    heat = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in heat] == ["A", "B", "zero"]
    np.testing.assert_allclose(np.linalg.norm(heat[0].images[0].get_array()), 1.0)
    assert len({ax.images[0].get_clim() for ax in heat}) == 1


def test_plot_grams_grid_of_columns():
    grams = {name: np.eye(3) for name in "ABCDE"}
    fig = plots.plot_grams(grams, ncols=2)
    heat = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in heat] == list("ABCDE")
    rows = sorted({round(ax.get_position().y0, 3) for ax in heat})
    cols = sorted({round(ax.get_position().x0, 3) for ax in heat})
    assert len(rows) == 3 and len(cols) == 2  # five heatmaps in a 3 x 2 grid, one slot removed
    assert len(fig.axes) == 6  # five heatmaps and one colour bar
    assert len(plots.plot_grams(grams, ncols=9).axes) == 6  # more columns than matrices: one row
    with pytest.raises(ValueError, match="ncols"):
        plots.plot_grams(grams, ncols=0)


def test_plot_geometry_2d_counts_arrows():
    g = theory.global_minimizer([3, 3, 3], 1e-3, 1e-3)
    pt = g.construct(5, seed=0)
    ax = plots.plot_geometry(pt.M, pt.W, counts=[3, 3, 3], title="ETF")
    assert isinstance(ax, Axes)
    assert len(_gids(ax, "mean-")) == 3
    assert len(_gids(ax, "classifier-")) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "class 1 (3)" in labels
    ax = plots.plot_geometry(pt.M)
    assert len(_gids(ax, "mean-")) == 3 and not _gids(ax, "classifier-")


def test_plot_geometry_zero_and_3d():
    ax = plots.plot_geometry(np.zeros((4, 3)), np.zeros((3, 4)))
    assert any("collapsed to 0" in t.get_text() for t in ax.texts)
    assert len(_gids(ax, "mean-")) == 3
    # one collapsed mean among live ones
    M = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ax = plots.plot_geometry(M)
    assert len(_gids(ax, "mean-")) == 3
    ax = plots.plot_geometry(np.eye(4)[:, :4], np.eye(4), dim=3)
    assert ax.name == "3d"
    assert len(_gids(ax, "mean-")) == 4 and len(_gids(ax, "classifier-")) == 4
    ax3 = plots.plot_geometry(np.zeros((2, 4)), dim=3)  # d < dim and all zero
    assert ax3.name == "3d"
    with pytest.raises(ValueError, match="dim"):
        plots.plot_geometry(M, dim=4)
    with pytest.raises(ValueError, match="W"):
        plots.plot_geometry(M, np.zeros((2, 2)))


def test_plot_spectrum_filled_and_hollow():
    n = [200, 100, 50, 50]
    s = theory.singular_values(n)
    ax = plots.plot_spectrum(n, threshold=8.0)
    assert isinstance(ax, Axes)
    filled, hollow = ax.get_lines()[0], ax.get_lines()[1]
    assert len(filled.get_xdata()) == int(np.sum(s >= 8.0)) == 2
    assert len(hollow.get_xdata()) == 2
    assert len(ax.collections) == 1  # interlacing bars
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert r"$s_{\mathrm{thr}}$" in labels
    ax = plots.plot_spectrum(n, bias=False)
    assert len(ax.collections) == 0
    assert len(ax.get_lines()[0].get_xdata()) == 4


def test_plot_history_handles_zeros():
    h = {"step": np.arange(5), "objective": np.array([1.0, 0.5, 0.2, 0.1, 0.1]),
         "nc1": np.array([1.0, 1e-3, 1e-8, 0.0, 0.0])}
    ax = plots.plot_history(h)
    assert ax.get_yscale() == "log"
    assert len(ax.get_lines()) == 2
    assert np.all(ax.get_lines()[1].get_ydata() > 0)
    ax = plots.plot_history({"step": [0, 1], "gap": [0.0, 0.0]}, keys=("gap",))
    assert np.all(ax.get_lines()[0].get_ydata() > 0)
    with pytest.raises(ValueError, match="keys"):
        plots.plot_history(h, keys=("nc3",))


def test_plot_scalar_problem_marks_minimiser():
    N, L = 100, 2
    c = 0.01
    s_thr = theory.threshold(N, c, L)
    ax = plots.plot_scalar_problem([0.5 * s_thr, 1.5 * s_thr], N, c, L)
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*" and len(ln.get_xdata())]
    assert len(stars) == 2
    assert stars[0].get_xdata()[0] == 0.0 and stars[1].get_xdata()[0] > 0


def test_plot_sweep_shapes():
    lam = np.logspace(-3, -1, 6)
    tv = np.stack([lam, 2 * lam], axis=1)
    ax = plots.plot_sweep(lam, tv, tv * 1.01, labels=["a", "b"], ylabel="norm")
    assert isinstance(ax, Axes)
    assert len(ax.get_lines()) == 4
    assert ax.get_xscale() == "log"
    ax = plots.plot_sweep(lam, lam, logx=False)
    assert len(ax.get_lines()) == 1
    with pytest.raises(ValueError, match="trained_values"):
        plots.plot_sweep(lam, tv, lam)
