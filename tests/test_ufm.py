"""The UFM trainer against the closed form, reproducibility, divergence and bad input."""

import numpy as np
import pytest
import torch

import nclab
from nclab import data, theory, ufm
from nclab.objective import product
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


# ----------------------------------------------------------------------------- issue #17: train_many checks what train checks


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(init_std=0.0),
        dict(init_std=-1.0),
        dict(seed=-1),
        dict(seed=1.5),
        dict(lam_W="0.01"),
        dict(lam_H="0.01"),
        dict(lam_W=-0.01),
        dict(lam_H=float("nan")),
        dict(lam_W=True),
        dict(bias="no"),
        dict(bias=1),
        dict(d=0),
        dict(L=0),
        dict(steps=0),
        dict(restarts=0),
        dict(prune="yes"),
        dict(progress="no"),
        dict(features="frozen"),
        dict(device="tpu"),
        dict(dtype=torch.int64),
    ],
    ids=lambda kw: ",".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_train_many_refuses_what_train_refuses(kwargs):
    from nclab.ufm import train_many

    args = dict(d=4, lam_W=0.01, lam_H=0.01, progress=False)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError)) as one:
        train(IMBALANCED, **args)
    with pytest.raises(one.type) as many:
        train_many([IMBALANCED, IMBALANCED[::-1]], **args)
    # the same message, with the setting named where it concerns one setting's strengths
    assert str(one.value) in str(many.value)


def test_bias_must_be_a_bool():
    with pytest.raises(TypeError, match="bias must be True or False; got 'no'"):
        train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, bias="no", progress=False)
    r = train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, bias=np.bool_(False), progress=False)
    assert r.bias is False and r.settings["bias"] is False


def test_train_many_takes_per_layer_strengths_and_names_the_bad_setting():
    from nclab.ufm import train_many

    lam_W = np.array([[0.01, 0.02], [0.02, 0.01]])
    runs = train_many([IMBALANCED, [10, 10, 10, 10]], d=5, lam_W=lam_W, lam_H=[0.005, 0.01], L=2, progress=False)
    for r, lw, lh in zip(runs, lam_W, [0.005, 0.01]):
        assert r.settings["lam_W"] == lw.tolist() and r.settings["lam_H"] == lh
        assert abs(r.gap) < 1e-8
    with pytest.raises(ValueError, match=r"setting 1: lam_W\[1\] must be a positive"):
        train_many([IMBALANCED] * 2, d=5, lam_W=[[0.01, 0.01], [0.01, -1]], lam_H=0.01, L=2, progress=False)
    with pytest.raises(ValueError, match="one value per layer: L = 2"):
        train_many([IMBALANCED] * 2, d=5, lam_W=[[0.01, 0.01, 0.01]] * 2, lam_H=0.01, L=2, progress=False)


# ----------------------------------------------------------------------------- issue #17: comparisons and non-convergence


def test_comparison_with_the_closed_form_refuses_a_width_below_its_modes():
    lam = lam_for(IMBALANCED, 1, True, cut=False)  # all K - 1 = 3 modes survive
    r = train(IMBALANCED, d=2, lam_W=lam, lam_H=lam, progress=False, metrics=())
    assert r.objective > theory.global_minimizer(IMBALANCED, lam, lam).objective  # f* is only a lower bound at d = 2
    for call in (lambda: r.gap, r.distance_to_theory, r.theory):
        with pytest.raises(ValueError, match="d = 2 is smaller than the 3 modes that survive"):
            call()
    with pytest.raises(ValueError, match="Use d >= 3"):
        train(IMBALANCED, d=2, lam_W=lam, lam_H=lam, progress=False, metrics=("gap",))
    # a width below K is fine when it holds every surviving mode
    cut = lam_for(IMBALANCED, 1, True, cut=True)
    assert theory.global_minimizer(IMBALANCED, cut, cut).n_active == 1
    assert abs(train(IMBALANCED, d=1, lam_W=cut, lam_H=cut, progress=False).gap) < 1e-8


def test_a_run_whose_objective_rose_by_orders_of_magnitude_warns():
    from nclab.ufm import TrainingWarning

    with pytest.warns(TrainingWarning, match=r"rose from .* lower lr \(try lr=1\)"):
        train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, optimizer="adam", lr=10.0, steps=300, progress=False)


def test_a_run_that_ends_far_from_stationarity_warns():
    from nclab.ufm import TrainingWarning, train_many

    with pytest.warns(TrainingWarning, match="L-BFGS stopped at steps=3 before converging; raise steps"):
        train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, steps=3, progress=False)
    with pytest.warns(TrainingWarning, match="far from stationarity; raise steps"):
        train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, optimizer="gd", lr=0.01, steps=50, progress=False)
    with pytest.warns(TrainingWarning, match="before 2 of 2 settings converged; raise steps"):
        train_many([IMBALANCED] * 2, d=4, lam_W=0.01, lam_H=[0.01, 0.02], steps=3, progress=False)


def test_converged_runs_do_not_warn(recwarn):
    train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, L=2, progress=False)
    train(IMBALANCED, d=4, lam_W=0.01, lam_H=0.01, optimizer="gd", lr=0.5, steps=2000, progress=False)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_the_polish_survives_failing_svds(monkeypatch):
    """LAPACK's gesdd can fail to converge (issue #17); the polish falls back to SciPy's gesvd,
    and skips a move whose matrix no driver factors, instead of crashing."""
    import scipy.linalg

    lam = lam_for(IMBALANCED, 3, True, cut=True)
    f_star = theory.global_minimizer(IMBALANCED, lam, lam, L=3).objective

    def fails(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", fails)
    r = train(IMBALANCED, d=6, lam_W=lam, lam_H=lam, L=3, progress=False, metrics=())
    assert abs(r.objective - f_star) <= 1e-8 * f_star
    monkeypatch.setattr(scipy.linalg, "svd", lambda *a, **k: (_ for _ in ()).throw(np.linalg.LinAlgError("SVD did not converge")))
    r = train(IMBALANCED, d=6, lam_W=lam, lam_H=lam, L=3, progress=False, metrics=(), init_std=0.05, restarts=1)
    assert np.isfinite(r.objective)  # the moves were skipped; the run returned


@pytest.mark.slow
def test_large_badly_conditioned_deep_problem_reaches_the_closed_form():
    """Issue #17: K = 200, long-tailed with ratio 1e4, L = 6 crashed in the polish (gesdd)."""
    n = data.long_tailed(200, 2000, 1e4)
    lam = 1e-4
    g = theory.global_minimizer(n, lam, lam, L=6)
    assert 0 < g.n_active < 199
    r = train(n, d=256, lam_W=lam, lam_H=lam, L=6, progress=False, metrics=())
    assert abs(r.gap) < 1e-6 and r.distance_to_theory()["W_gram"] < 1e-3


# ----------------------------------------------------------------------------- issue #20: nothing of size N, class-level history


def test_exact_features_build_nothing_of_size_N():
    """N = 3e9 samples: a K x N or d x N array would need terabytes, so this passes only if the
    training and the history never build one; H appears on access only."""
    n = [1.5e9, 1e9, 5e8]
    lam = 1e-9
    r = train(n, d=5, lam_W=lam, lam_H=lam, L=2, progress=False, metrics=("nc1", "nc3", "nc4", "gap", "M_gram_error"))
    assert r.features is None and "H" not in r.__dict__ and "labels" not in r.__dict__
    assert abs(r.gap) < 1e-8 and r.history["nc1"][-1] == 0.0 and r.history["nc4"][-1] == 1.0
    small = train(IMBALANCED, d=5, lam_W=0.01, lam_H=0.01, progress=False)
    assert small.H.shape == (5, 40) and np.array_equal(small.H, small.means[:, small.labels])


@pytest.mark.filterwarnings("ignore::nclab.ufm.TrainingWarning")
def test_history_metrics_agree_with_the_per_sample_ones():
    from nclab import metrics

    kw = dict(d=5, lam_W=0.01, lam_H=0.01, progress=False, metrics=("nc3", "nc4"), steps=6)
    exact = train(IMBALANCED, **kw)
    W, M = exact.W, exact.means
    assert exact.history["nc4"][-1] == metrics.ncc_agreement(exact.H, W, exact.b, M)
    # NC3 with a bias: means centred by the sample-weighted mean (the rule of nclab.nets.centred_gram)
    free = train(IMBALANCED, features="free", **kw)
    Mc = metrics.centered_means(free.means, IMBALANCED, weighted=True)
    assert free.history["nc3"][-1] == pytest.approx(metrics.self_duality(free.W, Mc), rel=1e-9)
    assert free.history["nc4"][-1] == metrics.ncc_agreement(free.H, free.W, free.b, free.means)
    nob = train(IMBALANCED, bias=False, **kw)
    assert nob.history["nc3"][-1] == pytest.approx(metrics.self_duality(nob.W, nob.means), rel=1e-9)


def test_training_in_subspaces_keeps_the_product_of_the_gaussian_start():
    from nclab.ufm import _embed, _Problem

    counts = np.array(IMBALANCED, dtype=float)
    for L in (1, 3):
        problem = _Problem(counts, [0.01] * L, 0.01, d=7, L=L, bias=True, exact=True)
        theta, Q = problem.init(2, 0.5, torch.Generator().manual_seed(0))
        full = std_layers = 0.5 * torch.randn(2, 7 * 7 * (L - 1) + 4 * 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        sizes = [49] * (L - 1) + [28]
        shapes = [(7, 7)] * (L - 1) + [(4, 7)]
        std_layers = [p.reshape(2, *s) for p, s in zip(torch.split(full, sizes, dim=1), shapes)]
        assert theta.shape == (2, 16 * (L - 1) + 16) and Q[0].shape == (2, 7, 4)
        for row in range(2):
            reduced = [A[row].numpy() for A in problem.split(theta)]
            layers, _ = _embed(reduced, np.zeros((4, 4)), [q[row] for q in Q])
            np.testing.assert_allclose(product(layers), product([W[row].numpy() for W in std_layers]), atol=1e-12)
            assert all(np.linalg.norm(a) <= np.linalg.norm(w[row].numpy()) + 1e-12 for a, w in zip(reduced, std_layers))


@pytest.mark.parametrize("chunk", [1 << 22, 1], ids=["batched-screen", "ternary-search"])
def test_the_polish_recovers_many_lost_modes_in_a_few_block_moves(monkeypatch, chunk):
    """A tiny start loses every mode of a deep model; the block moves plant them back in a few
    L-BFGS runs, not one run per mode, whether the candidates are screened in one batch or
    searched one at a time (the path of large problems)."""
    from nclab import _polish

    monkeypatch.setattr(_polish, "CHUNK", chunk)
    runs = []
    real = _polish.run_lbfgs
    monkeypatch.setattr(_polish, "run_lbfgs", lambda *a: runs.append(1) or real(*a))
    n = data.long_tailed(24, 400, 10)
    lam = 2e-3
    g = theory.global_minimizer(n, lam, lam, L=3)
    assert g.n_active >= 12
    r = train(n, d=30, lam_W=lam, lam_H=lam, L=3, init_std=0.01, restarts=1, progress=False, metrics=())
    assert abs(r.gap) < 1e-8 and r.distance_to_theory()["W_gram"] < 1e-5
    assert len(runs) <= 6


GEOMETRY_METRICS = ("bias_error", "alignment_error", "orthogonality_error", "sv_error")


def test_geometry_metrics_fall_to_zero_when_training_reaches_the_optimum(one_thread):
    r = train(IMBALANCED, d=6, lam_W=5e-3, lam_H=5e-3, optimizer="gd", lr=0.1, steps=400, log_every=200,
              init_std=0.3, metrics=GEOMETRY_METRICS, progress=False)  # fmt: skip
    final = train(IMBALANCED, d=6, lam_W=5e-3, lam_H=5e-3, metrics=GEOMETRY_METRICS, progress=False)
    for m in GEOMETRY_METRICS:
        h = r.history[m]
        assert h[0] > 1e-2 and h[-1] < 0.1 * h[0], m  # far at the start, closer after gradient descent
        assert final.history[m][-1] < 1e-6, m  # and zero at the optimum


def _state_at(point, g, layers=None, b=None):
    """The history metrics' view of a point (free features, so that H and b are the point's own)."""
    layers = layers or point.layers
    problem = ufm._Problem(g.n, [g.lam_W[0]], g.lam_H, d=layers[0].shape[1], L=1, bias=True)
    as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=float))[None]  # noqa: E731
    theta = problem.pack([as_t(W) for W in layers], as_t(point.H), as_t(point.b if b is None else b))
    return ufm._State(problem, theta[0], g.objective, lambda: g)


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
    shifted = _state_at(point, g, b=point.b + np.array([0.1, 0, 0, 0]))
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
