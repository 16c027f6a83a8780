"""Stable Diffusion txt2img and img2img with diffusers, the way A1111 means the settings.

torch and diffusers are imported inside functions only: importing this module is
free, so a build whose pictures are all cached never pays for torch.

Reproducibility: every picture gets its own CPU ``torch.Generator`` seeded with its
spec's seed, so the initial noise (and the ancestral samplers' noise) is the same
on any device and whether or not the picture shares a batch with others. The
pixels then agree up to float rounding (a channel one step off here and there):
batched kernels, thread counts and GPUs sum in different orders.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenimgError
from ..models import hf_hub_cache, model_missing_error
from ..modes import IMG2IMG, MODES, TXT2IMG
from ..samplers import SAMPLERS
from .base import RenderTask, StepCallback
from .device import pick_device, pick_dtype

if TYPE_CHECKING:
    from PIL import Image

    from ..config import SiteConfig
    from ..models import ModelRef


def batch_key(task: RenderTask) -> tuple:
    """Tasks with equal keys can share one pipeline call (one scalar per setting)."""
    spec = task.spec
    model = task.model.fingerprint if task.model else None
    strength = float(spec.strength) if spec.mode == IMG2IMG else None
    return (model, spec.mode, spec.width, spec.height, spec.steps, spec.sampler,
            float(spec.cfg), strength)


def plan_batches(tasks: Sequence[RenderTask], batch_size: int) -> list[list[RenderTask]]:
    """Group compatible tasks into batches of at most ``batch_size``.

    Models come in order of first use and each model's tasks stay together, so a
    model is activated once; otherwise the build's order is kept.
    """
    first_use: dict[Any, int] = {}
    groups: dict[tuple, list[RenderTask]] = {}
    for task in tasks:
        first_use.setdefault(batch_key(task)[0], len(first_use))
        groups.setdefault(batch_key(task), []).append(task)
    ordered = sorted(groups.items(), key=lambda item: first_use[item[0][0]])  # stable
    return [group[i:i + batch_size] for _, group in ordered
            for i in range(0, len(group), batch_size)]


def _fit(source: Image.Image | None, width: int, height: int) -> Image.Image:
    """A1111's "just resize": the parent picture stretched to the requested size."""
    from PIL import Image

    if source is None:
        raise GenimgError("an img2img picture was handed to the renderer without its parent")
    return source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


@dataclass
class _Model:
    """One loaded model: both pipelines share the same modules (one copy in memory)."""

    txt2img: Any
    img2img: Any
    scheduler_config: Any


class DiffusionRenderer:
    """Renders txt2img and img2img tasks; loads each model once for its lifetime."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self._models: dict[str, _Model] = {}
        self._active: str | None = None
        self._device: str | None = None
        self._dtype: Any = None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device(self.config.device)
        return self._device

    @property
    def dtype(self) -> Any:
        if self._dtype is None:
            self._dtype = pick_dtype(self.config.dtype, self.device)
        return self._dtype

    def render(
        self, tasks: Sequence[RenderTask], on_step: StepCallback
    ) -> Iterator[tuple[RenderTask, Image.Image]]:
        """Yield every task's picture, batch by batch, as soon as its batch is done."""
        for task in tasks:
            where = (task.spec.location.file, task.spec.location.line)
            if MODES[task.spec.mode].renderer != "diffusion":
                raise GenimgError(f"the diffusion renderer cannot make a {task.spec.mode!r} "
                                  "picture", *where)
            if task.model is None:
                raise GenimgError("a txt2img or img2img picture needs a model", *where)
        for batch in plan_batches(tasks, max(1, self.config.batch_size)):
            yield from zip(batch, self._run(batch, on_step), strict=True)

    def close(self) -> None:
        """Drop every model and give GPU memory back."""
        self._models.clear()
        self._active = None
        gc.collect()
        if self._device and self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # --- one batch --------------------------------------------------------------------

    def _run(self, batch: list[RenderTask], on_step: StepCallback) -> list[Image.Image]:
        import diffusers
        import torch

        spec = batch[0].spec
        assert batch[0].model is not None
        model = self._activate(batch[0].model)
        pipe = model.txt2img if spec.mode == TXT2IMG else model.img2img
        scheduler_class, overrides = SAMPLERS[spec.sampler]
        pipe.scheduler = getattr(diffusers, scheduler_class).from_config(
            model.scheduler_config, **overrides
        )
        kwargs: dict[str, Any] = {}
        if spec.mode == TXT2IMG:
            kwargs.update(width=spec.width, height=spec.height)
        else:
            kwargs["image"] = [_fit(task.source, spec.width, spec.height) for task in batch]
            # diffusers refuses to run 0 steps; A1111 always runs at least one.
            kwargs["strength"] = max(spec.strength, min(1.0, 1.000001 / spec.steps))

        work, done = batch[0].work, 0

        def step_end(pipeline: Any, index: int, _timestep: Any, tensors: dict) -> dict:
            # Progress in A1111 steps, even for samplers that call the UNet twice a step.
            nonlocal done
            total = getattr(pipeline, "num_timesteps", None) or work
            now = min(work, (index + 1) * work // total)
            if now > done:
                on_step((now - done) * len(batch))
                done = now
            return tensors

        images = pipe(
            prompt=[task.spec.prompt for task in batch],
            negative_prompt=[task.spec.negative_prompt for task in batch],
            num_inference_steps=spec.steps,
            guidance_scale=spec.cfg,
            generator=[torch.Generator("cpu").manual_seed(task.spec.seed) for task in batch],
            callback_on_step_end=step_end,
            output_type="pil",
            **kwargs,
        ).images
        if done < work:
            on_step((work - done) * len(batch))
        return [image.convert("RGB") for image in images]

    # --- models -----------------------------------------------------------------------

    def _activate(self, ref: ModelRef) -> _Model:
        """The model, loaded on first use; only the active one sits on the GPU."""
        key = ref.fingerprint
        if key not in self._models:
            self._models[key] = self._load(ref)
        model = self._models[key]
        if self._active != key and not self._offloading:
            if self._active is not None and self.device != "cpu":
                self._models[self._active].txt2img.to("cpu")
            model.txt2img.to(self.device)
        self._active = key
        return model

    @property
    def _offloading(self) -> bool:
        return self.config.cpu_offload and self.device != "cpu"

    def _load(self, ref: ModelRef) -> _Model:
        """Both pipelines of a model, never downloading unless genimg.yaml allows it."""
        if ref.problem or ref.kind == "preview":
            raise model_missing_error(ref.name, ref.problem or "a preview model has no weights")
        if ref.kind in ("folder", "file") and not Path(ref.location).exists():
            raise model_missing_error(ref.name, f"{ref.location} does not exist")
        from diffusers import (
            AutoPipelineForImage2Image,
            AutoPipelineForText2Image,
            StableDiffusionPipeline,
        )
        from diffusers.utils import deprecation_utils
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()  # the build shows its own progress
        transformers_logging.disable_progress_bar()
        offline = not self.config.allow_downloads
        common: dict[str, Any] = dict(
            safety_checker=None, requires_safety_checker=False, local_files_only=offline
        )
        # diffusers renamed torch_dtype to dtype (the old name now warns).
        common["dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"] = (
            self.dtype
        )
        try:
            if ref.kind == "file":
                if ref.config:  # a diffusers folder, or an original .yaml config
                    name = "config" if Path(ref.config).is_dir() else "original_config"
                    common[name] = ref.config
                txt2img = StableDiffusionPipeline.from_single_file(ref.location, **common)
            else:
                if ref.kind == "hub":  # the same cache the resolver looked in
                    common.update(revision=ref.revision, cache_dir=str(hf_hub_cache()))
                txt2img = AutoPipelineForText2Image.from_pretrained(ref.location, **common)
            img2img = AutoPipelineForImage2Image.from_pipe(txt2img)
        except Exception as exc:  # diffusers raises many types for unusable weights
            hint = ""
            if ref.kind == "file" and not ref.config:
                hint = (" (give the model a 'config:' in genimg.yaml: a local diffusers folder "
                        "with the same architecture, so nothing has to be fetched)")
            elif ref.kind == "hub" and offline:
                hint = " (downloads are off: 'allow_downloads: true' in genimg.yaml fetches it)"
            raise GenimgError(
                f"cannot load model {ref.name!r} from {ref.location}: "
                f"{type(exc).__name__}: {exc}{hint}"
            ) from exc
        for pipe in (txt2img, img2img):
            pipe.set_progress_bar_config(disable=True)
            if self._offloading:
                pipe.enable_model_cpu_offload(device=self.device)
        if self.config.vae_tiling:
            txt2img.vae.enable_tiling()
        return _Model(txt2img, img2img, txt2img.scheduler.config)
