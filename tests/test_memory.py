"""Memory (issue 12): only the active model on the accelerator; diffusers' offload,
VAE tiling and slicing as genimg.yaml options, and what each does to the pixels.

There is no GPU here, so the switch is watched another way: parked models go to the
``meta`` device (``memory.PARKING``), where every module left behind — or moved — shows.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import replace

import pytest

from generator.models import FileRef, ModelRef
from tests.test_diffusion import make_config, max_diff, pixels, render_all, task

pytestmark = [pytest.mark.slow, pytest.mark.render,
              pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")]


def two_models(tiny_model) -> tuple[ModelRef, ModelRef]:
    """The tiny model twice (folder, single file): two models as far as genimg knows."""
    return (ModelRef("a", "folder", str(tiny_model.folder), "sha256:a"),
            ModelRef("b", "file", str(tiny_model.checkpoint), "sha256:b",
                     config=str(tiny_model.folder)))


@pytest.fixture(scope="module")
def other_vae(tiny_model, tmp_path_factory) -> FileRef:
    import torch
    from diffusers import AutoencoderKL

    from tests.tinymodels import TINY_VAE, save_tiny_vae

    torch.manual_seed(5)
    folder = tmp_path_factory.mktemp("vae")
    path = save_tiny_vae(AutoencoderKL(**TINY_VAE), folder / "v.safetensors")
    return FileRef("v", str(path), "sha256:v")


def test_a_model_switch_parks_everything_of_the_previous_model(tmp_path, tiny_model,
                                                               other_vae, monkeypatch):
    from generator.render import memory
    from generator.render.diffusion import DiffusionRenderer

    a, b = two_models(tiny_model)
    alone = DiffusionRenderer(make_config(tmp_path))
    try:
        b_alone = render_all(alone, [task(b, seed=3, steps=2)])[0]
    finally:
        alone.close()
    monkeypatch.setattr(memory, "PARKING", "meta")
    renderer = DiffusionRenderer(make_config(tmp_path))
    try:  # a with a VAE file (its own VAE set aside), then b
        render_all(renderer, [replace(task(a, "a", seed=3, steps=2), vae=other_vae)])
        model_a = renderer._models[a.fingerprint]
        held_by_a = list(memory.modules_of((model_a.txt2img, model_a.img2img),
                                           model_a.own_vae, *renderer._vaes.values()))
        # UNet, text encoder, the VAE file (its pipelines' VAE now) and its own VAE
        assert model_a.own_vae is not None and len(held_by_a) == 4
        assert memory.bytes_on([model_a.own_vae], "cpu") == 0  # set aside: parked at once
        b_after = render_all(renderer, [task(b, "b", seed=3, steps=2)])[0]
        model_b = renderer._models[b.fingerprint]
        held_by_b = list(memory.modules_of((model_b.txt2img, model_b.img2img)))
        assert memory.bytes_on(held_by_a, "cpu") == 0  # nothing of a left where b runs
        assert memory.bytes_on(held_by_a, "meta") > 0
        assert memory.bytes_on(held_by_b, "meta") == 0
    finally:
        renderer.close()
    assert pixels(b_after) == pixels(b_alone)


def test_closing_drops_every_pipeline(tmp_path, tiny_model, other_vae):
    from generator.render.diffusion import DiffusionRenderer

    renderer = DiffusionRenderer(make_config(tmp_path))
    a, b = two_models(tiny_model)
    render_all(renderer, [replace(task(a, "a", steps=1), vae=other_vae), task(b, "b", steps=1)])
    alive = [weakref.ref(thing) for model in renderer._models.values()
             for thing in (model.txt2img, model.img2img, model.txt2img.unet, model.own_vae)
             if thing is not None]
    alive += [weakref.ref(vae) for vae in renderer._vaes.values()]
    assert len(alive) == 8
    renderer.close()
    gc.collect()
    assert [ref() for ref in alive] == [None] * len(alive)


def test_memory_options_and_the_pixels(tmp_path, tiny_model, other_vae):
    """Offload and slicing keep the pixels exactly; tiling too up to the VAE's sample
    size (64 here, 512 to 1024 for real VAEs), and changes them above it."""
    from generator.render.diffusion import DiffusionRenderer

    a, b = two_models(tiny_model)
    tasks = [task(a, "a1", seed=1, steps=2), task(a, "a2", seed=2, steps=2),
             replace(task(a, "av", seed=1, steps=2), vae=other_vae),
             task(b, "b", seed=1, steps=2, mode="img2img", strength=0.6, **{"from": "p"}),
             task(a, "big", seed=1, steps=2, width=128, height=128)]
    made = {}
    uses = {"plain": range(5), "offload": range(4), "slicing": (0, 1), "tiling": (0, 4)}
    for name, options in (("plain", {}), ("offload", {"cpu_offload": True}),
                          ("slicing", {"vae_slicing": True}),
                          ("tiling", {"vae_tiling": True})):
        renderer = DiffusionRenderer(make_config(tmp_path, **options))
        try:
            parent = render_all(renderer, tasks[:1])[0]
            made[name] = dict(zip(uses[name], render_all(
                renderer, [replace(tasks[i], source=parent) for i in uses[name]]), strict=True))
            if name == "tiling":
                [model] = renderer._models.values()
                assert model.txt2img.vae.use_tiling  # and a VAE file replacing it:
                assert renderer._load_vae(other_vae, model.txt2img.vae).use_tiling
        finally:
            renderer.close()
    for name in ("offload", "slicing"):  # a1 and a2 share a batch: slicing splits it
        assert all(pixels(p) == pixels(made["plain"][i]) for i, p in made[name].items()), name
    assert pixels(made["tiling"][0]) == pixels(made["plain"][0])
    assert max_diff(made["tiling"][4], made["plain"][4]) > 0  # 128 px: tiles, blended
