"""``genimg serve``: build, serve ``site/``, rebuild on change, reload the browser.

The live-reload script (and, after a failed build, an error overlay) is injected
into HTML *responses* only, never into the files on disk, so ``site/`` stays exactly
what ``genimg build`` writes. Every request is resolved to a real path that must lie
inside ``site/``: ``..``, percent-encoded dots and symlinks out of the site get 403.
"""

from __future__ import annotations

import html
import ipaddress
import json
import mimetypes
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .build import BuildMemory, BuildOptions, build_site
from .config import CONFIG_NAME, load_config
from .errors import GenimgError, one_line
from .progress import Progress

EVENTS_PATH = "/__genimg__/events"
_TYPES = {".html": "text/html; charset=utf-8", ".xml": "application/xml; charset=utf-8",
          ".webp": "image/webp", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
_OVERLAY_STYLE = ("position:fixed;inset:0;z-index:99999;overflow:auto;margin:0;padding:2em;"
                  "background:rgba(20,0,0,.92);color:#fdd;font:14px/1.5 monospace")
_SCRIPT = """<script>/* genimg live reload (served only, not in site/) */
(function () {
  function overlay(message) {
    var box = document.getElementById("genimg-error");
    if (!box) { box = document.createElement("div"); box.id = "genimg-error";
      box.setAttribute("style", %(style)s); document.body.appendChild(box); }
    box.innerHTML = "<strong>genimg: the build failed</strong><pre></pre>";
    box.querySelector("pre").textContent = message;
  }
  var events = new EventSource(%(events)s + "?since=%(generation)d");
  events.addEventListener("build", function () { location.reload(); });
  events.addEventListener("build-error", function (e) { overlay(JSON.parse(e.data).message); });
})();
</script>"""


class LiveState:
    """The latest build's generation number and error, and a condition to wait on."""

    def __init__(self) -> None:
        self.generation = 0
        self.error: str | None = None
        self.closed = False
        self._cond = threading.Condition()

    def publish(self, error: str | None) -> None:
        with self._cond:
            self.generation += 1
            self.error = error
            self._cond.notify_all()

    def wait(self, since: int, timeout: float) -> tuple[int, str | None] | None:
        """The next (generation, error) after ``since``; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self.generation > since or self.closed, timeout)
            return None if self.generation <= since else (self.generation, self.error)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def inject(page: bytes, generation: int, error: str | None) -> bytes:
    """The page with the reload script (and the error overlay) before ``</body>``."""
    snippet = ""
    if error:
        snippet = (f'<div id="genimg-error" style="{_OVERLAY_STYLE}"><strong>genimg: the '
                   f"build failed</strong><pre>{html.escape(error)}</pre></div>")
    snippet += _SCRIPT % {"style": json.dumps(_OVERLAY_STYLE), "events": json.dumps(EVENTS_PATH),
                          "generation": generation}
    at = page.lower().rfind(b"</body>")
    at = len(page) if at < 0 else at
    return page[:at] + snippet.encode("utf-8", "backslashreplace") + page[at:]


def resolve(site: Path, base: str, url: str) -> tuple[int, Path | str | None]:
    """URL -> (200, file) | (301, location) | (403 or 404, None); never outside ``site``."""
    path = urlsplit(url).path
    if not path.startswith(base):
        return (301, base) if path in ("/", base.rstrip("/")) else (404, None)
    try:
        rel = unquote(path[len(base):], errors="strict")
    except UnicodeDecodeError:
        return 404, None
    parts = [part for part in rel.split("/") if part not in ("", ".")]
    if "\0" in rel or "\\" in rel or ".." in parts:
        return 403, None
    root = site.resolve()
    try:
        target = root.joinpath(*parts).resolve()  # follows symlinks, so they are checked too
        if target.is_dir():
            if not path.endswith("/"):
                return 301, path + "/"
            target = (target / "index.html").resolve()
        if not target.is_relative_to(root):
            return 403, None
        return (200, target) if target.is_file() else (404, None)
    except OSError:  # a name too long for the disk, a symlink loop: no such page
        return 404, None


def host_allowed(host_header: str | None, bound: str) -> bool:
    """Only a request addressed to this machine: an IP address, a loopback name, or the
    name the server was bound to. A DNS-rebinding page's requests carry its own domain
    name, and must not read drafts or the build's tracebacks."""
    if not host_header:
        return True  # HTTP/1.0 without Host: no browser sends that
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8000
        host = host[1:host.find("]")]
    elif host.count(":") == 1:  # localhost:8000
        host = host.partition(":")[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return host in ("localhost", bound.lower()) or host.endswith(".localhost")


def url_path(base_path: str) -> str:
    """The base path as requests spell it: percent-encoded (``/博客/`` is
    ``/%E5%8D%9A%E5%AE%A2/``), and as such in a Location header, which must be ASCII."""
    return quote(unquote(base_path), safe="/!$&'()*+,;=:@~")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if not self._host_ok(head=False):
            return
        if urlsplit(self.path).path == EVENTS_PATH:
            self._events()
        else:
            self._file(head=False)

    def do_HEAD(self) -> None:
        if self._host_ok(head=True):
            self._file(head=True)

    def _host_ok(self, head: bool) -> bool:
        if host_allowed(self.headers.get("Host"), self.server.bound):
            return True
        self._send(403, b"403 forbidden: unknown Host\n", "text/plain", head)
        return False

    def log_message(self, format: str, *args: object) -> None:  # quiet, like a dev server
        pass

    def _send(self, status: int, body: bytes, ctype: str, head: bool,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": ctype, "Content-Length": str(len(body)),
                            "Cache-Control": "no-store", **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _file(self, head: bool) -> None:
        srv = self.server
        status, found = resolve(srv.site, srv.base, self.path)
        if status == 301:
            self._send(301, b"", "text/plain", head, {"Location": str(found)})
            return
        if status != 200 or not isinstance(found, Path):
            page = resolve(srv.site, "/", "/404.html")[1]
            body, ctype = (b"403 forbidden\n", "text/plain") if status == 403 else (
                (page.read_bytes(), _TYPES[".html"]) if isinstance(page, Path) else
                (b"<!doctype html><title>404</title><body>not found</body>", _TYPES[".html"]))
            if ctype == _TYPES[".html"]:
                body = inject(body, srv.state.generation, srv.state.error)
            self._send(status, body, ctype, head)
            return
        body = found.read_bytes()
        ctype = _TYPES.get(found.suffix) or mimetypes.guess_type(found.name)[0] or \
            "application/octet-stream"
        if found.suffix == ".html":
            body = inject(body, srv.state.generation, srv.state.error)
        self._send(200, body, ctype, head)

    def _events(self) -> None:
        """Server-Sent Events: one ``build`` or ``build-error`` event per finished build."""
        state = self.server.state
        query = parse_qs(urlsplit(self.path).query)
        try:
            since = int(query.get("since", [state.generation])[0])
        except ValueError:
            since = state.generation
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not state.closed:
                got = state.wait(since, timeout=15)
                if got is None:
                    self.wfile.write(b": ping\n\n")  # keeps proxies and the browser happy
                else:
                    since, error = got
                    name = "build-error" if error else "build"
                    data = json.dumps({"generation": since, "message": error})
                    self.wfile.write(f"event: {name}\ndata: {data}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Path
    base: str
    bound: str  # the host name the user asked to listen on
    state: LiveState


class DevServer:
    """Builds the blog, serves it and rebuilds it on every change until ``close()``."""

    def __init__(self, root: Path, options: BuildOptions, host: str = "127.0.0.1",
                 port: int = 8000, log: Callable[[str], None] = print,
                 error_log: Callable[[str], None] = print, progress: Progress | None = None):
        self.root, self.options, self.log, self.error_log = root, options, log, error_log
        self.progress = progress
        self.config = load_config(root)
        self.state = LiveState()
        self.memory = BuildMemory()  # posts parsed and planned, kept between rebuilds
        self._stop = threading.Event()
        self._build_lock = threading.Lock()
        try:
            self.httpd = _Server((host, port), _Handler)
        except OSError as exc:
            raise GenimgError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.httpd.state = self.state
        self.httpd.bound = host
        self._point_at()
        self._threads: list[threading.Thread] = []
        self._serving = False

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}{self.httpd.base}"

    def _point_at(self) -> None:
        self.httpd.site = self.config.output_dir
        self.httpd.base = url_path(self.config.base_path)

    def rebuild(self) -> None:
        """One build; its error (if any) goes to the terminal and to every open page."""
        with self._build_lock:
            error = None
            try:
                self.config = load_config(self.root)  # base_url or output_dir may change
                self._point_at()
                report = build_site(self.root, self.options, progress=self.progress,
                                    log=lambda m: self.error_log(f"warning: {m}"),
                                    memory=self.memory)
                self.log(f"built {report.posts} posts, {report.pictures} pictures: wrote "
                         f"{report.files_written} files in {report.seconds:.2f}s")
            except GenimgError as exc:
                error = str(exc)
            except Exception:  # a bug must not kill the server: show it like a build error
                error = traceback.format_exc()
            if error:
                for line in error.splitlines():
                    self.error_log(f"error: {line}")
            self.state.publish(error)

    def _watch(self, paths: list[Path], recursive: bool, ready: threading.Event) -> None:
        import watchfiles

        default = watchfiles.DefaultFilter()
        ours = (self.config.output_dir, self.config.cache_dir)  # the build's own writes

        def wanted(change: watchfiles.Change, path: str) -> bool:
            if not recursive:
                return Path(path).name == CONFIG_NAME
            return default(change, path) and not any(Path(path).is_relative_to(d) for d in ours)

        while not self._stop.is_set():
            try:
                for changes in watchfiles.watch(
                        *paths, watch_filter=wanted, stop_event=self._stop, recursive=recursive,
                        yield_on_timeout=True, rust_timeout=100, debounce=400,
                        raise_interrupt=False):
                    ready.set()  # the first (empty) yield: the watch is in place
                    if changes:
                        names = sorted({one_line(Path(p).name) for _, p in changes})
                        self.log(f"changed: {', '.join(names[:5])}"
                                 f"{' …' if len(names) > 5 else ''}")
                        self.rebuild()
            except Exception as exc:  # a file name that is not UTF-8 stops the watcher
                self.error_log(f"warning: watching again after: {one_line(str(exc))}")
                self.rebuild()  # what changed is not known: build, then watch anew

    def start(self) -> str:
        """Build once, then serve and watch in background threads; returns the URL."""
        self.rebuild()
        self._serving = True
        self._spawn(self.httpd.serve_forever, 0.1)
        trees = [p for p in (self.config.posts_dir, self.config.theme_dir) if p.is_dir()]
        readiness = []
        for paths, recursive in ((trees, True), ([self.config.root], False)):
            if paths:
                readiness.append(threading.Event())
                self._spawn(self._watch, paths, recursive, readiness[-1])
        for ready in readiness:
            ready.wait(10)
        return self.url

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        """Block until ``close()`` (or Ctrl-C in the main thread)."""
        while not self._stop.wait(0.5):
            pass

    def close(self) -> None:
        self._stop.set()
        self.state.close()
        if self._serving:
            self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
