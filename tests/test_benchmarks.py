"""benchmarks/run.py on tiny problems: the records it writes, not the speed (that is its own job)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nclab import data

spec = importlib.util.spec_from_file_location("bench", Path(__file__).parents[1] / "benchmarks" / "run.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench"] = bench  # dataclasses look their module up
spec.loader.exec_module(bench)
CPU = torch.device("cpu")
TINY = bench.Problem("tiny", data.step(2, 12, 2, 4), d=4, L=1, lam=1e-2)


def test_peer_sgd_runs_the_recipe_and_stops_at_the_target():
    long = bench.peer_sgd(TINY, CPU, f_star=TINY.f_star, max_iter=20_000)
    assert long["reached"] and long["gap"] <= bench.GAP and long["iterations"] % 10 == 0
    short = bench.peer_sgd(TINY, CPU, f_star=TINY.f_star, max_iter=30)
    assert not short["reached"] and short["iterations"] == 30 and short["gap"] > bench.GAP


def test_records_have_their_fields_and_print():
    recs = [
        bench.time_to_optimum(TINY, CPU, max_iter=50),
        bench.batched_sweep(1, CPU, B=8, N=40),
        bench.widget_update(5),
        bench.scale(CPU, steps=2, p=TINY),
    ]
    t, s, w, sc = recs
    assert t["nclab_reached"] and not t["peer_reached"] and t["speedup"] > 0 and t["peer_iterations"] == 50
    assert s["B"] == 8 and s["batched_max_gap"] < 1e-8 and s["loop_max_gap"] < 1e-8
    assert w["ms"] > 0 and w["p90_ms"] >= w["ms"]
    assert sc["lbfgs_seconds_per_step"] > 0 and sc["sgd_seconds_per_step"] > 0
    for rec in recs:
        line = bench._fmt_row(rec)
        assert line.startswith(rec["name"])
    json.dumps(recs)  # every value is JSON-serialisable


def test_sweep_settings_share_one_total():
    counts, lams = bench.sweep_settings(64, 120)
    assert counts.shape == (64, 4) and len(np.unique(counts.sum(1))) == 1 and len(np.unique(lams)) == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cuda"])
    assert "no CUDA GPU is available" in capsys.readouterr().err
