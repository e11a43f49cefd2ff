"""Figures survive the build whatever ``MPLBACKEND`` says.

Two layers: every chapter that draws selects the inline backend itself (``%matplotlib inline``
in its first code cell), and the Sphinx extension ``book/_ext/figure_check.py`` warns (so the
``-W`` build fails) when an executed notebook shows fewer figures than its stored copy. The
tests check the extension's counting on small notebooks, that it really warns, and, when the
book is built (``_build/html``), that each built page has as many figures as its notebook.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
from docutils import nodes
from docutils.utils import new_document

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHAPTERS = sorted(ROOT.glob("book/**/*.ipynb"))


def _load_extension():
    spec = importlib.util.spec_from_file_location("figure_check", ROOT / "book" / "_ext" / "figure_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figure_check = _load_extension()


def _notebook(tmp_path: Path, cells: list) -> Path:
    nb = nbformat.v4.new_notebook(cells=cells)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def _figure_cell(tags=()):
    cell = nbformat.v4.new_code_cell("plt.plot([1, 2]); plt.show()", metadata={"tags": list(tags)})
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    return cell


def test_stored_figures_counts_png_outputs_and_respects_removal_tags(tmp_path):
    text = nbformat.v4.new_code_cell("print(1)")
    text.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    path = _notebook(tmp_path, [_figure_cell(), text, _figure_cell(["remove-output"]), _figure_cell(["hide-input"])])
    assert figure_check.stored_figures(path) == 2


def test_page_figures_counts_raster_images_only():
    doc = new_document("page")
    doc += nodes.image(uri="_build/jupyter_execute/abc.png")
    doc += nodes.image(uri="diagram.svg")
    assert figure_check.page_figures(doc) == 1


class _Env:
    def __init__(self, source: Path):
        self.docname = "book/nb"
        self._source = source

    def doc2path(self, docname):
        return str(self._source)


class _App:
    def __init__(self, source: Path):
        self.env = _Env(source)


def test_check_warns_when_the_page_lost_its_figures(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    app = _App(_notebook(tmp_path, [_figure_cell(), _figure_cell()]))
    warnings = []
    monkeypatch.setattr(figure_check.logger, "warning", lambda msg, *args, **kw: warnings.append(msg % args))
    page = new_document("page")
    page += nodes.image(uri="_build/jupyter_execute/one.png")
    figure_check.check_figures(app, page)
    assert len(warnings) == 1
    assert "shows 1 figure(s), the stored notebook 2" in warnings[0] and "'Agg'" in warnings[0]
    page += nodes.image(uri="_build/jupyter_execute/two.png")
    figure_check.check_figures(app, page)
    assert len(warnings) == 1  # nothing more once the page has them all


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapters_that_draw_select_the_inline_backend(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    if not figure_check.stored_figures(path):
        pytest.skip("no stored figures")
    # the guarded install cell (tools/install_cell.py) comes first and draws nothing
    first = next(c for c in nb["cells"] if c["cell_type"] == "code"
                 and "nclab-install" not in c.get("metadata", {}).get("tags", []))
    assert "%matplotlib inline" in "".join(first["source"]).splitlines(), (
        f"{path.name}: the first code cell must start the inline backend, or MPLBACKEND=Agg "
        "in the environment drops every figure"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_built_page_has_every_stored_figure(path):
    page = HTML / path.relative_to(ROOT).with_suffix(".html")
    if not page.is_file():
        pytest.skip("book not built (jupyter-book build .) or page not in the toc")
    expected = figure_check.stored_figures(path)
    found = len(re.findall(r'<img[^>]+src="[^"]*_images/[^"]+\.png"', page.read_text(encoding="utf-8")))
    assert found >= expected, f"{page.name}: {found} figures in the page, {expected} stored in the notebook"
