"""The passes after the first, as A1111 runs them: its hires fix and its refiner.

``DiffusionRenderer`` runs a picture's first pass with what ``first_pass`` adds to its
pipeline call, then hands the result to ``Passes.finish``:

* **hires fix** (A1111's ``sample_hr_pass``): the first pass's latent is interpolated
  (the ``Latent`` upscalers) or its picture upscaled (Lanczos, Nearest, or an ESRGAN-family
  file through spandrel, as A1111 itself loads them) and encoded; the middle is cut to a
  ``Hires resize`` aspect ratio; then img2img runs exactly the hires steps, the last ones
  of a schedule of ``steps / denoise`` (A1111's ``setup_img2img_steps``), from fresh noise
  of the picture's own seed at the new size (A1111 makes a new ``ImageRNG``).
* **refiner**: the first pass stops where diffusers' ``denoising_end`` says (A1111
  switches at the first timestep ``t`` with ``(999 - t) / 1000 >= switch``: the same
  cut), the refiner's img2img continues from there (``denoising_start``), its noise from
  the same generators, as A1111's sampler continues its own.

Every picture keeps its own generators and is encoded alone, so batching changes nothing.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..errors import GenimgError
from ..loras import prompt_text
from ..passes import LATENT_FACTOR, LATENT_UPSCALERS, hires_steps, img2img_schedule, target
from ..samplers import scheduler_for
from .base import RenderTask, StepCallback

if TYPE_CHECKING:
    from PIL import Image

    from ..models import FileRef, ModelRef
    from ..specs import ImageSpec
    from .diffusion import DiffusionRenderer


def pass_key(task: RenderTask) -> tuple[Any, ...]:
    """What of the passes after the first a batch must share (``diffusion.batch_key``)."""
    spec = task.spec
    refiner = task.refiner.fingerprint if task.refiner is not None and spec.refiner else None
    return (spec.hires, task.upscaler.fingerprint if task.upscaler else None, refiner,
            spec.refiner_switch if refiner else None)


def extra_work(spec: ImageSpec) -> int:
    """Progress units of the passes after the first (a refiner's are the first's)."""
    return hires_steps(spec.hires, spec.steps) if spec.hires is not None else 0


def _cutoff(scheduler: Any, switch: float) -> int:
    """diffusers' ``denoising_end``/``denoising_start`` timestep for a switch fraction."""
    train = scheduler.config.num_train_timesteps
    return round(train - switch * train)


def _where(task: RenderTask, key: str) -> tuple[str, int]:
    where = task.spec.at(key)
    return where.file, where.line


class _Progress:
    """A pass's progress in A1111 steps, for diffusers' ``callback_on_step_end``."""

    def __init__(self, work: int, pictures: int, on_step: StepCallback) -> None:
        self.work, self.pictures, self.on_step, self.done = work, pictures, on_step, 0

    def step(self, pipeline: Any, index: int, _timestep: Any, tensors: dict) -> dict:
        total = getattr(pipeline, "num_timesteps", None) or self.work
        self.advance(min(self.work, (index + 1) * self.work // total))
        return tensors

    def advance(self, now: int) -> None:
        if now > self.done:
            self.on_step((now - self.done) * self.pictures)
            self.done = now


class Passes:
    """A ``DiffusionRenderer``'s passes after the first, with the refiners and upscaler
    models they load (once each, for the renderer's lifetime)."""

    def __init__(self, renderer: DiffusionRenderer) -> None:
        self.renderer = renderer
        self._refiners: dict[str, Any] = {}
        self._upscalers: dict[str, Any] = {}

    def close(self) -> None:
        self._refiners.clear()
        self._upscalers.clear()

    # --- the first pass's call -----------------------------------------------------------

    def first_pass(self, pipe: Any, task: RenderTask) -> dict[str, Any]:
        """What the first pipeline call changes: latents out when a latent upscale or a
        refiner follows, and where the refiner takes over."""
        spec = task.spec
        if spec.hires is None and self._refines(pipe, task, spec.steps):  # else: in its pass
            return {"output_type": "latent", "denoising_end": spec.refiner_switch}
        if spec.hires is not None and spec.hires.latent:
            return {"output_type": "latent"}
        return {}

    def _refines(self, pipe: Any, task: RenderTask, steps: int) -> bool:
        """Does the refiner sample any of ``pipe``'s ``steps`` (A1111 never switches past the
        last one)?"""
        spec = task.spec
        if spec.refiner is None or task.refiner is None:
            return False
        if getattr(pipe, "text_encoder_2", None) is None:
            raise GenimgError("'refiner' needs an SDXL model: diffusers hands a picture over "
                              "between SDXL pipelines only", *_where(task, "refiner"))
        pipe.scheduler.set_timesteps(steps)
        return bool((pipe.scheduler.timesteps < _cutoff(pipe.scheduler,
                                                        spec.refiner_switch)).any())

    def finish(self, pipe: Any, batch: list[RenderTask], prompts: dict[str, Any], output: Any,
               generators: list[Any], on_step: StepCallback) -> list[Image.Image]:
        """The pictures, once the passes after the first have run on ``output`` (what the
        first call returned: latents, or pictures)."""
        spec = batch[0].spec
        if spec.hires is not None:
            return self._hires(pipe, batch, prompts, output, on_step)
        if self._refines(pipe, batch[0], spec.steps):
            return self._refine(batch, prompts, output, generators, spec.steps)
        return list(output)

    # --- hires fix -----------------------------------------------------------------------

    def _hires(self, pipe: Any, batch: list[RenderTask], prompts: dict[str, Any], output: Any,
               on_step: StepCallback) -> list[Image.Image]:
        import torch

        spec = batch[0].spec
        hires = spec.hires
        assert hires is not None
        goal = target(spec.width, spec.height, hires)
        wide, high = goal.upscaled
        if hires.latent:
            mode, antialias = LATENT_UPSCALERS[hires.upscaler]
            latents = torch.nn.functional.interpolate(
                output, size=(high // LATENT_FACTOR, wide // LATENT_FACTOR), mode=mode,
                antialias=antialias)
        else:
            latents = torch.cat([_encoded(pipe, self._upscaled(image, goal.upscaled, task))
                                 for image, task in zip(output, batch, strict=True)])
        cut_x, cut_y = goal.crop
        latents = latents[:, :, cut_y // 2:latents.shape[2] - (cut_y + 1) // 2,
                          cut_x // 2:latents.shape[3] - (cut_x + 1) // 2]
        img2img = self._img2img(pipe)
        img2img.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        steps = hires_steps(hires, spec.steps)
        total, strength = img2img_schedule(steps, hires.denoise)
        generators, noise = _fresh_noise(batch)
        progress = _Progress(steps, len(batch), on_step)
        # A1111's refiner takes over in the hires pass ("Hires fix: which pass to enable
        # refiner for", by default the second), at the same timestep rule.
        refines = self._refines(img2img, batch[0], total)
        switch = {"output_type": "latent", "denoising_end": spec.refiner_switch} if refines else {}
        with noise:
            images = img2img(**prompts, image=latents, num_inference_steps=total,
                             strength=strength, guidance_scale=spec.cfg, generator=generators,
                             callback_on_step_end=progress.step,
                             **{"output_type": "pil", **switch}).images
        progress.advance(steps)
        if refines:
            return self._refine(batch, prompts, images, generators, total)
        return list(images)

    def _img2img(self, pipe: Any) -> Any:
        """The img2img pipeline sharing ``pipe``'s modules (its VAE, LoRAs, embeddings)."""
        for model in self.renderer._models.values():
            if model.txt2img is pipe:
                return model.img2img
        raise GenimgError("a hires fix was asked of a pipeline the renderer did not load")

    def _upscaled(self, image: Image.Image, size: tuple[int, int],
                  task: RenderTask) -> Image.Image:
        """A1111's ``resize_image`` with an upscaler: Nearest, or the upscaler model run
        (at most three times) until the picture is big enough, then Lanczos to the size."""
        from PIL import Image

        hires = task.spec.hires
        assert hires is not None
        if hires.upscaler == "Nearest":
            return image.resize(size, Image.Resampling.NEAREST)
        if hires.file:
            assert task.upscaler is not None
            model = self._upscaler(task.upscaler, task)
            for _ in range(3):
                if image.width >= size[0] and image.height >= size[1]:
                    break
                before = image.size
                image = _model_upscaled(model, image)
                if image.size == before:
                    break
        return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)

    def _upscaler(self, ref: FileRef, task: RenderTask) -> Any:
        """An ESRGAN-family model file through spandrel (A1111's loader), read safely."""
        if ref.fingerprint not in self._upscalers:
            self._upscalers[ref.fingerprint] = _load_upscaler(ref, self.renderer.device,
                                                              _where(task, "hires"))
        return self._upscalers[ref.fingerprint]

    # --- refiner -------------------------------------------------------------------------

    def _refine(self, batch: list[RenderTask], prompts: dict[str, Any], latents: Any,
                generators: list[Any], steps: int) -> list[Image.Image]:
        """The refiner's img2img from the latents where the base stopped, over the same
        schedule of ``steps``."""
        import diffusers

        spec = batch[0].spec
        assert batch[0].refiner is not None
        refiner = self._refiner(batch[0].refiner, batch[0])
        scheduler_class, overrides = scheduler_for(spec.sampler, spec.schedule_type)
        refiner.scheduler = getattr(diffusers, scheduler_class).from_config(
            self._refiners[batch[0].refiner.fingerprint].scheduler_config, **overrides)
        noise: Any = contextlib.nullcontext()
        if any(not _is_torch_generator(g) for g in generators):
            from .noise import drawing_from

            noise = drawing_from()
        images: dict[int, Image.Image] = {}
        for group, conditioning in _refiner_prompts(refiner, batch, prompts):
            rows = [batch.index(task) for task in group]
            with noise:
                out = refiner(**conditioning, image=latents[rows], num_inference_steps=steps,
                              denoising_start=spec.refiner_switch, guidance_scale=spec.cfg,
                              generator=[generators[i] for i in rows], output_type="pil").images
            images.update({id(task): image for task, image in zip(group, out, strict=True)})
        return [images[id(task)] for task in batch]

    def _refiner(self, ref: ModelRef, task: RenderTask) -> Any:
        """The refiner's img2img pipeline, loaded on first use, on the renderer's device."""
        if ref.fingerprint not in self._refiners:
            try:
                model = self.renderer._load(ref, refiner=True)
            except GenimgError as exc:
                raise GenimgError(f"refiner: {exc.message}", *_where(task, "refiner")) from None
            if "denoising_start" not in _parameters(model.img2img):
                raise GenimgError(f"refiner {ref.name!r} is not an SDXL model (a refiner "
                                  "continues an SDXL picture)", *_where(task, "refiner"))
            self._refiners[ref.fingerprint] = model
        pipe = self._refiners[ref.fingerprint].img2img
        if not self.renderer._offloading and self.renderer.device != "cpu":
            pipe.to(self.renderer.device)  # beside the base model (parked with it on a switch)
        return pipe

    def pipes(self) -> list[Any]:
        """The refiners' pipelines: parked with the base model when the renderer switches."""
        return [model.img2img for model in self._refiners.values()]


def _parameters(pipe: Any) -> set[str]:
    import inspect

    return set(inspect.signature(pipe.__call__).parameters)


def _is_torch_generator(generator: Any) -> bool:
    import torch

    return isinstance(generator, torch.Generator)


def _refiner_prompts(refiner: Any, batch: list[RenderTask], prompts: dict[str, Any]
                     ) -> list[tuple[list[RenderTask], dict[str, Any]]]:
    """The refiner's conditioning: the texts (it encodes them with its own encoder), or,
    where the first pass had embeddings, its own embeddings of the same prompts."""
    if "prompt" in prompts:
        return [(batch, {"prompt": [prompt_text(task.spec.prompt) for task in batch],
                         "negative_prompt": [task.spec.negative_prompt for task in batch]})]
    from .diffusion import _embedded_sdxl

    return _embedded_sdxl(refiner, batch)


def _fresh_noise(batch: list[RenderTask]) -> tuple[list[Any], Any]:
    """Each picture's noise from its seed again, as A1111's second pass draws it."""
    import torch

    from .diffusion import _own_noise

    if not _own_noise(batch[0].spec):
        return ([torch.Generator("cpu").manual_seed(task.spec.seed) for task in batch],
                contextlib.nullcontext())
    from .noise import PictureNoise, drawing_from

    return ([PictureNoise(t.spec.seed, t.spec.noise, t.spec.subseed, t.spec.subseed_strength,
                          t.spec.eta_noise_seed_delta) for t in batch], drawing_from())


def _encoded(pipe: Any, image: Image.Image) -> Any:
    """One upscaled picture as a latent: the VAE's mean (A1111 samples it from torch's
    global generator, whose state no spec holds), upcast where the VAE needs it."""
    import torch
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import (
        retrieve_latents,
    )

    vae = pipe.vae
    dtype = vae.dtype
    upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        pixels = pipe.image_processor.preprocess(image).to(device=pipe._execution_device,
                                                          dtype=vae.dtype)
        with torch.no_grad():
            latent = retrieve_latents(vae.encode(pixels), sample_mode="argmax")
    finally:
        if upcast:
            vae.to(dtype=dtype)
    return (latent * vae.config.scaling_factor).to(dtype=pipe.unet.dtype)


def _load_upscaler(ref: FileRef, device: str, where: tuple[str, int]) -> Any:
    """An upscaler file as a spandrel model: its tensors read without running pickled
    code (safetensors, or ``torch.load(weights_only=True)``)."""
    import torch
    from spandrel import ImageModelDescriptor, ModelLoader, canonicalize_state_dict

    if ref.problem:
        raise GenimgError(f"hires upscaler {ref.name!r} {ref.problem}", *where)
    try:
        if ref.path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(ref.path)
        else:
            state = torch.load(ref.path, map_location="cpu", weights_only=True)
        model = ModelLoader().load_from_state_dict(canonicalize_state_dict(state))
    except Exception as exc:  # torch and spandrel raise many types for unusable files
        raise GenimgError(f"cannot load hires upscaler {ref.name!r} from {ref.path}: "
                          f"{type(exc).__name__}: {exc}", *where) from exc
    if not isinstance(model, ImageModelDescriptor):
        raise GenimgError(f"hires upscaler {ref.name!r} is a {model.architecture.name} model, "
                          "not one that upscales a picture", *where)
    return model.to(device).eval()


def _model_upscaled(model: Any, image: Image.Image) -> Image.Image:
    """One run of an upscaler model, as A1111 feeds them: BGR in [0, 1], rounded back."""
    import numpy as np
    import torch
    from PIL import Image

    pixels = np.asarray(image.convert("RGB"))[:, :, ::-1].transpose(2, 0, 1) / 255.0
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).unsqueeze(0)
    parameter = next(model.model.parameters())
    with torch.inference_mode():
        out = model(tensor.to(device=parameter.device, dtype=parameter.dtype))[0]
    array = (255.0 * out.float().cpu().clamp(0, 1).numpy().transpose(1, 2, 0)).round()
    return Image.fromarray(np.ascontiguousarray(array.astype(np.uint8)[:, :, ::-1]), "RGB")
