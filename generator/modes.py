"""The mode registry: each way of making a picture, declared once, without torch.

A mode says which spec keys its cache key hashes and its derived seed is made of,
whether it reads another picture (``from:``) and whether it diffuses from a prompt
with a model (else it works on its source alone), its progress units, its A1111
infotext parameters (named as in ``infotext.PARAMETERS``) and the renderer that runs
it (``RENDERERS``, imported only when a picture must be rendered). Validation
(``specs``), keys (``plan``), routing (``rendering``), infotext and figures read
these entries; adding a mode is one entry here plus its renderer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .specs import ImageSpec

TXT2IMG, IMG2IMG, RESTORE, PICTURE = "txt2img", "img2img", "restore", "picture"


@dataclass(frozen=True)
class Mode:
    name: str
    doc: str
    renderer: str  # a key of RENDERERS
    key_fields: tuple[str, ...]  # spec keys its cache key hashes (besides mode, recipe)
    seed_fields: tuple[str, ...]  # spec keys a derived seed is made of (besides mode)
    infotext: tuple[str, ...]  # its A1111 parameters, in order
    work: Callable[[ImageSpec], int]  # progress units of one picture
    source: bool = False  # reads another picture: ``from:`` is required
    generates: bool = True  # diffuses from a prompt with a model (may restore_faces after)
    restores: bool = False  # runs the face restorer (its fingerprint is in the key)


_DIFFUSION = ("prompt", "negative_prompt", "seed", "sampler", "steps", "cfg", "width", "height",
              "prompt_syntax", "clip_skip", "noise", "subseed", "subseed_strength",
              "eta_noise_seed_delta", "schedule_type", "sampling")
#: What a derived seed is made of: what shapes the diffusion. Not ``from:`` (an id:
#: renaming it must not change pixels), the model's name (its fingerprint is in the key),
#: nor ``restore_faces``/``face_weight`` (toggling face restoration must not re-run
#: diffusion). A restore keeps the diffusion basis: its seed is unused but shown, and
#: pinned (tests/test_pinned_keys.py).
_SEED = ("prompt", "negative_prompt", "sampler", "steps", "cfg", "width", "height",
         "prompt_syntax", "clip_skip", "schedule_type", "sampling")
#: Infotext parameters, in A1111's order (those left unset are not written).
_GENERATION = ("steps", "sampler", "schedule_type", "cfg", "seed", "size", "model_hash",
               "model", "model_revision", "subseed", "subseed_strength")
_GENERATION_TAIL = ("clip_skip", "eta_noise_seed_delta", "noise", "sampling")
#: The passes after the first (``passes``): hashed only when set, never in a derived seed
#: (adding a hires fix or a refiner keeps the first pass's picture). The refiner's
#: fingerprint, not its name, is in the key (``plan.key_fields``).
_HIRES = ("hires_upscale", "hires_resize", "hires_steps", "hires_upscaler")



def _txt2img_work(spec: ImageSpec) -> int:
    """A txt2img picture's steps, its hires fix's second pass included."""
    hires = spec.hires
    return spec.steps + (hires.steps or spec.steps if hires is not None else 0)


MODES: dict[str, Mode] = {mode.name: mode for mode in (
    Mode(TXT2IMG, "a picture from the prompt", "diffusion",
         (*_DIFFUSION, "hires", "refiner_switch"), _SEED,
         (*_GENERATION, "hires_denoise", *_GENERATION_TAIL, *_HIRES), work=_txt2img_work),
    Mode(IMG2IMG, "redraws `from` after the prompt", "diffusion",
         (*_DIFFUSION, "strength", "refiner_switch"),
         (*_SEED, "strength"), (*_GENERATION, "strength", *_GENERATION_TAIL), source=True,
         # diffusers runs int(steps × strength) of the steps
         work=lambda spec: max(1, int(spec.steps * spec.strength))),
    Mode(RESTORE, "GFPGAN alone on `from`", "faces", ("face_weight",), _SEED,
         ("generation", "face_restoration", "face_weight"), source=True, generates=False,
         restores=True, work=lambda spec: 1),
    # a picture file shown as it is: what `genimg import` makes of pictures it cannot redo
    Mode(PICTURE, "the file `from` as it is", "copy", (), _SEED, ("generation",), source=True,
         generates=False, work=lambda spec: 1),
)}


@dataclass(frozen=True)
class RendererEntry:
    """Where a renderer lives (``module:Class``), its option table if it has one, and how
    it splits tasks into batches (workers are sent exactly these batches, so pixels never
    depend on where a picture ran)."""

    path: str
    options: str | None = None  # ``module:TABLE`` of ``schema.Key``s
    exact: bool = False  # needs no model: a preview build runs it too, for real
    batches: str | None = None  # ``module:function(tasks, batch_size)``; else one by one

    def load(self) -> Any:
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(module), name)

    def option_table(self) -> Mapping[str, Any]:
        if self.options is None:
            return {}
        module, _, name = self.options.partition(":")
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]

    def batcher(self) -> Callable[[Sequence[Any], int], list[list[Any]]]:
        """The renderer's own split of a group of tasks into the calls it makes."""
        if self.batches is None:
            return lambda tasks, size: [[task] for task in tasks]
        module, _, name = self.batches.partition(":")
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


#: Renderers by name. Each is built with the ``SiteConfig``; ``preview`` draws every mode.
RENDERERS: dict[str, RendererEntry] = {
    "diffusion": RendererEntry("generator.render.diffusion:DiffusionRenderer",
                               batches="generator.render.diffusion:plan_batches"),
    "faces": RendererEntry("generator.render.faces:FaceRestorer",
                           options="generator.render.faces:FACE_OPTIONS"),
    "preview": RendererEntry("generator.render.preview:PreviewRenderer"),
    "copy": RendererEntry("generator.render.copy:CopyRenderer", exact=True),
}
#: The order renderers run in within a wave (models first, then restorations).
RENDER_ORDER = ("copy", "diffusion", "faces")
