"""The built book's explorers, live in headless Chromium with the network blocked.

Opens ``_build/html/book/explore.html`` (and chapter 5) from a local server, with every request
to another host aborted, moves the sliders with the keyboard and reads back the numbers the
page shows: they must be :func:`nclab.theory.global_minimizer` of the new setting, computed in
the browser with no kernel. Also checks the layout at a phone width (412 px) and a desktop
width (1280 px) and saves screenshots in ``_build/screenshots/``.

Needs the Python package ``playwright`` (it drives the Debian ``chromium``; Playwright's own
browser download is not needed) and a book built with the local assets
(``npm ci``, then ``BOOK_OFFLINE_ASSETS=1 jupyter-book build .``); skips otherwise.
Run it alone with ``pytest tests/test_explorer_browser.py -m browser -p no:randomly``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from nclab import data, theory, widgets

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
THEORY = ".nclab-theory"
TRAINING = ".nclab-training"
RENDER_TIMEOUT_MS = 60_000
# Script errors of the book's theme, not of the explorers: sphinx-thebe declares THEBE_JS_URL
# twice on every page of this book (chapters without widgets too).
THIRD_PARTY_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)

# Every number the explorer shows, keyed by its data-nclab name (a list per mode for the table).
READ_JS = """(root) => {
  const el = document.querySelector(root);
  const out = {params: {}, modes: {}};
  el.querySelectorAll("output[data-nclab-param]").forEach((o) => {
    out.params[o.dataset.nclabParam] = {text: o.textContent, value: Number(o.dataset.value)};
  });
  el.querySelectorAll("select, input[type=checkbox]").forEach((i) => {
    out.params[i.name] = {text: i.type === "checkbox" ? String(i.checked) : i.value, value: i.type === "checkbox" ? i.checked : i.value};
  });
  el.querySelectorAll("[data-nclab]").forEach((s) => {
    const item = {text: s.textContent, value: s.dataset.value === undefined ? null : Number(s.dataset.value)};
    if (s.dataset.mode !== undefined) (out.modes[s.dataset.nclab] ||= [])[Number(s.dataset.mode)] = item;
    else out[s.dataset.nclab] = item;
  });
  return out;
}"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class _Quiet(SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(HTML), **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "book" / "explore.html").is_file():
        pytest.skip("the book is not built: run `BOOK_OFFLINE_ASSETS=1 jupyter-book build .` first")
    if not (HTML / "_static" / "offline" / "anywidget" / "index.js").is_file():
        pytest.skip("the book was built without the local widget assets (run `npm ci`, then "
                    "`BOOK_OFFLINE_ASSETS=1 jupyter-book build .`)")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Page:
    """One page in a fresh browser context: no network beyond 127.0.0.1, errors collected."""

    def __init__(self, browser, url: str, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", self._error)
        self.page.goto(url)

    def _error(self, exc) -> None:
        if str(exc) not in THIRD_PARTY_ERRORS:
            self.errors.append(str(exc))

    def _route(self, route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", None):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def wait(self, root: str) -> None:
        self.page.wait_for_selector(f"{root} [data-nclab]", timeout=RENDER_TIMEOUT_MS)

    def read(self, root: str) -> dict:
        return self.page.evaluate(READ_JS, root)

    def press(self, root: str, name: str, key: str, times: int = 1) -> None:
        """Focus a control with the keyboard's target and press a key (the reader's way)."""
        self.page.focus(f"{root} [name={name}]")
        for _ in range(times):
            self.page.keyboard.press(key)

    def close(self) -> None:
        assert not self.errors, f"script errors on the page: {self.errors}"
        self.context.close()


@pytest.fixture
def explore(browser, server):
    page = Page(browser, f"{server}/book/explore.html")
    yield page
    page.close()


def _params(shown: dict) -> dict:
    p = {k: shown["params"][k]["value"] for k in ("kind", "K", "n_max", "ratio", "lam_W", "lam_H", "L", "bias")}
    p["K"], p["n_max"], p["L"] = int(p["K"]), int(p["n_max"]), int(p["L"])
    return p


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}g}"


def assert_matches_theory(shown: dict) -> theory.GlobalMinimizer:
    """The numbers on the page are global_minimizer of the setting the sliders show."""
    p = _params(shown)
    # the values written beside the sliders are the values computed with
    assert shown["params"]["lam_W"]["text"] == _fmt(p["lam_W"], 3) and shown["params"]["ratio"]["text"] == _fmt(p["ratio"], 3)
    n = data.profile(p["kind"], p["K"], p["n_max"], p["ratio"])
    g = theory.global_minimizer(n, p["lam_W"], p["lam_H"], L=p["L"], bias=p["bias"])
    assert shown["n"]["text"] == "[" + ", ".join(str(int(v)) for v in n) + "]"
    for key, digits in (("threshold", 4), ("objective", 4), ("c", 4)):
        assert shown[key]["text"] == _fmt(getattr(g, key), digits), key
        assert shown[key]["value"] == pytest.approx(getattr(g, key), rel=1e-9), key
    assert int(shown["n_active"]["value"]) == g.n_active
    for key in ("s", "x"):
        assert [m["text"] for m in shown["modes"][key]] == [_fmt(v, 4) for v in getattr(g, key)], key
        np.testing.assert_allclose([m["value"] for m in shown["modes"][key]], getattr(g, key), rtol=1e-9,
                                   atol=1e-9 * g.s[0])  # fmt: skip
    assert [m["text"] for m in shown["modes"]["active"]] == ["yes" if a else "no" for a in g.active]
    return g


def test_theory_explorer_opens_live_and_offline(explore):
    explore.wait(THEORY)
    shown = explore.read(THEORY)
    assert _params(shown) == widgets.THEORY_DEFAULTS
    g = assert_matches_theory(shown)
    assert g.n_active == 2  # the default teaches: two modes survive, one vanishes
    assert not [u for u in explore.blocked if "anywidget" in u or "jsdelivr" in u or "unpkg" in u], explore.blocked


def test_ratio_and_lambda_sliders_recompute(explore):
    explore.wait(THEORY)
    explore.press(THEORY, "ratio", "ArrowRight", 3)
    shown = explore.read(THEORY)
    assert shown["params"]["ratio"]["value"] == 8.0  # 4 -> 5 -> 6 -> 8 on the slider's round values
    assert_matches_theory(shown)
    explore.press(THEORY, "lam_W", "ArrowLeft", 4)
    shown = explore.read(THEORY)
    assert shown["params"]["lam_W"]["value"] == 0.006
    g = assert_matches_theory(shown)
    assert g.n_active == 3  # weaker decay: the minority mode is back
    explore.press(THEORY, "lam_H", "End")  # strongest feature decay: everything collapses
    shown = explore.read(THEORY)
    assert shown["params"]["lam_H"]["value"] == 1.0 and assert_matches_theory(shown).n_active == 0


def test_depth_slider_crosses_the_jump(explore):
    explore.wait(THEORY)
    before = assert_matches_theory(explore.read(THEORY))
    assert before.x[1] > 0  # L = 1: mode 2 survives
    explore.press(THEORY, "L", "ArrowRight")
    deeper = assert_matches_theory(explore.read(THEORY))
    assert deeper.L == 2 and deeper.x[1] == 0 and deeper.s[1] < deeper.threshold  # gone at once
    explore.press(THEORY, "L", "ArrowRight")
    assert assert_matches_theory(explore.read(THEORY)).L == 3
    # at depth 3, lower lambda_W one step at a time: mode 2 comes back with a jump
    x2 = [0.0]
    for _ in range(10):
        explore.press(THEORY, "lam_W", "ArrowLeft")
        g = assert_matches_theory(explore.read(THEORY))
        x2.append(g.x[1])
        if g.x[1] > 0:
            break
    assert x2[-2] == 0 and x2[-1] >= (g.L - 1) / g.L * g.threshold * (1 - 1e-12)


def test_profile_list_and_bias_checkbox_recompute(explore):
    explore.wait(THEORY)
    explore.press(THEORY, "bias", "Space")  # untick the bias
    shown = explore.read(THEORY)
    assert shown["params"]["bias"]["value"] is False
    assert_matches_theory(shown)
    explore.page.select_option(f"{THEORY} select[name=kind]", "long-tailed")
    explore.press(THEORY, "K", "End")
    shown = explore.read(THEORY)
    assert shown["params"]["kind"]["value"] == "long-tailed" and shown["params"]["K"]["value"] == 12
    assert_matches_theory(shown)


def test_training_view_steps_through_stored_runs(explore):
    explore.wait(TRAINING)
    shown = explore.read(TRAINING)
    assert "reached the closed-form optimum" in explore.page.inner_text(f"{TRAINING} .nclab-readout")
    assert abs(shown["gap"]["value"]) < 1e-8
    explore.press(TRAINING, "L", "ArrowRight")  # depth 3
    explore.page.select_option(f"{TRAINING} select[name=init]", "small")
    shown = explore.read(TRAINING)
    p = {k: shown["params"][k]["value"] for k in ("ratio", "lam", "L", "bias", "init")}
    assert (p["L"], p["init"]) == (3, "small")
    g = theory.global_minimizer(data.profile("step", 4, 200, p["ratio"]), p["lam"], p["lam"], L=3, bias=p["bias"])
    assert shown["objective"]["value"] == pytest.approx(g.objective, rel=1e-9)  # theory, recomputed in the page
    assert int(shown["n_active"]["value"]) == g.n_active
    assert shown["trained_objective"]["value"] >= g.objective * (1 - 1e-9)
    verdict = explore.page.inner_text(f"{TRAINING} .nclab-readout")
    assert ("did not reach the optimum" in verdict) == (shown["gap"]["value"] > 1e-4)


def test_chapter_5_explorer_starts_deep(browser, server):
    page = Page(browser, f"{server}/book/05_depth.html")
    page.wait(THEORY)
    shown = page.read(THEORY)
    assert _params(shown) == {**widgets.THEORY_DEFAULTS, "L": 3}
    assert assert_matches_theory(shown).n_active == 1
    page.press(THEORY, "L", "Home")
    assert assert_matches_theory(page.read(THEORY)).n_active == 2
    page.close()


# Layout facts of one explorer, measured in the page.
LAYOUT_JS = """(root) => {
  const el = document.querySelector(root);
  const vw = document.documentElement.clientWidth;
  const body = parseFloat(getComputedStyle(document.querySelector("article p") || document.querySelector("p")).fontSize);
  const box = (e) => e.getBoundingClientRect();
  const rows = [...el.querySelectorAll(".nclab-row")].map((r) => [...r.children]).flat();
  const controls = [...el.querySelectorAll(".nclab-row input, .nclab-row select, .nclab-row output")];
  const texts = [...el.querySelectorAll("svg text")].filter((t) => t.getBBox().width > 0);
  const table = el.querySelector("table.nclab-modes");
  return {
    viewport: vw, body,
    offscreen: rows.filter((c) => box(c).right > vw + 0.5 || box(c).left < -0.5).map((c) => c.outerHTML.slice(0, 80)),
    hidden: controls.filter((c) => box(c).width < 8 || box(c).height < 8).map((c) => c.outerHTML.slice(0, 80)),
    clipped: [...el.querySelectorAll(".nclab-row label, .nclab-row output")].filter((c) => c.scrollWidth > c.clientWidth + 1).map((c) => c.textContent),
    emptyOutputs: [...el.querySelectorAll("output")].filter((o) => !o.textContent.trim()).length,
    smallestSvgText: Math.min(...texts.map((t) => parseFloat(getComputedStyle(t).fontSize))),
    smallestText: Math.min(...[...el.querySelectorAll("label, output, td, th, li, p, figcaption")].map((t) => parseFloat(getComputedStyle(t).fontSize))),
    figuresOffscreen: [...el.querySelectorAll("svg")].filter((s) => box(s).right > vw + 0.5).length,
    tableFits: table ? box(table).right <= box(el).right + 0.5 : true,
  };
}"""


@pytest.mark.parametrize("width", [412, 1280])
def test_layout_is_readable(browser, server, width):
    page = Page(browser, f"{server}/book/explore.html", width=width, height=1000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for root, name in ((THEORY, "theory"), (TRAINING, "training")):
        page.wait(root)
        facts = page.page.evaluate(LAYOUT_JS, root)
        assert facts["viewport"] == width
        assert not facts["offscreen"], f"controls outside the {width} px page: {facts['offscreen']}"
        assert not facts["hidden"], f"controls squeezed away at {width} px: {facts['hidden']}"
        assert not facts["clipped"], f"labels or values cut at {width} px: {facts['clipped']}"
        assert facts["emptyOutputs"] == 0
        assert facts["smallestSvgText"] >= facts["body"] - 0.01, facts  # figure text at least body size
        assert facts["smallestText"] >= facts["body"] - 0.01, facts
        assert facts["figuresOffscreen"] == 0, f"a figure runs off the {width} px page"
        assert facts["tableFits"], f"the modes table is wider than the explorer at {width} px"
        # the whole page in one capture, cut to the explorer (an element screenshot scrolls, and
        # the theme's sticky header would cover part of it)
        box = page.page.evaluate(f"(() => {{ const r = document.querySelector('{root}').getBoundingClientRect(); "
                                 "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()")
        page.page.screenshot(path=str(SHOTS / f"explorer-{name}-{width}px.png"), full_page=True, clip=box)
    page.close()



def test_frame_benchmark_records_its_fields(browser, server):
    """benchmarks/explorer_frame.py on a few moves: the record it writes, not the speed."""
    spec = importlib.util.spec_from_file_location("explorer_frame", ROOT / "benchmarks" / "explorer_frame.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rec = bench.measure(HTML, moves=4, width=800, browser=browser)
    assert rec["name"] == "explorer-frame" and rec["moves"] == 4 * len(bench.SLIDERS)
    assert set(rec["per_slider"]) == set(bench.SLIDERS) and rec["first_render_ms"] > 0
    assert 0 < rec["ms"] <= rec["p90_ms"] <= rec["max_ms"]
    json.dumps(rec)
