"""Performance of nclab, measured side by side in one run (issues #8 and #20).

Usage::

    python benchmarks/run.py [--quick] [--json FILE [--append]] [--device cpu|cuda] [--threads N]
                             [--only KIND,...] [--scale-size quick|imagenet]
    python benchmarks/run.py --markdown FILE [--readme README.md]

Records (one line each in the printed table; a list of dicts with ``--json``):

``time-to-optimum``
    nclab's **whole default call** (:func:`nclab.train` with its defaults and
    ``progress=False``: every restart, the polishing pass, the history, the result), timed
    from the call to its return, against the recipe of the public code of the deep-linear
    imbalanced UFM paper (Dang et al., ICML 2023): full-batch SGD, momentum 0.9, lr 0.1, init
    std 0.1, at most 30,000 iterations, stopped when its objective is within a relative 1e-6
    of the closed form (:func:`nclab.theory.global_minimizer`; checked every 10 iterations).
    ``speedup = peer_seconds / nclab_total_seconds``. Beside it, ``nclab_seconds_to_gap``: the
    time at which a run logging every iteration first came within 1e-6 of the optimum (known
    only in hindsight, so not the headline). The peer runs in float64 with the bias of (P), or
    (``peer_dtype="float32"``, ``bias=False``) as its own code runs; nclab always runs its
    default, float64. The full run adds nclab's L-BFGS with free features (``features="free"``).
    When SGD never reaches the target, its time for all 30,000 iterations is used.
``batched-sweep``
    B = 64 settings (8 imbalance ratios x 8 strengths, equal N) trained to the optimum by one
    :func:`nclab.ufm.train_many` call, against a Python loop of 64 :func:`nclab.train` calls, at
    L = 1, 2 and 3. In each of 5 rounds the batched call is timed 3 times and then the loop once,
    and ``speedup`` is the ratio of the medians (every time is in ``batched_samples`` and
    ``loop_samples``): on a shared machine a burst of load can slow one call by half, and
    alternating keeps it from landing on one side; the batched call, a tenth of the loop, is
    timed more often so that one burst moves its median no more than the loop's.
``n-independence``
    The same training call (exact features, defaults) on a count profile and on the profile
    times 100, with the strengths scaled by ``100^(-1/(L+1))`` and the start by
    ``100^(1/(2(L+1)))``, an exact symmetry of (P): the same problem, with 100 times the
    samples, and the same modes surviving. Each side runs in five fresh subprocesses (small
    and large alternately), each measuring the call's wall time (median of 3) and its peak
    memory: the process's peak resident set (``ru_maxrss``, which counts torch's allocations)
    and the peak of tracemalloc (numpy and Python). ``time_ratio`` and ``memory_ratio`` are
    large over small, of the medians over the processes (the peaks of every process are in
    ``peak_memory_samples`` and ``peak_memory_samples_big``). It runs with one torch thread
    unless ``--threads`` says otherwise: with two, the allocator's per-thread arenas moved the
    peak by about 2% from process to process, N or not.
``scale``
    An ImageNet-sized UFM: K = 1000 classes, d = 2048, a long-tailed profile (ratio 10) with
    N = 1,280,602 samples, L = 1 and L = 3, trained by one default call in a fresh subprocess:
    ``nclab_total_seconds``, ``peak_memory_mb`` (``ru_maxrss``) and ``reached`` (gap to the
    closed form <= 1e-6), at lam = 3e-5, where 346 (L = 1) and 648 (L = 3) of the 999 modes
    survive. ``--quick`` trains K = 400, d = 800, N = 512,271 instead, at lam = 7.5e-5 (the same
    ``lam N``: 138 and 259 of 399 modes survive). The full run adds L = 1 calls at other K and d
    (``series``, again at the same ``lam N``), for the growth of the cost.
``widget-update``
    Median compute time of one theory-explorer update (:func:`nclab.widgets.explorer_state`:
    counts, closed form and figure data, no drawing) over random slider positions.

Every device present runs every record unless ``--device`` picks one; ``--only`` picks record
kinds, ``--scale-size`` the size of the scale records, and ``--append`` adds the records to
those of an earlier run in the JSON file (each record carries its ``torch_threads`` and, when
appended, the ``load_average`` at the start of its run). ``--quick`` runs the
smaller set (a few minutes on a 2-core CPU); the full run adds problems and sizes.
``--markdown FILE`` prints the README's tables from a JSON file of records, and with
``--readme`` writes them between the markers ``<!-- benchmarks:start -->`` and
``<!-- benchmarks:end -->`` of that file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import torch

import nclab
from nclab import data, theory
from nclab.objective import product, ufm_objective
from nclab.ufm import resolve_device, train, train_many
from nclab.widgets import explorer_state

GAP = 1e-6
TARGETS = {"time-to-optimum": 20.0, "batched-sweep": 10.0, "widget-update": 50.0, "n-independence": 1.5, "scale": 4096.0}
MARKERS = ("<!-- benchmarks:start -->", "<!-- benchmarks:end -->")


# ----------------------------------------------------------------------------- helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock(device: torch.device) -> float:
    _sync(device)
    return time.perf_counter()


@dataclass
class Problem:
    """One UFM problem: counts, width, depth, common strength, bias."""

    label: str
    n: np.ndarray
    d: int
    L: int
    lam: float
    bias: bool = True

    @property
    def f_star(self) -> float:
        return theory.global_minimizer(self.n, self.lam, self.lam, L=self.L, bias=self.bias).objective

    def describe(self) -> dict:
        return dict(problem=self.label, K=int(self.n.size), d=self.d, N=int(self.n.sum()), n_max=int(self.n.max()),
                    n_min=int(self.n.min()), L=self.L, lam=self.lam, bias=self.bias)  # fmt: skip


def peer_sgd(p: Problem, device: torch.device, *, f_star: float | None, max_iter: int = 30_000, check_every: int = 10, seed: int = 0,
             dtype: torch.dtype = torch.float64) -> dict:  # fmt: skip
    """The peer recipe: full-batch SGD (lr 0.1, momentum 0.9), N(0, 0.1^2) init, weight decay on W_l and H.

    Stops when the relative gap to ``f_star`` is at most :data:`GAP` (checked every
    ``check_every`` iterations), after ``max_iter`` iterations, or on divergence. ``dtype``
    float32 is how the peer's own code runs.
    """
    gen = torch.Generator().manual_seed(seed)
    K, N, d = p.n.size, int(p.n.sum()), p.d
    Y = torch.as_tensor(data.one_hot(data.labels_from_counts(p.n), K), dtype=dtype, device=device)

    def param(*shape: int) -> torch.nn.Parameter:
        return torch.nn.Parameter((0.1 * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(device=device, dtype=dtype))

    layers = [param(d, d) for _ in range(p.L - 1)] + [param(K, d)]
    H = param(d, N)
    b = torch.nn.Parameter(torch.zeros(K, dtype=dtype, device=device)) if p.bias else None
    groups = [{"params": layers, "weight_decay": p.lam}, {"params": [H], "weight_decay": p.lam}]
    if b is not None:
        groups.append({"params": [b], "weight_decay": 0.0})
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    lam_W = [p.lam] * p.L

    def objective() -> float:
        with torch.no_grad():
            return float(ufm_objective(layers, H, b, Y, lam_W, p.lam))

    start = _clock(device)
    it, f, reached = 0, objective(), False
    while it < max_iter:
        for _ in range(check_every):
            opt.zero_grad(set_to_none=True)
            logits = product(layers) @ H + (b[:, None] if b is not None else 0.0)
            (((logits - Y) ** 2).sum() / (2 * N)).backward()
            opt.step()
            it += 1
        f = objective()
        if not np.isfinite(f):
            break
        if f_star is not None and (f - f_star) / f_star <= GAP:
            reached = True
            break
    seconds = _clock(device) - start
    gap = (f - f_star) / f_star if f_star is not None else float("nan")
    return dict(seconds=seconds, iterations=it, gap=gap, reached=reached, diverged=not np.isfinite(f))


def _seconds_to_gap(r: nclab.TrainResult, f_star: float, total: float) -> float:
    """Wall time at the first history entry within :data:`GAP` of ``f_star`` (``total`` if none)."""
    gaps = (np.asarray(r.history["objective"]) - f_star) / f_star
    hit = np.flatnonzero(gaps <= GAP)
    return float(r.history["seconds"][hit[0]]) if hit.size else total


def _median_call(fn, repeats: int, device: torch.device) -> tuple[object, float]:
    """The result of ``fn()`` and the median wall time of ``repeats`` calls."""
    times, out = [], None
    for _ in range(repeats):
        start = _clock(device)
        out = fn()
        times.append(_clock(device) - start)
    return out, float(np.median(times))


# ----------------------------------------------------------------------------- records


def time_to_optimum(p: Problem, device: torch.device, *, max_iter: int = 30_000, peer_dtype: torch.dtype = torch.float64,
                    free: bool = False, repeats: int = 3) -> dict:  # fmt: skip
    f_star = p.f_star
    kw = dict(d=p.d, lam_W=p.lam, lam_H=p.lam, L=p.L, bias=p.bias, progress=False, device=device)
    r, total = _median_call(lambda: train(p.n, **kw), repeats, device)  # the whole default call
    logged = train(p.n, log_every=1, metrics=(), **kw)  # every iteration's time, for the hindsight figure
    to_gap = _seconds_to_gap(logged, f_star, total)
    peer = peer_sgd(p, device, f_star=f_star, max_iter=max_iter, dtype=peer_dtype)
    gap = (r.objective - f_star) / f_star
    rec = dict(name="time-to-optimum", device=device.type, **p.describe(), nclab_total_seconds=total, nclab_steps=r.steps,
               nclab_gap=gap, nclab_reached=bool(gap <= GAP), nclab_seconds_to_gap=to_gap,
               peer_dtype=str(peer_dtype).replace("torch.", ""), peer_seconds=peer["seconds"], peer_iterations=peer["iterations"],
               peer_gap=peer["gap"], peer_reached=peer["reached"], peer_diverged=peer["diverged"],
               speedup=peer["seconds"] / total, speedup_to_gap=peer["seconds"] / to_gap)  # fmt: skip
    if free:  # how much of the speed-up is the variable projection, and how much L-BFGS
        start = _clock(device)
        fr = train(p.n, features="free", **kw)
        rec.update(free_features_total_seconds=_clock(device) - start, free_features_gap=(fr.objective - f_star) / f_star)
    return rec


def sweep_settings(B: int = 64, N: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Counts (B, 4) of 8 imbalance ratios (two majority, two minority classes, total N) x B/8 strengths."""
    n_min = np.array([30, 20, 12, 10, 6, 5, 4, 3]) * N // 120
    counts = np.array([[N // 2 - m, N // 2 - m, m, m] for m in n_min])
    lams = np.geomspace(1e-4, 1e-1, B // len(counts))
    return np.tile(counts, (len(lams), 1)), np.repeat(lams, len(counts))


def batched_sweep(L: int, device: torch.device, *, d: int = 4, N: int = 120, B: int = 64, repeats: int = 5, per_loop: int = 3) -> dict:
    """One ``train_many`` call on B settings against a loop of B ``train`` calls: ``repeats`` rounds, each timing
    the batched call ``per_loop`` times and then the loop once (a burst of load on a shared machine then slows
    both sides, not one; the batched call, ten times shorter, gets more samples so that its median is as
    steady as the loop's); the ratio of the medians."""
    counts, lams = sweep_settings(B, N)
    batched, looped = [], []
    for _ in range(repeats):
        for _ in range(per_loop):
            start = _clock(device)
            many = train_many(counts, d=d, lam_W=lams, lam_H=lams, L=L, progress=False, device=device)
            batched.append(_clock(device) - start)
        start = _clock(device)
        loop = [train(c, d=d, lam_W=lam, lam_H=lam, L=L, progress=False, device=device) for c, lam in zip(counts, lams)]
        looped.append(_clock(device) - start)
    b, lp = float(np.median(batched)), float(np.median(looped))
    return dict(name="batched-sweep", device=device.type, B=B, K=counts.shape[1], d=d, N=N, L=L, bias=True, repeats=repeats,
                batched_repeats=len(batched), batched_seconds=b, loop_seconds=lp, batched_samples=batched, loop_samples=looped,
                batched_max_gap=max(r.gap for r in many), loop_max_gap=max(r.gap for r in loop), speedup=lp / b)  # fmt: skip


def widget_update(repeats: int) -> dict:
    rng = np.random.default_rng(0)
    times = []
    for _ in range(repeats):
        params = dict(kind=str(rng.choice(["balanced", "step", "long-tailed"])), K=int(rng.integers(2, 13)),
                      n_max=int(rng.integers(50, 1001)), ratio=float(10 ** rng.uniform(0, 3)),
                      lam_W=float(10 ** rng.uniform(-4, -1)), lam_H=float(10 ** rng.uniform(-4, -1)),
                      L=int(rng.integers(1, 6)), bias=bool(rng.integers(0, 2)))  # fmt: skip
        start = time.perf_counter()
        explorer_state(**params)
        times.append(time.perf_counter() - start)
    ms = 1e3 * np.array(times)
    return dict(name="widget-update", device="cpu", repeats=repeats, ms=float(np.median(ms)), p90_ms=float(np.quantile(ms, 0.9)))


# ----------------------------------------------------------------------------- calls measured in a fresh process


def measure_call(spec: dict) -> dict:
    """Run one :func:`nclab.train` call described by ``spec`` in this process and measure it.

    ``spec``: ``n`` (counts), ``d``, ``lam``, ``L``, ``device``, ``repeats``, ``threads``.
    After a warm-up call on a tiny problem, the call runs ``repeats`` times; returns the median
    wall time, the steps, the gap to the closed form (computed afterwards, not timed), the
    peak resident set of the process (``ru_maxrss``, in MB) before and after the calls, the
    peak of tracemalloc during them and, on CUDA, torch's peak allocation.
    """
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = resolve_device(spec["device"])
    n = np.asarray(spec["n"], dtype=float)
    kw = dict(d=spec["d"], lam_W=spec["lam"], lam_H=spec["lam"], L=spec["L"], init_std=spec.get("init_std", 0.5), progress=False, device=device)
    train([20, 10, 5], d=4, lam_W=1e-2, lam_H=1e-2, L=spec["L"], progress=False, device=device)
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731  (KiB on Linux)
    before = rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tracemalloc.start()
    r, seconds = _median_call(lambda: train(n, **kw), spec.get("repeats", 1), device)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    out = dict(seconds=seconds, steps=r.steps, peak_memory_mb=rss(), rss_before_mb=before, tracemalloc_peak_mb=traced,
               cuda_peak_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None)  # fmt: skip
    g = theory.global_minimizer(n, spec["lam"], spec["lam"], L=spec["L"])
    out.update(gap=(r.objective - g.objective) / g.objective, n_active=g.n_active)
    return out


def in_subprocess(spec: dict, timeout: float = 3600) -> dict:
    """:func:`measure_call` in a fresh Python process (so that its peak memory is the call's own)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository: this nclab, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"the measured call failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def n_independence(device: torch.device, *, K: int = 100, d: int = 256, L: int = 2, n_max: int = 200, factor: int = 100,
                   lam: float = 8e-4, repeats: int = 3, processes: int = 5, threads: int | None = None) -> dict:  # fmt: skip
    """One training call at N and at ``factor`` N, each in ``processes`` fresh processes (small and large alternately);
    the medians over the processes of the call's time and of the peak resident memory.

    Counts times ``a``, strengths times ``a^(-1/(L+1))`` and layers times ``a^(1/(2(L+1)))`` map
    (P) with exact features onto itself (the value is unchanged), so the larger call gets the
    strengths and the start (``init_std``) of the same problem: the same modes survive and the
    same iterations are expected; only N differs. A process's peak is mostly torch's own (the
    import and its thread pools), which moves by a few percent from process to process, hence
    several processes per side.
    """
    n = data.long_tailed(K, n_max, 10)
    specs = [dict(n=(n * a).tolist(), d=d, lam=lam * a ** (-1 / (L + 1)), L=L, init_std=0.5 * a ** (1 / (2 * (L + 1))),
                  device=str(device), repeats=repeats, threads=threads) for a in (1, factor)]  # fmt: skip
    runs: list[list[dict]] = [[], []]
    for _ in range(processes):
        for side, spec in enumerate(specs):
            runs[side].append(in_subprocess(spec))
    med = lambda side, key: float(np.median([r[key] for r in runs[side]]))  # noqa: E731
    small, big = runs[0][0], runs[1][0]  # steps, gaps and modes are the same in every process
    return dict(name="n-independence", device=device.type, K=K, d=d, L=L, N=int(n.sum()), factor=factor, lam=lam, processes=processes,
                torch_threads=threads or torch.get_num_threads(),
                seconds=med(0, "seconds"), seconds_big=med(1, "seconds"), steps=small["steps"], steps_big=big["steps"],
                peak_memory_mb=med(0, "peak_memory_mb"), peak_memory_mb_big=med(1, "peak_memory_mb"),
                peak_memory_samples=[r["peak_memory_mb"] for r in runs[0]], peak_memory_samples_big=[r["peak_memory_mb"] for r in runs[1]],
                tracemalloc_peak_mb=med(0, "tracemalloc_peak_mb"), tracemalloc_peak_mb_big=med(1, "tracemalloc_peak_mb"),
                gap=small["gap"], gap_big=big["gap"], n_active=small["n_active"], n_active_big=big["n_active"],
                time_ratio=med(1, "seconds") / med(0, "seconds"), memory_ratio=med(1, "peak_memory_mb") / med(0, "peak_memory_mb"))  # fmt: skip


#: (K, d, n_max) of the scale instances: ImageNet-sized, and the one of --quick.
IMAGENET = (1000, 2048, 3275)
QUICK_SCALE = (400, 800, 3275)
#: ``lam * N`` of the scale instances: at K = 1000 and N = 1,280,602 (lam = 3e-5) about a third
#: (L = 1) or two thirds (L = 3) of the modes of the long-tailed profile survive, and about as
#: many at the other K, whose N is smaller.
SCALE_LAM_N = 3e-5 * 1_280_602


def scale(device: torch.device, L: int, *, K: int, d: int, n_max: int, lam: float | None = None, series: str | None = None,
          threads: int | None = None) -> dict:  # fmt: skip
    """One default training call on a long-tailed profile (ratio 10) in a fresh process (``lam``: default ``SCALE_LAM_N / N``)."""
    n = data.long_tailed(K, n_max, 10)
    lam = SCALE_LAM_N / n.sum() if lam is None else lam
    out = in_subprocess(dict(n=n.tolist(), d=d, lam=lam, L=L, device=str(device), repeats=1, threads=threads))
    return dict(name="scale", device=device.type, K=K, d=d, N=int(n.sum()), L=L, lam=lam, series=series, n_active=out["n_active"],
                nclab_total_seconds=out["seconds"], steps=out["steps"], peak_memory_mb=out["peak_memory_mb"], gap=out["gap"],
                reached=bool(out["gap"] <= GAP))  # fmt: skip


# ----------------------------------------------------------------------------- the run


def problems(quick: bool) -> list[tuple[Problem, dict]]:
    """Time-to-optimum problems and how their peer runs."""
    step = data.step(5, 500, 5, 50)
    f32 = dict(peer_dtype=torch.float32)
    chosen = [
        (Problem("step 5x500 + 5x50", step, d=64, L=1, lam=1e-3), {}),
        (Problem("step 5x500 + 5x50", step, d=64, L=3, lam=1e-3), {}),
        (Problem("step, minority collapse", step, d=64, L=1, lam=3e-3), {}),
        (Problem("step 2x100 + 2x10", data.step(2, 100, 2, 10), d=16, L=2, lam=2e-3), {}),
        (Problem("step 5x500 + 5x50, no bias", step, d=64, L=1, lam=1e-3, bias=False), f32),
    ]
    if not quick:
        chosen += [
            (Problem("long-tailed 500..50", data.long_tailed(10, 500, 10), d=64, L=3, lam=5e-4), {}),
            (Problem("step, minority collapse", step, d=64, L=3, lam=3e-3), {}),
            (Problem("balanced 10x100, no bias", data.balanced(10, 100), d=32, L=1, lam=1e-3, bias=False), {}),
            (Problem("step 5x500 + 5x50, no bias", step, d=64, L=3, lam=1e-3, bias=False), f32),
        ]
    return chosen


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return dict(name="machine", cpu=cpu, cores=os.cpu_count(), torch_threads=torch.get_num_threads(), gpu=gpu,
                python=platform.python_version(), torch=torch.__version__, nclab=nclab.__version__,
                load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)  # fmt: skip


def warm_up(device: torch.device) -> None:
    """First calls pay for lazy initialisation (kernels, allocator): not what we measure."""
    p = Problem("warm-up", data.step(2, 20, 2, 5), d=4, L=2, lam=1e-3)
    train(p.n, d=p.d, lam_W=p.lam, lam_H=p.lam, L=p.L, progress=False, device=device)
    peer_sgd(p, device, f_star=None, max_iter=20)
    peer_sgd(p, device, f_star=None, max_iter=20, dtype=torch.float32)
    train_many([[30, 10], [20, 20]], d=4, lam_W=[1e-3, 1e-2], lam_H=1e-3, L=2, progress=False, device=device)


# ----------------------------------------------------------------------------- printing: one line each, and the README's tables


def _verdict(rec: dict) -> tuple[str, bool | None]:
    """The record's headline figure, and whether it meets its target (None: no target)."""
    name = rec["name"]
    target = TARGETS.get(name)
    if name in ("time-to-optimum", "batched-sweep"):
        v = rec["speedup"]
        return f"×{v:.3g} (≥ {target:g})", v >= target
    if name == "widget-update":
        return f"{rec['ms']:.2f} ms (≤ {target:g} ms)", rec["ms"] <= target
    if name == "n-independence":
        ok = rec["time_ratio"] <= target and rec["memory_ratio"] <= 1.02
        return f"time ×{rec['time_ratio']:.2f} (≤ 1.5), memory ×{rec['memory_ratio']:.3f} (≤ 1, ±2% noise)", ok
    if name == "scale":
        ok = rec["reached"] and rec["peak_memory_mb"] <= target
        return f"{'reached' if rec['reached'] else 'NOT reached'} (gap {rec['gap']:.0e}), {rec['peak_memory_mb'] / 1024:.2f} GB (< 4)", ok
    return "", None


def _cells(rec: dict) -> tuple[str, str, str]:
    """Problem, nclab, reference: the middle columns of a record's row."""
    name = rec["name"]
    if name == "time-to-optimum":
        what = f"K={rec['K']}, d={rec['d']}, N={rec['N']}, L={rec['L']}, λ={rec['lam']:g}{'' if rec['bias'] else ', no bias'} ({rec['problem']})"
        ours = f"{rec['nclab_total_seconds']:.3f} s whole call ({rec['nclab_steps']} it; to gap: {rec['nclab_seconds_to_gap']:.3f} s)"
        peer = f"SGD {rec['peer_dtype']}: {rec['peer_seconds']:.2f} s ({rec['peer_iterations']:,} it"
        peer += ")" if rec["peer_reached"] else f", never reached: gap {rec['peer_gap']:.1e})"
        return what, ours, peer
    if name == "batched-sweep":
        return (f"{rec['B']} settings, K={rec['K']}, d={rec['d']}, N={rec['N']}, L={rec['L']}",
                f"{rec['batched_seconds']:.3f} s one call (median of {rec.get('batched_repeats', rec.get('repeats', 1))})",
                f"loop of `train`: {rec['loop_seconds']:.2f} s (median of {rec.get('repeats', 1)})")  # fmt: skip
    if name == "widget-update":
        return f"{rec['repeats']} random slider positions", f"{rec['ms']:.2f} ms median (p90 {rec['p90_ms']:.2f} ms)", ""
    if name == "n-independence":
        what = f"K={rec['K']}, d={rec['d']}, L={rec['L']}, N={rec['N']:,} and ×{rec['factor']}"
        ours = f"{rec['seconds']:.2f} s / {rec['seconds_big']:.2f} s; {rec['peak_memory_mb']:.0f} / {rec['peak_memory_mb_big']:.0f} MB peak"
        ours += f" (medians of {rec['processes']} processes)" if rec.get("processes", 1) > 1 else ""
        return what, ours, ""
    what = f"K={rec['K']}, d={rec['d']}, N={rec['N']:,}, L={rec['L']}, λ={rec['lam']:g} ({rec['n_active']} modes survive)"
    return what, f"{rec['nclab_total_seconds']:.0f} s ({rec['steps']} it), {rec['peak_memory_mb']:.0f} MB peak", ""


def _fmt_row(rec: dict) -> str:
    what, ours, peer = _cells(rec)
    verdict, ok = _verdict(rec)
    mark = "" if ok is None else ("  met" if ok else "  MISSED")
    return f"{rec['name']:<16} {rec.get('device', ''):<5} {what:<58} {ours:<52} {peer:<44} {verdict}{mark}"


def _threads(rec: dict) -> str:
    """``, N threads`` (and the load average when the record was appended by another run), if recorded."""
    if "torch_threads" not in rec:
        return ""
    n = rec["torch_threads"]
    load = f", load {rec['load_average']:.1f}" if rec.get("load_average") is not None else ""
    return f", {n} thread{'s' if n != 1 else ''}{load}"


def markdown(records: list[dict]) -> str:
    """The README's tables: one row per record, and the growth of the cost with K and d."""
    lines = ["| record | problem | nclab | reference | result (target) |", "| --- | --- | --- | --- | --- |"]
    for rec in records:
        if rec["name"] == "machine" or rec.get("series"):
            continue
        what, ours, peer = _cells(rec)
        lines.append(f"| {rec['name']} ({rec.get('device', 'cpu')}{_threads(rec)}) | {what} | {ours} | {peer} | {_verdict(rec)[0]} |")
    growth = sorted((r for r in records if r["name"] == "scale" and r["L"] == 1), key=lambda r: (r["K"], r["d"]))
    if len(growth) > 1:
        lines += ["", "Growth of one default call (L = 1, long-tailed profile, ratio 10, the same λN = "
                  f"{growth[0]['lam'] * growth[0]['N']:.3g}):", "", "| K | d | N | modes | seconds | iterations | seconds / iteration | peak memory |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in growth:
            lines.append(f"| {r['K']} | {r['d']} | {r['N']:,} | {r['n_active']} | {r['nclab_total_seconds']:.1f} | {r['steps']} | "
                         f"{r['nclab_total_seconds'] / max(r['steps'], 1):.3f} | {r['peak_memory_mb']:.0f} MB |")  # fmt: skip
    m = next((r for r in records if r["name"] == "machine"), None)
    if m:
        lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads, "
                  f"GPU: {m['gpu'] or 'none'}; load average at the start {m.get('load_average') or 0:.1f}."]  # fmt: skip
    return "\n".join(lines)


def write_readme(path: str, table: str) -> None:
    """Replace the text between :data:`MARKERS` in ``path`` by ``table``."""
    with open(path) as fh:
        text = fh.read()
    start, end = (re.escape(m) for m in MARKERS)
    if not re.search(f"{start}.*{end}", text, flags=re.S):
        raise SystemExit(f"{path} has no {MARKERS[0]} ... {MARKERS[1]} block")
    text = re.sub(f"{start}.*{end}", lambda _: f"{MARKERS[0]}\n{table}\n{MARKERS[1]}", text, flags=re.S)
    with open(path, "w") as fh:
        fh.write(text)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smaller set (a few minutes on a 2-core CPU)")
    parser.add_argument("--json", metavar="FILE", help="write the records as a JSON list to FILE")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="run on this device only (default: every device present)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", metavar="KINDS", help="comma-separated record kinds to run (default: all), e.g. scale")
    parser.add_argument("--scale-size", choices=["quick", "imagenet"],
                        help="size of the scale records (default: imagenet, quick with --quick)")
    parser.add_argument("--append", action="store_true", help="with --json: add the records to those already in FILE")
    parser.add_argument("--markdown", metavar="FILE", help="print the README tables of the records in FILE (no run)")
    parser.add_argument("--readme", metavar="FILE", help="with --markdown: write the tables into FILE between the markers")
    parser.add_argument("--measure", metavar="SPEC", help=argparse.SUPPRESS)  # one call, in a subprocess
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_call(json.loads(args.measure))))
        return []
    if args.markdown:
        with open(args.markdown) as fh:
            table = markdown(json.load(fh))
        if args.readme:
            write_readme(args.readme, table)
        print(table)
        return []
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but no CUDA GPU is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [resolve_device(args.device)] if args.device else [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])

    records = [machine()]
    m = records[0]
    print(f"nclab {m['nclab']} | torch {m['torch']} ({m['torch_threads']} threads) | {m['cpu']}, {m['cores']} cores | GPU: {m['gpu'] or 'none'}")

    def add(rec: dict) -> None:
        rec.setdefault("torch_threads", torch.get_num_threads())
        records.append(rec)
        print(_fmt_row(rec), flush=True)

    kinds = set(args.only.split(",")) if args.only else set(TARGETS)
    unknown = kinds - set(TARGETS)
    if unknown:
        parser.error(f"--only: unknown record kinds {sorted(unknown)}; choose from {sorted(TARGETS)}")
    if "widget-update" in kinds:
        add(widget_update(100 if args.quick else 400))
    for dev in devices:
        warm_up(dev)
        for p, how in problems(args.quick) if "time-to-optimum" in kinds else ():
            add(time_to_optimum(p, dev, free=not args.quick, **how))
        for L in (1, 2, 3) if "batched-sweep" in kinds else ():
            add(batched_sweep(L, dev))
        if "n-independence" in kinds:
            add(n_independence(dev, threads=args.threads or 1))  # two threads' allocator arenas move the peak by ~2%
        if "scale" not in kinds:
            continue
        size = args.scale_size or ("quick" if args.quick else "imagenet")
        K, d, n_max = QUICK_SCALE if size == "quick" else IMAGENET
        for L in (1, 3):
            add(scale(dev, L, K=K, d=d, n_max=n_max, threads=args.threads))
        if not args.quick:
            for K_, d_ in ((250, 2048), (500, 2048), (1000, 1024), (1000, 4096)):
                add(scale(dev, 1, K=K_, d=d_, n_max=n_max, series="growth", threads=args.threads))

    if args.json:
        if args.append and os.path.exists(args.json):
            with open(args.json) as fh:
                earlier = json.load(fh)
            records = earlier + [dict(r, load_average=m.get("load_average")) for r in records[1:]]
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)
        print(f"wrote {len(records)} records to {args.json}")
    return records


if __name__ == "__main__":
    main(sys.argv[1:])
