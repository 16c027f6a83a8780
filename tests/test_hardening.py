"""Issue 19: the defects found by attacking genimg as a careless user and a hostile input
would. One test (or parametrized case) per defect, named after its number and what it is."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import Result
from PIL import Image, PngImagePlugin

from generator.build import BuildOptions
from generator.config import load_config
from generator.content import load_post
from generator.errors import GenimgError
from generator.scaffold import new_post
from generator.serve import DevServer
from tests.helpers import REPO, genimg, git, isolate_git

TEXT_POST = """
    ---
    title: Hello
    date: 2024-01-01
    tags: [notes]
    ---

    Text only.
"""
POST = "2024-01-01-a.md"


def errors(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line]


def one_error(result: Result, *words: str) -> str:
    """The command failed with exactly one ``error: file:line: message`` line."""
    lines = errors(result)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def gallery_post(items: str, front: str = "title: A\ndate: 2024-01-01\n") -> str:
    return f"---\n{front}---\n\nText.\n\n```gallery\n{items}```\n"


def png_header(width: int, height: int) -> bytes:
    """A PNG that says it is ``width``×``height`` (a tiny file, like a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def small_png(path: Path, size: tuple[int, int] = (32, 32)) -> Path:
    Image.new("RGB", size, (200, 100, 50)).save(path)
    return path


# --- 1, 2, 6: publish --------------------------------------------------------------------


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def git_blog(make_blog, tmp_path: Path, config: str = "title: T\nbase_url: /\n"
             ) -> tuple[Path, Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    root = make_blog({"2024-01-01-hello.md": TEXT_POST}, config=config)
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", str(bare))
    return root, bare


def test_01_publish_never_prints_credentials(git_env, make_blog, tmp_path: Path) -> None:
    root, bare = git_blog(make_blog, tmp_path)
    url = "https://writer:s3cr3t-TOKEN@git.example.invalid/blog.git"
    git(root, "config", "--global", f"url.{bare}.insteadOf", url)  # the URL reaches `bare`
    result = genimg("publish", "-C", root, "--remote", url)
    assert result.exit_code == 0, result.stderr
    assert "published" in result.stdout and "git.example.invalid" in result.stdout
    # refused: the remote's branch moved on meanwhile
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(bare), str(other))
    (other / "x.txt").write_text("x")
    git(other, "add", "x.txt")
    git(other, "commit", "-q", "-m", "elsewhere")
    git(other, "push", "-q", "origin", "gh-pages")
    (root / "posts" / "2024-01-01-hello.md").write_text(TEXT_POST.replace("Text", "New"))
    refused = genimg("publish", "-C", root, "--remote", url)
    assert refused.exit_code == 1
    for output in (result.stdout, result.stderr, refused.stdout, refused.stderr):
        assert "s3cr3t-TOKEN" not in output and "writer:" not in output


@pytest.mark.parametrize("how", ["checked out", "upstream"])
def test_02_publish_refuses_the_source_branch(git_env, make_blog, tmp_path: Path,
                                              how: str) -> None:
    root, bare = git_blog(make_blog, tmp_path,
                          "title: T\nbase_url: /\npublish: {branch: main}\n")
    (root / ".gitignore").write_text("/site/\n/.genimg/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "sources")
    git(root, "push", "-q", "-u", "origin", "main")
    if how == "upstream":  # another branch, tracking origin/main
        git(root, "checkout", "-q", "-b", "writing", "--track", "origin/main")
    before = (git(root, "rev-parse", "main"), git(bare, "rev-parse", "main"))
    one_error(genimg("publish", "-C", root), "publish refused", "main", how)
    assert (git(root, "rev-parse", "main"), git(bare, "rev-parse", "main")) == before
    assert git(root, "status", "--porcelain") == ""


def test_06_rejected_push_to_a_url_gives_advice_that_works(git_env, make_blog,
                                                           tmp_path: Path) -> None:
    root, bare = git_blog(make_blog, tmp_path)
    assert genimg("publish", "-C", root, "--remote", str(bare)).exit_code == 0
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "--branch", "gh-pages", str(bare), str(other))
    (other / "x.txt").write_text("x")
    git(other, "add", "x.txt")
    git(other, "commit", "-q", "-m", "elsewhere")
    git(other, "push", "-q", "origin", "gh-pages")
    (root / "posts" / "2024-01-01-hello.md").write_text(TEXT_POST.replace("Text", "New"))
    line = one_error(genimg("publish", "-C", root, "--remote", str(bare)), "rejected")
    advice = re.findall(r"`(git [^`]+)`", line)
    assert advice, line
    for command in advice:
        subprocess.run(shlex.split(command), cwd=root, check=True, capture_output=True)
    again = genimg("publish", "-C", root, "--remote", str(bare))
    assert again.exit_code == 0, again.stderr
    assert "published" in again.stdout


# --- 3, 4: surrogates and control characters ----------------------------------------------


SURROGATE_CASES = {
    "title": gallery_post("- prompt: x\n", 'title: "bad \\uD800"\ndate: 2024-01-01\n'),
    "tag": gallery_post("- prompt: x\n", 'title: A\ndate: 2024-01-01\ntags: ["\\uDC80"]\n'),
    "summary": gallery_post("- prompt: x\n", 'title: A\ndate: 2024-01-01\nsummary: "\\uD800"\n'),
    "prompt": gallery_post('- prompt: "a \\uD800 b"\n'),
    "caption": gallery_post('- prompt: x\n  caption: "\\uDFFF"\n'),
    "extra": gallery_post("- prompt: x\n", 'title: A\ndate: 2024-01-01\nextra: {a: "\\uD800"}\n'),
}


@pytest.mark.parametrize("field", SURROGATE_CASES)
def test_03_lone_surrogate_is_refused_before_writing(make_blog, field: str) -> None:
    root = make_blog({POST: SURROGATE_CASES[field]})
    one_error(genimg("check", "-C", root), f"posts/{POST}:")
    one_error(genimg("build", "--preview", "-q", "-C", root), f"posts/{POST}:")
    assert not (root / "site").exists()
    assert not list((root / ".genimg").rglob("*.png"))


@pytest.mark.parametrize("served", ["title: S\nbase_url: /\n"], indirect=True)
def test_03_serve_answers_while_an_error_names_a_file_that_is_not_utf8(
        served: DevServer) -> None:
    name = os.fsencode(served.root / "posts") + b"/2024-01-02-caf\xe9.md"
    with open(name, "w", encoding="utf-8") as fh:
        fh.write("---\ntitle: [\n---\n")
    served.rebuild()
    status, _, body = request(served, "/")
    assert status == 200 and b"genimg: the build failed" in body
    assert b"caf\\udce9" in body
    time.sleep(1)  # the watcher met the name it cannot decode; it must still watch
    generation = served.state.generation
    (served.root / "posts" / POST).write_text(TEXT_POST.replace("Text", "Edited"))
    deadline = time.monotonic() + 15
    while served.state.generation == generation and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.state.generation > generation


def test_03_post_file_name_that_is_not_utf8(make_blog) -> None:
    root = make_blog({})
    os.makedirs(root / "posts", exist_ok=True)
    name = os.fsencode(root / "posts") + b"/2024-01-01-caf\xe9.md"
    with open(name, "w", encoding="utf-8") as fh:
        fh.write("---\ntitle: A\n---\n\nText.\n")
    one_error(genimg("build", "--preview", "-q", "-C", root), "file name")
    assert not (root / "site").exists()


def test_03_import_of_a_prompt_that_is_not_text_keeps_the_blog_buildable(make_blog,
                                                                          tmp_path: Path):
    from tests import pictures

    root = make_blog({}, config="title: T\nbase_url: /\nmodels:\n  default: m.safetensors\n")
    text = pictures.A1111_TEXT.replace("old man", "old \x1b[2J man")
    pictures.png(tmp_path / "in" / "a.png", {"parameters": text})
    result = genimg("import", "-C", root, tmp_path / "in", "--title", "Old")
    assert result.exit_code == 0, result.stderr
    assert "plain picture" in result.stdout
    assert genimg("build", "--preview", "-q", "-C", root).exit_code == 0


def test_03_genimg_new_refuses_a_title_that_is_not_text(make_blog) -> None:
    root = make_blog({})
    with pytest.raises(GenimgError, match="title"):
        new_post(root, "caf\udce9")
    assert not list((root / "posts").iterdir())


FEED_CASES = {
    "markdown vertical tab": "Text with a \x0b vertical tab.\n",
    "character reference": "First &#12; paragraph &#x1; here.\n",
    "form feed in a code span": "Some `a\x0cb` code.\n",
}


@pytest.mark.parametrize("case", FEED_CASES)
def test_04_feed_is_well_formed_with_control_characters(make_blog, case: str) -> None:
    root = make_blog({POST: f"---\ntitle: A\ndate: 2024-01-01\n---\n\n{FEED_CASES[case]}"})
    result = genimg("build", "--preview", "-q", "-C", root)
    assert result.exit_code == 0, result.stderr
    ElementTree.parse(root / "site" / "feed.xml")
    ElementTree.parse(root / "site" / "sitemap.xml")


@pytest.mark.parametrize("front", ['title: "a \\x01 b"', 'title: A\nsummary: "\\x1b[31m"',
                                   'title: A\ntags: ["\\x7f", "\\b"]'])
def test_04_control_character_escape_in_yaml_is_refused(make_blog, front: str) -> None:
    root = make_blog({POST: f"---\n{front}\ndate: 2024-01-01\n---\n\nText.\n"})
    one_error(genimg("check", "-C", root), f"posts/{POST}:", "control character")


# --- 5, 12, 13: pictures from files ---------------------------------------------------------


@pytest.mark.parametrize("side", [13000, 30000])
def test_05_restore_of_a_huge_user_file_is_refused(make_blog, side: int) -> None:
    root = make_blog({POST: gallery_post("- mode: restore\n  from: huge.png\n")})
    (root / "posts" / "huge.png").write_bytes(png_header(side, side))
    line = one_error(genimg("check", "-C", root), f"posts/{POST}:10", "huge.png", "megapixels")
    assert "not a readable image" not in line


def test_12_exif_orientation_is_applied_to_photos(make_blog) -> None:
    root = make_blog({POST: gallery_post("- mode: restore\n  from: phone.jpg\n")})
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to show": a portrait phone photo
    Image.new("RGB", (80, 40), (10, 200, 10)).save(root / "posts" / "phone.jpg", exif=exif)
    assert genimg("build", "--preview", "-q", "-C", root).exit_code == 0
    restored = [p for p in (root / "site" / "images").glob("*.png")]
    assert len(restored) == 1
    with Image.open(restored[0]) as image:
        assert image.size == (40, 80)


@pytest.mark.parametrize("name", ["a#b.png", "what?.png", "100%.png"])
def test_13_source_links_to_odd_file_names_work(make_blog, name: str) -> None:
    root = make_blog({POST: gallery_post(f"- mode: restore\n  from: '{name}'\n")})
    small_png(root / "posts" / name)
    assert genimg("build", "--preview", "-q", "-C", root).exit_code == 0
    page = (root / "site" / "posts" / "a" / "index.html").read_text()
    href = re.search(r'class="source-link" href="([^"]+)"', page)
    assert href, page
    from urllib.parse import unquote, urlsplit

    link = urlsplit(href.group(1))
    assert not link.query and not link.fragment, href.group(1)
    target = root / "site" / unquote(link.path).lstrip("/")
    assert target.is_file(), href.group(1)


# --- 7: deep chains -------------------------------------------------------------------------


def chain_post(length: int, broken: bool = False) -> str:
    items = []
    for i in reversed(range(length)):  # children before their parents
        if i == 0:
            model = "  model: nope\n" if broken else ""
            items.append(f"- id: c0\n  prompt: p\n{model}  width: 64\n  height: 64\n")
        else:
            items.append(f"- id: c{i}\n  mode: img2img\n  from: c{i - 1}\n  prompt: p\n"
                         "  width: 64\n  height: 64\n")
    return gallery_post("".join(items))


CHAIN_CONFIG = "title: T\nmodels: {default: org/model}\n"


def test_07_deep_from_chain_is_planned(make_blog) -> None:
    root = make_blog({POST: chain_post(600)}, config=CHAIN_CONFIG)
    result = genimg("check", "-C", root)
    assert result.exit_code == 0, result.stderr[-500:]
    assert "600 pictures" in result.stdout


def test_07_deep_from_chain_with_an_error_reports_it(make_blog) -> None:
    root = make_blog({POST: chain_post(600, broken=True)}, config=CHAIN_CONFIG)
    result = genimg("check", "-C", root)
    assert result.exit_code == 1
    assert all(line.startswith("error: ") for line in errors(result))
    assert "unknown model 'nope'" in result.stderr


def test_07_long_from_cycle_is_one_short_line(make_blog) -> None:
    post = chain_post(200).replace("- id: c0\n  prompt: p\n",
                                   "- id: c0\n  mode: img2img\n  from: c199\n  prompt: p\n")
    root = make_blog({POST: post}, config=CHAIN_CONFIG)
    line = one_error(genimg("check", "-C", root), "form a cycle", "(193 more)")
    assert len(line) < 200


# --- 8: YAML bomb in the config --------------------------------------------------------------


def laughs(levels: int = 9) -> str:
    """A list that, written out, holds 10**levels strings."""
    parts = ["&a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefghijk", "bcdefghijkl"[:levels - 1], strict=False):
        parts.append(f"&{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "[" + ", ".join(parts) + "]"


BOMB_CONFIGS = {
    "options": "face_restorer:\n  model: a.pth\n  detection: b.pth\n  parsing: c.pth\n"
               "  options: {parsing_ch_range: [32, 256], zz_unknown: %s}\n",
    "options value": "face_restorer:\n  model: a.pth\n  detection: b.pth\n  parsing: c.pth\n"
                     "  options: %s\n",
    "models": "models:\n  m: {source: x, config: %s}\n",
}


@pytest.mark.parametrize("where", BOMB_CONFIGS)
def test_08_yaml_alias_bomb_in_the_config(tmp_path: Path, where: str) -> None:
    """A guard: every probe of this attack (a billion laughs as an unknown option, as an
    option's value, as a model's config) was already one short line on ``main``; the
    checks added since (``schema._not_text`` walks values) must keep it so, in a process
    capped at 2 GB."""
    root = tmp_path / "blog"
    (root / "posts").mkdir(parents=True)
    (root / "genimg.yaml").write_text("title: x\n" + BOMB_CONFIGS[where] % laughs())
    for name in ("a.pth", "b.pth", "c.pth"):
        (root / name).write_bytes(b"x")
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31));"
            "from generator.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code, "check", "-C", str(root)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr[-300:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: genimg.yaml:") and len(lines[0]) < 300


# --- 9: serve ---------------------------------------------------------------------------------


@pytest.fixture
def served(request, make_blog) -> Iterator[DevServer]:
    config = getattr(request, "param", "title: S\nbase_url: /\n")
    root = make_blog({POST: TEXT_POST}, config=config)
    dev = DevServer(root, BuildOptions(preview=True), port=0, log=lambda m: None,
                    error_log=lambda m: None)
    dev.start()
    yield dev
    dev.close()


def request(server: DevServer, path: str, host: str | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    address, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("served", ["title: S\nbase_url: https://x.example/博客/\n"],
                         indirect=True)
def test_09_serve_non_ascii_base_url(served: DevServer) -> None:
    status, headers, _ = request(served, "/")
    assert status == 301
    assert headers["location"] == "/%E5%8D%9A%E5%AE%A2/"
    status, _, body = request(served, "/%E5%8D%9A%E5%AE%A2/")
    assert status == 200 and b"Hello" in body
    assert request(served, "/%E5%8D%9A%E5%AE%A2/feed.xml")[0] == 200


def test_09_serve_long_path_segment(served: DevServer) -> None:
    assert request(served, "/" + "a" * 300)[0] == 404
    assert request(served, "/posts/" + "%C3%A9" * 200 + "/")[0] == 404


@pytest.mark.parametrize("host, status", [
    ("evil.example", 403), ("evil.example:8000", 403), ("localhost.evil.example", 403),
    ("localhost", 200), ("127.0.0.1", 200), ("[::1]:80", 200), ("app.localhost", 200),
    ("192.168.1.20:8000", 200),
])
def test_09_serve_checks_the_host_header(served: DevServer, host: str, status: int) -> None:
    assert request(served, "/", host=host)[0] == status
    if status == 403:  # the live-reload channel (it carries tracebacks) too
        assert request(served, "/__genimg__/events?since=0", host=host)[0] == 403


# --- 10: config folders -------------------------------------------------------------------


def test_10_shared_cache_dir_keeps_other_projects_temp_files(make_blog, tmp_path: Path) -> None:
    shared = tmp_path / "shared-cache"
    theirs = [shared / ".their-upload.abc.tmp", shared / "other" / ".work.x1.tmp"]
    for path in theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("someone else's")
    ours = shared / "objects" / "ab" / ".abcd.png.k3y.tmp"
    ours.parent.mkdir(parents=True)
    ours.write_text("a killed build's")
    root = make_blog({POST: TEXT_POST}, config=f"title: T\ncache_dir: {shared}\n")
    assert genimg("build", "--preview", "-q", "-C", root).exit_code == 0
    assert all(path.exists() for path in theirs)
    assert not ours.exists()


@pytest.mark.parametrize("key", ["output_dir", "cache_dir", "posts_dir", "theme_dir"])
def test_10_tilde_is_expanded_in_folders(make_blog, tmp_path: Path, monkeypatch,
                                         key: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    root = make_blog({POST: TEXT_POST}, config=f"title: T\n{key}: ~/place\n")
    if key == "posts_dir":
        (home / "place").mkdir()
        (home / "place" / POST).write_text((root / "posts" / POST).read_text())
    config = load_config(root)
    assert getattr(config, key) == home / "place"
    assert genimg("build", "--preview", "-q", "-C", root).exit_code == 0
    assert not (root / "~").exists()


def test_10_tilde_is_expanded_in_face_restorer_paths(make_blog, tmp_path: Path,
                                                     monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    root = make_blog({}, config="title: T\nface_restorer:\n  model: ~/w/g.pth\n"
                                "  detection: ~/w/d.pth\n  parsing: ~/w/p.pth\n")
    face = load_config(root).face_restorer
    assert face is not None
    assert (face.model, face.detection, face.parsing) == (
        home / "w" / "g.pth", home / "w" / "d.pth", home / "w" / "p.pth")


@pytest.mark.parametrize("config, key", [
    ("output_dir: theme/static/site", "output_dir"),
    ("theme_dir: mytheme\noutput_dir: mytheme/static", "output_dir"),
    ("cache_dir: theme/static/cache", "cache_dir"),
    ("posts_dir: /", "posts_dir"),
    ("posts_dir: ..", "posts_dir"),
    ("theme_dir: /", "theme_dir"),
])
def test_10_folder_relations_are_refused(make_blog, config: str, key: str) -> None:
    root = make_blog({POST: TEXT_POST}, config=f"title: T\n{config}\n")
    line = one_error(genimg("check", "-C", root), "genimg.yaml:")
    assert key in line


def test_10_model_folder_must_look_like_one(make_blog, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "notes.txt").write_text("x")
    root = make_blog({POST: gallery_post("- prompt: x\n")},
                     config=f"title: T\nmodels:\n  default: {folder}/\n")
    one_error(genimg("check", "-C", root), f"posts/{POST}:", "model_index.json")


# --- 11: front matter --------------------------------------------------------------------


def test_11_front_matter_does_not_end_at_an_indented_dashes(tmp_path: Path) -> None:
    path = tmp_path / POST
    path.write_text("---\ntitle: A\ndate: 2024-01-01\nsummary: |\n  one\n  ---\n  two\n"
                    "tags: [x]\n---\n\nBody.\n")
    post = load_post(path, {})
    assert post.tags == ("x",)
    assert post.summary == "one\n---\ntwo\n"
    assert "tags" not in post.html


@pytest.mark.parametrize("title", ["two\nlines", "a\n---\nb", "  spaced \t out  ", "x: y #z"])
def test_11_genimg_new_writes_posts_genimg_can_read(make_blog, title: str) -> None:
    root = make_blog({})
    path = new_post(root, title)
    post = load_post(path, {})
    assert post.title == " ".join(title.split())
    assert post.html == "<p>Write here.</p>"


# --- 14: one line where one line is promised --------------------------------------------------


def test_14_info_on_a_huge_png(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(30000, 30000))
    one_error(genimg("info", path), "huge.png")


def test_14_info_on_a_png_with_a_big_ztxt(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "x" * (2 << 20), zip=True)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    result = genimg("info", path)  # an exception would escape here: no traceback
    assert result.exit_code in (0, 1)
    assert all(line.startswith("error: ") for line in errors(result))


@pytest.mark.parametrize("template, line", [
    ("{% extends 'default/post.html' %}\n{% block main %}\n{{ nope }}\n{% endblock %}\n", 3),
    ("<p>\n{% if %}\n", 2),
    ("<p>\n\n{{ post.title | nosuchfilter }}\n", 3),
    ("<p>{{ 1 / 0 }}</p>\n", 1),
])
def test_14_template_errors_name_the_template_and_line(make_blog, template: str,
                                                       line: int) -> None:
    root = make_blog({POST: TEXT_POST})
    (root / "theme" / "templates").mkdir(parents=True)
    (root / "theme" / "templates" / "post.html").write_text(template)
    one_error(genimg("build", "--preview", "-q", "-C", root),
              f"error: theme/templates/post.html:{line}: ")


def test_14_info_raw_prints_no_terminal_escapes(tmp_path: Path) -> None:
    path = tmp_path / "evil.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", "a \x1b]0;owned\x07 \x1b[2J prompt\x9b31m\nSteps: 20")
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    result = genimg("info", "--raw", path)
    assert result.exit_code == 0
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.stdout)
    assert "prompt" in result.stdout and "Steps: 20" in result.stdout


def test_14_newline_in_a_post_file_name_keeps_errors_on_one_line(make_blog) -> None:
    root = make_blog({"2024-01-01-a\nb.md": "---\ntitle: [\n---\n"})
    result = genimg("check", "-C", root)
    one_error(result)


def test_14_cname_with_a_newline_is_refused(make_blog) -> None:
    root = make_blog({POST: TEXT_POST},
                     config='title: T\npublish: {cname: "blog.example.com\\nevil"}\n')
    one_error(genimg("check", "-C", root), "genimg.yaml:2", "cname")


# --- 15: Markdown -------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["[" * 8000, "![" * 4000, "[" * 4000 + "]" * 4000,
                                  ("[a" * 2000 + "\n") * 2])
def test_15_runs_of_brackets_are_reported_quickly(tmp_path: Path, body: str) -> None:
    path = tmp_path / POST
    path.write_text(f"---\ntitle: A\ndate: 2024-01-01\n---\n\nSome text.\n\n{body}\n")
    started = time.perf_counter()
    with pytest.raises(GenimgError, match=r"'\['") as caught:
        load_post(path, {})
    assert time.perf_counter() - started < 5
    assert caught.value.line == 8


def test_15_ordinary_brackets_still_parse(tmp_path: Path) -> None:
    path = tmp_path / POST
    links = " ".join(f"[link {i}](https://example.com/{i}) [x] [^{i}]" for i in range(3000))
    path.write_text(f"---\ntitle: A\ndate: 2024-01-01\n---\n\n{links}\n\n```\n{'[' * 30000}\n```\n")
    post = load_post(path, {})
    assert post.html.count("<a href") == 3000


# --- README --------------------------------------------------------------------------------


def test_readme_says_templates_are_trusted_and_the_output_folder_is_owned() -> None:
    readme = (REPO / "README.md").read_text()
    assert "trusted code" in readme and "sandbox" in readme
    assert "site/.git" in readme

