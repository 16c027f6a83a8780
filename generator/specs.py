"""Image specs: the YAML a writer puts in a ``gallery`` block, validated.

Pure data and checks; no I/O. Cache keys and the dependency graph live in
``plan.py`` because they need model fingerprints from disk.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import reprlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import GenimgError

MODES = ("txt2img", "img2img", "restore")
SEED_MAX = 2**32 - 1
SIZE_MIN, SIZE_MAX = 64, 4096

#: A1111 sampler name -> (diffusers scheduler class, extra scheduler config).
#: Data only, so validation needs no diffusers import; ``render.diffusion`` uses it.
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DDIM": ("DDIMScheduler", {}),
    "PLMS": ("PNDMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
}

#: Keys that only change how a picture is shown: never part of a cache key.
PRESENTATION_KEYS = frozenset({"id", "caption", "alt"})

#: Every key an image may carry, with the Python types it accepts.
SPEC_KEYS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "prompt": (str,),
    "negative_prompt": (str,),
    "seed": (int,),
    "mode": (str,),
    "from": (str,),
    "model": (str,),
    "sampler": (str,),
    "steps": (int,),
    "cfg": (int, float),
    "width": (int,),
    "height": (int,),
    "strength": (int, float),
    "restore_faces": (bool,),
    "face_weight": (int, float),
    "caption": (str,),
    "alt": (str,),
}

BLOCK_KEYS = ("images", "columns", "defaults", "caption")

DEFAULTS: dict[str, Any] = {
    "negative_prompt": "",
    "mode": "txt2img",
    "model": "default",
    "sampler": "Euler a",
    "steps": 20,
    "cfg": 7.0,
    "width": 512,
    "height": 512,
    "strength": 0.75,
    "restore_faces": False,
    "face_weight": 0.5,
}


@dataclass(frozen=True)
class Location:
    """Where a spec was written: for error messages and `cache ls`."""

    file: str
    line: int

    def error(self, message: str) -> GenimgError:
        return GenimgError(message, self.file, self.line)


@dataclass(frozen=True)
class ImageSpec:
    """One picture, fully defaulted and validated."""

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
    source: str | None = None  # the ``from:`` value, as written
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
        """Everything of the spec itself that changes pixels (the mode decides which)."""
        fields: dict[str, Any] = {"mode": self.mode}
        if self.mode in ("txt2img", "img2img"):
            fields.update(
                prompt=self.prompt,
                negative_prompt=self.negative_prompt,
                seed=self.seed,
                sampler=self.sampler,
                steps=self.steps,
                cfg=float(self.cfg),
                width=self.width,
                height=self.height,
            )
        if self.mode == "img2img":
            fields["strength"] = float(self.strength)
        if self.mode == "restore" or self.restore_faces:
            fields["face_weight"] = float(self.face_weight)
        fields["restore_faces"] = self.restore_faces and self.mode != "restore"
        return fields

    def without_restore(self) -> ImageSpec:
        """The unrestored picture that ``restore_faces`` is applied on."""
        return replace(self, restore_faces=False, id=None, caption=None, alt=None)

    def as_yaml_dict(self) -> dict[str, Any]:
        """A spec a writer could paste back into a gallery block."""
        data = asdict(self)
        data.pop("location")
        data.pop("key_lines")
        data["from"] = data.pop("source")
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class Gallery:
    """One ``gallery`` block: a row of pictures shown side by side."""

    images: tuple[ImageSpec, ...]
    columns: int | None
    caption: str | None
    location: Location


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _ShortRepr(reprlib.Repr):
    """``reprlib`` that also cuts short subclasses (``LineDict``, ``LineList``): plain
    ``reprlib`` falls back to the full ``repr`` for them."""

    def repr1(self, x: Any, level: int) -> str:
        for base in (dict, list, tuple, set, frozenset, str):
            if isinstance(x, base) and type(x) is not base:
                return getattr(self, f"repr_{base.__name__}")(x, level)
        return super().repr1(x, level)


_REPR = _ShortRepr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxtuple = 4
_REPR.maxlevel = 2


def short_repr(value: Any) -> str:
    """``repr`` cut short: a YAML alias bomb or a huge value never floods a message."""
    text = _REPR.repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             dict: "a mapping"}
    if float in types:
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in types)


def require_type(key: str, value: Any, types: tuple[type, ...], where: Location) -> None:
    """``value`` must be one of ``types``; YAML's true/false never counts as a number."""
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise where.error(f"{key!r} must be {_type_name(types)}, got {short_repr(value)}")


def _check_type(key: str, value: Any, where: Location) -> None:
    require_type(key, value, SPEC_KEYS[key], where)


def _check_value(key: str, value: Any, where: Location,
                 known_samplers: Mapping[str, Any] = SAMPLERS) -> None:
    """Range and format checks of one key whose type is already right."""
    if key == "mode" and value not in MODES:
        raise where.error(
            f"unknown mode {short_repr(value)}{did_you_mean(value, MODES)}; "
            f"expected one of {', '.join(MODES)}")
    elif key == "sampler" and value not in known_samplers:
        hint = did_you_mean(value, tuple(known_samplers))
        raise where.error(f"unknown sampler {short_repr(value)}{hint}")
    elif key in ("width", "height") and (not SIZE_MIN <= value <= SIZE_MAX or value % 8):
        raise where.error(
            f"{key} must be a multiple of 8 between {SIZE_MIN} and {SIZE_MAX}, got {value}")
    elif key == "steps" and not 1 <= value <= 500:
        raise where.error(f"steps must be between 1 and 500, got {value}")
    elif key == "cfg" and not 0 <= value <= 50:
        raise where.error(f"cfg must be between 0 and 50, got {value}")
    elif key == "strength" and not 0 < value <= 1:
        raise where.error(f"strength must be in (0, 1], got {value}")
    elif key == "face_weight" and not 0 <= value <= 1:
        raise where.error(f"face_weight must be between 0 and 1, got {value}")
    elif key == "seed" and not 0 <= value <= SEED_MAX:
        raise where.error(f"seed must be between 0 and {SEED_MAX}, got {value}")
    elif key == "id" and (not value.strip() or any(c.isspace() for c in value)):
        raise where.error(f"an id must be one word without spaces, got {short_repr(value)}")


def _check_entry(key: Any, value: Any, where: Location, what: str,
                 known_samplers: Mapping[str, Any]) -> None:
    if not isinstance(key, str) or key not in SPEC_KEYS:
        hint = did_you_mean(str(key), tuple(SPEC_KEYS))
        raise where.error(f"unknown {what} key {short_repr(key)}{hint}")
    if value is None:
        raise where.error(f"{key!r} has no value")
    _check_type(key, value, where)
    _check_value(key, value, where, known_samplers)


def parse_defaults(
    raw: Any,
    where: Location,
    key_lines: Mapping[Any, int] | None = None,
    forbidden: tuple[str, ...] = ("id", "caption", "alt"),
    known_samplers: Mapping[str, Any] = SAMPLERS,
) -> dict[str, Any]:
    """Validate a mapping of image defaults (a gallery's ``defaults:`` or genimg.yaml's)."""
    if not isinstance(raw, Mapping):
        raise where.error(f"'defaults' must be a mapping of image keys, got {short_repr(raw)}")
    lines = key_lines or {}
    for key, value in raw.items():
        at = Location(where.file, lines.get(key, where.line))
        if key in forbidden:
            raise at.error(f"{key!r} cannot be a default: it belongs to one image")
        _check_entry(key, value, at, "image default", known_samplers)
    return dict(raw)


#: What a derived seed depends on: what shapes the diffusion. Not ``from:`` (an id: renaming
#: it must not change pixels), the model's name (its fingerprint is in the key), nor
#: ``restore_faces``/``face_weight`` (toggling face restoration must not re-run diffusion).
SEED_BASIS = ("mode", "prompt", "negative_prompt", "sampler", "steps", "cfg", "width", "height")


def seed_basis(fields: Mapping[str, Any]) -> dict[str, Any]:
    basis = {key: fields[key] for key in SEED_BASIS}
    if fields["mode"] == "img2img":
        basis["strength"] = fields["strength"]
    return basis


def derive_seed(fields: Mapping[str, Any]) -> int:
    """A stable seed for a spec that gives none, so builds stay reproducible."""
    blob = json.dumps(dict(fields), sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "big")


def parse_image(
    raw: Any,
    where: Location,
    defaults: Mapping[str, Any] | None = None,
    key_lines: Mapping[str, int] | None = None,
    known_samplers: Mapping[str, Any] = SAMPLERS,
) -> ImageSpec:
    """Validate one image mapping (``key_lines`` gives each key's file line)."""
    if not isinstance(raw, Mapping):
        raise where.error(
            f"an image must be a mapping of keys like 'prompt:', got {short_repr(raw)}")
    lines = key_lines or {}

    def at(key: str) -> Location:
        return Location(where.file, lines.get(key, where.line))

    for key, value in raw.items():
        _check_entry(key, value, at(str(key)), "image", known_samplers)
    merged: dict[str, Any] = {**DEFAULTS, **(defaults or {}), **raw}
    for key, value in merged.items():
        if key not in raw:  # defaults are checked where they are written; be safe anyway
            _check_entry(key, value, where, "image default", known_samplers)

    mode = merged["mode"]
    source = merged.get("from") if mode != "txt2img" else None
    if mode in ("img2img", "restore") and not source:
        raise where.error(f"mode {mode!r} needs 'from:' (an image id or a file next to the post)")
    if mode == "txt2img" and "from" in raw:
        raise at("from").error("'from:' needs 'mode: img2img' or 'mode: restore'")
    prompt = merged.get("prompt", "")
    if mode != "restore" and not prompt.strip():
        raise at("prompt").error(f"mode {mode!r} needs a 'prompt:'")
    if mode == "restore" and "restore_faces" in raw:
        raise at("restore_faces").error("'restore_faces' is implied by 'mode: restore'")

    fields = dict(
        prompt=prompt if mode != "restore" else "",
        negative_prompt=merged["negative_prompt"] if mode != "restore" else "",
        mode=mode,
        model=merged["model"],
        sampler=merged["sampler"],
        steps=merged["steps"],
        cfg=float(merged["cfg"]),
        width=merged["width"],
        height=merged["height"],
        strength=float(merged["strength"]),
        restore_faces=bool(merged["restore_faces"]) and mode != "restore",  # defaults too
        face_weight=float(merged["face_weight"]),
        source=source,
    )
    seed = merged.get("seed")
    if seed is None:
        seed = derive_seed(seed_basis(fields))
    return ImageSpec(
        **fields,
        seed=seed,
        id=raw.get("id"),
        caption=raw.get("caption"),
        alt=raw.get("alt"),
        location=where,
        key_lines=tuple((k, lines[k]) for k in raw if isinstance(k, str) and k in lines),
    )
