"""Serve the book's third-party JavaScript from ``node_modules/`` instead of CDNs.

By default the HTML that Jupyter Book 1 writes loads three things from CDNs when a reader
opens a page: MathJax 3 (Sphinx's ``mathjax_path``), require.js and the ipywidgets HTML
manager (myst-nb's ``nb_ipywidgets_js``, only on pages that hold widget state). With no
network, formulas stay as raw TeX and widgets do not draw.

``npm ci`` at the repository root installs pinned copies of the three (``package.json``,
``package-lock.json``). When they are present this extension

* points ``mathjax_path`` and ``nb_ipywidgets_js`` at ``_static/offline/...`` in the build,
* copies the files there (into the *build output* only: nothing is added to the source
  ``_static/`` folder, whose every ``.js`` file Jupyter Book injects into every page), plus a
  three-line ``require-paths.js`` that tells require.js where the widget manager's fonts are;
* copies anywidget's front end (an AMD module shipped in the ``anywidget`` Python package,
  ``anywidget/nbextension/index.js``) to ``_static/offline/anywidget/`` and maps the module
  name ``anywidget`` to it in ``require-paths.js``: the explorers of ``nclab.widgets`` are
  anywidget widgets, and the widget manager would otherwise fetch that module from a CDN.

When ``node_modules/`` is absent the CDN defaults stay, so ``jupyter-book build .`` works
without npm. The environment variable ``BOOK_OFFLINE_ASSETS`` overrides the choice:

``auto`` (default)
    local copies when ``node_modules/`` has them, else CDNs;
``1`` / ``on``
    local copies, and the build fails if they are missing;
``0`` / ``off``
    CDNs even when ``node_modules/`` exists.

Switching between CDN and local assets changes ``nb_ipywidgets_js``, a setting that Sphinx
records per page, so Sphinx re-reads every page on the next build (the notebook execution
cache is kept).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError
from sphinx.util import logging

logger = logging.getLogger(__name__)

ENV_VAR = "BOOK_OFFLINE_ASSETS"
#: Folder inside the build's ``_static/`` that receives the copies.
DEST = "offline"

#: (source folder under node_modules, destination under _static/offline, file patterns).
#: MathJax: the combined component Sphinx uses by default plus the folders it loads lazily
#: (fonts, TeX extensions pulled in by \require or autoload, the menu's accessibility tools).
COPIES: list[tuple[str, str, tuple[str, ...]]] = [
    ("mathjax/es5", "mathjax", ("tex-mml-chtml.js", "input/**/*", "output/chtml/**/*",
                                "output/chtml.js", "ui/**/*", "a11y/**/*", "sre/**/*",
                                "adaptors/**/*", "core.js", "startup.js", "loader.js")),
    ("requirejs", "requirejs", ("require.js",)),
    # embed-amd.js bundles the base, controls and output widgets; the font files are the
    # Font Awesome icons its CSS refers to (found through require-paths.js, below).
    ("@jupyter-widgets/html-manager/dist", "html-manager",
     ("embed-amd.js", "*.woff2", "*.woff", "*.ttf", "*.eot", "*.svg")),
]

MATHJAX_PATH = f"{DEST}/mathjax/tex-mml-chtml.js"  # relative to _static/
REQUIRE_JS = f"{DEST}/requirejs/require.js"
WIDGETS_CONFIG_JS = f"{DEST}/html-manager/require-paths.js"
WIDGETS_JS = f"{DEST}/html-manager/embed-amd.js"
#: embed-amd.js defines several AMD modules and resolves font files against the folder of
#: each module's require.js URL, which by default is relative to the *page* (so fonts 404).
#: This script (written by the extension, loaded between require.js and embed-amd.js) maps
#: every module that embed-amd.js defines into the folder of the local copy.
WIDGETS_CONFIG_BODY = """\
/* Written by book/_ext/offline_assets.py. The modules bundled in embed-amd.js load their
   font files from the folder of their require.js path: point all of them here. */
(function () {
  var dir = document.currentScript.src.split("?")[0].replace(/\\/[^\\/]*$/, "");
  var paths = {"@jupyter-widgets/html-manager/dist": dir};
  ["html-manager", "base", "base7", "controls", "controls7"].forEach(function (m) {
    paths["@jupyter-widgets/" + m] = dir + "/" + m;
  });
  /* anywidget's front end, copied from the Python package (nclab's explorers use it). */
  paths["anywidget"] = dir.replace(/\\/[^\\/]*$/, "") + "/anywidget/index";
  window.require.config({paths: paths});
})();
"""
#: anywidget's AMD front end inside the installed Python package, and its copy in the build.
ANYWIDGET_JS = ("nbextension", "index.js")
ANYWIDGET_DEST = f"{DEST}/anywidget/index.js"  # relative to _static/
#: Third-party widget modules (none of the book's own) would still come from this CDN.
WIDGETS_CDN = "https://cdn.jsdelivr.net/npm/"

#: Files whose presence means ``npm ci`` has run.
REQUIRED = ("mathjax/es5/tex-mml-chtml.js", "requirejs/require.js",
            "@jupyter-widgets/html-manager/dist/embed-amd.js")


def _mode() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value in ("1", "on", "true", "yes"):
        return "on"
    if value in ("0", "off", "false", "no", "cdn"):
        return "off"
    raise ConfigError(f"{ENV_VAR} must be one of auto, 1/on, 0/off; got {value!r}")


def _node_modules(app: Sphinx) -> Path:
    return Path(app.srcdir) / "node_modules"


def _configure(app: Sphinx, config: Config) -> None:
    mode = _mode()
    app.offline_assets_enabled = False  # type: ignore[attr-defined]
    if mode == "off":
        logger.info("[offline_assets] %s=0: MathJax and widget scripts load from CDNs", ENV_VAR)
        return
    root = _node_modules(app)
    missing = [p for p in REQUIRED if not (root / p).is_file()]
    if missing:
        if mode == "on":
            raise ConfigError(
                f"[offline_assets] {ENV_VAR}=1 but {root} lacks {', '.join(missing)}; "
                "run `npm ci` at the repository root"
            )
        logger.info("[offline_assets] node_modules/ not installed: MathJax and widget "
                    "scripts load from CDNs (run `npm ci` for an offline build)")
        return
    config.mathjax_path = MATHJAX_PATH
    config.nb_ipywidgets_js = {
        REQUIRE_JS: {},
        WIDGETS_CONFIG_JS: {},
        WIDGETS_JS: {"data-jupyter-widgets-cdn": WIDGETS_CDN},
    }
    app.offline_assets_enabled = True  # type: ignore[attr-defined]
    logger.info("[offline_assets] MathJax, require.js and the widget manager are served "
                "from the build (_static/%s)", DEST)


def _copy_assets(app: Sphinx) -> None:
    if not getattr(app, "offline_assets_enabled", False):
        return
    if app.builder is None or app.builder.format != "html":
        return
    root = _node_modules(app)
    dest_root = Path(app.outdir) / "_static" / DEST
    copied = 0
    for src_rel, dest_rel, patterns in COPIES:
        src_dir = root / src_rel
        for pattern in patterns:
            for src in src_dir.glob(pattern):
                if not src.is_file():
                    continue
                dest = dest_root / dest_rel / src.relative_to(src_dir)
                st = src.stat()
                if dest.is_file() and dest.stat().st_size == st.st_size \
                        and dest.stat().st_mtime >= st.st_mtime:
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
                copied += 1
    copied += _copy_anywidget(Path(app.outdir) / "_static" / ANYWIDGET_DEST)
    config_js = Path(app.outdir) / "_static" / WIDGETS_CONFIG_JS
    if not config_js.is_file() or config_js.read_text(encoding="utf-8") != WIDGETS_CONFIG_BODY:
        config_js.write_text(WIDGETS_CONFIG_BODY, encoding="utf-8")
        copied += 1
    logger.info("[offline_assets] %d file(s) copied to %s", copied, dest_root)


def _copy_anywidget(dest: Path) -> int:
    """Copy anywidget's front end from the installed Python package; 1 if copied, else 0."""
    spec = importlib.util.find_spec("anywidget")
    if spec is None or not spec.submodule_search_locations:
        logger.warning("[offline_assets] the anywidget package is not installed: pages with "
                       "anywidget widgets would load its front end from a CDN")
        return 0
    src = Path(spec.submodule_search_locations[0]).joinpath(*ANYWIDGET_JS)
    if not src.is_file():
        raise ConfigError(f"[offline_assets] {src} is missing: reinstall anywidget")
    if dest.is_file() and dest.read_bytes() == src.read_bytes():
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return 1


def setup(app: Sphinx) -> dict:
    # Before myst-nb reads nb_ipywidgets_js (builder-inited) and before Sphinx's mathjax
    # extension uses mathjax_path (html-page-context).
    app.connect("config-inited", _configure, priority=100)
    # Copy before pages are written, so every script URL gets Sphinx's ?v=checksum.
    app.connect("builder-inited", _copy_assets)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
