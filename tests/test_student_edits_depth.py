"""A student changes a number in chapter 5 or 7 and runs the notebook (issue #16).

The chapter must either run to the end or stop with a check that names the parameter and the
regime the text assumes; never with a bare ``AssertionError``. Each test copies the chapter,
replaces one literal, executes it in a fresh kernel (nbclient stops at the first error) and
reads the error.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

BOOK = Path(__file__).resolve().parents[1] / "book"

pytestmark = pytest.mark.slow


def _edited(chapter: str, old: str, new: str) -> nbformat.NotebookNode:
    nb = nbformat.read(BOOK / chapter, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
    assert len(cells) == 1, f"{old!r} must occur in exactly one code cell of {chapter}"
    cells[0].source = cells[0].source.replace(old, new, 1)
    return nb


def _run(nb: nbformat.NotebookNode, tmp_path: Path) -> CellExecutionError | None:
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    try:
        client.execute()
    except CellExecutionError as err:
        return err
    return None


@pytest.mark.parametrize(
    "chapter, old, new, measured",
    [
        # the Schatten experiment needs a width d >= K
        ("05_depth.ipynb", "K, d = len(sig_A), 6", "K, d = len(sig_A), 3", "d = 3"),
        # the trap experiment assumes that the L = 3 optimum keeps all three nonzero modes
        ("05_depth.ipynb", "lam = 5e-3", "lam = 0.02", "lam = 0.02"),
        # 13 is not a ratio that N = 120 realises in whole counts
        ("07_phase_diagrams.ipynb", "train_ratios = [1, 2, 3, 5, 9, 14]",
         "train_ratios = [1, 2, 3, 5, 9, 13]", "train_ratios = [1, 2, 3, 5, 9, 13]"),
    ],
)
def test_an_edit_outside_the_regime_stops_with_a_message_naming_the_parameter(chapter, old, new, measured, tmp_path):
    err = _run(_edited(chapter, old, new), tmp_path)
    assert err is not None, "the edit leaves the regime the text assumes; the chapter must say so"
    assert err.ename == "OutsideRegime", f"{err.ename}: {err.evalue}"
    assert err.evalue.startswith("The text below assumes that")
    parameter = measured.split(" = ")[0]
    assert parameter in err.evalue.split(", but here")[0]  # the assumption names the parameter
    assert measured in err.evalue  # and the message shows the student's value


def test_an_edit_inside_the_regime_runs_on(tmp_path):
    """A smaller width d in the Schatten experiment (still d >= K) changes nothing the text says."""
    nb = _edited("05_depth.ipynb", "K, d = len(sig_A), 6", "K, d = len(sig_A), 5")
    cut = next(i for i, c in enumerate(nb.cells) if "## The scalar problem and its jump" in c.source)
    nb.cells = nb.cells[:cut]  # the cells that use d, and their checks
    assert _run(nb, tmp_path) is None
