"""Insert, or bring up to date, the guarded install cell of the book's notebooks.

Students run the chapters where ``nclab`` may be missing (Colab, a fresh environment). The
first code cell of every notebook page therefore installs it, and only when ``import nclab``
fails; where nclab is installed (the book's own environment, Binder, a student's venv) the
cell does nothing and prints nothing, so strict nbval and the stored outputs are unaffected.
pip installs nclab's requirements only where they are missing or too old: the numpy, torch
and matplotlib that the host already has stay.

Where nclab comes from is set in one place, derived from two facts the project already
states once: the repository (``repository.url`` in ``_config.yml``) and the package version
(``nclab.__version__``, which ``pyproject.toml`` reads too), giving
``nclab[train,widgets,nets] @ git+<repository>@v<version>`` (the release tag, with the extras
the chapters use: PyTorch training, the explorers, the network of chapter 6; pip leaves each
one that is already installed and recent enough alone). A
reader or a test overrides it with the environment variable ``NCLAB_PIP_SOURCE`` (a wheel, a
local checkout, any pip requirement), which the cell reads.

The cell carries the tags ``nclab-install`` (how this script finds it again) and
``remove-cell`` (the online book does not show it; the Jupyter edition does).

Usage (from the repository root)::

    python tools/install_cell.py                 # every notebook page of _toc.yml and the
                                                 # assignments' otter masters (assignments/)
    python tools/install_cell.py book/X.ipynb    # only these notebooks
    python tools/install_cell.py --check         # exit 1 if a notebook lacks the current cell

After inserting the cell, execute the notebooks again (``jupyter execute --inplace``) and
rebuild the Jupyter edition (``python tools/jupyter_edition.py``).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jupyter_edition import ROOT, Book  # noqa: E402  (tools/ is not a package)

TAG = "nclab-install"
#: The extras of pyproject.toml the chapters, the explorers and the problem sets import.
EXTRAS = "train,widgets,nets"
TAGS = [TAG, "remove-cell"]
ENV_VAR = "NCLAB_PIP_SOURCE"

CELL = '''\
# Install nclab where it is missing (Colab, a fresh environment); elsewhere this does nothing.
# pip keeps the numpy, torch and matplotlib already installed when they are recent enough.
# Set the environment variable {env_var} to install from elsewhere (a wheel, a checkout).
try:
    import nclab
except ImportError:
    import importlib, os, subprocess, sys
    source = os.environ.get("{env_var}", "{source}")
    print("Installing nclab from", source, "...")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", source], check=True)
    importlib.invalidate_caches()
    import nclab'''


def install_source(root: Path = ROOT) -> str:
    """The pip requirement the cell installs by default: the repository at the release tag."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"].rstrip("/")
    return f"nclab[{EXTRAS}] @ git+{url}@v{package_version(root)}"


def package_version(root: Path = ROOT) -> str:
    """``nclab.__version__``, read from the source without importing the package.

    The single source of the version: ``pyproject.toml`` takes it from there too
    (``[tool.setuptools.dynamic]``).
    """
    tree = ast.parse((root / "nclab" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError(f"{root / 'nclab' / '__init__.py'}: no __version__ = '...' assignment")


def cell_source(root: Path = ROOT) -> str:
    """The text of the install cell."""
    return CELL.format(env_var=ENV_VAR, source=install_source(root))


def apply(nb: nbformat.NotebookNode, source: str) -> bool:
    """Put the install cell before the first code cell of ``nb`` (or update it). Changed?"""
    found = [i for i, c in enumerate(nb.cells) if TAG in c.get("metadata", {}).get("tags", [])]
    if len(found) > 1:
        raise ValueError(f"{len(found)} cells carry the tag {TAG!r}; keep one")
    if found:
        cell = nb.cells[found[0]]
        if cell.source == source and all(t in cell.metadata.get("tags", []) for t in TAGS):
            return False
        cell.source = source
        cell.metadata["tags"] = TAGS + [t for t in cell.metadata.get("tags", []) if t not in TAGS]
        return True
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(TAGS)})
    cell.id = "nclab-install"
    nb.cells.insert(first_code, cell)
    return True


def check(nb: nbformat.NotebookNode, source: str) -> str | None:
    """Why ``nb`` lacks a current install cell before its first code cell, or None."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or TAG not in code[0].get("metadata", {}).get("tags", []):
        return "the first code cell is not the install cell"
    if code[0].source != source:
        return "the install cell is out of date"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook of _toc.yml")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a cell is missing")
    args = parser.parse_args(argv)
    paths = args.notebooks or [*Book.load(ROOT).notebooks(), *sorted((ROOT / "assignments").glob("*.ipynb"))]
    source, bad = cell_source(ROOT), 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if problem := check(nb, source):
                print(f"{path}: {problem}")
                bad += 1
        elif apply(nb, source):
            nbformat.write(nb, path)
            print(f"updated {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
