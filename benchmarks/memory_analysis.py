"""Peak memory of the collapse analysis against the dataset size (issue #21).

Usage::

    python benchmarks/memory_analysis.py [--n 10000] [--factor 10] [--json FILE]

Record ``analysis-memory``: :func:`nclab.analysis.analyze_model` (forward hook, two streamed
passes) on ``n`` and ``factor * n`` samples, each in a fresh subprocess, against collecting
the same features by hand into one (d, N) matrix and calling
:func:`nclab.nets.analyze_features`. The data are generated batch by batch from a seed, so
they occupy no memory themselves, and the model is an MLP with d = 256 features, K = 10.

Each subprocess measures, after imports, the model and a warm-up analysis of ten batches (so
the allocator's pools have settled): its peak resident set size at the end and its growth (``ru_maxrss``, every allocation,
torch's included) over the analysis, and the peak of Python-level allocations
(``tracemalloc``, numpy's arrays included, torch's tensors not). The streamed analysis should
grow by the same small amount for both sizes; the by-hand path by about ``factor`` times
``N d`` doubles.

The subprocesses run with a fixed ``MALLOC_MMAP_THRESHOLD_`` (glibc). With glibc's default,
the threshold adapts to the freed batch-sized buffers and the heap fragments: the peak then
creeps up by 10-30 MB over a few hundred batches whatever the program holds (measured here:
+8, +22 and +33 MB at 10, 100 and 300 batches), while with the fixed threshold the growth of
the streamed analysis is the same 5.8 MB at 10k, 100k and 300k samples.

To add it to ``benchmarks/run.py``: ``from memory_analysis import record`` and append
``record(n=..., factor=...)`` to the records (``_fmt_row`` needs a line for
``name == "analysis-memory"``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

D, K, IN, BATCH = 256, 10, 64, 1000
#: glibc's malloc: allocations above this many bytes are mapped and unmapped directly.
MMAP_THRESHOLD = 128 * 1024


def _child(n: int, path: str) -> dict:
    """Runs in the subprocess: one analysis of ``n`` generated samples; returns the measurements."""
    import resource
    import time
    import tracemalloc

    import numpy as np
    import torch

    from nclab import analysis, nets

    torch.set_num_threads(1)

    class Generated:
        """Re-iterable batches of inputs around K class templates, generated from a seed."""

        def __init__(self, n: int):
            self.n = n
            self.templates = torch.randn(K, IN, generator=torch.Generator().manual_seed(0))

        def __len__(self) -> int:
            return -(-self.n // BATCH)

        def __iter__(self):
            for i, start in enumerate(range(0, self.n, BATCH)):
                g = torch.Generator().manual_seed(1 + i)
                y = torch.arange(start, min(start + BATCH, self.n)) % K
                yield self.templates[y] + 0.3 * torch.randn(len(y), IN, generator=g), y

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(IN, D), torch.nn.ReLU(), torch.nn.Linear(D, D), torch.nn.Linear(D, K))
    data = Generated(n)
    # warm-up: imports, caches and the allocator's pools settle within about ten batches
    analysis.analyze_model(model, Generated(10 * BATCH), progress=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    if path == "streamed":
        nc1 = analysis.analyze_model(model, data, progress=False).with_bias["nc1"]
    else:  # every feature in memory at once, then the matrix path
        with torch.no_grad():
            H = torch.cat([model[:3](x) for x, _ in data]).T.double().numpy()
        y = np.arange(n) % K
        nc1 = nets.analyze_features(H, y, model[3].weight.detach().numpy(), model[3].bias.detach().numpy())["nc1"]
    seconds = time.perf_counter() - start
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"N": n, "path": path, "maxrss_mb": after / 1024, "maxrss_growth_mb": (after - before) / 1024,
            "tracemalloc_peak_mb": py_peak / 2**20, "seconds": seconds, "nc1": nc1}  # fmt: skip


def _measure(n: int, path: str) -> dict:
    code = f"import sys, json; sys.path.insert(0, {os.path.dirname(__file__)!r}); import memory_analysis as m; print(json.dumps(m._child({n}, {path!r})))"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def record(n: int = 10_000, factor: int = 10) -> dict:
    """The ``analysis-memory`` record: both paths at ``n`` and ``factor * n`` samples."""
    runs = [_measure(N, path) for path in ("streamed", "by hand") for N in (n, factor * n)]
    small, large = runs[0], runs[1]
    return {
        "name": "analysis-memory",
        "d": D,
        "K": K,
        "batch": BATCH,
        "runs": runs,
        "streamed_growth_ratio": large["maxrss_growth_mb"] / max(small["maxrss_growth_mb"], 1.0),
        "by_hand_growth_ratio": runs[3]["maxrss_growth_mb"] / max(runs[2]["maxrss_growth_mb"], 1.0),
        "features_mb_at_large_n": factor * n * D * 8 / 2**20,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="peak memory of the collapse analysis against dataset size")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--factor", type=int, default=10)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rec = record(args.n, args.factor)
    print(f"{'path':10s}{'N':>9s}{'peak RSS (MB)':>15s}{'its growth (MB)':>17s}{'tracemalloc peak (MB)':>23s}{'seconds':>9s}")
    for r in rec["runs"]:
        print(f"{r['path']:10s}{r['N']:>9d}{r['maxrss_mb']:>15.1f}{r['maxrss_growth_mb']:>17.1f}"
              f"{r['tracemalloc_peak_mb']:>23.2f}{r['seconds']:>9.1f}")
    print(f"({rec['features_mb_at_large_n']:.0f} MB of float64 features at N = {args.factor * args.n})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rec, f, indent=1)
    return rec


if __name__ == "__main__":
    main()
