"""The UFM trainer against the closed form, reproducibility, divergence and bad input."""

import numpy as np
import pytest
import torch

import nclab
from nclab import data, theory, ufm
from nclab.ufm import HISTORY_METRICS, TrainingDivergedError, train

IMBALANCED = [20, 10, 5, 5]
BALANCED = [10, 10, 10]


def lam_for(n, L, bias, cut):
    """A common lambda away from every critical value (no ties between optima).

    ``cut=False``: below every critical value (all modes alive). ``cut=True``: between the two
    largest distinct critical values (one mode survives) or, if all modes die together
    (balanced counts), above them (everything collapses).
    """
    crit = np.unique(np.round(theory.critical_lambda(n, L=L, bias=bias), 12))[::-1]
    crit = crit[crit > 0]
    if not cut:
        return float(0.5 * crit[-1])
    return float(np.sqrt(crit[0] * crit[1])) if len(crit) > 1 else float(1.5 * crit[0])


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n", [IMBALANCED, BALANCED], ids=["imbalanced", "balanced"])
@pytest.mark.parametrize("cut", [False, True], ids=["all-alive", "modes-cut"])
def test_default_trainer_reaches_the_closed_form(n, L, bias, cut):
    lam = lam_for(n, L, bias, cut)
    g = theory.global_minimizer(n, lam, lam, L=L, bias=bias)
    assert g.n_active < (len(n) - 1 if bias else len(n)) if cut else g.n_active == (len(n) - 1 if bias else len(n))
    r = train(n, d=6, lam_W=lam, lam_H=lam, L=L, bias=bias, progress=False, metrics=())
    assert abs(r.objective - g.objective) <= 1e-8 * g.objective
    err = r.distance_to_theory()
    assert err["W_gram"] < 1e-5 and err["M_gram"] < 1e-5 and err["b"] < 1e-5


@pytest.mark.parametrize("L", [1, 3])
def test_free_and_exact_features_reach_the_same_optimum(L):
    """Free features (every sample a parameter) and exact features (variable projection) minimise
    the same (P): both reach the closed form, and the free features collapse by themselves."""
    n, lam = IMBALANCED, lam_for(IMBALANCED, L, True, cut=False)
    g = theory.global_minimizer(n, lam, lam, L=L)
    runs = {f: train(n, d=6, lam_W=lam, lam_H=lam, L=L, features=f, progress=False) for f in ("exact", "free")}
    for features, r in runs.items():
        assert r.settings["features"] == features
        assert abs(r.objective - g.objective) <= 1e-9 * g.objective
        assert r.history["nc1"][-1] < 1e-12
    # the free run starts from scattered features; the exact one is collapsed from its first step
    assert runs["free"].history["nc1"][0] > 0.1 and runs["exact"].history["nc1"][0] < 1e-20
    assert runs["exact"].steps < runs["free"].steps


def test_per_layer_strengths_and_regularised_bias():
    n = IMBALANCED
    r = train(n, d=5, lam_W=[0.01, 0.02], lam_H=0.005, L=2, progress=False, metrics=())
    assert r.gap < 1e-8
    # a regularised bias is pulled below the frequencies n/N
    rb = train(n, d=5, lam_W=0.01, lam_H=0.01, lam_b=0.5, progress=False, metrics=())
    assert np.linalg.norm(rb.b) < np.linalg.norm(np.asarray(n) / sum(n)) - 1e-3
    with pytest.raises(ValueError, match="lam_b=0"):
        rb.theory()


def test_same_seed_same_result_and_different_seed_different_start():
    kw = dict(d=4, lam_W=0.01, lam_H=0.01, progress=False, metrics=(), steps=30)
    a, b = train(IMBALANCED, seed=3, **kw), train(IMBALANCED, seed=3, **kw)
    assert np.array_equal(a.H, b.H) and all(np.array_equal(x, y) for x, y in zip(a.layers, b.layers))
    c = train(IMBALANCED, seed=4, **kw)
    assert not np.array_equal(a.H, c.H)


@pytest.mark.parametrize("optimizer, lr", [("gd", 0.5), ("adam", 0.02)])
def test_first_order_optimisers_decrease_the_objective_and_log_history(optimizer, lr):
    r = train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, optimizer=optimizer, lr=lr, steps=400, log_every=50,
              metrics=("nc1", "gap"), progress=False)  # fmt: skip
    h = r.history
    assert h["step"].tolist() == [0, 50, 100, 150, 200, 250, 300, 350, 400]
    assert set(h) == {"step", "seconds", "objective", "nc1", "gap"}
    assert np.all(np.diff(h["seconds"]) >= 0)
    assert h["objective"][-1] < 0.5 * h["objective"][0]
    assert h["nc1"][-1] < h["nc1"][0]
    assert np.all(np.asarray(h["gap"]) >= -1e-12)  # nothing beats the global optimum


def test_cross_entropy_collapses_features():
    r = train(IMBALANCED, d=4, lam_W=1e-3, lam_H=1e-3, loss="ce", progress=False)
    assert r.history["nc1"][-1] < 1e-6 * r.history["nc1"][0]
    with pytest.raises(ValueError, match="loss='mse'"):
        train(IMBALANCED, d=4, lam_W=1e-3, lam_H=1e-3, loss="ce", metrics=("gap",), progress=False)


def test_divergence_names_the_cause_and_the_fix():
    with pytest.raises(TrainingDivergedError, match=r"lower the learning rate \(lr=50; try lr=5\)"):
        train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, optimizer="gd", lr=50.0, steps=200, progress=False)


def test_result_is_notebook_friendly():
    r = train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, progress=False)
    assert r.W.shape == (4, 4) and r.H.shape == (4, 40) and r.b.shape == (4,) and r.means.shape == (4, 4)
    assert r.labels.tolist() == data.labels_from_counts(IMBALANCED).tolist()
    text = repr(r)
    assert "\n" not in text and text.startswith("TrainResult(K=4, N=40, d=4, L=1, bias=True")
    assert r.settings["device"] == "cpu" and r.settings["lam_W"] == [0.01]
    rn = train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, bias=False, progress=False)
    assert np.all(rn.b == 0) and not rn.bias


def test_progress_bar_can_be_switched_off(capsys):
    train(BALANCED, d=3, lam_W=0.01, lam_H=0.01, progress=False)
    assert capsys.readouterr().err == ""
    train(BALANCED, d=3, lam_W=0.01, lam_H=0.01, progress=True)
    assert "UFM L=1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(d=0), "d must be a whole number >= 1"),
        (dict(lam_W=-1.0), "lam_W"),
        (dict(lam_H=float("nan")), "lam_H"),
        (dict(L=0), "L "),
        (dict(optimizer="newton"), "optimizer must be one of"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(optimizer="gd", lr=-0.1), "lr must be a positive"),
        (dict(steps=0), "steps must be a whole number >= 1"),
        (dict(momentum=1.0), r"momentum must be in \[0, 1\)"),
        (dict(metrics=("nc9",)), "unknown: \\['nc9'\\]"),
        (dict(device="tpu"), "device must be"),
        (dict(init_std=0.0), "init_std"),
        (dict(restarts=0), "restarts"),
        (dict(lam_b=-1.0), "lam_b"),
        (dict(seed=-1), "seed"),
        (dict(features="frozen"), "features must be one of"),
        (dict(features="exact", loss="ce"), "features='exact' needs loss='mse'"),
        (dict(features="exact", lam_b=0.1), "features='exact' needs loss='mse' and lam_b=0"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, match):
    args = dict(d=4, lam_W=0.01, lam_H=0.01, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(IMBALANCED, **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without a GPU")
def test_cuda_requested_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, device="cuda", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu():
    lam = lam_for(IMBALANCED, 2, True, True)
    kw = dict(d=6, lam_W=lam, lam_H=lam, L=2, progress=False, metrics=())
    gpu = train(IMBALANCED, device="cuda", **kw)
    cpu = train(IMBALANCED, device="cpu", **kw)
    assert gpu.settings["device"].startswith("cuda")
    assert gpu.objective == pytest.approx(cpu.objective, rel=1e-10)
    assert gpu.distance_to_theory()["W_gram"] < 1e-5
    f32 = train(IMBALANCED, device="cuda", dtype=torch.float32, **kw)
    assert f32.objective == pytest.approx(cpu.objective, rel=1e-5)


def test_package_exports():
    assert nclab.train is train and nclab.global_minimizer is theory.global_minimizer


def test_train_many_matches_the_closed_form_for_every_setting():
    from nclab.ufm import train_many

    counts = np.array([[20, 10, 5, 5], [10, 10, 10, 10], [25, 5, 5, 5]])
    lams = np.array([0.004, 0.02, 0.05])
    results = train_many(counts, d=5, lam_W=lams, lam_H=lams, progress=False)
    assert len(results) == 3
    for row, lam, r in zip(counts, lams, results):
        g = theory.global_minimizer(row, lam, lam)
        assert abs(r.objective - g.objective) <= 1e-8 * g.objective
        assert r.distance_to_theory()["W_gram"] < 1e-5
    with pytest.raises(ValueError, match="same total N"):
        train_many([[20, 10], [5, 5]], d=2, lam_W=0.01, lam_H=0.01, progress=False)
    with pytest.raises(ValueError, match="share one batch size"):
        train_many([[20, 10], [15, 15]], d=2, lam_W=[0.01, 0.02, 0.03], lam_H=0.01, progress=False)


@pytest.mark.parametrize("seed", [3, 5])
def test_a_lost_mode_is_replanted_when_the_width_equals_K(seed):
    """d = K leaves no spare direction: the planted mode must avoid exactly the surviving ones
    (their bases from the features and from W_1 agree only up to round-off)."""
    r = train([56, 56, 4, 4], d=4, lam_W=0.0025, lam_H=0.0025, L=3, bias=False, progress=False, metrics=(), seed=seed)
    assert abs(r.gap) < 1e-9


GEOMETRY_METRICS = ("bias_error", "alignment_error", "orthogonality_error", "sv_error")


def test_geometry_metrics_fall_to_zero_when_training_reaches_the_optimum(one_thread):
    r = train(IMBALANCED, d=6, lam_W=5e-3, lam_H=5e-3, optimizer="gd", lr=0.1, steps=400, log_every=200,
              init_std=0.3, metrics=GEOMETRY_METRICS, progress=False)  # fmt: skip
    final = train(IMBALANCED, d=6, lam_W=5e-3, lam_H=5e-3, metrics=GEOMETRY_METRICS, progress=False)
    for m in GEOMETRY_METRICS:
        h = r.history[m]
        assert h[0] > 1e-2 and h[-1] < 0.1 * h[0], m  # far at the start, closer after gradient descent
        assert final.history[m][-1] < 1e-6, m  # and zero at the optimum


def _state_at(point, g, layers=None):
    return ufm._State(layers or point.layers, point.H, point.b, point.labels, g.K, g.objective, lambda: g)


def test_geometry_metrics_measure_the_angle_they_name():
    """Independent route: turn one row of the optimal classifier by a known angle."""
    n, lam = [30, 20, 10, 5], 2e-3
    g = theory.global_minimizer(n, lam, lam)
    point = g.construct(d=6, seed=0)
    for m in GEOMETRY_METRICS:
        assert HISTORY_METRICS[m](_state_at(point, g)) < 1e-12, m
    theta = 0.3  # rotate W = W_1 in the plane of two of its row directions r_1 and a free direction
    W = point.layers[0]
    r1 = (g.U[:, 0] @ W) / np.linalg.norm(g.U[:, 0] @ W)
    free = np.linalg.svd(W)[2][-1]  # orthogonal to every row of W (d = 6 > K)
    P = np.eye(6) + (np.cos(theta) - 1) * (np.outer(r1, r1) + np.outer(free, free)) \
        + np.sin(theta) * (np.outer(free, r1) - np.outer(r1, free))  # fmt: skip
    turned = _state_at(point, g, [W @ P.T])
    assert np.isclose(HISTORY_METRICS["alignment_error"](turned), 1 - np.cos(theta))
    rows = g.U.T @ (W @ P.T)
    cos12 = abs(rows[0] @ rows[1]) / np.linalg.norm(rows[0]) / np.linalg.norm(rows[1])
    assert cos12 < 1e-12 and HISTORY_METRICS["orthogonality_error"](turned) < 1e-12  # r_1 -> free stays orthogonal
    shifted = ufm._State(point.layers, point.H, point.b + np.array([0.1, 0, 0, 0]), point.labels, 4, 0.0, lambda: g)
    assert np.isclose(HISTORY_METRICS["bias_error"](shifted), 0.1 / np.linalg.norm(g.b))


def test_bias_error_needs_a_bias():
    with pytest.raises(ValueError, match="'bias_error' needs a model with a bias"):
        train(IMBALANCED, d=4, lam_W=1e-2, lam_H=1e-2, bias=False, metrics=("bias_error",), progress=False)


def test_a_warm_start_from_the_optimum_stays_there(one_thread):
    g = theory.global_minimizer(IMBALANCED, 1e-2, 1e-2, L=2)
    for features in ("exact", "free"):
        r = train(IMBALANCED, d=5, lam_W=1e-2, lam_H=1e-2, L=2, init=g.construct(d=5, seed=3), features=features,
                  progress=False, metrics=())  # fmt: skip
        assert abs(r.gap) < 1e-12 and r.settings["warm_start"] and r.settings["restarts"] == 1
        assert r.history["objective"][0] == pytest.approx(g.objective, rel=1e-12)  # it started at the given point


def test_a_warm_start_follows_a_surviving_mode_onto_its_spurious_branch(one_thread):
    """Raising lam past the critical value of mode 3 (L = 3) keeps the mode on its local-only branch."""
    n = [200, 100, 50, 50]
    start = theory.global_minimizer(n, 0.012, 0.012, L=3).construct(d=8, seed=0)
    r = train(n, d=8, lam_W=0.015, lam_H=0.015, L=3, init=start, prune=False, progress=False, metrics=())
    g = r.theory()
    assert g.x[2] == 0  # the optimum drops mode 3 ...
    x_hat = np.einsum("ki,kl,li->i", g.U, r.W @ r.means * np.sqrt(r.n), g.V)
    branch = theory.nonzero_branch(g.s, g.N, g.c, 3)
    assert np.allclose(x_hat[:3], branch[:3], rtol=1e-6)  # ... the warm start keeps it on the branch
    f_crit = theory.scalar_objective(np.r_[branch[:3], 0.0], g.s, g.N, g.c, 3).sum()
    assert r.objective == pytest.approx(f_crit, rel=1e-9) and r.gap > 0.03


@pytest.mark.parametrize(
    "init, kwargs, error, match",
    [
        (object(), {}, TypeError, "init must have attributes layers, H and b"),
        ("layers", {}, ValueError, r"init.layers must have the shapes \[\(4, 4\)\]"),
        ("H", {}, ValueError, r"init.H must have the shape \(4, 40\)"),
        ("b", {}, ValueError, r"init.b must have the shape \(4,\)"),
        ("nan", {}, ValueError, "finite numbers only"),
        ("ok", dict(restarts=2), ValueError, "restarts must be 1"),
    ],
)
def test_bad_warm_starts_are_named(init, kwargs, error, match):
    point = theory.global_minimizer(IMBALANCED, 1e-2, 1e-2).construct(d=4)
    if isinstance(init, str):
        layers, H, b = list(point.layers), point.H.copy(), point.b.copy()
        if init == "layers":
            layers = [np.zeros((4, 3))]
        elif init == "H":
            H = H[:, :-1]
        elif init == "b":
            b = b[:-1]
        elif init == "nan":
            H[0, 0] = np.nan
        init = theory.UFMPoint(layers=layers, H=H, b=b, M=point.M, labels=point.labels)
    with pytest.raises(error, match=match):
        train(IMBALANCED, d=4, lam_W=1e-2, lam_H=1e-2, init=init, progress=False, **kwargs)
