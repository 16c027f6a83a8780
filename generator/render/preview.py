"""Placeholder pictures for ``--preview``: no model, deterministic, clearly marked.

Each shows its prompt, seed and mode on a seed-derived background; img2img and
restore pictures show their source faintly, so chains stay recognisable.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator, Sequence

from PIL import Image, ImageDraw, ImageFont

from ..modes import IMG2IMG, RESTORE
from ..passes import target
from .base import RenderTask, StepCallback


def _colour(seed: int, salt: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{salt}:{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]


def preview_picture(task: RenderTask) -> Image.Image:
    """Draw the placeholder for one task (pure function of the task's spec and source)."""
    spec = task.spec
    size = (spec.width, spec.height)
    if spec.hires is not None:  # the hires fix's picture is its second pass's size
        size = target(spec.width, spec.height, spec.hires).size
    if task.source is not None:
        size = task.source.size if spec.mode == RESTORE else size
    upper, lower = _colour(spec.seed, "top"), _colour(spec.seed, "bottom")
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.composite(Image.new("RGB", size, lower), Image.new("RGB", size, upper), gradient)
    if task.source is not None:
        faded = task.source.convert("RGB").resize(size)
        image = Image.blend(image, faded, 0.45 if spec.mode == IMG2IMG else 1.0)
    font_size = max(10, size[0] // 24)
    font = ImageFont.load_default(size=font_size)
    if spec.mode == RESTORE:
        lines = ["PREVIEW  face restore", f"GFPGAN weight {spec.face_weight:g}"]
    else:
        lines = ["PREVIEW", f"{spec.mode}  seed {spec.seed}"]
        lines += textwrap.wrap(spec.prompt, width=max(12, size[0] // (font_size // 2 + 1)))[:8]
    line_height = int(font_size * 1.3)
    panel = (len(lines) * line_height) + font_size
    # Text sits on a dark panel (at the bottom for restores, whose source text shows above),
    # so chained placeholders stay legible.
    top = size[1] - panel if spec.mode == RESTORE else 0
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle([0, top, size[0], top + panel], fill=(0, 0, 0, 170))
    y = top + font_size // 2
    for line in lines:
        draw.text((font_size, y), line, fill=(255, 255, 255, 255), font=font)
        y += line_height
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    outline = (255, 215, 0) if spec.mode == RESTORE else (255, 255, 255)
    ImageDraw.Draw(image).rectangle([0, 0, size[0] - 1, size[1] - 1], outline=outline, width=3)
    return image


class PreviewRenderer:
    """The renderer behind ``genimg build --preview``: every mode, no model at all."""

    def __init__(self, config: object = None):
        """Takes the ``SiteConfig`` like every renderer, and needs nothing of it."""

    def render(
        self, tasks: Sequence[RenderTask], on_step: StepCallback
    ) -> Iterator[tuple[RenderTask, Image.Image]]:
        for task in tasks:
            image = preview_picture(task)
            on_step(task.work)
            yield task, image

    def close(self) -> None:
        pass
