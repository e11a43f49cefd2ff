"""Performance of nclab, measured side by side in one run (issue #8).

Usage::

    python benchmarks/run.py [--quick] [--json FILE] [--device cpu|cuda]

Records (one line each in the table; a list of dicts with ``--json``):

``time-to-optimum``
    Wall time of nclab's default trainer (:func:`nclab.train`: L-BFGS in float64 on the
    layers, with the features and the bias at their exact minimiser for the current layers)
    against the recipe of the public code of the deep-linear imbalanced UFM paper (Dang et al.,
    ICML 2023): full-batch SGD, momentum 0.9, lr 0.1, init std 0.1, at most 30,000 iterations.
    Both minimise the same (P) in float64, and each clock stops at a relative objective gap of
    1e-6 against the closed form (:func:`nclab.theory.global_minimizer`): SGD's gap is checked
    every 10 iterations, nclab's is read from its history (``log_every=1``), which records the
    wall time of every iteration; ``nclab_total_seconds`` is the whole call (run on to
    convergence and through the polishing pass). When SGD never reaches the target, its time
    for all 30,000 iterations is used and the gap it reached is recorded.
    ``speedup = peer_seconds / nclab_seconds``. The same L-BFGS with the features as free
    parameters (``features="free"``) is timed too: it shows how much of the speed-up comes from
    the variable projection and how much from L-BFGS itself.
``batched-sweep``
    B = 64 settings (8 imbalance ratios x 8 strengths, equal N) trained to the optimum by one
    :func:`nclab.ufm.train_many` call, against a Python loop of 64 :func:`nclab.train` calls.
``widget-update``
    Median compute time of one theory-explorer update (:func:`nclab.widgets.explorer_state`:
    counts, closed form and figure data, no drawing) over random slider positions.
``scale``
    Seconds per iteration of nclab's L-BFGS (exact and free features) and of the SGD recipe at
    K = 100, d = 512, N = 50,000.

Every device present runs every record unless ``--device`` picks one. ``--quick`` runs the
smaller set (under 3 minutes on a 2-core CPU); the full run adds problem sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

import nclab
from nclab import data, theory
from nclab.objective import product, ufm_objective
from nclab.ufm import resolve_device, train, train_many
from nclab.widgets import explorer_state

GAP = 1e-6
TARGETS = {"time-to-optimum": 20.0, "batched-sweep": 5.0, "widget-update": 50.0}


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


def peer_sgd(p: Problem, device: torch.device, *, f_star: float | None, max_iter: int = 30_000, check_every: int = 10, seed: int = 0) -> dict:
    """The peer recipe: full-batch SGD (lr 0.1, momentum 0.9), N(0, 0.1^2) init, weight decay on W_l and H.

    Stops when the relative gap to ``f_star`` is at most :data:`GAP` (checked every
    ``check_every`` iterations), after ``max_iter`` iterations, or on divergence.
    """
    gen = torch.Generator().manual_seed(seed)
    K, N, d = p.n.size, int(p.n.sum()), p.d
    Y = torch.as_tensor(data.one_hot(data.labels_from_counts(p.n), K), dtype=torch.float64, device=device)

    def param(*shape: int) -> torch.nn.Parameter:
        return torch.nn.Parameter((0.1 * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(device))

    layers = [param(d, d) for _ in range(p.L - 1)] + [param(K, d)]
    H = param(d, N)
    b = torch.nn.Parameter(torch.zeros(K, dtype=torch.float64, device=device)) if p.bias else None
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


# ----------------------------------------------------------------------------- records


def _seconds_to_gap(r: nclab.TrainResult, f_star: float, total: float) -> float:
    """Wall time at the first history entry within :data:`GAP` of ``f_star`` (``total`` if none)."""
    gaps = (np.asarray(r.history["objective"]) - f_star) / f_star
    hit = np.flatnonzero(gaps <= GAP)
    return float(r.history["seconds"][hit[0]]) if hit.size else total


def time_to_optimum(p: Problem, device: torch.device, *, max_iter: int = 30_000) -> dict:
    f_star = p.f_star
    kw = dict(d=p.d, lam_W=p.lam, lam_H=p.lam, L=p.L, bias=p.bias, metrics=(), log_every=1, progress=False, device=device)
    runs = {}
    for features in ("exact", "free"):  # exact is the default; free shows what the variable projection buys
        start = _clock(device)
        r = train(p.n, features=features, **kw)
        total = _clock(device) - start
        runs[features] = (r, total, _seconds_to_gap(r, f_star, total))
    peer = peer_sgd(p, device, f_star=f_star, max_iter=max_iter)
    (r, total, ours), (free, free_total, free_seconds) = runs["exact"], runs["free"]
    gap = (r.objective - f_star) / f_star
    return dict(name="time-to-optimum", device=device.type, **p.describe(), nclab_seconds=ours, nclab_total_seconds=total,
                nclab_steps=r.steps, nclab_gap=gap, nclab_reached=bool(gap <= GAP), free_features_seconds=free_seconds,
                free_features_total_seconds=free_total, free_features_gap=(free.objective - f_star) / f_star,
                peer_seconds=peer["seconds"], peer_iterations=peer["iterations"], peer_gap=peer["gap"],
                peer_reached=peer["reached"], peer_diverged=peer["diverged"], speedup=peer["seconds"] / ours,
                free_features_speedup=peer["seconds"] / free_seconds)  # fmt: skip


def sweep_settings(B: int = 64, N: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Counts (B, 4) of 8 imbalance ratios (two majority, two minority classes, total N) x B/8 strengths."""
    n_min = np.array([30, 20, 12, 10, 6, 5, 4, 3]) * N // 120
    counts = np.array([[N // 2 - m, N // 2 - m, m, m] for m in n_min])
    lams = np.geomspace(1e-4, 1e-1, B // len(counts))
    return np.tile(counts, (len(lams), 1)), np.repeat(lams, len(counts))


def batched_sweep(L: int, device: torch.device, *, d: int = 4, N: int = 120, B: int = 64) -> dict:
    counts, lams = sweep_settings(B, N)
    start = _clock(device)
    many = train_many(counts, d=d, lam_W=lams, lam_H=lams, L=L, progress=False, device=device)
    batched = _clock(device) - start
    start = _clock(device)
    loop = [train(c, d=d, lam_W=lam, lam_H=lam, L=L, metrics=(), progress=False, device=device) for c, lam in zip(counts, lams)]
    looped = _clock(device) - start
    return dict(name="batched-sweep", device=device.type, B=B, K=counts.shape[1], d=d, N=N, L=L, bias=True,
                batched_seconds=batched, loop_seconds=looped, batched_max_gap=max(r.gap for r in many),
                loop_max_gap=max(r.gap for r in loop), speedup=looped / batched)  # fmt: skip


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


def scale(device: torch.device, steps: int, p: Problem | None = None) -> dict:
    p = p or Problem("scale", data.step(50, 800, 50, 200), d=512, L=1, lam=5e-4)
    kw = dict(d=p.d, lam_W=p.lam, lam_H=p.lam, L=p.L, steps=steps, metrics=(), progress=False, device=device)
    exact, free = train(p.n, **kw), train(p.n, features="free", **kw)
    peer = peer_sgd(p, device, f_star=None, max_iter=steps, check_every=steps)
    return dict(name="scale", device=device.type, **p.describe(), steps=steps, lbfgs_seconds_per_step=exact.seconds / exact.steps,
                lbfgs_free_features_seconds_per_step=free.seconds / free.steps,
                sgd_seconds_per_step=peer["seconds"] / peer["iterations"])  # fmt: skip


# ----------------------------------------------------------------------------- the run


def problems(quick: bool) -> list[Problem]:
    step = data.step(5, 500, 5, 50)
    chosen = [Problem("step 5x500 + 5x50", step, d=64, L=1, lam=1e-3), Problem("step 5x500 + 5x50", step, d=64, L=3, lam=1e-3)]
    if not quick:
        chosen += [
            Problem("step, minority collapse", step, d=64, L=1, lam=3e-3),
            Problem("long-tailed 500..50", data.long_tailed(10, 500, 10), d=64, L=3, lam=5e-4),
            Problem("step 2x100 + 2x10", data.step(2, 100, 2, 10), d=16, L=2, lam=2e-3),
            Problem("balanced 10x100, no bias", data.balanced(10, 100), d=32, L=1, lam=1e-3, bias=False),
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
                python=platform.python_version(), torch=torch.__version__, nclab=nclab.__version__)  # fmt: skip


def warm_up(device: torch.device) -> None:
    """First calls pay for lazy initialisation (kernels, allocator): not what we measure."""
    p = Problem("warm-up", data.step(2, 20, 2, 5), d=4, L=2, lam=1e-3)
    train(p.n, d=p.d, lam_W=p.lam, lam_H=p.lam, L=p.L, metrics=(), progress=False, device=device)
    peer_sgd(p, device, f_star=None, max_iter=20)
    train_many([[30, 10], [20, 20]], d=4, lam_W=[1e-3, 1e-2], lam_H=1e-3, L=2, progress=False, device=device)


def _fmt_row(rec: dict) -> str:
    name, dev = rec["name"], rec.get("device", "")
    if name == "time-to-optimum":
        peer = f"{rec['peer_seconds']:.2f} s ({rec['peer_iterations']} it, gap {rec['peer_gap']:.1e}{'' if rec['peer_reached'] else ', not reached'})"
        what = f"K={rec['K']} d={rec['d']} N={rec['N']} L={rec['L']} lam={rec['lam']:g}{'' if rec['bias'] else ' no bias'}"
        ours = f"{rec['nclab_seconds']:.3f} s (free {rec['free_features_seconds']:.2f} s)"
        value = rec["speedup"]
    elif name == "batched-sweep":
        what = f"B={rec['B']} K={rec['K']} d={rec['d']} N={rec['N']} L={rec['L']}"
        ours = f"{rec['batched_seconds']:.2f} s (gap {rec['batched_max_gap']:.0e})"
        peer = f"{rec['loop_seconds']:.2f} s loop (gap {rec['loop_max_gap']:.0e})"
        value = rec["speedup"]
    elif name == "widget-update":
        what, ours, peer, value = f"{rec['repeats']} random updates", f"{rec['ms']:.2f} ms median", f"p90 {rec['p90_ms']:.2f} ms", rec["ms"]
    else:
        what = f"K={rec['K']} d={rec['d']} N={rec['N']}"
        ours = f"{rec['lbfgs_seconds_per_step']:.3f} s/step (free {rec['lbfgs_free_features_seconds_per_step']:.2f})"
        peer = f"{rec['sgd_seconds_per_step']:.3f} s/step SGD"
        value = None
    target = TARGETS.get(name)
    if value is None:
        verdict = ""
    elif name == "widget-update":
        verdict = f"{value:.2f} ms (<= {target:g}: {'met' if value <= target else 'MISSED'})"
    else:
        verdict = f"x{value:.1f} (>= {target:g}: {'met' if value >= target else 'MISSED'})"
    return f"{name:<16} {dev:<5} {what:<42} {ours:<26} {peer:<44} {verdict}"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smaller set (under 3 minutes on a 2-core CPU)")
    parser.add_argument("--json", metavar="FILE", help="write the records as a JSON list to FILE")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="run on this device only (default: every device present)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but no CUDA GPU is available")
    devices = [resolve_device(args.device)] if args.device else [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])

    records = [machine()]
    m = records[0]
    print(f"nclab {m['nclab']} | torch {m['torch']} ({m['torch_threads']} threads) | {m['cpu']}, {m['cores']} cores | GPU: {m['gpu'] or 'none'}")
    print(f"{'record':<16} {'dev':<5} {'problem':<42} {'nclab':<26} {'reference':<44} result")

    def add(rec: dict) -> None:
        records.append(rec)
        print(_fmt_row(rec), flush=True)

    add(widget_update(100 if args.quick else 400))
    for dev in devices:
        warm_up(dev)
        for p in problems(args.quick):
            add(time_to_optimum(p, dev))
        for L in (1, 3) if args.quick else (1, 2, 3):
            add(batched_sweep(L, dev))
        add(scale(dev, steps=2 if args.quick else 5))

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)
        print(f"wrote {len(records)} records to {args.json}")
    return records


if __name__ == "__main__":
    main(sys.argv[1:])
