"""``genimg import``: pictures made elsewhere become gallery blocks of a post, adopted
into the cache under the key their spec computes, so a build renders none of them.

A picture whose parameters genimg can redo (``adopt``) becomes a spec; its model is
the one of genimg.yaml with the same A1111 hash (or name), else a model file name
keyed by that hash (``ModelResolver.adopt``), so the key is stable and re-rendering
asks for that model. Any other picture is copied next to the post as it is and shown
by ``mode: picture``. Keys come from the planner itself: the new post text is parsed
and planned with the whole site before anything is stored.

Nothing is lost or duplicated: sources are only read; a picture whose key some post
already shows is skipped (and said); the copies, the cache entries and the fingerprints
are written first and the post last (atomically), and copies are removed again if
anything fails before the post is written, so the blog is as it was or complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import generator

from .adopt import adopt
from .atomic import write_atomic
from .build import BuildOptions, LoadedSite, load_site
from .cache import Cache
from .content import load_post, slugify
from .errors import ErrorList, GenimgError, Location
from .hashing import canonical_key
from .models import A1111_PREFIX, CHECKPOINT_SUFFIXES, IMPORTED_PREFIX
from .modes import PICTURE
from .passes import hires_of, target
from .plan import Planner, key_fields
from .readers import Picture, load_pixels, picture_files, read_picture
from .schema import SPEC
from .specs import DEFAULTS, ImageSpec, parse_image

_A1111_NAME = re.compile(r"^(\d+)-")
#: The spec keys written for an adopted picture, in this order (all of them, so a
#: ``defaults:`` of genimg.yaml never changes what an imported spec means).
_WRITTEN = ("prompt", "negative_prompt", "seed", "sampler", "steps", "cfg", "width", "height",
            "model", "restore_faces")


@dataclass
class Candidate:
    """One picture to import: what the post will say, and its key."""

    path: Path
    picture: Picture
    item: dict[str, Any]  # the gallery item as written
    key: str
    sha256: str
    width: int
    height: int
    why: str | None = None  # a plain picture: why it is not a spec
    copy: str | None = None  # a plain picture: its copy's path relative to the post


@dataclass
class ImportReport:
    post: str = ""  # the post written (or that would be)
    markdown: str = ""  # what was appended (or would be)
    added: list[Candidate] = field(default_factory=list)
    already: list[tuple[Path, str]] = field(default_factory=list)  # (file, where it is)
    bad: list[str] = field(default_factory=list)  # one line each
    seconds: float = 0.0

    @property
    def specs(self) -> int:
        return sum(1 for c in self.added if c.why is None)


@dataclass(frozen=True)
class ImportOptions:
    post: Path | None = None  # an existing post to add to
    title: str | None = None  # or a new post's title
    gallery_size: int = 4
    dry_run: bool = False


def import_pictures(root: Path, paths: list[Path], options: ImportOptions = ImportOptions(),
                    log: Callable[[str], None] = lambda line: None) -> ImportReport:
    """Import the pictures of ``paths`` into one post of the blog at ``root``."""
    started = time.perf_counter()
    site = load_site(root, BuildOptions(drafts=True))
    post_path, head = _target(site, paths, options)
    display = _display(post_path, site.config.root)
    report = ImportReport(post=display)
    shown = _Shown(site)
    maker = _Adopter(site, post_path)
    for file in _ordered(picture_files(paths)):
        try:
            candidate = maker.candidate(file, shown.clash)
        except GenimgError as exc:
            report.bad.append(str(exc))
            log(f"skipped {exc}")
            continue
        if shown.clash(candidate.key, candidate.sha256) == "":
            report.already.append((file, shown.where[candidate.key]))
            continue
        shown.add(candidate.key, candidate.sha256, f"{file} (this import)")
        report.added.append(candidate)
    report.markdown = _markdown(report.added, options.gallery_size)
    if report.added and options.post is None and post_path.exists():
        raise GenimgError(f"{display} exists already: add to it with --post, or give another "
                          "--title", post_path)
    if report.added and not options.dry_run:
        _commit(site, maker, post_path, display, head + report.markdown, report.added)
    report.seconds = time.perf_counter() - started
    return report


class _Shown:
    """The pictures the blog shows, by key: is a picture one of them, or does another
    picture hold its key?"""

    def __init__(self, site: LoadedSite):
        self.cache = Cache(site.config.cache_dir)
        self.where = {key: f"{at.file}:{at.line}" for at, key in site.plan.shown_key.items()}
        self.shas: dict[str, set[str | None]] = {}

    def clash(self, key: str, sha256: str) -> str | None:
        """None: no picture has ``key``; "": this very picture has it; else where the
        other picture that has it is shown."""
        if key not in self.where:
            return None
        if key not in self.shas:
            meta = self.cache.meta(key) or {}
            origin = meta.get("imported")
            self.shas[key] = {meta.get("png_sha256"),
                              origin.get("sha256") if isinstance(origin, dict) else None}
        return "" if sha256 in self.shas[key] else self.where[key]

    def add(self, key: str, sha256: str, where: str) -> None:
        self.where[key] = where
        self.shas[key] = {sha256}


def _target(site: LoadedSite, paths: list[Path], options: ImportOptions) -> tuple[Path, str]:
    """The post to write and the text the blocks go after (a new post's front matter)."""
    config = site.config
    if options.post is not None:
        path = options.post
        if not path.is_absolute():  # as the writer sees it, or relative to the blog
            path = path if path.exists() else config.root / path
        path = path.resolve()
        if not path.is_file() or not path.is_relative_to(config.posts_dir.resolve()):
            raise GenimgError(f"--post must be a post of this blog (in {config.posts_dir})",
                              options.post)
        text = path.read_text(encoding="utf-8")
        return path, text.rstrip("\n") + "\n\n"
    title = options.title or (paths[0].resolve().name if paths and paths[0].is_dir()
                              else "Imported pictures")
    times = [p.stat().st_mtime for p in picture_files(paths) if p.is_file()]
    day = dt.date.fromtimestamp(min(times)) if times else dt.date.today()
    path = config.posts_dir.resolve() / f"{day.isoformat()}-{slugify(title) or 'imported'}.md"
    front = yaml.safe_dump({"title": title}, allow_unicode=True, width=1000)
    return path, (f"---\n{front}date: {day.isoformat()}\ntags: []\n---\n\n"
                  "Pictures brought in by `genimg import`.\n\n")


def _display(post: Path, root: Path) -> str:
    """How the build names a post (``content.load_posts``): relative to the blog if it can."""
    try:
        return str(post.relative_to(root))
    except ValueError:
        return str(post)


def _ordered(files: list[Path]) -> list[Path]:
    """A1111's numeric prefix first (00013-…), then the file's time."""
    def order(path: Path) -> tuple[float, float, str]:
        match = _A1111_NAME.match(path.name)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (int(match.group(1)) if match else float("inf"), mtime, str(path))
    return sorted(files, key=order)


class _Adopter:
    """Makes a Candidate of each picture, with the blog's models and keys."""

    def __init__(self, site: LoadedSite, post_path: Path):
        self.site = site
        self.config = site.config
        self.resolver = site.resolver
        self.post_dir = post_path.parent
        self.folder = post_path.stem  # plain pictures are copied to posts/<post>/
        self.where = Location(_display(post_path, self.config.root), 0)
        self.models: dict[tuple[str, str | None], str] = {}
        self.copies: dict[str, str] = {}  # name in the folder -> sha256 (this import's)

    def candidate(self, path: Path, clash: Callable[[str, str], str | None]) -> Candidate:
        """A spec for ``path`` if it has one that no other picture's key is; else plain."""
        picture = read_picture(path)
        with load_pixels(path) as image:
            width, height = image.size
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        adopted = adopt(picture)
        why = adopted.why
        if adopted.spec is not None:
            try:
                item = self._item(adopted.spec, adopted.model_hash, (width, height))
                spec = parse_image(item, self.where, self.config.defaults)
                key = Planner(self.config.root, self.resolver).plan([spec]).shown_key[
                    spec.location]
                other = clash(key, sha)
                if not other:
                    return Candidate(path, picture, item, key, sha, width, height)
                why = (f"its parameters are those of another picture ({other}), whose "
                       "pixels differ")
            except GenimgError as exc:  # its parameters are not a spec genimg accepts
                why = exc.message.splitlines()[0]
        copy = self._copy_name(path, sha)
        item = {"mode": PICTURE, "from": f"{self.folder}/{copy}"}
        spec = parse_image(item, self.where, self.config.defaults)
        key = canonical_key(key_fields(spec, None, f"file:{sha}", None))
        return Candidate(path, picture, item, key, sha, width, height, why, copy)

    def _item(self, raw: dict[str, Any], model_hash: str | None,
              size: tuple[int, int]) -> dict[str, Any]:
        """The gallery item of an adopted picture: every key written out."""
        shown = (raw.get("width", DEFAULTS["width"]), raw.get("height", DEFAULTS["height"]))
        hires = hires_of(raw.get("hires"))
        if hires is not None:  # a hires fix's picture is its second pass's size
            shown = target(*shown, hires).size
        if shown != size:
            raise GenimgError(f"it is {size[0]}x{size[1]}, not the {shown[0]}x{shown[1]} its "
                              "parameters make (upscaled or cropped after?)")
        unknown = sorted(set(raw) - set(SPEC) - {"mode"})
        if unknown:
            raise GenimgError(f"genimg cannot redo its {', '.join(unknown)}")
        item = {name: raw.get(name, DEFAULTS.get(name)) for name in _WRITTEN}
        item.update((k, v) for k, v in raw.items() if k not in item and k != "mode")
        item["model"] = self._model(raw.get("model"), model_hash)
        if not item["negative_prompt"]:
            del item["negative_prompt"]
        if not item["restore_faces"] and not self.config.defaults.get("restore_faces"):
            del item["restore_faces"]
        return item

    def _model(self, name: Any, short_hash: str | None) -> str:
        """genimg.yaml's model with this hash (or name), else a file name keyed by it."""
        tool_name = str(name) if name else None
        memo = (tool_name or "", short_hash)
        if memo not in self.models:
            self.models[memo] = (self._known_model(tool_name, short_hash)
                                 or self._adopted_model(tool_name, short_hash))
        return self.models[memo]

    def _known_model(self, tool_name: str | None, short_hash: str | None) -> str | None:
        by_name = None
        for name in self.resolver.known_names():
            try:
                fingerprint = self.resolver.model(name).fingerprint
            except GenimgError:
                continue
            hashed = fingerprint.startswith(("sha256:", A1111_PREFIX))
            digest = fingerprint.partition(":")[2]
            if short_hash and hashed and digest.startswith(short_hash.lower()):
                return name
            source = self.config.models[name].source
            stems = {name, Path(source).stem, Path(source).name, source.rsplit("/", 1)[-1]}
            if tool_name and (tool_name in stems or Path(tool_name).stem in stems) and not (
                    short_hash and hashed):
                by_name = by_name or name
        return by_name

    def _adopted_model(self, tool_name: str | None, short_hash: str | None) -> str:
        base = Path(tool_name.replace("\\", "/")).name if tool_name else f"a1111-{short_hash}"
        stem, suffix = Path(base).stem, Path(base).suffix
        if suffix.lower() not in CHECKPOINT_SUFFIXES:
            stem, suffix = base, ".safetensors"
        stem = slugify(stem) or "model"
        fingerprint = (A1111_PREFIX + short_hash.lower() if short_hash
                       else IMPORTED_PREFIX + base)
        name = stem + suffix
        if short_hash is None and self.resolver.recorded_for(name):
            return name  # a file name only: the model of that name imported before
        if not self.resolver.adopt(name, fingerprint):
            name = f"{stem}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:8]}{suffix}"
            self.resolver.adopt(name, fingerprint)
        return name

    def _copy_name(self, path: Path, sha: str) -> str:
        """A name in posts/<post>/ for a plain picture's copy: its own, unless taken."""
        name = re.sub(r"[^\w.-]+", "-", path.name).lstrip(".-") or "picture.png"
        existing = self.post_dir / self.folder / name
        taken = self.copies.get(name)
        if (taken is not None and taken != sha) or (
                taken is None and existing.is_file()
                and hashlib.sha256(existing.read_bytes()).hexdigest() != sha):
            name = f"{Path(name).stem}-{sha[:8]}{Path(name).suffix}"
        self.copies[name] = sha
        return name


class _Dumper(yaml.SafeDumper):
    """``safe_dump``, but a text with a Unicode line break (NEL, LS, PS) is written
    double-quoted, escaped: PyYAML reads one back from a single-quoted scalar as a space,
    and other tools split lines on them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _markdown(added: list[Candidate], size: int) -> str:
    """Gallery blocks of ``size`` pictures, each item after a comment naming its file."""
    blocks = []
    for start in range(0, len(added), max(1, size)):
        lines = ["```gallery"]
        for c in added[start:start + size]:
            note = f"{c.path.name}: {c.picture.origin}"
            if c.why:
                note += f"; shown as it is: {c.why}"
            lines.append("# " + " ".join(note.split()))
            lines.append(yaml.dump([c.item], Dumper=_Dumper, allow_unicode=True,
                                   sort_keys=False, width=1000).rstrip("\n"))
        lines.append("```")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def _commit(site: LoadedSite, maker: _Adopter, post_path: Path, display: str, text: str,
            added: list[Candidate]) -> None:
    """Copies, cache entries, fingerprints, and the post last; copies go again on failure."""
    config = site.config
    cache = Cache(config.cache_dir)
    created: list[Path] = []
    with cache.lock():
        try:
            for c in added:
                if c.copy is not None:
                    target = post_path.parent / maker.folder / c.copy
                    if not target.is_file():
                        write_atomic(target, c.path.read_bytes())
                        created.append(target)
            post = _parsed(post_path, display, text, config)
            others = [image for image in site.images if image.location.file != display]
            plan = Planner(config.root, site.resolver).plan([*others, *post.images])
            mine = post.images[len(post.images) - len(added):]
            for c, spec in zip(added, mine, strict=True):
                key = plan.shown_key[spec.location]
                if key != c.key:  # the planner and the importer disagree: store nothing
                    raise GenimgError(f"the key of {c.path.name} changed once written "
                                      "(please report this)", spec.location.file,
                                      spec.location.line)
                if not cache.has(key):
                    cache.put(key, _png(c), _sidecar(c, plan.nodes[key].key_dict(), spec))
            cache.save_index()
            site.resolver.save()
            write_atomic(post_path, text.encode("utf-8"))
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            for folder in {path.parent for path in created}:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise


def _parsed(post_path: Path, display: str, text: str, config: Any) -> Any:
    """The post as ``text`` would make it, parsed where it will be (nothing written)."""
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / post_path.name
        draft.write_text(text, encoding="utf-8")
        try:
            return load_post(draft, config.defaults, display)
        except ErrorList as exc:
            raise GenimgError(f"the imported post would not parse: {exc.errors[0]}") from None
        except GenimgError as exc:
            raise GenimgError(f"the imported post would not parse: {exc}") from None


def _png(c: Candidate) -> bytes:
    """The cache's PNG: the original bytes, or a lossless PNG of a JPEG/WebP with its
    metadata as PNG text chunks."""
    data = c.path.read_bytes()
    if c.picture.format == "PNG":
        return data
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for name, value in c.picture.texts.items():
        info.add_itxt(name, value)
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.save(buffer, format="PNG", pnginfo=info, compress_level=6)
    return buffer.getvalue()


def _sidecar(c: Candidate, fields: dict[str, Any], spec: ImageSpec) -> dict[str, Any]:
    """What the sidecar says of an imported picture: its key's inputs and its origin."""
    stored = ("the original file" if c.picture.format == "PNG"
              else f"a lossless PNG of the {c.picture.format}")
    return {
        "spec": fields, "shown": spec.as_yaml_dict(), "infotext": c.picture.infotext or "",
        "width": c.width, "height": c.height, "preview": False,
        "versions": {"genimg": generator.__version__},
        "location": f"{spec.location.file}:{spec.location.line}",
        "imported": {
            "file": str(c.path.resolve()), "sha256": c.sha256, "tool": c.picture.tool,
            "tool_version": c.picture.version, "stored": stored, "plain": c.why,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }


def summary(report: ImportReport) -> Iterable[str]:
    """The lines ``genimg import`` prints: each plain, skipped and bad picture, then totals."""
    for c in report.added:
        if c.why:
            yield f"plain picture: {c.path}: {c.why}"
    for file, where in report.already:
        yield f"already imported: {file} (shown at {where})"
    yield from (f"skipped: {line}" for line in report.bad)
    plain = len(report.added) - report.specs
    if not report.added:
        yield (f"nothing to import: all {len(report.already)} pictures are in the blog already"
               if report.already else "nothing to import")
        return
    yield (f"imported {len(report.added)} pictures into {report.post}: {report.specs} as "
           f"specs, {plain} as plain pictures; {len(report.already)} already there, "
           f"{len(report.bad)} unreadable ({report.seconds:.2f}s)")
