"""Stable Diffusion txt2img and img2img with diffusers, the way A1111 means the settings.

torch and diffusers are imported inside functions only: importing this module is
free, so a build whose pictures are all cached never pays for torch.

Reproducibility: every picture gets its own CPU ``torch.Generator`` seeded with its
spec's seed (``noise: cpu``) or A1111's NV generator (``noise: nv``, ``render/noise.py``),
so the initial noise (and the ancestral samplers' noise) is the same on any device and
whether or not the picture shares a batch with others. The pixels then agree up to
float rounding (a channel one step off here and there): batched kernels, thread counts
and GPUs sum in different orders. Prompts in A1111's syntax (or with a ``clip_skip``)
are handed over as embeddings (``render/conditioning.py``), pictures with different
numbers of 75-token chunks in separate pipeline calls.
"""

from __future__ import annotations

import contextlib
import gc
import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenimgError
from ..loras import prompt_text
from ..models import hf_hub_cache, model_missing_error
from ..modes import IMG2IMG, MODES, TXT2IMG
from ..samplers import draws_itself, scheduler_for
from . import memory, singlefile
from .base import RenderTask, StepCallback
from .device import pick_device, pick_dtype
from .passes import Passes, extra_work, pass_key
from .speed import Speed, batch_size_for

if TYPE_CHECKING:
    from PIL import Image

    from ..config import SiteConfig
    from ..models import FileRef, ModelRef
    from ..specs import ImageSpec


def batch_key(task: RenderTask) -> tuple:
    """Tasks with equal keys can share one pipeline call (one scalar per setting)."""
    spec = task.spec
    model = task.model.fingerprint if task.model else None
    strength = float(spec.strength) if spec.mode == IMG2IMG else None
    return (model, spec.mode, spec.width, spec.height, spec.steps, spec.sampler,
            spec.schedule_type, float(spec.cfg), strength, lora_set(task),
            task.vae.fingerprint if task.vae else None,
            tuple(e.fingerprint for e in task.embeddings), spec.prompt_syntax, spec.clip_skip,
            _own_noise(spec), pass_key(task), spec.sampling)


def lora_set(task: RenderTask) -> tuple[tuple[str, float], ...]:
    """The LoRAs a picture is rendered with: pictures with other sets never share a batch."""
    return tuple((lora.fingerprint, weight) for lora, weight in task.loras)


def _own_noise(spec: ImageSpec) -> bool:
    """Does the picture need genimg's noise (``render/noise.py``)? The default (CPU
    noise, no variation, no ENSD) stays diffusers' own CPU generator, as it always was."""
    return spec.noise != "cpu" or bool(spec.subseed_strength) or bool(spec.eta_noise_seed_delta)


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


def _pipeline_strength(spec: ImageSpec) -> float:
    """img2img's strength as the pipeline gets it: diffusers refuses to run 0 steps;
    A1111 always runs at least one."""
    return max(spec.strength, min(1.0, 1.000001 / spec.steps))


def _fit(source: Image.Image | None, width: int, height: int) -> Image.Image:
    """A1111's "just resize": the parent picture stretched to the requested size."""
    from PIL import Image

    if source is None:
        raise GenimgError("an img2img picture was handed to the renderer without its parent")
    return source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def _embedded(pipe: Any, batch: list[RenderTask]) -> list[tuple[list[RenderTask], dict]]:
    """Prompts as embeddings (A1111's syntax, or a clip_skip): each task's prompt and
    negative prompt padded to the same number of chunks, and the tasks grouped by it
    (one shape per pipeline call), so a picture never depends on its batch."""
    import torch

    from .conditioning import encode, padded

    spec = batch[0].spec
    if getattr(pipe, "text_encoder_2", None) is not None:
        return _embedded_sdxl(pipe, batch)
    clip_skip, syntax = spec.clip_skip, spec.prompt_syntax
    empty = encode("", pipe, clip_skip, syntax)
    groups: dict[int, list[tuple[RenderTask, Any, Any]]] = {}
    for task in batch:
        cond, uncond = padded(encode(prompt_text(task.spec.prompt), pipe, clip_skip, syntax),
                              encode(task.spec.negative_prompt, pipe, clip_skip, syntax), empty)
        groups.setdefault(cond.shape[1], []).append((task, cond, uncond))
    return [([task for task, _, _ in group],
             {"prompt_embeds": torch.cat([cond for _, cond, _ in group]),
              "negative_prompt_embeds": torch.cat([uncond for _, _, uncond in group])})
            for group in groups.values()]


def _encoded(pipe: Any, images: list[Image.Image], generators: list[Any]) -> Any:
    """img2img's parent pictures as latents, exactly as diffusers encodes them (the VAE's
    sample from each picture's CPU generator)."""
    import torch
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import (
        retrieve_latents,
    )

    pixels = pipe.image_processor.preprocess(images).to(
        device=pipe._execution_device, dtype=pipe.vae.dtype)
    with torch.no_grad():
        latents = [retrieve_latents(pipe.vae.encode(pixels[i:i + 1]), generator=generator)
                   for i, generator in enumerate(generators)]
    return torch.cat(latents) * pipe.vae.config.scaling_factor


def _embedded_sdxl(pipe: Any, batch: list[RenderTask]) -> list[tuple[list[RenderTask], dict]]:
    """``_embedded`` for SDXL: with pooled embeddings, and an empty negative prompt as
    zeros where the model asks for it (A1111 does the same)."""
    import torch

    from .conditioning import encode_sdxl, padded

    syntax = batch[0].spec.prompt_syntax
    empty = encode_sdxl("", pipe, syntax)[0]
    zeros = bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
    groups: dict[int, list[tuple[RenderTask, tuple[Any, ...]]]] = {}
    for task in batch:
        cond, pooled = encode_sdxl(prompt_text(task.spec.prompt), pipe, syntax)
        uncond, uncond_pooled = encode_sdxl(task.spec.negative_prompt, pipe, syntax)
        if zeros and not task.spec.negative_prompt:
            uncond, uncond_pooled = torch.zeros_like(uncond), torch.zeros_like(uncond_pooled)
        cond, uncond = padded(cond, uncond, empty)
        groups.setdefault(cond.shape[1], []).append((task, (cond, uncond, pooled,
                                                            uncond_pooled)))
    names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
             "negative_pooled_prompt_embeds")
    return [([task for task, _ in group],
             {name: torch.cat([tensors[i] for _, tensors in group])
              for i, name in enumerate(names)})
            for group in groups.values()]


@dataclass
class _Model:
    """One loaded model: both pipelines share the same modules (one copy in memory)."""

    txt2img: Any
    img2img: Any
    scheduler_config: Any
    loras: tuple[tuple[str, float], ...] = ()  # the LoRAs loaded into it now
    vae: str | None = None  # the fingerprint of the VAE replacing its own now
    own_vae: Any = None  # its own VAE, while another replaces it
    embeddings: tuple[str, ...] = ()  # the textual inversions loaded into it now


class DiffusionRenderer:
    """Renders txt2img and img2img tasks; loads each model once for its lifetime."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self._models: dict[str, _Model] = {}
        self._vaes: dict[str, Any] = {}  # VAE files by fingerprint, loaded once
        self._active: str | None = None
        self._device: str | None = None
        self._dtype: Any = None
        self.passes = Passes(self)  # hires fix and refiner (render/passes.py)
        self._speed: Speed | None = None

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

    @property
    def speed(self) -> Speed:
        if self._speed is None:
            self._speed = Speed(self.config.speed, self.device)
        return self._speed

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
        for batch in plan_batches(tasks, self.config.batch_limit):
            step = len(batch) if self.config.batch_size != "auto" else self._auto_size(batch[0])
            for part in (batch[i:i + step] for i in range(0, len(batch), step)):
                yield from zip(part, self._run(part, on_step), strict=True)

    def _auto_size(self, task: RenderTask) -> int:
        """``batch_size: auto``: what fits the GPU with this task's model on it."""
        assert task.model is not None
        pipe = self._activate(task.model).txt2img
        return batch_size_for(pipe, self.device, task.spec.width, task.spec.height,
                              self.config.vae_tiling)

    def close(self) -> None:
        """Drop every model and give GPU memory back."""
        self._models.clear()
        self._vaes.clear()
        self.passes.close()
        self._active = None
        gc.collect()
        if self._device and self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # --- one batch --------------------------------------------------------------------

    def _run(self, batch: list[RenderTask], on_step: StepCallback) -> list[Image.Image]:
        import diffusers

        spec = batch[0].spec
        assert batch[0].model is not None
        model = self._activate(batch[0].model)
        _use_loras(model, batch[0])
        self._use_vae(model, batch[0].vae)
        _use_embeddings(model, batch[0].embeddings)
        pipe = model.txt2img if spec.mode == TXT2IMG else model.img2img
        self.speed.fuse(pipe, bool(batch[0].loras))
        scheduler_class, overrides = scheduler_for(spec.sampler, spec.schedule_type)
        if draws_itself(spec.sampler, spec.sampling):  # A1111's k-diffusion, genimg's loops
            from .kscheduler import for_spec

            pipe.scheduler = for_spec(spec, model.scheduler_config, _pipeline_strength(spec))
        else:
            pipe.scheduler = getattr(diffusers, scheduler_class).from_config(
                model.scheduler_config, **overrides)
        sdxl = getattr(pipe, "text_encoder_2", None) is not None  # A1111: no Clip skip there
        if spec.prompt_syntax != "a1111" and (spec.clip_skip == 1 or sdxl):  # as always
            prompts = {"prompt": [prompt_text(task.spec.prompt) for task in batch],
                       "negative_prompt": [task.spec.negative_prompt for task in batch]}
            return self._call(pipe, batch, prompts, on_step)
        images: dict[int, Image.Image] = {}
        for group, prompts in _embedded(pipe, batch):
            for task, image in zip(group, self._call(pipe, group, prompts, on_step),
                                   strict=True):
                images[id(task)] = image
        return [images[id(task)] for task in batch]

    def _call(self, pipe: Any, batch: list[RenderTask], prompts: dict[str, Any],
              on_step: StepCallback) -> list[Image.Image]:
        """One pipeline call: ``prompts`` are texts or embeddings, one per task."""
        import torch

        spec = batch[0].spec
        kwargs: dict[str, Any] = {}
        generators: list[Any] = [torch.Generator("cpu").manual_seed(task.spec.seed)
                                 for task in batch]
        if spec.mode == TXT2IMG:
            kwargs.update(width=spec.width, height=spec.height)
        else:
            kwargs["image"] = [_fit(task.source, spec.width, spec.height) for task in batch]
            kwargs["strength"] = _pipeline_strength(spec)
        noise: Any = contextlib.nullcontext()
        if _own_noise(spec):
            from .noise import PictureNoise, drawing_from

            if spec.mode != TXT2IMG:  # encoded as diffusers does, so only noise is drawn below
                kwargs["image"] = _encoded(pipe, kwargs["image"], generators)
            generators = [PictureNoise(t.spec.seed, t.spec.noise, t.spec.subseed,
                                       t.spec.subseed_strength, t.spec.eta_noise_seed_delta, g)
                          for t, g in zip(batch, generators, strict=True)]
            noise = drawing_from()
        kwargs.update(self.passes.first_pass(pipe, batch[0]))  # latents out, for a second pass

        work, done = batch[0].work - extra_work(spec), 0

        def step_end(pipeline: Any, index: int, _timestep: Any, tensors: dict) -> dict:
            # Progress in A1111 steps, even for samplers that call the UNet twice a step.
            nonlocal done
            total = getattr(pipeline, "num_timesteps", None) or work
            now = min(work, (index + 1) * work // total)
            if now > done:
                on_step((now - done) * len(batch))
                done = now
            return tensors

        with noise, self.speed.calling(pipe, spec.width, spec.height, len(batch)):
            images = pipe(
                **prompts,
                num_inference_steps=spec.steps,
                guidance_scale=spec.cfg,
                generator=generators,
                callback_on_step_end=step_end,
                **{"output_type": "pil", **kwargs},
            ).images
        if done < work:
            on_step((work - done) * len(batch))
        with self.speed.kernel():  # a hires fix or refiner pass: the same attention kernel
            images = self.passes.finish(pipe, batch, prompts, images, generators, on_step)
        return [image.convert("RGB") for image in images]

    # --- models -----------------------------------------------------------------------

    def _use_vae(self, model: _Model, vae: FileRef | None) -> None:
        """Decode with ``vae`` (None: the model's own), in both of the model's pipelines."""
        wanted = vae.fingerprint if vae else None
        if model.vae == wanted:
            return
        if model.own_vae is None:
            model.own_vae = model.txt2img.vae
        module = model.own_vae if vae is None else self._vaes.get(vae.fingerprint)
        if module is None:
            assert vae is not None
            module = self._vaes[vae.fingerprint] = self._load_vae(vae, model.own_vae)
            self.speed.prepare_vae(module)
        if not self._offloading:
            module.to(self.device)
        memory.park([model.txt2img.vae], self.device)  # the VAE it replaces
        for pipe in (model.txt2img, model.img2img):
            pipe.vae = module
        memory.rehook((model.txt2img, model.img2img), self.config, self.device)
        model.vae = wanted

    def _load_vae(self, vae: FileRef, like: Any) -> Any:
        """A VAE file (A1111/original or diffusers layout) with the model's VAE config."""
        from diffusers import AutoencoderKL

        if vae.problem:
            raise GenimgError(f"VAE {vae.name!r} {vae.problem}")
        try:
            with tempfile.TemporaryDirectory(prefix="genimg-vae-") as folder:
                like.save_config(folder)
                with _quiet():
                    module = AutoencoderKL.from_single_file(
                        vae.path, config=folder, local_files_only=True, torch_dtype=self.dtype)
        except Exception as exc:  # diffusers raises many types for unusable weights
            raise GenimgError(f"cannot load VAE {vae.name!r} from {vae.path}: "
                              f"{type(exc).__name__}: {exc}") from exc
        memory.tune_vae(module, self.config)
        return module.eval()

    def _activate(self, ref: ModelRef) -> _Model:
        """The model, loaded on first use; only the active one sits on the GPU."""
        key = ref.fingerprint
        if key not in self._models:
            self._models[key] = self._load(ref)
        model = self._models[key]
        if self._active != key:
            if self._active is not None:  # everything it holds, and every VAE file
                previous = self._models[self._active]
                memory.park(memory.modules_of((previous.txt2img, previous.img2img,
                                               *self.passes.pipes()),
                                              previous.own_vae, *self._vaes.values()),
                            self.device)
            if not self._offloading:
                model.txt2img.to(self.device)
        self._active = key
        return model

    @property
    def _offloading(self) -> bool:
        return memory.offloading(self.config)

    def _load(self, ref: ModelRef, refiner: bool = False) -> _Model:
        """Both pipelines of a model (a refiner: its img2img one, twice), never
        downloading unless genimg.yaml allows it."""
        if ref.problem or ref.kind == "preview":
            raise model_missing_error(ref.name, ref.problem or "a preview model has no weights")
        if ref.kind in ("folder", "file") and not Path(ref.location).exists():
            raise model_missing_error(ref.name, f"{ref.location} does not exist")
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image
        from diffusers.utils import deprecation_utils
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()  # the build shows its own progress
        transformers_logging.disable_progress_bar()
        offline = not self.config.allow_downloads
        common: dict[str, Any] = dict(local_files_only=offline, **_no_safety_checker(ref))
        # diffusers renamed torch_dtype to dtype (the old name now warns).
        common["dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"] = (
            self.dtype
        )
        try:
            if ref.kind == "file":
                if ref.config:  # a diffusers folder, or an original .yaml config
                    name = "config" if Path(ref.config).is_dir() else "original_config"
                    common[name] = ref.config
                txt2img = singlefile.load(Path(ref.location), common, refiner,
                                          ref.fingerprint, ref.prediction_type)
            else:
                if ref.kind == "hub":  # the same cache the resolver looked in
                    common.update(revision=ref.revision, cache_dir=str(hf_hub_cache()))
                auto = AutoPipelineForImage2Image if refiner else AutoPipelineForText2Image
                txt2img = auto.from_pretrained(ref.location, **common)
            img2img = AutoPipelineForImage2Image.from_pipe(txt2img)
        except GenimgError:
            raise
        except Exception as exc:  # diffusers raises many types for unusable weights
            hint = ""
            if ref.kind == "hub" and offline:
                hint = " (downloads are off: 'allow_downloads: true' in genimg.yaml fetches it)"
            raise GenimgError(
                f"cannot load model {ref.name!r} from {ref.location}: "
                f"{type(exc).__name__}: {exc}{hint}"
            ) from exc
        for pipe in (txt2img, img2img):
            pipe.set_progress_bar_config(disable=True)
        memory.apply((txt2img, img2img), self.config, self.device)
        self.speed.prepare(txt2img)  # img2img shares its modules
        return _Model(txt2img, img2img, txt2img.scheduler.config)


def _no_safety_checker(ref: ModelRef) -> dict[str, Any]:
    """SD 1.x/2.x pipelines name a safety checker that genimg never loads; SDXL has none
    (and diffusers warns about arguments a pipeline does not take)."""
    index = Path(ref.location) / "model_index.json"
    if ref.kind == "hub":
        repo = hf_hub_cache() / ("models--" + ref.location.replace("/", "--"))
        index = repo / "snapshots" / str(ref.revision) / "model_index.json"
    try:
        takes = ref.kind == "file" or "safety_checker" in json.loads(index.read_text())
    except (OSError, ValueError):
        takes = True
    return dict(safety_checker=None, requires_safety_checker=False) if takes else {}


def _use_loras(model: _Model, task: RenderTask) -> None:
    """Load exactly the task's LoRAs (diffusers + peft: A1111/kohya and diffusers layouts),
    unloading the previous set first, so no LoRA outlives its batch."""
    wanted = lora_set(task)
    if model.loras == wanted:
        return
    pipe = model.txt2img  # img2img shares its modules
    if model.loras:
        pipe.unload_lora_weights()
        model.loras = ()
    names = []
    for index, (lora, _weight) in enumerate(task.loras):
        if lora.problem:
            raise GenimgError(f"LoRA {lora.name!r} {lora.problem}")
        names.append(f"lora{index}")
        try:
            with _quiet():  # transformers reports every base weight a LoRA does not hold
                pipe.load_lora_weights(lora.path, adapter_name=names[-1])
        except Exception as exc:  # diffusers and peft raise many types for unusable files
            pipe.unload_lora_weights()
            raise GenimgError(f"cannot load LoRA {lora.name!r} from {lora.path}: "
                              f"{type(exc).__name__}: {exc}") from exc
    if names:
        pipe.set_adapters(names, adapter_weights=[weight for _, weight in task.loras])
    model.loras = wanted


@contextmanager
def _quiet() -> Iterator[None]:
    """Only errors from diffusers' and transformers' loggers while inside."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    before = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():  # peft warns that a second adapter is a second one
            warnings.filterwarnings("ignore", "Already found a `peft_config`")
            yield
    finally:
        diffusers_logging.set_verbosity(before[0])
        transformers_logging.set_verbosity(before[1])


def _use_embeddings(model: _Model, embeddings: tuple[FileRef, ...]) -> None:
    """Load exactly these textual inversions, each as the token of its file name (A1111's
    way; SDXL files hold one for each text encoder), unloading the previous set first."""
    wanted = tuple(e.fingerprint for e in embeddings)
    if model.embeddings == wanted:
        return
    pipe = model.txt2img
    encoders = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        encoders.append((pipe.tokenizer_2, pipe.text_encoder_2))
    if model.embeddings:
        for tokenizer, encoder in encoders:
            pipe.unload_textual_inversion(tokenizer=tokenizer, text_encoder=encoder)
        model.embeddings = ()
    for embedding in embeddings:
        try:
            with _quiet():
                _load_embedding(pipe, embedding, encoders)
        except Exception as exc:  # diffusers raises many types for unusable files
            raise GenimgError(f"cannot load embedding {embedding.name!r} from "
                              f"{embedding.path}: {type(exc).__name__}: {exc}") from exc
    model.embeddings = wanted


def _load_embedding(pipe: Any, embedding: FileRef, encoders: list[tuple[Any, Any]]) -> None:
    if len(encoders) == 1:
        pipe.load_textual_inversion(embedding.path, token=embedding.name)
        return
    from safetensors.torch import load_file

    state = load_file(embedding.path)  # SDXL: {"clip_l": …, "clip_g": …}
    for (tokenizer, encoder), part in zip(encoders, ("clip_l", "clip_g"), strict=True):
        pipe.load_textual_inversion(state[part], token=embedding.name, tokenizer=tokenizer,
                                    text_encoder=encoder)
