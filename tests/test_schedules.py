"""A1111 >= 1.9's ``schedule_type`` (``samplers.py``): what genimg accepts, its keys,
and its sigmas against k-diffusion's (the library A1111 samples with) as the oracle.

k-diffusion is no dependency of genimg: CI installs it ``--no-deps`` with the three
small packages its sampling module imports (.ci/run); it is loaded here without its
package ``__init__`` (which imports its training code).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import pytest

from generator.errors import GenimgError, Location
from generator.samplers import EXACT_SCHEDULES, SAMPLERS, schedule_of, scheduler_for
from generator.specs import parse_image
from tests.helpers import plan_key
from tests.tinymodels import tiny_model  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")
WHERE = Location("posts/p.md", 3)


def spec(**fields):
    return parse_image({"prompt": "a cat", "seed": 1, **fields}, WHERE,
                       key_lines={"schedule_type": 6})


def test_absent_keeps_every_key_and_set_changes_it():
    base = spec(sampler="DPM++ 2M")
    assert base.schedule_type is None
    assert plan_key(spec(sampler="DPM++ 2M", schedule_type="Karras"), "m", None, None) != (
        plan_key(base, "m", None, None))
    derived = [parse_image({"prompt": "a cat", "sampler": "Euler", **extra}, WHERE).seed
               for extra in ({}, {"schedule_type": "Karras"})]
    assert derived[0] != derived[1]  # it shapes the diffusion, like the sampler


def test_a_schedule_genimg_cannot_draw_is_an_error_at_its_line():
    with pytest.raises(GenimgError, match=r"^posts/p.md:6: 'schedule_type: Karras': genimg "
                       r"cannot draw 'Euler a' with the Karras schedule \(it can: Uniform\)"):
        spec(sampler="Euler a", schedule_type="Karras")
    with pytest.raises(GenimgError, match="write 'sampler: DPM\\+\\+ 2M' with"):
        spec(sampler="DPM++ 2M Karras", schedule_type="Exponential")
    with pytest.raises(GenimgError, match=r"Automatic \(Uniform\).*none\); with 'sampling: a1111'"):
        spec(sampler="Heun", schedule_type="Automatic")
    assert spec(sampler="DPM++ 2M", schedule_type="Automatic").schedule_type == "Automatic"


def test_automatic_is_a1111s_per_sampler():
    assert schedule_of("DPM++ 2M", "Automatic") == "Karras"
    assert schedule_of("DPM++ 2M SDE", "Automatic") == "Exponential"
    assert schedule_of("Euler a", "Automatic") == "Uniform"
    assert scheduler_for("DPM++ 2M", "Automatic") == (
        "DPMSolverMultistepScheduler", {"use_karras_sigmas": True})
    assert scheduler_for("DPM++ 2M Karras", None) == SAMPLERS["DPM++ 2M Karras"]


# --- the oracle -----------------------------------------------------------------------


def _k_diffusion() -> tuple[types.ModuleType, types.ModuleType]:
    if "k_diffusion" not in sys.modules:
        found = importlib.util.find_spec("k_diffusion")
        if found is None:
            why = "k-diffusion is not installed (.ci/run installs it --no-deps)"
            if os.environ.get("GENIMG_REQUIRE_RENDER") == "1":  # CI: never a silent skip
                pytest.fail(why)
            pytest.skip(why)
        package = types.ModuleType("k_diffusion")
        package.__path__ = list(found.submodule_search_locations or [])
        sys.modules["k_diffusion"] = package
    import k_diffusion.external as external
    import k_diffusion.sampling as sampling

    return sampling, external


class _Model:
    def __init__(self, alphas_cumprod) -> None:
        self.alphas_cumprod = alphas_cumprod


@pytest.mark.render
@pytest.mark.parametrize("steps", [7, 20, 50])
def test_sigmas_are_k_diffusions(steps):
    """Every sampler and schedule genimg accepts: its scheduler's sigmas, for SD's noise
    schedule, are what k-diffusion gives A1111 (the max difference is float rounding)."""
    import diffusers
    import torch

    sampling, external = _k_diffusion()
    sd = diffusers.PNDMScheduler(beta_start=0.00085, beta_end=0.012,
                                 beta_schedule="scaled_linear", set_alpha_to_one=False,
                                 skip_prk_steps=True, steps_offset=1)  # SD 1.5's config
    denoiser = external.CompVisDenoiser(_Model(sd.alphas_cumprod))
    low, high = denoiser.sigma_min.item(), denoiser.sigma_max.item()
    oracle = {"Uniform": denoiser.get_sigmas(steps),
              "Karras": sampling.get_sigmas_karras(steps, low, high),
              "Exponential": sampling.get_sigmas_exponential(steps, low, high)}
    for sampler, schedules in EXACT_SCHEDULES.items():
        for schedule in ("Automatic", *schedules):
            if schedule == "Automatic" and schedule_of(sampler, schedule) not in schedules:
                continue
            cls, options = scheduler_for(sampler, schedule)
            scheduler = getattr(diffusers, cls).from_config(sd.config, **options)
            scheduler.set_timesteps(steps)
            ours = torch.as_tensor(scheduler.sigmas, dtype=torch.float32)
            theirs = oracle[schedule_of(sampler, schedule)]
            assert ours.shape == theirs.shape, (sampler, schedule)
            assert (ours - theirs).abs().max().item() < 1e-4, (sampler, schedule)


@pytest.mark.slow
@pytest.mark.render
def test_the_renderer_draws_with_the_schedule(tiny_model, tmp_path):  # noqa: F811
    """``DPM++ 2M`` + ``Karras`` is the scheduler of the old ``DPM++ 2M Karras``."""
    from generator.models import ModelResolver
    from generator.render.diffusion import DiffusionRenderer
    from tests.test_diffusion import make_config, pixels, render_all, task

    renderer = DiffusionRenderer(make_config(tmp_path, tiny_model))
    ref = ModelResolver(make_config(tmp_path, tiny_model)).model("default")
    new, old, plain = render_all(renderer, [
        task(ref, "new", steps=3, sampler="DPM++ 2M", schedule_type="Karras"),
        task(ref, "old", steps=3, sampler="DPM++ 2M Karras"),
        task(ref, "plain", steps=3, sampler="DPM++ 2M")])
    assert pixels(new) == pixels(old) != pixels(plain)
    renderer.close()
