"""Collapse analysis of any torch model through a forward hook, streamed in batches."""

import numpy as np
import pytest
import torch

from nclab import analysis, longtail, metrics, nets, theory

pytestmark = pytest.mark.usefixtures("one_thread")


class SmallCNN(torch.nn.Module):
    """Two strided convolutions, global pooling, a linear feature layer and a linear head."""

    def __init__(self, K: int = 10, d: int = 12):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, d),
        )  # fmt: skip
        self.fc = torch.nn.Linear(d, K)

    def forward(self, x):
        return self.fc(self.body(x))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small CNN trained on a generated long-tailed set stored in CIFAR-10's on-disk format."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: set up before the function-scoped one_thread
    root = tmp_path_factory.mktemp("cifar")
    images, labels = longtail.synthetic_images([24] * 10, seed=0)
    longtail.write_cifar(root, images, labels)
    ds = longtail.long_tailed("cifar10", root, ratio=8, seed=0)
    X = torch.stack([ds[i][0] for i in range(len(ds))]).double()
    y = torch.as_tensor(ds.labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SmallCNN().double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
    torch.set_num_threads(threads)
    return model, ds, X, y


def _by_hand(model, X):
    """Penultimate features (d, N) and logits (K, N), all at once."""
    with torch.no_grad():
        h = model.body(X)
        return h.T.numpy(), model.fc(h).T.numpy()


def test_hook_path_gives_the_numbers_of_analyze_features(trained):
    model, ds, X, y = trained
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
    report = analysis.analyze_model(model, loader, progress=False)
    H, logits = _by_hand(model, X)
    W, b = model.fc.weight.detach().numpy(), model.fc.bias.detach().numpy()
    assert np.mean(logits.argmax(0) != y.numpy()) == 0  # trained to zero training error
    assert report.layer == "input of 'fc'" and report.W.shape == (10, 12)
    for bias in (True, False):
        ref = nets.analyze_features(H, y.numpy(), W, b, bias=bias)
        got = report[bias]
        assert set(ref) == set(got)
        for key, value in ref.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-13, err_msg=key)
            elif isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-10, abs=1e-13, nan_ok=True), key
            else:
                assert got[key] == value, key
    assert report.with_bias["train_error"] == 0.0 and report.with_bias["nc4"] == 1.0
    assert "UFM with bias" in report.table() and "K = 10, N = " in report.table()


def test_streaming_statistics_match_in_memory_ones(trained):
    model, ds, X, y = trained
    report = analysis.analyze_model(model, torch.utils.data.TensorDataset(X, y), batch_size=7, progress=False)
    H, _ = _by_hand(model, X)
    yn = y.numpy()
    K, N = 10, len(yn)
    M = np.stack([H[:, yn == k].mean(1) for k in range(K)], axis=1)
    C = H - M[:, yn]
    Sw = C @ C.T / N
    Mu = M - M.mean(1, keepdims=True)
    Sb = Mu @ Mu.T / K
    w = np.bincount(yn) / N
    Mw = M - (M @ w)[:, None]
    Sb_w = (Mw * w) @ Mw.T
    s = report.stats
    np.testing.assert_allclose(report.means, M, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.within_cov.numpy(), Sw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.between_cov(False).numpy(), Sb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.between_cov(True).numpy(), Sb_w, rtol=1e-10, atol=1e-12)
    assert report.with_bias["nc1"] == pytest.approx(np.trace(Sw @ np.linalg.pinv(Sb)) / K, rel=1e-10)
    assert report.n.tolist() == ds.counts.tolist()


def test_named_layer_and_explicit_classifier(trained):
    model, ds, X, y = trained
    data = torch.utils.data.TensorDataset(X, y)
    pooled = analysis.analyze_model(model, data, layer="body.4", progress=False)  # (B, 16, 1, 1) -> (B, 16)
    assert pooled.layer == "output of 'body.4'" and pooled.W is None and pooled.with_bias["d"] == 16
    assert "W_gram" not in pooled.with_bias and "nc4" in pooled.with_bias  # decisions from the model's output
    W = model.fc.weight.detach().numpy()
    named = analysis.analyze_model(model, data, layer="body.6", classifier=W, progress=False, nc4=False)
    default = analysis.analyze_model(model, data, progress=False)
    assert named.with_bias["W_theory"] == pytest.approx(default.with_bias["W_theory"], rel=1e-12)
    assert "nc4" not in named.with_bias


def test_model_state_is_restored_and_hooks_removed(trained):
    model, ds, X, y = trained
    model.train()
    with pytest.raises(ValueError):
        analysis.analyze_model(model, [(X[:5], y[:5] + 20)], progress=False)
    assert model.training and not model.fc._forward_pre_hooks
    analysis.analyze_model(model, [(X, y)], progress=False)
    assert model.training and not model.fc._forward_pre_hooks
    model.eval()


def test_bad_input_gets_a_clear_error(trained):
    model, ds, X, y = trained
    data = [(X, y)]
    no_head = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    with pytest.raises(ValueError, match=r"no torch.nn.Linear layer.*layer="):
        analysis.analyze_model(no_head, data, progress=False)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        analysis.analyze_model(lambda x: x, data, progress=False)
    with pytest.raises(ValueError, match=r"class indices 0..9 \(K = 10 classes\); batch 0 has label 10"):
        analysis.analyze_model(model, [(X, torch.where(y == 0, 10, y))], progress=False)
    with pytest.raises(ValueError, match="class indices 0..9"):
        analysis.analyze_model(model, [(X, y - 1)], progress=False)
    with pytest.raises(ValueError, match=r"classes \[9\] have no samples"):
        analysis.analyze_model(model, [(X[y < 9], y[y < 9])], progress=False)
    with pytest.raises(ValueError, match="integer class indices"):
        analysis.analyze_model(model, [(X, y.double())], progress=False)
    bad = X.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match=r"batch 1 \(input of 'fc'\) contain NaN"):
        analysis.analyze_model(model, [(X, y), (bad, y)], progress=False)
    with pytest.raises(ValueError, match="layer 'head' is not a module"):
        analysis.analyze_model(model, data, layer="head", progress=False)
    with pytest.raises(TypeError, match="re-iterable"):
        analysis.analyze_model(model, iter(data), progress=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="drop_last"):
        analysis.analyze_model(model, loader, progress=False)
    with pytest.raises(ValueError, match="classifier has 5 columns"):
        analysis.analyze_model(model, data, classifier=np.ones((10, 5)), progress=False)
    with pytest.raises(ValueError, match="num_classes = 4"):
        analysis.analyze_model(model, data, num_classes=4, progress=False)
    with pytest.raises(ValueError, match="pair"):
        analysis.analyze_model(model, [X], progress=False)


def test_modes_on_the_ufm_optimum():
    """Features at the closed-form optimum: the measured modes are the predicted ones."""
    n, lam = [60, 60, 15, 15, 15], 0.012  # above the merge threshold sqrt(15)/165: minority modes die
    g = theory.global_minimizer(n, lam, lam)
    assert 0 < g.n_active < len(n)
    p = g.construct(d=8, seed=1)
    res = nets.analyze_features(p.H, p.labels, p.W, p.b, lam_W=lam, lam_H=lam)
    assert res["modes"] == res["modes_theory"] == g.n_active
    np.testing.assert_allclose(res["sv"], g.x / g.x.max(), atol=1e-8)
    assert res["lam_eff"] == res["lam_eff_W"] and res["bias"] is True
    assert res["lam_eff"] == pytest.approx(lam, rel=0.1)


def test_stream_statistics_needs_batches():
    with pytest.raises(ValueError, match="no batches"):
        analysis.stream_statistics(lambda: [], 3)


def test_report_figure(trained):
    model, ds, X, y = trained
    report = analysis.analyze_model(model, [(X, y)], progress=False)
    fig = report.plot()
    assert len(fig.axes) == 10 and "distance" in fig.axes[1].get_title()
    assert len(fig.axes[4].lines) == 2  # measured and predicted modes
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(trained):
    model, ds, X, y = trained
    cpu = analysis.analyze_model(model, [(X, y)], progress=False)
    gpu = analysis.analyze_model(model.to("cuda"), [(X, y)], progress=False)
    model.to("cpu")
    assert gpu.with_bias["nc1"] == pytest.approx(cpu.with_bias["nc1"], rel=1e-8)
    np.testing.assert_allclose(gpu.means, cpu.means, rtol=1e-8, atol=1e-10)
    assert metrics.gram_distance(gpu.with_bias["W_gram"], cpu.with_bias["W_gram"]) < 1e-10
