"""nclab.assign: instructor notebooks are well formed, their student editions hide every
solution and run up to the first stub, the CLI explains bad input, and grading adds up points."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from nclab import assign

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "book" / "assignments"
NOTEBOOKS = sorted(ASSIGNMENTS.glob("*.ipynb"))
EXPECTED = {"ps1_balanced.ipynb", "ps2_imbalanced_no_bias.ipynb", "ps3_imbalanced_with_bias.ipynb"}


def _solution_lines(nb) -> set[str]:
    """Stripped, non-empty lines strictly inside solution blocks, or in solution markdown cells."""
    inside = set()
    for cell in nb.cells:
        if "solution" not in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "markdown":
            inside |= {ln.strip() for ln in cell.source.splitlines() if ln.strip()}
            continue
        blocks, problems = assign._solution_blocks(cell.source)
        assert not problems
        lines = cell.source.splitlines()
        for begin, end, _, _ in blocks:
            inside |= {ln.strip() for ln in lines[begin + 1 : end] if ln.strip()}
    return inside


def _lines_outside(nb) -> set[str]:
    """Stripped lines of the instructor notebook that are not solution content."""
    out = set()
    for cell in nb.cells:
        if "solution" in cell.metadata.get("tags", []):
            if cell.cell_type == "code":
                keep, skip = [], False
                for ln in cell.source.splitlines():
                    if assign.BEGIN_RE.match(ln):
                        skip = True
                    elif assign.END_RE.match(ln):
                        skip = False
                    elif not skip:
                        keep.append(ln.strip())
                out |= set(keep)
        else:
            out |= {ln.strip() for ln in cell.source.splitlines()}
    return out


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    dest = tmp_path_factory.mktemp("student")
    written = assign.make_student(ASSIGNMENTS, dest)
    assert {p.name for p in written} == EXPECTED
    return dest


def test_the_three_problem_sets_exist():
    assert EXPECTED <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_instructor_notebook_is_well_formed(path):
    nb = nbformat.read(path, as_version=4)
    report = assign.check_notebook(nb, str(path))
    assert report.ok, report.errors
    assert report.blocks >= 3 and report.tasks, "each problem set has auto-checked tasks"
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "solution" in tags and cell.cell_type == "code":
            assert "hide-input" in tags, "solution code is hidden in the book"
    # every task shown in the instructor version passes with full points
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            fb = out.get("metadata", {}).get("nclab_feedback")
            if fb:
                assert fb["passed"] and fb["points"] == fb["max_points"], fb


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_student_edition_hides_solutions(student_dir, name):
    instructor = nbformat.read(ASSIGNMENTS / name, as_version=4)
    student = nbformat.read(student_dir / name, as_version=4)
    nbformat.validate(student)
    secret = _solution_lines(instructor) - _lines_outside(instructor)
    assert secret, "solution blocks have content"
    student_lines = {ln.strip() for cell in student.cells for ln in cell.source.splitlines()}
    leaked = secret & student_lines
    assert not leaked, f"solution lines in the student edition: {sorted(leaked)[:5]}"
    text = nbformat.writes(student)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    # header, cleared outputs, no solution tags, stubs, checker cells kept verbatim
    assert "Student edition" in student.cells[0].source
    assert student.metadata["nclab"]["edition"] == "student"
    assert student.metadata["nclab"]["tasks"] == assign.task_points(instructor)
    n_blocks = 0
    for cell in student.cells:
        tags = cell.metadata.get("tags", [])
        assert "solution" not in tags and "hide-input" not in tags
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            n_blocks += cell.source.count("raise NotImplementedError(")
    assert n_blocks == assign.check_notebook(instructor).blocks
    checker_cells = [c.source for c in instructor.cells if c.cell_type == "code" and "ex.check_" in c.source]
    student_code = [c.source for c in student.cells if c.cell_type == "code"]
    assert checker_cells and all(src in student_code for src in checker_cells)
    # function signatures survive
    for cell in instructor.cells:
        if "solution" in cell.metadata.get("tags", []) and cell.cell_type == "code":
            for ln in cell.source.splitlines():
                if ln.startswith("def "):
                    assert ln in text or ln.replace('"', '\\"') in text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_student_edition_runs_to_first_stub(student_dir, name):
    nb = nbformat.read(student_dir / name, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(student_dir)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert info.value.ename == "NotImplementedError", info.value
    assert "write your solution here" in info.value.evalue


def test_stub_keeps_indentation_and_label():
    src = 'x = 1\ndef f(a):\n    """Doc."""\n    ### BEGIN SOLUTION Task 9\n    return a + 41\n    ### END SOLUTION\ny = 2'
    assert assign._stub_source(src) == 'x = 1\ndef f(a):\n    """Doc."""\n    raise NotImplementedError("Task 9: write your solution here")\ny = 2'
    assert assign._stub_source("### BEGIN SOLUTION\nz = 3\n### END SOLUTION") == 'raise NotImplementedError("write your solution here")'


def _nb(*cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _code(src, tags=()):
    c = nbformat.v4.new_code_cell(src)
    if tags:
        c.metadata["tags"] = list(tags)
    return c


@pytest.mark.parametrize(
    "cell, message",
    [
        (_code("x = 1", ["solution"]), "no '### BEGIN SOLUTION'"),
        (_code("### BEGIN SOLUTION\nx = 1", ["solution"]), "without a matching END"),
        (_code("x = 1\n### END SOLUTION", ["solution"]), "END SOLUTION without a BEGIN"),
        (_code("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx=1\n### END SOLUTION", ["solution"]), "inside an open block"),
        (_code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), "not the cell tag 'solution'"),
        (_code("x = 1"), "no cell is tagged 'solution'"),
    ],
)
def test_check_finds_malformed_notebooks(cell, message):
    report = assign.check_notebook(_nb(cell))
    assert not report.ok
    assert any(message in e for e in report.errors), report.errors
    with pytest.raises(assign.AssignError, match="not a well-formed instructor notebook"):
        assign.student_notebook(_nb(cell))


def test_markdown_solution_replaced_and_student_edition_not_reconverted(tmp_path):
    md = nbformat.v4.new_markdown_cell("The answer is 42, see {cite:p}`papyan2020prevalence`.")
    md.metadata["tags"] = ["solution"]
    intro = nbformat.v4.new_markdown_cell("# Title\nAs shown by {cite}`fang2021exploring`.")
    nb = _nb(intro, md, _code("### BEGIN SOLUTION\nx = 42\n### END SOLUTION", ["solution", "hide-input"]))
    out = assign.student_notebook(nb, "x.ipynb")
    sources = [c.source for c in out.cells]
    assert not any("42" in s for s in sources)
    assert assign.ANSWER_PROMPT in sources
    assert "[fang2021exploring]" in sources[1]
    assert not assign.check_notebook(out).ok  # already a student edition
    p = tmp_path / "s.ipynb"
    nbformat.write(out, p)
    with pytest.raises(assign.AssignError, match="already a student edition"):
        assign.make_student(p, tmp_path / "again.ipynb")


def _cli(capsys, *args):
    """Run the command line in this process (a subprocess would pay for importing torch again)."""
    code = assign.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
def test_cli_as_module(monkeypatch, capsys):
    """`python -m nclab.assign --help` (run in this process: a new interpreter would import torch again)."""
    monkeypatch.setattr(sys, "argv", ["python -m nclab.assign", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("nclab.assign", run_name="__main__", alter_sys=False)
    out = capsys.readouterr().out
    assert info.value.code == 0 and "student" in out and "BEGIN SOLUTION" in out


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _cli(capsys, "student", "--help")
    assert info.value.code == 0 and "SRC" in capsys.readouterr().out.upper()
    code, out, err = _cli(capsys, "student", "no/such.ipynb", str(tmp_path / "x.ipynb"))
    assert code == 2 and "no/such.ipynb: no such file or folder" in err
    code, out, err = _cli(capsys, "check", str(ASSIGNMENTS))
    assert code == 0 and out.count("OK") == len(NOTEBOOKS)
    bad = tmp_path / "bad.ipynb"
    nbformat.write(_nb(_code("x = 1", ["solution"])), bad)
    code, out, err = _cli(capsys, "check", str(bad))
    assert code == 1 and "no '### BEGIN SOLUTION'" in out
    src = ASSIGNMENTS / "ps1_balanced.ipynb"
    code, out, err = _cli(capsys, "student", str(src), str(tmp_path / "out") + "/")
    assert code == 0 and (tmp_path / "out" / "ps1_balanced.ipynb").exists()
    code, out, err = _cli(capsys, "student", str(src), str(tmp_path / "colab.ipynb"), "--pip", "nclab @ git+https://github.com/o/r")
    install = nbformat.read(tmp_path / "colab.ipynb", as_version=4).cells[1]
    assert code == 0 and install.cell_type == "code"
    assert "import nclab" in install.source and "%pip install --quiet 'nclab @ git+https://github.com/o/r'" in install.source
    code, out, err = _cli(capsys, "student", str(src), str(tmp_path / "out.txt"))
    assert code == 2 and "must end in .ipynb" in err
    code, out, err = _cli(capsys, "student", str(src), str(src))
    assert code == 2 and "refusing to overwrite" in err
    code, out, err = _cli(capsys, "student", str(bad), str(tmp_path / "b.ipynb"))
    assert code == 2 and "not a well-formed" in err and not (tmp_path / "b.ipynb").exists()
    notnb = tmp_path / "broken.ipynb"
    notnb.write_text("{not json")
    code, out, err = _cli(capsys, "check", str(notnb))
    assert code == 2 and "not a readable Jupyter notebook" in err
    code, out, err = _cli(capsys, "student", str(tmp_path / "out"), str(tmp_path / "b.ipynb"))
    assert code == 2 and "no notebooks" not in err  # out/ holds a student edition: refused, not silently copied
    assert "already a student edition" in err


def test_grade_partial_submission(student_dir, tmp_path):
    """A student who solved Task 1 of problem set 1 only: 2 of 8 points, and the errors listed."""
    instructor = nbformat.read(ASSIGNMENTS / "ps1_balanced.ipynb", as_version=4)
    sub = nbformat.read(student_dir / "ps1_balanced.ipynb", as_version=4)
    task1 = next(c for c in instructor.cells if "def etf_gram" in c.source)
    for cell in sub.cells:
        if "def etf_gram" in cell.source:
            cell.source = "\n".join(ln for ln in task1.source.splitlines() if "SOLUTION" not in ln)
    path = tmp_path / "alice.ipynb"
    nbformat.write(sub, path)
    g = assign.grade_notebook(path, timeout=120)
    assert g.tasks["1"] == (2, 2)
    assert g.tasks["3a"] == (0, 1) and g.tasks["4"] == (0, 3)
    assert (g.points, g.max_points) == (2, 8)
    assert any("NotImplementedError" in e for e in g.errors)
