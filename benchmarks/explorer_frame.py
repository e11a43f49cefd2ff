"""One slider move of the theory explorer, timed in the browser on the built book (issue #19).

Usage::

    python benchmarks/explorer_frame.py [--html _build/html] [--moves 120] [--width 1280] [--json FILE]

Serves the built book from 127.0.0.1, opens ``book/explore.html`` in headless Chromium (the
Python ``playwright`` package driving ``/usr/bin/chromium``) with every other host blocked, and
moves each slider of the theory explorer with the keyboard: ``moves`` presses per slider, in
bursts of ten steps one way and ten back, so the values sweep the range. The explorer records,
for every move, ``performance.now()`` around its update (the closed form in JavaScript, the
numbers, the per-mode table and the four SVG figures patched in place) including the style and
layout the update forces; this script reads those times back.

Record ``explorer-frame``: the median and 90th percentile over all moves (``ms``, ``p90_ms``),
the same per slider, and the first render. The target is one frame at 60 Hz: a median under
16 ms. The ``K`` slider changes the size of the figures, which are then rebuilt rather than
patched; it is reported on its own line and included in the overall median.

Needs a book built with the local assets (``npm ci``, ``BOOK_OFFLINE_ASSETS=1 jupyter-book
build .``) and ``pip install playwright``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 16.0
SLIDERS = ("ratio", "lam_W", "lam_H", "n_max", "L", "K")
ROOT_SELECTOR = ".nclab-theory"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


@contextlib.contextmanager
def serve(html: Path):
    """Serve a folder on 127.0.0.1; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(html)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _offline(route) -> None:
    if urlsplit(route.request.url).hostname in ("127.0.0.1", None):
        route.continue_()
    else:
        route.abort()


def _stats(times: list[float]) -> dict:
    ordered = sorted(times)
    return dict(moves=len(times), ms=statistics.median(times), p90_ms=ordered[int(0.9 * (len(ordered) - 1))],
                max_ms=ordered[-1])  # fmt: skip


def measure(html: Path = ROOT / "_build" / "html", moves: int = 120, width: int = 1280, browser=None) -> dict:
    """Time ``moves`` keyboard moves of every slider of the theory explorer in ``html/book/explore.html``.

    ``browser``: a Playwright browser to use (a new headless Chromium when omitted).
    """
    page_path = html / "book" / "explore.html"
    if not page_path.is_file():
        raise FileNotFoundError(f"{page_path} is missing: build the book first (BOOK_OFFLINE_ASSETS=1 jupyter-book build .)")
    per_slider: dict[str, dict] = {}
    all_times: list[float] = []
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(serve(html))
        if browser is None:
            browser = _launch(stack)
        context = browser.new_context(viewport={"width": width, "height": 1000})
        stack.callback(context.close)
        context.route("**/*", _offline)
        page = context.new_page()
        page.goto(f"{base}/book/explore.html")
        page.wait_for_selector(f"{ROOT_SELECTOR} [data-nclab]", timeout=60_000)
        timings = f"document.querySelector('{ROOT_SELECTOR}').nclabTimings"
        first = page.evaluate(f"{timings}[0]")
        for name in SLIDERS:
            start = page.evaluate(f"{timings}.length")
            page.focus(f"{ROOT_SELECTOR} input[name={name}]")
            for i in range(moves):
                page.keyboard.press("ArrowRight" if (i // 10) % 2 == 0 else "ArrowLeft")
            times = page.evaluate(f"{timings}.slice({start})")
            per_slider[name] = _stats(times)
            all_times += times
    overall = _stats(all_times)
    return dict(name="explorer-frame", device="browser", width=width, first_render_ms=first, **overall,
                target_ms=TARGET_MS, per_slider=per_slider)  # fmt: skip


def _launch(stack: contextlib.ExitStack):
    """A headless Chromium (the system's, driven by Playwright), closed with ``stack``."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    pw = stack.enter_context(sync_playwright())
    browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    stack.callback(browser.close)
    return browser


def _print(rec: dict) -> None:
    print(f"explorer-frame at {rec['width']} px: median {rec['ms']:.2f} ms, p90 {rec['p90_ms']:.2f} ms, "
          f"max {rec['max_ms']:.1f} ms over {rec['moves']} moves (target: median < {rec['target_ms']:g} ms); "
          f"first render {rec['first_render_ms']:.1f} ms")  # fmt: skip
    for name, s in rec["per_slider"].items():
        print(f"  {name:6s} median {s['ms']:6.2f} ms  p90 {s['p90_ms']:6.2f} ms  max {s['max_ms']:6.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html", help="the built book")
    parser.add_argument("--moves", type=int, default=120, help="keyboard moves per slider")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in px")
    parser.add_argument("--json", type=Path, help="also write the record to this file")
    args = parser.parse_args(argv)
    try:
        rec = measure(args.html, args.moves, args.width)
    except (FileNotFoundError, ImportError) as exc:
        print(f"explorer-frame: {exc}", file=sys.stderr)
        return 2
    _print(rec)
    if args.json:
        args.json.write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    return 0 if rec["ms"] < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
