"""Atomic file writes: a reader sees the old bytes or the new, never half of them."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import GenimgError

#: Temp files are ``.<name>.<random>.tmp`` beside their target: never taken for real files.
TEMP_SUFFIX = ".tmp"

class DiskFull(GenimgError):
    """No space left (or quota exceeded) while writing: nothing half-written was kept."""


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename over ``path``.

    A crash at any instant leaves ``path`` as it was or complete, and at worst a
    ``.*.tmp`` file (see ``TEMP_SUFFIX``); any error removes the temp file. The file
    gets the usual ``0o666 & ~umask`` mode, not ``mkstemp``'s private ``0o600``.
    A full disk raises ``DiskFull`` naming ``path``.

    ``durable=False`` skips the fsync: the rename still makes the write atomic for a
    killed process, only a power cut may lose it. For files that are rebuilt from the
    cache anyway (``site/``, thumbnails, build state), where thousands of fsyncs made
    a cold build several times slower.
    """
    with _replacing(path) as fd:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)


def copy_atomic(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` as ``write_atomic`` writes (temp file, rename; no fsync),
    without reading it into Python: ``os.copy_file_range`` copies in the kernel, and on a
    filesystem that shares blocks (Btrfs, XFS, bcachefs) makes a reflink, a copy-on-write
    clone that costs no data. Either way ``path`` is its own file: writing or deleting it
    never changes ``source`` (a hard link would). ``shutil.copyfileobj`` where the kernel
    cannot (another filesystem on an old kernel, no such call)."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _replacing(path) as fd:
            _copy_fd(src, fd, os.fstat(src).st_size)
    finally:
        os.close(src)


def link_atomic(src: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to ``src``, atomically; a copy where links cannot be.

    A link appears whole, so a missing ``dest`` is linked at once (its folder made only
    when missing); an existing one is replaced through a temp link and a rename, since
    a link cannot be made over a file."""
    try:
        if _link_or_copy(src, dest):
            return
    except FileNotFoundError:
        if not os.path.exists(src):
            raise
        dest.parent.mkdir(parents=True, exist_ok=True)
        if _link_or_copy(src, dest):
            return
    with contextlib.suppress(FileNotFoundError):
        if os.path.samefile(src, dest):
            return  # a rename between two links of one file does nothing: the temp would stay
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}{TEMP_SUFFIX}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by a killed build that had the same pid and thread id
    os.link(src, tmp)
    try:
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _link_or_copy(src: Path, dest: Path) -> bool:
    """Link (or copy, atomically) ``src`` to a new ``dest``; False if ``dest`` exists."""
    try:
        os.link(src, dest)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    write_atomic(dest, Path(src).read_bytes(), durable=False)
    return True


#: link()'s errors that mean "copy it instead": another filesystem, no links there, too many.
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)


def usable(path: Path) -> bool:
    """A derived file that is there and not empty (written without fsync: a power cut may
    leave it empty)."""
    try:
        return os.stat(path).st_size > 0
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[int]:
    """A temp file beside ``path`` (the usual ``0o666 & ~umask`` mode) to write through
    the yielded descriptor; renamed over ``path`` if the block ends well, else removed.
    ``DiskFull`` names ``path`` when the disk fills."""
    try:
        fd, tmp = _new_temp(path)
    except OSError as exc:
        _raise_if_full(exc, path)
        raise
    try:
        try:
            yield fd
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            _raise_if_full(exc, path)
        raise


def _new_temp(path: Path) -> tuple[int, str]:
    """A new empty temp file beside ``path`` (``.<name>.<random>.tmp``), its folder made if
    missing: created with mode 0o666 so the kernel applies the umask (``mkstemp`` makes
    it 0o600, and changing that cost a call per file; so did making the folder first)."""
    for attempt in range(100):
        tmp = f"{path.parent}/.{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            if attempt:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path))


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _copy_fd(src: int, dest: int, size: int) -> None:
    copied = 0
    try:
        while copied < size:
            done = os.copy_file_range(src, dest, size - copied)
            if done == 0:
                break  # the file shrank meanwhile: what is there was copied
            copied += done
        return
    except (AttributeError, OSError) as exc:  # no such call, or not between these files
        if isinstance(exc, OSError) and exc.errno not in _NO_KERNEL_COPY:
            raise
    os.lseek(src, copied, os.SEEK_SET)
    os.lseek(dest, copied, os.SEEK_SET)
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dest, view):]


#: copy_file_range's errors that mean "copy it yourself", not a failed copy.
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


def _raise_if_full(exc: OSError, path: Path) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFull(
            f"disk full while writing this file ({exc.strerror}); it was left as it was, "
            "and so was everything written before it. Free some space and build again",
            path,
        ) from None


def write_if_changed(path: Path, data: bytes, durable: bool = True) -> bool:
    """Write atomically unless ``path`` already holds exactly ``data``; True if written."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data, durable)
    return True


def remove_temp_files(folder: Path) -> int:
    """Delete the ``.*.tmp`` files a killed writer left below ``folder``; returns how many.

    Only safe while no other process writes there (the cache's build lock is held).
    """
    removed = 0
    for path in temp_files(folder):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def is_temp_file(name: str) -> bool:
    """A temp file of ``write_atomic`` (``.<name>.<random>.tmp``), never a real file."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def temp_files(folder: Path) -> list[Path]:
    """The temp files below ``folder`` (what a killed writer left)."""
    if not folder.is_dir():
        return []
    return [Path(dirpath, name) for dirpath, _dirs, files in os.walk(folder)
            for name in files if is_temp_file(name)]


def file_signature(path: str | Path) -> list[int] | None:
    """What says a file is the one it was: size, mtime, ctime (no call sets it back),
    inode; None if it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def read_json_dict(path: Path) -> dict[str, Any]:
    """A JSON object genimg wrote earlier, or {} when it is missing or damaged (state and
    memo files are rebuilt, never trusted blindly)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
