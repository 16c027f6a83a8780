"""What the browser tests share: the example blog built under ``/blog/``, a static
server with GitHub Pages' 404 rule, headless Chromium, and a page that records errors."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from generator.build import BuildOptions, build_site
from tests.helpers import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
BASE_URL = "https://user.github.io/blog/"


def playwright_or_skip() -> ModuleType:
    """Playwright's sync API; the calling test module is skipped without Chromium or it."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api",
                               reason="browser tests need the playwright Python package")


def example_blog(root: Path, extra_posts: dict[str, str] | None = None) -> Path:
    """The repo's example blog (plus ``extra_posts``), built with ``--preview`` into
    ``root/public/blog`` as a GitHub project site; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "posts", root / "posts")
    for name, text in (extra_posts or {}).items():
        (root / "posts" / name).write_text(text, encoding="utf-8")
    config = (REPO / "genimg.yaml").read_text(encoding="utf-8")
    config = re.sub(r"^base_url:.*$", f"base_url: {BASE_URL}", config, flags=re.M)
    (root / "genimg.yaml").write_text(config + "output_dir: public/blog\n", encoding="utf-8")
    build_site(root, BuildOptions(preview=True))
    return root


class PagesHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, with GitHub Pages' rule: a missing path gets ``/blog/404.html``."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        page = Path(self.directory) / "blog" / "404.html"
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return None

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """``directory`` served on 127.0.0.1 in a thread; yields the origin."""
    handler = functools.partial(PagesHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def chromium(sync_api: ModuleType) -> Iterator[Any]:
    """Headless Chromium from the system package (``playwright install`` cannot download)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Watch:
    """A page that records console errors, uncaught exceptions and failed requests."""

    def __init__(self, browser: Any, width: int, height: int, **options: Any):
        self.context = browser.new_context(viewport={"width": width, "height": height}, **options)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.expected_404: set[str] = set()
        self.in_flight: set[Any] = set()
        self.page.on("request", lambda r: self.in_flight.add(r))
        self.page.on("requestfinished", lambda r: self.in_flight.discard(r))
        self.page.on("requestfailed", lambda r: self.in_flight.discard(r))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _failed(self, request: Any) -> None:
        # A picture the page itself stopped loading (the lightbox moved on before its PNG
        # came, on a slow machine) is no fault of the site; a missing one is a 404 below.
        if request.resource_type == "image" and "ERR_ABORTED" in (request.failure or ""):
            return
        self.problems.append(f"failed: {request.url} {request.failure}")

    def _console(self, message: Any) -> None:
        where = message.location.get("url")
        if message.type == "error" and where not in self.expected_404:
            self.problems.append(f"console: {message.text} ({where})")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and response.url not in self.expected_404:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def goto(self, url: str, status: int = 200) -> None:
        if status == 404:
            self.expected_404.add(url)
        response = self.page.goto(url, wait_until="load")
        assert response is not None and response.status == status, url

    def load_all_images(self) -> int:
        """Force lazy pictures to load, wait for all; returns how many there are."""
        self.page.evaluate("""() => document.querySelectorAll('img[loading=lazy]')
                              .forEach(img => { img.loading = 'eager'; })""")
        pictures = "Array.from(document.images).filter(img => !img.closest('.lightbox'))"
        self.page.wait_for_function(f"() => {pictures}.every(img => img.complete)",
                                    timeout=10_000)
        broken = self.page.evaluate(f"""() => {pictures}
            .filter(img => !(img.naturalWidth > 0)).map(img => img.currentSrc || img.src)""")
        assert broken == []
        return self.page.evaluate(f"() => {pictures}.length")

    def screenshot(self, tmp_path: Path, name: str, full_page: bool = False) -> Path:
        path = tmp_path / "artifacts" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        # Let requests in flight (a preloaded PNG) finish before judging.
        for _ in range(100):
            if not self.in_flight:
                break
            self.page.wait_for_timeout(50)
        self.context.close()
        assert self.problems == []
