"""The explorers: pure state against the theory, the widgets' Python side, extreme settings, and
the browser front end's closed form (run under Node) against nclab.theory."""

import matplotlib

matplotlib.use("Agg")

import itertools  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import anywidget  # noqa: E402
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


# ------------------------------------------------------------------ the theory explorer (Python side)


def test_theory_explorer_builds_and_recomputes():
    ex = widgets.theory_explorer()
    assert isinstance(ex, anywidget.AnyWidget) and isinstance(ex, ipywidgets.Widget)
    assert ex.params() == widgets.THEORY_DEFAULTS
    before = ex.state["summary"]
    assert ex.state["n_active"] == 2
    ex.lam_W = 1e-4  # weaker decay: every nonzero mode survives (what a slider move sends)
    assert ex.state["n_active"] == 3 and ex.state["summary"] != before and ex.message == ex.state["summary"]
    ex.L = 3
    assert ex.state["params"]["L"] == 3
    ex.kind = "balanced"
    assert np.all(ex.state["n"] == ex.state["n"][0])


def test_theory_explorer_state_syncs_to_the_front_end():
    ex = widgets.theory_explorer(K=6, lam_H=0.0123)
    state = ex.get_state()
    for name, value in {**widgets.THEORY_DEFAULTS, "K": 6, "lam_H": 0.0123}.items():
        assert state[name] == value, name
    assert state["grids"]["lam"][0] == 1e-4 and state["grids"]["lam"][-1] == 1.0
    assert 0.015 in state["grids"]["lam"] and 4.0 in state["grids"]["ratio"]
    assert "export default" in state["_esm"] and ".nclab-explorer" in state["_css"]


def test_theory_explorer_invalid_settings_give_a_message():
    ex = widgets.theory_explorer(K=2)
    ex.lam_W = 1.0
    ex.lam_H = 1.0
    assert ex.state["n_active"] == 0 and "Every mode collapsed" in ex.message
    ex.lam_H = 0.0  # not a strength: a message naming it, no traceback
    assert ex.state is None and "lam_H" in ex.message


def test_theory_explorer_bad_input_raises():
    with pytest.raises(TypeError, match="unknown"):
        widgets.theory_explorer(lam=0.1)
    with pytest.raises(ValueError, match="ratio"):
        widgets.theory_explorer(ratio=0.5)
    with pytest.raises(ValueError, match="L"):
        widgets.theory_explorer(L=0)


def test_log_grids_are_round_and_sorted():
    for name, (low, high) in {"lam": (1e-4, 1.0), "ratio": (1.0, 1000.0)}.items():
        grid = widgets.SLIDER_GRIDS[name]
        assert grid[0] == low and grid[-1] == high and grid == sorted(set(grid))
        assert all(float(f"{v:.2g}") == v for v in grid)  # two significant digits: the shown value is exact
        assert np.all(np.diff(np.log10(grid)) <= 0.13)  # about ten steps a decade


def test_bundles_are_single_modules():
    for cls in (widgets.TheoryExplorer, widgets.TrainingView):
        src = cls._esm
        assert not re.search(r"^\s*import\b", src, re.MULTILINE)
        assert src.count("export default") == 1
    with pytest.raises(FileNotFoundError):
        widgets._bundle("no_such_module.mjs")


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


def test_every_slider_takes_its_range_from_one_table():
    """The check of initial values, the training explorer's ipywidgets and the theory explorer's
    front end (its grids trait) read the ranges of nclab.widgets.SLIDER_GRIDS, so they cannot drift."""
    grids = widgets.SLIDER_GRIDS
    controls = widgets.training_explorer().explorer.controls
    for key in ("K", "n_max", "L", "steps"):
        low, high, step = grids[key]
        assert (controls[key].min, controls[key].max, controls[key].step) == (low, high, step), key
        with pytest.raises(ValueError, match=rf"{key} must be a number in \[{low}, {high}\]"):
            widgets.training_explorer(**{key: high + step})
    for key in ("ratio", "lam"):
        assert 10 ** controls[key].min == pytest.approx(grids[key][0]) and 10 ** controls[key].max == pytest.approx(grids[key][-1])
    with pytest.raises(ValueError, match=r"lam_H must be a number in \[0.0001, 1\]"):
        widgets.theory_explorer(lam_H=2.0)
    state = widgets.theory_explorer().get_state()
    assert all(state["grids"][key] == grids[key] for key in grids)
    view = (STATIC / "theory_view.mjs").read_text()
    assert all(f"range(grids.{key})" in view for key in ("K", "n_max", "L"))


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


# ------------------------------------------------------------------ the precomputed training view

SMALL_GRID = dict(ratio=4.0, lam=0.015, L=(1, 3), bias=True, init=("default", "small"))


@pytest.fixture(scope="module")
def small_runs():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return widgets.training_runs(**SMALL_GRID, progress=False)
    finally:
        torch.set_num_threads(before)


def test_training_runs_store_real_results(small_runs):
    runs = small_runs
    assert runs["axes"] == dict(ratio=[4.0], lam=[0.015], L=[1, 3], bias=[True], init=["default", "small"])
    assert runs["profile"] == dict(kind="step", K=4, n_max=200) and runs["d"] == 8
    assert len(runs["runs"]) == 4 and set(runs["init_labels"]) == {"default", "small"}
    assert len(json.dumps(runs)) < 4 * 2000  # about 1.5 kB a run: the default grid stays well under 1 MB
    by = {(r["L"], r["init"]): r for r in runs["runs"]}
    for L in (1, 3):
        g = theory.global_minimizer(data.profile("step", 4, 200, 4.0), 0.015, 0.015, L=L)
        r = by[L, "default"]
        assert r["n"] == [200, 200, 50, 50] and abs(r["gap"]) < 1e-8 and r["n_modes"] == g.n_active
        assert r["objective"] == pytest.approx(g.objective, rel=1e-8)
        assert np.allclose(r["W_gram"], g.W_gram, rtol=1e-5, atol=1e-6 * np.abs(g.W_gram).max())
        assert np.allclose(r["M_gram"], g.M_gram, rtol=1e-5, atol=1e-6 * np.abs(g.M_gram).max())
        assert len(r["history"]["step"]) == len(r["history"]["gap"]) == len(r["history"]["nc1"]) > 2
    # a small start at depth 3 ends at a critical point without the surviving mode (chapter 5)
    assert by[3, "small"]["n_modes"] == 0 and by[3, "small"]["gap"] > 0.1


def test_training_runs_bad_input():
    with pytest.raises(ValueError, match="init"):
        widgets.training_runs(init="tiny", progress=False)
    with pytest.raises(TypeError, match="unknown"):
        widgets.training_runs(lam_W=0.1, progress=False)
    with pytest.raises(ValueError, match="lam"):
        widgets.training_runs(lam=(), progress=False)


def test_training_view_selects_stored_runs(small_runs):
    view = widgets.training_view(small_runs)
    assert isinstance(view, anywidget.AnyWidget)
    assert (view.ratio, view.lam, view.L, view.bias, view.init) == (4.0, 0.015, 1, True, "default")
    assert view.run()["L"] == 1 and view.run()["init"] == "default"
    view.L, view.init = 3, "small"
    assert view.run()["L"] == 3 and view.run()["init"] == "small"
    assert widgets.training_view(small_runs, L=3).run()["L"] == 3
    with pytest.raises(ValueError, match="L must be one of the trained values"):
        widgets.training_view(small_runs, L=2)
    with pytest.raises(TypeError, match="unknown"):
        widgets.training_view(small_runs, K=3)


# ------------------------------------------------------------------ the front end's closed form, under Node

NODE = shutil.which("node")
STATIC = Path(widgets.__file__).with_name("static")
# Reads a JSON list of calls [name, args] on stdin, runs each through the ES module given as
# the last argument and writes the results (or the error message) as JSON; ["typeof", [key, ...]] gives
# the type of an export.
NODE_DRIVER = """
const mod = await import(process.argv.at(-1));
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(([fn, args]) => {
  if (fn === "typeof") return typeof args.reduce((obj, key) => obj?.[key], mod);
  try { return mod[fn](...args); } catch (err) { return { error: String(err.message) }; }
});
process.stdout.write(JSON.stringify(out));
"""
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_js(calls: list, module: Path = STATIC / "theory_math.mjs") -> list:
    """Call functions of an ES module under Node: calls = [(name, [args...]), ...]."""
    proc = subprocess.run([NODE, "--input-type=module", "-e", NODE_DRIVER, "--", module.as_uri()],
                          input=json.dumps(calls), capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def agreement_grid() -> list[dict]:
    """Settings that cover every branch: three profiles (repeated counts, n_min = 1, rounding
    to equal counts in the long tail), K from 2 to 12, depths 1 to 5, with and without bias,
    strengths from where nothing collapses to where everything does."""
    rng = np.random.default_rng(2024)
    grid = []
    for kind, K, L, bias in itertools.product(("balanced", "step", "long-tailed"), (2, 3, 4, 7, 12), (1, 2, 3, 5), (True, False)):
        for n_max, ratio in ((200, 4.0), (10, 1000.0), (int(rng.integers(1, 101)) * 10, float(rng.choice(widgets.SLIDER_GRIDS["ratio"])))):
            lam_W, lam_H = (float(rng.choice(widgets.SLIDER_GRIDS["lam"][:30])) for _ in range(2))
            grid.append(dict(kind=kind, K=K, n_max=n_max, ratio=ratio, lam_W=lam_W, lam_H=lam_H, L=L, bias=bias))
    return grid


def assert_close(js, py, what):
    js, py = np.asarray(js, dtype=float), np.asarray(py, dtype=float)
    scale = float(np.abs(py).max()) if py.size else 0.0
    np.testing.assert_allclose(js, py, rtol=1e-9, atol=1e-9 * scale, err_msg=what)


@needs_node
def test_front_end_closed_form_agrees_with_nclab_theory():
    grid = agreement_grid()
    results = run_js([("explorerState", [p]) for p in grid])
    checked_active = 0
    for p, js in zip(grid, results):
        assert "error" not in js, (p, js)
        py = widgets.explorer_state(**p)
        g = theory.global_minimizer(py["n"], p["lam_W"], p["lam_H"], L=p["L"], bias=p["bias"])
        assert js["n"] == [int(v) for v in py["n"]], p
        for key in ("s", "x", "W_gram", "M_gram", "b", "critical_c"):
            assert_close(js[key], getattr(g, key) if hasattr(g, key) else py[key], f"{key} at {p}")
        for key in ("threshold", "objective", "c", "N"):
            assert_close(js[key], py[key], f"{key} at {p}")
        # class means and classifier rows in mode coordinates: their Gram matrices are unique
        means, rows = np.array(js["mean_coords"]), np.array(js["row_coords"])
        assert_close(means @ means.T, g.M_gram, f"mean coordinates at {p}")
        assert_close(rows @ rows.T, g.W_gram, f"row coordinates at {p}")
        # which modes survive, away from the measure-zero tie s_i = s_thr
        clear = np.abs(g.s - g.threshold) > 1e-9 * g.threshold
        assert np.array_equal(np.array(js["active"])[clear], g.active[clear]), p
        checked_active += int(clear.sum())
        assert js["messages"] == py["messages"] and js["summary"] == py["summary"], p
        assert js["coinciding"] == py["coinciding"] and js["level"] == py["level"], p
    assert len(grid) == 360 and checked_active > 2000


@needs_node
def test_front_end_spectrum_handles_repeated_counts():
    counts = [[50, 50, 50, 50], [90, 90, 40, 40, 40, 7], [1, 1, 1000], [5, 4], [300, 299, 298, 297, 1]]
    results = run_js([("targetSvd", [n, True]) for n in counts])
    for n, js in zip(counts, results):
        s, U, V = np.array(js["s"]), np.array(js["U"]).T, np.array(js["V"]).T  # columns = vectors
        Yhat = theory.target(n, bias=True)
        assert_close(s, theory.singular_values(n), f"s of {n}")
        np.testing.assert_allclose(U.T @ U, np.eye(len(n)), atol=1e-12)
        np.testing.assert_allclose(V.T @ V, np.eye(len(n)), atol=1e-12)
        np.testing.assert_allclose(U @ np.diag(s) @ V.T, Yhat, atol=1e-12 * np.abs(Yhat).max())
    # the secular route against the independent one of nclab.theory
    assert_close(results[1]["s"], theory.secular_roots(counts[1]), "secular roots")


@needs_node
def test_front_end_counts_match_nclab_data():
    cases = [(k, K, n_max, r) for k in ("balanced", "step", "long-tailed") for K in (2, 5, 12)
             for n_max in (1, 10, 250, 1000) for r in (1.0, 2.5, 4.0, 7.9, 1000.0)]  # fmt: skip
    results = run_js([("profile", list(c)) for c in cases])
    for c, js in zip(cases, results):
        assert js == [int(v) for v in data.profile(*c)], c


@needs_node
def test_front_end_bad_input_names_the_parameter():
    results = run_js([("globalMinimizer", [[10, 5], 0, 0.1]), ("globalMinimizer", [[10, 5], 0.1, 0.1, 0]),
                      ("profile", ["zipf", 4, 10, 2]), ("profile", ["step", 4, 10, 0.5]),
                      ("globalMinimizer", [[10, 0.5], 0.1, 0.1])])  # fmt: skip
    for result, name in zip(results, ("lam_W", "L", "kind", "ratio", "n[1]")):
        assert name in result["error"]


@needs_node
def test_front_end_formats_like_python():
    values = [0.0, 7.5, 14.142135, 1234.5, 0.000123456, 1e-5, -2.5e-7, 0.015, 99999.0, 1e21, 0.28383, 0.125, 12.25,
              0.0001125, 9.995, -0.0]  # ties go to even, as in Python
    for digits in (2, 3, 4):
        js = run_js([("fmtG", [v, digits]) for v in values])
        assert js == [f"{v:.{digits}g}" for v in values]


@needs_node
def test_bundles_load_as_modules(tmp_path):
    """The bundles anywidget receives are valid modules: the math runs and render is a function."""
    for cls in (widgets.TheoryExplorer, widgets.TrainingView):
        path = tmp_path / f"{cls.__name__}.mjs"
        path.write_text(cls._esm, encoding="utf-8")
        render, state = run_js([("typeof", ["default", "render"]), ("explorerState", [widgets.THEORY_DEFAULTS])], path)
        assert render == "function" and state["n_active"] == 2
