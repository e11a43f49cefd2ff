"""Render the built book in headless Chromium, with no network, and check what a reader sees.

Needs ``jupyter-book build .`` first (HTML in ``_build/html``) and the Debian package
``chromium``; skips otherwise. For every page in ``_toc.yml`` it serves ``_build/html`` from
127.0.0.1, loads the page in Chromium with every other host unresolvable, and checks that

* the page exists, shows no Python traceback or notebook error output, refers only to images
  that exist, and requests no local file that is missing;
* formulas were typeset by MathJax (``mjx-container`` elements, no ``mjx-merror``), when the
  book was built with the local assets from ``npm ci`` (see ``book/_ext/offline_assets.py``);
* widget outputs stored in a chapter notebook were drawn by the ipywidgets manager.

It also saves a 1280x2000 screenshot of each page in ``_build/screenshots/`` for humans.
Run it alone with ``pytest tests/test_browser.py -m browser``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
NODE_MODULES = ROOT / "node_modules"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CHROMIUM_TIMEOUT_S = 90


def _toc_files(entry) -> list[str]:
    """Every ``file:`` (and the ``root:``) of a Jupyter Book ``_toc.yml``, in order."""
    found: list[str] = []
    if isinstance(entry, dict):
        for key in ("root", "file"):
            if isinstance(entry.get(key), str):
                found.append(entry[key])
        for key in ("parts", "chapters", "sections"):
            for child in entry.get(key) or []:
                found.extend(_toc_files(child))
    return found


def _strip_suffix(name: str) -> str:
    return re.sub(r"\.(md|ipynb)$", "", name)


PAGES = [_strip_suffix(f) for f in _toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _source(page: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (path := ROOT / f"{page}{suffix}").is_file():
            return path
    return None


def _has_widget_output(source: Path | None) -> bool:
    if source is None or source.suffix != ".ipynb":
        return False
    nb = json.loads(source.read_text(encoding="utf-8"))
    return any(WIDGET_VIEW in out.get("data", {})
               for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
               for out in cell.get("outputs", []))


class _Handler(SimpleHTTPRequestHandler):
    """Serves _build/html quietly and remembers every request that came back 404."""

    missing: list[str]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(HTML), **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass

    def send_error(self, code, message=None, explain=None):
        if code == 404:
            type(self).missing.append(urlsplit(self.path).path)
        super().send_error(code, message, explain)


@dataclass
class _Renderer:
    """Loads pages in Chromium from a local server; keeps the DOM of each page."""

    base: str
    chromium: str
    profile: Path
    missing: list[str]
    doms: dict[str, tuple[str, list[str]]] = field(default_factory=dict)

    def _run(self, url: str, *flags: str) -> subprocess.CompletedProcess:
        cmd = [self.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={self.profile}",
               # No network: every host but the local server fails to resolve.
               "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
               "--virtual-time-budget=20000", *flags, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)

    def dom(self, page: str) -> tuple[str, list[str]]:
        """(rendered DOM, local paths that answered 404 while loading) of a toc page."""
        if page not in self.doms:
            url = f"{self.base}/{page}.html"
            start = len(self.missing)
            proc = self._run(url, "--dump-dom")
            assert proc.returncode == 0 and "<html" in proc.stdout, (
                f"chromium could not render {url} (exit {proc.returncode}):\n"
                f"{proc.stderr[-2000:]}")
            missing = [p for p in self.missing[start:] if not p.endswith("favicon.ico")]
            SHOTS.mkdir(parents=True, exist_ok=True)
            shot = SHOTS / (page.replace("/", "__") + ".png")
            self._run(url, f"--screenshot={shot}", "--window-size=1280,2000")
            self.doms[page] = (proc.stdout, missing)
        return self.doms[page]


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `jupyter-book build .` first")
    handler = type("Handler", (_Handler,), {"missing": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _Renderer(base=f"http://127.0.0.1:{server.server_port}", chromium=chromium,
                        profile=tmp_path_factory.mktemp("chromium-profile"),
                        missing=handler.missing)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _built(page: str) -> Path:
    path = HTML / f"{page}.html"
    assert path.is_file(), f"{page} is in _toc.yml but {path} was not built"
    return path


@functools.cache
def _static_html(page: str) -> str:
    return _built(page).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_cleanly(renderer, page):
    _built(page)
    dom, missing = renderer.dom(page)
    assert "Traceback (most recent call last)" not in dom, f"{page} shows a Python traceback"
    assert not re.search(r'class="[^"]*\boutput (traceback|error)\b', dom), (
        f"{page} shows a notebook error output")
    assert not missing, f"{page} requested local files that do not exist: {missing}"

    page_url = f"{renderer.base}/{page}.html"
    for src in re.findall(r'<img\b[^>]*?\bsrc="([^"]+)"', dom):
        if src.startswith("data:"):
            continue
        url = urljoin(page_url, src)
        assert url.startswith(renderer.base + "/"), (
            f"{page} loads an image from another host ({src}); the book must render offline")
        target = HTML / unquote(urlsplit(url).path).lstrip("/")
        assert target.is_file(), f"{page} refers to a missing image {src}"


@pytest.mark.parametrize("page", PAGES)
def test_math_is_typeset(renderer, page):
    html = _static_html(page)
    if 'class="math notranslate' not in html:
        pytest.skip(f"{page} has no math")
    if not (NODE_MODULES / "mathjax").is_dir():
        pytest.skip("node_modules/ is absent (run `npm ci`): MathJax would come from a CDN, "
                    "which this offline test cannot reach")
    if "_static/offline/mathjax/" not in html:
        pytest.skip(f"{page} was built before `npm ci` or with BOOK_OFFLINE_ASSETS=0: "
                    "rebuild to serve MathJax locally")
    dom, _ = renderer.dom(page)
    assert "<mjx-container" in dom, f"MathJax did not typeset the formulas of {page}"
    assert "<mjx-merror" not in dom, (
        f"MathJax reported a TeX error on {page} (an undefined macro?)")


@pytest.mark.parametrize("page", PAGES)
def test_widgets_are_drawn(renderer, page):
    if not _has_widget_output(_source(page)):
        pytest.skip(f"{page} has no widget output")
    html = _static_html(page)
    if "application/vnd.jupyter.widget-state+json" not in html:
        pytest.fail(f"{page} has widget outputs but no saved widget state: execute the "
                    "notebook with widget state stored (jupyter execute does by default)")
    if "_static/offline/html-manager/" not in html:
        pytest.skip(f"{page} loads the widget manager from a CDN (run `npm ci` and rebuild)")
    dom, _ = renderer.dom(page)
    assert re.search(r'class="[^"]*\b(jupyter-widgets|widget-[a-z])', dom), (
        f"the widgets of {page} were not drawn")
