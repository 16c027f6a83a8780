"""Content-addressed picture store under ``<blog>/.genimg/objects/<key[:2]>/``.

Each entry is ``<key>.png`` plus a ``<key>.json`` sidecar (spec, infotext, PNG hash,
versions, render time). The PNG is written first and the sidecar last, each by an
atomic rename, so an entry exists exactly when its sidecar does; a build killed at
any instant leaves no half entry, at most a ``.*.tmp`` file, which is never taken
for an entry and is swept away by the next holder of the lock. Reads that hand
bytes on verify the PNG hash.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import (
    TEMP_SUFFIX,
    DiskFull,
    file_signature,
    read_json_dict,
    remove_temp_files,
    write_atomic,
)
from .errors import GenimgError

#: What a sidecar must hold to make its entry usable.
_SIDECAR_FIELDS: dict[str, type | tuple[type, ...]] = {
    "png_sha256": str, "png_size": int, "width": int, "height": int,
}


class CorruptEntry(GenimgError):
    """A cache entry whose bytes no longer match its recorded hash."""


#: Machine-local index of sidecars (see the module docstring); never part of an entry.
INDEX_NAME = "state/entries.json"
#: Machine-local: each PNG's (size, mtime, ctime, inode) when its hash was last checked.
VERIFIED_NAME = "state/verified.json"
#: A PNG changed less than this long before its hash was checked is hashed again next
#: time (git's "racily clean" rule): file times tick coarsely, so a second write within
#: the same tick could leave every field of the stamp as it was.
RACY_NS = 2_000_000_000
#: What genimg writes in its cache folder, which may be shared with other projects: only
#: these are swept of the temp files a killed build left.
OWN_FOLDERS = ("objects", "derived", "state")
OWN_FILES = ("hashes.json", "fingerprints.json")


@dataclass(frozen=True)
class Brief:
    """What a build needs of an entry: its size and whether it is a preview picture."""

    width: int
    height: int
    png_size: int
    preview: bool | None  # None: the sidecar does not say


class _LocalTable:
    """A machine-local JSON map under the cache's ``state/``: read on first use (once, even
    from the threads that verify), written back by ``save`` only if a row changed. None
    there yet, or damaged: it is learnt again."""

    def __init__(self, path: Path):
        self.path = path
        self._rows: dict[str, list] | None = None
        self._dirty = False
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, list]:
        with self._lock:
            if self._rows is None:
                self._rows = read_json_dict(self.path)
            return self._rows

    def get(self, key: str) -> list | None:
        return self._loaded().get(key)

    def put(self, key: str, row: list | None) -> None:
        """Set ``key``'s row (None: forget it)."""
        rows = self._loaded()
        if rows.get(key) != row:
            if row is None:
                rows.pop(key, None)
            else:
                rows[key] = row
            self._dirty = True

    def save(self) -> None:
        if self._dirty and self._rows is not None:
            data = json.dumps(self._rows, separators=(",", ":")).encode()
            write_atomic(self.path, data, durable=False)
            self._dirty = False


class Cache:
    """The store; safe against kills, and against a second build by ``lock()``."""

    def __init__(self, cache_dir: Path):
        self.dir = cache_dir
        self.objects = cache_dir / "objects"
        self._objects = str(self.objects)
        self._briefs: dict[str, Brief | None] = {}  # looked up by this instance
        self._checked: set[str] = set()  # PNG hash verified by this instance
        # key -> [sidecar stamp (3), Brief (4)]; key -> PNG stamp when its hash was checked
        self._index = _LocalTable(cache_dir / INDEX_NAME)
        self._stamps = _LocalTable(cache_dir / VERIFIED_NAME)

    def paths(self, key: str) -> tuple[Path, Path]:
        folder = self.objects / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def meta(self, key: str) -> dict[str, Any] | None:
        """The sidecar of an entry, or None if there is none (cheap: no PNG hashing)."""
        png, side = self.paths(key)
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or any(
                not isinstance(meta.get(name), typ) or isinstance(meta.get(name), bool)
                for name, typ in _SIDECAR_FIELDS.items()
            ):
                return None
            png.stat()  # a sidecar without its PNG is no entry
        except (OSError, ValueError):  # missing, unreadable, or not JSON/UTF-8
            return None
        # A PNG of the wrong size or bytes is caught by the hash check of get/read_bytes,
        # so a truncated entry is reported as corrupt and repaired, never copied.
        return meta

    def has(self, key: str) -> bool:
        return self.brief(key) is not None

    def brief(self, key: str) -> Brief | None:
        """``Brief`` of an entry, or None if ``meta`` would say there is none.

        Looked up once per key and instance (a build holds the lock: nothing else
        changes entries meanwhile); the sidecar is parsed only when its stat differs
        from the one in the index.
        """
        if key in self._briefs:
            return self._briefs[key]
        base = f"{self._objects}/{key[:2]}/{key}"  # str, not Path: 10,000 keys per build
        try:
            st = os.stat(base + ".json")
            os.stat(base + ".png")
        except OSError:
            self._briefs[key] = None
            self._remember(key, [], None)
            return None
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        row = self._index.get(key)
        brief = _brief_of(row) if isinstance(row, list) and row[:3] == stamp else None
        if brief is None:
            meta = self.meta(key)
            brief = None if meta is None else Brief(
                meta["width"], meta["height"], meta["png_size"], _preview(meta))
            self._remember(key, stamp, brief)
        self._briefs[key] = brief
        return brief

    def _remember(self, key: str, stamp: list[int], brief: Brief | None) -> None:
        row = [*stamp, brief.width, brief.height, brief.png_size, brief.preview] if brief else None
        self._index.put(key, row)

    def save_index(self) -> None:
        """Persist what ``brief`` and ``verify`` learnt (call while holding ``lock()``)."""
        self._index.save()
        self._stamps.save()

    def verify(self, key: str, again: bool = True) -> None:
        """Raise CorruptEntry if the entry is incomplete or its PNG does not match its hash.

        ``again=False`` trusts an earlier check while the PNG's size, mtime, ctime and
        inode are all those it was hashed with: any write to the file, a rename over it,
        even a ``touch`` back to the old mtime changes its ctime. (``genimg cache verify``
        hashes every entry again, for what no stat shows: a disk's own bit rot.)
        """
        if key in self._checked:
            return
        if not again and self.has(key):
            stamp = file_signature(self.paths(key)[0])
            if stamp is not None and self._stamps.get(key) == stamp:
                self._checked.add(key)
                return
        self._verified(key)

    def _stamped(self, key: str, stamp: list[int] | None) -> None:
        if stamp is not None and time.time_ns() - stamp[2] < RACY_NS:
            stamp = None  # changed just now: a write in the same clock tick would not show
        self._stamps.put(key, stamp)

    def read_bytes(self, key: str) -> bytes:
        """The PNG bytes of an entry, verified in the same read.

        An entry this instance has verified already is not hashed again: the build
        that holds the lock is the only writer, so it cannot have changed meanwhile.
        """
        if key in self._checked:
            with contextlib.suppress(OSError):
                return self.paths(key)[0].read_bytes()
        return self._verified(key)[1]

    def _verified(self, key: str) -> tuple[dict[str, Any], bytes]:
        png, _ = self.paths(key)
        meta = self.meta(key)
        if meta is None:
            raise CorruptEntry(f"cache entry {key[:12]} is missing or incomplete", png)
        stamp = file_signature(png)  # before reading: a change while read is seen next time
        try:
            data = png.read_bytes()
        except OSError as exc:  # not corruption: the entry must not be discarded for it
            raise GenimgError(f"cache entry {key[:12]} cannot be read ({exc.strerror})",
                              png) from None
        if hashlib.sha256(data).hexdigest() != meta["png_sha256"]:
            raise CorruptEntry(f"cache entry {key[:12]} is corrupt (hash mismatch)", png)
        self._checked.add(key)
        self._stamped(key, stamp)
        return meta, data

    def put(self, key: str, png_data: bytes, meta: dict[str, Any]) -> None:
        """Store atomically: PNG first, sidecar (the commit mark) last."""
        png, side = self.paths(key)
        record = {
            **meta,
            "key": key,
            "png_sha256": hashlib.sha256(png_data).hexdigest(),
            "png_size": len(png_data),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            write_atomic(png, png_data)
            write_atomic(side, json.dumps(record, indent=1, ensure_ascii=False).encode())
        except DiskFull:
            raise DiskFull(
                "disk full while saving a picture to the cache; every picture saved before "
                "is intact. Free some space and build again",
                png,
            ) from None
        self._checked.add(key)
        self._stamped(key, file_signature(png))
        brief = Brief(int(record["width"]), int(record["height"]), len(png_data),
                      _preview(record))
        self._briefs[key] = brief
        st = os.stat(side)
        self._remember(key, [st.st_size, st.st_mtime_ns, st.st_ino], brief)

    def discard(self, key: str) -> None:
        """Remove an entry (sidecar first, so it never looks complete half-way)."""
        png, side = self.paths(key)
        for path in (side, png):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._briefs[key] = None
        self._checked.discard(key)
        self._remember(key, [], None)
        self._stamped(key, None)

    def keys(self) -> Iterator[str]:
        """Keys of the entries whose sidecar is there (``has()`` tells if complete)."""
        if not self.objects.is_dir():
            return
        for side in sorted(self.objects.glob("*/*.json")):
            if not side.name.startswith("."):  # temp files of a killed write
                yield side.stem

    def remove_temp_files(self) -> int:
        """Sweep the temp files killed writers left in genimg's own folders and files
        (``OWN_FOLDERS``, ``OWN_FILES``); call only while holding ``lock()``."""
        removed = sum(remove_temp_files(self.dir / folder) for folder in OWN_FOLDERS)
        for name in OWN_FILES:
            for path in self.dir.glob(f".{name}.*{TEMP_SUFFIX}"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[None]:
        """Hold the blog's build lock; a second build waits ``wait`` s, then fails clearly."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                        raise GenimgError(
                            f"another genimg build is running on this blog (pid {holder}); "
                            "wait for it to finish or stop it, or build with --wait SECONDS",
                            path,
                        ) from None
                    time.sleep(0.2)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing drops the flock


def _preview(meta: dict[str, Any]) -> bool | None:
    value = meta.get("preview")
    return None if value is None else bool(value)


def _brief_of(row: list) -> Brief | None:
    """The ``Brief`` in an index row, or None if the row is malformed."""
    if (len(row) != 7 or type(row[3]) is not int or type(row[4]) is not int
            or type(row[5]) is not int or not (row[6] is None or type(row[6]) is bool)):
        return None
    return Brief(row[3], row[4], row[5], row[6])
