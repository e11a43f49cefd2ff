"""A real network on the digits: data, training into the terminal phase, user features, analysis."""

import numpy as np
import pytest
import torch

from nclab import data, nets, theory

SMALL = [30, 30, 10]


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


# ----------------------------------------------------------------------------- data


def test_load_digits_counts_order_and_standardisation():
    n = [20, 5, 12]
    X, y = nets.load_digits(n)
    assert X.shape == (37, 64) and X.dtype == np.float64
    assert np.array_equal(y, data.labels_from_counts(n))
    X_all, _ = nets.load_digits([170] * 10)
    assert abs(X_all.mean()) < 0.1 and 0.8 < X_all[:, X_all.std(0) > 0].std(0).mean() < 1.2
    Xr, _ = nets.load_digits(n, standardize=False)
    assert Xr.min() >= 0 and Xr.max() <= 16 and np.array_equal(Xr, np.round(Xr))


def test_load_digits_is_deterministic_and_seeded():
    a, _ = nets.load_digits(SMALL, seed=1)
    b, _ = nets.load_digits(SMALL, seed=1)
    c, _ = nets.load_digits(SMALL, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # no image is drawn twice within a class
    assert len(np.unique(a, axis=0)) == a.shape[0]


@pytest.mark.parametrize(
    "n, match",
    [([500, 10], r"n asks for 500 images of digit 0, but only 178 exist"), ([5] * 11, "at most 10 classes"), ([10], "n"), ([10, 0], "n"), ([10, 2.5], "n")],
)
def test_load_digits_rejects_bad_profiles(n, match):
    with pytest.raises(ValueError, match=match):
        nets.load_digits(n)


# ----------------------------------------------------------------------------- training


def test_short_cpu_run_reaches_zero_training_error_and_collapses():
    r = nets.train_network(SMALL, width=16, depth=2, lam_W=3e-3, lam_H=3e-3, steps=400, lr=3e-3, progress=False, device="cpu")
    h = r.history
    assert h["train_error"][-1] == 0.0
    assert h["nc1"][-1] < h["nc1"][0] / 10
    assert h["step"][0] == 0 and h["step"][-1] == 400 and np.all(np.diff(h["step"]) > 0)
    assert all(len(v) == len(h["step"]) for v in h.values())
    # shapes of the head, features and snapshots
    K, N, d = 3, sum(SMALL), 16
    assert r.H.shape == (d, N) and r.W.shape == (K, d) and r.b.shape == (K,) and r.means.shape == (d, K)
    assert len(r.snapshots["M"]) == len(h["step"]) and r.snapshots["M"][-1].shape == (d, K)
    X, _ = nets.load_digits(SMALL)
    assert np.allclose(r.features(X[:7]), r.H[:, :7], atol=1e-5)
    # the logged objective is (P) evaluated at H = backbone(X)
    from nclab.objective import ufm_objective

    f = ufm_objective(r.layers, r.H, r.b, data.one_hot(r.labels, K), [3e-3], 3e-3)
    assert abs(f - h["objective"][-1]) < 1e-4 * f


def test_same_seed_same_result_on_cpu_and_the_global_rng_is_untouched():
    kw = dict(width=8, depth=2, steps=20, progress=False, device="cpu", batch_size=16)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = nets.train_network(SMALL, seed=5, **kw)
    assert torch.equal(state, torch.get_rng_state())
    b = nets.train_network(SMALL, seed=5, **kw)
    c = nets.train_network(SMALL, seed=6, **kw)
    assert np.array_equal(a.H, b.H) and np.array_equal(a.W, b.W)
    assert not np.array_equal(a.H, c.H)


def test_deep_head_without_bias_and_cross_entropy():
    r = nets.train_network(SMALL, width=8, depth=1, L=2, bias=False, loss="ce", steps=10, progress=False, device="cpu")
    assert len(r.layers) == 2 and r.layers[0].shape == (8, 8) and r.layers[1].shape == (3, 8)
    assert np.all(r.b == 0) and np.all(np.isnan(r.history["M_theory"]))
    res = r.analyze()
    assert np.isnan(res["M_theory_nominal"]) and np.isfinite(res["M_theory"])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(loss="hinge"), "loss"),
        (dict(optimizer="lbfgs"), "optimizer"),
        (dict(lam_H=-1.0), "lam_H"),
        (dict(lr=0.0), "lr"),
        (dict(width=0), "width"),
        (dict(batch_size=0), "batch_size"),
        (dict(device="tpu"), "device"),
    ],
)
def test_train_network_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        nets.train_network(SMALL, steps=1, progress=False, **kw)


def test_train_network_on_user_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 5))
    y = np.repeat([0, 1, 2], 8)
    r = nets.train_network(X=X, labels=y, width=6, depth=1, steps=5, progress=False, device="cpu")
    assert r.H.shape == (6, 24) and list(r.n) == [8, 8, 8]
    with pytest.raises(ValueError, match="X and labels"):
        nets.train_network(X=X, steps=1, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_within_float32_tolerance():
    kw = dict(width=16, depth=2, steps=50, lr=3e-3, progress=False, dtype=torch.float64)
    cpu = nets.train_network(SMALL, device="cpu", **kw)
    gpu = nets.train_network(SMALL, device="cuda", **kw)
    assert gpu.settings["device"].startswith("cuda")
    assert np.allclose(cpu.H, gpu.H, atol=1e-6) and np.allclose(cpu.W, gpu.W, atol=1e-6)


# ----------------------------------------------------------------------------- user features


def test_load_features_npz_and_npy(tmp_path):
    rng = np.random.default_rng(0)
    F = rng.standard_normal((9, 4)).astype(np.float32)
    y = np.array([0, 1, 2] * 3)
    np.savez(tmp_path / "f.npz", features=F, labels=y)
    H, lab = nets.load_features(tmp_path / "f.npz")
    assert H.shape == (4, 9) and H.dtype == np.float64 and np.array_equal(H, F.T) and np.array_equal(lab, y)
    np.save(tmp_path / "f.npy", F)
    np.save(tmp_path / "y.npy", y.astype(float))  # whole-number floats are accepted
    H2, lab2 = nets.load_features(tmp_path / "f.npy", tmp_path / "y.npy")
    assert np.array_equal(H2, H) and lab2.dtype == np.int64
    H3, _ = nets.load_features(str(tmp_path / "f.npy"), labels=y)
    assert np.array_equal(H3, H)


def test_load_features_errors_name_the_problem(tmp_path):
    y = np.array([0, 1, 2] * 3)
    np.savez(tmp_path / "flat.npz", features=np.zeros(9), labels=y)
    with pytest.raises(ValueError, match="two-dimensional"):
        nets.load_features(tmp_path / "flat.npz")
    np.savez(tmp_path / "short.npz", features=np.zeros((9, 4)), labels=y[:7])
    with pytest.raises(ValueError, match="N = 9 samples, labels has 7"):
        nets.load_features(tmp_path / "short.npz")
    np.savez(tmp_path / "frac.npz", features=np.zeros((9, 4)), labels=y + 0.5)
    with pytest.raises(ValueError, match="whole numbers"):
        nets.load_features(tmp_path / "frac.npz")
    np.savez(tmp_path / "gap.npz", features=np.zeros((9, 4)), labels=np.where(y == 1, 2, y))
    with pytest.raises(ValueError, match=r"classes \[1\] have no samples"):
        nets.load_features(tmp_path / "gap.npz")
    np.savez(tmp_path / "keys.npz", X=np.zeros((9, 4)), labels=y)
    with pytest.raises(ValueError, match="'features'"):
        nets.load_features(tmp_path / "keys.npz")
    np.save(tmp_path / "f.npy", np.zeros((9, 4)))
    with pytest.raises(ValueError, match="labels="):
        nets.load_features(tmp_path / "f.npy")
    with pytest.raises(ValueError, match=".npz or .npy"):
        nets.load_features(tmp_path / "f.csv")


# ----------------------------------------------------------------------------- analysis


@pytest.mark.parametrize("bias", [True, False])
def test_analyze_features_on_the_ufm_optimum_with_noise(bias):
    n, lam = [40, 20, 10, 10], 4e-3
    g = theory.global_minimizer(n, lam, lam, bias=bias)
    p = g.construct(d=6, seed=0)
    H = p.H + 1e-6 * np.random.default_rng(0).standard_normal(p.H.shape)
    shift = np.linspace(1, 2, 6)[:, None] if bias else 0.0  # a shift the bias absorbs
    b = None if p.b is None else p.b - p.W @ (shift[:, 0] if bias else 0)
    res = nets.analyze_features(H + shift, p.labels, p.W, b, lam_W=lam, lam_H=lam, bias=bias)
    assert res["K"] == 4 and res["N"] == 80 and res["d"] == 6 and list(res["n"]) == n
    assert res["nc1"] < 1e-8 and res["nc1_weighted"] < 1e-8
    assert res["M_theory_nominal"] < 1e-5 and res["W_theory_nominal"] < 1e-5
    assert res["M_theory"] < 0.02 and res["W_theory"] < 0.02
    assert res["lam_eff_W"] == pytest.approx(lam, rel=0.1)
    assert res["train_error"] == 0.0 and res["nc4"] == 1.0
    # imbalanced: the ETF is the wrong reference
    assert res["M_etf"] > 0.1


def test_fit_effective_lambda_recovers_the_strength():
    n = [100, 50, 20, 20]
    lam = 0.003
    g = theory.global_minimizer(n, lam, lam)
    fit = nets.fit_effective_lambda(g.W_gram, n, which="W", grid=np.logspace(-4, -1.5, 101))
    assert fit.lam == pytest.approx(lam, rel=0.06) and fit.distance < 1e-2
    fitM = nets.fit_effective_lambda(3.0 * g.M_gram, n, which="M")  # scale-free
    assert fitM.lam == pytest.approx(lam, rel=0.1)
    with pytest.raises(ValueError, match="which"):
        nets.fit_effective_lambda(g.W_gram, n, which="H")
    with pytest.raises(ValueError, match="shape"):
        nets.fit_effective_lambda(np.eye(3), n)
    with pytest.raises(ValueError, match="grid"):
        nets.fit_effective_lambda(g.W_gram, n, grid=[0.0, 1.0])


def test_analyze_features_streams_in_batches():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 500)
    H = rng.standard_normal((5, 500)) + 3 * np.eye(5)[:, y % 5]
    whole = nets.analyze_features(H, y)
    parts = nets.analyze_features(H, y, batch_size=37)
    assert parts["nc1"] == pytest.approx(whole["nc1"], rel=1e-10)
    with pytest.raises(ValueError, match=r"shape \(d, N\)"):
        nets.analyze_features(H[0], y)
