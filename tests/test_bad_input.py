"""Bad input anywhere in the public API (outside nclab.ufm) gets a clear error.

Two parts:

* a table of bad calls (every one listed in issue #17, and more), each with the exception
  type and a pattern that names the parameter;
* a sweep that puts each of a menu of bad or extreme values into each parameter of a valid
  call of every cheap public function: the call must either raise ``ValueError``/``TypeError``
  whose message names the parameter, or return a result without NaN or inf. Nothing may end
  in another exception (numpy/LAPACK/torch internals) or hang.
"""

import dataclasses
import math
import warnings

import matplotlib
import numpy as np
import pytest
import torch

import nclab
from nclab import data, exercises, lbfgs, metrics, nets, objective, phases, plots, theory, widgets

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

N4 = [20.0, 10.0, 5.0, 5.0]
G = theory.global_minimizer(N4, 0.01, 0.01, L=2)
P = G.construct(d=6, seed=0)
Y = data.one_hot(P.labels)
H = P.H + 0.01 * np.random.default_rng(0).standard_normal(P.H.shape)
H_NAN = H.copy()
H_NAN[1, 3] = np.nan
H_INF = H.copy()
H_INF[0, 0] = np.inf


def quadratic(theta, rows):
    return (theta**2).sum(1)


# --------------------------------------------------------------------------- the table

BAD_CALLS = [
    # bias must be a real bool, never truthy
    (lambda: theory.global_minimizer(N4, 0.01, 0.01, bias="no"), TypeError, "bias must be True or False"),
    (lambda: theory.target(N4, bias=1), TypeError, "bias"),
    (lambda: theory.critical_lambda(N4, bias=None), TypeError, "bias"),
    (lambda: phases.phase_map([1, 2], [0.1], bias="yes"), TypeError, "bias"),
    (lambda: metrics.mode_alignment(P.W, P.M, N4, bias="no"), TypeError, "bias"),
    (lambda: objective.exact_features(P.layers, np.array(N4), 0.01, bias="no"), TypeError, "bias"),
    # integer-valued parameters are refused, not truncated
    (lambda: theory.global_minimizer(N4, 0.01, 0.01, L=1.5), ValueError, "L .*whole number.*1.5"),
    (lambda: data.balanced(2.5, 3), ValueError, "K must be a whole number"),
    (lambda: exercises.check_critical_lambda(0.01, N4, mode=1.5), ValueError, "mode"),
    (lambda: exercises.check_critical_lambda(0.01, N4, mode=0), ValueError, r"mode \(numbered from 1\) must be a whole number >= 1"),
    (lambda: exercises.check_critical_lambda(0.01, N4, mode=5), ValueError, "mode .*at most K = 4"),
    (lambda: lbfgs.BatchedLBFGS(quadratic, torch.ones(2, 3, dtype=torch.float64), history=0), ValueError, "history"),
    (lambda: lbfgs.BatchedLBFGS(quadratic, torch.ones(2, 3, dtype=torch.float64), history=2.5), ValueError, "history"),
    (lambda: lbfgs.BatchedLBFGS(quadratic, torch.ones(3, dtype=torch.float64)), ValueError, r"theta must have shape \(B, P\)"),
    (lambda: lbfgs.BatchedLBFGS(quadratic, torch.ones(2, 3, dtype=torch.float64), tol=-1.0), ValueError, "tol"),
    (lambda: lbfgs.BatchedLBFGS("f", torch.ones(2, 3, dtype=torch.float64)), TypeError, "fun"),
    # the scalar problem: N <= 0, c < 0 or NaN
    (lambda: theory.scalar_objective(1.0, 2.0, 0, 0.1), ValueError, r"N \(number of samples\)"),
    (lambda: theory.scalar_objective(1.0, 2.0, 10, -0.1), ValueError, r"c \(effective strength\)"),
    (lambda: theory.scalar_objective(-1.0, 2.0, 10, 0.1), ValueError, "x must have entries >= 0"),
    (lambda: theory.scalar_objective([1.0, 2.0], [1.0, 2.0, 3.0], 10, 0.1), ValueError, "x and s"),
    (lambda: theory.scalar_minimizer([1.0, 2.0], -5, 0.1, L=2), ValueError, "N"),
    (lambda: theory.scalar_minimizer([1.0, np.nan], 10, 0.1), ValueError, "s must be finite"),
    (lambda: theory.nonzero_branch(3.0, 10, np.nan, L=2), ValueError, "c"),
    (lambda: theory.nonzero_branch(3.0, -10, 0.1), ValueError, "N"),
    (lambda: theory.threshold(np.nan, 0.1), ValueError, "N"),
    (lambda: theory.threshold(10, 0.0, L=2), ValueError, "c"),
    (lambda: theory.secular_function(np.inf, N4), ValueError, "s must be finite"),
    # strengths and depth
    (lambda: theory.global_minimizer(N4, "0.1", 0.01), TypeError, "lam_W"),
    (lambda: theory.global_minimizer(N4, [0.01, 0.02], 0.01, L=3), ValueError, "lam_W must have one value per layer"),
    (lambda: theory.global_minimizer(N4, 0.01, -0.01), ValueError, "lam_H"),
    (lambda: theory.effective_c(0.01, 0.01, L=0), ValueError, "L"),
    (lambda: theory.spectrum_pdet([1000] * 200), ValueError, "n: the pseudo-determinant"),
    (lambda: G.construct(d=0), ValueError, "d "),
    (lambda: G.construct(d=6, seed=-1), ValueError, "seed"),
    # the objective: lam_W broadcast or refused, never truncated by zip
    (lambda: objective.ufm_objective(P.layers, P.H, P.b, Y, [0.01], 0.01), ValueError, "lam_W must be one strength .* L = 2"),
    (lambda: objective.ufm_objective(P.layers, P.H, P.b, Y, [0.01, 0.01, 0.01], 0.01), ValueError, "lam_W"),
    (lambda: objective.collapsed_objective(P.layers, P.M, P.b, np.array(N4), [0.01], 0.01), ValueError, "lam_W"),
    (lambda: objective.ufm_objective(P.layers, P.H, P.b, Y, 0.01, -0.01), ValueError, "lam_H"),
    (lambda: objective.ufm_objective(P.layers, P.H, P.b, Y, 0.01, 0.01, loss="l1"), ValueError, "loss"),
    (lambda: objective.ufm_objective(P.layers, P.H[:3], P.b, Y, 0.01, 0.01), ValueError, r"H must have shape \(\.\.\., d, N\) with d = 6"),
    (lambda: objective.ufm_objective(P.layers, P.H, P.b, Y[:, :5], 0.01, 0.01), ValueError, "Y must have shape"),
    (lambda: objective.ufm_objective(P.layers, P.H, P.b[:2], Y, 0.01, 0.01), ValueError, "b must have shape"),
    (lambda: objective.ufm_objective(P.layers, H_NAN, P.b, Y, 0.01, 0.01), ValueError, "H must be finite"),
    (lambda: objective.exact_features(P.layers, np.array(N4), 0.0), ValueError, "lam_H must be a positive"),
    (lambda: objective.projected_objective(P.layers, np.array(N4), [0.01], 0.01), ValueError, "lam_W must be one strength"),
    (lambda: objective.projected_objective(P.layers, np.array(N4), 0.01, 0.01, bias="no"), TypeError, "bias"),
    (lambda: objective.projected_value_and_grad([torch.ones(4, 3)], torch.ones(3), [0.1], 0.1), ValueError, "n must have shape"),
    (lambda: objective.exact_features(P.layers, np.array(N4), -1.0), ValueError, "lam_H"),
    (lambda: objective.exact_features(P.layers, np.array(N4[:3]), 0.01), ValueError, "n must have shape"),
    (lambda: objective.product([]), ValueError, "layers must hold at least one"),
    (lambda: objective.product([np.ones((3, 3)), np.ones((4, 2))]), ValueError, r"layers\[1\] must have 3 columns"),
    (lambda: objective.product(np.ones((3, 3))), TypeError, "layers must be a list"),
    # metrics: NaN/inf features, one class, shapes
    (lambda: metrics.nc1(H_NAN, P.labels), ValueError, r"H must be finite; it has 1 NaN .*\(1, 3\)"),
    (lambda: metrics.nc1(H_INF, P.labels, convention="weighted"), ValueError, "H must be finite"),
    (lambda: metrics.class_means(H_NAN, P.labels), ValueError, "H must be finite"),
    (lambda: metrics.covariances(H_INF, P.labels), ValueError, "H must be finite"),
    (lambda: metrics.FeatureStats(4).update(torch.tensor(H_NAN), torch.tensor(P.labels)), ValueError, "H must be finite"),
    (lambda: metrics.nc1(H, np.zeros(H.shape[1], dtype=int)), ValueError, "labels contain only class 0"),
    (lambda: metrics.nc1(H, P.labels, K=5), ValueError, r"classes \[4\] have no samples"),
    (lambda: metrics.nc1(H, P.labels, convention="papyan"), ValueError, "convention must be one of"),
    (lambda: metrics.nc1(H, P.labels - 1), ValueError, "labels must be class indices >= 0"),
    (lambda: metrics.nc1(H, P.labels.astype(float)), TypeError, "labels must be integer"),
    (lambda: metrics.nc1(H[:, :-1], P.labels), ValueError, "labels must have one entry per sample"),
    (lambda: metrics.FeatureStats(4).update(H, P.labels).update(H[:3], P.labels), ValueError, "H must have d = 6 rows"),
    (lambda: metrics.FeatureStats(1), ValueError, "K"),
    (lambda: metrics.FeatureStats(4).nc1(), ValueError, "no features yet"),
    (lambda: metrics.normalized([[np.nan, 1.0]]), ValueError, "G must be finite"),
    (lambda: metrics.gram_distance(np.eye(3), np.full((3, 3), np.nan)), ValueError, "target must be finite"),
    (lambda: metrics.gram_distance(np.eye(3), np.eye(4)), ValueError, "G and target must have the same shape"),
    (lambda: metrics.gram_distance(np.ones((2, 3)), np.ones((2, 3))), ValueError, "square"),
    (lambda: metrics.equinorm(np.array([1.0, 2.0, 3.0])), ValueError, "G must be 2-dimensional"),
    (lambda: metrics.equinorm(-np.eye(3)), ValueError, "Gram matrix"),
    (lambda: metrics.equinorm(np.zeros((3, 3))), ValueError, "all vectors are zero"),
    (lambda: metrics.equiangularity(np.eye(1)), ValueError, "at least 2 x 2"),
    (lambda: metrics.equiangularity(np.diag([1.0, 0.0])), ValueError, r"vector\(s\) \[1\] are zero"),
    (lambda: metrics.self_duality(P.W, P.M.T), ValueError, r"M must have shape \(d, K\)"),
    (lambda: metrics.nc3(P.W, P.M, N4[:3]), ValueError, "W must have shape"),
    (lambda: metrics.mode_alignment(P.W, P.M[:, :3], N4), ValueError, r"M must have shape \(d, K\) = \(6, 4\)"),
    (lambda: metrics.wmd_singular_values(P.W[:3], P.M, N4), ValueError, "W must have shape"),
    (lambda: metrics.distance_to_theory(P.W, P.M, P.b[:3], N4, 0.01, 0.01, L=2), ValueError, "b must be of shape"),
    (lambda: metrics.distance_to_theory(P.W, P.M, P.b, N4, 0.01, 0.01, L=2, bias="no"), TypeError, "bias"),
    (lambda: metrics.ncc_agreement(H[:3], P.W, P.b, P.M), ValueError, r"H must be of shape \(6, any\)"),
    (lambda: metrics.ncc_agreement(H, P.W, P.b, P.M, include_bias="yes"), TypeError, "include_bias"),
    (lambda: metrics.centered_means(P.M, weighted=True), ValueError, "counts are required"),
    (lambda: metrics.centered_means(P.M, N4[:3], weighted=True), ValueError, "M must have shape"),
    (lambda: metrics.ufm_centered_means(P.M, N4, bias=0), TypeError, "bias"),
    (lambda: metrics.alive_tolerance(-1), ValueError, "N"),
    # data
    (lambda: data.one_hot([-1, 0]), ValueError, "labels must be class indices >= 0; got -1"),
    (lambda: data.one_hot([0, 0, 0]), ValueError, "labels contain only class 0"),
    (lambda: data.one_hot([0, 2], K=2), ValueError, r"labels must lie in \[0, 1\]"),
    (lambda: data.counts_from_labels([0.0, 1.0]), TypeError, "labels must be integer"),
    (lambda: data.check_counts("abc"), TypeError, "n must be a sequence of class counts"),
    (lambda: data.check_counts([3, 2.5]), ValueError, "whole numbers"),
    (lambda: data.check_counts([3, 0]), ValueError, "counts >= 1"),
    (lambda: data.check_counts([3, np.nan]), ValueError, "finite counts"),
    (lambda: data.check_counts([5]), ValueError, "at least K = 2"),
    (lambda: data.long_tailed(4, 100, np.nan), ValueError, "ratio"),
    (lambda: data.long_tailed(4, 100, 0.5), ValueError, "ratio"),
    (lambda: data.profile("log", 4, 100), ValueError, "kind must be one of"),
    (lambda: data.step(1, 10, 0, 1), ValueError, "K_B"),
    # phases
    (lambda: phases.two_group_counts(0.5, K_A=2, K_B=2, N=120), ValueError, "ratio"),
    (lambda: phases.whole_ratios(K_A=2, K_B=2, N=3), ValueError, r"N \(total number of examples\)"),
    (lambda: phases.whole_ratios(K_A=2, K_B=2, N=10**16), ValueError, "N"),
    (lambda: phases.whole_ratios(K_A=2, K_B=2, N=120, max_ratio=0.5), ValueError, "max_ratio"),
    (lambda: phases.critical_lambdas([1, np.nan], K_A=2, K_B=2, N=120), ValueError, "ratios must be finite"),
    (lambda: phases.phase_map([1, 2], [0.1, -1.0]), ValueError, "lambdas"),
    (lambda: phases.phase_map([1, 2], [0.1], K_B=1), ValueError, "K_B"),
    (lambda: phases.train_phase_points([3.5], [0.01], N=120), ValueError, r"ratios must give whole counts.*allowed"),
    (lambda: phases.train_phase_points([1], [0.01], N=120, seed=-1), ValueError, "seed"),
    (lambda: phases.train_phase_points([1], [0.01], N=120, progress="no"), TypeError, "progress"),
    # nets (argument checks, before any training)
    (lambda: nets.load_digits([5, 5], seed=-1), ValueError, "seed"),
    (lambda: nets.load_digits([5, 5], standardize="yes"), TypeError, "standardize"),
    (lambda: nets.fit_effective_lambda(np.full((4, 4), np.nan), N4), ValueError, "G must be finite"),
    (lambda: nets.fit_effective_lambda(np.eye(4), N4, grid=[0.1, -1]), ValueError, "grid"),
    (lambda: nets.fit_effective_lambda(np.eye(4), N4, which="H"), ValueError, "which"),
    (lambda: nets.analyze_features(H_NAN, P.labels), ValueError, "H must be finite"),
    (lambda: nets.analyze_features(H, P.labels, P.W[:, :3]), ValueError, "W must be of shape"),
    (lambda: nets.analyze_features(H, P.labels, batch_size=0), ValueError, "batch_size"),
    (lambda: nets.centred_gram(P.M, N4[:3]), ValueError, "M must have shape"),
    (lambda: nets.MLPNetwork(64, 4, 8, 2, L=0, bias=True), ValueError, "L"),
    (lambda: nets.MLPNetwork(64, 4, 8, 2, L=1, bias="yes"), TypeError, "bias"),
    (lambda: nets.train_network([5, 5], bias="no", progress=False), TypeError, "bias"),
    (lambda: nets.train_network([5, 5], data_seed=-2, progress=False), ValueError, "data_seed"),
    (lambda: nets.train_network(X=np.full((4, 3), np.nan), labels=[0, 1, 0, 1], progress=False), ValueError, "X must be finite"),
    # plots
    (lambda: plots.plot_gram(np.full((2, 2), np.nan)), ValueError, "G must be finite"),
    (lambda: plots.plot_gram(np.eye(2), vmax=-1), ValueError, "vmax"),
    (lambda: plots.plot_gram(np.eye(2), annotate="no"), TypeError, "annotate"),
    (lambda: plots.plot_grams([np.eye(2)]), TypeError, "grams must be a dict"),
    (lambda: plots.plot_grams({"a": np.eye(2)}, figsize=(0, 3)), ValueError, "figsize"),
    (lambda: plots.plot_geometry(P.M, dim=4), ValueError, "dim"),
    (lambda: plots.plot_geometry(P.M, P.W.T), ValueError, "W must be of shape"),
    (lambda: plots.plot_history({"step": [0, 1], "nc1": [1.0]}, keys=("nc1",)), ValueError, r"history\['nc1'\]"),
    (lambda: plots.plot_history({"step": [0, 1]}, keys=None), TypeError, "keys"),
    (lambda: plots.plot_scalar_problem([1.0, -2.0], 40, 0.01, 2), ValueError, "s_values"),
    (lambda: plots.plot_sweep([0.0, 1.0], [1.0, 2.0]), ValueError, "param must be > 0 on a log axis"),
    (lambda: plots.plot_spectrum(N4, threshold=np.nan), ValueError, "threshold"),
    (lambda: plots.plot_phase_diagram("map"), ValueError, "maps"),
    (lambda: plots.class_colors(0), ValueError, "K"),
    # widgets (argument checks)
    (lambda: widgets.explorer_state(bias="no"), TypeError, "bias"),
    (lambda: widgets.explorer_state(kind="balanced", ratio=np.nan), ValueError, "ratio"),
    (lambda: widgets.theory_explorer(K=100), ValueError, r"K must be a number in \[2, 12\]"),
    (lambda: widgets.theory_explorer(lam_W=1e-6), ValueError, "lam_W"),
    (lambda: widgets.training_settings(d=0), ValueError, "d "),
    (lambda: widgets.training_settings(seed=1.5), ValueError, "seed"),
    (lambda: widgets.training_settings(L=np.nan), ValueError, "L"),
    (lambda: widgets.training_figure("result"), TypeError, "result must be a nclab.TrainResult"),
    (lambda: widgets.draw_theory({}), TypeError, "state must be the dict returned by explorer_state"),
    # exercises: bad problem parameters (bad answers give feedback instead)
    (lambda: exercises.check_etf_gram(np.eye(3), K=1), ValueError, "K"),
    (lambda: exercises.check_threshold(1.0, N=-1, c=0.1), ValueError, "N"),
    (lambda: exercises.check_collapsed_classes(set(), N4, 0.01, 0.01, bias="no"), TypeError, "bias"),
    # seeding: None is refused before anything is reseeded
    (lambda: nclab.seed_everything(None), TypeError, "seed"),
    (lambda: nclab.seed_everything(-1), ValueError, "seed"),
    (lambda: nclab.seed_everything(2**32), ValueError, "seed"),
]


@pytest.mark.parametrize("call, error, match", BAD_CALLS)
def test_bad_call_names_the_parameter(call, error, match):
    with pytest.raises(error, match=match):
        call()
    plt.close("all")


def test_seed_everything_reseeds_nothing_when_the_seed_is_bad():
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    with pytest.raises(TypeError):
        nclab.seed_everything(None)
    assert np.random.rand() == expected  # the generator's state was not touched


def test_good_twins_of_the_bad_calls():
    """The valid neighbours of the calls above work (and give the right answer)."""
    lam_W = [0.01, 0.01]
    assert objective.ufm_objective(P.layers, P.H, P.b, Y, 0.01, 0.01) == objective.ufm_objective(P.layers, P.H, P.b, Y, lam_W, 0.01)
    assert objective.collapsed_objective(P.layers, P.M, P.b, np.array(N4), 0.01, 0.01) == pytest.approx(G.objective, rel=1e-10)
    assert exercises.check_critical_lambda(0.0, N4, mode=4).passed  # the null mode, asked for by its number (from 1)
    assert data.balanced(3.0, 2).tolist() == [2.0, 2.0, 2.0]  # whole-valued floats are whole numbers
    ratios = phases.whole_ratios(K_A=2, K_B=2, N=10**9)  # divisor search: instant
    assert ratios[0] == 1 and np.all(10**9 % (2 * ratios + 2) == 0)


# --------------------------------------------------------------------------- the sweep

BAD_VALUES = {
    "None": None,
    "str": "abc",
    "True": True,
    "nan": float("nan"),
    "inf": float("inf"),
    "-1": -1,
    "0": 0,
    "1.5": 1.5,
    "huge": 1e308,
    "bigint": 10**30,
    "empty": [],
    "nested": [[1.0, 2.0]],
    "nan-array": np.array([np.nan, 1.0]),
    "object": object(),
}

# function, valid keyword arguments, {parameter: other names a message may name instead}
SWEEP = [
    (data.check_counts, dict(n=N4), {}),
    (data.balanced, dict(K=3, n=4), {}),
    (data.step, dict(K_A=2, n_A=5, K_B=2, n_B=1), {}),
    (data.long_tailed, dict(K=4, n_max=10, ratio=3.0), {}),
    (data.profile, dict(kind="step", K=4, n_max=10, ratio=3.0), {}),
    (data.one_hot, dict(labels=[0, 1, 1], K=3), {}),
    (data.counts_from_labels, dict(labels=[0, 1, 1], K=3), {}),
    (theory.check_lambdas, dict(lam_W=0.01, lam_H=0.01, L=1), {}),
    (theory.target_svd, dict(n=N4, bias=True), {}),
    (theory.secular_function, dict(s=1.5, n=N4), {}),
    (theory.two_group_spectrum, dict(K_A=2, n_A=5, K_B=2, n_B=1), {}),
    (theory.threshold, dict(N=40, c=0.01, L=2), {}),
    (theory.scalar_objective, dict(x=1.0, s=2.0, N=40, c=0.01, L=2), {"x": {"s"}, "s": {"x"}}),
    (theory.nonzero_branch, dict(s=4.0, N=40, c=0.01, L=2), {}),
    (theory.scalar_minimizer, dict(s=4.0, N=40, c=0.01, L=2), {}),
    (theory.critical_lambda, dict(n=N4, L=2, bias=True), {}),
    (theory.simplex_etf_gram, dict(K=3), {}),
    (theory.global_minimizer, dict(n=N4, lam_W=0.01, lam_H=0.01, L=2, bias=True), {}),
    (G.construct, dict(d=6, seed=0), {}),
    (metrics.class_means, dict(H=H, labels=P.labels, K=4), {"H": {"labels"}}),
    (metrics.nc1, dict(H=H, labels=P.labels, K=4, convention="sample_mean"), {"H": {"labels"}}),
    (metrics.covariances, dict(H=H, labels=P.labels, weighted=True), {"H": {"labels"}}),
    (metrics.centered_means, dict(M=P.M, counts=N4, weighted=True), {}),
    (metrics.ufm_centered_means, dict(M=P.M, n=N4, bias=True), {}),
    (metrics.gram_distance, dict(G=G.W_gram, target=G.M_gram), {}),
    (metrics.equinorm, dict(G=G.W_gram + np.eye(4)), {}),
    (metrics.equiangularity, dict(G=G.W_gram + np.eye(4)), {}),
    (metrics.nc3, dict(W=P.W, M=P.M, n=N4, bias=True), {}),
    (metrics.mode_alignment, dict(W=P.W, M=P.M, n=N4, bias=True), {"W": {"M"}}),
    (metrics.ncc_agreement, dict(H=H, W=P.W, b=P.b, M=P.M, include_bias=True), {"W": {"M", "H"}}),
    (metrics.wmd_singular_values, dict(W=P.W, M=P.M, n=N4), {"W": {"M"}}),
    (metrics.distance_to_theory, dict(W=P.W, M=P.M, b=P.b, n=N4, lam_W=0.01, lam_H=0.01, L=2, bias=True), {"W": {"M"}}),
    (objective.ufm_objective, dict(layers=P.layers, H=P.H, b=P.b, Y=Y, lam_W=0.01, lam_H=0.01, lam_b=0.0, loss="mse"), {}),
    (objective.exact_features, dict(layers=P.layers, n=np.array(N4), lam_H=0.01, bias=True), {}),
    (objective.collapsed_objective, dict(layers=P.layers, M=P.M, b=P.b, n=np.array(N4), lam_W=0.01, lam_H=0.01), {}),
    (objective.projected_objective, dict(layers=P.layers, n=np.array(N4), lam_W=0.01, lam_H=0.01, bias=True), {}),
    (phases.two_group_counts, dict(ratio=2.0, K_A=2, K_B=2, N=120), {}),
    (phases.whole_ratios, dict(K_A=2, K_B=2, N=120, max_ratio=10), {"K_A": {"N"}, "K_B": {"N"}}),
    (phases.critical_lambdas, dict(ratios=[1, 2], K_A=2, K_B=2, N=120, L=1, bias=True), {}),
    (lbfgs.BatchedLBFGS, dict(fun=quadratic, theta=torch.ones(2, 3, dtype=torch.float64), history=3, tol=1e-12), {}),
    (exercises.check_critical_lambda, dict(answer=1.0, n=N4, L=1, bias=True, mode=1), {"answer": None}),
    (exercises.check_threshold, dict(answer=1.0, N=40, c=0.01, L=2), {"answer": None}),
    (nets.fit_effective_lambda, dict(G=G.M_gram, n=N4, L=1, bias=True, which="M", grid=[0.01, 0.02]), {}),
    (widgets.explorer_state, dict(kind="step", K=4, n_max=200, ratio=4.0, lam_W=0.015, lam_H=0.015, L=1, bias=True), {}),
    (nclab.seed_everything, dict(seed=0), {}),
]
# where NaN is the documented answer: no branch exists (nonzero_branch), a pole (secular_function)
NAN_IS_AN_ANSWER = {theory.nonzero_branch, theory.secular_function}


def _finite(x, depth: int = 0) -> bool:
    if depth > 4 or x is None or isinstance(x, (bool, str, np.bool_)):
        return True
    if isinstance(x, (int, float, np.number)):
        return math.isfinite(float(x))
    if isinstance(x, np.ndarray):
        return x.dtype.kind not in "fc" or bool(np.all(np.isfinite(x)))
    if isinstance(x, torch.Tensor):
        return not x.is_floating_point() or bool(torch.isfinite(x).all())
    if isinstance(x, dict):
        return all(_finite(v, depth + 1) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_finite(v, depth + 1) for v in x)
    if dataclasses.is_dataclass(x):
        return all(_finite(getattr(x, f.name), depth + 1) for f in dataclasses.fields(x))
    return True


@pytest.mark.parametrize("fn, good, also", SWEEP, ids=lambda v: getattr(v, "__qualname__", None) if callable(v) else "")
def test_sweep_of_bad_values(fn, good, also):
    problems = []
    for param in good:
        if param in also and also[param] is None:  # a student's answer never raises
            continue
        names = {param, *also.get(param, ())}
        for label, value in BAD_VALUES.items():
            kwargs = {**good, param: value}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = fn(**kwargs)
            except (ValueError, TypeError) as exc:
                if not any(name in str(exc) for name in names):
                    problems.append(f"{param}={label}: {type(exc).__name__} does not name {param}: {exc}")
            except Exception as exc:  # noqa: BLE001 - anything else is a finding
                problems.append(f"{param}={label}: {type(exc).__name__}: {exc}")
            else:
                if fn not in NAN_IS_AN_ANSWER and not _finite(out):
                    problems.append(f"{param}={label}: returned NaN or inf")
    assert not problems, "\n".join(problems)
