"""The renderer of ``mode: picture``: the source file as it is, no model needed.

``genimg import`` stores such pictures itself (the original PNG's bytes, or a lossless
PNG of a JPEG/WebP); this runs only when that cache entry is gone, and gives back
the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from PIL import Image

from ..errors import GenimgError
from .base import RenderTask, StepCallback


class CopyRenderer:
    """Hands each task's source picture back unchanged."""

    def __init__(self, config: object = None):
        """Takes the ``SiteConfig`` like every renderer, and needs nothing of it."""

    def render(
        self, tasks: Sequence[RenderTask], on_step: StepCallback
    ) -> Iterator[tuple[RenderTask, Image.Image]]:
        for task in tasks:
            if task.source is None:
                raise GenimgError(f"picture {task.key[:12]} has no source file")
            on_step(task.work)
            yield task, task.source

    def close(self) -> None:
        """Holds nothing."""
