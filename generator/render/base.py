"""The renderer interface: what the build hands a renderer and gets back."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..modes import MODES

if TYPE_CHECKING:
    from PIL import Image

    from ..models import FaceRestorerRef, FileRef, ModelRef
    from ..specs import ImageSpec

#: Called with the number of denoising steps (or restorations) just finished.
StepCallback = Callable[[int], None]


@dataclass(frozen=True)
class RenderTask:
    """One picture to make. Its parents are already rendered: ``source`` holds one."""

    key: str
    spec: ImageSpec
    model: ModelRef | None = None  # txt2img / img2img
    restorer: FaceRestorerRef | None = None  # restore
    source: Image.Image | None = None  # img2img / restore: the parent picture, RGB
    loras: tuple[tuple[FileRef, float], ...] = ()  # txt2img / img2img: LoRAs and weights
    vae: FileRef | None = None  # txt2img / img2img: a VAE replacing the model's
    embeddings: tuple[FileRef, ...] = ()  # txt2img / img2img: textual inversions it uses
    refiner: ModelRef | None = None  # txt2img / img2img: the model taking over (``refiner:``)
    upscaler: FileRef | None = None  # txt2img: its hires fix's upscaler file

    @property
    def work(self) -> int:
        """Progress units (``modes.Mode.work``): denoising steps run, 1 for a restoration."""
        return MODES[self.spec.mode].work(self.spec)


class Renderer(Protocol):
    """Turns ready tasks into pictures, loading each model once, lazily."""

    def render(
        self, tasks: Sequence[RenderTask], on_step: StepCallback
    ) -> Iterator[tuple[RenderTask, Image.Image]]:
        """Yield each task's picture as soon as it is done (the build stores it at once)."""
        ...

    def close(self) -> None:
        """Free models and GPU memory."""
        ...
