"""The ResNet-18 / CIFAR-10-LT recipe (examples/) in its small CPU mode on generated data."""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from nclab import longtail

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "resnet18_cifar10_lt.py")


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("resnet18_cifar10_lt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_trains_saves_and_analyses(recipe, tmp_path):
    out, ckpt = tmp_path / "r.json", tmp_path / "m.pt"
    res = recipe.main(["--smoke", "--epochs", "2", "--width", "4", "--out", str(out), "--save", str(ckpt)])
    saved = json.loads(out.read_text())
    counts = longtail.longtail_counts(10, 20, 10)
    assert saved["counts"] == counts.tolist() and len(saved["indices"]) == counts.sum()
    assert saved["history"]["epoch"] == [1, 2] and len(saved["history"]["nc1"]) == 1
    assert {"nc1", "W_theory", "modes", "modes_theory"} <= set(saved["with_bias"])
    assert 0 <= saved["with_bias"]["train_error"] <= 1 and saved["with_bias"]["nc1"] > 0
    assert [e["what"] for e in saved["expectations"]][0].startswith("training error")
    # the checkpoint is a plain state dict, read back with weights_only=True: same analysis
    again = recipe.main(["--smoke", "--width", "4", "--load", str(ckpt), "--out", str(tmp_path / "a.json")])
    assert again["history"] is None
    assert again["with_bias"]["nc1"] == pytest.approx(res["with_bias"]["nc1"], rel=1e-9)


def test_checkpoint_loading_refuses_pickled_code(recipe, tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    bad = tmp_path / "bad.pt"
    torch.save({"fc.weight": Payload()}, bad)
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        recipe.main(["--smoke", "--width", "4", "--load", str(bad), "--out", str(tmp_path / "x.json")])


def test_the_model_is_a_resnet18(recipe):
    model = recipe.ResNet18(K=10, width=64)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 11_173_962  # the CIFAR ResNet-18 (3x3 stem, no max-pool)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert np.isclose(model.fc.in_features, 512)
