"""Issue 7: bad input of every kind -> exit 1, one ``error: file:line: ...`` per problem,
no traceback, and the site and cache exactly as they were.

Each case starts from a blog that was built once (so ``site/`` and the cache exist),
adds or replaces files, runs ``genimg build --preview`` and checks every error line:
its file, its exact line and what it says.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from generator.build import BuildOptions, build_site
from tests.helpers import REPO, genimg

CONFIG = """\
title: Bad input
base_url: /
models:
  default: example/base-model
  anime: example/anime-model
"""

GOOD_POST = """\
---
title: Good
date: 2022-10-30
---

```gallery
- id: girl
  prompt: photo of a girl
  seed: 1
  width: 64
  height: 64
  steps: 2
```
"""

BAD = "posts/2022-11-11-bad.md"


def gallery(yaml: str, *more: str) -> str:
    """A post whose gallery YAML line k is file line 8 + k (see ``L``)."""
    text = "---\ntitle: Bad\ndate: 2022-11-11\n---\n\nSome text.\n\n```gallery\n" + yaml + "```\n"
    for block in more:
        text += "\n```gallery\n" + block + "```\n"
    return text


def L(k: int) -> int:
    """File line of line ``k`` (1-based) of the first gallery's YAML in ``gallery()``."""
    return 8 + k


IMG = "- prompt: a picture\n"  # a valid image, one line

# id -> (files to write, [(file, line, fragment), ...] in the order reported)
CASES: dict[str, tuple[dict[str, str | bytes], list[tuple[str, int, str]]]] = {
    # broken YAML ---------------------------------------------------------------------
    "front matter: bad YAML": (
        {BAD: "---\ntitle: ok\ndate: 2022-11-11\ntags: a: b\n---\nhi\n"},
        [(BAD, 4, "invalid YAML: mapping values are not allowed here")]),
    "front matter: unclosed quote": (
        {BAD: '---\ntitle: "ok\ndate: 2022-11-11\n---\nhi\n'},
        [(BAD, 2, "invalid YAML: found unexpected end of stream")]),
    "front matter: never closed": (
        {BAD: "---\ntitle: ok\n\nhi\n"},
        [(BAD, 1, "front matter starts with '---' but never ends")]),
    "front matter: not a mapping": (
        {BAD: "---\n- a\n- b\n---\nhi\n"},
        [(BAD, 2, "front matter must be a mapping")]),
    "gallery: bad indentation": (
        {BAD: gallery("- prompt: a\n  seed: 1\n - prompt: b\n")},
        [(BAD, L(3), "invalid YAML: expected <block end>")]),
    "gallery: unclosed bracket": (
        {BAD: gallery("- prompt: a\n  seed: [1\n- prompt: b\n")},
        [(BAD, L(2), "invalid YAML")]),
    "gallery: duplicate key": (
        {BAD: gallery("- prompt: a\n  seed: 1\n  seed: 2\n")},
        [(BAD, L(3), "invalid YAML: duplicate key 'seed'")]),
    "gallery: bad date-like value": (
        {BAD: gallery("- prompt: a\n  caption: !!timestamp 2022-02-30\n")},
        [(BAD, L(2), "invalid YAML: invalid value '2022-02-30'")]),
    "gallery: never closed": (
        {BAD: "---\ntitle: x\n---\n\n```gallery\n- prompt: a\n  seed: 1\n"},
        [(BAD, 5, "gallery block is never closed")]),
    "gallery: empty": (
        {BAD: gallery("")},
        [(BAD, 8, "a gallery needs a non-empty list of images")]),
    "gallery: items that are not mappings": (
        {BAD: gallery(IMG + "- just text\n- 42\n")},
        [(BAD, L(2), "an image must be a mapping"), (BAD, L(3), "an image must be a mapping")]),
    # unknown keys --------------------------------------------------------------------
    "unknown image key": (
        {BAD: gallery("- prompt: a\n  promt: b\n")},
        [(BAD, L(2), "unknown image key 'promt' (did you mean 'prompt'?)")]),
    "unknown front matter key": (
        {BAD: "---\ntitel: x\n---\nhi\n"},
        [(BAD, 2, "unknown front matter key 'titel' (did you mean 'title'?)")]),
    "unknown gallery key": (
        {BAD: gallery("colums: 2\nimages:\n  - prompt: a\n")},
        [(BAD, L(1), "unknown gallery key 'colums' (did you mean 'columns'?)")]),
    "unknown gallery default": (
        {BAD: gallery("defaults:\n  sed: 3\nimages:\n  - prompt: a\n")},
        [(BAD, L(2), "unknown image default key 'sed' (did you mean 'seed'?)")]),
    # A1111 prompt syntax genimg does not render --------------------------------------
    "a1111 prompt: prompt editing": (
        {BAD: gallery("- prompt: a [cat:dog:0.5]\n  prompt_syntax: a1111\n")},
        [(BAD, L(1), "'prompt' uses prompt editing ([from:to:when])")]),
    "a1111 prompt: alternation from the block's defaults": (
        {BAD: gallery("defaults:\n  prompt_syntax: a1111\nimages:\n  - prompt: a\n"
                      "    negative_prompt: '[red|blue] hat'\n")},
        [(BAD, L(5), "'negative_prompt' uses alternation ([a|b])")]),
    "unknown config key": (
        {"genimg.yaml": CONFIG + "base_ur: /x/\n"},
        [("genimg.yaml", 6, "unknown config key 'base_ur' (did you mean 'base_url'?)")]),
    "unknown model key in config": (
        {"genimg.yaml": CONFIG + "  third:\n    sorce: a/b\n"},
        [("genimg.yaml", 7, "unknown model 'third' key 'sorce' (did you mean 'source'?)")]),
    # wrong types ---------------------------------------------------------------------
    "wrong type: steps": (
        {BAD: gallery("- prompt: a\n  steps: many\n")},
        [(BAD, L(2), "'steps' must be an integer, got 'many'")]),
    "wrong type: restore_faces": (
        {BAD: gallery("- prompt: a\n  restore_faces: 'yes'\n")},
        [(BAD, L(2), "'restore_faces' must be true or false, got 'yes'")]),
    "wrong type: width": (
        {BAD: gallery("- prompt: a\n  width: 512.5\n")},
        [(BAD, L(2), "'width' must be an integer, got 512.5")]),
    "wrong type: prompt": (
        {BAD: gallery("- prompt: [a, b]\n")},
        [(BAD, L(1), "'prompt' must be a string, got ['a', 'b']")]),
    "wrong type: seed true": (
        {BAD: gallery("- prompt: a\n  seed: true\n")},
        [(BAD, L(2), "'seed' must be an integer, got True")]),
    "wrong type: gallery default": (
        {BAD: gallery("defaults:\n  seed: abc\nimages:\n  - prompt: a\n")},
        [(BAD, L(2), "'seed' must be an integer, got 'abc'")]),
    "wrong type: columns": (
        {BAD: gallery("columns: 0\nimages:\n  - prompt: a\n")},
        [(BAD, L(1), "'columns' must be between 1 and 12, got 0")]),
    "wrong type: front matter extra": (
        {BAD: "---\ntitle: x\nextra: [1, 2]\n---\nhi\n"},
        [(BAD, 3, "'extra' must be a mapping")]),
    "wrong type: tags": (
        {BAD: "---\ntitle: x\ntags: [[a]]\n---\nhi\n"},
        [(BAD, 3, "'tags' must be a list of words")]),
    "wrong type: config per_page": (
        {"genimg.yaml": CONFIG + "per_page: ten\n"},
        [("genimg.yaml", 6, "'per_page' must be an integer, got 'ten'")]),
    "wrong type: model revision": (
        {"genimg.yaml": CONFIG + "  third:\n    source: a/b\n    revision: 12\n"},
        [("genimg.yaml", 8, "'revision' must be a string, got 12")]),
    "wrong type: face_restorer options": (
        {"genimg.yaml": CONFIG + "face_restorer:\n  model: a\n  detection: b\n  parsing: c\n"
                                 "  options: [1]\n"},
        [("genimg.yaml", 10, "'options' must be a mapping")]),
    # out of range --------------------------------------------------------------------
    "seed too big": (
        {BAD: gallery("- prompt: a\n  seed: 4294967296\n")},
        [(BAD, L(2), "'seed' must be between 0 and 4294967295, got 4294967296")]),
    "seed negative": (
        {BAD: gallery(IMG + "- prompt: b\n  seed: -1\n")},
        [(BAD, L(3), "'seed' must be between 0 and 4294967295, got -1")]),
    "size not a multiple of 8": (
        {BAD: gallery("- prompt: a\n  width: 64\n  height: 500\n")},
        [(BAD, L(3), "'height' must be a multiple of 8 between 64 and 4096, got 500")]),
    "size too small": (
        {BAD: gallery("- prompt: a\n  width: 8\n")},
        [(BAD, L(2), "'width' must be a multiple of 8 between 64 and 4096, got 8")]),
    "strength above 1": (
        {BAD: gallery("- prompt: a\n  strength: 1.5\n")},
        [(BAD, L(2), "'strength' must be in (0, 1], got 1.5")]),
    "strength zero": (
        {BAD: gallery("- prompt: a\n  strength: 0\n")},
        [(BAD, L(2), "'strength' must be in (0, 1], got 0")]),
    "face weight": (
        {BAD: gallery("- prompt: a\n  face_weight: 2\n")},
        [(BAD, L(2), "'face_weight' must be between 0 and 1, got 2")]),
    "steps": (
        {BAD: gallery("- prompt: a\n  steps: 0\n")},
        [(BAD, L(2), "'steps' must be between 1 and 500, got 0")]),
    "cfg not a number": (
        {BAD: gallery("- prompt: a\n  cfg: .nan\n")},
        [(BAD, L(2), "'cfg' must be between 0 and 50, got nan")]),
    "invalid date": (
        {BAD: "---\ntitle: x\ndate: 2022-02-30\n---\nhi\n"},
        [(BAD, 3, "invalid value '2022-02-30': day is out of range for month")]),
    "invalid date in the file name": (
        {"posts/2022-13-45-x.md": "hi\n"},
        [("posts/2022-13-45-x.md", 1, "file name starts with '2022-13-45', which is not a date")]),
    # modes ---------------------------------------------------------------------------
    "img2img without from": (
        {BAD: gallery(IMG + "- mode: img2img\n  prompt: b\n")},
        [(BAD, L(2), "mode 'img2img' needs 'from:'")]),
    "from on a txt2img": (
        {BAD: gallery("- prompt: b\n  from: girl\n")},
        [(BAD, L(2), "'from:' needs 'mode: img2img' or 'mode: restore'")]),
    "unknown mode": (
        {BAD: gallery("- prompt: b\n  mode: img3img\n")},
        [(BAD, L(2), "unknown mode 'img3img' (did you mean 'img2img'?)")]),
    # from: ---------------------------------------------------------------------------
    "from: a missing id": (
        {BAD: gallery("- mode: img2img\n  prompt: b\n  from: gril\n")},
        [(BAD, L(3), "'from: gril' is neither an image id nor a file next to the post "
                     "(did you mean 'girl'?)")]),
    "from: a missing file": (
        {BAD: gallery("- mode: img2img\n  prompt: b\n  from: missing.png\n")},
        [(BAD, L(3), "'from: missing.png' is neither an image id nor a file next to the post")]),
    "from: outside the blog (relative)": (
        {BAD: gallery("- mode: restore\n  from: ../../etc/passwd\n")},
        [(BAD, L(2), "'from: ../../etc/passwd' points outside the blog folder")]),
    "from: outside the blog (deep relative)": (
        {BAD: gallery("- mode: restore\n  from: ../../../../../../../../etc/passwd\n")},
        [(BAD, L(2), "points outside the blog folder")]),
    "from: outside the blog (absolute)": (
        {BAD: gallery("- mode: restore\n  from: /etc/passwd\n")},
        [(BAD, L(2), "'from: /etc/passwd' points outside the blog folder")]),
    "from: a NUL byte": (
        {BAD: gallery('- mode: restore\n  from: "a\\0b.png"\n')},
        [(BAD, L(2), "'from' holds a control character (\\x00), which is not text")]),
    "from: a text file": (
        {BAD: gallery("- mode: img2img\n  prompt: b\n  from: notes.txt\n")},
        [(BAD, L(3), "'from: notes.txt' is not a readable image")]),
    "from: a file of the blog that is no image": (
        {BAD: gallery("- mode: restore\n  from: ../genimg.yaml\n")},
        [(BAD, L(2), "'from: ../genimg.yaml' is not a readable image")]),
    "from: a truncated image": (
        {BAD: gallery("- mode: restore\n  from: broken.png\n")},
        [(BAD, L(2), "'from: broken.png' is not a readable image")]),
    "cycle": (
        {BAD: gallery("- id: a\n  mode: img2img\n  from: b\n  prompt: x\n"
                      "- id: b\n  mode: img2img\n  from: a\n  prompt: y\n")},
        [(BAD, L(3), "'from:' references form a cycle: a -> b -> a")]),
    "cycle of one": (
        {BAD: gallery("- id: me\n  mode: img2img\n  from: me\n  prompt: x\n")},
        [(BAD, L(3), "'from:' references form a cycle: me -> me")]),
    "duplicate id across posts": (
        {BAD: gallery("- id: girl\n  prompt: b\n")},
        [(BAD, L(1), "duplicate image id 'girl' (first used at posts/2022-10-30-good.md:7)")]),
    "duplicate slug": (
        {BAD: "---\ntitle: x\nslug: good\n---\nhi\n"},
        [(BAD, 1, "two posts share the slug 'good' (also posts/2022-10-30-good.md)")]),
    # models and samplers -------------------------------------------------------------
    "unknown model": (
        {BAD: gallery("- prompt: b\n  model: anme\n")},
        [(BAD, L(2), "unknown model 'anme' (did you mean 'anime'?)")]),
    "unknown sampler": (
        {BAD: gallery("- prompt: b\n  sampler: Euler b\n")},
        [(BAD, L(2), "unknown sampler 'Euler b' (did you mean 'Euler a'?)")]),
    "unknown sampler in config defaults": (
        {"genimg.yaml": CONFIG + "defaults:\n  steps: 10\n  sampler: DDMI\n"},
        [("genimg.yaml", 8, "unknown sampler 'DDMI' (did you mean 'DDIM'?)")]),
    # unreadable config ---------------------------------------------------------------
    "config: bad YAML": (
        {"genimg.yaml": CONFIG + "   broken: indent\n"},
        [("genimg.yaml", 6, "invalid YAML")]),
    "config: not a mapping": (
        {"genimg.yaml": "- title\n- base_url\n"},
        [("genimg.yaml", 1, "the config must be a mapping")]),
    "config: not UTF-8": (
        {"genimg.yaml": CONFIG.encode() + b"author: \xff\xfe\n"},
        [("genimg.yaml", 6, "not UTF-8 text: byte 0xff")]),
    "config: output_dir is the blog": (
        {"genimg.yaml": CONFIG + "output_dir: .\n"},
        [("genimg.yaml", 6, "output_dir must not be the blog folder")]),
    "config: output_dir holds the posts": (
        {"genimg.yaml": CONFIG + "output_dir: posts\n"},
        [("genimg.yaml", 6, "must not hold posts_dir")]),
    "config: cache inside the output": (
        {"genimg.yaml": CONFIG + "cache_dir: site/cache\n"},
        [("genimg.yaml", 6, "must not hold cache_dir")]),
    "config: cache_dir is the blog": (
        {"genimg.yaml": CONFIG + "cache_dir: .\n"},
        [("genimg.yaml", 6, "cache_dir (")]),
    # posts that cannot be read -------------------------------------------------------
    "post: not UTF-8": (
        {BAD: b"---\ntitle: x\n---\n\nline five\n\xe9t\xe9\n"},
        [(BAD, 6, "not UTF-8 text: byte 0xe9")]),
    # line numbers stay exact ---------------------------------------------------------
    "lines after a broken gallery": (
        {BAD: gallery("", IMG + "- prompt: b\n  seed: -1\n")},
        [(BAD, 8, "a gallery needs a non-empty list"), (BAD, 14, "'seed' must be between")]),
    "lines after gallery syntax shown in a code block": (
        {BAD: "---\ntitle: x\n---\n\n````markdown\n```gallery\n- prompt: shown, not built\n"
              "  seed: -5\n```\n````\n\n```gallery\n- prompt: a\n  seed: -1\n```\n"},
        [(BAD, 14, "'seed' must be between 0 and 4294967295, got -1")]),
    "lines with CRLF line ends": (
        {BAD: gallery(IMG + "- prompt: b\n  seed: -1\n").replace("\n", "\r\n")},
        [(BAD, L(3), "'seed' must be between")]),
    "lines with a byte order mark": (
        {BAD: "\ufeff" + gallery(IMG + "- prompt: b\n  seed: -1\n")},
        [(BAD, L(3), "'seed' must be between")]),
    "several problems, one line each": (
        {BAD: gallery("- prompt: a\n  seed: -1\n- prompt: b\n  width: 7\n- promt: c\n"),
         "posts/2022-12-01-other.md": "---\ntitle: x\ntitel: y\n---\n"},
        [(BAD, L(2), "'seed' must be between"), (BAD, L(4), "'width' must be a multiple of 8"),
         (BAD, L(5), "unknown image key 'promt'"),
         ("posts/2022-12-01-other.md", 3, "unknown front matter key 'titel'")]),
    "several problems across the plan": (
        {BAD: gallery("- mode: img2img\n  prompt: a\n  from: nope\n"
                      "- prompt: b\n  model: anme\n")},
        [(BAD, L(3), "'from: nope' is neither"), (BAD, L(5), "unknown model 'anme'")]),
}


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file of the site and the cache."""
    out = {}
    for folder in (root / "site", root / ".genimg"):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out[path.relative_to(root).as_posix()] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good blog, built once: every case starts from a copy of it."""
    root = tmp_path_factory.mktemp("built") / "blog"
    (root / "posts").mkdir(parents=True)
    (root / "genimg.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "posts" / "2022-10-30-good.md").write_text(GOOD_POST, encoding="utf-8")
    (root / "posts" / "notes.txt").write_text("not a picture\n", encoding="utf-8")
    Image.new("RGB", (64, 64), "red").save(root / "posts" / "photo.png")
    (root / "posts" / "broken.png").write_bytes((root / "posts" / "photo.png").read_bytes()[:60])
    build_site(root, BuildOptions(preview=True))
    assert (root / "site" / "index.html").is_file()
    return root


@pytest.fixture
def blog(built: Path, tmp_path: Path) -> Path:
    root = tmp_path / "blog"
    shutil.copytree(built, root)
    return root


def build_fails(root: Path, expected: list[tuple[str, int, str]]) -> list[str]:
    """Run ``genimg build --preview``; check exit 1, one line per problem, nothing touched."""
    before = snapshot(root)
    result = genimg("build", "-C", root, "--preview", "-q")
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.rstrip("\n").split("\n")
    assert len(lines) == len(expected), result.stderr
    for line, (file, number, fragment) in zip(lines, expected, strict=True):
        prefix = f"error: {file}:{number}: "
        assert line.startswith(prefix), f"{line!r} should start with {prefix!r}"
        assert fragment in line, f"{line!r} should say {fragment!r}"
    assert snapshot(root) == before, "a failed build touched the site or the cache"
    assert (root / "posts" / "2022-10-30-good.md").is_file()
    return lines


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(blog: Path, case: str):
    files, expected = CASES[case]
    for name, content in files.items():
        path = blog / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    build_fails(blog, expected)


def test_check_reports_the_same_lines(blog: Path):
    """``genimg check`` finds the same problems without writing anything."""
    files, expected = CASES["several problems, one line each"]
    for name, content in files.items():
        (blog / name).write_text(content, encoding="utf-8")
    result = genimg("check", "-C", blog)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == [f"{f}:{n}" for f, n, _ in expected]


def _deny(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Make ``target`` unreadable: chmod where that works, a patched read as root."""
    if os.geteuid() != 0:
        target.chmod(0)
        return
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.resolve() == target.resolve():
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_config_permission_denied(blog: Path, monkeypatch: pytest.MonkeyPatch):
    _deny(monkeypatch, blog / "genimg.yaml")
    before = snapshot(blog)
    result = genimg("build", "-C", blog, "--preview", "-q")
    monkeypatch.undo()
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == "error: genimg.yaml: cannot read: Permission denied"
    assert snapshot(blog) == before


def test_post_permission_denied(blog: Path, monkeypatch: pytest.MonkeyPatch):
    post = blog / BAD
    post.write_text(gallery(IMG), encoding="utf-8")
    _deny(monkeypatch, post)
    before = snapshot(blog)
    result = genimg("build", "-C", blog, "--preview", "-q")
    monkeypatch.undo()
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == f"error: {BAD}: cannot read: Permission denied"
    assert snapshot(blog) == before


def test_config_that_is_a_folder(blog: Path):
    (blog / "genimg.yaml").unlink()
    (blog / "genimg.yaml").mkdir()
    before = snapshot(blog)
    result = genimg("build", "-C", blog, "--preview", "-q")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == "error: genimg.yaml: cannot read: Is a directory"
    assert snapshot(blog) == before


def test_alias_bomb_is_one_short_line(blog: Path):
    """A YAML 'billion laughs' is parsed (aliases are shared), and reported briefly."""
    bomb = "".join(f"  - &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                   for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    text = gallery("- prompt: x\n  caption: &a [x, x, x, x, x, x, x, x, x]\n"
                   "  alt: '1'\n- prompt: y\n  negative_prompt: [*a]\n"
                   "- prompt: z\n  steps:\n" + bomb + "  cfg: 1\n")
    (blog / BAD).write_text(text, encoding="utf-8")
    lines = build_fails(blog, [(BAD, L(2), "'caption' must be a string"),
                               (BAD, L(5), "'negative_prompt' must be a string"),
                               (BAD, L(7), "'steps' must be an integer")])
    assert all(len(line) < 300 for line in lines)


@pytest.mark.slow
def test_real_process_exit_1_no_traceback(blog: Path):
    """The installed entry point, as a real process: exit 1 and only ``error:`` lines."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for case in ("gallery: bad indentation", "from: outside the blog (absolute)",
                 "config: not UTF-8", "several problems, one line each"):
        root = blog.parent / case.replace(" ", "_").replace(":", "").replace("(", "")[:30]
        shutil.copytree(blog, root)
        files, expected = CASES[case]
        for name, content in files.items():
            data = content if isinstance(content, bytes) else content.encode()
            (root / name).write_bytes(data)
        before = snapshot(root)
        result = subprocess.run(
            [sys.executable, "-c", "from generator.cli import main; main()", "build", "-C",
             str(root), "--preview"], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == len(expected)
        assert all(line.startswith("error: ") for line in lines), result.stderr
        assert snapshot(root) == before


def test_frozen_build_names_every_missing_picture(blog: Path):
    """``--frozen`` with several pictures missing: one line each (it used to crash on the
    second with a TypeError)."""
    (blog / BAD).write_text(gallery(IMG + "- prompt: another\n"), encoding="utf-8")
    before = snapshot(blog)
    result = genimg("build", "-C", blog, "--frozen", "-q")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert {line.split(": ")[1] for line in lines} == {
        "posts/2022-10-30-good.md:7", f"{BAD}:{L(1)}", f"{BAD}:{L(2)}"}
    assert all("not in the cache: txt2img '" in line for line in lines)
    assert any("txt2img 'another'" in line for line in lines)
    assert snapshot(blog) == before
