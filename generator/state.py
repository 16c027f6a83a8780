"""Machine-local build state in ``<cache>/state/``: what earlier builds learnt, so a
build redoes only what changed (issue 8: a no-change rebuild of 1000 posts in < 1 s).

- ``posts/<hash of the post's path>.json``: the post as parsed, with the SHA-256 of
  its file, so an unchanged post is not parsed again (Markdown and gallery YAML were
  most of a build). Content hashes, not mtimes: reading a thousand small files costs
  milliseconds, and an edit can never hide behind a coarse or restored mtime. One file
  per post, so an edit rewrites one small file, not the state of the whole blog.
- ``pages.json``: for each page written, a digest of what it was rendered from and
  the size, mtime and inode it was written with; a page whose digest and file are
  unchanged is neither rendered nor compared.

Every file is a hint, never the truth: JSON (data, never pickle), written atomically
but without fsync (a lost write only costs time), ignored when damaged or written by
other code (``code_digest`` covers genimg's own source).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import markdown
import yaml

import generator

from .atomic import read_json_dict, write_atomic
from .content import GRID_LIMIT, MARKDOWN_EXTENSIONS, Post, load_post
from .errors import Location
from .hashing import digest
from .passes import hires_of
from .specs import Axis, Gallery, Grid, ImageSpec

STATE_DIR = "state"
#: ImageSpec fields stored positionally in ``posts.json``: all but the last two (location
#: and key_lines), in their order (a change of fields changes ``code_digest``).
_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ImageSpec))[:-2]
assert tuple(f.name for f in dataclasses.fields(ImageSpec))[-2:] == ("location", "key_lines")


_CODE_DIGEST: str | None = None


def code_digest() -> str:
    """Digest of genimg's own source and of the libraries that shape parsed posts:
    state written by other code (even an unreleased edit) is never trusted."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        sha = hashlib.sha256(f"{generator.__version__} {markdown.__version__} "
                             f"{yaml.__version__}".encode())
        package = Path(generator.__file__).parent
        for source in sorted(package.glob("*.py")):
            sha.update(source.name.encode() + b"\0" + source.read_bytes())
        _CODE_DIGEST = sha.hexdigest()
    return _CODE_DIGEST


def read_state(path: Path, context: str) -> dict[str, Any]:
    """The ``entries`` of a state file written for ``context``; {} if missing or damaged."""
    data = read_json_dict(path)
    if data.get("context") != context:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def write_state(path: Path, context: str, entries: Mapping[str, Any]) -> None:
    """Write a state file atomically (call while holding the cache lock)."""
    blob = json.dumps({"context": context, "entries": entries}, ensure_ascii=False,
                      separators=(",", ":"))
    write_atomic(path, blob.encode("utf-8", "surrogatepass"), durable=False)


# --------------------------------------------------------------------------- posts


def post_record(post: Post) -> dict[str, Any]:
    """Everything parsing gave, as JSON data (the post's file path apart)."""
    return {
        "title": post.title, "date": post.date.isoformat(), "slug": post.slug,
        "tags": list(post.tags), "draft": post.draft, "summary": post.summary,
        "html": post.html, "extra": post.extra,
        "galleries": [[g.columns, g.caption, g.location.line,
                       [[*(_json_field(s, n) for n in _SPEC_FIELDS), s.location.line,
                         s.location.cell, [list(pair) for pair in s.key_lines]]
                        for s in g.images], _grid_record(g.grid), g.compare]
                      for g in post.galleries],
    }


def post_from_record(path: Path, file: str, record: Mapping[str, Any]) -> Post:
    """The Post that ``post_record`` described; raises (Key/Type/Value)Error if damaged."""
    galleries = []
    for columns, caption, line, rows, grid, compare in record["galleries"]:
        images = tuple(_spec(row, file) for row in rows)
        galleries.append(Gallery(images, columns, caption, Location(file, line),
                                 _grid(grid), compare))
    return Post(source=path, title=record["title"], date=dt.date.fromisoformat(record["date"]),
                slug=record["slug"], tags=tuple(record["tags"]), draft=record["draft"],
                summary=record["summary"], html=record["html"], galleries=galleries,
                extra=record["extra"])


def _spec(row: list, file: str) -> ImageSpec:
    """An ImageSpec from a ``posts.json`` row, validated when it was parsed.

    Filled in directly rather than through the frozen dataclass's ``__init__`` (twenty
    ``object.__setattr__`` calls): ten thousand of them were a tenth of a rebuild.
    """
    if len(row) != len(_SPEC_FIELDS) + 3:
        raise ValueError("damaged image row")
    spec = object.__new__(ImageSpec)
    spec.__dict__.update(zip(_SPEC_FIELDS, row, strict=False))  # the last three: below
    spec.__dict__["location"] = Location(file, row[-3], row[-2])
    spec.__dict__["key_lines"] = tuple(map(tuple, row[-1]))
    spec.__dict__["loras"] = tuple(map(tuple, spec.loras))
    spec.__dict__["hires"] = hires_of(spec.hires)  # stored as its mapping
    return spec


def _grid_record(grid: Grid | None) -> list | None:
    """A grid's axes as JSON data: ``[title, labels]`` for x, y, z (null when absent)."""
    if grid is None:
        return None
    return [None if axis is None else [axis.title, list(axis.labels)]
            for axis in (grid.x, grid.y, grid.z)]


def _grid(record: list | None) -> Grid | None:
    if record is None:
        return None
    x, y, z = (None if item is None else Axis(item[0], tuple(item[1])) for item in record)
    if x is None:
        raise ValueError("damaged grid")
    return Grid(x, y, z)


def _json_field(spec: ImageSpec, name: str) -> Any:
    """A field as JSON gives it back: the (name, weight) pairs of ``loras`` as lists, a
    hires fix as its mapping."""
    value = getattr(spec, name)
    if name == "hires" and value is not None:
        return dataclasses.asdict(value)
    return [list(pair) for pair in value] if name == "loras" else value


def pictures_of(record: Mapping[str, Any]) -> list:
    """A post's galleries as ``post_record`` records them, without where in the file
    they are: what its pictures and their figures are made from."""
    return [[columns, caption, [row[:-3] for row in rows], grid, compare]
            for columns, caption, _line, rows, grid, compare in record["galleries"]]


def _json_safe(record: Mapping[str, Any]) -> bool:
    """Whether JSON gives ``record`` back as it is (YAML dates or int keys in ``extra``
    would come back as other types: such a post is simply parsed every time)."""
    try:
        return json.loads(json.dumps(record, ensure_ascii=False)) == record
    except (TypeError, ValueError):
        return False


class PostCache:
    """Parsed posts by file content; ``digests`` names each loaded post's data."""

    def __init__(self, cache_dir: Path, defaults: Mapping[str, Any],
                 grid_limit: int = GRID_LIMIT):
        self.folder = cache_dir / STATE_DIR / "posts"
        self.defaults = defaults
        self.grid_limit = grid_limit
        self.context = digest("posts", code_digest(), MARKDOWN_EXTENSIONS, dict(defaults),
                              grid_limit)
        self._used: set[str] = set()  # state file names of the posts loaded
        self._new: dict[str, dict[str, Any]] = {}  # state file name -> entry to write
        self._entries: dict[str, dict[str, Any]] = {}  # post file (as shown) -> its entry
        self._plans: dict[str, dict[str, str]] = {}  # post file -> plan memo of this build
        self.digests: dict[Path, str] = {}  # post file -> digest of its parsed data
        self.files: dict[Path, str] = {}  # post file -> its name as shown (``load``'s file)
        #: parsed posts kept in memory (``serve``): state file name -> entry, by content
        self.memory: dict[str, dict[str, Any]] | None = None

    def _file(self, file: str) -> str:
        return hashlib.sha256(file.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".json"

    def load(self, path: Path, file: str) -> Post:
        """``load_post``, unless the file is byte-for-byte the one parsed last time."""
        try:
            source_sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            source_sha = None  # load_post raises the error that names the file
        name = self._file(file)
        self._used.add(name)
        self.files[path] = file
        kept = self.memory.get(name) if self.memory is not None else None
        if kept is not None and kept["sha256"] == source_sha and kept["file"] == file:
            self._entries[file] = kept["entry"]
            self.digests[path] = kept["entry"]["digest"]
            return kept["post"]
        entry = read_state(self.folder / name, self.context)
        post = None
        if source_sha and entry.get("file") == file and entry.get("sha256") == source_sha:
            with contextlib.suppress(KeyError, TypeError, ValueError):  # damaged: parse again
                post = post_from_record(path, file, entry["post"])
        if post is None:
            post = load_post(path, self.defaults, file, self.grid_limit)
            record = post_record(post)
            entry = {"file": file, "sha256": source_sha, "digest": digest(record),
                     "post": record}
            if not (source_sha and _json_safe(record)):  # parsed every time, no memo
                self.digests[path] = entry["digest"]
                return post
            self._new[name] = entry
        self.digests[path] = entry["digest"]
        self._entries[file] = entry
        if self.memory is not None:
            self.memory[name] = {"sha256": source_sha, "file": file, "entry": entry,
                                 "post": post}
        return post

    def pictures(self, post: Post) -> str | None:
        """Digest of the post's galleries wherever they stand in its file
        (``pictures_of``); for a post parsed every time, of all its data."""
        entry = self._entries.get(self.files.get(post.source, ""))
        if entry is None:
            return self.digests.get(post.source)
        if "pictures" not in entry:
            entry["pictures"] = digest(pictures_of(entry["post"]))
        return entry["pictures"]

    def entry(self, file: str) -> dict[str, Any] | None:
        """This build's entry of a post (None if the post is parsed every time)."""
        return self._entries.get(file)

    def stored(self, file: str) -> dict[str, Any]:
        """The entry the last build saved for a post ({} if none)."""
        return read_state(self.folder / self._file(file), self.context)

    def remember_figures(self, file: str, figures_digest: str,
                         figures: Callable[[], list[dict[str, Any]]]) -> None:
        """Keep a post's figures (``Figures.stored``) with it, for ``patch``: made anew
        only when what they are made from changed."""
        entry = self._entries.get(file)
        if entry is None:
            return
        kept = entry.get("figures")
        if not (isinstance(kept, list) and kept and kept[0] == figures_digest):
            entry["figures"] = [figures_digest, figures()]
            self._new[self._file(file)] = entry

    def carry(self, file: str, last: Mapping[str, Any]) -> None:
        """Give a post parsed anew the plan memo and figures of its ``last`` entry
        (``patch``: its pictures are those of the last build)."""
        entry = self._entries[file]
        for part in ("plan", "figures"):
            if part in last and entry.get(part) != last[part]:
                entry[part] = last[part]
                self._new[self._file(file)] = entry

    def planned(self, file: str) -> Mapping[str, str]:
        """The plan memo of an unchanged post (``plan.PlanMemo``): slot -> what its key was
        made from, and the key; {} for a post parsed anew or not kept."""
        entry = self._entries.get(file)
        memo = entry.get("plan") if entry is not None else None
        return memo if isinstance(memo, dict) else {}

    def remember(self, file: str, slot: str, made_of_and_key: str) -> None:
        """What planning gave this build, saved with the post when it differs."""
        self._plans.setdefault(file, {})[slot] = made_of_and_key

    def save(self, prune: bool = True) -> None:
        """Write the posts parsed anew or planned otherwise; remove the state of posts
        that are gone (``prune``: this build loaded every post)."""
        for file, plan in self._plans.items():
            entry = self._entries.get(file)
            if entry is not None and entry.get("plan") != plan:
                entry["plan"] = plan
                self._new[self._file(file)] = entry
        self._plans.clear()
        for name, entry in self._new.items():
            write_state(self.folder / name, self.context, entry)
        self._new.clear()
        if not prune:
            return
        with contextlib.suppress(OSError):
            with os.scandir(self.folder) as listing:
                stale = [e.path for e in listing
                         if e.name.endswith(".json") and e.name not in self._used]
            for path in stale:
                os.unlink(path)


# --------------------------------------------------------------------------- pages


def file_stamp(entry: os.DirEntry | os.stat_result | None) -> list[int] | None:
    """(size, mtime, inode) of a site file: an atomic rewrite always changes the inode."""
    if entry is None:
        return None
    st = entry.stat(follow_symlinks=False) if isinstance(entry, os.DirEntry) else entry
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class PageState:
    """Per page: digest of its inputs, the posts it read, and the file it was written as."""

    def __init__(self, cache_dir: Path, context: str):
        self.path = cache_dir / STATE_DIR / "pages.json"
        self.context = context
        self._old = read_state(self.path, context)
        self._new: dict[str, list] = {}

    def unchanged(self, page: str, digest_of: Callable[[list[str]], str | None],
                  on_disk: os.DirEntry | os.stat_result | None) -> bool:
        """Whether ``page`` on disk is what rendering it now would give.

        ``digest_of(reads)`` digests the page's inputs, given the posts it read when it
        was last rendered (None if one is gone). A template reads the same posts again
        as long as everything it read is unchanged, so that digest decides.
        """
        reads = self.reads(page)
        if reads is None:
            return False
        entry = self._old[page]
        try:
            same = (entry[2] == file_stamp(on_disk)
                    and digest_of([str(r) for r in reads]) == entry[0])
        except OSError:
            return False
        if same:
            self._new[page] = entry
        return same

    def reads(self, page: str) -> list[str] | None:
        """What the page read when last rendered (None if it was not recorded)."""
        entry = self._old.get(page)
        if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[1], list):
            return entry[1]  # strings, unless damaged: ``patch`` then gives way (TypeError)
        return None

    def keep(self, page: str) -> None:
        """Keep the page's record as it is (its inputs are known to be unchanged)."""
        self._new[page] = self._old[page]

    def pages_before(self) -> set[str] | None:
        """The pages the last build recorded; None if there is no state to say."""
        return set(self._old) if self._old else None

    def record(self, page: str, page_digest: str, reads: list[str], on_disk: os.stat_result
               ) -> None:
        self._new[page] = [page_digest, reads, file_stamp(on_disk)]

    def save(self) -> None:
        if self._new != self._old:
            write_state(self.path, self.context, self._new)
