"""k-diffusion (the library A1111 samples with) as the oracle for genimg's schedules.

Not a test: it prints how far genimg's diffusers schedulers are from what A1111 runs,
so the work left on issue 13 (A1111's sigma schedules, ``schedule_type``) is measured.
k-diffusion is no dependency of genimg; install it for this script only, without its
training dependencies:

    pip install --no-deps k-diffusion==0.1.1.post1 torchsde torchdiffeq trampoline

Two tables: (1) each sampler's sigmas as diffusers' scheduler makes them for SD 1.5's
noise schedule against A1111's (k-diffusion's ``get_sigmas`` for Automatic,
``get_sigmas_karras`` for Karras), max absolute difference; (2) every sampler step for
step on the tiny random-weight UNet (tests/tinymodels.py), the same initial noise,
sigmas, per-step noise and CFG through genimg's own loop (``sampling: a1111``,
``render/ksamplers.py``) and, where genimg accepts the schedule, diffusers' scheduler
(``sampling: diffusers``), against k-diffusion's ``sample_*``: max absolute difference
of the final latent (tests/test_ksamplers.py asserts genimg's).

The 0.023 this script once printed for diffusers' Euler was its own mistake: it gave
diffusers ``sigmas[:-1]``, which diffusers reads as the whole schedule (its last entry
the end), so diffusers ran 19 steps and stopped at sigma 0.029. Given the whole
schedule, diffusers' Euler takes the same timesteps (within 6e-5) and ends within
float rounding of k-diffusion.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import types
import warnings
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

    from generator.samplers import OWN, SAMPLERS

    denoiser = external.CompVisDenoiser(_Wrapped(pipe.unet, pipe.scheduler.alphas_cumprod))
    automatic = denoiser.get_sigmas(STEPS)
    karras = sampling.get_sigmas_karras(STEPS, denoiser.sigma_min.item(),
                                        denoiser.sigma_max.item())
    print(f"| sampler | diffusers scheduler | A1111 schedule | max abs diff of {STEPS} sigmas |")
    print("| --- | --- | --- | --- |")
    for name, (cls, options) in SAMPLERS.items():
        if cls == OWN:
            print(f"| {name} | genimg's own | n/a | k-diffusion's (table 2) |")
            continue
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


def step_for_step(pipe) -> None:
    """Final latents, same noise/sigmas/CFG, against k-diffusion's samplers: genimg's own
    loops (``sampling: a1111``) and diffusers' schedulers (``sampling: diffusers``) where
    genimg accepts their schedule (A1111's UniPC is not k-diffusion's: no oracle)."""
    import diffusers
    import torch

    from generator.samplers import EXACT_SCHEDULES, k_sampler, scheduler_for
    from tests import test_ksamplers as oracle

    ids = pipe.tokenizer(["a photo of a cat", ""], padding="max_length", max_length=77,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        cond, uncond = pipe.text_encoder(ids)[0].chunk(2)
    print("\n| sampler | schedule | steps | genimg's (sampling: a1111) | diffusers' | "
          "latent scale |\n| --- | --- | --- | --- | --- | --- |")
    for name, schedule, steps, v in oracle._cases():
        ours, theirs = oracle.run_case(pipe, cond, uncond, name, schedule, steps, v)
        theirs_diffusers = "n/a"
        if schedule in EXACT_SCHEDULES.get(name, ()) and not v:
            cls, options = scheduler_for(name, schedule)
            scheduler = getattr(diffusers, cls).from_config(pipe.scheduler.config, **options)
            other, _ = oracle.run_case(pipe, cond, uncond, *k_sampler(name, schedule), steps,
                                       scheduler=scheduler)
            theirs_diffusers = f"{(other - theirs).abs().max().item():.3g}"
        diff = (ours - theirs).abs().max().item()
        print(f"| {name}{' (v)' if v else ''} | {schedule} | {steps} | {diff:.3g} | "
              f"{theirs_diffusers} | {theirs.abs().max().item():.3g} |")


def main() -> None:
    warnings.filterwarnings("ignore", "Should have t", UserWarning)  # torchsde's float checks
    sys.path.insert(0, str(REPO))
    from tests.tinymodels import build_tiny_pipeline

    sampling, external = k_diffusion()
    with tempfile.TemporaryDirectory() as work:
        pipe = build_tiny_pipeline(Path(work))
    sigma_table(pipe, sampling, external)
    step_for_step(pipe)


if __name__ == "__main__":
    main()
