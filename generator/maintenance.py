"""``genimg cache ls | verify | gc``: look after the committed picture cache.

"Used" means the key is a node of the plan of the posts as they are now, drafts
included (a draft's pictures are still wanted). Preview entries are checked against
the preview plan and real ones against the real plan, because the two plans key the
same spec differently (the model fingerprint differs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import is_temp_file, temp_files
from .build import BuildOptions, LoadedSite, load_site
from .cache import Cache, CorruptEntry
from .config import load_config
from .errors import GenimgError


@dataclass(frozen=True)
class EntryInfo:
    """One cache entry as ``cache ls`` shows it."""

    key: str
    size: int
    mode: str
    preview: bool
    prompt: str
    used_at: tuple[str, ...]  # "posts/x.md:12" of every picture that needs it
    rendered_at: str  # where it was first rendered (from the sidecar)
    imported: bool = False  # brought in by `genimg import`, not rendered

    @property
    def used(self) -> bool:
        return bool(self.used_at)


def _users(site: LoadedSite) -> dict[str, list[str]]:
    """Node key -> locations of the shown pictures that need it (itself or an ancestor)."""
    users: dict[str, list[str]] = {key: [] for key in site.plan.nodes}
    for location, key in site.plan.shown_key.items():
        where = f"{location.file}:{location.line}"
        node_key: str | None = key
        while node_key and where not in users[node_key]:
            users[node_key].append(where)
            node_key = site.plan.nodes[node_key].parent
    return users


def used_keys(root: Path) -> dict[bool, dict[str, list[str]]]:
    """For preview=False and preview=True: every planned key -> where it is used."""
    return {preview: _users(load_site(root, BuildOptions(preview=preview, drafts=True)))
            for preview in (False, True)}


def _info(key: str, meta: dict[str, Any], users: dict[bool, dict[str, list[str]]]) -> EntryInfo:
    preview = bool(meta.get("preview"))
    spec = meta.get("spec") or {}
    shown = meta.get("shown") or {}
    mode = str(spec.get("mode") or shown.get("mode") or "?")
    prompt = str(shown.get("prompt") or spec.get("prompt") or "")
    return EntryInfo(key, int(meta.get("png_size", 0)), mode, preview, prompt,
                     tuple(users[preview].get(key, ())), str(meta.get("location", "")),
                     isinstance(meta.get("imported"), dict))


def list_entries(root: Path) -> list[EntryInfo]:
    """Every complete entry of the blog's cache, with where it is used."""
    users = used_keys(root)  # first: a broken post fails here, before anything is listed
    cache = Cache(_cache_dir(root))
    entries = []
    stored = cache.keys()  # a generator of sidecar names, not a dict
    for key in stored:
        meta = cache.meta(key)
        if meta is None:  # PNG missing or truncated: still listed, so verify/gc find it
            meta = {"spec": {"mode": "incomplete"}}
        entries.append(_info(key, meta, users))
    return entries


@dataclass
class VerifyReport:
    checked: int = 0
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    discarded: int = 0


def verify_cache(root: Path, discard: bool = False) -> VerifyReport:
    """Re-hash every entry; ``discard`` removes corrupt ones so a build renders them again."""
    cache = Cache(_cache_dir(root))
    report = VerifyReport()
    stored = cache.keys()
    for key in stored:
        report.checked += 1
        try:
            cache.verify(key)
        except CorruptEntry as exc:
            report.corrupt.append((key, exc.message))
    if discard and report.corrupt:
        with cache.lock():
            for key, _ in report.corrupt:
                cache.discard(key)
                report.discarded += 1
    return report


@dataclass
class GcReport:
    entries: list[EntryInfo] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # every file removed (or to remove)
    bytes: int = 0
    dry_run: bool = False


def _derived_key(path: Path) -> str:
    return path.name.split("-", 1)[0]


def _stray_files(cache: Cache) -> Iterator[Path]:
    """Temp files of killed writes, and PNGs whose sidecar never got written."""
    yield from temp_files(cache.objects)
    if cache.objects.is_dir():
        for path in cache.objects.glob("*/*.png"):
            if not is_temp_file(path.name) and not path.with_suffix(".json").exists():
                yield path


def collect_garbage(root: Path, dry_run: bool = False) -> GcReport:
    """Remove entries no post uses, their thumbnails, and leftovers of killed writes."""
    cache_dir = _cache_dir(root)
    cache = Cache(cache_dir)
    report = GcReport(dry_run=dry_run)
    with cache.lock():  # a running build may be writing temp files and entries
        entries = list_entries(root)
        if any(not e.used and not e.preview for e in entries):
            _refuse_if_keys_are_unknown(root)
        doomed = {e.key for e in entries if not e.used}
        keep = {e.key for e in entries if e.used}
        report.entries = [e for e in entries if not e.used]
        for key in sorted(doomed):
            report.files += [p for p in cache.paths(key) if p.exists()]
        report.files += list(_stray_files(cache))
        derived = cache.dir / "derived"
        if derived.is_dir():
            report.files += sorted(p for p in derived.iterdir()
                                   if p.is_file() and _derived_key(p) not in keep)
        for path in report.files:
            with contextlib.suppress(OSError):
                report.bytes += path.stat().st_size
        if not dry_run:
            for key in doomed:
                cache.discard(key)
            for path in report.files:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            if cache.objects.is_dir():
                for shard in cache.objects.iterdir():
                    with contextlib.suppress(OSError):
                        shard.rmdir()  # only if empty
    return report


def _refuse_if_keys_are_unknown(root: Path) -> None:
    """A model absent here and never recorded gives keys no cached picture can have:
    everything it rendered would look unused. Refuse rather than delete GPU work."""
    site = load_site(root, BuildOptions(drafts=True))
    unknown = sorted({node.model.name for node in site.plan.nodes.values()
                      if node.model and node.model.fingerprint.startswith("unavailable:")})
    if unknown:
        raise GenimgError(
            f"cannot tell which cached pictures model(s) {', '.join(unknown)} made: not on "
            "this machine and no fingerprint recorded in .genimg/fingerprints.json; "
            "gc refuses (run it where the model is)")


def _cache_dir(root: Path) -> Path:
    return load_config(root).cache_dir


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
