"""genimg's own k-diffusion samplers (``render/ksamplers.py`` behind
``render/kscheduler.py``) against k-diffusion itself, step for step, on the tiny UNet.

The oracle runs k-diffusion's ``sample_*`` with ``CompVisDenoiser`` as A1111 does (CFG on
the denoised latents); genimg runs its scheduler the way diffusers' pipelines call it
(CFG on the UNet's outputs, ``scale_model_input``, ``step``). Both get the same initial
noise, sigmas, per-step noise (the same generator's draws; for the SDE samplers,
k-diffusion's own ``BrownianTreeNoiseSampler`` with the picture's seed against genimg's
``BrownianNoise``) and CFG. ``MEASURED`` collects the max abs difference of the final
latents (bench/kdiffusion_oracle.py prints the table).
"""

from __future__ import annotations

from inspect import signature

import pytest

from tests.test_schedules import _k_diffusion

pytestmark = [pytest.mark.render,
              pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")]

CFG, SEED, STEPS = 7.0, 3, 12
#: The bound asserted: the latents' scale is ~15-50, float32 rounding over a dozen steps
#: with CFG 7 on random weights stays near 1e-5.
TOLERANCE = 2e-4
MEASURED: dict[str, float] = {}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    from tests.tinymodels import build_tiny_pipeline

    pipe = build_tiny_pipeline(tmp_path_factory.mktemp("ks"))
    ids = pipe.tokenizer(["a photo of a cat", ""], padding="max_length", max_length=77,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        cond, uncond = pipe.text_encoder(ids)[0].chunk(2)
    return pipe, cond, uncond


class _Wrapped:
    """What k-diffusion's CompVisDenoiser expects: ``apply_model`` and ``alphas_cumprod``."""

    def __init__(self, unet, alphas_cumprod) -> None:
        self.unet, self.alphas_cumprod = unet, alphas_cumprod

    def apply_model(self, x, t, cond):
        return self.unet(x, t, encoder_hidden_states=cond).sample


def _genimg(pipe, cond, uncond, scheduler, noise, steps):
    """genimg's scheduler driven as diffusers' txt2img pipeline drives it."""
    import torch

    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma
    generator = [torch.Generator().manual_seed(SEED)]
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            c, u = pipe.unet(x, t, encoder_hidden_states=torch.cat([cond, uncond])).sample.chunk(2)
            latents = scheduler.step(u + (c - u) * CFG, t, latents,
                                     generator=generator).prev_sample
    return latents


def _restart_oracle(sampling, model, x, sigmas, noise):
    """A1111's Restart (``sd_samplers_extra.restart_sampler``) from k-diffusion's parts: its
    step list, then one ``sample_heun`` per step, noise added before each jump back up."""
    import torch

    steps = len(sigmas) - 1
    jumps = {}
    if steps >= 20:
        restart_steps, times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = sampling.get_sigmas_karras(steps - restart_steps * times, sigmas[-2].item(),
                                            sigmas[0].item())
        jumps = {int(torch.argmin(abs(sigmas - 0.1))): (restart_steps + 1, times, 2)}
    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in jumps:
            n, times, top = jumps[i + 1]
            high = int(torch.argmin(abs(sigmas - top)))
            if high < i + 1:
                up = sampling.get_sigmas_karras(n, sigmas[i + 1].item(), sigmas[high].item())[:-1]
                pairs += list(zip(up[:-1], up[1:], strict=True)) * times
    last = None
    for old, new in pairs:
        if last is not None and last < old:
            x = x + noise(None, None) * (old ** 2 - last ** 2) ** 0.5
        x = sampling.sample_heun(model, x, torch.stack([old, new]), disable=True)
        last = new
    return x


def _oracle(sampling, model, name, x, sigmas, noise):
    """k-diffusion's own sampler for A1111's ``name``, with A1111's arguments (eta 1)."""
    import torch

    functions = {"Euler a": "euler_ancestral", "Euler": "euler", "LMS": "lms", "Heun": "heun",
                 "DPM2": "dpm_2", "DPM2 a": "dpm_2_ancestral",
                 "DPM++ 2S a": "dpmpp_2s_ancestral", "DPM++ 2M": "dpmpp_2m",
                 "DPM++ SDE": "dpmpp_sde", "DPM++ 2M SDE": "dpmpp_2m_sde",
                 "DPM++ 3M SDE": "dpmpp_3m_sde"}
    if name == "Restart":
        return _restart_oracle(sampling, model, x, sigmas, noise)
    if name == "DPM fast":
        return sampling.sample_dpm_fast(model, x, sigmas[-2].item(), sigmas[0].item(),
                                        len(sigmas) - 1, disable=True, eta=1.0,
                                        noise_sampler=noise)
    if name in ("DPM++ SDE", "DPM++ 2M SDE", "DPM++ 3M SDE"):
        low, high = sigmas[sigmas > 0].min(), sigmas.max()
        noise = sampling.BrownianTreeNoiseSampler(x, low, high, seed=[SEED])
    function = getattr(sampling, "sample_" + functions[name])
    extra = {"noise_sampler": noise} if "noise_sampler" in signature(function).parameters else {}
    with torch.no_grad():
        return function(model, x, sigmas, disable=True, **extra)


def _sigmas(sampling, denoiser, schedule, steps, discard):
    n = steps + 1 if discard else steps
    low, high = denoiser.sigmas[0].item(), denoiser.sigmas[-1].item()
    sigmas = {"Uniform": lambda: denoiser.get_sigmas(n),
              "Karras": lambda: sampling.get_sigmas_karras(n, low, high),
              "Exponential": lambda: sampling.get_sigmas_exponential(n, low, high)}[schedule]()
    return __import__("torch").cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas


def _cases():
    from generator.samplers import AUTOMATIC, K_SAMPLERS

    cases = [(name, AUTOMATIC.get(name, "Uniform"), STEPS) for name in K_SAMPLERS]
    return [*cases, ("Restart", "Karras", 22), ("DPM++ 2M", "Uniform", STEPS),
            ("Heun", "Karras", STEPS), ("DPM2", "Uniform", STEPS)]


@pytest.mark.parametrize(("name", "schedule", "steps"), _cases())
def test_step_for_step_as_k_diffusion(tiny, name, schedule, steps):
    import torch

    from generator.render.ksamplers import SAMPLERS
    from generator.render.kscheduler import KScheduler, alphas_cumprod

    sampling, external = _k_diffusion()
    pipe, cond, uncond = tiny
    scheduler = KScheduler(pipe.scheduler.config, name, schedule)
    denoiser = external.CompVisDenoiser(_Wrapped(pipe.unet, alphas_cumprod(pipe.scheduler.config)))
    sigmas = _sigmas(sampling, denoiser, schedule, steps, SAMPLERS[name][2])
    assert (scheduler.model.schedule(schedule, steps, SAMPLERS[name][2]) - sigmas).abs().max() \
        < 1e-5
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(SEED + 1))
    drawn = torch.Generator().manual_seed(SEED)

    def model(x, sigma):
        c, u = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]),
                        cond=torch.cat([cond, uncond])).chunk(2)
        return u + (c - u) * CFG

    with torch.no_grad():
        theirs = _oracle(sampling, model, name, noise * sigmas[0], sigmas,
                         lambda _s, _n: torch.randn((1, 4, 8, 8), generator=drawn))
    ours = _genimg(pipe, cond, uncond, scheduler, noise, steps)
    MEASURED[f"{name} ({schedule}, {steps} steps)"] = diff = (ours - theirs).abs().max().item()
    assert diff < TOLERANCE, (name, schedule, diff, theirs.abs().max().item())
