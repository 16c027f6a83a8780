"""The passes after the first, as spec data: A1111's hires fix and its refiner (no torch).

A hires fix renders the picture, upscales it (its latent, or its pixels) and redraws it
at the bigger size with img2img, all as one picture: one spec, one cache entry, one key.
A refiner is a second model that takes over the sampling at a fraction of the steps.
``render/passes.py`` runs both; this module holds what a spec says about them, the
sizes A1111 computes and the names of its upscalers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

#: A1111's latent upscalers (``shared.latent_upscale_modes``): name -> torch's
#: ``interpolate`` mode and antialias.
LATENT_UPSCALERS: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
#: A1111's pixel upscalers that need no weights (PIL resampling; "None": Lanczos too).
PIXEL_UPSCALERS = ("None", "Lanczos", "Nearest")
BUILT_IN = (*LATENT_UPSCALERS, *PIXEL_UPSCALERS)
#: An upscaler file's suffixes (ESRGAN-family weights, loaded with spandrel).
UPSCALER_SUFFIXES = (".pth", ".safetensors", ".pt")
LATENT_FACTOR = 8  # pixels per latent cell


@dataclass(frozen=True)
class Hires:
    """A1111's hires fix: the first pass's size times ``scale`` (or ``resize_x`` ×
    ``resize_y``), redrawn with ``steps`` steps (0: the spec's own) at ``denoise``."""

    scale: float = 2.0
    steps: int = 0
    denoise: float = 0.7
    upscaler: str = "Latent"
    resize_x: int = 0
    resize_y: int = 0

    @property
    def latent(self) -> bool:
        """Is the latent upscaled (else the decoded picture)?"""
        return self.upscaler in LATENT_UPSCALERS

    @property
    def file(self) -> bool:
        """Is the upscaler a weights file (an ESRGAN-family model)?"""
        return self.upscaler not in BUILT_IN

    @property
    def resized(self) -> bool:
        return bool(self.resize_x or self.resize_y)

    def as_key(self) -> dict[str, Any]:
        """What a cache key holds: A1111 ignores the scale when a size is given."""
        data = asdict(self)
        if self.resized:
            del data["scale"]
        else:
            del data["resize_x"], data["resize_y"]
        return data


def hires_of(value: Hires | Mapping[str, Any] | None) -> Hires | None:
    """A checked ``hires:`` mapping (or a ``Hires``) as a ``Hires``."""
    if value is None or isinstance(value, Hires):
        return value
    names = {f.name for f in fields(Hires)}
    given = {k: v for k, v in value.items() if k in names}
    for name in ("scale", "denoise"):
        if name in given:
            given[name] = float(given[name])
    return Hires(**given)


def hires_key(value: Hires | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``schema``'s convert of ``hires:``: the dictionary a key hashes."""
    hires = hires_of(value)
    return None if hires is None else hires.as_key()


@dataclass(frozen=True)
class Target:
    """Where a hires fix goes: the upscaled size, then the latent cells cut from each
    side (A1111's "Hires resize" to another aspect ratio crops the middle)."""

    upscaled: tuple[int, int]  # pixels, multiples of 8
    crop: tuple[int, int]  # latent cells cut in x and y, split between both sides

    @property
    def size(self) -> tuple[int, int]:
        """The final picture's size."""
        return (self.upscaled[0] - self.crop[0] * LATENT_FACTOR,
                self.upscaled[1] - self.crop[1] * LATENT_FACTOR)


def target(width: int, height: int, hires: Hires) -> Target:
    """A1111's ``calculate_target_resolution``, rounded down to whole latent cells (its
    VAE encodes and its latent upscale does the same)."""
    if not hires.resized:
        wide, high = int(width * hires.scale), int(height * hires.scale)
        goal = (wide, high)
    elif not hires.resize_y:
        wide, high = hires.resize_x, hires.resize_x * height // width
        goal = (wide, high)
    elif not hires.resize_x:
        wide, high = hires.resize_y * width // height, hires.resize_y
        goal = (wide, high)
    else:
        goal = (hires.resize_x, hires.resize_y)
        if width / height < hires.resize_x / hires.resize_y:
            wide, high = hires.resize_x, hires.resize_x * height // width
        else:
            wide, high = hires.resize_y * width // height, hires.resize_y
    cells = (wide // LATENT_FACTOR, high // LATENT_FACTOR)
    crop = ((wide - goal[0]) // LATENT_FACTOR, (high - goal[1]) // LATENT_FACTOR)
    return Target((cells[0] * LATENT_FACTOR, cells[1] * LATENT_FACTOR), crop)


def hires_steps(hires: Hires, steps: int) -> int:
    """A1111's ``Hires steps``: 0 means as many as the first pass."""
    return hires.steps or steps


def img2img_schedule(steps: int, denoise: float) -> tuple[int, float]:
    """A1111's second pass runs exactly ``steps`` steps, the last ones of a schedule of
    ``int(steps / min(denoise, 0.999))`` (``setup_img2img_steps`` with its steps given):
    that schedule's length, and the strength with which diffusers runs ``steps`` of it."""
    total = int(steps / min(denoise, 0.999))
    return total, min(1.0, (steps + 0.5) / total)
