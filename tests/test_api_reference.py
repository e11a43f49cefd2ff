"""The API reference (book/api/): a page for every public module of nclab, listing its __all__.

The public modules are those ``nclab/__init__.py`` lists in its docstring (``:mod:`nclab.x```),
which must be exactly the package's modules without a leading underscore. Their names are read
from the sources (``ast``), so this test needs neither torch nor the optional extras. The checks
of the built pages skip without ``_build/html`` (build the book first).
"""

from __future__ import annotations

import ast
import re
import zlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nclab"
HTML = ROOT / "_build" / "html"


def _listed_in_init() -> list[str]:
    """Modules named in nclab/__init__.py's docstring, in order, each once."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    return list(dict.fromkeys(re.findall(r":mod:`nclab\.(\w+)`", doc)))


def _all(module: str) -> list[str]:
    """The ``__all__`` of ``nclab.<module>``, read from its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"nclab/{module}.py has no __all__")


PUBLIC = _listed_in_init()


def test_init_lists_every_public_module():
    on_disk = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(PUBLIC) == on_disk
    assert len(PUBLIC) == 15


def test_every_public_module_has_a_page_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    (part,) = [p for p in toc["parts"] if p["caption"] == "API reference"]
    (index,) = part["chapters"]
    assert index["file"] == "book/api/index"
    assert sorted(s["file"] for s in index["sections"]) == sorted(f"book/api/{m}" for m in PUBLIC)
    for module in PUBLIC:
        page = (ROOT / "book" / "api" / f"{module}.md").read_text(encoding="utf-8")
        assert f".. automodule:: nclab.{module}\n" in page and ".. module-summary::" in page, module


def test_index_says_what_each_module_needs():
    index = (ROOT / "book" / "api" / "index.md").read_text(encoding="utf-8")
    rows = {m: row for m, row in re.findall(r"^\| \{mod\}`nclab\.(\w+)` \|(.*)$", index, re.M)}
    assert sorted(rows) == sorted(PUBLIC)
    for module in ("ufm", "lbfgs", "analysis", "longtail"):
        assert "`nclab[train]`" in rows[module], module
    assert "`nclab[nets]`" in rows["nets"] and "`nclab[widgets]`" in rows["widgets"]
    assert "`nclab[assign]`" in rows["assign"]


def test_inventories_are_real_sphinx_inventories():
    """The committed intersphinx inventories parse and name the projects they are used for."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    mapping = config["sphinx"]["config"]["intersphinx_mapping"]
    assert set(mapping) == {"numpy", "scipy", "matplotlib"}
    for name, (url, inventory) in mapping.items():
        data = (ROOT / inventory).read_bytes()
        header = data.split(b"\n", 4)
        assert header[0] == b"# Sphinx inventory version 2"
        assert header[1].decode().lower() == f"# project: {name}"
        version = header[2].decode().removeprefix("# Version: ")
        assert version in url, (name, url, version)  # links go to the docs the inventory describes
        body = zlib.decompress(header[4]).decode()
        assert re.search(rf"^{name}\.\w+ py:(function|class) ", body, re.M), name


needs_html = pytest.mark.skipif(not (HTML / "book" / "api").is_dir(), reason="build the book first (_build/html)")


@needs_html
@pytest.mark.parametrize("module", PUBLIC)
def test_built_page_documents_and_summarises_the_whole_all(module):
    html = (HTML / "book" / "api" / f"{module}.html").read_text(encoding="utf-8")
    assert f'id="module-nclab.{module}"' in html
    names = _all(module)
    for name in names:
        assert f'id="nclab.{module}.{name}"' in html, f"nclab.{module}.{name} is not documented"
    table = re.search(r'<table class="autosummary.*?</table>', html, re.S)
    assert table, f"{module}: no summary table"
    # the first link of each row is the row's name (a summary may link other names)
    rows = [re.search(r'href="#nclab\.' + module + r'\.(\w+)"', row).group(1)
            for row in re.findall(r"<tr.*?</tr>", table.group(0), re.S)]
    assert rows == names


@needs_html
def test_chapters_link_to_the_api_and_the_api_to_numpy():
    chapter = (HTML / "book" / "03_imbalanced_no_bias.html").read_text(encoding="utf-8")
    assert 'href="api/theory.html#nclab.theory.global_minimizer"' in chapter
    theory = (HTML / "book" / "api" / "theory.html").read_text(encoding="utf-8")
    assert "https://numpy.org/doc/2.4/reference/generated/numpy.ndarray.html#numpy.ndarray" in theory
    assert "https://docs.scipy.org/doc/scipy-1.10.1/reference/generated/scipy.optimize.brentq.html" in theory
