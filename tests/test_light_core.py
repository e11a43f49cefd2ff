"""The light core: nclab's closed form, data and numpy metrics work, and never import torch."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter where `import torch` fails (as if torch were not installed).
SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ModuleNotFoundError
    import numpy as np
    import nclab
    from nclab import data, metrics, theory

    g = nclab.theory.global_minimizer([200, 100, 50, 50], 0.01, 0.01, L=2)
    assert g.n_active >= 1 and np.isfinite(g.objective)
    p = g.construct(d=6, seed=0)
    n = g.n
    H = p.H + 1e-3 * np.random.default_rng(0).standard_normal(p.H.shape)
    M = metrics.class_means(H, p.labels)
    stats = metrics.FeatureStats(4).update(H, p.labels)
    values = [metrics.nc1(H, p.labels, convention=c) for c in metrics.NC1_CONVENTIONS]
    values += [stats.nc1(), metrics.gram_distance(M.T @ M, g.M_gram), metrics.equinorm(g.W_gram + np.eye(4))]
    values += [metrics.equiangularity(theory.simplex_etf_gram(4)), metrics.nc3(p.W, M, n)]
    values += [metrics.ncc_agreement(H, p.W, p.b, M), *metrics.distance_to_theory(p.W, p.M, p.b, n, 0.01, 0.01, L=2).values()]
    values += list(metrics.mode_alignment(p.W, p.M, n)["cos"]) + list(metrics.wmd_singular_values(p.W, p.M, n))
    values += list(metrics.normalized(g.W_gram).ravel()) + list(metrics.ufm_centered_means(M, n).ravel())
    assert np.all(np.isfinite(values))
    assert data.one_hot([0, 1, 1]).shape == (2, 3)
    nclab.phases.phase_map([1, 4], [1e-3, 0.03], K_A=2, K_B=2, N=120)
    nclab.objective.ufm_objective(p.layers, p.H, p.b, data.one_hot(p.labels), 0.01, 0.01)
    nclab.exercises.check_etf_gram(np.eye(3), K=3)
    nclab.seed_everything(0)
    assert "torch" not in sys.modules or sys.modules["torch"] is None, "torch was imported"
    for name in ("train", "TrainResult", "ufm", "nets", "lbfgs"):
        try:
            getattr(nclab, name)
        except ImportError as exc:
            assert 'pip install "nclab[' in str(exc), str(exc)
        else:
            raise AssertionError(f"nclab.{name} loaded without torch")
    print("light core ok")
    """
)


def test_the_light_core_never_imports_torch():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PATH": "", "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "light core ok" in out.stdout
