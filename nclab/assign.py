"""What otter-grader lacks for the book's assignments: verdicts a submission cannot forge,
batch grading that never stops, and the book's edition of an assignment.

The problem sets are otter-grader assignments: ``assignments/*.ipynb`` are otter-assign
master notebooks, and ``otter assign`` writes the student edition (public tests only) and the
autograder zip (public and hidden tests). otter runs a notebook's tests *inside the student's
kernel*, where a submission can patch otter, numpy or nclab and award itself full marks. This
module grades with the same test files from the same zip, but runs them in the grader's own
process; the submission's kernel only supplies its answers as data (see
:mod:`nclab._submission`). So:

* verdicts come from the tests, never from what the notebook displays or stores;
* the tasks and their points come from the autograder zip: a task the zip does not define is
  ignored, and each task's score is clamped to ``[0, its points]``;
* a broken submission (unreadable file, a cell that runs forever, a kernel that dies) becomes a
  row of the CSV with a note, and the batch goes on; a kernel and every process it started are
  killed after its submission.

It runs the submission's code as the user who runs the grader, with that user's files and
network: it does not isolate. For isolation, grade in containers (``otter grade``, or
Gradescope with the zip from ``gradescope``).

Command line (``python -m nclab.assign --help``)::

    python -m nclab.assign grade AUTOGRADER.zip SUBMISSIONS... --csv grades.csv [--json DIR]
    python -m nclab.assign gradescope AUTOGRADER.zip TRUSTED-AUTOGRADER.zip
    python -m nclab.assign book assignments/ps1_balanced.ipynb book/assignments/ps1_balanced.ipynb

Test files must be otter's exception-based format (assignment config ``tests: ok_format:
false``), and their test functions' parameters must name only the student's answers (values or
functions); tests import numpy and nclab themselves.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import re
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import nbformat

from ._submission import Kernel, become_subreaper, run_submission

__all__ = ["AssignError", "Autograder", "Grade", "grade_notebook", "grade_batch", "write_csv", "gradescope_zip", "run_gradescope", "book_edition", "main"]

#: Default seconds a cell may run, and a whole submission.
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 60.0, 900.0


class AssignError(Exception):
    """An input the tool cannot work with; the message says why and what to do."""


# --------------------------------------------------------------------------- the tests


@dataclass
class Autograder:
    """The tests of an assignment: ``name -> source`` of otter's exception-based test files,
    and otter's autograder configuration (``otter_config.json``)."""

    tests: dict[str, str]
    config: dict = field(default_factory=dict)

    @classmethod
    def from_zip(cls, path: str | Path) -> "Autograder":
        """Read an autograder zip written by ``otter assign``."""
        try:
            with zipfile.ZipFile(path) as zf:
                files = {n: zf.read(n) for n in zf.namelist() if re.fullmatch(r"tests/[^/]+\.py", n) or n == "otter_config.json"}
        except (OSError, zipfile.BadZipFile) as exc:
            raise AssignError(f"{path}: not a readable autograder zip ({exc})") from None
        return cls._from_files(files, str(path))

    @classmethod
    def from_dir(cls, path: str | Path) -> "Autograder":
        """Read an unpacked autograder (``tests/*.py`` and ``otter_config.json`` in ``path``)."""
        root = Path(path)
        files = {f"tests/{p.name}": p.read_bytes() for p in sorted((root / "tests").glob("*.py"))}
        if (root / "otter_config.json").exists():
            files["otter_config.json"] = (root / "otter_config.json").read_bytes()
        return cls._from_files(files, str(path))

    @classmethod
    def _from_files(cls, files: dict[str, bytes], where: str) -> "Autograder":
        config = json.loads(files.pop("otter_config.json", b"{}") or b"{}")
        tests = {}
        for name, data in sorted(files.items()):
            source = data.decode("utf-8")
            env: dict[str, Any] = {}
            exec(compile(source, name, "exec"), env)  # the instructor's file: defines the tests
            if env.get("OK_FORMAT", True) or "name" not in env:
                raise AssignError(f"{where}: {name} is not an exception-based otter test file (set 'tests: ok_format: false' in the assignment config)")
            tests[str(env["name"])] = source
        if not tests:
            raise AssignError(f"{where}: no test files (tests/*.py) found")
        return cls(dict(sorted(tests.items(), key=lambda kv: _natural(kv[0]))), config)

    def fresh(self) -> list[Any]:
        """New otter TestFile objects (they store their results), one per task."""
        from otter.test_files import ExceptionTestFile

        return [ExceptionTestFile.from_string(src, path=f"tests/{name}.py") for name, src in self.tests.items()]

    def points(self) -> dict[str, float]:
        return {tf.name: max(0.0, float(tf.possible)) for tf in self.fresh()}


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------- one submission


@dataclass
class Grade:
    """The grade of one submission.

    ``status`` is ``"ok"``, ``"incomplete"`` (a cell timed out or killed the kernel; the rest
    was graded) or ``"error"`` (nothing could be graded). ``tasks`` maps each task of the
    autograder to ``(score, points)``.
    """

    path: str
    tasks: dict[str, tuple[float, float]]
    status: str = "ok"
    notes: list[str] = field(default_factory=list)
    results: Any = None  # otter's GradingResults, for the Gradescope format

    @property
    def score(self) -> float:
        return sum(s for s, _ in self.tasks.values())

    @property
    def possible(self) -> float:
        return sum(p for _, p in self.tasks.values())


class _Answers(dict):
    """The environment otter calls the test functions with: each name a test asks for is
    fetched from the submission's kernel on first use (None where missing or unreadable)."""

    def __init__(self, kernel: Kernel | None, notes: list[str]):
        super().__init__()
        self._kernel, self._notes = kernel, notes

    def get(self, name: str, default: Any = None) -> Any:
        if not dict.__contains__(self, name):
            dict.__setitem__(self, name, self._fetch(name))
        return dict.__getitem__(self, name)

    __getitem__ = get

    def _fetch(self, name: str) -> Any:
        if self._kernel is None or not self._kernel.alive:
            return None
        try:
            return self._kernel.ask(name, None)
        except Exception as exc:  # noqa: BLE001 - an unreadable answer counts as missing
            self._notes.append(f"could not read {name}: {exc}")
            return None


def _code_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            if not isinstance(source, str):
                raise ValueError("a code cell's source is not text")
            cells.append(source)
    return cells


def grade_notebook(path: str | Path, autograder: Autograder, *, cell_timeout: float = CELL_TIMEOUT, timeout: float = NOTEBOOK_TIMEOUT) -> Grade:
    """Grade one submission; never raises for anything the submission does.

    The notebook's code cells (without otter's own init and check cells) run in a fresh
    kernel in a temporary folder; then every test of ``autograder`` runs here, in this
    process, on the answers the kernel sends back as data.

    Parameters
    ----------
    path : the submitted notebook.
    autograder : the tests (:meth:`Autograder.from_zip`).
    cell_timeout : seconds a cell, or one call of a student's function, may run.
    timeout : seconds for the whole submission: its cells, then the calls the tests make.
    """
    from otter.test_files import GradingResults
    from otter.test_files.abstract_test import TestCaseResult

    path = Path(path)
    test_files = autograder.fresh()
    grade = Grade(str(path), {tf.name: (0.0, max(0.0, float(tf.possible))) for tf in test_files})
    try:
        cells = _code_cells(path)
    except Exception as exc:  # noqa: BLE001 - malformed JSON, not a notebook, unreadable file
        grade.status = "error"
        grade.notes.append(f"not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})")
        return grade
    with tempfile.TemporaryDirectory(prefix="nclab-grade-", ignore_cleanup_errors=True) as work:
        run = run_submission(cells, work, cell_timeout=cell_timeout, deadline=time.monotonic() + timeout)
        grade.notes += run.notes
        kernel = run.kernel
        try:
            if kernel is not None and not kernel.install_probe():
                grade.notes.append("the grader could not talk to the notebook's kernel")
                kernel.kill()
            env = _Answers(kernel, grade.notes)
            for tf in test_files:
                try:
                    tf.run(env)
                except Exception as exc:  # noqa: BLE001 - a test that cannot run scores 0
                    tf.test_case_results = [TestCaseResult(tc, f"the test could not run: {exc}", False) for tc in tf.test_cases]
        finally:
            if kernel is not None:
                kernel.kill()
    for tf in test_files:
        possible = max(0.0, float(tf.possible))
        score = float(tf.score)
        score = min(max(score, 0.0), possible) if math.isfinite(score) else 0.0
        tf.update_score(score)
        grade.tasks[tf.name] = (score, possible)
    grade.results = GradingResults(test_files)
    if run.incomplete:
        grade.status = "incomplete" if run.kernel is not None or grade.score > 0 else "error"
    return grade


# --------------------------------------------------------------------------- a batch


def _submissions(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise AssignError(f"{p}: no such file or folder")
        if p.is_dir():
            out += sorted(q for q in p.glob("*.ipynb") if not q.name.startswith("."))
        else:
            out.append(p)
    return out


def grade_batch(paths: Sequence[str | Path], autograder: Autograder, *, cell_timeout: float = CELL_TIMEOUT, timeout: float = NOTEBOOK_TIMEOUT, report: Any = None) -> list[Grade]:
    """Grade every submission (files, or folders of ``*.ipynb``); one bad one never stops it."""
    grades = []
    for p in _submissions(paths):
        try:
            g = grade_notebook(p, autograder, cell_timeout=cell_timeout, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a bug or resource problem: record it, go on
            g = Grade(str(p), {n: (0.0, m) for n, m in autograder.points().items()}, "error", [f"grading failed ({type(exc).__name__}: {exc})"])
        grades.append(g)
        if report is not None:
            report(g)
    return grades


def _num(x: float) -> str:
    return f"{x:.6g}"


def write_csv(grades: Sequence[Grade], path: str | Path, autograder: Autograder) -> None:
    """One row per submission: status, total, each task's score, and notes."""
    points = autograder.points()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["submission", "status", "score", "max_score"] + [f"{t} (max {_num(m)})" for t, m in points.items()] + ["notes"])
        for g in grades:
            w.writerow([Path(g.path).name, g.status, _num(g.score), _num(g.possible)] + [_num(g.tasks.get(t, (0.0, m))[0]) for t, m in points.items()] + ["; ".join(g.notes)])


def gradescope_results(grade: Grade, autograder: Autograder) -> dict:
    """The grade in Gradescope's ``results.json`` format (otter's own conversion)."""
    from otter.run.run_autograder.autograder_config import AutograderConfig
    from otter.test_files import GradingResults

    results = grade.results
    if results is None:  # nothing ran: every test failed
        results = GradingResults.without_results(RuntimeError("; ".join(grade.notes) or "the submission could not be graded"))
    out = results.to_gradescope_dict(AutograderConfig(dict(autograder.config)))
    out["score"] = grade.score
    if grade.notes:
        out["output"] = "Notes from the grader: " + "; ".join(grade.notes)
    return out


# --------------------------------------------------------------------------- Gradescope

_RUNNER = '''"""Gradescope entry point: nclab's grading (tests run outside the student's kernel)
in place of otter's own run. Written by `python -m nclab.assign gradescope`."""

import sys

from nclab.assign import run_gradescope

if __name__ == "__main__":
    sys.exit(run_gradescope(sys.argv[1] if len(sys.argv) > 1 else "/autograder"))
'''


def gradescope_zip(src: str | Path, dest: str | Path) -> Path:
    """Copy an otter autograder zip, replacing its entry point (``run_otter.py``) by nclab's
    grading. Gradescope still builds the same container from it (the zip's requirements must
    install nclab), and still runs one container per submission."""
    src, dest = Path(src), Path(dest)
    Autograder.from_zip(src)  # refuses a zip without exception-based tests
    if dest.resolve() == src.resolve():
        raise AssignError(f"{dest}: refusing to overwrite the autograder zip it is made from")
    with zipfile.ZipFile(src) as zin:
        if "run_otter.py" not in zin.namelist():
            raise AssignError(f"{src}: no run_otter.py; is this a zip written by otter assign?")
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
            for item in zin.infolist():
                data = _RUNNER.encode() if item.filename == "run_otter.py" else zin.read(item)
                zout.writestr(item, data)
    return dest


def run_gradescope(root: str | Path = "/autograder", *, cell_timeout: float = CELL_TIMEOUT, timeout: float = NOTEBOOK_TIMEOUT) -> int:
    """Grade the one notebook in ``ROOT/submission`` with the tests in ``ROOT/source`` and
    write ``ROOT/results/results.json`` (Gradescope's layout). Returns 0."""
    root = Path(root)
    become_subreaper()
    autograder = Autograder.from_dir(root / "source")
    notebooks = sorted((root / "submission").glob("*.ipynb"))
    if len(notebooks) == 1:
        grade = grade_notebook(notebooks[0], autograder, cell_timeout=cell_timeout, timeout=timeout)
    else:
        grade = Grade("submission", {n: (0.0, m) for n, m in autograder.points().items()}, "error", [f"expected one notebook (.ipynb) in the submission, found {len(notebooks)}"])
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results" / "results.json").write_text(json.dumps(gradescope_results(grade, autograder), indent=2))
    return 0


# --------------------------------------------------------------------------- the book's edition


def book_edition(master: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The page the book shows for an otter-assign master notebook.

    Prompts and text as in the master; each solution cell whole, without its ``# BEGIN/END
    SOLUTION`` lines and folded away (tag ``hide-input``); each *public* test cell folded away
    too, so the page shows its verdict on the solution; hidden tests, otter's configuration
    and block markers dropped. (The student edition comes from ``otter assign``.)
    """
    from otter.assign.blocks import BlockType, is_assignment_config_cell, is_block_boundary_cell
    from otter.assign.utils import is_ignore_cell

    out = copy.deepcopy(master)
    cells, inside = [], {BlockType.SOLUTION: False, BlockType.TESTS: False}
    for cell in out.cells:
        if is_assignment_config_cell(cell) or is_ignore_cell(cell):
            continue
        boundary = False
        for kind in BlockType:
            for end in (False, True):
                if is_block_boundary_cell(cell, kind, end=end):
                    boundary = True
                    if kind in inside:
                        inside[kind] = not end
        if boundary or cell.cell_type == "raw":
            continue
        if inside[BlockType.TESTS]:
            if cell.cell_type != "code" or _is_hidden_test(cell.source):
                continue
            cell.source = _strip_test_config(cell.source)
            _fold(cell)
        elif inside[BlockType.SOLUTION] and cell.cell_type == "code":
            cell.source = "\n".join(ln for ln in cell.source.splitlines() if not re.fullmatch(r"\s*#\s*(BEGIN|END) SOLUTION\s*", ln, re.I))
            _fold(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    out.cells = cells
    out.metadata.pop("otter", None)
    return out


def _test_config(source: str) -> tuple[dict, int]:
    """otter's test-cell configuration (a YAML block that opens with a line ending in
    ``# BEGIN TEST CONFIG`` and closes with ``# END TEST CONFIG``), and the lines it takes."""
    import yaml
    from otter.assign.tests_manager import BEGIN_TEST_CONFIG_REGEX, END_TEST_CONFIG_REGEX

    lines = source.splitlines()
    if not lines or not re.match(BEGIN_TEST_CONFIG_REGEX, lines[0], flags=re.I):
        return {}, 0
    for i, line in enumerate(lines):
        if i and re.match(END_TEST_CONFIG_REGEX, line, flags=re.I):
            return yaml.safe_load("\n".join(lines[1:i])) or {}, i + 1
    raise AssignError("a test cell opens a TEST CONFIG block that it does not close")


def _is_hidden_test(source: str) -> bool:
    """otter's rule: a first-line comment that says hidden, overridden by ``hidden:``."""
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    hidden = first.startswith("#") and bool(re.search(r"\bhidden\b", first, re.I))
    return bool(_test_config(source)[0].get("hidden", hidden))


def _strip_test_config(source: str) -> str:
    return "\n".join(source.splitlines()[_test_config(source)[1] :]).lstrip("\n")


def _fold(cell: nbformat.NotebookNode) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if "hide-input" not in tags:
        tags.append("hide-input")


# --------------------------------------------------------------------------- command line


def _cmd_grade(args: argparse.Namespace) -> int:
    autograder = Autograder.from_zip(args.autograder)
    paths = _submissions(args.submissions)
    if not paths:
        raise AssignError("no submissions (.ipynb) found")
    become_subreaper()
    json_dir = Path(args.json) if args.json else None
    if json_dir:
        json_dir.mkdir(parents=True, exist_ok=True)

    def report(g: Grade) -> None:
        print(f"{Path(g.path).name}: {_num(g.score)}/{_num(g.possible)} ({g.status})" + (f" -- {'; '.join(g.notes)}" if g.notes else ""), flush=True)
        if json_dir:
            (json_dir / (Path(g.path).stem + ".json")).write_text(json.dumps(gradescope_results(g, autograder), indent=2))

    grades = grade_batch(paths, autograder, cell_timeout=args.cell_timeout, timeout=args.timeout, report=report)
    if args.csv:
        write_csv(grades, args.csv, autograder)
        print(f"wrote {args.csv}")
    return 0


def _cmd_gradescope(args: argparse.Namespace) -> int:
    print(f"wrote {gradescope_zip(args.autograder, args.dest)}")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    src, dest = Path(args.master), Path(args.page)
    if dest.resolve() == src.resolve():
        raise AssignError(f"{dest}: refusing to overwrite the master notebook")
    try:
        master = nbformat.read(src, as_version=4)
    except Exception as exc:  # noqa: BLE001
        raise AssignError(f"{src}: not a readable notebook ({exc})") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book_edition(master), dest)
    print(f"wrote {dest} (execute it: jupyter execute --inplace {dest})")
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m nclab.assign", description="Grading and book pages for otter-grader assignments (see book/instructors.md).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{grade,gradescope,book}")
    g = sub.add_parser("grade", help="grade submissions with the tests of an autograder zip; write a CSV", description="Runs each notebook in a fresh kernel (as you: use a container or a throwaway account for isolation) and the zip's tests in this process, on the answers the kernel sends back as data. Never stops on a bad submission.")
    g.add_argument("autograder", help="autograder zip written by otter assign")
    g.add_argument("submissions", nargs="+", help="submitted notebooks, or folders of them")
    g.add_argument("--csv", help="write one row per submission to this file")
    g.add_argument("--json", metavar="DIR", help="write each grade in Gradescope's results.json format to DIR")
    g.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, help=f"seconds per cell and per call of a student's function (default {CELL_TIMEOUT:g})")
    g.add_argument("--timeout", type=float, default=NOTEBOOK_TIMEOUT, help=f"seconds per submission, cells and tests together (default {NOTEBOOK_TIMEOUT:g})")
    g.set_defaults(func=_cmd_grade)
    s = sub.add_parser("gradescope", help="make a Gradescope autograder zip that grades with nclab instead of otter's in-kernel run")
    s.add_argument("autograder", help="autograder zip written by otter assign")
    s.add_argument("dest", help="the new zip")
    s.set_defaults(func=_cmd_gradescope)
    b = sub.add_parser("book", help="write the book's page for a master notebook: solutions and public tests folded, hidden tests left out")
    b.add_argument("master", help="otter-assign master notebook")
    b.add_argument("page", help="notebook to write (then execute it)")
    b.set_defaults(func=_cmd_book)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nclab.assign``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        import otter.test_files  # noqa: F401 - every command reads otter's formats
    except ImportError:
        print("error: these commands need otter-grader: pip install 'nclab[assign]' (or otter-grader)", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except AssignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
