"""The explorers: pure state against the theory, headless widgets, extreme settings."""

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nclab import data, theory, train, widgets  # noqa: E402

EXTREMES = {
    "every mode collapsed": dict(lam_W=1.0, lam_H=1.0),
    "K = 2": dict(K=2),
    "K = 2 without bias": dict(K=2, bias=False),
    "ratio 1000, long tail": dict(kind="long-tailed", K=12, n_max=1000, ratio=1000.0),
    "ratio 1000, smallest class of 1": dict(kind="step", K=12, n_max=10, ratio=1000.0, lam_W=1e-4, lam_H=1e-4),
    "deep, weak decay": dict(L=5, lam_W=1e-4, lam_H=1e-4),
    "deep, everything collapsed": dict(L=5, lam_W=1.0, lam_H=1.0, K=12, n_max=1000),
    "balanced without bias": dict(kind="balanced", bias=False),
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ the pure state


def test_state_at_defaults_matches_global_minimizer():
    st = widgets.explorer_state()
    p = widgets.THEORY_DEFAULTS
    n = data.profile(p["kind"], p["K"], p["n_max"], p["ratio"])
    g = theory.global_minimizer(n, p["lam_W"], p["lam_H"], L=p["L"], bias=p["bias"])
    assert np.array_equal(st["n"], n)
    for key in ("s", "x", "W_gram", "M_gram", "b"):
        assert np.allclose(st[key], getattr(g, key), rtol=1e-12, atol=1e-14), key
    assert st["threshold"] == pytest.approx(g.threshold)
    assert st["objective"] == pytest.approx(g.objective)
    assert st["n_active"] == g.n_active == 2
    # the defaults show minority collapse: 200,200,50,50 with the minority mode below threshold
    assert st["coinciding"] == [[3, 4]]
    assert st["level"] == "warning"
    assert "minority collapse" in st["summary"]


def test_mode_coordinates_reproduce_the_grams():
    st = widgets.explorer_state(kind="long-tailed", K=7, n_max=300, ratio=30.0, lam_W=3e-3, lam_H=1e-3, L=2)
    Mc, Wc = st["mean_coords"], st["row_coords"]  # (K, K): rows are classes
    assert np.allclose(Mc @ Mc.T, st["M_gram"], atol=1e-12)
    assert np.allclose(Wc @ Wc.T, st["W_gram"], atol=1e-10)


@pytest.mark.parametrize("name", list(EXTREMES))
def test_extreme_settings_give_a_message_and_a_picture(name):
    params = {**widgets.THEORY_DEFAULTS, **EXTREMES[name]}
    st = widgets.explorer_state(**params)
    assert st["messages"] and all(isinstance(m, str) and m for m in st["messages"])
    for key in ("s", "x", "W_gram", "M_gram", "mean_coords", "row_coords"):
        assert np.all(np.isfinite(st[key])), key
    fig = widgets.draw_theory(st)
    assert len(fig.axes) >= 4
    fig.set_dpi(50)
    fig.canvas.draw()  # render, so drawing errors surface here


def test_every_mode_collapsed_is_explained():
    st = widgets.explorer_state(**{**widgets.THEORY_DEFAULTS, **EXTREMES["every mode collapsed"]})
    assert st["n_active"] == 0 and st["level"] == "warning"
    assert "Every mode collapsed" in st["messages"][0]
    assert np.all(st["W_gram"] == 0) and np.all(st["M_gram"] == 0)


def test_k2_with_bias_has_one_mode():
    st = widgets.explorer_state(**{**widgets.THEORY_DEFAULTS, "K": 2})
    assert st["s"][1] == 0 and st["n_active"] == 1
    assert any("rank 1" in m for m in st["messages"])


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="kind"):
        widgets.explorer_state(kind="zipf")
    with pytest.raises(ValueError, match="lam_H"):
        widgets.explorer_state(lam_H=0.0)
    with pytest.raises(TypeError, match="unknown"):
        widgets.theory_figure(lam=0.1)


def test_theory_figure_at_defaults():
    fig = widgets.theory_figure()
    assert "2 mode(s) survive" in fig._suptitle.get_text()


# ------------------------------------------------------------------ the theory explorer


def test_theory_explorer_builds_and_recomputes():
    box = widgets.theory_explorer()
    assert isinstance(box, ipywidgets.Widget)
    ex = box.explorer
    assert set(ex.controls) == set(widgets.THEORY_DEFAULTS)
    before_summary, before_html = ex.state["summary"], ex.summary.value
    assert ex.state["n_active"] == 2
    ex.controls["lam_W"].value = 1e-4  # weaker decay: every nonzero mode survives
    assert ex.state["n_active"] == 3
    assert ex.state["summary"] != before_summary and ex.summary.value != before_html
    ex.controls["L"].value = 3
    assert ex.state["params"]["L"] == 3
    ex.controls["kind"].value = "balanced"
    assert ex.controls["ratio"].disabled
    assert np.all(ex.state["n"] == ex.state["n"][0])


def test_theory_explorer_extremes_show_a_message():
    ex = widgets.theory_explorer(K=2).explorer
    ex.controls["lam_W"].value = 1.0
    ex.controls["lam_H"].value = 1.0
    assert ex.state["n_active"] == 0
    assert "Every mode collapsed" in ex.summary.value
    ex.controls["kind"].value = "long-tailed"
    ex.controls["K"].value = 12
    ex.controls["ratio"].value = 1000.0
    assert ex.state is not None and ex.state["level"] == "warning"


# ------------------------------------------------------------------ the training explorer


def test_training_explorer_trains_and_compares(one_thread):
    box = widgets.training_explorer(kind="step", K=3, n_max=20, ratio=4.0, lam=0.01, steps=300)
    assert isinstance(box, ipywidgets.Widget)
    ex = box.explorer
    assert ex.result is None
    ex.button.click()
    assert ex.result is not None and not ex.button.disabled
    assert "reached the closed-form optimum" in ex.status.value
    assert abs(ex.result.gap) < 1e-8
    # a different setting re-trains
    ex.controls["bias"].value = False
    ex.run()
    assert ex.result.bias is False
    assert ex.result.theory().bias is False


def test_training_explorer_reports_errors_without_raising(one_thread):
    with pytest.raises(ValueError, match="d"):  # an invalid default is refused up front
        widgets.training_explorer(K=3, n_max=20, d=0)
    ex = widgets.training_explorer(K=3, n_max=20).explorer
    ex.d = 0  # invalid at run time: reported, not raised
    assert ex.run() is None
    assert "Training failed" in ex.message and "d" in ex.message
    assert not ex.button.disabled


def test_training_figure(one_thread):
    result = train([20, 20, 5], d=6, lam_W=0.01, lam_H=0.01, optimizer="gd", steps=40, metrics=("nc1", "gap"),
                   progress=False)  # fmt: skip
    fig = widgets.training_figure(result)
    assert len(fig.axes) == 5
    assert "gd" in fig._suptitle.get_text()
    fig.canvas.draw()


def test_training_settings_feed_train():
    kw = widgets.training_settings(K=3, n_max=20, lam=0.02)
    assert kw["lam_W"] == kw["lam_H"] == 0.02 and kw["d"] == 6 and kw["features"] == "free"
    assert np.array_equal(kw["n"], data.profile("step", 3, 20, 4.0))
    with pytest.raises(TypeError, match="unknown"):
        widgets.training_settings(lam_W=0.1)
