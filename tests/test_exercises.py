"""Checkers of nclab.exercises: each accepts the reference answer, rejects typical wrong answers
with a message that says what is wrong, and never shows the expected values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nclab import exercises as ex
from nclab import metrics, theory

N_COUNTS = [200, 100, 50, 50]


def _leak_strings(values) -> set[str]:
    """Renderings of the expected numbers that a message must not contain."""
    out = set()
    for v in np.ravel(np.asarray(values, dtype=float)):
        if not np.isfinite(v):
            continue
        for fmt in (".3g", ".4g", ".2f", ".3f", ".4f"):
            s = format(v, fmt)
            if sum(ch.isdigit() for ch in s) >= 3 and s.strip("-0.") not in {"", "1", "10", "100"}:
                out.add(s)
    return out


def _text(fb: ex.Feedback) -> str:
    return f"{fb}\n{fb._repr_markdown_()}"


def assert_fails(fb: ex.Feedback, *phrases: str, expected=None) -> None:
    assert isinstance(fb, ex.Feedback)
    assert not fb.passed and not fb, str(fb)
    text = _text(fb).lower()
    for p in phrases:
        assert p.lower() in text, f"{p!r} not in feedback:\n{fb}"
    if expected is not None:
        leaked = [s for s in _leak_strings(expected) if s in _text(fb)]
        assert not leaked, f"feedback shows expected values {leaked}:\n{fb}"


def assert_passes(fb: ex.Feedback) -> None:
    assert fb.passed and bool(fb), str(fb)


# --------------------------------------------------------------------------- Feedback, require


def test_feedback_display():
    fb = ex.check_etf_gram(theory.simplex_etf_gram(3), 3, task="1a")
    assert_passes(fb)
    assert fb.task == "1a"
    assert str(fb).startswith("\u2705 Task 1a: Correct")
    assert fb._repr_markdown_().startswith("**\u2705 Task 1a:** Correct")
    bad = ex.check_etf_gram(np.eye(3), 3)
    assert str(bad).startswith("\u274c This is the Gram matrix of an orthonormal frame") and "Hint:" in str(bad)
    assert "*Hint:*" in bad._repr_markdown_()


def test_require_passes_feedback_through_and_raises_with_its_text():
    good = ex.check_etf_gram(theory.simplex_etf_gram(3), 3)
    assert ex.require(good) is good
    bad = ex.check_etf_gram(np.eye(3), 3, task="1")
    with pytest.raises(AssertionError) as info:
        ex.require(bad)
    assert str(info.value) == str(bad) and "orthonormal frame" in str(info.value)
    with pytest.raises(TypeError, match="Feedback"):
        ex.require(True)


# --------------------------------------------------------------------------- own_work


def _global_minimizer_via_package(*args, **kwargs):
    import nclab

    return nclab.global_minimizer(*args, **kwargs)


def test_own_work_switches_off_answer_functions_and_restores_them():
    from nclab.theory import simplex_etf_gram as imported_earlier

    reference = imported_earlier(4)
    H, y = np.eye(2), np.array([0, 1])
    with ex.own_work("1"):
        for call in (lambda: imported_earlier(4), lambda: theory.simplex_etf_gram(4), lambda: metrics.nc1(H, y, 2)):
            with pytest.raises(PermissionError, match="switched off.*Task 1 asks for your own computation"):
                call()
        with pytest.raises(PermissionError, match="global_minimizer"):
            _global_minimizer_via_package([3, 2], 0.01, 0.01)
        with pytest.raises(PermissionError, match="FeatureStats"):  # classes and methods too
            metrics.FeatureStats(K=2).nc1()
        assert np.allclose(np.ones(3) @ np.eye(3), 1)  # numpy is untouched
    assert np.array_equal(imported_earlier(4), reference)
    assert np.array_equal(theory.simplex_etf_gram(4), reference)
    assert metrics.nc1(H, y, 2) == 0.0


def test_own_work_blocks_loading_and_reloading_answer_modules(monkeypatch):
    import importlib
    import importlib.util
    import sys

    with ex.own_work():
        with pytest.raises(ImportError, match="cannot be loaded"):
            importlib.reload(theory)
        monkeypatch.delitem(sys.modules, "nclab.phases", raising=False)
        with pytest.raises(ImportError, match="nclab.phases cannot be loaded"):
            importlib.import_module("nclab.phases")
    # allowed again afterwards (found, not reloaded: a reload would replace nclab's functions)
    assert not any(isinstance(f, ex._BlockAnswerImports) for f in sys.meta_path)
    assert importlib.util.find_spec("nclab.phases") is not None


def test_own_work_restores_after_an_error():
    with pytest.raises(ZeroDivisionError):
        with ex.own_work():
            1 / 0
    assert np.allclose(theory.simplex_etf_gram(2), [[1, -1], [-1, 1]])


# --------------------------------------------------------------------------- generic answer problems


@pytest.mark.parametrize(
    "answer, phrases",
    [
        (None, ["None", "return"]),
        ("G", ["wrong type", "str"]),
        ({"a": 1}, ["wrong type", "dict"]),
        ([[1, 2], [3]], ["could not be read"]),
        (np.eye(4) * 1j, ["complex"]),
        (np.eye(3), ["wrong shape", "(4, 4)", "(3, 3)"]),
        (np.ones(16), ["wrong shape", "reshape"]),
        (np.full((4, 4), np.nan), ["nan", "(1, 1)", "counted from 1"]),
        (np.full((4, 4), np.inf), ["infinite"]),
    ],
)
def test_bad_input_is_explained(answer, phrases):
    assert_fails(ex.check_etf_gram(answer, 4), *phrases)


def test_torch_tensor_accepted():
    assert_passes(ex.check_etf_gram(torch.as_tensor(theory.simplex_etf_gram(5)), 5))


# --------------------------------------------------------------------------- ETF


def test_etf_gram():
    K = 5
    G = theory.simplex_etf_gram(K)
    assert_passes(ex.check_etf_gram(G, K))
    assert_passes(ex.check_etf_gram(G.tolist(), K))
    assert_fails(ex.check_etf_gram(np.eye(K), K), "orthonormal frame", expected=G)
    assert_fails(ex.check_etf_gram(np.eye(K) - 1 / K, K), "constant multiple", "too small", expected=G)
    assert_fails(ex.check_etf_gram(-G, K), "wrong sign", expected=G)
    asym = G.copy()
    asym[0, 1] += 0.1
    assert_fails(ex.check_etf_gram(asym, K), "not symmetric", expected=G)
    off = np.eye(K) + (1 - np.eye(K)) * (-1 / K)  # unit diagonal, wrong angle
    assert_fails(ex.check_etf_gram(off, K), "sum to zero", expected=G)
    lengths = G.copy()
    lengths[2, 2] = 2.0
    assert_fails(ex.check_etf_gram(lengths, K), "diagonal", "entry 3 (counted from 1)", expected=G)


# --------------------------------------------------------------------------- target and spectrum


def test_target_with_bias():
    n = np.array(N_COUNTS, dtype=float)
    K, N = n.size, n.sum()
    T = theory.target(n)
    D = np.diag(np.sqrt(n))
    assert_passes(ex.check_target(T, n))
    assert_fails(ex.check_target(T.T, n), "transposed", expected=T)
    assert_fails(ex.check_target(D, n), "without a bias", expected=T)
    assert_fails(ex.check_target((np.eye(K) - 1 / K) @ D, n), "1 1^T / K", expected=T)
    assert_fails(ex.check_target((np.eye(K) - np.outer(n, np.ones(K)) / N) @ np.diag(n), n), "diag(n)", expected=T)
    assert_fails(ex.check_target(np.eye(K) - np.outer(n, np.ones(K)) / N, n), "centring matrix", expected=T)
    assert_fails(ex.check_target(D @ (np.eye(K) - np.outer(n, np.ones(K)) / N), n), "wrong order", expected=T)
    assert_fails(ex.check_target(2 * T, n), "constant multiple", expected=T)
    wrong = T.copy()
    wrong[1, 2] += 1.0
    fb = ex.check_target(wrong, n)
    assert_fails(fb, "sum to zero", expected=T)


def test_target_without_bias():
    n = np.array(N_COUNTS, dtype=float)
    assert_passes(ex.check_target(np.diag(np.sqrt(n)), n, bias=False))
    assert_fails(ex.check_target(np.diag(n), n, bias=False), "diag(n)", expected=np.sqrt(n))
    wrong = np.diag(np.sqrt(n))
    wrong[3, 3] = 1.0
    assert_fails(ex.check_target(wrong, n, bias=False), "(4, 4)", "1 of 16", expected=np.sqrt(n))


def test_singular_values():
    n = N_COUNTS
    s = theory.singular_values(n)
    assert_passes(ex.check_singular_values(s, n))
    assert_passes(ex.check_singular_values(np.linalg.svd(theory.target(n), compute_uv=False), n))  # round-off zero
    assert_fails(ex.check_singular_values(s[::-1], n), "wrong order", "descending", expected=s)
    assert_fails(ex.check_singular_values(s[:-1], n), "wrong shape", "include it", expected=s)
    assert_fails(ex.check_singular_values(s**2, n), "squared", expected=s)
    assert_fails(ex.check_singular_values(np.sqrt(n), n), "square roots of the counts", expected=s)
    assert_fails(ex.check_singular_values(s * 0.5, n), "constant multiple", "too small", expected=s)
    assert_fails(ex.check_singular_values(np.array([12.0, 8.0, 7.0, 0.0]), n), "wrong entries", expected=s)


def test_singular_values_without_bias():
    n = [30, 80, 10]
    s = theory.singular_values(n, bias=False)
    assert_passes(ex.check_singular_values(s, n, bias=False))
    assert_fails(ex.check_singular_values(np.sqrt(n), n, bias=False), "wrong order", expected=s)


def test_interlacing_bounds():
    n = [50, 200, 80, 120, 30]
    lo, up = theory.interlacing_bounds(n)
    assert_passes(ex.check_interlacing_bounds((lo, up), n))
    assert_fails(ex.check_interlacing_bounds((up, lo), n), "swapped", expected=np.r_[lo, up])
    unsorted = (np.append(np.sqrt(n[1:]), 0.0), np.append(np.sqrt(n[:-1]), 0.0))
    assert_fails(ex.check_interlacing_bounds(unsorted, n), "sorted", expected=np.r_[lo, up])
    assert_fails(ex.check_interlacing_bounds((lo**2, up**2), n), "square roots", expected=np.r_[lo, up])
    assert_fails(ex.check_interlacing_bounds(lo, n), "pair (lower, upper)")
    assert_fails(ex.check_interlacing_bounds((lo[:-1], up[:-1]), n), "wrong shape")


# --------------------------------------------------------------------------- collapse


def test_collapsed_classes_without_bias():
    """Classes are numbered from 1, as in the book's figures."""
    n = [500, 500, 50, 50, 50]
    lam = 0.008
    expected = {3, 4, 5}
    assert_passes(ex.check_collapsed_classes(expected, n, lam, lam))
    assert_passes(ex.check_collapsed_classes([5, 3, 4], n, lam, lam))
    assert_passes(ex.check_collapsed_classes(np.array([3, 4, 5]), n, lam, lam))
    assert_passes(ex.check_collapsed_classes(np.array([False, False, True, True, True]), n, lam, lam))
    assert_passes(ex.check_collapsed_classes(set(), n, 0.005, 0.005))
    assert_fails(ex.check_collapsed_classes({2, 3, 4}, n, lam, lam), "shifted by one", "from 1")
    assert_fails(ex.check_collapsed_classes({0, 3}, [500, 50, 500, 50, 500], lam, lam), "no class 0", "numbered from 1")
    assert_fails(ex.check_collapsed_classes({1, 2}, n, lam, lam), "survive")
    assert_fails(ex.check_collapsed_classes({3, 4}, n, lam, lam), "1 collapsing class is missing", "s_thr")
    assert_fails(ex.check_collapsed_classes({2, 3, 4, 5}, n, lam, lam), "1 of the classes you listed does not collapse")
    assert_fails(ex.check_collapsed_classes([True, False], n, lam, lam), "mask", "5")
    assert_fails(ex.check_collapsed_classes(3, n, lam, lam), "{3}")
    assert_fails(ex.check_collapsed_classes([3, 3], n, lam, lam), "more than once")
    assert_fails(ex.check_collapsed_classes([7], n, lam, lam), "class 7 is out of range", "1 to 5")
    assert_fails(ex.check_collapsed_classes([2.5], n, lam, lam), "whole numbers")
    assert_fails(ex.check_collapsed_classes(None, n, lam, lam), "None")
    assert_fails(ex.check_collapsed_classes("3,4,5", n, lam, lam), "wrong type")


def test_collapsed_classes_at_the_threshold_use_the_strict_rule():
    """sqrt(100) = 10 = N lam for N = 400, lam = 0.025: x = 0 there, so class 2 collapses."""
    n = [200, 100, 50, 50]
    assert_passes(ex.check_collapsed_classes({2, 3, 4}, n, 0.025, 0.025))
    assert_fails(ex.check_collapsed_classes({3, 4}, n, 0.025, 0.025), "missing")


def test_collapsed_modes_with_bias_and_depth():
    n = N_COUNTS
    assert_passes(ex.check_collapsed_classes({2, 3, 4}, n, 0.022, 0.022, bias=True))
    assert_fails(ex.check_collapsed_classes({2, 3}, n, 0.022, 0.022, bias=True), "last mode", "s = 0", "mode 4")
    assert_passes(ex.check_collapsed_classes({2, 3, 4}, n, 0.02, 0.02, L=3, bias=True))
    # the L = 1 rule s <= N c with c = 0.02 kills only modes 3 and 4 here
    assert_fails(ex.check_collapsed_classes({3, 4}, n, 0.02, 0.02, L=3, bias=True), "one-layer rule")


def test_class_mean_norms():
    n = np.array([500, 500, 50, 50, 50], dtype=float)
    g = theory.global_minimizer(n, 0.004, 0.009, bias=False)
    norms = np.sqrt(np.diag(g.M_gram))
    assert_passes(ex.check_class_mean_norms(norms, n, 0.004, 0.009))
    assert_fails(ex.check_class_mean_norms(norms**2, n, 0.004, 0.009), "squared", expected=norms)
    assert_fails(ex.check_class_mean_norms(norms * np.sqrt(n), n, 0.004, 0.009), "columns of M D", expected=norms)
    assert_fails(ex.check_class_mean_norms(norms[::-1], n, 0.004, 0.009), "wrong order", "class order", expected=norms)
    assert_fails(ex.check_class_mean_norms(-norms, n, 0.004, 0.009), "negative")
    # the common mistake c/lam_W instead of c/lam_H is a constant multiple
    assert_fails(ex.check_class_mean_norms(norms * 1.5, n, 0.004, 0.009), "constant multiple", "too large", expected=norms)


# --------------------------------------------------------------------------- NC1


def _nc1_numpy(H, labels, K, weighted=False):
    """NC1 computed with numpy only (own_work switches nclab.metrics off inside check_nc1)."""
    counts = np.bincount(labels, minlength=K)
    means = np.stack([H[:, labels == k].mean(axis=1) for k in range(K)], axis=1)
    deviations = H - means[:, labels]
    Sigma_W = deviations @ deviations.T / H.shape[1]
    weights = counts / counts.sum() if weighted else np.full(K, 1 / K)
    centred = means - (means @ weights)[:, None]
    Sigma_B = (centred * weights) @ centred.T
    return float(np.trace(Sigma_W @ np.linalg.pinv(Sigma_B))) / K


def test_nc1_numpy_reference_agrees_with_nclab():
    for _, H, labels, K in ex._nc1_cases():
        assert np.isclose(_nc1_numpy(H, labels, K), metrics.nc1(H, labels, K), rtol=1e-9, atol=1e-12)
        assert np.isclose(_nc1_numpy(H, labels, K, True), metrics.nc1(H, labels, K, weighted=True), rtol=1e-9, atol=1e-12)


def test_nc1_reference_passes():
    assert_passes(ex.check_nc1(_nc1_numpy))


def test_nc1_calling_the_library_does_not_pass():
    assert_fails(ex.check_nc1(lambda H, y, K: metrics.nc1(H, y, K)), "PermissionError", "switched off", "own computation")


def test_nc1_mistakes():
    assert_fails(ex.check_nc1(lambda H, y, K: _nc1_numpy(H, y, K, weighted=True)), "sample-weighted")
    assert_fails(ex.check_nc1(lambda H, y, K: K * _nc1_numpy(H, y, K)), "divide the trace by k")
    assert_fails(ex.check_nc1(lambda H, y, K: 2 * _nc1_numpy(H, y, K)), "constant multiple")

    def not_done(H, y, K):
        raise NotImplementedError("Task 4")

    assert_fails(ex.check_nc1(not_done), "not implemented")

    def with_inv(H, y, K):
        means = np.stack([H[:, y == k].mean(1) for k in range(K)], 1)
        C = means - means.mean(1, keepdims=True)
        Sb = C @ C.T / K
        Sw = (H - means[:, y]) @ (H - means[:, y]).T / H.shape[1]
        return float(np.trace(Sw @ np.linalg.inv(Sb))) / K

    assert_fails(ex.check_nc1(with_inv), "pinv")

    def sorted_labels_only(H, y, K):  # assumes labels come sorted: wrong on the shuffled cases
        counts = np.bincount(y, minlength=K)
        return _nc1_numpy(H, np.repeat(np.arange(K), counts), K)

    assert_fails(ex.check_nc1(sorted_labels_only), "shuffled")
    assert_fails(ex.check_nc1(lambda H, y, K: None), "none", "return")
    assert_fails(ex.check_nc1(lambda H, y, K: np.ones(3)), "one number")
    assert_fails(ex.check_nc1(0.5), "pass your function itself")
    assert_fails(ex.check_nc1(lambda H, y, K: H.T @ np.ones(4)), "raised valueerror", "(d, N)")


# --------------------------------------------------------------------------- thresholds, critical lambda, bias


def test_threshold():
    N, c = 400, 0.02
    for L in (1, 2, 3):
        assert_passes(ex.check_threshold(theory.threshold(N, c, L), N, c, L))
    t = theory.threshold(N, c, 3)
    assert_passes(ex.check_threshold(np.float32(t), N, c, 3))
    assert_fails(ex.check_threshold(N * c, N, c, 3), "l = 1", expected=t)
    assert_fails(ex.check_threshold(t * 2 / 3, N, c, 3), "jumps to", expected=t)
    assert_fails(ex.check_threshold((N * c) ** (4 / 6), N, c, 3), "constant factor", expected=t)
    assert_fails(ex.check_threshold(t**2, N, c, 3), "squared", expected=t)
    p = 2 / 4
    a = N * c
    x_min = (p * a) ** (1 / (1 + p))
    assert_fails(ex.check_threshold(x_min + a * x_min ** (-p), N, c, 3), "local minimum", expected=t)
    assert_fails(ex.check_threshold(t * 1.1, N, c, 3), "too large", expected=t)
    assert_fails(ex.check_threshold([t, t], N, c, 3), "one number")
    assert_fails(ex.check_threshold(float("nan"), N, c, 3), "nan")


def test_critical_lambda():
    n = [50, 50, 50, 50]
    crit = theory.critical_lambda(n)
    assert_passes(ex.check_critical_lambda(crit[0], n, mode=1))  # modes are numbered from 1
    assert_passes(ex.check_critical_lambda(crit, n))
    assert_fails(ex.check_critical_lambda(crit[0] ** 2, n, mode=1), "squared", expected=crit[0])
    assert_fails(ex.check_critical_lambda(np.sqrt(crit[0]), n, mode=1), "square root", expected=crit[0])
    assert_fails(ex.check_critical_lambda(np.sqrt(50) / 200**2, n, mode=1), "divided by n twice", expected=crit[0])
    assert_fails(ex.check_critical_lambda(crit[::-1], n), "wrong order", expected=crit)
    deep = theory.critical_lambda(N_COUNTS, L=2)
    assert_passes(ex.check_critical_lambda(deep[1], N_COUNTS, L=2, mode=2))
    assert_fails(ex.check_critical_lambda(theory.singular_values(N_COUNTS)[1] / 400, N_COUNTS, L=2, mode=2), "one-layer", expected=deep[1])
    for bad in (0, 5, 1.5, True):  # 2.0 counts as 2 (nclab._validate.whole)
        with pytest.raises(ValueError, match="mode"):
            ex.check_critical_lambda(crit[0], n, mode=bad)


def test_optimal_bias():
    n = np.array(N_COUNTS, dtype=float)
    b = n / n.sum()
    assert_passes(ex.check_optimal_bias(b, n))
    assert_passes(ex.check_optimal_bias(list(b), n))
    assert_fails(ex.check_optimal_bias(np.full(4, 0.25), n), "1/k is the balanced answer")
    assert_fails(ex.check_optimal_bias(n, n), "counts themselves")
    assert_fails(ex.check_optimal_bias(np.zeros(4), n), "zero bias")
    assert_fails(ex.check_optimal_bias(np.sqrt(n) / np.sqrt(n).sum(), n), "sqrt(n)")
    perm = b[[1, 0, 2, 3]]
    assert_fails(ex.check_optimal_bias(perm, n), "wrong order", "class order")
    assert_fails(ex.check_optimal_bias(b[:3], n), "wrong shape", "(4,)")
    assert_passes(ex.check_optimal_bias(np.full(3, 1 / 3), [7, 7, 7]))  # balanced: 1/K is right
