"""Image specs: the YAML a writer puts in a ``gallery`` block, validated.

Pure data and checks; no I/O. Keys and their checks are declared in ``schema``,
modes in ``modes``; cache keys and the dependency graph live in ``plan.py``
because they need model fingerprints from disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from .errors import Location, short_repr
from .hashing import derive_seed
from .loras import merged as merged_loras
from .loras import split_prompt
from .modes import MODES, RESTORE, TXT2IMG
from .passes import Hires, hires_of, target
from .prompts import unsupported
from .samplers import ANCESTRAL, BROWNIAN, OWN, SAMPLERS, draws_itself, schedule_problem
from .schema import PRESENTATION_KEYS, SIZE_MAX, SIZE_MIN, SPEC, check_keys, defaults_of

T = TypeVar("T")
DEFAULTS: dict[str, Any] = {k: v for k, v in defaults_of(SPEC).items() if v is not None}


@dataclass(frozen=True)
class ImageSpec:
    """One picture, fully defaulted and validated (a field for each ``schema.SPEC`` key)."""

    prompt: str
    negative_prompt: str
    seed: int
    mode: str
    model: str
    sampler: str
    steps: int
    cfg: float
    width: int
    height: int
    strength: float
    restore_faces: bool
    face_weight: float
    prompt_syntax: str
    clip_skip: int
    noise: str
    subseed: int
    subseed_strength: float
    eta_noise_seed_delta: int
    source: str | None = None  # the ``from:`` value, as written
    #: LoRAs (name, weight): the prompt's ``<lora:…>`` tags, then the ``loras:`` mapping.
    loras: tuple[tuple[str, float], ...] = ()
    vae: str | None = None  # a VAE replacing the model's
    schedule_type: str | None = None
    hires: Hires | None = None  # A1111's hires fix: a second pass, bigger
    refiner: str | None = None  # a model taking over at ``refiner_switch``
    refiner_switch: float = 0.8
    sampling: str = "diffusers"  # "a1111": genimg's own k-diffusion loop (render/ksamplers)
    id: str | None = None
    caption: str | None = None
    alt: str | None = None
    location: Location = field(default=Location("<unknown>", 0), compare=False)
    #: ``(key, file line)`` of each key as written, for errors found after parsing.
    key_lines: tuple[tuple[str, int], ...] = field(default=(), compare=False, repr=False)

    def at(self, key: str) -> Location:
        """Where ``key`` was written (the image's own line if it came from defaults)."""
        return Location(self.location.file, dict(self.key_lines).get(key, self.location.line))

    def pixel_fields(self) -> dict[str, Any]:
        """Everything of the spec itself that its mode's cache key hashes."""
        return {"mode": self.mode, **hashed(MODES[self.mode].key_fields, vars(self))}

    def without_restore(self) -> ImageSpec:
        """The unrestored picture that ``restore_faces`` is applied on."""
        return replace(self, restore_faces=False, id=None, caption=None, alt=None)

    def as_yaml_dict(self) -> dict[str, Any]:
        """A spec a writer could paste back into a gallery block."""
        data = asdict(self)
        data.pop("location")
        data.pop("key_lines")
        data["from"] = data.pop("source")
        tags = dict(split_prompt(self.prompt)[1])
        data["loras"] = {k: w for k, w in self.loras if k not in tags} or None
        if self.refiner is None:  # a switch without a refiner means nothing
            data["refiner_switch"] = None
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class Axis:
    """One axis of a comparison grid as shown: its title and a label for each value."""

    title: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Grid:
    """A comparison grid's axes (``grids``); its gallery's images are the cells, x
    fastest, then y, then z (A1111's order)."""

    x: Axis
    y: Axis | None = None
    z: Axis | None = None

    def layers(self, cells: Sequence[T]) -> list[list[list[T]]]:
        """``cells`` (one per picture, in order) as z layers of y rows of x cells."""
        nx = len(self.x.labels)
        ny = len(self.y.labels) if self.y else 1
        nz = len(self.z.labels) if self.z else 1
        return [[list(cells[(z * ny + y) * nx:(z * ny + y + 1) * nx]) for y in range(ny)]
                for z in range(nz)]


@dataclass(frozen=True)
class Gallery:
    """One ``gallery`` block: a row of pictures shown side by side, or a grid."""

    images: tuple[ImageSpec, ...]
    columns: int | None
    caption: str | None
    location: Location
    grid: Grid | None = None
    compare: str | None = None  # "slider": pictures made from another start as a slider


def _loras(prompt: str, mapping: Mapping[str, Any],
           at: Callable[[str], Location]) -> tuple[tuple[str, float], ...]:
    try:
        return merged_loras(prompt, mapping)
    except ValueError as exc:
        raise at("loras" if "'loras:'" in str(exc) else "prompt").error(str(exc)) from None


def hashed(names: tuple[str, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``names`` as a key or seed hashes them: converted (``cfg: 7`` is
    7.0), and without ``hashed_if_set`` keys left at their default."""
    out: dict[str, Any] = {}
    for name in names:
        key, value = SPEC[name], values[name]
        if key.hashed_if_set and value == key.default:
            continue
        out[name] = key.convert(value) if key.convert else value
    return out


def _a1111_prompt(merged: Mapping[str, Any], name: str, where: Location) -> str:
    """A prompt in A1111's syntax, checked, without the whitespace around it and its lines
    (CLIP never sees it, and infotext readers strip it: pasted back, it keeps its key)."""
    text = str(merged.get(name, ""))
    problem = unsupported(text)
    if problem:
        raise where.error(f"{name!r} {problem}")
    return "\n".join(line.strip() for line in text.strip().split("\n"))


def _schedule_type(merged: Mapping[str, Any], sampling: str, where: Location) -> str | None:
    """The spec's ``schedule_type``, if genimg draws it with A1111's sigmas."""
    schedule_type = merged.get("schedule_type")
    if schedule_type is None:
        return None
    problem = schedule_problem(merged["sampler"], schedule_type, sampling)
    if problem:
        raise where.error(f"'schedule_type: {schedule_type}': {problem}")
    return str(schedule_type)


def _passes(raw: Mapping[str, Any], merged: Mapping[str, Any], mode: str,
            at: Callable[[str], Location]) -> dict[str, Any]:
    """``hires``, ``refiner`` and ``refiner_switch`` as rendered: a refiner that never takes
    over (switch 1) is none, and a pass a mode cannot run is an error where written (from
    defaults, it is left out)."""
    hires = hires_of(merged.get("hires"))
    refiner = merged.get("refiner")
    if hires is not None and mode != TXT2IMG:
        if "hires" in raw:
            raise at("hires").error(f"'hires' needs 'mode: {TXT2IMG}' (A1111's hires fix is "
                                    "a second pass of a txt2img picture)")
        hires = None
    if refiner is not None and not MODES[mode].generates:
        if "refiner" in raw:
            raise at("refiner").error(f"'refiner' needs a mode that samples, not {mode!r}")
        refiner = None
    if hires is not None:
        size = target(merged["width"], merged["height"], hires).size
        if max(size) > SIZE_MAX or min(size) < SIZE_MIN:
            raise at("hires").error(f"'hires' makes a {size[0]}x{size[1]} picture; its sides "
                                    f"must be between {SIZE_MIN} and {SIZE_MAX} pixels")
    switch = float(merged["refiner_switch"])
    if refiner is None or switch >= 1:  # never takes over: as without a refiner
        refiner, switch = None, float(SPEC["refiner_switch"].default)
    return {"hires": hires, "refiner": refiner, "refiner_switch": switch}


def _sampling(merged: Mapping[str, Any], passes: Mapping[str, Any],
              at: Callable[[str], Location]) -> str:
    """``sampling`` where it changes something: only for a sampler both diffusers and genimg
    draw (the others are drawn one way whatever it says), so a key holds what matters. A
    hires fix or a refiner runs diffusers' schedulers (``render/passes.py``): there it is
    ``diffusers``, and a sampler only genimg draws is an error."""
    sampler, sampling = merged["sampler"], merged["sampling"]
    own = SAMPLERS[sampler][0] == OWN
    second = next((name for name in ("hires", "refiner") if passes[name] is not None), None)
    if second is not None and own:
        raise at("sampler").error(
            f"'sampler: {sampler}' is drawn by genimg's own k-diffusion loop, which does not "
            f"run a second pass ('{second}') yet: choose a sampler diffusers also has")
    both = not own and draws_itself(sampler, "a1111")
    return sampling if both and second is None else "diffusers"


def _ensd(fields: Mapping[str, Any]) -> int:
    """ENSD where it changes the noise: samplers that draw noise at every step from the
    picture's generator (not A1111's Brownian tree of the SDE samplers)."""
    sampler = fields["sampler"]
    brownian = sampler in BROWNIAN and draws_itself(sampler, fields["sampling"])
    return fields["eta_noise_seed_delta"] if sampler in ANCESTRAL and not brownian else 0


def parse_defaults(raw: Any, where: Location, key_lines: Mapping[Any, int] | None = None,
                   forbidden: tuple[str, ...] = PRESENTATION_KEYS) -> dict[str, Any]:
    """Validate a mapping of image defaults (a gallery's ``defaults:`` or genimg.yaml's)."""
    if not isinstance(raw, Mapping):
        raise where.error(f"'defaults' must be a mapping of image keys, got {short_repr(raw)}")
    lines = key_lines or {}
    for key in raw:
        if key in forbidden:
            raise Location(where.file, lines.get(key, where.line)).error(
                f"{key!r} cannot be a default: it belongs to one image")
    return check_keys(raw, SPEC, "image default", where, lines)


def parse_image(raw: Any, where: Location, defaults: Mapping[str, Any] | None = None,
                key_lines: Mapping[str, int] | None = None) -> ImageSpec:
    """Validate one image mapping (``key_lines`` gives each key's file line)."""
    if not isinstance(raw, Mapping):
        raise where.error(
            f"an image must be a mapping of keys like 'prompt:', got {short_repr(raw)}")
    lines = key_lines or {}

    def at(key: str) -> Location:
        return Location(where.file, lines.get(key, where.line))

    check_keys(raw, SPEC, "image", where, lines)
    merged: dict[str, Any] = {**DEFAULTS, **(defaults or {}), **raw}
    # Defaults are checked where they are written; be safe anyway.
    check_keys({k: v for k, v in merged.items() if k not in raw}, SPEC, "image default", where)

    mode = MODES[merged["mode"]]
    source = merged.get("from") if mode.source else None
    if mode.source and not source:
        raise where.error(
            f"mode {mode.name!r} needs 'from:' (an image id or a file next to the post)")
    if not mode.source and "from" in raw:
        readers = " or ".join(f"'mode: {m.name}'" for m in MODES.values() if m.source)
        raise at("from").error(f"'from:' needs {readers}")
    prompt = merged.get("prompt", "")
    if mode.generates and not prompt.strip():
        raise at("prompt").error(f"mode {mode.name!r} needs a 'prompt:'")
    if mode.generates and merged["prompt_syntax"] == "a1111":
        prompt, merged["negative_prompt"] = (
            _a1111_prompt(merged, name, at(name)) for name in ("prompt", "negative_prompt"))
    if not mode.generates and "restore_faces" in raw:
        raise at("restore_faces").error(f"'restore_faces' is implied by 'mode: {RESTORE}'")

    fields: dict[str, Any] = {name: (key.convert(merged[name]) if key.convert else merged[name])
                              for name, key in SPEC.items() if name in DEFAULTS}
    passes = _passes(raw, merged, mode.name, at)
    sampling = _sampling(merged, passes, at) if mode.generates else "diffusers"
    fields.update(
        loras=_loras(prompt, merged.get("loras") or {}, at) if mode.generates else (),
        vae=merged.get("vae") if mode.generates else None,
        prompt=prompt if mode.generates else "",
        negative_prompt=merged["negative_prompt"] if mode.generates else "",
        restore_faces=fields["restore_faces"] and mode.generates,  # defaults too
        source=source,
        # Settings without effect are not kept, so the key is what the infotext says:
        # A1111 writes neither a variation seed of strength 0 nor an unused ENSD.
        schedule_type=(_schedule_type(merged, sampling, at("schedule_type")) if mode.generates
                       else None),
        subseed=fields["subseed"] if fields["subseed_strength"] else 0,
        **passes,
        sampling=sampling,
    )
    fields.update(
        eta_noise_seed_delta=_ensd(fields),
    )
    seed = merged.get("seed")
    if seed is None:
        seed = derive_seed({"mode": mode.name, **hashed(mode.seed_fields, fields)})
    return ImageSpec(
        **fields,
        seed=seed,
        id=raw.get("id"),
        caption=raw.get("caption"),
        alt=raw.get("alt"),
        location=where,
        key_lines=tuple((k, lines[k]) for k in raw if isinstance(k, str) and k in lines),
    )
