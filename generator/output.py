"""The output folder: genimg owns it, walks it once, writes what changed, prunes the rest.

A folder is genimg's only when it holds the ``SITE_MARKER`` file (written first by
every build), so a folder without it (hand-written docs/, say) is never pruned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from .atomic import is_temp_file, link_atomic, write_if_changed
from .errors import GenimgError

PREVIEW_MARKER = ".genimg-preview"
PREVIEW_MARKER_TEXT = b"This site was built with --preview: do not publish.\n"
SITE_MARKER = ".genimg-site"
SITE_MARKER_TEXT = b"Built by genimg; files here that a build did not write are removed.\n"


#: GitHub Pages' published limits: a site of at most 1 GB, files of at most 100 MB.
PAGES_SITE_LIMIT = 1_000_000_000
PAGES_FILE_LIMIT = 100_000_000
#: Warn from this share of a limit on: before a publish fails on GitHub's side.
WARN_SHARE = 0.8


def site_size(out: Path) -> tuple[int, int, str]:
    """(total bytes, largest file's bytes, its site path) of the output folder."""
    total = largest = 0
    name = ""
    files, _ = walk(out)
    for rel, entry in files.items():
        size = entry.stat(follow_symlinks=False).st_size
        total += size
        if size > largest:
            largest, name = size, rel
    return total, largest, name


def size_warnings(total: int, largest: int, name: str) -> list[str]:
    """What to say when the site nears GitHub Pages' limits."""
    warnings = []
    if total >= WARN_SHARE * PAGES_SITE_LIMIT:
        warnings.append(f"the site is {total / 1e6:.0f} MB; GitHub Pages publishes at most "
                        "1 GB: set 'originals: webp' (lossless, smaller) or 'originals: none' "
                        "in genimg.yaml")
    if largest >= WARN_SHARE * PAGES_FILE_LIMIT:
        warnings.append(f"{name} is {largest / 1e6:.0f} MB; GitHub Pages takes files of at "
                        "most 100 MB")
    return warnings


def walk(out: Path) -> tuple[dict[str, os.DirEntry], list[str]]:
    """Every file below ``out`` (site path -> entry, not stat-ed) and every folder, in one
    ``scandir`` walk that the image writer, page skipping and stale removal share."""
    files: dict[str, os.DirEntry] = {}
    folders: list[str] = []
    stack = [("", str(out))]
    while stack:
        rel, path = stack.pop()
        try:
            listing = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(rel + entry.name)
                    stack.append((rel + entry.name + "/", entry.path))
                else:
                    files[rel + entry.name] = entry
    return files, folders


def check_owned(out: Path, present: Mapping[str, os.DirEntry], config_file: Path) -> None:
    """Refuse to build into a folder of files genimg did not write (no ``SITE_MARKER``);
    a killed build's temp files don't count as someone else's."""
    if SITE_MARKER not in present and any(
            not is_temp_file(name.rpartition("/")[2]) for name in present):
        raise GenimgError(
            f"{out} holds files genimg did not write (no {SITE_MARKER} mark); genimg removes "
            "stale files there, so it will not build into it. Empty it, or set another "
            "output_dir", config_file)


def mark_owned(out: Path) -> None:
    """The mark goes first: a build killed after it wrote anything still owns the folder."""
    write_if_changed(out / SITE_MARKER, SITE_MARKER_TEXT, durable=False)


def write_site(out: Path, files: dict[str, bytes | Path], also_keep: set[str],
               present: Mapping[str, os.DirEntry], folders: list[str]) -> tuple[int, int]:
    """Write changed files, delete files no longer produced; returns (written, removed)."""
    written = 0
    for rel, data in files.items():
        if isinstance(data, Path):
            written += _copy(data, out / rel, present.get(rel))
        else:
            written += write_if_changed(out / rel, data, durable=False)
    return written, _remove_stale(out, present, folders, set(files) | also_keep)


def link_files(out: Path, files: Mapping[str, Path]) -> int:
    """Hard-link derived files (site path -> file in the cache's ``derived/``) into the
    site; returns how many."""
    for rel, source in files.items():
        link_atomic(source, out / rel)
    return len(files)


def _copy(source: Path, dest: Path, entry: os.DirEntry | None) -> int:
    """Copies (theme statics, user pictures) keep their source's mtime: size and mtime
    both equal means unchanged, even for a same-size edit of style.css."""
    stat = source.stat()
    try:
        same = entry is not None and (entry.stat().st_size, entry.stat().st_mtime_ns) \
            == (stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        same = False
    if same:
        return 0
    written = write_if_changed(dest, source.read_bytes(), durable=False)
    os.utime(dest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return written


def _remove_stale(out: Path, present: Mapping[str, os.DirEntry], folders: list[str],
                  keep: set[str]) -> int:
    removed = 0
    for rel, entry in present.items():
        if rel not in keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    for rel in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            (out / rel).rmdir()  # only if empty
    return removed
