"""Issue 20: the site's PNGs are copied in the kernel, not read again when the cache
checked them already, and the site and the cache never share fate."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

import generator.atomic
import generator.cache
from generator.atomic import copy_atomic, link_atomic
from generator.build import BuildOptions, build_site, load_site
from generator.cache import Cache
from tests.helpers import MakeBlog

PREVIEW = BuildOptions(preview=True)
POST = """\
    ---
    title: Copies
    date: 2022-10-01
    ---

    ```gallery
    - prompt: a house
      seed: 1
      width: 64
      height: 64
    - prompt: a tree
      seed: 2
      width: 64
      height: 64
    ```
    """


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_copy_atomic_makes_a_file_of_its_own(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    source.write_bytes(os.urandom(300_000))
    dest = tmp_path / "site" / "b.png"
    copy_atomic(source, dest)
    assert dest.read_bytes() == source.read_bytes()
    assert os.stat(dest).st_ino != os.stat(source).st_ino and os.stat(source).st_nlink == 1
    with open(dest, "r+b") as fh:  # edited in place, as a PNG optimiser may
        fh.write(b"changed")
    assert source.read_bytes()[:7] != b"changed"
    assert [p.name for p in dest.parent.iterdir()] == ["b.png"]  # no temp file left


@pytest.mark.parametrize("failure", [OSError(errno.EXDEV, "cross-device"), AttributeError()])
def test_copy_atomic_copies_itself_where_the_kernel_cannot(tmp_path: Path, monkeypatch,
                                                           failure: Exception) -> None:
    def refuse(*args: object) -> int:
        raise failure

    monkeypatch.setattr(generator.atomic.os, "copy_file_range", refuse, raising=False)
    source = tmp_path / "a.png"
    source.write_bytes(os.urandom(3_000_000))
    copy_atomic(source, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes() == source.read_bytes()


def test_link_atomic_links_replaces_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    source, other = tmp_path / "a.webp", tmp_path / "b.webp"
    source.write_bytes(b"new")
    other.write_bytes(b"old")
    dest = tmp_path / "site" / "images" / "a.webp"
    link_atomic(source, dest)  # its folder made on the way
    assert os.path.samefile(source, dest)
    link_atomic(source, dest)  # already that file: nothing to do, no temp file left
    link_atomic(other, dest)  # another file there: replaced
    assert dest.read_bytes() == b"old" and os.path.samefile(other, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.webp"]

    def refuse(*args: object) -> None:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(generator.atomic.os, "link", refuse)
    link_atomic(source, tmp_path / "copy.webp")  # no link across filesystems: a copy
    assert (tmp_path / "copy.webp").read_bytes() == b"new"


def test_site_and_cache_never_share_fate(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-10-01-copies.md": POST})
    build_site(root, PREVIEW)
    cache = Cache(root / ".genimg")
    site = load_site(root, PREVIEW)
    before = tree(root / "site")
    for key in set(site.plan.shown_key.values()):
        png = cache.paths(key)[0]
        shown = next((root / "site" / "images").glob(f"*{key[:8]}.png"))
        assert os.stat(png).st_ino != os.stat(shown).st_ino and os.stat(png).st_nlink == 1
        with open(shown, "r+b") as fh:  # a writer edits the site's copy in place
            fh.write(b"\0" * 64)
        cache.verify(key)  # the cache entry is whole
    shutil.rmtree(root / "site")
    build_site(root, PREVIEW)
    assert tree(root / "site") == before
    assert all(cache.paths(k)[0].is_file() for k in site.plan.shown_key.values())


def test_a_verified_entry_is_copied_without_hashing_it_again(make_blog: MakeBlog,
                                                             monkeypatch) -> None:
    monkeypatch.setattr(generator.cache, "RACY_NS", 0)  # no waiting for the clock here
    root = make_blog({"2022-10-01-copies.md": POST})
    build_site(root, PREVIEW)
    hashed: list[str] = []
    verified = Cache._verified
    monkeypatch.setattr(Cache, "_verified",
                        lambda self, key: hashed.append(key) or verified(self, key))
    shutil.rmtree(root / "site")
    build_site(root, PREVIEW)
    assert hashed == []  # both PNGs copied as they were put, unchanged since
    reference = tree(root / "site")

    key = load_site(root, PREVIEW).plan.shown_key.popitem()[1]
    png = Cache(root / ".genimg").paths(key)[0]
    st = os.stat(png)
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF  # same size, and the mtime put back: only the ctime tells
    png.write_bytes(bytes(data))
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.rmtree(root / "site")
    report = build_site(root, PREVIEW)
    assert hashed == [key] and report.repaired == [key] and report.rendered == 1
    assert tree(root / "site") == reference
