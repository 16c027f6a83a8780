"""Issue 7: nothing is lost under interruption, corruption, concurrency and a full disk.

Killed builds run in a forked child (cheap: genimg is already imported) or, for the
end-to-end checks, as a real ``genimg`` process started through ``tests/genimg_hook.py``,
which injects the fault. Every build here is a ``--preview`` build: same cache and
build machinery as a real one, and deterministic pictures, so a resumed build must
produce exactly the bytes of an uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from generator.atomic import TEMP_SUFFIX, DiskFull
from generator.build import BuildOptions, build_site, load_site
from generator.cache import Cache
from generator.errors import GenimgError
from tests.helpers import REPO, genimg, write_blog

HOOK = Path(__file__).resolve().parent / "genimg_hook.py"
PREVIEW = BuildOptions(preview=True)

PAIR_POST = """\
---
title: Pair
date: 2022-10-30
tags: [a]
---

Text.

```gallery
defaults:
  width: 64
  height: 64
  steps: 2
images:
  - id: girl
    prompt: photo of a girl
    seed: 1
    restore_faces: true
  - mode: img2img
    from: girl
    prompt: anime girl
    seed: 2
    strength: 0.5
```

```gallery
- mode: img2img
  from: photo.png
  prompt: drawing of the photo
  seed: 3
  width: 64
  height: 64
  steps: 2
- mode: restore
  from: photo.png
```
"""

MORE_POST = """\
---
title: More
---

```gallery
- prompt: a house
  seed: 4
  width: 64
  height: 64
  steps: 2
- prompt: a tree
  seed: 5
  width: 64
  height: 64
  steps: 2
```
"""

#: Render steps of the blog: girl, girl restored, anime girl, drawing, restore, house, tree.
RENDERS = 7


def sample_blog(parent: Path, name: str = "blog") -> Path:
    """Two posts: txt2img + face restore + img2img chain, a user photo, two plain pictures."""
    root = write_blog(parent, {"2022-10-30-pair.md": PAIR_POST, "2022-11-01-more.md": MORE_POST},
                      config="title: Reliability\nbase_url: /\n", name=name)
    Image.new("RGB", (64, 64), (200, 100, 50)).save(root / "posts" / "photo.png")
    return root


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder``: relative path -> bytes."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(folder: Path) -> list[str]:
    return [p for p in tree(folder) if Path(p).name.endswith(TEMP_SUFFIX)]


def complete_keys(root: Path) -> set[str]:
    """Keys of the cache entries that are there and verify."""
    cache = Cache(root / ".genimg")
    good = set()
    for key in set(cache.keys()):
        try:
            cache.verify(key)
        except GenimgError:
            continue
        good.add(key)
    return good


def counting_build(root: Path) -> dict[str, int]:
    """Build ``root`` in-process, counting renames (commits of atomic writes) and bytes."""
    counts = {"replace": 0, "bytes": 0}
    real_replace, real_write = os.replace, os.write

    def replace(*args: object) -> None:
        counts["replace"] += 1
        real_replace(*args)

    def write(fd: int, data: bytes) -> int:
        written = real_write(fd, data)
        counts["bytes"] += written
        return written

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        mp.setattr(os, "write", write)
        counts["rendered"] = build_site(root, PREVIEW).rendered
    return counts


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The site and cache files of one uninterrupted build, and what it wrote."""
    root = sample_blog(tmp_path_factory.mktemp("reference"))
    counts = counting_build(root)
    assert counts["rendered"] == RENDERS
    return {"site": tree(root / "site"), "cache": tree(root / ".genimg"),
            "keys": complete_keys(root), "root": root, **counts}


def point(fraction: float, total: int) -> int:
    """The call (1-based) or byte a fraction of the way through a build."""
    return 1 + int(fraction * (total - 1))


def assert_cache_consistent(root: Path, reference: dict, *earlier: dict[str, bytes]) -> None:
    """Every cache file is complete (or a temp file); every entry verifies. A derived file
    may also be one of an ``earlier`` build (the search bundle a killed update left)."""
    ref_cache = reference["cache"]
    cache = Cache(root / ".genimg")
    assert set(cache.keys()) <= reference["keys"], "a temp file was taken for an entry"
    for rel, data in tree(root / ".genimg").items():
        name = Path(rel).name
        if name.endswith(TEMP_SUFFIX) or name in ("lock", "hashes.json"):
            continue
        if rel.startswith("state/"):  # build state: file stamps of this blog; hints only
            json.loads(data)  # but never half-written
            continue
        # A sidecar (objects/<xx>/<key>.json): times differ, the PNG hash may not. Other
        # JSON (a search bundle's in derived/) is a derivative, equal to the reference's.
        if rel.startswith("objects/") and name.endswith(".json"):
            meta = json.loads(data)
            assert meta["png_sha256"] == json.loads(ref_cache[rel])["png_sha256"]
        else:
            assert any(data == version.get(rel) for version in (ref_cache, *earlier)), \
                f".genimg/{rel} is half-written or wrong"
    for key in set(cache.keys()):
        cache.verify(key)  # every entry with a sidecar verifies


def assert_site_files_whole(root: Path, *versions: dict[str, bytes]) -> None:
    """Each site file (temp files aside) is exactly one of the given versions of it."""
    for rel, data in tree(root / "site").items():
        if not Path(rel).name.endswith(TEMP_SUFFIX):
            assert any(data == v.get(rel) for v in versions), f"site/{rel} is half-written"


def assert_consistent_after_kill(root: Path, reference: dict) -> None:
    """What a killed build left: complete files or temp files, never a half file."""
    assert_cache_consistent(root, reference)
    assert_site_files_whole(root, reference["site"])


def assert_resumes(root: Path, reference: dict) -> None:
    """The next build renders only what is missing and gives the uninterrupted site."""
    missing = len(reference["keys"] - complete_keys(root))
    report = build_site(root, PREVIEW)
    assert report.rendered == missing
    assert not report.repaired
    assert tree(root / "site") == reference["site"]
    assert complete_keys(root) == reference["keys"]
    assert temp_files(root) == [], "temp files of the killed build were left behind"


def killed_in_fork(root: Path, patch: Callable[[], None]) -> int:
    """Build in a forked child after ``patch()``; returns the signal that ended it (0: none)."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            patch()
            build_site(root, PREVIEW)
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status)


def kill_at(module: object, name: str, n: int) -> Callable[[], None]:
    """A patch that SIGKILLs the process at the n-th call of ``module.name``."""

    def patch() -> None:
        real = getattr(module, name)
        calls = [0]

        def wrapper(*args: object, **kwargs: object) -> object:
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(module, name, wrapper)

    return patch


def kill_after_bytes(limit: int) -> Callable[[], None]:
    """A patch that writes up to ``limit`` bytes in all, then SIGKILLs mid-write."""

    def patch() -> None:
        real = os.write
        done = [0]

        def write(fd: int, data: bytes) -> int:
            room = limit - done[0]
            if len(data) >= room:
                real(fd, memoryview(data)[:room])
                os.kill(os.getpid(), signal.SIGKILL)
            done[0] += len(data)
            return real(fd, data)

        os.write = write

    return patch


def run_cli(root: Path, *args: str, hook: dict | None = None,
            wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    """``genimg build -C root --preview -q ...`` as a real process (with a fault hook)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GENIMG_TEST_HOOK", None)
    if hook:
        env["GENIMG_TEST_HOOK"] = json.dumps(hook)
    cmd = [sys.executable, str(HOOK), "build", "-C", str(root), "--preview", "-q", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


# --- SIGKILL at any moment --------------------------------------------------------------

# os.replace commits each atomic write: the cache entries first (PNG, then sidecar), then
# the file-hash memo, web images and thumbnails, then pages and static files (~48 in all).
@pytest.mark.parametrize("n", [1, 2, 3, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
def test_sigkill_at_any_rename_resumes_to_the_same_site(tmp_path, reference, n):
    if isinstance(n, float):
        n = point(n, reference["replace"])
    root = sample_blog(tmp_path)
    assert killed_in_fork(root, kill_at(os, "replace", n)) == signal.SIGKILL
    assert temp_files(root), "the kill came before a rename: its temp file is still there"
    assert_consistent_after_kill(root, reference)
    assert_resumes(root, reference)


# os.write: killed in the middle of a file (cache PNGs first, then thumbnails and pages).
@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.08, 0.25, 0.5, 0.75, 0.99])
def test_sigkill_in_the_middle_of_a_write_resumes(tmp_path, reference, fraction):
    root = sample_blog(tmp_path)
    limit = point(fraction, reference["bytes"])
    assert killed_in_fork(root, kill_after_bytes(limit)) == signal.SIGKILL
    assert temp_files(root), "the half-written file must be a temp file"
    assert_consistent_after_kill(root, reference)
    assert_resumes(root, reference)


@pytest.mark.parametrize("n", [1, 4, 7])
def test_sigkill_during_a_render_resumes(tmp_path, reference, n):
    import generator.render.preview as preview

    root = sample_blog(tmp_path)
    assert killed_in_fork(root, kill_at(preview, "preview_picture", n)) == signal.SIGKILL
    # The n - 1 pictures rendered before, less those the writer thread had not stored yet
    # (at most two batches: generator/writer.py); never a half-stored one.
    assert len(complete_keys(root)) <= n - 1
    assert_consistent_after_kill(root, reference)
    assert_resumes(root, reference)


def test_killed_twice_then_resumed(tmp_path, reference):
    root = sample_blog(tmp_path)
    assert killed_in_fork(root, kill_at(os, "replace", 5)) == signal.SIGKILL
    assert killed_in_fork(root, kill_after_bytes(reference["bytes"] // 3)) == signal.SIGKILL
    assert_consistent_after_kill(root, reference)
    assert_resumes(root, reference)


def test_sigkill_of_a_real_genimg_process(tmp_path, reference):
    """End to end: the real CLI process, killed by the hook during the cache writes."""
    root = sample_blog(tmp_path)
    result = run_cli(root, hook={"target": "replace", "n": 8, "action": "kill"})
    assert result.returncode == -signal.SIGKILL
    assert temp_files(root / ".genimg")
    assert_consistent_after_kill(root, reference)
    result = run_cli(root)
    assert result.returncode == 0, result.stderr
    assert "rendered 4," in result.stdout  # 3 entries were complete (renames 2, 4, 6)
    assert tree(root / "site") == reference["site"]
    assert temp_files(root) == []


def test_temp_files_are_never_entries(tmp_path, reference):
    """Stray temp files (even holding a whole entry) are ignored, then swept away."""
    root = sample_blog(tmp_path)
    build_site(root, PREVIEW)
    cache = Cache(root / ".genimg")
    key = sorted(cache.keys())[0]
    png, side = cache.paths(key)
    stray = [side.parent / f".{side.name}.abc123{TEMP_SUFFIX}",
             png.parent / f".{png.name}.def456{TEMP_SUFFIX}",
             root / "site" / f".index.html.x{TEMP_SUFFIX}"]
    stray[0].write_bytes(side.read_bytes())
    stray[1].write_bytes(png.read_bytes())
    stray[2].write_bytes(b"<html")
    side.unlink()  # the entry is gone; only temp files that look like it remain
    assert key not in set(cache.keys())
    assert not cache.has(key)
    report = build_site(root, PREVIEW)
    assert report.rendered == 1
    assert not any(p.exists() for p in stray)
    assert tree(root / "site") == reference["site"]


def test_atomic_write_keeps_the_usual_file_mode(tmp_path):
    from generator.atomic import write_atomic

    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.html", b"x")
    finally:
        os.umask(umask)
    # mkstemp makes 0600 files; a published site must stay world-readable
    assert (tmp_path / "a.html").stat().st_mode & 0o777 == 0o666 & ~umask


# --- Ctrl-C -----------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "n", "saved"), [("put", 3, 3), ("render", 6, 5)])
def test_ctrl_c_stops_between_pictures_and_says_how_many(tmp_path, reference, target, n,
                                                         saved):
    """Ctrl-C saves every picture already rendered: pictures are stored on the writer
    thread (``generator/writer.py``), which finishes the store in flight and the ones
    queued behind it, so at the third store at least three are saved (how many more the
    renderer made meanwhile depends on timing); at the sixth render, exactly five."""
    root = sample_blog(tmp_path)
    result = run_cli(root, hook={"target": target, "n": n, "action": "sigint"})
    assert result.returncode == 130
    said = re.search(rf"interrupted: (\d+) of {RENDERS} pictures were saved", result.stderr)
    assert said is not None, result.stderr
    stored = int(said.group(1))
    assert stored == saved if target == "render" else saved <= stored <= RENDERS
    assert "Traceback" not in result.stderr
    assert len(complete_keys(root)) == stored
    assert temp_files(root) == []
    assert_consistent_after_kill(root, reference)
    report = build_site(root, PREVIEW)
    assert report.rendered == RENDERS - stored
    assert tree(root / "site") == reference["site"]


# --- corrupted and truncated cache entries ----------------------------------------------

def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("damage", [_flip, _truncate])
def test_corrupt_entry_with_missing_site_files_is_repaired_not_copied(tmp_path, reference,
                                                                      damage):
    root = sample_blog(tmp_path)
    build_site(root, PREVIEW)
    site = load_site(root, PREVIEW)
    cache = Cache(root / ".genimg")
    key = next(k for k in dict.fromkeys(site.plan.shown_key.values())
               if site.plan.nodes[k].spec.prompt == "a house")
    png, _ = cache.paths(key)
    damage(png)
    bad = png.read_bytes()
    for file in (root / "site" / "images").glob(f"*{key[:8]}*"):
        file.unlink()
    logged: list[str] = []
    report = build_site(root, PREVIEW, log=logged.append)
    assert report.repaired == [key]
    assert report.rendered == 1
    assert any("corrupt" in line and key[:12] in line for line in logged)
    assert tree(root / "site") == reference["site"]
    assert all(data != bad for data in tree(root / "site").values())
    cache.verify(key)


def test_corrupt_entry_reported_by_the_cli(tmp_path, reference):
    root = sample_blog(tmp_path)
    build_site(root, PREVIEW)
    cache = Cache(root / ".genimg")
    key = sorted(reference["keys"])[0]
    _flip(cache.paths(key)[0])
    for file in (root / "site").rglob(f"*{key[:8]}*"):
        file.unlink()
    result = genimg("build", "-C", root, "--preview", "-q")
    assert result.exit_code == 0, result.output
    assert f"warning: cache entry {key[:12]} was corrupt; rendering it again" in result.stderr
    assert tree(root / "site") == reference["site"]


@pytest.mark.parametrize("damage", [_flip, _truncate])
def test_corrupt_parent_of_an_img2img_miss_is_rendered_again(tmp_path, damage):
    root = sample_blog(tmp_path)
    build_site(root, PREVIEW)
    site = load_site(root, PREVIEW)
    girl = site.plan.id_key["girl"]  # shown key: the restored picture
    base = site.plan.nodes[girl].parent  # the unrestored one: the restore's parent
    cache = Cache(root / ".genimg")
    damage(cache.paths(girl)[0])
    damage(cache.paths(base)[0])  # the grandparent too: repaired in turn
    post = root / "posts" / "2022-10-30-pair.md"
    post.write_text(post.read_text().replace("anime girl", "manga girl"), encoding="utf-8")
    report = build_site(root, PREVIEW)
    assert sorted(report.repaired) == sorted([girl, base])
    assert report.rendered == 3

    clean = sample_blog(tmp_path, "clean")
    post = clean / "posts" / "2022-10-30-pair.md"
    post.write_text(post.read_text().replace("anime girl", "manga girl"), encoding="utf-8")
    build_site(clean, PREVIEW)
    assert tree(root / "site") == tree(clean / "site")
    assert complete_keys(root) >= complete_keys(clean)


def test_damaged_sidecar_means_render_again(tmp_path, reference):
    root = sample_blog(tmp_path)
    build_site(root, PREVIEW)
    cache = Cache(root / ".genimg")
    shown = list(dict.fromkeys(load_site(root, PREVIEW).plan.shown_key.values()))
    cache.paths(shown[0])[1].write_text("{not json")
    cache.paths(shown[1])[1].write_text("[1, 2]")
    cache.paths(shown[2])[1].write_text(json.dumps({"png_size": "x"}))
    cache.paths(shown[3])[1].write_bytes(b"\xff\xfe")
    for key in shown[:4]:
        assert not cache.has(key)
    (root / ".genimg" / "hashes.json").write_text("[]")  # damaged memo: rehash, no crash
    report = build_site(root, PREVIEW)
    assert report.rendered == 4
    assert tree(root / "site") == reference["site"]
    assert complete_keys(root) == reference["keys"]


# --- two builds at once -----------------------------------------------------------------

@pytest.mark.slow
def test_second_build_fails_clearly_or_waits(tmp_path, reference):
    root = sample_blog(tmp_path)
    marker = tmp_path / "holding"
    first = run_cli(root, hook={"target": "put", "n": 2, "action": "sleep",
                                "marker": str(marker), "seconds": 2.5}, wait=False)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)

    second = run_cli(root)
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "another genimg build is running on this blog" in lines[0]
    assert f"pid {first.pid}" in lines[0]

    third = run_cli(root, "--wait", "60")
    _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert third.returncode == 0, third.stderr
    assert "rendered 0," in third.stdout  # the first build rendered everything
    assert tree(root / "site") == reference["site"]
    assert complete_keys(root) == reference["keys"]
    assert temp_files(root) == []


@pytest.mark.slow
def test_builds_started_together_share_the_work(tmp_path, reference):
    root = sample_blog(tmp_path)
    procs = [run_cli(root, "--wait", "60", wait=False) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    rendered = [int(out.split("rendered ")[1].split(",")[0]) for out, _ in results]
    assert sum(rendered) == RENDERS
    assert tree(root / "site") == reference["site"]
    assert complete_keys(root) == reference["keys"]
    assert temp_files(root) == []


def test_lock_is_released_by_a_killed_build(tmp_path):
    """flock dies with its process: a SIGKILLed build never blocks the next one."""
    root = sample_blog(tmp_path)
    cache = Cache(root / ".genimg")

    def hold_and_die() -> None:
        with cache.lock():
            os.kill(os.getpid(), signal.SIGKILL)

    assert killed_in_fork(root, hold_and_die) == signal.SIGKILL
    with cache.lock(wait=0):
        pass


# --- disk full --------------------------------------------------------------------------

def _enospc_after(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    real = os.write
    done = [0]

    def write(fd: int, data: bytes) -> int:
        if done[0] + len(data) > limit:
            room = max(0, limit - done[0])
            if room:  # a short write first, as a filling disk does
                done[0] += real(fd, memoryview(data)[:room])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done[0] += len(data)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.fixture(scope="module")
def half_built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A blog whose first post is built; the second, just written, is not (yet)."""
    root = sample_blog(tmp_path_factory.mktemp("half"))
    more = root / "posts" / "2022-11-01-more.md"
    more.rename(root / "more.md")
    build_site(root, PREVIEW)
    state = {"root": root, "site": tree(root / "site"), "cache": tree(root / ".genimg")}
    (root / "more.md").rename(more)
    probe = root.parent / "probe"
    shutil.copytree(root, probe)
    counts = counting_build(probe)  # what the next build writes
    state["bytes"], state["replace"] = counts["bytes"], counts["replace"]
    return state


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6, 0.9, 1.0])
def test_sigkill_while_a_new_site_is_linked_back_resumes(tmp_path, reference, fraction):
    """``rm -rf site``, then a build killed while it links thumbnails, pages and the search
    index back from ``derived/``: every file it left is whole, the next build ends it.
    (The blog stays at one path: pages' digests name it.)"""
    root = sample_blog(tmp_path)
    build_site(root, PREVIEW)
    shutil.rmtree(root / "site")
    built = tmp_path / "built"
    shutil.copytree(root, built)
    links: list[str] = []
    real_link = os.link

    def link(src: str, dest: str, **kwargs: object) -> None:
        links.append(str(dest))
        real_link(src, dest, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "link", link)
        build_site(root, PREVIEW)  # how many links a new site takes
    assert tree(root / "site") == reference["site"]
    assert any(d.endswith("/site/posts/pair/index.html") for d in links), "no page linked back"
    shutil.rmtree(root)
    shutil.copytree(built, root)
    assert killed_in_fork(root, kill_at(os, "link", point(fraction, len(links)))) == \
        signal.SIGKILL
    assert_consistent_after_kill(root, reference)
    assert_resumes(root, reference)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 1.0])
def test_sigkill_while_updating_a_built_site(tmp_path, reference, half_built, fraction):
    """A new post on a built blog, killed: each site file is the old one or the new one."""
    root = tmp_path / "blog"
    shutil.copytree(half_built["root"], root)
    n = point(fraction, half_built["replace"])
    assert killed_in_fork(root, kill_at(os, "replace", n)) == signal.SIGKILL
    assert_cache_consistent(root, reference, half_built["cache"])
    assert_site_files_whole(root, half_built["site"], reference["site"])
    assert_resumes(root, reference)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.6, 0.9])
def test_disk_full_loses_nothing_already_cached(tmp_path, monkeypatch, reference, half_built,
                                                fraction):
    root = tmp_path / "blog"
    shutil.copytree(half_built["root"], root)
    before = complete_keys(root)
    cached = {rel: data for rel, data in half_built["cache"].items()
              if rel.startswith("objects/")}

    _enospc_after(monkeypatch, point(fraction, half_built["bytes"]))
    with pytest.raises(DiskFull) as info:
        build_site(root, PREVIEW)
    monkeypatch.undo()
    assert "disk full" in str(info.value)
    assert "\n" not in str(info.value)
    assert complete_keys(root) >= before
    now = tree(root / ".genimg")
    assert all(now.get(rel) == data for rel, data in cached.items())
    assert temp_files(root) == []
    assert_cache_consistent(root, reference, half_built["cache"])
    assert_site_files_whole(root, half_built["site"], reference["site"])

    build_site(root, PREVIEW)  # space again: the build completes
    assert tree(root / "site") == reference["site"]


@pytest.mark.slow
def test_disk_full_in_a_real_process_exits_1_with_one_clear_line(tmp_path, reference):
    root = sample_blog(tmp_path)
    # while storing pictures; then (a new build) while writing the site
    for limit in (point(0.05, reference["bytes"]), point(0.8, reference["bytes"])):
        result = run_cli(root, hook={"target": "write", "bytes": limit, "action": "enospc"})
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert "disk full" in lines[0]
        assert temp_files(root) == []
        assert_consistent_after_kill(root, reference)
    result = run_cli(root)
    assert result.returncode == 0, result.stderr
    assert tree(root / "site") == reference["site"]


def test_other_os_errors_are_one_line_not_a_traceback(tmp_path):
    root = sample_blog(tmp_path)
    (root / ".genimg").write_text("a file where the cache folder goes")
    result = genimg("build", "-C", root, "--preview", "-q")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert ".genimg" in lines[0]


def test_reference_site_has_no_blog_path_in_it(tmp_path, reference):
    """The byte-for-byte comparisons above assume the site does not depend on where the
    blog folder is; prove it once."""
    root = sample_blog(tmp_path, "elsewhere")
    build_site(root, PREVIEW)
    assert tree(root / "site") == reference["site"]
    assert not any(str(tmp_path).encode() in data for data in reference["site"].values())
