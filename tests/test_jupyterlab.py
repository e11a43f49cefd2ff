"""The Jupyter edition as students see it: every notebook opened in a real JupyterLab.

One JupyterLab server (from this environment, on 127.0.0.1 with a random token) serves the
repository; headless Chromium, driven by Playwright (``/usr/bin/chromium``: Playwright's own
browser download is not reachable here), opens each notebook of ``jupyter/``, scrolls through
it so that every markdown cell is rendered and typeset, and counts per markdown cell

* formulas typeset by JupyterLab's MathJax (``mjx-container``), which must be at least one in
  every cell with a ``$``: so a page where MathJax did not run cannot pass;
* formulas MathJax could not typeset: ``mjx-merror`` elements, or red text, which is how its
  ``noundefined`` package shows an unknown macro such as ``\\Yhat``;
* MyST left raw: ``{role}`` text, code blocks whose language is ``{directive}``, option lines
  (``:label:``), targets ``(label)=``.

The edition must show none. As a control, the MyST source of chapter 4 must show some of each
kind, so the detectors are known to work. The edition notebooks also execute top to bottom under
strict nbval (``jupyter/`` is in pytest's testpaths), with the outputs copied from the sources.

Marked ``browser``; skips without Playwright or Chromium. On 2 shared cores JupyterLab and
Chromium are slow: the timeouts are generous and one server serves every notebook.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import jupyter_edition as je  # noqa: E402

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = next((p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))),
                "/usr/bin/chromium")
BOOK = je.Book.load(ROOT)
EDITION = [BOOK.edition_path(p) for p in BOOK.notebooks()]
CONTROL = Path("book/04_imbalanced_with_bias.ipynb")
START_TIMEOUT_S = 180
PAGE_TIMEOUT_MS = 180_000

#: Run in the page: what each rendered markdown cell now on screen shows, keyed by cell index.
INSPECT = r"""
() => {
  const out = {};
  const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell');
  cells.forEach((cell, n) => {
    const md = cell.querySelector('.jp-RenderedMarkdown');
    if (!md || cell.classList.contains('jp-mod-editing')) return;
    const index = cell.dataset.windowedListIndex ?? String(n);
    const math = md.querySelectorAll('mjx-container');
    let errors = md.querySelectorAll('mjx-merror, [data-mjx-error]').length;
    for (const c of math) {
      for (const el of c.querySelectorAll('*')) {
        const color = getComputedStyle(el).color;
        if (color === 'rgb(255, 0, 0)') { errors += 1; break; }
      }
    }
    const clone = md.cloneNode(true);
    clone.querySelectorAll('mjx-container, mjx-assistive-mml, pre, code, script').forEach(e => e.remove());
    const directives = Array.from(md.querySelectorAll('pre code, code'))
      .map(e => e.className).filter(c => /language-\{/.test(c));
    out[index] = {math: math.length, errors: errors, text: clone.innerText, directives: directives};
  });
  return out;
}
"""
RAW_MYST = {
    "role": re.compile(r"\{[A-Za-z][\w:+.-]*\}"),
    "option": re.compile(r"(^|\n):(label|class|name|nonumber):"),
    "target": re.compile(r"\(\S+\)="),
    "fence": re.compile(r"(^|\n)\s*(```|:::)"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, token) of a JupyterLab server on the repository root."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed")
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.skip("jupyter not installed in this environment")
    tmp = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    server = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}", "--allow-root",
         f"--LabServerApp.workspaces_dir={tmp / 'workspaces'}",
         f"--LabServerApp.user_settings_dir={tmp / 'settings'}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start: {(tmp / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
    try:
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():  # skip, as the book's browser tests do, rather than error in every test
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def render(browser, lab, path: Path) -> dict[int, dict]:
    """Open ``path`` in JupyterLab, scroll to its end, and return what each markdown cell shows."""
    base, token = lab
    nb = nbformat.read(ROOT / path, as_version=4)
    markdown = {i: c.source for i, c in enumerate(nb.cells) if c.cell_type == "markdown"}
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(f"{base}/lab/tree/{path.as_posix()}?token={token}&reset")
        page.wait_for_selector(".jp-NotebookPanel .jp-RenderedMarkdown")
        seen: dict[int, dict] = {}
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        at_end = False
        while time.monotonic() < deadline:
            page.wait_for_timeout(700)  # rendering and typesetting of what came into view
            for key, value in page.evaluate(INSPECT).items():
                seen[int(key)] = value
            pending = [i for i in markdown if i not in seen or ("$" in markdown[i] and seen[i]["math"] == 0)]
            if at_end and not pending:
                break
            at_end = page.evaluate("""() => {
                const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
                const end = s.scrollTop + s.clientHeight >= s.scrollHeight - 2;
                s.scrollTop += s.clientHeight * 0.7;
                return end; }""")
        return {i: seen.get(i, {"math": 0, "errors": 0, "text": "", "directives": [], "missing": True})
                for i in markdown} | {-1: {"source": markdown}}
    finally:
        page.close()
        _shut_down_kernels(base, token)


def _shut_down_kernels(base: str, token: str) -> None:
    """Each opened notebook started a kernel: stop them, they only cost CPU here."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=30) as r:
        sessions = json.load(r)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=60).close()


def problems(cells: dict[int, dict]) -> dict[str, list]:
    markdown = cells.pop(-1)["source"]
    found: dict[str, list] = {"not rendered": [], "no math typeset": [], "math errors": [],
                              **{f"raw MyST {k}": [] for k in RAW_MYST}, "raw MyST directive": []}
    for i, cell in cells.items():
        if cell.get("missing"):
            found["not rendered"].append(i)
            continue
        if "$" in markdown[i] and cell["math"] == 0:
            found["no math typeset"].append(i)
        if cell["errors"]:
            found["math errors"].append((i, cell["errors"]))
        for kind, pattern in RAW_MYST.items():
            if m := pattern.search(cell["text"]):
                found[f"raw MyST {kind}"].append((i, m.group(0)))
        if cell["directives"]:
            found["raw MyST directive"].append((i, cell["directives"][0]))
    return {k: v for k, v in found.items() if v}


def test_the_detectors_find_the_myst_source_broken(browser, lab):
    found = problems(render(browser, lab, CONTROL))
    assert {"math errors", "raw MyST role", "raw MyST directive"} <= set(found), found


@pytest.mark.parametrize("path", EDITION, ids=lambda p: p.stem)
def test_edition_renders_cleanly_in_jupyterlab(browser, lab, path):
    assert problems(render(browser, lab, path)) == {}
