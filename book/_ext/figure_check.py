"""Fail the build when an executed chapter lost the figures its stored notebook has.

The chapters are stored executed, and strict nbval proves that their text outputs reproduce.
Figures are a different matter: when a notebook is executed with a non-interactive matplotlib
backend selected from outside (``MPLBACKEND=Agg`` is common on servers and in CI),
``plt.show()`` draws nothing, and the book builds without a single figure, silently. The
chapters select the inline backend themselves (``%matplotlib inline``); this extension is the
safety net behind that: after Sphinx reads a notebook (executed by myst-nb, or taken from its
cache), it counts the figures in the page and compares them with the PNG outputs stored in the
notebook. Fewer figures in the page is a warning, so ``jupyter-book build . -W`` fails and says
what to check.

No library does this check (myst-nb treats an output-less cell as valid), hence this small
extension.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Cell tags that take a cell's outputs out of the page on purpose.
REMOVING_TAGS = frozenset({"remove-output", "remove-cell"})


def stored_figures(notebook: Path) -> int:
    """Number of ``image/png`` outputs stored in ``notebook`` that the page should show."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return sum(
        "image/png" in output.get("data", {})
        for cell in cells
        if cell.get("cell_type") == "code" and not REMOVING_TAGS & set(cell.get("metadata", {}).get("tags", []))
        for output in cell.get("outputs", [])
    )


def page_figures(doctree: nodes.document) -> int:
    """Number of raster images (executed figure outputs) in a page's doctree."""
    return sum(str(img.get("uri", "")).endswith(".png") for img in doctree.findall(nodes.image))


def check_figures(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read`` handler: warn when a notebook page has fewer figures than stored."""
    source = Path(app.env.doc2path(app.env.docname))
    if source.suffix != ".ipynb":
        return
    expected, found = stored_figures(source), page_figures(doctree)
    if found < expected:
        logger.warning(
            "%s: the executed notebook shows %d figure(s), the stored notebook %d. Was it executed "
            "with a non-inline matplotlib backend (MPLBACKEND is %s here)? Unset MPLBACKEND, "
            "or make sure the notebook runs %%matplotlib inline, then run "
            "`jupyter-book clean --all .` and build again.",
            app.env.docname,
            found,
            expected,
            repr(os.environ["MPLBACKEND"]) if "MPLBACKEND" in os.environ else "not set",
            location=app.env.docname,
            type="nclab",
            subtype="figures",
        )


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", check_figures)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
