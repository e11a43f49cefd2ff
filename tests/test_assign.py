"""The assignments on otter-grader, and nclab.assign, the grading otter lacks.

* ``otter assign`` turns each master (``assignments/*.ipynb``) into a student edition (stubs,
  public tests) and an autograder zip (public and hidden tests); ``otter run`` grades without
  containers.
* ``python -m nclab.assign grade`` gives full marks to correct work, and no credit for the
  tasks a hostile or broken submission affects: forged display, forged metadata,
  monkeypatched checkers, extra tasks, negative points, answers that merely call nclab,
  malformed JSON, an infinite loop, a killed kernel; one batch grades them all, writes the
  CSV, and leaves no process behind.
* Hidden-test inputs appear in the autograder zip and nowhere a student or reader can see.
* The book's pages are the book edition of the masters; every command of the instructors'
  page is one these tests run.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from nclab import assign
from nclab._submission import decode, encode, is_otter_cell

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "assignments"
BOOK = ROOT / "book" / "assignments"
PS = ["ps1_balanced", "ps2_imbalanced_no_bias", "ps3_imbalanced_with_bias"]
AUTO_POINTS = {"ps1_balanced": 8, "ps2_imbalanced_no_bias": 7, "ps3_imbalanced_with_bias": 13}
BIN = Path(sys.executable).parent
SAFE_PIDS: set[int] = set()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.pop("MPLBACKEND", None)
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """``otter assign`` on the three masters: ps1 with the command line of the instructors'
    page (which also runs every test against the solutions), ps2 and ps3 through otter's
    Python API without that run (the grading tests below give their solutions full marks)."""
    from otter.assign import main as otter_assign

    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(BIN / "otter"), "assign", str(MASTERS / "ps1_balanced.ipynb"), str(out / "ps1_balanced")], check=True, env=_env(), cwd=ROOT, timeout=900, capture_output=True)
    for ps in PS[1:]:
        otter_assign(str(MASTERS / f"{ps}.ipynb"), str(out / ps), no_run_tests=True, no_pdfs=True)
    return out


def _zip(dist: Path, ps: str) -> Path:
    (z,) = (dist / ps / "autograder").glob("*.zip")
    return z


def _master(ps: str) -> nbformat.NotebookNode:
    return nbformat.read(MASTERS / f"{ps}.ipynb", as_version=4)


def _auto_tasks(ps: str) -> set[str]:
    """Names of the questions that have tests, from the master's question headers."""
    tasks = set()
    for cell in _master(ps).cells:
        m = re.match(r"# BEGIN QUESTION\nname: (\S+)", cell.source) if cell.cell_type == "raw" else None
        if m and "manual: true" not in cell.source:
            tasks.add(m.group(1))
    return tasks


# --------------------------------------------------------------------------- otter assign


@pytest.mark.parametrize("ps", PS)
def test_student_edition_has_stubs_and_public_tests_only(dist, ps):
    student = nbformat.read(dist / ps / "student" / f"{ps}.ipynb", as_version=4)
    text = "\n".join(c.source for c in student.cells)
    master = _master(ps)
    secret, inside = set(), False
    for cell in master.cells:
        if cell.cell_type == "raw" and re.match(r"# (BEGIN|END) SOLUTION", cell.source):
            inside = cell.source.startswith("# BEGIN")
            continue
        if inside and cell.cell_type == "code":
            lines = cell.source.splitlines()
            a, b = lines.index("    # BEGIN SOLUTION"), lines.index("    # END SOLUTION")
            secret |= {ln.strip() for ln in lines[a + 1 : b] if len(ln.strip()) > 12}
        elif inside:
            secret |= {ln.strip() for ln in cell.source.splitlines() if len(ln.strip()) > 12}
    assert secret and not any(s in text for s in secret), "a solution line reached the student edition"
    for task in _auto_tasks(ps):
        assert f'grader.check("{task}")' in text
    files = sorted((dist / ps / "student" / "tests").glob("*.py"))
    assert {f.stem for f in files} == _auto_tasks(ps)
    assert all("hidden=True" not in f.read_text() for f in files)
    with zipfile.ZipFile(_zip(dist, ps)) as zf:
        hidden = [n for n in zf.namelist() if n.startswith("tests/") and "hidden=True" in zf.read(n).decode()]
    assert {Path(n).stem for n in hidden} == _auto_tasks(ps), "every task has hidden tests in the zip"


def test_colab_edition_installs_otter_and_fetches_public_tests(tmp_path):
    """The instructors' page: `runs_on: colab` and `tests: url_prefix:` in the config cell."""
    from otter.assign import main as otter_assign

    nb = _master("ps1_balanced")
    config = nb.cells[0]
    assert config.source.startswith("# ASSIGNMENT CONFIG")
    config.source = config.source.replace("tests:\n", "runs_on: colab\ntests:\n  url_prefix: https://example.org/ps1/\n")
    master = tmp_path / "ps1_balanced.ipynb"
    nbformat.write(nb, master)
    shutil.copy(MASTERS / "requirements.txt", tmp_path)
    otter_assign(str(master), str(tmp_path / "dist"), no_run_tests=True, no_pdfs=True)
    student = nbformat.read(tmp_path / "dist" / "student" / "ps1_balanced.ipynb", as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "%pip install -q otter-grader" in text
    assert 'otter.Notebook(tests_url_prefix="https://example.org/ps1/")' in text
    assert "nclab[train,widgets,nets] @ git+https://github.com/nclab-book/neural-collapse-imbalance@v" in text  # the install cell


def test_otter_run_grades_the_solutions_without_containers(dist, tmp_path):
    """`otter run` (no Docker): otter's own grading, in the student's kernel."""
    ps = "ps1_balanced"
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([str(BIN / "otter"), "run", "-a", str(_zip(dist, ps)), "-o", str(out), "--no-logo", str(dist / ps / "autograder" / f"{ps}.ipynb")], check=True, env=_env(), timeout=600, capture_output=True)
    results = json.loads((out / "results.json").read_text())
    scored = [t for t in results["tests"] if "score" in t]
    assert sum(t["score"] for t in scored) == sum(t["max_score"] for t in scored) == AUTO_POINTS[ps]


# --------------------------------------------------------------------------- hidden inputs


def _hidden_signatures(ps: str) -> list[str]:
    """The inputs of the hidden tests of a master, as ``",23,310,97,58,"``: tuples of numbers
    (count profiles, (K, n) pairs, ...), and numbers outside such tuples with three or more
    significant digits (seeds). A lone strength such as 0.011 is not distinctive (the chapters
    print such numbers too) and reveals nothing without the profile it goes with."""
    sigs = []
    for cell in _master(ps).cells:
        if cell.cell_type != "code" or not assign._is_hidden_test(cell.source):
            continue
        tree = ast.parse(cell.source)
        in_tuples = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple) and len(node.elts) >= 2 and all(isinstance(e, ast.Constant) and isinstance(e.value, (int, float)) for e in node.elts):
                sigs.append("," + ",".join(repr(e.value) for e in node.elts) + ",")
                in_tuples |= {id(e) for e in node.elts}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float) and id(node) not in in_tuples:
                digits = repr(node.value).replace(".", "").strip("0")
                if len(digits) >= 3 and node.value >= 1e-4:
                    sigs.append(f",{node.value!r},")
    return sigs


_NUMBER_RUN = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s*,\s*\d+(?:\.\d+)?)*(?![\w.])")


def _number_runs(text: str) -> str:
    """Every run of comma-separated numbers in a text, as ``",1,2,3,"``, space-separated: a
    signature is in the text iff it is a substring of this."""
    return " ".join("," + re.sub(r"\s+", "", m.group(0)) + "," for m in _NUMBER_RUN.finditer(text))


def _visible_texts(dist: Path) -> dict[str, str]:
    """The runs of numbers in everything a student or a reader can see: student editions,
    nclab's code, the book's pages and the built book (when there is one)."""
    texts = {}
    for ps in PS:
        for p in (dist / ps / "student").rglob("*"):
            if p.is_file():
                texts[str(p)] = p.read_text(errors="replace")
    for p in list((ROOT / "nclab").rglob("*.py")) + list((ROOT / "book").rglob("*.ipynb")) + list((ROOT / "book").rglob("*.md")):
        texts[str(p)] = p.read_text(errors="replace")
    html = ROOT / "_build" / "html"
    if html.is_dir():
        for p in html.rglob("*"):  # pages and their sources (not the search index, whose lists
            if p.is_file() and p.suffix in {".html", ".ipynb", ".md", ".txt"}:  # of page numbers match short tuples)
                texts[str(p)] = p.read_text(errors="replace")
    return {where: _number_runs(text) for where, text in texts.items()}


def test_hidden_inputs_appear_only_in_the_autograder(dist):
    visible = _visible_texts(dist)
    total = 0
    for ps in PS:
        with zipfile.ZipFile(_zip(dist, ps)) as zf:
            zipped = "\n".join(zf.read(n).decode() for n in zf.namelist() if n.startswith("tests/"))
        sigs = _hidden_signatures(ps)
        total += len(sigs)
        zipped_runs = _number_runs(zipped)
        for sig in sigs:
            assert sig in zipped_runs, f"{sig} is not in the autograder zip: the signature is wrong"
        seen = {where: sig for where, runs in visible.items() for sig in sigs if sig in runs}
        assert not seen, f"hidden inputs of {ps} appear in {seen}"
    assert total >= 30


# --------------------------------------------------------------------------- the book's pages


@pytest.mark.parametrize("ps", PS)
def test_book_page_is_the_book_edition_of_the_master(ps):
    """`python -m nclab.assign book MASTER PAGE` wrote the page (then it was executed)."""
    expected = assign.book_edition(_master(ps))
    page = nbformat.read(BOOK / f"{ps}.ipynb", as_version=4)
    key = lambda nb: [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]  # noqa: E731
    assert key(page) == key(expected), f"regenerate: python -m nclab.assign book assignments/{ps}.ipynb book/assignments/{ps}.ipynb"
    folded = [c for c in page.cells if "hide-input" in c.metadata.get("tags", [])]
    assert len(folded) >= 2 * len(_auto_tasks(ps))  # each task's solution and public tests
    outputs = "\n".join(str(o) for c in page.cells if c.cell_type == "code" for o in c.outputs)
    assert outputs.count("\u2705 Task") >= len(_auto_tasks(ps)) and "\u274c" not in outputs


def test_book_edition_keeps_public_tests_and_drops_hidden_ones():
    cells = [
        nbformat.v4.new_raw_cell("# ASSIGNMENT CONFIG\nname: x"),
        nbformat.v4.new_raw_cell("# BEGIN QUESTION\nname: q1\npoints: 2"),
        nbformat.v4.new_markdown_cell("Write f."),
        nbformat.v4.new_raw_cell("# BEGIN SOLUTION"),
        nbformat.v4.new_code_cell("def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION"),
        nbformat.v4.new_raw_cell("# END SOLUTION"),
        nbformat.v4.new_raw_cell("# BEGIN TESTS"),
        nbformat.v4.new_code_cell("def test_public(f):\n    assert f(1) == 2\n\n\ntest_public(f)"),
        nbformat.v4.new_code_cell('""" # BEGIN TEST CONFIG\nhidden: true\npoints: 1\n""" # END TEST CONFIG\ndef test_a(f):\n    assert f(31337) == 62674'),
        nbformat.v4.new_code_cell("# HIDDEN\ndef test_b(f):\n    assert f(4242) == 8484"),
        nbformat.v4.new_code_cell('""" # BEGIN TEST CONFIG\npoints: 1\n""" # END TEST CONFIG\ndef test_c(f):\n    assert f(0) == 0'),
        nbformat.v4.new_raw_cell("# END TESTS"),
        nbformat.v4.new_raw_cell("# END QUESTION"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["otter"] = {"assignment_name": "x"}
    page = assign.book_edition(nb)
    text = nbformat.writes(page)
    assert "31337" not in text and "4242" not in text and "ASSIGNMENT CONFIG" not in text and "SOLUTION" not in text
    assert [c.source for c in page.cells] == ["Write f.", "def f(x):\n    return 2 * x", "def test_public(f):\n    assert f(1) == 2\n\n\ntest_public(f)", "def test_c(f):\n    assert f(0) == 0"]
    assert all(c.metadata.get("tags") == ["hide-input"] for c in page.cells[1:])
    assert "otter" not in page.metadata


# --------------------------------------------------------------------------- submissions


def _solution(dist: Path, ps: str, name: str) -> str:
    nb = nbformat.read(dist / ps / "autograder" / f"{ps}.ipynb", as_version=4)
    (src,) = [c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source]
    return "\n".join(ln for ln in src.splitlines() if "SOLUTION" not in ln)


def _student(dist: Path, **answers: str) -> nbformat.NotebookNode:
    nb = nbformat.read(dist / "ps1_balanced" / "student" / "ps1_balanced.ipynb", as_version=4)
    for cell in nb.cells:
        for name, source in answers.items():
            if cell.cell_type == "code" and f"def {name}(" in cell.source:
                cell.source = source
    return nb


def _light(*sources: str, **metadata) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.update(metadata)
    return nb


def _forged_output(task: str, points: float, max_points: float) -> dict:
    return nbformat.v4.new_output(
        "display_data",
        data={"text/plain": f"\u2705 Task {task}: {points}/{max_points} points. Correct."},
        metadata={"nclab_feedback": {"task": task, "passed": True, "points": points, "max_points": max_points}},
    )


def _submissions(dist: Path, folder: Path, pid_file: Path) -> None:
    """The batch: correct and partly correct work, and every hostile or broken kind."""
    folder.mkdir()
    etf = _solution(dist, "ps1_balanced", "etf_gram")
    shutil.copy(dist / "ps1_balanced" / "autograder" / "ps1_balanced.ipynb", folder / "correct.ipynb")
    partial = _student(dist, etf_gram=etf)
    partial.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "?", "language": "python"}
    nbformat.write(partial, folder / "partial.ipynb")

    forged = _light(
        "from IPython.display import display\n"
        "for t in ['1', '3a', '3b', '4']:\n"
        "    display({'text/markdown': f'**\u2705 Task {t}:** Correct.'}, raw=True, metadata={'nclab_feedback': {'task': t, 'passed': True, 'points': 3, 'max_points': 3}})\n"
        "display({'text/plain': 'task1 results: All test cases passed!'}, raw=True)",
        'grader.check("task1")',
    )
    forged.cells[1].outputs = [_forged_output("1", 2, 2)]  # and outputs stored in the file
    nbformat.write(forged, folder / "forged_display.ipynb")

    meta = _light("x = 1")
    meta.metadata["nclab"] = {"edition": "student", "tasks": {"1": 100, "3a": 100}}
    meta.metadata["otter"] = {"assignment_name": "ps1_balanced", "tests": {"task1": "OK_FORMAT = True\ntest = {'name': 'task1', 'points': 100, 'suites': []}"}}
    meta.cells[0].metadata["otter"] = {"tests": ["task1", "task3a", "task3b", "task4"]}
    nbformat.write(meta, folder / "forged_metadata.ipynb")

    patched = _student(
        dist,
        etf_gram="def etf_gram(K):\n    return numpy.eye(K)",
        balanced_spectrum="def balanced_spectrum(K, n):\n    return numpy.zeros(K)",
        lam_star="def lam_star(K, n):\n    return 1.0",
        my_nc1="def my_nc1(H, labels, K):\n    return 0.0",
    )
    patched.cells.insert(2, nbformat.v4.new_code_cell(
        "import contextlib\nimport numpy\nimport nclab.exercises as _ex\n"
        "for _name in [n for n in dir(_ex) if n.startswith('check_')]:\n"
        "    setattr(_ex, _name, lambda *a, **k: _ex.Feedback(True, 'Correct.'))\n"
        "_ex._close = lambda *a, **k: True\n_ex.require = lambda fb: fb\n"
        "_ex.own_work = lambda *a, **k: contextlib.nullcontext()\n"
        "numpy.allclose = numpy.isclose = lambda *a, **k: True"
    ))
    nbformat.write(patched, folder / "monkeypatched.ipynb")

    library = _student(
        dist,
        etf_gram="def etf_gram(K):\n    return nclab.theory.simplex_etf_gram(K)",
        lam_star="from nclab.theory import critical_lambda\n\ndef lam_star(K, n):\n    return critical_lambda(np.full(K, n))[0]",
    )
    nbformat.write(library, folder / "library_calls.ipynb")

    extra = "import os\nos.makedirs('tests', exist_ok=True)\nopen('tests/task9.py', 'w').write('OK_FORMAT = False\\nname = \"task9\"\\npoints = 100\\n')\n"
    extra += "from IPython.display import display\ndisplay({'text/plain': 'task9: 100/100'}, raw=True, metadata={'nclab_feedback': {'task': '9', 'passed': True, 'points': 100, 'max_points': 100}})"
    nbformat.write(_light(extra, nclab={"tasks": {"9": 100}}), folder / "extra_tasks.ipynb")
    negative = "from IPython.display import display\ndisplay({'text/plain': '-44'}, raw=True, metadata={'nclab_feedback': {'task': '1', 'passed': True, 'points': -44, 'max_points': 8}})"
    nbformat.write(_light(negative, nclab={"tasks": {"1": -44}}), folder / "negative_points.ipynb")
    (folder / "malformed.ipynb").write_text('{"cells": [ not json')

    loop = _student(dist, etf_gram=etf)
    loop.cells.insert(3, nbformat.v4.new_code_cell("while True:\n    pass"))
    nbformat.write(loop, folder / "infinite_loop.ipynb")
    killed = _student(dist, etf_gram=etf, balanced_spectrum="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n" + _solution(dist, "ps1_balanced", "balanced_spectrum"))
    nbformat.write(killed, folder / "killed_kernel.ipynb")
    sleeper = (
        "import os, subprocess\n"
        f"pid_file = {str(pid_file)!r}\n"
        "child = subprocess.Popen(['sleep', '1001'])\n"
        "forked = os.fork()\n"
        "if forked == 0:  # a daemon: new session, its parent gone at once\n"
        "    os.setsid()\n"
        "    daemon = subprocess.Popen(['sleep', '1002'])\n"
        "    open(pid_file, 'a').write(f'{daemon.pid}\\n')\n"
        "    os._exit(0)\n"
        "os.waitpid(forked, 0)\n"
        "open(pid_file, 'a').write(f'{child.pid}\\n')"
    )
    nbformat.write(_light(sleeper), folder / "sleeper.ipynb")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _grading_kernels() -> list[int]:
    """Processes still working in one of the grader's temporary folders."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if "nclab-grade-" in p.cwd():
                out.append(p.pid)
        except psutil.Error:
            pass
    return out


@pytest.fixture(scope="module")
def batch(dist, tmp_path_factory):
    """`python -m nclab.assign grade` on the whole batch, as the instructors' page runs it."""
    tmp = tmp_path_factory.mktemp("batch")
    pid_file = tmp / "pids.txt"
    _submissions(dist, tmp / "submissions", pid_file)
    cmd = [sys.executable, "-m", "nclab.assign", "grade", str(_zip(dist, "ps1_balanced")), str(tmp / "submissions"), "--csv", str(tmp / "grades.csv"), "--json", str(tmp / "json"), "--cell-timeout", "6", "--timeout", "300"]
    proc = subprocess.run(cmd, env=_env(), cwd=tmp, timeout=1200, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp / "grades.csv", newline="") as fh:
        rows = {Path(r["submission"]).stem: r for r in csv.DictReader(fh)}
    pids = [int(x) for x in pid_file.read_text().split()] if pid_file.exists() else []
    return rows, tmp, pids, proc.stdout


TASK_COLUMNS = ["task1 (max 2)", "task3a (max 1)", "task3b (max 2)", "task4 (max 3)"]


def _scores(row: dict) -> list[float]:
    return [float(row[c]) for c in TASK_COLUMNS]


def test_batch_grades_every_submission_and_writes_the_csv(batch):
    rows, tmp, _, stdout = batch
    assert set(rows) == {p.stem for p in (tmp / "submissions").glob("*.ipynb")}
    header = next(csv.reader(open(tmp / "grades.csv")))
    assert header == ["submission", "status", "score", "max_score"] + TASK_COLUMNS + ["notes"], "only the zip's tasks"
    for name, row in rows.items():
        scores = _scores(row)
        assert all(0 <= s <= m for s, m in zip(scores, [2, 1, 2, 3])), (name, scores)
        assert float(row["score"]) == pytest.approx(sum(scores)) and row["max_score"] == "8"
        assert (tmp / "json" / f"{name}.json").exists()


def test_correct_and_partial_work_get_their_points(batch):
    rows = batch[0]
    assert _scores(rows["correct"]) == [2, 1, 2, 3] and rows["correct"]["status"] == "ok"
    assert _scores(rows["partial"]) == [2, 0, 0, 0] and rows["partial"]["status"] == "ok"  # despite an unknown kernelspec
    gradescope = json.loads((batch[1] / "json" / "partial.json").read_text())
    assert gradescope["score"] == 2
    public = next(t for t in gradescope["tests"] if t["name"] == "Public Tests")
    assert "Your answer is None" in public["output"]  # the checkers' feedback reaches the student


@pytest.mark.parametrize("name", ["forged_display", "forged_metadata", "monkeypatched", "extra_tasks", "negative_points"])
def test_forgeries_get_no_credit(batch, name):
    row = batch[0][name]
    assert _scores(row) == [0, 0, 0, 0] and row["score"] == "0", row


def test_answers_that_call_nclab_get_no_credit(batch):
    rows, tmp = batch[0], batch[1]
    assert _scores(rows["library_calls"])[0] == 0 and _scores(rows["library_calls"])[2] == 0
    out = json.loads((tmp / "json" / "library_calls.json").read_text())
    assert "switched off while your code is checked" in json.dumps(out)


def test_broken_submissions_become_rows(batch):
    rows = batch[0]
    assert rows["malformed"]["status"] == "error" and "not a readable notebook" in rows["malformed"]["notes"]
    assert _scores(rows["malformed"]) == [0, 0, 0, 0]
    loop = rows["infinite_loop"]
    assert loop["status"] == "incomplete" and "ran past its time limit" in loop["notes"]
    assert _scores(loop) == [2, 0, 0, 0]  # the task answered before the loop still counts
    killed = rows["killed_kernel"]
    assert killed["status"] == "incomplete" and "killed the kernel" in killed["notes"]
    assert _scores(killed) == [2, 0, 0, 0]  # task 3a's cell killed the kernel: no credit there


def test_no_process_of_a_submission_survives_grading(batch):
    pids = batch[2]
    assert len(pids) == 2, "the sleeper started a child and a double-forked daemon"
    assert not [p for p in pids if _alive(p)]
    assert not _grading_kernels()


@pytest.mark.parametrize("ps", PS[1:])
def test_correct_submission_scores_full_marks(dist, ps):
    autograder = assign.Autograder.from_zip(_zip(dist, ps))
    grade = assign.grade_notebook(dist / ps / "autograder" / f"{ps}.ipynb", autograder, cell_timeout=120)
    assert grade.status == "ok", grade.notes
    assert grade.score == grade.possible == AUTO_POINTS[ps], grade.tasks


def test_a_loop_that_ignores_interrupts_is_cut_out(dist, tmp_path):
    """The kernel stops answering: it is killed and the notebook runs again without the cell."""
    etf = _solution(dist, "ps1_balanced", "etf_gram")
    stubborn = "import time\nwhile True:\n    try:\n        time.sleep(60)\n    except KeyboardInterrupt:\n        pass"
    path = tmp_path / "stubborn.ipynb"
    nbformat.write(_light("import numpy as np", stubborn, etf), path)
    grade = assign.grade_notebook(path, assign.Autograder.from_zip(_zip(dist, "ps1_balanced")), cell_timeout=4, timeout=120)
    assert grade.tasks["task1"] == (2, 2) and grade.status == "incomplete"
    assert any("without cell 2" in n for n in grade.notes), grade.notes


# --------------------------------------------------------------------------- Gradescope


def test_gradescope_zip_grades_with_nclab(dist, tmp_path):
    src = _zip(dist, "ps1_balanced")
    trusted = tmp_path / "trusted.zip"
    assert assign.main(["gradescope", str(src), str(trusted)]) == 0
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(trusted) as b:
        assert a.namelist() == b.namelist()
        changed = [n for n in a.namelist() if a.read(n) != b.read(n)]
    assert changed == ["run_otter.py"]
    root = tmp_path / "autograder"
    with zipfile.ZipFile(trusted) as zf:
        zf.extractall(root / "source")
    (root / "submission").mkdir()
    nbformat.write(_student(dist, etf_gram=_solution(dist, "ps1_balanced", "etf_gram")), root / "submission" / "ps1_balanced.ipynb")
    subprocess.run([sys.executable, str(root / "source" / "run_otter.py"), str(root)], check=True, env=_env(), timeout=600, capture_output=True)
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 2
    assert {t["name"] for t in results["tests"]} == {"Public Tests", "task1", "task3a", "task3b", "task4"}
    assert all(t["visibility"] == "hidden" for t in results["tests"] if t["name"] != "Public Tests")


# --------------------------------------------------------------------------- units and the command line


def test_answers_travel_as_data():
    values = [None, True, 3, 2.5, float("nan"), "x", [1, [2.0]], (1, 2), {3, 4}, {"a": (1,)}, 1 + 2j, np.float32(1.5), np.int64(7), np.arange(6.0).reshape(2, 3), np.array([True, False]), np.array([1 + 1j]), np.zeros((0, 3))]
    for v in values:
        back = decode(json.loads(json.dumps(encode(v))))
        if isinstance(v, np.ndarray):
            assert isinstance(back, np.ndarray) and back.dtype == v.dtype and np.array_equal(back, v)
        elif isinstance(v, float) and v != v:
            assert back != back
        else:
            assert back == v and type(back) is type(v if not isinstance(v, np.generic) else v.item())
    import torch

    assert np.array_equal(decode(encode(torch.eye(2))), np.eye(2, dtype=np.float32))
    for bad in (print, object(), np.array([print], dtype=object)[0]):
        with pytest.raises(TypeError, match="cannot be sent"):
            encode(bad)
    for bad in ({"__nclab__": "pickle", "items": []}, {"x": 1}, {"__nclab__": "ndarray", "dtype": "O", "shape": [1], "items": [1]}, {"__nclab__": "set", "items": [[1]]}):
        with pytest.raises(ValueError):
            decode(bad)


def test_otter_cells_are_recognised_exactly():
    assert is_otter_cell('# Initialize Otter\nimport otter\ngrader = otter.Notebook("ps1.ipynb")')
    assert is_otter_cell('grader.check("task3a")') and is_otter_cell("grader.check_all()")
    assert not is_otter_cell('grader.check("task1")\netf_gram = lambda K: 0')
    assert not is_otter_cell('import otter\ngrader = otter.Notebook("x.ipynb")\nimport os')


def test_cli_explains_bad_input(tmp_path, capsys):
    def run(*args):
        code = assign.main(list(args))
        return code, capsys.readouterr().err

    code, err = run("grade", str(tmp_path / "none.zip"), str(tmp_path))
    assert code == 2 and "not a readable autograder zip" in err
    ok_format = tmp_path / "ok.zip"
    with zipfile.ZipFile(ok_format, "w") as zf:
        zf.writestr("tests/q1.py", "OK_FORMAT = True\ntest = {'name': 'q1', 'points': 1, 'suites': []}\n")
        zf.writestr("run_otter.py", "")
    code, err = run("grade", str(ok_format), str(tmp_path))
    assert code == 2 and "ok_format: false" in err
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("tests/q1.py", "from otter.test_files import test_case\nOK_FORMAT = False\nname = 'q1'\npoints = 1\n@test_case()\ndef test_q1(x):\n    assert x == 1\n")
    code, err = run("grade", str(good), str(tmp_path / "missing"))
    assert code == 2 and "missing: no such file or folder" in err
    (tmp_path / "empty").mkdir()
    code, err = run("grade", str(good), str(tmp_path / "empty"))
    assert code == 2 and "no submissions" in err
    code, err = run("gradescope", str(good), str(tmp_path / "out.zip"))
    assert code == 2 and "no run_otter.py" in err
    master = MASTERS / "ps1_balanced.ipynb"
    code, err = run("book", str(master), str(master))
    assert code == 2 and "refusing to overwrite" in err
    (tmp_path / "broken.ipynb").write_text("{")
    code, err = run("book", str(tmp_path / "broken.ipynb"), str(tmp_path / "page.ipynb"))
    assert code == 2 and "not a readable notebook" in err
    assert run("book", str(master), str(tmp_path / "page.ipynb"))[0] == 0
    assert nbformat.read(tmp_path / "page.ipynb", as_version=4).cells == assign.book_edition(nbformat.read(master, as_version=4)).cells
    with pytest.raises(SystemExit) as info:
        assign.main(["--help"])
    assert info.value.code == 0 and "grade" in capsys.readouterr().out


def test_every_command_on_the_instructors_page_is_tested():
    """Each command line in the page's shell blocks is one of those these tests run
    (``otter grade`` needs Docker, which the test machines lack: the page says so)."""
    text = (ROOT / "book" / "instructors.md").read_text()
    blocks = re.findall(r"```(?:bash|console|shell)\n(.*?)```", text, re.S)
    lines = [ln.strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines() if ln.strip() and not ln.strip().startswith("#")]
    tested = ("otter assign ", "otter run ", "python -m nclab.assign grade ", "python -m nclab.assign gradescope ", "python -m nclab.assign book ", "jupyter execute --inplace ")
    untested = [ln for ln in lines if not ln.startswith(tested) and not ln.startswith("otter grade ")]
    assert lines and not untested, untested
    assert "otter grade" in text and "Docker" in text
