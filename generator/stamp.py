"""The build stamp: whether anything a build reads or writes changed since the last
complete build, told by ``stat`` alone, so a rebuild with nothing to do neither reads
nor plans a single post (issue 20: a no-change rebuild of 10,000 posts under 2 s).

``state/stamp.json`` holds, for the options and code it was built with:

- inputs: ``genimg.yaml``, every post, every theme file (size, mtime, ctime, inode),
  stat-ed *before* the build read them, so an edit made while a build runs is seen by
  the next one. A file whose mtime lies within ``RACY_NS`` of that moment could hide
  a second write in the same clock tick (git's "racily clean" files): it is recorded
  as never matching;
- what planning resolved: each model, LoRA, VAE, upscaler, embedding and face
  restorer name with its fingerprint, and each ``from:`` file with its hash. They are
  resolved again to compare (``ModelResolver.resolves_as``; file hashes are
  remembered by stat, so this is cheap), never trusted by name;
- outputs: the mtime of every folder of the site and of the cache's ``objects/``
  (every write of a build is a rename into a folder, every removal an unlink: both
  change that folder's mtime, so a build that was interrupted or failed halfway
  leaves folders that no longer match), and the stat of each site file a build
  compares by content (pages, static files, copies), so an edit of one in place is
  repaired as a full build would repair it. Git's rule for outputs: a probe file is
  made (and removed) just before they are stat-ed, and what has an mtime no older than the
  probe's (changed within the filesystem's last clock tick) is recorded as never
  matching; the next build, finding it settled, saves it as it is.

Like all build state it is a hint: missing, damaged or written for other options or
other code, it only means a full build.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import TEMP_SUFFIX, file_signature
from .config import SiteConfig
from .content import find_posts
from .models import ModelResolver
from .pages import theme_dirs
from .plan import Plan
from .state import STATE_DIR, code_digest, read_state, write_state

#: Files changed this close to a scan may have changed twice within one mtime tick
#: (ext4's coarse clock ticks every few ms; FAT's every 2 s).
RACY_NS = 2_000_000_000
#: What a stamp must have been made with: libraries that shape the pages, by version...
_LIBRARIES = ("jinja2", "markdown", "yaml", "PIL")
#: ...and Pagefind's packages, whose code names no version: by their files' stat (an
#: upgrade rewrites them). Never ``importlib.metadata``, which alone took a tenth of a
#: one-post edit to import.
_SEARCH_PACKAGES = ("pagefind", "pagefind_bin", "pagefind_bin_extended")


def _versions() -> list[Any]:
    found: list[Any] = [importlib.import_module(name).__version__ for name in _LIBRARIES]
    for name in _SEARCH_PACKAGES:
        spec = importlib.util.find_spec(name)
        found.append(file_signature(spec.origin) if spec and spec.origin else None)
    return found


@dataclass
class Inputs:
    """What a build is about to read, stat-ed before it reads it."""

    files: dict[str, list[int] | None]  # genimg.yaml, posts and theme files
    scanned_ns: int

    def recorded(self) -> dict[str, Any]:
        """As saved: a racily clean file as 0, which no later scan equals."""
        horizon = self.scanned_ns - RACY_NS
        return {path: 0 if sig is None or sig[1] >= horizon else sig
                for path, sig in self.files.items()}


def scan_inputs(config: SiteConfig) -> Inputs:
    scanned_ns = time.time_ns()
    paths = [str(config.file)] if config.file else []
    if config.posts_dir.is_dir():
        paths += map(str, find_posts(config.posts_dir))
    for theme in theme_dirs(config):
        for folder, _, names in os.walk(theme):
            paths += (os.path.join(folder, name) for name in names)
    return Inputs({path: file_signature(path) for path in paths}, scanned_ns)


def _settled(outputs: dict[str, Any], horizon: int) -> dict[str, Any]:
    """Outputs as saved: a folder or file changed at ``horizon`` or later as 0, which
    no later stat equals."""

    def settled(value: Any) -> Any:
        if isinstance(value, list):  # a file's signature: [size, mtime, ctime, inode]
            return value if value[1] < horizon else 0
        return value if value is None or value < horizon else 0  # None: missing, still

    return {part: {name: settled(value) for name, value in values.items()}
            for part, values in outputs.items()}


@dataclass
class StampCheck:
    """The last complete build's stamp, and the posts whose stat differs from it."""

    stamp: dict[str, Any]
    posts: list[str]  # changed posts (as scanned): edited, or only touched
    report: dict[str, Any]  # the last build's (posts, pictures)
    signature: list[int] | None  # of the stamp's file, as read


class BuildStamp:
    """The last complete build's stamp, for these options (``preview``, ``drafts``)."""

    def __init__(self, config: SiteConfig, preview: bool, drafts: bool):
        self.config = config
        self.preview = preview
        self.path = config.cache_dir / STATE_DIR / "stamp.json"
        self.context = f"{code_digest()} {_versions()} preview={preview} drafts={drafts}"

    def check(self, inputs: Inputs) -> StampCheck | None:
        """What changed since the last complete build, if only posts did (their content
        or just their stat); None if anything else did, or there is no stamp to say."""
        signature = file_signature(self.path)
        stamp = read_state(self.path, self.context)
        try:
            if not stamp or stamp["inputs"].keys() != inputs.files.keys():
                return None
            changed = [path for path, sig in inputs.files.items()
                       if stamp["inputs"][path] != sig]
            listed = stamp["listing"]
            if (any(path not in listed for path in changed)
                    or stamp["outputs"] != self._outputs(stamp["outputs"]["folders"],
                                                         stamp["outputs"]["files"])
                    or not self._resolves_as(stamp["resolved"], stamp["sources"])):
                return None
            report = stamp["report"]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # damaged: a full build
        if not isinstance(report, dict) or not isinstance(listed, dict):
            return None
        return StampCheck(stamp, changed, report, signature)

    def _resolves_as(self, resolved: dict[str, Any], sources: dict[str, str]) -> bool:
        resolver = ModelResolver(self.config, preview=self.preview)
        if not resolver.resolves_as(resolved):
            return False
        try:
            return all(resolver.hasher.hash(Path(path)) == sha for path, sha in sources.items())
        except OSError:
            return False

    def _outputs(self, folders: Iterable[str], files: Iterable[str]) -> dict[str, Any]:
        out, objects = str(self.config.output_dir), self.config.cache_dir / "objects"
        mtimes: dict[str, int | None] = {}
        for folder in folders:  # (strings, not Paths: tens of thousands of them)
            sig = file_signature(os.path.join(out, folder) if folder else out)
            mtimes[folder] = sig[1] if sig else None
        cache: dict[str, int | None] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(objects) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    cache[entry.name] = entry.stat(follow_symlinks=False).st_mtime_ns
        sig = file_signature(str(objects))
        cache[""] = sig[1] if sig else None
        return {"folders": mtimes,
                "files": {rel: file_signature(os.path.join(out, rel)) for rel in files},
                "cache": cache}

    def save(self, inputs: Inputs, resolver: ModelResolver, plan: Plan,
             site_files: Iterable[str], compared: Iterable[str], report: dict[str, Any],
             listing: dict[str, Any], search: bool) -> None:
        """Record a complete build: ``site_files`` are all files it left in the site,
        ``compared`` those of them a build checks by content rather than by name;
        ``listing``: each post's file -> what ``patch`` needs to know of it; ``search``:
        whether the site has a search index."""
        folders = {""}
        for rel in site_files:
            while "/" in rel:
                rel = rel.rpartition("/")[0]
                if rel in folders:
                    break
                folders.add(rel)
        sources = {str(node.file): node.source[len("file:"):] for node in plan.nodes.values()
                   if node.file is not None and node.source}
        self._write({"inputs": inputs.recorded(), "resolved": resolver.resolved(),
                     "sources": sources, "listing": listing, "search": search,
                     "report": report},
                    sorted(folders), sorted(compared))

    def refresh(self, check: StampCheck, inputs: Inputs, listing: dict[str, Any],
                written: Iterable[str]) -> None:
        """Record a build that changed only what ``check`` found (``patch``): the posts
        as now, and the outputs ``check`` found as recorded, but for the site files
        ``written`` and their folders, stat-ed again."""
        horizon = self._horizon()
        outputs = check.stamp["outputs"]
        folders, files = dict(outputs["folders"]), dict(outputs["files"])
        out = str(self.config.output_dir)
        for rel in written:
            files[rel] = file_signature(os.path.join(out, rel))
            folder = rel.rpartition("/")[0]
            sig = file_signature(os.path.join(out, folder) if folder else out)
            folders[folder] = sig[1] if sig else None
        outputs = _settled(dict(outputs, folders=folders, files=files), horizon)
        write_state(self.path, self.context, dict(check.stamp, inputs=inputs.recorded(),
                                                  listing=listing, outputs=outputs))

    def _horizon(self) -> int:
        """The filesystem's own clock: a write after an output's stat, in the same tick
        as its last change, would leave its mtime as it was."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=".stamp.",
                                         suffix=TEMP_SUFFIX) as probe:  # a temp file: swept
            return os.fstat(probe.fileno()).st_mtime_ns

    def _write(self, stamp: dict[str, Any], folders: Iterable[str], files: Iterable[str]
               ) -> None:
        horizon = self._horizon()
        stamp["outputs"] = _settled(self._outputs(folders, files), horizon)
        if read_state(self.path, self.context) != stamp:
            write_state(self.path, self.context, stamp)
