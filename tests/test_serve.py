"""`genimg serve`: pages with live reload, rebuild on change, errors shown, no escapes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.build import BuildOptions
from generator.errors import GenimgError
from generator.serve import EVENTS_PATH, DevServer, resolve
from tests.helpers import REPO

POST = """
    ---
    title: Served
    date: 2024-01-01
    ---

    First version of the text.

    ```gallery
    - prompt: a red fox in the snow
      seed: 7
      width: 64
      height: 64
    ```
"""
SECRET = "TOP SECRET: outside the site"


@pytest.fixture
def blog(make_blog) -> Path:
    root = make_blog({"2024-01-01-served.md": POST})
    (root / "secret.txt").write_text(SECRET)
    return root


def _serve(root: Path) -> Iterator[DevServer]:
    dev = DevServer(root, BuildOptions(preview=True), port=0, log=lambda m: None,
                    error_log=lambda m: None)
    dev.start()
    yield dev
    dev.close()


@pytest.fixture
def server(blog: Path) -> Iterator[DevServer]:
    """A server of its own, for tests that change the blog."""
    yield from _serve(blog)


@pytest.fixture(scope="module")
def shared_blog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shared") / "blog"
    (root / "posts").mkdir(parents=True)
    (root / "genimg.yaml").write_text("title: Shared\nbase_url: /\n")
    (root / "posts" / "2024-01-01-served.md").write_text(textwrap.dedent(POST).lstrip())
    (root / "secret.txt").write_text(SECRET)
    return root


@pytest.fixture(scope="module")
def shared(shared_blog: Path) -> Iterator[DevServer]:
    """One server for the read-only tests (they only request pages)."""
    yield from _serve(shared_blog)


def get(server: DevServer, path: str, method: str = "GET"
        ) -> tuple[int, dict[str, str], bytes]:
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path)  # sent as is: no client-side normalising of ".."
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class Events:
    """A Server-Sent Events client for the reload endpoint."""

    def __init__(self, server: DevServer):
        host, port = server.httpd.server_address[:2]
        self.conn = http.client.HTTPConnection(host, port, timeout=20)
        self.conn.request("GET", f"{EVENTS_PATH}?since={server.state.generation}")
        self.sock = self.conn.sock  # http.client lets go of it once the response is read
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.getheader("Content-Type") == "text/event-stream"

    def next(self) -> tuple[str, dict]:
        name, data = None, None
        while True:
            line = self.resp.readline().decode()
            if not line:
                raise EOFError("event stream closed")
            line = line.rstrip("\n")
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
            elif not line and name:
                return name, data or {}

    def close(self) -> None:
        self.conn.close()


def test_html_is_served_with_the_reload_script_but_the_file_is_untouched(
        shared: DevServer, shared_blog: Path) -> None:
    status, headers, body = get(shared, "/posts/served/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert EVENTS_PATH.encode() in body and b"EventSource" in body
    assert body.index(b"EventSource") < body.rindex(b"</body>")
    assert int(headers["content-length"]) == len(body)
    for page in (shared_blog / "site").rglob("*.html"):
        assert "__genimg__" not in page.read_text(), page
    on_disk = (shared_blog / "site" / "posts" / "served" / "index.html").read_bytes()
    assert on_disk in body.replace(body[body.index(b"<script>/* genimg"):
                                        body.rindex(b"</body>")], b"")


def test_other_files_are_served_as_they_are(shared: DevServer, shared_blog: Path) -> None:
    status, headers, body = get(shared, "/static/style.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert body == (shared_blog / "site" / "static" / "style.css").read_bytes()
    png = next((shared_blog / "site" / "images").glob("*.png"))
    status, headers, body = get(shared, f"/images/{png.name}")
    assert status == 200 and headers["content-type"] == "image/png"
    assert body == png.read_bytes()
    status, headers, body = get(shared, "/static/style.css", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_missing_page_gets_the_404_page_and_folders_redirect(shared: DevServer) -> None:
    status, _, body = get(shared, "/no/such/page.html")
    assert status == 404 and b"EventSource" in body
    status, headers, _ = get(shared, "/posts/served")
    assert status == 301 and headers["location"] == "/posts/served/"


def test_edit_rebuilds_and_sends_a_reload_event(server: DevServer, blog: Path) -> None:
    events = Events(server)
    try:
        post = blog / "posts" / "2024-01-01-served.md"
        post.write_text(post.read_text().replace("First version", "Second version"))
        name, data = events.next()
        assert name == "build" and data["message"] is None
        _, _, body = get(server, "/posts/served/")
        assert b"Second version" in body
    finally:
        events.close()


def test_broken_post_shows_an_error_and_the_server_keeps_running(
        server: DevServer, blog: Path) -> None:
    post = blog / "posts" / "2024-01-01-served.md"
    good = post.read_text()
    events = Events(server)
    try:
        post.write_text(good.replace("seed: 7", "seed: seven"))
        name, data = events.next()
        assert name == "build-error"
        line = good.splitlines().index("  seed: 7") + 1
        assert f"2024-01-01-served.md:{line}" in data["message"]
        status, _, body = get(server, "/posts/served/")
        assert status == 200  # the last good build is still served
        assert b'id="genimg-error"' in body and b"seed" in body
        assert b"First version" in body

        post.write_text(good.replace("First version", "Fixed version"))
        name, data = events.next()
        assert name == "build" and data["message"] is None
        _, _, body = get(server, "/posts/served/")
        assert b'id="genimg-error"' not in body and b"Fixed version" in body
    finally:
        events.close()


def test_config_change_rebuilds(server: DevServer, blog: Path) -> None:
    events = Events(server)
    try:
        (blog / "genimg.yaml").write_text("title: Renamed blog\nbase_url: /\n")
        assert events.next()[0] == "build"
        assert b"Renamed blog" in get(server, "/")[2]
    finally:
        events.close()


TRAVERSALS = [
    "/../secret.txt",
    "/../../../../etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/posts/../../secret.txt",
    "/posts/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/posts/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/static/..%5c..%5csecret.txt",
    "/%2e%2e%5csecret.txt",
    "/secret.txt%00.html",
    "//secret.txt",
    "/%252e%252e/secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(shared: DevServer, path: str) -> None:
    status, _, body = get(shared, path)
    assert status in (403, 404), (path, status)
    assert SECRET.encode() not in body


def test_symlinks_out_of_the_site_are_refused(server: DevServer, blog: Path) -> None:
    site = blog / "site"
    (site / "leak.txt").symlink_to(blog / "secret.txt")
    (site / "leakdir").symlink_to(blog)
    (site / "alias.html").symlink_to(site / "index.html")  # inside: fine
    for path in ("/leak.txt", "/leakdir/secret.txt", "/leakdir/", "/leakdir/site/../secret.txt"):
        status, _, body = get(server, path)
        assert status in (403, 404), (path, status)
        assert SECRET.encode() not in body
    assert get(server, "/leak.txt")[0] == 403
    assert get(server, "/alias.html")[0] == 200


def test_resolve_never_leaves_the_site(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "a").mkdir(parents=True)
    (site / "a" / "index.html").write_text("x")
    (tmp_path / "out.txt").write_text("x")
    assert resolve(site, "/", "/a/") == (200, (site / "a" / "index.html").resolve())
    assert resolve(site, "/", "/a") == (301, "/a/")
    assert resolve(site, "/", "/a/?q=1#f")[0] == 200
    assert resolve(site, "/", "/%ff%fe")[0] == 404  # not UTF-8
    assert resolve(site, "/blog/", "/") == (301, "/blog/")
    assert resolve(site, "/blog/", "/blog") == (301, "/blog/")
    assert resolve(site, "/blog/", "/other/a/")[0] == 404
    assert resolve(site, "/blog/", "/blog/a/")[0] == 200
    assert resolve(site, "/blog/", "/blog/../out.txt")[0] == 403


def test_site_under_a_sub_path(make_blog) -> None:
    root = make_blog({"2024-01-01-served.md": POST},
                     config="title: Sub\nbase_url: https://example.com/blog/\n", name="sub")
    dev = DevServer(root, BuildOptions(preview=True), port=0, log=lambda m: None,
                    error_log=lambda m: None)
    try:
        assert dev.start().endswith("/blog/")
        status, headers, _ = get(dev, "/")
        assert status == 301 and headers["location"] == "/blog/"
        status, _, body = get(dev, "/blog/posts/served/")
        assert status == 200 and b"/blog/static/style.css" in body
    finally:
        dev.close()


def test_busy_port_fails_clearly(shared: DevServer, shared_blog: Path) -> None:
    port = shared.httpd.server_address[1]
    with pytest.raises(GenimgError, match="cannot listen"):
        DevServer(shared_blog, BuildOptions(preview=True), port=port)


def test_serve_command_starts_and_stops_on_ctrl_c(blog: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from generator.cli import main; main()", "serve", "-C",
         str(blog), "--port", "0", "--preview", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=blog)
    try:
        assert proc.stdout is not None
        for _ in range(20):
            line = proc.stdout.readline()
            if line.startswith("serving ") or not line:
                break
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        host, port = url.removeprefix("http://").split("/")[0].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and b"EventSource" in resp.read()
        conn.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_first_build_that_fails_still_serves_the_error(make_blog) -> None:
    root = make_blog({"2024-01-01-bad.md": "---\ntitle: [unclosed\n---\n"}, name="bad")
    logs: list[str] = []
    dev = DevServer(root, BuildOptions(preview=True), port=0, log=logs.append,
                    error_log=logs.append)
    try:
        dev.start()
        assert any(line.startswith("error: posts/2024-01-01-bad.md") for line in logs), logs
        status, _, body = get(dev, "/")
        assert status == 404  # nothing built yet
        assert b'id="genimg-error"' in body and b"2024-01-01-bad.md" in body
        events = Events(dev)
        try:
            (root / "posts" / "2024-01-01-bad.md").write_text("---\ntitle: Good\n---\nok\n")
            assert events.next()[0] == "build"
        finally:
            events.close()
        status, _, body = get(dev, "/")
        assert status == 200 and b"Good" in body and b'id="genimg-error"' not in body
    finally:
        dev.close()


def test_the_builds_own_writes_do_not_trigger_rebuilds(make_blog) -> None:
    """Posts at the blog root: site/ and .genimg/ sit inside the watched tree."""
    root = make_blog({}, config="title: Flat\nbase_url: /\nposts_dir: .\n", name="flat")
    (root / "2024-01-01-served.md").write_text(textwrap.dedent(POST).lstrip())
    yield_ = _serve(root)
    dev = next(yield_)
    try:
        events = Events(dev)
        (root / "2024-01-01-served.md").write_text("---\ntitle: Again\n---\nnew text\n")
        assert events.next()[0] == "build"
        events.sock.settimeout(1.5)
        with pytest.raises(TimeoutError):
            events.next()  # no second build from the first one's output
        events.close()
    finally:
        next(yield_, None)
