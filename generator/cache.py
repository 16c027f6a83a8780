"""Content-addressed picture store under ``<blog>/.genimg/cache``.

Each entry is ``<key>.png`` plus a ``<key>.json`` sidecar (spec, infotext, PNG hash,
versions, render time). The PNG is written first and the sidecar last, each by an
atomic rename, so an entry exists exactly when its sidecar does; a build killed at
any instant leaves no half entry. Reads that hand bytes on verify the PNG hash.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .errors import GenimgError


class CorruptEntry(GenimgError):
    """A cache entry whose bytes no longer match its recorded hash."""


@dataclass(frozen=True)
class Entry:
    key: str
    png: Path
    meta: dict[str, Any]


class Cache:
    """The store; safe against kills, and against a second build by ``lock()``."""

    def __init__(self, cache_dir: Path):
        self.dir = cache_dir
        self.objects = cache_dir / "objects"

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.objects / key[:2]
        return folder / f"{key}.png", folder / f"{key}.json"

    def meta(self, key: str) -> dict[str, Any] | None:
        """The sidecar of a complete entry, or None (cheap: no PNG hashing)."""
        png, side = self._paths(key)
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
            if png.stat().st_size != meta["png_size"]:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return meta

    def has(self, key: str) -> bool:
        return self.meta(key) is not None

    def get(self, key: str) -> Entry:
        """A verified entry; raises CorruptEntry if the PNG does not match its hash."""
        png, _ = self._paths(key)
        meta = self.meta(key)
        if meta is None:
            raise CorruptEntry(f"cache entry {key[:12]} is missing or incomplete", png)
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
        if digest != meta.get("png_sha256"):
            raise CorruptEntry(f"cache entry {key[:12]} is corrupt (hash mismatch)", png)
        return Entry(key, png, meta)

    def read_bytes(self, key: str) -> bytes:
        """The PNG bytes of an entry, verified in the same read."""
        png, _ = self._paths(key)
        meta = self.meta(key)
        if meta is None:
            raise CorruptEntry(f"cache entry {key[:12]} is missing or incomplete", png)
        data = png.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("png_sha256"):
            raise CorruptEntry(f"cache entry {key[:12]} is corrupt (hash mismatch)", png)
        return data

    def put(self, key: str, png_data: bytes, meta: dict[str, Any]) -> Entry:
        """Store atomically: PNG first, sidecar (the commit mark) last."""
        png, side = self._paths(key)
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
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise GenimgError(
                    "disk full while saving a picture; everything saved before is intact",
                    png,
                ) from None
            raise
        return Entry(key, png, record)

    def discard(self, key: str) -> None:
        """Remove an entry (sidecar first, so it never looks complete half-way)."""
        png, side = self._paths(key)
        for path in (side, png):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def keys(self) -> Iterator[str]:
        if not self.objects.is_dir():
            return
        for side in sorted(self.objects.glob("*/*.json")):
            yield side.stem

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
                            "wait for it to finish or stop it",
                            path,
                        ) from None
                    time.sleep(0.2)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing drops the flock
