"""Chapters a student can change: edit a number as a student would, run the chapter.

Each case copies a chapter notebook, replaces one literal in one cell as a student would,
and executes it in a fresh kernel with nbclient up to a given cell (the end of the part that
depends on the edited number, to keep the run short). The run must either finish, or stop
with one of the book's own checks (:mod:`nclab.checks`) whose message names the edited
parameter and the regime the text assumes -- never with a bare ``AssertionError`` or some
other error deep inside the chapter.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
TIMEOUT_S = 300

# (chapter, literal as printed in the chapter, the student's replacement, run up to the first
#  cell containing this text, expected outcome: "runs" or the words the message must contain)
CASES = [
    ("04_imbalanced_with_bias.ipynb", "lam = 0.0097", "lam = 0.012", "plot_spectrum(",
     ("lam = 0.012", "critical values of modes 4 and 3", "Pick lam")),
    ("04_imbalanced_with_bias.ipynb", "data.long_tailed(6, 300, 30)",
     "data.long_tailed(8, 500, 10)", "plot_spectrum(",
     ("lam = 0.0097", "critical values of modes 4 and 3", "Pick lam")),
    ("03_imbalanced_no_bias.ipynb", "data.step(2, 200, 3, 20)", "data.step(2, 200, 3, 30)",
     "## Experiment 2", "runs"),
    ("03_imbalanced_no_bias.ipynb", "lam_weak, lam_strong = 0.005, 0.015",
     "lam_weak, lam_strong = 0.004, 0.015", "## Experiment 2", "runs"),
    ("03_imbalanced_no_bias.ipynb", "lam_weak, lam_strong = 0.005, 0.015",
     "lam_weak, lam_strong = 0.005, 0.035", "## Experiment 2",
     ("lam_strong = 0.035", "between the critical values", "Pick lam_strong")),
]


def _edited(chapter: str, old: str, new: str, stop_at: str) -> nbformat.NotebookNode:
    nb = nbformat.read(BOOK / chapter, as_version=4)
    hits = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
    assert len(hits) == 1 and hits[0].source.count(old) == 1, f"{old!r} not unique in {chapter}"
    hits[0].source = hits[0].source.replace(old, new)
    last = next(i for i, c in enumerate(nb.cells) if stop_at in c.source)
    nb.cells = nb.cells[: last + 1]
    return nb


@pytest.mark.parametrize("chapter, old, new, stop_at, expected", CASES,
                         ids=[f"{c[0][:2]}: {c[2]}" for c in CASES])
def test_an_edited_chapter_runs_or_says_which_parameter_left_which_regime(
        chapter, old, new, stop_at, expected, tmp_path, monkeypatch):
    nb = _edited(chapter, old, new, stop_at)
    # the kernel imports this checkout's nclab
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    if expected == "runs":
        client.execute()
        return
    with pytest.raises(CellExecutionError) as err:
        client.execute()
    assert err.value.ename == "OutsideRegime", err.value
    message = err.value.evalue
    assert message.startswith("The text below assumes that"), message
    for words in expected:
        assert words in message, f"{words!r} missing from: {message}"
