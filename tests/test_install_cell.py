"""The guarded install cell (tools/install_cell.py) and the Binder environment (binder/).

The slow test does what a student on a fresh machine does: in a new virtual environment with
Jupyter, numpy, scipy, matplotlib and torch but no nclab, it runs chapter 1, whose install
cell installs nclab (from a wheel of this checkout, pointed to by ``NCLAB_PIP_SOURCE``, with
pip forbidden any index: nothing is downloaded) and the chapter then runs to its end. The
environment is kept in ``_build/install-test-venv`` between runs (nclab is uninstalled first).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import nclab
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import install_cell as ic  # noqa: E402
import jupyter_edition as je  # noqa: E402

CHAPTER = ROOT / "book" / "01_neural_collapse_ufm.ipynb"
#: What the fresh environment has: a Jupyter kernel, the numeric stack, torch; no nclab.
FRESH_PACKAGES = ["ipykernel", "nbclient", "nbformat", "numpy", "scipy", "matplotlib", "tqdm",
                  "ipywidgets", "scikit-learn", "torch"]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip()):
            pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


# --- the cell ------------------------------------------------------------------------------------

def test_cell_installs_the_repository_at_the_release_tag():
    source = ic.install_source(ROOT)
    assert source == ("nclab[train,widgets,nets] @ git+https://github.com/nclab-book/neural-collapse-imbalance"
                      f"@v{nclab.__version__}")
    cell = ic.cell_source(ROOT)
    assert f'os.environ.get("NCLAB_PIP_SOURCE", "{source}")' in cell
    compile(cell, "install cell", "exec")


def test_docs_give_the_same_install_command():
    source = ic.install_source(ROOT)
    for doc in ("README.md", "book/intro.md"):
        assert f'pip install jupyterlab "{source}"' in (ROOT / doc).read_text(), doc
    # the autograder's container installs nclab as the notebooks' cell does
    assert source in (ROOT / "assignments" / "requirements.txt").read_text().splitlines()


def test_apply_inserts_before_the_first_code_cell_and_is_idempotent():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"),
                                         nbformat.v4.new_code_cell("import nclab")])
    assert ic.apply(nb, "CELL") and ic.check(nb, "CELL") is None
    assert [c.source for c in nb.cells] == ["# T", "CELL", "import nclab"]
    assert nb.cells[1].metadata["tags"] == ["nclab-install", "remove-cell"]
    assert not ic.apply(nb, "CELL")
    assert ic.check(nb, "NEW") == "the install cell is out of date"
    assert ic.apply(nb, "NEW") and [c.source for c in nb.cells] == ["# T", "NEW", "import nclab"]


def test_cell_does_nothing_where_nclab_is_installed():
    env = dict(os.environ, NCLAB_PIP_SOURCE="/nonexistent/nclab.whl")
    code = ic.cell_source(ROOT) + "\nprint('done')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout == "done\n"


@pytest.mark.parametrize("source", je.Book.load(ROOT).notebooks(), ids=lambda p: p.stem)
def test_notebooks_that_have_the_cell_have_it_current_and_first(source):
    nb = nbformat.read(source, as_version=4)
    if any(ic.TAG in c.metadata.get("tags", []) for c in nb.cells):
        assert ic.check(nb, ic.cell_source(ROOT)) is None, "run python tools/install_cell.py"


def test_every_notebook_page_has_the_install_cell():
    assert ic.main(["--check"]) == 0


# --- a fresh environment -------------------------------------------------------------------------

def _fresh_venv(tmp: Path) -> Path:
    """A venv with FRESH_PACKAGES at the book's pins and no nclab (cached under _build/)."""
    pins = _pins(ROOT / "requirements.txt")
    wanted = [f"{name}=={pins[name]}" for name in FRESH_PACKAGES]
    venv = ROOT / "_build" / "install-test-venv"
    stamp = venv / "installed.json"
    python = venv / "bin" / "python"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted and python.exists()):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *wanted], check=True)
        stamp.write_text(json.dumps(wanted))
    subprocess.run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "nclab"], check=True,
                   capture_output=True)
    return python


def _freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], check=True,
                         capture_output=True, text=True).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


@pytest.mark.slow
def test_a_chapter_installs_nclab_itself_in_a_fresh_environment(tmp_path):
    python = _fresh_venv(tmp_path)
    before = _freeze(python)
    assert "nclab" not in before
    # the wheel is built from a copy of the package, so no build/ or nclab.egg-info is left in
    # the checkout (where PYTHONPATH would show it to the next run's "fresh" environment)
    src, wheels = tmp_path / "src", tmp_path / "wheels"
    shutil.copytree(ROOT / "nclab", src / "nclab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(src)], check=True)
    (wheel,) = wheels.glob("nclab-*.whl")
    work = tmp_path / "student"  # not the repository: its nclab/ folder must not be importable
    work.mkdir()
    shutil.copy(CHAPTER, work / CHAPTER.name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND")}
    env.update(NCLAB_PIP_SOURCE=str(wheel), PIP_NO_INDEX="1", PATH=f"{python.parent}:{env['PATH']}")
    run = (
        "import nbformat, nbclient\n"
        f"nb = nbformat.read({CHAPTER.name!r}, as_version=4)\n"
        "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3').execute()\n"
        "cell = next(c for c in nb.cells if 'nclab-install' in c.metadata.get('tags', []))\n"
        "print(''.join(o.get('text', '') for o in cell.outputs))\n"
        "import nclab; print(nclab.__file__)\n"
    )
    out = subprocess.run([str(python), "-c", run], cwd=work, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Installing nclab from {wheel} ..." in out.stdout
    assert str(python.parent.parent) in out.stdout.splitlines()[-1]  # installed into the venv
    after = _freeze(python)
    assert after.pop("nclab") == nclab.__version__  # the version pyproject.toml reads from nclab
    assert after == before  # the host's numpy, torch, ... were kept


# --- Binder --------------------------------------------------------------------------------------

def test_binder_environment_agrees_with_the_book():
    binder = ROOT / "binder"
    pins, book = _pins(binder / "requirements.txt"), _pins(ROOT / "requirements.txt")
    assert {name: book.get(name) for name in pins} == pins, "binder/requirements.txt disagrees with requirements.txt"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {re.match(r"[A-Za-z0-9_.-]+", d)[0].lower() for d in project["dependencies"]}
    assert needed <= set(pins), f"nclab needs {sorted(needed - set(pins))} on Binder"
    text = (binder / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert "pip install --no-deps ." in (binder / "postBuild").read_text()
    assert os.access(binder / "postBuild", os.X_OK)
    assert (binder / "runtime.txt").read_text().strip() == "python-3.11"
