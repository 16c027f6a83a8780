"""The plan: every picture of the site as a node of a DAG, with its cache key.

``from:`` references are resolved across the whole site (dangling ids, duplicate
ids and cycles are errors); ``restore_faces: true`` becomes two nodes, the
unrestored picture and the restore step, so toggling it never re-runs diffusion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .errors import ErrorList, GenimgError, Location, did_you_mean, short_repr
from .hashing import canonical_key
from .loras import split_prompt
from .models import FaceRestorerRef, FileRef, ModelRef, ModelResolver
from .modes import MODES, RESTORE
from .specs import ImageSpec

#: Bump when genimg's rendering code changes its output for the same inputs.
RECIPE_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
#: The most pixels a picture read by ``from:`` may have: a 48-megapixel phone photo fits;
#: a 13000×13000 PNG (480 KB on disk) took 32 s and 4 GB of memory just to preview.
MAX_SOURCE_PIXELS = 50_000_000


@dataclass(frozen=True)
class Node:
    """One picture to have in the cache: rendered from ``spec`` (+ ``parent`` or ``file``)."""

    key: str
    spec: ImageSpec  # the spec as rendered (restore steps: mode "restore")
    shown: ImageSpec  # the spec as written (for infotext and pages)
    parent: str | None = None  # key of the picture this one is made from
    file: Path | None = None  # or a user picture next to the post
    model: ModelRef | None = None
    restorer: FaceRestorerRef | None = None
    loras: tuple[tuple[FileRef, float], ...] = ()  # the LoRAs it is rendered with
    vae: FileRef | None = None  # a VAE replacing the model's
    embeddings: tuple[FileRef, ...] = ()  # textual inversions its prompts use
    refiner: ModelRef | None = None  # the model taking over at ``refiner_switch``
    upscaler: FileRef | None = None  # a hires fix's upscaler file (ESRGAN family)
    speed: dict[str, Any] | None = None  # genimg.yaml's speed-ups that change bits
    source: str | None = None  # the parent's key or ``file:<sha256>``, as the key hashes it
    #: what the key hashes; empty when the key came from the plan memo (see ``key_dict``)
    fields: dict[str, Any] = field(default_factory=dict, compare=False)

    def key_dict(self) -> dict[str, Any]:
        """The exact dictionary the key is the hash of (``fields``, or made again for a
        node whose key the plan memo gave)."""
        return self.fields or key_fields(
            self.spec, self.model.fingerprint if self.model else None, self.source,
            self.restorer.fingerprint if self.restorer else None, self.loras, self.vae,
            self.embeddings, self.refiner, self.upscaler, self.speed)


def key_fields(spec: ImageSpec, model_fp: str | None, source: str | None,
               restorer_fp: str | None,
               loras: tuple[tuple[FileRef, float], ...] = (),
               vae: FileRef | None = None,
               embeddings: tuple[FileRef, ...] = (),
               refiner: ModelRef | None = None,
               upscaler: FileRef | None = None,
               speed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The exact dictionary a cache key is the hash of (docs/ARCHITECTURE.md, "The cache
    key"): the spec's fields its mode reads, the recipe version, the fingerprint of
    what renders it (the model, or the face restorer), and the key or file hash of its
    source."""
    mode = MODES[spec.mode]
    fields = spec.pixel_fields()
    fields["recipe"] = RECIPE_VERSION
    if mode.generates:
        fields["model"] = model_fp
    elif mode.restores:
        fields["restorer"] = restorer_fp
    if mode.source:
        fields["source"] = source
    if loras:  # each file by its hash, never its name; absent without LoRAs (old keys)
        fields["loras"] = [[lora.fingerprint, weight] for lora, weight in loras]
    if vae is not None:  # likewise only when a VAE replaces the model's
        fields["vae"] = vae.fingerprint
    if embeddings:
        fields["embeddings"] = [embedding.fingerprint for embedding in embeddings]
    if refiner is not None:  # a refiner by its fingerprint, like the model
        fields["refiner"] = refiner.fingerprint
    if upscaler is not None:  # a hires fix's upscaler file by its hash
        fields["upscaler"] = upscaler.fingerprint
    if speed and mode.generates:  # genimg.yaml's speed-ups that change bits, when set
        fields["speed"] = speed
    return fields


@dataclass
class Plan:
    """Nodes in dependency order, and the key each written image is shown as."""

    nodes: dict[str, Node]  # topological order: parents before children
    shown_key: dict[Location, str]  # image location -> key of the picture shown
    id_key: dict[str, str]  # image id -> key
    #: key -> its files in the site (``images.WebImage``), memoised by ``build``
    webs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def descendants(self, key: str) -> set[str]:
        children: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if node.parent:
                children.setdefault(node.parent, []).append(node.key)
        found, stack = set(), [key]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found


class PlanMemo(Protocol):
    """Keys planned before, per post file and slot, with what they were made from
    (``state.PostCache``); a memo for a post whose text changed is never offered."""

    def planned(self, file: str) -> Mapping[str, str]: ...

    def remember(self, file: str, slot: str, made_of_and_key: str) -> None: ...


class Planner:
    """Builds a Plan from all posts' specs; all errors are reported together.

    With a ``memo``, a node whose inputs are those recorded for its post and slot takes
    its recorded key instead of hashing them again: the references are still resolved
    (every model, LoRA, VAE, embedding and restorer fingerprint, and every ``from:``
    parent's key), and only a node whose every input is equal reuses its key.
    """

    def __init__(self, root: Path, resolver: ModelResolver, memo: PlanMemo | None = None):
        self.root = root.resolve()
        self.resolver = resolver
        self.memo = memo
        self.hasher = resolver.hasher  # one memo of file hashes per build
        self.speed = resolver.config.speed.hashed()
        self._speed = json.dumps(self.speed, sort_keys=True) if self.speed else None  # memo
        self.nodes: dict[str, Node] = {}
        self.by_id: dict[str, ImageSpec] = {}
        self.id_key: dict[str, str] = {}
        self.shown_key: dict[Location, str] = {}
        self._cycles: set[frozenset[str]] = set()

    def plan(self, images: list[ImageSpec]) -> Plan:
        errors: list[GenimgError] = []
        # In reading order (posts are named by date), so the later of two equal ids is
        # the one reported, pointing back at the first.
        for spec in sorted(images, key=lambda s: (s.location.file, s.location.line)):
            if spec.id is None:
                continue
            if spec.id in self.by_id:
                first = self.by_id[spec.id].at("id")
                errors.append(spec.at("id").error(
                    f"duplicate image id {short_repr(spec.id)} "
                    f"(first used at {first.file}:{first.line})"))
            else:
                self.by_id[spec.id] = spec
        if errors:
            raise ErrorList(errors)
        for spec in images:
            try:
                self.shown_key[spec.location] = self._key_of(spec)
            except _CycleError as exc:
                if exc.members not in self._cycles:  # one line per cycle, not per member
                    self._cycles.add(exc.members)
                    errors.append(exc)
            except GenimgError as exc:
                errors.append(exc)
        if errors:
            raise ErrorList(_unique(errors))
        return Plan(self.nodes, self.shown_key, self.id_key)

    def _key_of(self, spec: ImageSpec) -> str:
        """Key of the picture ``spec`` shows; adds it and its ancestors to the plan.

        A ``from:`` chain is walked up in a loop and keyed from its top down, so a chain
        of thousands of pictures needs no deeper recursion than one of two."""
        chain = self._chain(spec)
        key = ""
        for link in reversed(chain):
            key = self.id_key.get(link.id or "") or self._add(link)
            if link.id is not None:
                self.id_key[link.id] = key
        return key

    def _chain(self, spec: ImageSpec) -> list[ImageSpec]:
        """``spec`` and the pictures its ``from:`` reads, up to one already keyed or one
        made from nothing or a file; a ``from:`` back into the chain is a cycle."""
        chain = [spec]
        at = {spec.id: 0}  # id -> its place in the chain
        while MODES[chain[-1].mode].source and chain[-1].source in self.by_id:
            parent = self.by_id[chain[-1].source or ""]
            if parent.id in self.id_key:
                break
            if parent.id in at:
                ids = [link.id for link in chain[at[parent.id]:]]
                members = [m for m in ids if m is not None]
                names = [short_repr(m)[1:-1] for m in [*members, parent.id]]
                if len(names) > 9:  # a cycle of a thousand is still one short line
                    names[4:-4] = [f"({len(names) - 8} more)"]
                cycle = " -> ".join(names)
                where = parent.at("from")
                raise _CycleError(f"'from:' references form a cycle: {cycle}", where.file,
                                  where.line, frozenset(members))
            at[parent.id] = len(chain)
            chain.append(parent)
        return chain

    def _add(self, spec: ImageSpec, slot: str = "") -> str:
        if spec.restore_faces:
            base = spec.without_restore()
            base_key = self._add(base, "base")
            step = replace(base, mode=RESTORE, source=None)
            step_restorer = self._restorer(spec)
            key, fields = self._keyed(spec, slot, (RESTORE, base_key, step_restorer.fingerprint),
                                      lambda: key_fields(step, None, base_key,
                                                         step_restorer.fingerprint))
            self._put(Node(key, step, spec, parent=base_key, restorer=step_restorer,
                           source=base_key, fields=fields))
            return key
        mode = MODES[spec.mode]
        parent: str | None = None
        file: Path | None = None
        source: str | None = None
        if mode.source:
            parent, file, source = self._resolve_from(spec)
        model: ModelRef | None = None
        restorer: FaceRestorerRef | None = None
        loras: tuple[tuple[FileRef, float], ...] = ()
        vae: FileRef | None = None
        embeddings: tuple[FileRef, ...] = ()
        refiner: ModelRef | None = None
        upscaler: FileRef | None = None
        if mode.generates:
            model = self._model(spec)
            loras = tuple((self._lora(spec, name), weight) for name, weight in spec.loras)
            vae = self._vae(spec, spec.vae or model.vae)
            embeddings = self.resolver.embeddings_in((spec.prompt, spec.negative_prompt))
            refiner = self._model(spec, "refiner") if spec.refiner else None
            upscaler = self._upscaler(spec)
        elif mode.restores:
            restorer = self._restorer(spec)
        model_fp = model.fingerprint if model else None
        restorer_fp = restorer.fingerprint if restorer else None
        deps = (spec.mode, model_fp, source, restorer_fp,
                ",".join(f"{lora.fingerprint}*{weight!r}" for lora, weight in loras),
                vae.fingerprint if vae else None, ",".join(e.fingerprint for e in embeddings),
                refiner.fingerprint if refiner else None,
                upscaler.fingerprint if upscaler else None,
                self._speed if mode.generates else None)
        key, fields = self._keyed(spec, slot, deps, lambda: key_fields(
            spec, model_fp, source, restorer_fp, loras, vae, embeddings, refiner, upscaler,
            self.speed))
        if key not in self.nodes:  # filled in directly: a frozen __init__ is a third of it
            node = self.nodes[key] = object.__new__(Node)
            node.__dict__.update(key=key, spec=spec, shown=spec, parent=parent, file=file,
                                 model=model, restorer=restorer, loras=loras, vae=vae,
                                 embeddings=embeddings, refiner=refiner, upscaler=upscaler,
                                 speed=self.speed, source=source, fields=fields)
        return key

    def _keyed(self, spec: ImageSpec, slot: str, deps: tuple[str | None, ...],
               make_fields: Callable[[], dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """(key, fields hashed): the memo's key when it was made from exactly ``deps`` at
        this place of this same post text (fields then made only when asked for)."""
        if self.memo is None:
            fields = make_fields()
            return canonical_key(fields), fields
        # one string (fingerprints and keys hold no control characters): quick to read back
        made_of = "\x1f".join(part or "" for part in deps) + "\x1e"
        file, where = spec.location.file, f"{spec.location.line}:{spec.location.cell}:{slot}"
        old = self.memo.planned(file).get(where)
        if isinstance(old, str) and len(old) == len(made_of) + 64 and old.startswith(made_of):
            key, fields = old[-64:], {}
        else:
            fields = make_fields()
            key = canonical_key(fields)
        self.memo.remember(file, where, made_of + key)
        return key, fields

    def _put(self, node: Node) -> None:
        self.nodes.setdefault(node.key, node)

    def _model(self, spec: ImageSpec, key: str = "model") -> ModelRef:
        try:
            return self.resolver.model(getattr(spec, key))
        except GenimgError as exc:
            raise spec.at(key).error(exc.message) from None

    def _upscaler(self, spec: ImageSpec) -> FileRef | None:
        """A hires fix's upscaler file (ESRGAN family), if it names one."""
        if spec.hires is None or not spec.hires.file:
            return None
        try:
            return self.resolver.upscaler(spec.hires.upscaler)
        except GenimgError as exc:
            raise spec.at("hires").error(exc.message) from None

    def _lora(self, spec: ImageSpec, name: str) -> FileRef:
        try:
            return self.resolver.lora(name)
        except GenimgError as exc:
            where = "prompt" if name in dict(split_prompt(spec.prompt)[1]) else "loras"
            raise spec.at(where).error(exc.message) from None

    def _vae(self, spec: ImageSpec, name: str | None) -> FileRef | None:
        try:
            return self.resolver.vae(name) if name else None
        except GenimgError as exc:
            raise spec.at("vae" if spec.vae else "model").error(exc.message) from None

    def _restorer(self, spec: ImageSpec) -> FaceRestorerRef:
        try:
            return self.resolver.restorer()
        except GenimgError as exc:
            raise spec.location.error(exc.message) from None

    def _resolve_from(self, spec: ImageSpec) -> tuple[str | None, Path | None, str]:
        """``from:`` -> (parent key, None, source) or (None, user file, source)."""
        ref = spec.source or ""
        where = spec.at("from")
        if ref in self.by_id:
            parent_key = self._key_of(self.by_id[ref])
            return parent_key, None, parent_key
        label = f"'from: {ref}'" if ref.isprintable() and len(ref) <= 80 else (
            f"from: {short_repr(ref)}")
        post_dir = (self.root / spec.location.file).parent
        try:
            path = (post_dir / ref).resolve()
            inside = path.is_relative_to(self.root)
            is_file = inside and path.is_file()
        except (OSError, ValueError, RuntimeError):  # NUL bytes, long names, symlink loops
            raise where.error(f"{label} is not a usable file name") from None
        if not inside:
            raise where.error(f"{label} points outside the blog folder")
        if not is_file:
            hint = ""
            if not ref.lower().endswith(IMAGE_SUFFIXES):
                hint = did_you_mean(ref, list(self.by_id)) or " (no image has that id)"
            raise where.error(
                f"{label} is neither an image id nor a file next to the post{hint}")
        _check_image(path, where, label)
        try:
            digest = self.hasher.hash(path)
        except OSError as exc:
            raise where.error(f"cannot read {label}: {exc.strerror or exc}") from None
        return None, path, f"file:{digest}"


class _CycleError(GenimgError):
    def __init__(self, message: str, file: str, line: int, members: frozenset[str]):
        super().__init__(message, file, line)
        self.members = members

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.file, self.line, self.members)


def _check_image(path: Path, where: Location, label: str) -> None:
    """A picture PIL can read, and not too big to render from (``MAX_SOURCE_PIXELS``)."""
    import warnings

    from PIL import Image

    limit = f"a picture read by 'from:' may have at most {MAX_SOURCE_PIXELS // 10**6} " \
        "megapixels; make it smaller"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                image.verify()
    except Image.DecompressionBombError:
        raise where.error(f"{label} has over {2 * (Image.MAX_IMAGE_PIXELS or 0) // 10**6} "
                          f"megapixels: {limit}") from None
    except Exception:  # PIL raises many types for "not an image"
        raise where.error(f"{label} is not a readable image") from None
    if width * height > MAX_SOURCE_PIXELS:
        raise where.error(f"{label} is {width}×{height} pixels "
                          f"({width * height / 10**6:.0f} megapixels): {limit}")


def _unique(errors: list[GenimgError]) -> list[GenimgError]:
    seen: set[str] = set()
    out = []
    for err in errors:
        if str(err) not in seen:
            seen.add(str(err))
            out.append(err)
    return out
