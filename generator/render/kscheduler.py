"""genimg's k-diffusion samplers (``ksamplers``) behind diffusers' scheduler interface.

Why a scheduler and not a sampling loop of genimg's own: diffusers' pipelines do the
prompts, img2img's encoding, SDXL's extra conditioning and the decoding; a scheduler that
answers ``set_timesteps``/``scale_model_input``/``step`` keeps all of that (and every
pipeline another part of genimg adds) working unchanged.

How: ``set_timesteps`` computes A1111's sigmas and, by a dry run of the sampler, the sigma
of every model call; the timesteps are those sigmas as k-diffusion's ``CompVisDenoiser``
hands them to the UNet (fractional, log-sigma interpolated). Each ``step`` turns the
UNet's output into the denoised latent (eps or v, k-diffusion's scalings) and resumes the
sampler until it asks for the next model call. The sampler keeps its latent in float32
(as A1111 does), whatever the pipeline's dtype.

Noise: the ancestral samplers draw from each picture's own generator through diffusers'
``randn_tensor`` (so ``render/noise.py``'s A1111 noise, variation seeds and ENSD apply,
and batching changes nothing); the SDE samplers use A1111's Brownian tree (torchsde),
one per picture seeded by its seed, drawing its normal numbers as ``torch.randn`` on a
CUDA GPU does (``noise.Philox``) with ``noise: nv``, or on the CPU with ``noise: cpu``;
the tree itself always lives on the CPU, so a picture is the same on any device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .ksamplers import SAMPLERS, DiscreteSchedule, Sampling, evaluation_sigmas


def alphas_cumprod(config: Any) -> Any:
    """The model's noise schedule as A1111's models hold it: computed in float64, then
    float32 (``ldm``'s ``make_beta_schedule``; diffusers computes it in float32)."""
    import torch

    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
    elif config.get("beta_schedule", "scaled_linear") == "scaled_linear":
        betas = torch.linspace(start ** 0.5, end ** 0.5, n, dtype=torch.float64) ** 2
    else:
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).float()


class BrownianNoise:
    """k-diffusion's ``BrownianTreeNoiseSampler`` with one seed per picture, as A1111
    makes it (``create_noise_sampler``): picture ``i``'s noise depends on its seed alone."""

    def __init__(self, x: Any, sigmas: Any, seeds: Sequence[int], philox: Sequence[bool]
                 ) -> None:
        import torch
        import torchsde

        self.philox, self.device = list(philox), x.device
        sigmas = sigmas.cpu()  # on the CPU whatever the device: the same noise everywhere
        low, high = sigmas[sigmas > 0].min(), sigmas.max()
        w0 = torch.zeros_like(x[0], device="cpu")
        self.trees = []
        for seed, own in zip(seeds, self.philox, strict=True):
            with _randn_like_cuda(own):
                self.trees.append(torchsde.BrownianTree(low, w0, high, entropy=seed))

    def __call__(self, sigma: Any, sigma_next: Any) -> Any:
        import torch

        t0, t1 = torch.as_tensor(sigma).cpu(), torch.as_tensor(sigma_next).cpu()
        low, high, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        rows = []
        for tree, own in zip(self.trees, self.philox, strict=True):
            with _randn_like_cuda(own):
                rows.append(tree(low, high))
        return (torch.stack(rows) * sign / (t1 - t0).abs().sqrt()).to(self.device)


@contextmanager
def _randn_like_cuda(philox: bool) -> Iterator[None]:
    """While open (if ``philox``), torchsde draws its numbers as a fresh CUDA generator
    seeded with its seed would: A1111's Brownian trees live on the GPU."""
    import warnings

    with warnings.catch_warnings():  # sigmas as float32 tensors and as floats differ a bit
        warnings.filterwarnings("ignore", "Should have t", UserWarning)
        if not philox:
            yield
            return
        with _philox_randn():
            yield


@contextmanager
def _philox_randn() -> Iterator[None]:
    import torch
    from torchsde._brownian import brownian_interval

    from .noise import Philox

    def randn(size: Any, dtype: Any, device: Any, seed: int) -> Any:
        numbers = Philox(int(seed)).randn(tuple(size))
        return torch.from_numpy(numbers).to(device=device, dtype=dtype)

    original = brownian_interval._randn
    brownian_interval._randn = randn
    try:
        yield
    finally:
        brownian_interval._randn = original


def _seed(generator: Any) -> tuple[int, bool]:
    """A picture's seed and whether its noise is A1111's NV noise, from its generator."""
    from .noise import PictureNoise

    if isinstance(generator, PictureNoise):
        return generator.seed, generator.kind == "nv"
    return int(generator.initial_seed()), False


class KScheduler:
    """One A1111 sampler as a diffusers scheduler, for one pipeline call."""

    order = 1

    def __init__(self, config: Any, sampler: str, schedule: str,
                 strength: float | None = None, pipeline_strength: float | None = None
                 ) -> None:
        """``strength``: img2img's, which A1111 turns into steps its own way; the pipeline
        (given ``pipeline_strength``) skips as many leading timesteps as diffusers would,
        so those are placeholders."""
        self.config = config
        self.sampler, self.schedule = sampler, schedule
        self.strength, self.pipeline_strength = strength, pipeline_strength
        self.model = DiscreteSchedule(alphas_cumprod(config))
        self.v_prediction = config.get("prediction_type", "epsilon") == "v_prediction"
        self.init_noise_sigma: Any = 1.0
        self.timesteps: Any = None

    def set_timesteps(self, num_inference_steps: int, device: Any = None, **_: Any) -> None:
        import torch

        steps = num_inference_steps
        self.all_sigmas = self.model.schedule(self.schedule, steps, SAMPLERS[self.sampler][2])
        self.sigmas, skipped = self.all_sigmas, 0
        if self.strength is not None:  # A1111's img2img: t_enc + 1 steps of the schedule
            t_enc = int(min(self.strength, 0.999) * steps)
            self.sigmas = self.all_sigmas[steps - t_enc - 1:]
            skipped = steps - min(int(steps * float(self.pipeline_strength or 0)), steps)
        self.calls = torch.stack(evaluation_sigmas(self.sampler, self.sigmas))
        timesteps = self.model.sigma_to_t(self.calls)
        self.timesteps = torch.cat([timesteps[:1].repeat(skipped), timesteps]).to(device)
        self.init_noise_sigma = self.sigmas[0]
        self._index = 0
        self._run: Sampling | None = None
        self._x: Any = None
        self._brownian: BrownianNoise | None = None
        self._generator: Any = None

    def set_begin_index(self, begin_index: int = 0) -> None:
        """The pipeline skips the placeholders; the sampler starts at its first call."""

    def add_noise(self, original: Any, noise: Any, timesteps: Any = None) -> Any:
        """img2img's start, as A1111's: the parent's latent plus noise at the first sigma."""
        return original + noise * self.sigmas[0].to(original.device)

    def _scalings(self, sigma: Any) -> tuple[Any, Any, Any]:
        """k-diffusion's (c_skip, c_out, c_in) for an eps or a v model (sigma_data 1)."""
        if self.v_prediction:
            return (1 / (sigma ** 2 + 1), -sigma / (sigma ** 2 + 1) ** 0.5,
                    1 / (sigma ** 2 + 1) ** 0.5)
        return 1.0, -sigma, 1 / (sigma ** 2 + 1) ** 0.5

    def scale_model_input(self, sample: Any, timestep: Any = None) -> Any:
        c_in = self._scalings(self.calls[self._index])[2]
        return (sample.float() * c_in.to(sample.device)).to(sample.dtype)

    def step(self, model_output: Any, timestep: Any, sample: Any, generator: Any = None,
             return_dict: bool = True) -> Any:
        from diffusers.schedulers.scheduling_utils import SchedulerOutput

        if self._run is None:
            self._generator, self._x = generator, sample.float()
            self._run = self._start(self._x)
            next(self._run)
        assert self._run is not None
        c_skip, c_out, _ = self._scalings(self.calls[self._index].to(sample.device))
        denoised = self._x * c_skip + model_output.float() * c_out
        self._index += 1
        try:
            self._x, _ = self._run.send(denoised)
        except StopIteration as done:
            self._x = done.value
        out = self._x.to(sample.dtype)
        return SchedulerOutput(prev_sample=out) if return_dict else (out,)

    def _start(self, x: Any) -> Sampling:
        function, noise, _ = SAMPLERS[self.sampler]
        draw = self._brownian_noise if noise == "brownian" else self._picture_noise
        return function(x, self.sigmas.to(x.device), draw)

    def _picture_noise(self, _sigma: Any, _sigma_next: Any) -> Any:
        """Each picture's next noise from its own generator (A1111's ``randn_like``)."""
        from diffusers.utils import torch_utils

        return torch_utils.randn_tensor(tuple(self._x.shape), generator=self._generator,
                                        device=self._x.device, dtype=self._x.dtype)

    def _brownian_noise(self, sigma: Any, sigma_next: Any) -> Any:
        if self._brownian is None:
            generators = (self._generator if isinstance(self._generator, list)
                          else [self._generator] * len(self._x))
            found = [_seed(g) if g is not None else (0, False) for g in generators]
            self._brownian = BrownianNoise(self._x, self.all_sigmas.to(self._x.device),
                                           [s for s, _ in found], [p for _, p in found])
        return self._brownian(sigma, sigma_next)


def for_spec(spec: Any, config: Any, pipeline_strength: float | None) -> KScheduler:
    """The scheduler of a picture's spec (``sampling: a1111`` or a sampler only genimg has)."""
    from ..modes import IMG2IMG
    from ..samplers import k_sampler

    sampler, schedule = k_sampler(spec.sampler, spec.schedule_type)
    strength = float(spec.strength) if spec.mode == IMG2IMG else None
    return KScheduler(config, sampler, schedule, strength,
                      pipeline_strength if strength is not None else None)
