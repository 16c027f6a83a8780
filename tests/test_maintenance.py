"""`build --frozen` from a partly filled cache, and `genimg cache ls | verify | gc`."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from generator.build import BuildOptions, load_site
from generator.cache import Cache
from generator.metadata import png_bytes
from generator.plan import Node
from tests.helpers import genimg

CONFIG = """
    title: Kept
    base_url: /
    models:
      default: test-org/not-on-this-machine
"""
POST_A = """
    ---
    title: A
    ---

    ```gallery
    - id: base
      prompt: a lighthouse
      seed: 1
      width: 64
      height: 64
    - mode: img2img
      from: base
      prompt: a lighthouse at night
      seed: 2
      strength: 0.5
      width: 64
      height: 64
    ```
"""
POST_B = """
    ---
    title: B
    ---

    Some text first.

    ```gallery
    - prompt: an old fisherman
      seed: 3
      width: 64
      height: 64
      restore_faces: true
    ```
"""


@pytest.fixture(autouse=True)
def no_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty hub cache: the configured model is surely not on this machine."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.fixture
def blog(make_blog) -> Path:
    return make_blog({"2024-01-01-a.md": POST_A, "2024-01-02-b.md": POST_B}, config=CONFIG)


def put_fake(cache: Cache, node: Node, preview: bool = False) -> None:
    """Any PNG will do for a cache entry; the sidecar carries what builds and ls read."""
    spec = node.spec
    image = Image.new("RGB", (spec.width, spec.height), (spec.seed % 256, 90, 160))
    where = node.shown.location
    cache.put(node.key, png_bytes(image, f"{spec.prompt}\nSteps: 1"), {
        "spec": {"mode": spec.mode, "prompt": spec.prompt}, "shown": node.shown.as_yaml_dict(),
        "width": spec.width, "height": spec.height, "preview": preview,
        "location": f"{where.file}:{where.line}",
    })


def where(spec) -> str:
    return f"{spec.location.file}:{spec.location.line}"


# --- build --frozen ---------------------------------------------------------------

def test_frozen_names_exactly_the_missing_pictures_then_builds(blog: Path) -> None:
    site = load_site(blog)
    cache = Cache(site.config.cache_dir)
    base_key = site.plan.id_key["base"]
    put_fake(cache, site.plan.nodes[base_key])

    result = genimg("build", "-C", blog, "--frozen", "-q")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    missing = [image for image in site.images if site.plan.shown_key[image.location] != base_key]
    assert len(lines) == len(missing) == 2
    for image in missing:
        (line,) = [line for line in lines if line.startswith(f"error: {where(image)}: ")]
        assert "not in the cache" in line and image.prompt in line
    assert not (blog / "site").exists()  # nothing written

    for node in site.plan.nodes.values():
        if not cache.has(node.key):
            put_fake(cache, node)
    done = genimg("build", "-C", blog, "--frozen", "-q")
    assert done.exit_code == 0, done.output
    assert "rendered 0" in done.output and "3 pictures" in done.output
    assert (blog / "site" / "posts" / "a" / "index.html").is_file()
    assert len(list((blog / "site" / "images").glob("*.png"))) == 3


def test_frozen_restore_step_missing_alone_is_named(blog: Path) -> None:
    """The unrestored base is cached, the restore step is not: B's picture is missing."""
    site = load_site(blog)
    cache = Cache(site.config.cache_dir)
    restore = next(n for n in site.plan.nodes.values() if n.spec.mode == "restore")
    for node in site.plan.nodes.values():
        if node.key != restore.key:
            put_fake(cache, node)
    result = genimg("build", "-C", blog, "--frozen", "-q")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {where(restore.shown)}: not in the cache: txt2img 'an old fisherman' (seed 3)"]


# --- cache ls ----------------------------------------------------------------------

def edit_prompt(blog: Path) -> None:
    post = blog / "posts" / "2024-01-01-a.md"
    post.write_text(post.read_text().replace("a lighthouse at night", "a lighthouse at dawn"))


def test_ls_shows_where_each_entry_is_used_and_marks_unused(blog: Path) -> None:
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0
    real = load_site(blog)
    put_fake(Cache(real.config.cache_dir), real.plan.nodes[real.plan.id_key["base"]])
    edit_prompt(blog)
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0

    result = genimg("cache", "ls", "-C", blog)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    by_key = {line.split()[0]: line for line in lines[:-1]}
    # 4 preview nodes (base, img2img, fisherman, its restore) + the re-prompted img2img
    # + the real (non-preview) base
    assert len(by_key) == 6
    assert lines[-1].startswith("6 entries") and "1 unused" in lines[-1]
    unused = [line for line in by_key.values() if "UNUSED" in line]
    assert len(unused) == 1
    assert "a lighthouse at night" in unused[0] and "preview" in unused[0]
    assert "(was posts/2024-01-01-a.md:" in unused[0]
    real_line = by_key[real.plan.id_key["base"][:12]]
    assert "preview" not in real_line and "txt2img" in real_line
    base_image = next(i for i in real.images if i.id == "base")
    assert f"{where(base_image)} +1" in real_line  # the base and its img2img child
    assert "KB" in real_line or " B " in real_line
    preview = load_site(blog, BuildOptions(preview=True))
    b_image = next(i for i in preview.images if i.location.file.endswith("b.md"))
    restore_line = by_key[preview.plan.shown_key[b_image.location][:12]]
    assert "restore preview" in restore_line and where(b_image) in restore_line

    only = genimg("cache", "ls", "-C", blog, "--unused")
    assert len(only.output.splitlines()) == 2 and "UNUSED" in only.output


# --- cache verify ------------------------------------------------------------------

def entry_png(blog: Path, key: str) -> Path:
    return blog / ".genimg" / "objects" / key[:2] / f"{key}.png"


def test_verify_reports_corrupt_entries_and_discard_lets_a_build_repair(blog: Path) -> None:
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0
    assert genimg("cache", "verify", "-C", blog).exit_code == 0
    preview = load_site(blog, BuildOptions(preview=True))
    flipped, truncated = (preview.plan.shown_key[i.location] for i in preview.images[:2])
    png = entry_png(blog, flipped)
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF  # same size, different bytes: only a re-hash notices
    png.write_bytes(bytes(data))
    short = entry_png(blog, truncated)
    short.write_bytes(short.read_bytes()[:100])

    result = genimg("cache", "verify", "-C", blog)
    assert result.exit_code == 1
    assert f"corrupt: {flipped[:12]}: " in result.stderr and "hash mismatch" in result.stderr
    assert f"corrupt: {truncated[:12]}: " in result.stderr
    assert len(result.stderr.splitlines()) == 2
    assert "checked 4 entries: 2 corrupt" in result.stdout

    fixed = genimg("cache", "verify", "-C", blog, "--discard")
    assert fixed.exit_code == 1 and "2 discarded" in fixed.stdout
    assert genimg("cache", "verify", "-C", blog).exit_code == 0
    rebuilt = genimg("build", "-C", blog, "--preview", "-q")
    assert "rendered 2" in rebuilt.output
    assert genimg("cache", "verify", "-C", blog).output.startswith("checked 4 entries: 0")


# --- cache gc ----------------------------------------------------------------------

def snapshot(blog: Path) -> set[str]:
    return {p.relative_to(blog).as_posix() for p in (blog / ".genimg").rglob("*")
            if p.is_file()}


def test_gc_dry_run_then_gc_removes_unused_entries_thumbnails_and_strays(blog: Path) -> None:
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0
    real = load_site(blog)
    real_base = real.plan.id_key["base"]
    put_fake(Cache(real.config.cache_dir), real.plan.nodes[real_base])  # used by the real plan
    old = load_site(blog, BuildOptions(preview=True))
    old_keys = set(old.plan.nodes)
    edit_prompt(blog)
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0
    new_keys = set(load_site(blog, BuildOptions(preview=True)).plan.nodes)
    (gone,) = old_keys - new_keys
    objects = blog / ".genimg" / "objects"
    stray_tmp = objects / gone[:2] / f".{gone}.png.abc123.tmp"
    stray_tmp.write_bytes(b"half")
    orphan = objects / "ff" / ("f" * 64 + ".png")
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"no sidecar")
    derived = blog / ".genimg" / "derived"
    assert any(p.name.startswith(gone) for p in derived.iterdir())

    before = snapshot(blog)
    dry = genimg("cache", "gc", "-C", blog, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would remove {gone[:12]}" in dry.output and "a lighthouse at night" in dry.output
    assert "would remove 1 entries" in dry.output
    assert snapshot(blog) == before

    result = genimg("cache", "gc", "-C", blog)
    assert result.exit_code == 0, result.output
    assert f"removed {gone[:12]}" in result.output
    after = snapshot(blog)
    removed = before - after
    assert not any(gone in path for path in after)
    assert {p for p in removed if p.startswith(".genimg/objects/") and gone in p} == {
        f".genimg/objects/{gone[:2]}/{gone}.json", f".genimg/objects/{gone[:2]}/{gone}.png",
        f".genimg/objects/{gone[:2]}/.{gone}.png.abc123.tmp"}
    assert any(p.startswith(".genimg/derived/" + gone) for p in removed)
    assert not orphan.exists()
    cache = Cache(blog / ".genimg")
    assert set(cache.keys()) == new_keys | {real_base}
    assert all(cache.has(key) for key in new_keys | {real_base})

    assert "rendered 0" in genimg("build", "-C", blog, "--preview", "-q").output
    assert "nothing to remove" in genimg("cache", "gc", "-C", blog).output


def test_gc_keeps_the_pictures_of_drafts(make_blog) -> None:
    root = make_blog({"2024-01-01-a.md": POST_A.replace("title: A", "title: A\n    draft: true")},
                     config=CONFIG)
    assert genimg("build", "-C", root, "--preview", "--drafts", "-q").exit_code == 0
    before = set(Cache(root / ".genimg").keys())
    assert len(before) == 2
    assert "nothing to remove" in genimg("cache", "gc", "-C", root).output
    assert set(Cache(root / ".genimg").keys()) == before


def test_gc_refuses_while_a_build_holds_the_lock(blog: Path) -> None:
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0
    edit_prompt(blog)
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0
    before = snapshot(blog)
    with Cache(blog / ".genimg").lock():
        result = genimg("cache", "gc", "-C", blog)
    assert result.exit_code == 1
    assert "another genimg build is running" in result.stderr
    assert snapshot(blog) == before


def test_gc_and_ls_refuse_when_a_post_is_broken(blog: Path) -> None:
    assert genimg("build", "-C", blog, "--preview", "-q").exit_code == 0
    before = snapshot(blog)
    (blog / "posts" / "2024-01-03-bad.md").write_text("```gallery\n- seed: x\n```\n")
    for command in (("cache", "gc"), ("cache", "ls")):
        result = genimg(*command, "-C", blog)
        assert result.exit_code == 1
        assert "2024-01-03-bad.md" in result.stderr
    assert snapshot(blog) == before


def test_gc_refuses_when_a_model_is_absent_and_never_recorded(blog: Path) -> None:
    """Without the model or its recorded fingerprint, its pictures would all look unused."""
    cache = Cache(blog / ".genimg")
    cache.put("ab" * 32, b"not really a png", {"width": 1, "height": 1, "preview": False})
    result = genimg("cache", "gc", "-C", blog)
    assert result.exit_code == 1
    assert "cannot tell which cached pictures model(s) default made" in result.output
    assert cache.has("ab" * 32)
