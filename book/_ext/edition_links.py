"""Point every notebook page's launch buttons and notebook download at its Jupyter edition.

sphinx-book-theme builds the Colab, Binder (and JupyterHub, ...) links and the download
button of a page from ``repository.url``, ``path_to_book`` and the page's own source file,
``book/X.ipynb``: the MyST source, which plain Jupyter and Colab render badly (raw
directives, undefined macros). The Jupyter edition (``tools/jupyter_edition.py``) is the same
notebook in plain Jupyter markdown, committed at ``jupyter/X.ipynb`` so that Colab and Binder
can open it from the repository. This extension runs after the theme has assembled the
buttons (``html-page-context``, priority 900) and

* replaces the source path in every launch URL by the edition's path;
* makes the ``.ipynb`` download button fetch the edition, which it copies into the HTML
  output (``_build/html/jupyter/``).

A notebook page without an edition is a warning (so ``-W`` fails): run
``python tools/jupyter_edition.py``. No option of the theme does this (it has no setting for
the launched path), hence this small extension.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

EDITION_DIR = "jupyter"
BOOK_DIR = "book"


def edition_path(pagename: str) -> str | None:
    """``book/X`` -> ``jupyter/X.ipynb`` (relative to the repository root); None outside book/."""
    if not pagename.startswith(f"{BOOK_DIR}/"):
        return None
    return f"{EDITION_DIR}/{pagename[len(BOOK_DIR) + 1:]}.ipynb"


def _theme_path(app: Sphinx, pagename: str) -> str:
    """The repository path the theme put into the launch URLs (see its ``launch.py``)."""
    prefix = app.config.html_theme_options.get("path_to_docs", "").strip("/")
    return f"{prefix}/{pagename}.ipynb" if prefix else f"{pagename}.ipynb"


def _buttons(context: dict, label: str) -> list[dict]:
    for group in context.get("header_buttons", []):
        if group.get("label") == label:
            return group.get("buttons", [])
    return []


def retarget(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context``: launch and download buttons of a notebook page -> the edition."""
    if not str(context.get("page_source_suffix", "")).endswith("ipynb"):
        return
    edition = edition_path(pagename)
    root = Path(app.confdir)
    if edition is None or not (root / edition).is_file():
        logger.warning(f"{pagename}: no Jupyter edition {edition}; run python tools/jupyter_edition.py",
                       location=pagename)
        return
    source = _theme_path(app, pagename)
    for button in _buttons(context, "launch-buttons"):
        if "url" in button:
            url = button["url"].replace(source, edition).replace(quote(source, safe=""), quote(edition, safe=""))
            if url == button["url"]:
                logger.warning(f"{pagename}: launch button {button.get('text')!r} has no path to retarget")
            button["url"] = url
    for button in _buttons(context, "download-buttons"):
        if button.get("label") == "download-source-button":
            button["url"] = context["pathto"](edition, 1)
            button["tooltip"] = "Download the notebook (Jupyter edition)"


def copy_edition(app: Sphinx, exception: Exception | None) -> None:
    """``build-finished``: the edition notebooks into the HTML output, for the download button."""
    if exception is not None or app.builder.format != "html":
        return
    source = Path(app.confdir) / EDITION_DIR
    if source.is_dir():
        shutil.copytree(source, Path(app.outdir) / EDITION_DIR, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", retarget, priority=900)
    app.connect("build-finished", copy_edition)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
