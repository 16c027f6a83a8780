"""DiffusionRenderer on a tiny random-weight SD model: real loading code, no GPU, no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from PIL import Image

from generator.config import ModelConfig, SiteConfig
from generator.errors import GenimgError, Location
from generator.models import ModelRef, ModelResolver
from generator.render.base import RenderTask
from generator.render.diffusion import DiffusionRenderer, batch_key, plan_batches
from generator.samplers import SAMPLERS
from generator.specs import parse_image
from tests.helpers import REPO
from tests.tinymodels import TinyModel

# diffusers' schedulers vs NumPy 2 (not ours): hundreds of identical warnings otherwise.
pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

SMALL = {"steps": 3, "width": 64, "height": 64}


def make_spec(**fields):
    return parse_image({"prompt": "a photo of a girl", "seed": 1, **SMALL, **fields},
                       Location("posts/p.md", 3))


def make_config(tmp_path: Path, tiny: TinyModel | None = None, **options) -> SiteConfig:
    models = {}
    if tiny is not None:
        models = {
            "default": ModelConfig("default", str(tiny.folder)),
            "file": ModelConfig("file", str(tiny.checkpoint), config=str(tiny.folder)),
        }
    return SiteConfig(root=tmp_path, cache_dir=tmp_path / ".genimg",
                      models=MappingProxyType(models), **options)


def task(ref: ModelRef | None, key: str = "k", source: Image.Image | None = None, **fields):
    return RenderTask(key, make_spec(**fields), ref, source=source)


def pixels(image: Image.Image) -> bytes:
    return image.tobytes()


def max_diff(a: Image.Image, b: Image.Image) -> int:
    return max(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True))


def render_all(renderer: DiffusionRenderer, tasks, steps: list[int] | None = None):
    on_step = steps.append if steps is not None else (lambda n: None)
    done = {t.key: image for t, image in renderer.render(tasks, on_step)}
    return [done[t.key] for t in tasks]


# --- no torch needed ------------------------------------------------------------------


def test_import_does_not_import_torch():
    code = ("import sys, generator.render.diffusion; "
            "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert out.stdout.strip() == "[]"


def test_batches_group_compatible_tasks_and_keep_models_together():
    a = ModelRef("a", "folder", "/a", "fp-a")
    b = ModelRef("b", "folder", "/b", "fp-b")
    tasks = [task(a, "1"), task(b, "2"), task(a, "3", cfg=5), task(a, "4"), task(b, "5"),
             task(a, "6"), task(a, "7", mode="img2img", **{"from": "x"})]
    batches = plan_batches(tasks, batch_size=2)
    assert [[t.key for t in batch] for batch in batches] == [
        ["1", "4"], ["6"], ["3"], ["7"], ["2", "5"]
    ]
    for batch in batches:
        assert len({batch_key(t) for t in batch}) == 1
    assert plan_batches(tasks, 1) and all(len(b) == 1 for b in plan_batches(tasks, 1))


def test_batch_key_ignores_what_may_differ_within_a_batch():
    ref = ModelRef("a", "folder", "/a", "fp-a")
    same = [task(ref, prompt="x", seed=1, negative_prompt="n"), task(ref, prompt="y", seed=2)]
    assert batch_key(same[0]) == batch_key(same[1])
    for change in ({"steps": 4}, {"sampler": "DDIM"}, {"width": 128}, {"cfg": 3}):
        assert batch_key(task(ref, **change)) != batch_key(same[0])


@pytest.mark.slow
@pytest.mark.render
def test_device_and_dtype_choice():
    import torch

    from generator.render.device import pick_device, pick_dtype

    assert pick_dtype("auto", "cuda") is torch.float16
    assert pick_dtype("auto", "cpu") is torch.float32
    assert pick_dtype("auto", "mps") is torch.float32
    assert pick_dtype("bfloat16", "cpu") is torch.bfloat16
    assert pick_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(GenimgError, match="no CUDA"):
            pick_device("cuda")
        assert pick_device("auto") in ("cpu", "mps")


@pytest.mark.render  # the renderer imports diffusers before it looks for the model
def test_missing_model_is_a_clear_error(tmp_path):
    renderer = DiffusionRenderer(make_config(tmp_path))
    gone = ModelRef("anime", "folder", str(tmp_path / "nowhere"), "fp")
    with pytest.raises(GenimgError, match=r"model 'anime' not found: .*nowhere does not exist"):
        list(renderer.render([task(gone)], lambda n: None))
    frozen = ModelRef("anime", "hub", "org/anime", "hub:org/anime@abc", problem="not cached")
    with pytest.raises(GenimgError, match="model 'anime' not found: not cached"):
        list(renderer.render([task(frozen)], lambda n: None))


# --- rendering with the tiny model (imports torch: slow) -------------------------------


@pytest.fixture(scope="module")
def refs(tiny_model, tmp_path_factory):
    """The tiny model resolved through genimg.yaml-like config: a folder and a single file."""
    root = tmp_path_factory.mktemp("blog")
    resolver = ModelResolver(make_config(root, tiny_model))
    return {"folder": resolver.model("default"), "file": resolver.model("file")}


@pytest.fixture(scope="module")
def renderer(tiny_model, tmp_path_factory):
    r = DiffusionRenderer(make_config(tmp_path_factory.mktemp("r"), tiny_model, batch_size=4))
    yield r
    r.close()


@pytest.mark.slow
@pytest.mark.render
def test_same_spec_same_pixels_across_renderers(refs, renderer, tmp_path, tiny_model):
    first = render_all(renderer, [task(refs["folder"], seed=7)])[0]
    again = render_all(renderer, [task(refs["folder"], seed=7)])[0]
    fresh = DiffusionRenderer(make_config(tmp_path, tiny_model))
    third = render_all(fresh, [task(refs["folder"], seed=7)])[0]
    assert first.size == (64, 64) and first.mode == "RGB"
    assert len(set(first.tobytes())) > 100  # a real picture, not a flat colour
    assert pixels(first) == pixels(again) == pixels(third)


@pytest.mark.slow
@pytest.mark.render
def test_different_seed_or_prompt_different_pixels(refs, renderer):
    a, b, c = render_all(renderer, [task(refs["folder"], "a", seed=1),
                                    task(refs["folder"], "b", seed=2),
                                    task(refs["folder"], "c", seed=1, prompt="a red cat")])
    assert pixels(a) != pixels(b)
    assert pixels(a) != pixels(c)


@pytest.mark.slow
@pytest.mark.render
def test_full_seed_range(refs, renderer):
    low, high = render_all(renderer, [task(refs["folder"], "lo", seed=0),
                                      task(refs["folder"], "hi", seed=2**32 - 1)])
    assert pixels(low) != pixels(high)


@pytest.mark.slow
@pytest.mark.render
@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M Karras", "DDIM"])
def test_batched_equals_one_by_one(refs, tmp_path, tiny_model, sampler, monkeypatch):
    tasks = [task(refs["folder"], str(i), seed=100 + i, sampler=sampler,
                  prompt=f"a photo of a girl, {i}", negative_prompt="blurry" * (i % 2))
             for i in range(3)]
    batched = DiffusionRenderer(make_config(tmp_path, tiny_model, batch_size=4))
    single = DiffusionRenderer(make_config(tmp_path, tiny_model, batch_size=1))
    calls: list[int] = []
    real_run = batched._run
    monkeypatch.setattr(batched, "_run", lambda b, s: calls.append(len(b)) or real_run(b, s))
    steps: list[int] = []
    together = render_all(batched, tasks, steps)
    alone = render_all(single, tasks)
    assert calls == [3] and sum(steps) == 3 * 3
    # Same pixels up to float rounding: a batched matmul sums in another order, so a
    # few channels may land one step (1/255) away, as between two GPUs.
    for a, b in zip(together, alone, strict=True):
        assert max_diff(a, b) <= 2


@pytest.mark.slow
@pytest.mark.render
def test_img2img_uses_its_parent(refs, renderer):
    base = dict(mode="img2img", strength=0.6, seed=5, **{"from": "parent"})
    red = Image.new("RGB", (64, 64), (200, 30, 30))
    blue = Image.new("RGB", (96, 80), (30, 30, 200))  # resized to 64x64 first
    steps: list[int] = []
    a, b, a2 = render_all(renderer, [task(refs["folder"], "a", red, **base),
                                     task(refs["folder"], "b", blue, **base),
                                     task(refs["folder"], "a2", red, **base)], steps)
    assert b.size == (64, 64)
    assert pixels(a) != pixels(b)
    # Twins in one batch: equal up to float rounding (the batch slot changes the sums).
    assert max_diff(a, a2) <= 2
    assert sum(steps) == 3 * int(3 * 0.6)
    # a txt2img with the same seed is a different picture: the parent shaped it
    plain = render_all(renderer, [task(refs["folder"], "t", seed=5)])[0]
    assert pixels(plain) != pixels(a)


@pytest.mark.slow
@pytest.mark.render
def test_img2img_runs_at_least_one_step(refs, renderer):
    steps: list[int] = []
    source = Image.new("RGB", (64, 64), "white")
    t = task(refs["folder"], "x", source, mode="img2img", strength=0.1, steps=3,
             **{"from": "p"})
    (image,) = render_all(renderer, [t], steps)
    assert image.size == (64, 64) and sum(steps) == t.work == 1


@pytest.mark.slow
@pytest.mark.render
def test_single_file_loads_like_the_folder(refs, renderer):
    folder, single = render_all(renderer, [task(refs["folder"], "f", seed=3),
                                           task(refs["file"], "s", seed=3)])
    assert refs["file"].kind == "file" and refs["folder"].kind == "folder"
    assert pixels(folder) == pixels(single)


@pytest.mark.slow
@pytest.mark.render
def test_model_loaded_once_and_pipelines_share_modules(refs, tmp_path, tiny_model, monkeypatch):
    renderer = DiffusionRenderer(make_config(tmp_path, tiny_model, batch_size=2))
    loads = []
    real_load = renderer._load
    monkeypatch.setattr(renderer, "_load", lambda ref: loads.append(ref.name) or real_load(ref))
    source = Image.new("RGB", (64, 64), "gray")
    img2img = dict(mode="img2img", strength=0.5, **{"from": "p"})
    mixed = [task(refs["folder"], "1"), task(refs["file"], "2"), task(refs["folder"], "3", source,
             **img2img), task(refs["file"], "4", source, **img2img)]
    render_all(renderer, mixed)
    render_all(renderer, mixed[:2])
    assert sorted(loads) == ["default", "file"]
    for model in renderer._models.values():
        for name in ("unet", "vae", "text_encoder", "tokenizer"):
            assert getattr(model.img2img, name) is getattr(model.txt2img, name)
    renderer.close()
    assert not renderer._models


@pytest.mark.slow
@pytest.mark.render
def test_every_sampler_runs_and_counts_steps(refs, renderer):
    tasks = [task(refs["folder"], name, sampler=name, steps=2) for name in SAMPLERS]
    steps: list[int] = []
    images = render_all(renderer, tasks, steps)
    assert all(image.size == (64, 64) for image in images)
    assert sum(steps) == 2 * len(SAMPLERS)  # Heun & co. call the UNet twice a step


@pytest.mark.slow
@pytest.mark.render
def test_size_cfg_and_options(refs, tmp_path, tiny_model):
    renderer = DiffusionRenderer(make_config(tmp_path, tiny_model, vae_tiling=True,
                                             cpu_offload=True, device="cpu", dtype="float32"))
    wide, no_cfg = render_all(renderer, [task(refs["folder"], "w", width=96, height=64),
                                         task(refs["folder"], "c", cfg=1)])
    assert wide.size == (96, 64) and no_cfg.size == (64, 64)
    assert next(iter(renderer._models.values())).txt2img.vae.use_tiling


@pytest.mark.slow
@pytest.mark.render
@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`:UserWarning")  # diffusers'
def test_hub_model_from_the_local_cache_only(tiny_model, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--genimg--tiny-sd"
    shutil.copytree(tiny_model.folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    config = replace(make_config(tmp_path, tiny_model), models=MappingProxyType(
        {"hub": ModelConfig("hub", "genimg/tiny-sd"),
         "gone": ModelConfig("gone", "genimg/not-here")}))
    resolver = ModelResolver(config)
    ref = resolver.model("hub")
    assert ref.kind == "hub" and ref.revision == commit
    renderer = DiffusionRenderer(config)
    (image,) = render_all(renderer, [task(ref)])
    assert image.size == (64, 64)
    gone = resolver.model("gone")
    assert "not in the local Hugging Face cache" in (gone.problem or "")
    with pytest.raises(GenimgError, match="model 'gone' not found: hub model"):
        list(renderer.render([task(gone)], lambda n: None))
    # A ref the resolver let through (e.g. a revision that vanished): still no download.
    stale = ModelRef("hub", "hub", "genimg/tiny-sd", "hub:x", revision="f" * 40)
    with pytest.raises(GenimgError, match=r"cannot load model 'hub'.*allow_downloads"):
        list(renderer.render([task(stale)], lambda n: None))


@pytest.mark.slow
@pytest.mark.render
def test_broken_model_folder_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{}")
    renderer = DiffusionRenderer(make_config(tmp_path))
    ref = ModelRef("broken", "folder", str(broken), "fp")
    with pytest.raises(GenimgError, match=re.escape(f"cannot load model 'broken' from {broken}")):
        list(renderer.render([task(ref)], lambda n: None))
