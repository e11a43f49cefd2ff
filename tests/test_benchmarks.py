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
    nobias = bench.Problem("tiny, no bias", TINY.n, d=4, L=1, lam=1e-2, bias=False)
    f32 = bench.peer_sgd(nobias, CPU, f_star=nobias.f_star, max_iter=20_000, dtype=torch.float32)
    assert f32["reached"] and f32["gap"] <= bench.GAP


@pytest.fixture(scope="module")
def records():
    nobias = bench.Problem("tiny, no bias", TINY.n, d=4, L=2, lam=1e-2, bias=False)
    return [
        bench.machine(),
        bench.time_to_optimum(TINY, CPU, max_iter=50, free=True, repeats=1),
        bench.time_to_optimum(nobias, CPU, max_iter=50, peer_dtype=torch.float32, repeats=1),
        bench.batched_sweep(1, CPU, B=8, N=40),
        bench.widget_update(5),
        bench.n_independence(CPU, K=4, d=4, L=1, n_max=20, factor=10, repeats=1, processes=2, threads=1),
        bench.scale(CPU, 1, K=5, d=8, n_max=40, lam=1e-3, threads=1),
        bench.scale(CPU, 1, K=6, d=8, n_max=40, lam=1e-3, series="growth", threads=1),
    ]


def test_records_have_their_fields_and_print(records):
    _, t, f32, s, w, ni, sc, growth = records
    assert t["nclab_reached"] and not t["peer_reached"] and t["peer_iterations"] == 50 and t["speedup"] > 0
    assert t["speedup"] == pytest.approx(t["peer_seconds"] / t["nclab_total_seconds"])  # the whole call, not the time to the gap
    assert 0 < t["nclab_seconds_to_gap"] <= 10 * t["nclab_total_seconds"] and "free_features_total_seconds" in t
    assert f32["peer_dtype"] == "float32" and not f32["bias"] and f32["nclab_reached"] and "free_features_gap" not in f32
    assert s["B"] == 8 and s["batched_max_gap"] < 1e-8 and s["loop_max_gap"] < 1e-8
    assert len(s["batched_samples"]) == s["batched_repeats"] == 15 and len(s["loop_samples"]) == s["repeats"] == 5
    assert s["speedup"] == pytest.approx(np.median(s["loop_samples"]) / np.median(s["batched_samples"]))
    assert w["ms"] > 0 and w["p90_ms"] >= w["ms"]
    assert ni["factor"] == 10 and ni["time_ratio"] > 0 and ni["memory_ratio"] > 0 and abs(ni["gap"]) < 1e-8 and abs(ni["gap_big"]) < 1e-8
    assert ni["n_active"] == ni["n_active_big"]  # the strengths were scaled so that the same modes survive
    assert len(ni["peak_memory_samples"]) == len(ni["peak_memory_samples_big"]) == ni["processes"] == 2
    assert ni["memory_ratio"] == pytest.approx(np.median(ni["peak_memory_samples_big"]) / np.median(ni["peak_memory_samples"]))
    assert sc["reached"] and sc["peak_memory_mb"] > 0 and sc["K"] == 5 and sc["series"] is None and growth["series"] == "growth"
    for rec in records[1:]:
        assert bench._fmt_row(rec).startswith(rec["name"])
    json.dumps(records)  # every value is JSON-serialisable


def test_markdown_tables_come_from_the_records(records, tmp_path):
    table = bench.markdown(records)
    names = ("time-to-optimum", "batched-sweep", "widget-update", "n-independence", "scale")
    rows = [line for line in table.splitlines() if line.startswith(tuple(f"| {n} (" for n in names))]
    assert len(rows) == len(records) - 2  # not the machine, and the growth series has its own table
    growth = table.split("| K | d | N |")[1].splitlines()
    assert len([line for line in growth if line.startswith("| 5 ") or line.startswith("| 6 ")]) == 2 and "Machine:" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{bench.MARKERS[0]}\nold table\n{bench.MARKERS[1]}\nafter\n")
    results = tmp_path / "r.json"
    results.write_text(json.dumps(records))
    bench.main(["--markdown", str(results), "--readme", str(readme)])
    text = readme.read_text()
    assert "old table" not in text and table in text and text.startswith("before\n") and text.endswith("after\n")


def test_sweep_settings_share_one_total():
    counts, lams = bench.sweep_settings(64, 120)
    assert counts.shape == (64, 4) and len(np.unique(counts.sum(1))) == 1 and len(np.unique(lams)) == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cuda"])
    assert "no CUDA GPU is available" in capsys.readouterr().err


def test_only_some_kinds_appended_to_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "records.json"
    bench.main(["--quick", "--device", "cpu", "--only", "widget-update", "--json", str(out)])
    bench.main(["--quick", "--device", "cpu", "--only", "widget-update", "--json", str(out), "--append"])
    records = json.loads(out.read_text())
    assert [r["name"] for r in records] == ["machine", "widget-update", "widget-update"]
    assert "load_average" in records[2] and records[1]["torch_threads"] >= 1
    with pytest.raises(SystemExit):
        bench.main(["--only", "speed"])
    assert "unknown record kinds ['speed']" in capsys.readouterr().err
