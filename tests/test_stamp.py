"""The build stamp: a rebuild with nothing changed is answered by stat alone, and
every change a full build would act on still gets one."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from generator.build import BuildOptions, BuildReport, build_site, load_site
from generator.config import load_config
from generator.models import ModelResolver
from tests.helpers import MakeBlog, genimg
from tests.test_build import FAKE_MODEL_CONFIG, _fill_cache, tree

POST = """
    ---
    title: First
    date: 2022-10-30
    ---

    Some text.

    ```gallery
    - id: one
      prompt: a red fox
      seed: 1
    - mode: img2img
      from: photo.png
      prompt: anime
      seed: 2
    ```
"""


def age(root: Path) -> None:
    """Date what was written in the last minute (inputs, site, cache) an hour back:
    files and folders changed just before a stamp are never trusted by it (racy).
    (Dating a file changes its ctime, so older ones are left alone.)"""
    now = time.time()
    for folder, _, names in os.walk(root):
        for path in [folder, *(os.path.join(folder, name) for name in names)]:
            if os.stat(path).st_mtime > now - 60:
                os.utime(path, (now - 3600, now - 3600))


def build(root: Path, **options: bool) -> BuildReport:
    return build_site(root, BuildOptions(preview=True, **options))


@pytest.fixture
def blog(make_blog: MakeBlog) -> Path:
    root = make_blog({"2022-10-30-first.md": POST,
                      "2022-11-01-second.md": "---\ntitle: Second\n---\nText two.\n"})
    Image.new("RGB", (64, 64), "#336699").save(root / "posts" / "photo.png")
    age(root)
    assert not build(root).unchanged
    age(root)  # what the build wrote, too
    assert not build(root).unchanged  # saves them as settled
    return root


def test_a_second_build_reads_nothing_and_writes_nothing(blog: Path) -> None:
    before = tree(blog / "site")
    report = build(blog)
    assert report.unchanged and (report.posts, report.pictures) == (2, 2)
    assert report.files_written == report.files_removed == report.rendered == 0
    assert tree(blog / "site") == before
    result = genimg("build", "--preview", "-C", blog)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().endswith("; nothing changed")


def _same_size_edit(blog: Path) -> str:
    post = blog / "posts" / "2022-11-01-second.md"
    st = post.stat()
    post.write_text(post.read_text().replace("Text two.", "Text 2!!."))
    os.utime(post, ns=(st.st_atime_ns, st.st_mtime_ns))  # even the mtime as it was
    return "Text 2!!."


def _new_post(blog: Path) -> str:
    (blog / "posts" / "2022-12-01-third.md").write_text("---\ntitle: Third\n---\nThree.\n")
    return "Three."


def _removed_post(blog: Path) -> str:
    (blog / "posts" / "2022-11-01-second.md").unlink()
    return "!second"


def _config_edit(blog: Path) -> str:
    config = blog / "genimg.yaml"
    config.write_text(config.read_text().replace("Test blog", "Renamed blog"))
    return "Renamed blog"


def _theme_edit(blog: Path) -> str:
    templates = blog / "theme" / "templates"
    templates.mkdir(parents=True)
    base = Path(__file__).parent.parent / "theme" / "templates" / "base.html"
    (templates / "base.html").write_text(base.read_text().replace("<body", "<!-- mine --><body"))
    return "<!-- mine -->"


def _page_deleted(blog: Path) -> str:
    (blog / "site" / "posts" / "second" / "index.html").unlink()
    return "Text two."


def _page_edited(blog: Path) -> str:
    page = blog / "site" / "posts" / "second" / "index.html"
    page.write_text(page.read_text().replace("Text two.", "Text 22."))
    return "Text two."


def _stray_file(blog: Path) -> str:
    (blog / "site" / "posts" / "second" / "stray.txt").write_text("not genimg's")
    return "!stray"


CHANGES: dict[str, Callable[[Path], str]] = {
    "same-size edit, mtime kept": _same_size_edit, "new post": _new_post,
    "removed post": _removed_post, "genimg.yaml": _config_edit, "user theme": _theme_edit,
    "site page deleted": _page_deleted, "site page edited": _page_edited,
    "stray site file": _stray_file,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_every_change_gets_a_full_build(blog: Path, change: Callable[[Path], str]) -> None:
    expect = change(blog)
    report = build(blog)
    assert not report.unchanged
    second = blog / "site" / "posts" / "second" / "index.html"
    if expect == "!second":
        assert not second.exists()
    elif expect == "!stray":
        assert not (second.parent / "stray.txt").exists()
    elif expect == "Three.":
        assert expect in (blog / "site" / "posts" / "third" / "index.html").read_text()
    elif expect == "Renamed blog" or expect == "<!-- mine -->":
        assert expect in (blog / "site" / "index.html").read_text()
    else:
        assert expect in second.read_text()
    age(blog)
    build(blog)
    assert build(blog).unchanged


def test_pictures_in_the_cache_and_from_files_are_checked(blog: Path) -> None:
    objects = blog / ".genimg" / "objects"
    png = next(objects.rglob("*.png"))
    png.unlink()
    png.with_suffix(".json").unlink()
    report = build(blog)
    assert not report.unchanged and report.rendered == 1
    age(blog)
    build(blog)
    assert build(blog).unchanged
    Image.new("RGB", (64, 64), "#996633").save(blog / "posts" / "photo.png")
    age(blog)  # an older mtime than the stamp's, yet another picture: its hash decides
    report = build(blog)
    assert not report.unchanged and report.rendered == 1


def test_other_options_are_another_stamp(blog: Path) -> None:
    assert not build(blog, drafts=True).unchanged
    assert build(blog, drafts=True).unchanged
    assert not build(blog).unchanged


def test_what_changed_just_before_a_stamp_is_not_trusted(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-11-01-a.md": "---\ntitle: A\n---\nText.\n"})
    build(root)
    stamp = json.loads((root / ".genimg" / "state" / "stamp.json").read_text())["entries"]
    assert 0 in stamp["inputs"].values()  # its mtime is within RACY_NS of the scan
    assert not build(root).unchanged
    age(root)
    later = time.time() + 30  # changed in the filesystem's current clock tick, as it were
    os.utime(root / "site" / "posts" / "a", (later, later))
    assert not build(root).unchanged
    stamp = json.loads((root / ".genimg" / "state" / "stamp.json").read_text())["entries"]
    assert stamp["outputs"]["folders"]["posts/a"] == 0 != stamp["outputs"]["folders"]["posts"]
    assert not list((root / ".genimg" / "state").glob(".stamp.*"))  # the probe is gone
    age(root)
    assert not build(root).unchanged  # the racy folder, now settled, is saved as it is
    assert build(root).unchanged


def test_a_build_right_after_a_build_is_answered(make_blog: MakeBlog) -> None:
    """What a build wrote before the probe made for its stamp is trusted by the next
    build (git's rule: only the probe's own clock tick is racy; a last write in that
    same tick costs one more full build, which writes nothing: ~1 in 20 here)."""
    root = make_blog({"2022-11-01-a.md": "---\ntitle: A\n---\nText.\n"})
    age(root)
    assert not build(root).unchanged
    assert build(root).unchanged or build(root).unchanged


def test_a_changed_model_file_is_seen(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-10-30-a.md": "```gallery\n- prompt: x\n  seed: 1\n```\n"},
                     config=FAKE_MODEL_CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    _fill_cache(root)
    for _ in range(2):
        age(root)
        assert not build_site(root, BuildOptions(frozen=True)).unchanged
    assert build_site(root, BuildOptions(frozen=True)).unchanged
    (root / "model.safetensors").write_bytes(b"another model, same name")
    age(root)
    result = genimg("build", "--frozen", "-q", "-C", root)
    assert result.exit_code == 1 and "not in the cache" in result.stderr


def test_the_resolver_resolves_its_record_again(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-10-30-a.md": "```gallery\n- prompt: x\n  seed: 1\n```\n"},
                     config=FAKE_MODEL_CONFIG)
    model = root / "model.safetensors"
    model.write_bytes(b"not really a model")
    site = load_site(root)
    record = json.loads(json.dumps(site.resolver.resolved()))
    assert record["models"]["default"].startswith("sha256:")
    assert ModelResolver(load_config(root)).resolves_as(record)
    model.write_bytes(b"not really a model!")
    assert not ModelResolver(load_config(root)).resolves_as(record)
    model.unlink()  # gone, and no fingerprint recorded for it yet
    assert not ModelResolver(load_config(root)).resolves_as(record)
