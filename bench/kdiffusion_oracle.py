"""k-diffusion (the library A1111 samples with) as the oracle for genimg's schedules.

Not a test: it prints how far genimg's diffusers schedulers are from what A1111 runs,
so the work left on issue 13 (A1111's sigma schedules, ``schedule_type``) is measured.
k-diffusion is no dependency of genimg; install it for this script only, without its
training dependencies:

    pip install --no-deps k-diffusion==0.1.1.post1 torchsde torchdiffeq trampoline

Two tables: (1) each sampler's sigmas as genimg's scheduler makes them for SD 1.5's
noise schedule against A1111's (k-diffusion's ``get_sigmas`` for Automatic,
``get_sigmas_karras`` for Karras), max absolute difference; (2) one deterministic
sampler step for step on the tiny random-weight UNet (tests/tinymodels.py), the same
initial noise, sigmas and CFG through diffusers' Euler and k-diffusion's
``sample_euler``: max absolute difference of the final latent.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import types
from pathlib import Path

from _util import REPO

STEPS = 20


def k_diffusion() -> tuple[types.ModuleType, types.ModuleType]:
    """``k_diffusion.sampling`` and ``.external`` without the package's training imports."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        sys.exit("k-diffusion is not installed (see this script's docstring)")
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations or [])
    sys.modules["k_diffusion"] = package
    import k_diffusion.external as external
    import k_diffusion.sampling as sampling

    return sampling, external


class _Wrapped:
    """What k-diffusion's CompVisDenoiser expects of a model: a diffusers UNet inside."""

    def __init__(self, unet, alphas_cumprod) -> None:
        self.unet, self.alphas_cumprod = unet, alphas_cumprod

    def apply_model(self, x, t, cond):
        return self.unet(x, t, encoder_hidden_states=cond).sample


def sigma_table(pipe, sampling, external) -> None:
    import diffusers
    import torch

    from generator.samplers import SAMPLERS

    denoiser = external.CompVisDenoiser(_Wrapped(pipe.unet, pipe.scheduler.alphas_cumprod))
    automatic = denoiser.get_sigmas(STEPS)
    karras = sampling.get_sigmas_karras(STEPS, denoiser.sigma_min.item(),
                                        denoiser.sigma_max.item())
    print(f"| sampler | diffusers scheduler | A1111 schedule | max abs diff of {STEPS} sigmas |")
    print("| --- | --- | --- | --- |")
    for name, (cls, options) in SAMPLERS.items():
        scheduler = getattr(diffusers, cls).from_config(pipe.scheduler.config, **options)
        scheduler.set_timesteps(STEPS)
        ours = getattr(scheduler, "sigmas", None)
        if ours is None:
            print(f"| {name} | {cls} | n/a | no sigmas (not a k-diffusion sampler) |")
            continue
        theirs = karras if "Karras" in name else automatic
        ours = torch.as_tensor(ours, dtype=torch.float32)
        if ours.shape != theirs.shape:
            print(f"| {name} | {cls} | {'Karras' if 'Karras' in name else 'Automatic'} | "
                  f"{len(ours)} sigmas vs {len(theirs)} |")
            continue
        diff = (ours - theirs).abs().max().item()
        print(f"| {name} | {cls} | {'Karras' if 'Karras' in name else 'Automatic'} | "
              f"{diff:.4g} |")


def euler_step_for_step(pipe, sampling, external) -> None:
    import torch
    from diffusers import EulerDiscreteScheduler

    denoiser = external.CompVisDenoiser(_Wrapped(pipe.unet, pipe.scheduler.alphas_cumprod))
    sigmas = denoiser.get_sigmas(STEPS)
    ids = pipe.tokenizer(["a photo of a girl", ""], padding="max_length", max_length=77,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        cond, uncond = pipe.text_encoder(ids)[0].chunk(2)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    cfg = 7.0

    def model(x, sigma):
        both = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]),
                        cond=torch.cat([cond, uncond]))
        c, u = both.chunk(2)
        return u + (c - u) * cfg

    with torch.no_grad():
        theirs = sampling.sample_euler(model, noise * sigmas[0], sigmas, disable=True)
    scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(sigmas=sigmas[:-1].numpy().tolist())
    latents = noise * scheduler.init_noise_sigma
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            c, u = pipe.unet(x, t, encoder_hidden_states=torch.cat([cond, uncond])).sample.chunk(2)
            latents = scheduler.step(u + (c - u) * cfg, t, latents).prev_sample
    print(f"\nEuler, {STEPS} steps, A1111's Automatic sigmas given to both, CFG {cfg}: "
          f"max |diffusers - k-diffusion| of the final latent = "
          f"{(latents - theirs).abs().max().item():.3g} (latent scale "
          f"{theirs.abs().max().item():.3g}); initial sigma {scheduler.init_noise_sigma:.5g} "
          f"vs {sigmas[0].item():.5g}")


def main() -> None:
    sys.path.insert(0, str(REPO))
    from tests.tinymodels import build_tiny_pipeline

    sampling, external = k_diffusion()
    with tempfile.TemporaryDirectory() as work:
        pipe = build_tiny_pipeline(Path(work))
    sigma_table(pipe, sampling, external)
    euler_step_for_step(pipe, sampling, external)


if __name__ == "__main__":
    main()
