"""Student editions of the assignment notebooks, well-formedness checks, and grading.

Command line (``python -m nclab.assign --help``)::

    python -m nclab.assign check   book/assignments/ps1_balanced.ipynb
    python -m nclab.assign student book/assignments student/          # a whole folder
    python -m nclab.assign student book/assignments/ps1_balanced.ipynb ps1_student.ipynb
    python -m nclab.assign grade   submissions/*.ipynb --key book/assignments/ps1_balanced.ipynb

Marking scheme (one, and only one)
----------------------------------
An instructor notebook marks its solutions in code cells that carry the cell tag ``solution``
(the book also tags them ``hide-input``, so the published page shows them behind a dropdown).
Inside such a cell, each solution is enclosed by a pair of marker lines::

    def etf_gram(K):
        \"\"\"Gram matrix of a simplex ETF of K unit vectors.\"\"\"
        ### BEGIN SOLUTION Task 1a
        ...the instructor's code...
        ### END SOLUTION

In the student edition the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (markers
included) become a single line, indented like the ``BEGIN`` marker::

        raise NotImplementedError("Task 1a: write your solution here")

Everything outside the markers (the signature, the docstring, variable names, checker calls)
is kept. Text after ``BEGIN SOLUTION`` labels the stub. A *markdown* cell tagged ``solution``
(a written answer) is replaced as a whole by an answer prompt. All outputs and execution
counts are cleared, and a header cell names the notebook the student edition.

Grading
-------
The checkers of :mod:`nclab.exercises` display a :class:`~nclab.exercises.Feedback` that
records its task and points in the output's metadata. ``grade`` executes each submitted
notebook in a fresh kernel (errors do not stop it) and adds up the last feedback shown for each
task. It runs the students' code: run it in a container or a throwaway account, and treat the
result as a first pass (a student could edit a checker cell; look at the notebook too).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import nbformat

from .exercises import FEEDBACK_METADATA_KEY

__all__ = [
    "SOLUTION_TAG",
    "BEGIN_RE",
    "END_RE",
    "check_notebook",
    "student_notebook",
    "make_student",
    "task_points",
    "grade_notebook",
    "main",
]

SOLUTION_TAG = "solution"
BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)###[ \t]*BEGIN SOLUTION\b(?P<label>.*)$")
END_RE = re.compile(r"^[ \t]*###[ \t]*END SOLUTION\b.*$")
HIDE_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
CITE_RE = re.compile(r"\{cite(?::\w+)?\}`(?P<keys>[^`]+)`")
ANSWER_PROMPT = "**Your answer:** *write your answer here (replace this text).*"
FEEDBACK_KEY = FEEDBACK_METADATA_KEY


class AssignError(Exception):
    """An input the tool cannot work with; the message says why and what to do."""


# --------------------------------------------------------------------------- reading


def _read(path: str | Path) -> nbformat.NotebookNode:
    p = Path(path)
    if not p.exists():
        raise AssignError(f"{p}: no such file or folder")
    if p.is_dir():
        raise AssignError(f"{p} is a folder; expected a notebook (.ipynb)")
    try:
        return nbformat.read(p, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any parse failure
        raise AssignError(f"{p}: not a readable Jupyter notebook ({type(exc).__name__}: {exc})") from None


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_solution(cell: nbformat.NotebookNode) -> bool:
    return SOLUTION_TAG in _tags(cell)


def _solution_blocks(source: str) -> tuple[list[tuple[int, int, str, str]], list[str]]:
    """Marker pairs in a code cell: [(begin line, end line, indent, label)], and problems."""
    blocks, problems = [], []
    open_at: int | None = None
    indent = label = ""
    for i, line in enumerate(source.splitlines()):
        b, e = BEGIN_RE.match(line), END_RE.match(line)
        if b:
            if open_at is not None:
                problems.append(f"line {i + 1}: BEGIN SOLUTION inside an open block (opened on line {open_at + 1})")
            open_at, indent, label = i, b.group("indent"), b.group("label").strip()
        elif e:
            if open_at is None:
                problems.append(f"line {i + 1}: END SOLUTION without a BEGIN SOLUTION before it")
            else:
                if i == open_at + 1:
                    problems.append(f"line {i + 1}: empty solution block")
                blocks.append((open_at, i, indent, label))
                open_at = None
    if open_at is not None:
        problems.append(f"line {open_at + 1}: BEGIN SOLUTION without a matching END SOLUTION")
    return blocks, problems


# --------------------------------------------------------------------------- check


@dataclass
class CheckReport:
    """Result of :func:`check_notebook`."""

    path: str
    errors: list[str] = field(default_factory=list)
    solution_cells: int = 0
    blocks: int = 0
    tasks: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def task_points(nb: nbformat.NotebookNode) -> dict[str, float]:
    """Task label -> points, from the feedback shown in the notebook's stored outputs."""
    tasks: dict[str, float] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            fb = out.get("metadata", {}).get(FEEDBACK_KEY)
            if fb and fb.get("task") is not None:
                tasks[str(fb["task"])] = fb.get("max_points", 0)
    return tasks


def check_notebook(nb: nbformat.NotebookNode, path: str = "<notebook>") -> CheckReport:
    """Verify an instructor notebook: every ``solution`` code cell has well-formed markers,
    no untagged cell has markers, and the notebook is not already a student edition."""
    report = CheckReport(path)
    if nb.metadata.get("nclab", {}).get("edition") == "student":
        report.errors.append("this is already a student edition; run the tool on the instructor notebook")
        return report
    for idx, cell in enumerate(nb.cells):
        where = f"cell {idx}"
        if cell.cell_type == "code":
            blocks, problems = _solution_blocks(cell.source)
            report.errors += [f"{where}: {p}" for p in problems]
            if _is_solution(cell):
                report.solution_cells += 1
                report.blocks += len(blocks)
                if not blocks and not problems:
                    report.errors.append(f"{where}: tagged '{SOLUTION_TAG}' but has no '### BEGIN SOLUTION' / '### END SOLUTION' markers")
            elif blocks or problems:
                report.errors.append(f"{where}: has solution markers but not the cell tag '{SOLUTION_TAG}' (add the tag, or the solution would reach students)")
        elif _is_solution(cell):
            if cell.cell_type == "markdown":
                report.solution_cells += 1
            else:
                report.errors.append(f"{where}: a {cell.cell_type} cell cannot be a solution cell")
    if report.solution_cells == 0:
        report.errors.append(f"no cell is tagged '{SOLUTION_TAG}': nothing to hide from students")
    report.tasks = task_points(nb)
    return report


# --------------------------------------------------------------------------- student edition


def _stub_source(source: str) -> str:
    blocks, problems = _solution_blocks(source)
    if problems:  # check_notebook reports these; never emit a half-stripped cell
        raise AssignError("; ".join(problems))
    lines = source.splitlines()
    out: list[str] = []
    pos = 0
    for begin, end, indent, label in blocks:
        out += lines[pos:begin]
        text = f"{label}: write your solution here" if label else "write your solution here"
        out.append(f"{indent}raise NotImplementedError({json.dumps(text)})")
        pos = end + 1
    out += lines[pos:]
    return "\n".join(out)


def _title(nb: nbformat.NotebookNode) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return None


def student_notebook(nb: nbformat.NotebookNode, path: str = "<notebook>", pip: str | None = None) -> nbformat.NotebookNode:
    """The student edition of an instructor notebook (a new object; the input is unchanged).

    ``pip``: if given, a first code cell runs ``%pip install --quiet <pip>`` when ``nclab`` cannot
    be imported (for Colab, e.g. ``"nclab @ git+https://github.com/OWNER/REPO"``).

    Raises
    ------
    AssignError
        If :func:`check_notebook` finds a problem (listed in the message).
    """
    report = check_notebook(nb, path)
    if not report.ok:
        raise AssignError(f"{path} is not a well-formed instructor notebook:\n  - " + "\n  - ".join(report.errors))
    out = copy.deepcopy(nb)
    for cell in out.cells:
        meta = cell.setdefault("metadata", {})
        meta.pop("execution", None)
        tags = _tags(cell)
        if SOLUTION_TAG in tags:
            meta["tags"] = [t for t in tags if t != SOLUTION_TAG and t not in HIDE_TAGS]
            if not meta["tags"]:
                meta.pop("tags")
            if cell.cell_type == "code":
                cell.source = _stub_source(cell.source)
            else:
                cell.source = ANSWER_PROMPT
                cell.pop("attachments", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":  # book-only citation roles read badly in Jupyter/Colab
            cell.source = CITE_RE.sub(lambda m: f"[{m.group('keys')}]", cell.source)
    title = _title(nb) or Path(path).stem
    header = nbformat.v4.new_markdown_cell(
        f"**Student edition** of *{title}*.\n\n"
        "Replace each `raise NotImplementedError(...)` line with your code, then run the checker cell "
        "below it: it says whether your answer is right and, if not, what to look at. "
        "Do not edit the checker cells. Before you hand in, run the whole notebook from the top "
        "(Kernel > Restart & Run All)."
    )
    header.metadata["tags"] = ["student-edition-header"]
    out.cells.insert(0, header)
    if pip:
        install = nbformat.v4.new_code_cell(
            f"# Installs nclab where it is missing (on Colab, for example)\ntry:\n    import nclab\nexcept ImportError:\n    %pip install --quiet {_shell_quote(pip)}"
        )
        install["id"] = "student-edition-install"
        out.cells.insert(1, install)
    if "id" in header:
        header["id"] = "student-edition-header"
    nclab_meta = dict(out.metadata.get("nclab", {}))
    nclab_meta.update({"edition": "student", "source": Path(path).name, "tasks": report.tasks})
    out.metadata["nclab"] = nclab_meta
    nbformat.validate(out)
    return out


def _shell_quote(spec: str) -> str:
    if re.fullmatch(r"[\w.@+/:=<>~!,\[\]-]+", spec):
        return spec
    return "'" + spec.replace("'", "'\\''") + "'"


def _notebooks_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def make_student(src: str | Path, dest: str | Path, pip: str | None = None) -> list[Path]:
    """Write student editions: ``src`` a notebook or a folder of notebooks.

    ``dest`` is a file for a single notebook (or an existing folder, or a path ending in ``/``),
    and a folder (created if needed) for a folder. Returns the paths written.
    """
    src, dest_s = Path(src), str(dest)
    dest = Path(dest)
    if not src.exists():
        raise AssignError(f"{src}: no such file or folder")
    if src.is_dir():
        sources = _notebooks_in(src)
        if not sources:
            raise AssignError(f"{src}: no notebooks (*.ipynb) in this folder")
        if dest.exists() and not dest.is_dir():
            raise AssignError(f"{dest} is a file; for a folder of notebooks DEST must be a folder")
        pairs = [(p, dest / p.name) for p in sources]
    else:
        if dest.is_dir() or dest_s.endswith(("/", "\\")):
            target = dest / src.name
        else:
            target = dest
            if dest.suffix != ".ipynb":
                raise AssignError(f"{dest}: DEST for one notebook must end in .ipynb (or be a folder)")
        pairs = [(src, target)]
    editions = []
    for s, d in pairs:  # convert all first: write nothing if any notebook is malformed
        if d.resolve() == s.resolve():
            raise AssignError(f"{d}: refusing to overwrite the instructor notebook with its student edition")
        editions.append((student_notebook(_read(s), str(s), pip=pip), d))
    for nb, d in editions:
        d.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, d)
    return [d for _, d in editions]


# --------------------------------------------------------------------------- grading


@dataclass
class Grade:
    """Points of one executed submission."""

    path: str
    tasks: dict[str, tuple[float, float]]  # task -> (points, max_points)
    errors: list[str]

    @property
    def points(self) -> float:
        return sum(p for p, _ in self.tasks.values())

    @property
    def max_points(self) -> float:
        return sum(m for _, m in self.tasks.values())


def grade_notebook(path: str | Path, key: dict[str, float] | None = None, timeout: int = 120, kernel_name: str | None = None) -> Grade:
    """Execute a submission in a fresh kernel and collect the checkers' points.

    Parameters
    ----------
    path : notebook to grade.
    key : dict task -> max points, optional
        Defaults to the task table stored in the student edition's metadata; a task that shows
        no feedback (its cell failed) scores 0 of its points.
    timeout : seconds per cell.
    kernel_name : kernel to run it with (default: the notebook's own).
    """
    from nbclient import NotebookClient

    nb = _read(path)
    table = dict(key if key is not None else nb.metadata.get("nclab", {}).get("tasks", {}))
    for cell in nb.cells:  # grade what the code computes now, never stored outputs
        if cell.cell_type == "code":
            cell.outputs = []
    kwargs = {"timeout": timeout, "allow_errors": True, "resources": {"metadata": {"path": str(Path(path).parent)}}}
    if kernel_name:
        kwargs["kernel_name"] = kernel_name
    NotebookClient(nb, **kwargs).execute()
    tasks = {t: (0.0, float(m)) for t, m in table.items()}
    errors = []
    for idx, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {idx}: {out.get('ename')}: {out.get('evalue')}")
            fb = out.get("metadata", {}).get(FEEDBACK_KEY)
            if fb and fb.get("task") is not None:
                t = str(fb["task"])
                max_p = float(table.get(t, fb.get("max_points", 0)))
                tasks[t] = (min(float(fb.get("points", 0)), max_p), max_p)
    return Grade(str(path), tasks, errors)


# --------------------------------------------------------------------------- command line


def _cmd_check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.notebooks:
        p = Path(path)
        paths = _notebooks_in(p) if p.is_dir() else [p]
        for q in paths:
            report = check_notebook(_read(q), str(q))
            if report.ok:
                tasks = ", ".join(f"{t} ({m:g})" for t, m in report.tasks.items()) or "none shown (execute the notebook to record them)"
                print(f"OK    {q}: {report.solution_cells} solution cells, {report.blocks} solution blocks; tasks: {tasks}")
            else:
                status = 1
                print(f"ERROR {q}:")
                for e in report.errors:
                    print(f"  - {e}")
    return status


def _cmd_student(args: argparse.Namespace) -> int:
    for d in make_student(args.src, args.dest, pip=args.pip):
        print(f"wrote {d}")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    key = task_points(_read(args.key)) if args.key else None
    if key is not None and not key:
        raise AssignError(f"{args.key}: shows no checker feedback; execute the instructor notebook first")
    rows = []
    for path in args.notebooks:
        g = grade_notebook(path, key=key, timeout=args.timeout, kernel_name=args.kernel)
        print(f"{g.path}: {g.points:g}/{g.max_points:g} points")
        for t, (p, m) in g.tasks.items():
            print(f"  task {t}: {p:g}/{m:g}")
        for e in g.errors:
            print(f"  error in {e}")
        rows += [(g.path, t, p, m) for t, (p, m) in g.tasks.items()]
        rows.append((g.path, "total", g.points, g.max_points))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["notebook", "task", "points", "max_points"])
            w.writerows(rows)
        print(f"wrote {args.csv}")
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m nclab.assign",
        description="Assignment notebooks: check instructor versions, make student editions, grade submissions.",
        epilog="Marking scheme: solution code cells carry the cell tag 'solution' and enclose the solution "
        "between the lines '### BEGIN SOLUTION [label]' and '### END SOLUTION'; markdown cells tagged "
        "'solution' are replaced by an answer prompt.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="{student,check,grade}")
    s = sub.add_parser("student", help="write the student edition of a notebook or a folder of notebooks", description="Replace solutions by stubs, clear outputs, add a header cell.")
    s.add_argument("src", help="instructor notebook (.ipynb) or folder of notebooks")
    s.add_argument("dest", help="output notebook (.ipynb) or folder (created if needed)")
    s.add_argument("--pip", metavar="SPEC", help="add a first code cell that runs '%%pip install SPEC' where nclab is missing, e.g. \"nclab @ git+https://github.com/OWNER/REPO\" for Colab")
    s.set_defaults(func=_cmd_student)
    c = sub.add_parser("check", help="verify that instructor notebooks are well formed", description="Every 'solution' code cell has matching markers; no untagged cell has markers. Exit status 1 on a problem.")
    c.add_argument("notebooks", nargs="+", help="notebooks or folders")
    c.set_defaults(func=_cmd_check)
    g = sub.add_parser("grade", help="execute submissions and add up the checkers' points", description="Runs each notebook in a fresh kernel (students' code: use a sandbox) and sums the last feedback per task.")
    g.add_argument("notebooks", nargs="+", help="submitted notebooks")
    g.add_argument("--key", help="instructor notebook (executed) that defines the tasks and their points")
    g.add_argument("--csv", help="write one row per notebook and task to this CSV file")
    g.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    g.add_argument("--kernel", help="kernel name (default: the notebook's)")
    g.set_defaults(func=_cmd_grade)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m nclab.assign``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except AssignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
