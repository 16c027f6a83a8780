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
from itertools import pairwise

import pytest

from tests.test_schedules import _k_diffusion
from tests.tinymodels import tiny_model  # noqa: F401

pytestmark = [pytest.mark.render,
              pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"),
              # k-diffusion's Brownian trees (the oracle's) warn as torchsde compares floats
              pytest.mark.filterwarnings("ignore:Should have t:UserWarning")]

CFG, SEED, STEPS = 7.0, 3, 8
#: The bound asserted. The final latents' scale is ~45-60; float32 rounding (diffusers
#: mixes CFG on the UNet's outputs, A1111 on the denoised latents) over a dozen steps with
#: CFG 7 on random weights measured 4e-5 … 1.3e-4 (bench/README.md): about 1e-5 of it.
TOLERANCE = 5e-4
MEASURED: dict[str, float] = {}
#: SD's noise schedule, as its scheduler config says it
TINY_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear"}


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
    extra = ({"generator": [torch.Generator().manual_seed(SEED)]}
             if "generator" in signature(scheduler.step).parameters else {})
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            c, u = pipe.unet(x, t, encoder_hidden_states=torch.cat([cond, uncond])).sample.chunk(2)
            latents = scheduler.step(u + (c - u) * CFG, t, latents, **extra).prev_sample
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
                pairs += list(pairwise(up)) * times
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
    if "SDE" in name:
        low, high = sigmas[sigmas > 0].min(), sigmas.max()
        noise = sampling.BrownianTreeNoiseSampler(x, low, high, seed=[SEED])
    function = getattr(sampling, "sample_" + functions[name.removesuffix(" Heun")])
    extra = {"noise_sampler": noise} if "noise_sampler" in signature(function).parameters else {}
    if name.endswith(" Heun"):
        extra["solver_type"] = "heun"
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
    """Each sampler with A1111's Automatic schedule (Restart with its one restart, from 20
    steps on), DPM++ 2M with the Uniform schedule diffusers cannot draw, a v model."""
    from generator.samplers import AUTOMATIC, K_SAMPLERS

    cases = [(name, AUTOMATIC.get(name, "Uniform"), 20 if name == "Restart" else STEPS, False)
             for name in K_SAMPLERS]
    return [*cases, ("DPM++ 2M", "Uniform", STEPS, False),
            ("DPM++ 2S a", "Exponential", STEPS, True)]  # a v-prediction model (SD 2.x)


def run_case(pipe, cond, uncond, name, schedule, steps, v=False, scheduler=None):
    """The final latents of (genimg, k-diffusion) for A1111's sampler ``name`` (``v``: the
    UNet read as a v-prediction model): ``scheduler`` (default: genimg's own) driven as
    diffusers' pipeline drives it."""
    import torch

    from generator.render.ksamplers import SAMPLERS
    from generator.render.kscheduler import KScheduler, alphas_cumprod

    sampling, external = _k_diffusion()
    config = {**pipe.scheduler.config, "prediction_type": "v_prediction" if v else "epsilon"}
    ours = KScheduler(config, name, schedule)
    wrapper = external.CompVisVDenoiser if v else external.CompVisDenoiser
    denoiser = wrapper(_Wrapped(pipe.unet, alphas_cumprod(config)))
    sigmas = _sigmas(sampling, denoiser, schedule, steps, SAMPLERS[name][2])
    assert (ours.model.schedule(schedule, steps, SAMPLERS[name][2]) - sigmas).abs().max() < 1e-5
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(SEED + 1))
    drawn = torch.Generator().manual_seed(SEED)

    def model(x, sigma):
        c, u = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]),
                        cond=torch.cat([cond, uncond])).chunk(2)
        return u + (c - u) * CFG

    with torch.no_grad():
        theirs = _oracle(sampling, model, name, noise * sigmas[0], sigmas,
                         lambda _s, _n: torch.randn((1, 4, 8, 8), generator=drawn))
    return _genimg(pipe, cond, uncond, scheduler or ours, noise, steps), theirs


@pytest.mark.slow
@pytest.mark.parametrize(("name", "schedule", "steps", "v"), _cases())
def test_step_for_step_as_k_diffusion(tiny, name, schedule, steps, v):
    ours, theirs = run_case(*tiny, name, schedule, steps, v)
    diff = (ours - theirs).abs().max().item()
    MEASURED[f"{name} ({schedule}, {steps} steps{', v' if v else ''})"] = diff
    assert diff < TOLERANCE, (name, schedule, diff, theirs.abs().max().item())


# --- the spec: `sampling`, what genimg accepts ----------------------------------------


def _spec(**fields):
    from generator.errors import Location
    from generator.specs import parse_image

    return parse_image({"prompt": "a cat", "seed": 1, **fields}, Location("posts/p.md", 3),
                       key_lines={"schedule_type": 6, "sampler": 5})


@pytest.mark.parametrize("fields", [{"sampler": "DDIM"}, {"sampler": "UniPC"},
                                    {"sampler": "DPM fast"}, {"sampler": "Restart"}])
def test_sampling_is_kept_only_where_it_changes_something(fields):
    from tests.helpers import plan_key

    assert _spec(sampling="a1111", **fields).sampling == "diffusers"
    assert plan_key(_spec(sampling="a1111", **fields), "m", None, None) == plan_key(
        _spec(**fields), "m", None, None)
    both = _spec(sampling="a1111", sampler="Euler a")
    assert both.sampling == "a1111"
    assert plan_key(both, "m", None, None) != plan_key(_spec(sampler="Euler a"), "m", None, None)


def test_with_sampling_a1111_every_schedule_is_drawn():
    from generator.errors import GenimgError

    for sampler in ("Heun", "DPM2", "DPM++ 2M", "DPM++ SDE", "Euler a"):
        for schedule in ("Automatic", "Uniform", "Karras", "Exponential"):
            assert _spec(sampler=sampler, schedule_type=schedule,
                         sampling="a1111").schedule_type == schedule
    with pytest.raises(GenimgError, match=r"^posts/p.md:6: .*'UniPC' with the Uniform schedule "
                       r"\(it can: Karras, Exponential\); A1111 draws it with its own sampler"):
        _spec(sampler="UniPC", schedule_type="Uniform", sampling="a1111")
    assert _spec(sampler="DPM fast", schedule_type="Karras").schedule_type == "Karras"


def test_a_second_pass_runs_diffusers_schedulers():
    """The hires fix and the refiner (render/passes.py) sample with diffusers' schedulers:
    there ``sampling`` is dropped, and a sampler only genimg draws is an error."""
    from generator.errors import GenimgError

    hires = {"hires": {"scale": 1.5, "upscaler": "Lanczos"}}
    assert _spec(sampler="DPM++ 2M", sampling="a1111", **hires).sampling == "diffusers"
    with pytest.raises(GenimgError, match=r"^posts/p.md:5: 'sampler: DPM fast' is drawn by "
                       r"genimg's own k-diffusion loop, which does not run a second pass "
                       r"\('hires'\) yet"):
        _spec(sampler="DPM fast", **hires)


def test_dpm_adaptive_is_refused_with_its_reason():
    from generator.errors import GenimgError

    with pytest.raises(GenimgError, match=r"^posts/p.md:5: genimg cannot draw A1111's 'DPM "
                       r"adaptive' sampler: its step sizes depend on the picture"):
        _spec(sampler="DPM adaptive")


def test_ensd_is_dropped_where_the_noise_is_a_brownian_tree():
    assert _spec(sampler="DPM++ SDE", eta_noise_seed_delta=31337).eta_noise_seed_delta == 31337
    assert _spec(sampler="DPM++ SDE", sampling="a1111",
                 eta_noise_seed_delta=31337).eta_noise_seed_delta == 0
    assert _spec(sampler="DPM++ 3M SDE", eta_noise_seed_delta=5).eta_noise_seed_delta == 0
    assert _spec(sampler="DPM++ 2S a", eta_noise_seed_delta=5).eta_noise_seed_delta == 5


def test_an_a1111_infotext_is_read_as_k_diffusion_and_genimgs_round_trips():
    from generator.infotext import PARAMETERS, read_spec

    a1111 = "x\nSteps: 20, Sampler: Heun, Schedule type: Karras, CFG scale: 7, Seed: 1, " \
            "Version: v1.10.1"
    spec, unsupported = read_spec(a1111)
    assert (spec["sampling"], spec["schedule_type"], unsupported) == ("a1111", "Karras", [])
    assert "sampling" not in read_spec(a1111.replace("Heun", "DDIM"))[0]
    assert "sampling" not in read_spec(a1111.replace(", Version: v1.10.1", ""))[0]
    assert PARAMETERS["sampling"][1](_spec(sampler="Euler", sampling="a1111"), None) == "a1111"
    assert read_spec("x\nSteps: 20, Sampler: Euler, Seed: 1, Sampling: a1111")[0][
        "sampling"] == "a1111"


# --- the scheduler without a UNet -----------------------------------------------------


def test_img2img_runs_a1111s_steps_after_diffusers_placeholders():
    """A1111 runs int(strength × steps) + 1 steps from the schedule's end; diffusers'
    pipeline skips as many leading timesteps as its own strength says."""
    from generator.render.kscheduler import KScheduler

    scheduler = KScheduler(TINY_SCHEDULER, "Euler", "Uniform", strength=0.5,
                           pipeline_strength=0.5)
    scheduler.set_timesteps(10)
    assert len(scheduler.calls) == 6 and len(scheduler.timesteps) == 5 + 6
    assert scheduler.sigmas[0] == scheduler.all_sigmas[4] and scheduler.timesteps[5] < 999
    heun = KScheduler(TINY_SCHEDULER, "Heun", "Uniform")
    heun.set_timesteps(10)
    assert len(heun.calls) == 19  # two model calls a step, one for the last


def test_brownian_noise_is_each_pictures_own():
    import torch

    from generator.render.kscheduler import BrownianNoise

    sigmas = torch.tensor([14.6, 3.0, 0.5, 0.03, 0.0])
    x = torch.zeros((2, 4, 8, 8))
    both = BrownianNoise(x, sigmas, [7, 8], [True, False])
    alone = BrownianNoise(x[:1], sigmas, [7], [True])
    cpu = BrownianNoise(x[:1], sigmas, [7], [False])
    first, second = both(sigmas[0], sigmas[1]), alone(sigmas[0], sigmas[1])
    assert torch.equal(first[0], second[0])
    assert not torch.equal(second, cpu(sigmas[0], sigmas[1]))  # NV: CUDA's numbers
    assert 0.5 < float(second.std()) < 1.5


# --- through the renderer -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fields", [
    {"sampler": "DPM++ SDE", "sampling": "a1111", "noise": "nv"},
    {"sampler": "DPM++ 2S a", "subseed": 5, "subseed_strength": 0.3, "schedule_type": "Uniform"},
])
def test_rendered_batched_equals_one_by_one(tiny_model, tmp_path, fields):  # noqa: F811
    """Per-step noise (a Brownian tree, or the picture's generator) is each picture's own:
    a batch draws what each picture alone draws."""
    from generator.models import ModelResolver
    from generator.render.diffusion import DiffusionRenderer
    from tests.test_diffusion import make_config, max_diff, pixels, render_all, task

    ref = ModelResolver(make_config(tmp_path, tiny_model)).model("default")
    tasks = [task(ref, str(i), seed=100 + i, steps=3, prompt=f"a girl, {i}", **fields)
             for i in range(2)]
    steps: list[int] = []
    together = render_all(DiffusionRenderer(make_config(tmp_path, tiny_model, batch_size=2)),
                          tasks, steps)
    single = DiffusionRenderer(make_config(tmp_path, tiny_model, batch_size=1))
    alone = render_all(single, tasks)
    assert sum(steps) == 2 * 3
    for a, b in zip(together, alone, strict=True):
        assert max_diff(a, b) <= 2
    other = render_all(single, [task(ref, "o", seed=100, steps=3, prompt="a girl, 0",
                                     **{**fields, "sampler": "Euler a"})])[0]
    assert pixels(other) != pixels(together[0])


@pytest.mark.slow
def test_img2img_with_genimgs_sampler(tiny_model, tmp_path):  # noqa: F811
    from PIL import Image

    from generator.models import ModelResolver
    from generator.render.diffusion import DiffusionRenderer
    from tests.test_diffusion import make_config, pixels, render_all, task

    ref = ModelResolver(make_config(tmp_path, tiny_model)).model("default")
    red = Image.new("RGB", (64, 64), (200, 30, 30))
    base = {"mode": "img2img", "strength": 0.5, "seed": 5, "steps": 4, "from": "parent"}
    steps: list[int] = []
    fast, euler = render_all(DiffusionRenderer(make_config(tmp_path, tiny_model)), [
        task(ref, "f", red, sampler="DPM fast", **base),
        task(ref, "e", red, sampler="Euler", sampling="a1111", **base)], steps)
    assert sum(steps) == 2 * int(4 * 0.5) and pixels(fast) != pixels(euler)
    assert abs(sum(fast.convert("L").tobytes()) / 64 ** 2 - 90) < 60  # red's grey is 90
