"""LoRAs (issue 12): ``<lora:name:weight>`` tags and ``loras:``, found in an A1111 or
ComfyUI models folder, keyed by file hash and weight, loaded and unloaded with diffusers
(peft), kohya/A1111 and diffusers layouts alike."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator.config import ModelConfig, SiteConfig
from generator.errors import GenimgError, Location
from generator.loras import TAG, merged, prompt_text, split_prompt
from generator.models import FileRef, ModelResolver
from generator.plan import key_fields
from generator.specs import parse_image
from tests.helpers import plan_key
from tests.test_diffusion import max_diff, pixels, render_all, task

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")


# --- the tags -------------------------------------------------------------------------


def test_tags_are_read_and_taken_out_of_the_prompt():
    clean, tags = split_prompt("a cat, <lora:add_detail:0.8> photo <LORA:Film Grain> <lyco:x:-1>")
    assert tags == (("add_detail", 0.8), ("Film Grain", 1.0), ("x", -1.0))
    assert clean == "a cat,  photo  " and prompt_text("a <lora:a:1>cat") == "a cat"
    assert split_prompt("<lora:a:0.5:0.2>")[1] == (("a", 0.5),)  # A1111's te:unet form


@given(st.text())
def test_a_prompt_without_tags_is_untouched(prompt):
    if not TAG.search(prompt):
        assert split_prompt(prompt) == (prompt, ()) and prompt_text(prompt) == prompt


@pytest.mark.parametrize(("prompt", "says"), [
    ("<lora:a:lots>", "not a number"), ("<lora:a:1> <lora:a:0.5>", "named twice")])
def test_bad_tags_are_one_line_errors(prompt, says):
    with pytest.raises(GenimgError, match=says) as caught:
        parse_image({"prompt": prompt}, Location("posts/p.md", 4))
    assert str(caught.value).startswith("posts/p.md:4: ")


def test_the_mapping_adds_to_the_tags_and_may_not_repeat_them():
    assert merged("<lora:a:0.5> cat", {"b": 1}) == (("a", 0.5), ("b", 1.0))
    spec = parse_image({"prompt": "<lora:a:0.5> cat", "loras": {"b": 2}}, Location("p.md", 1))
    assert spec.loras == (("a", 0.5), ("b", 2.0))
    assert spec.as_yaml_dict()["loras"] == {"b": 2.0}
    with pytest.raises(GenimgError, match="both in the prompt and in 'loras:'"):
        parse_image({"prompt": "<lora:a> cat", "loras": {"a": 1}}, Location("p.md", 1))
    with pytest.raises(GenimgError, match="must be a number"):
        parse_image({"prompt": "cat", "loras": {"a": "high"}}, Location("p.md", 1))


# --- finding files, keys ---------------------------------------------------------------


def a1111_folder(root: Path) -> Path:
    """An A1111 webui folder: models/Lora/ with a subfolder, as people keep them."""
    (root / "webui/models/Lora/styles").mkdir(parents=True)
    (root / "webui/models/Lora/add_detail.safetensors").write_bytes(b"lora one")
    (root / "webui/models/Lora/styles/film.safetensors").write_bytes(b"lora two")
    return root / "webui"


def resolver_for(root: Path, models_dir: Path | None) -> ModelResolver:
    return ModelResolver(SiteConfig(root=root, cache_dir=root / ".genimg",
                                    models_dir=models_dir))


@pytest.mark.parametrize("level", ["webui", "webui/models"])
def test_loras_are_found_by_name_in_the_models_folder(tmp_path, level):
    a1111_folder(tmp_path)
    resolver = resolver_for(tmp_path, tmp_path / level)
    found = resolver.lora("film")
    assert found.path.endswith("styles/film.safetensors")
    assert found.fingerprint.startswith("sha256:") and len(found.short_hash) == 12
    with pytest.raises(GenimgError, match="did you mean 'film'"):
        resolver.lora("flim")


def test_comfyui_loras_folder_and_plain_paths(tmp_path):
    (tmp_path / "comfy/loras").mkdir(parents=True)
    (tmp_path / "comfy/loras/grain.safetensors").write_bytes(b"x")
    (tmp_path / "mine.safetensors").write_bytes(b"y")
    resolver = resolver_for(tmp_path, tmp_path / "comfy")
    assert resolver.lora("grain").path.endswith("loras/grain.safetensors")
    assert resolver.lora("mine.safetensors").path == str(tmp_path / "mine.safetensors")
    with pytest.raises(GenimgError, match="set 'models_dir:'"):
        resolver_for(tmp_path, None).lora("grain")


def test_key_holds_each_file_hash_and_weight_and_nothing_without_loras():
    spec = parse_image({"prompt": "a cat", "seed": 1}, Location("p.md", 1))
    assert key_fields(spec, "m", None, None) == key_fields(spec, "m", None, None, ())
    assert "loras" not in key_fields(spec, "m", None, None)
    one, two = FileRef("a", "a", "sha256:1"), FileRef("a", "a", "sha256:2")
    keys = {plan_key(spec, "m", None, None)}
    for loras in [((one, 1.0),), ((one, 0.5),), ((two, 1.0),), ((one, 1.0), (two, 1.0))]:
        fields = key_fields(spec, "m", None, None, loras)
        assert fields["loras"] == [[lora.fingerprint, w] for lora, w in loras]
        from generator.hashing import canonical_key

        keys.add(canonical_key(fields))
    assert len(keys) == 5


def test_the_plan_keys_a_lora_by_its_file(make_blog, tmp_path):
    from generator.build import load_site

    webui = a1111_folder(tmp_path)
    post = """
        ---
        title: L
        date: 2024-01-01
        ---

        ```gallery
        - prompt: <lora:add_detail:0.7> a cat
          seed: 1
        - prompt: a cat
          seed: 1
        ```
    """
    config = f"title: T\nmodels_dir: {webui}\nmodels:\n  default: m.safetensors\n"
    root = make_blog({"p.md": post}, config=config)
    (root / "m.safetensors").write_bytes(b"model")

    def keys() -> list[dict]:
        site = load_site(root)
        return [node.key_dict() for node in site.plan.nodes.values()]

    first = keys()
    assert first[0]["loras"][0][1] == 0.7 and "loras" not in first[1]
    (webui / "models/Lora/add_detail.safetensors").write_bytes(b"retrained")
    second = keys()
    assert second[0]["loras"] != first[0]["loras"] and second[1] == first[1]


# --- rendering (imports torch: slow) ----------------------------------------------------


@pytest.fixture(scope="module")
def lora_files(tiny_model, tmp_path_factory):
    """Two kohya-layout LoRAs and one in diffusers' layout, made from the tiny model."""
    from diffusers import StableDiffusionPipeline

    from tests.tinymodels import save_tiny_lora

    root = tmp_path_factory.mktemp("loras")
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model.folder))
    return {"a": save_tiny_lora(pipe, root / "Lora/a.safetensors", "kohya", seed=1),
            "b": save_tiny_lora(pipe, root / "Lora/b.safetensors", "kohya", seed=2),
            "d": save_tiny_lora(pipe, root / "Lora/d.safetensors", "diffusers", seed=1)}


def lora_task(ref, key, loras, **fields):
    made = task(ref, key, steps=2, seed=4, **fields)
    refs = tuple((FileRef(name, str(path), "sha256:" + name), w) for name, path, w in loras)
    return replace(made, loras=refs)


def tiny_config(tmp_path, tiny_model, batch_size=4) -> SiteConfig:
    models = {"default": ModelConfig("default", str(tiny_model.folder))}
    return SiteConfig(root=tmp_path, cache_dir=tmp_path / ".genimg",
                      models=MappingProxyType(models), batch_size=batch_size)


def tiny_ref(tmp_path, tiny_model):
    return ModelResolver(tiny_config(tmp_path, tiny_model)).model("default")


def fresh_renderer(tmp_path, tiny_model, batch_size=4):
    from generator.render.diffusion import DiffusionRenderer

    return DiffusionRenderer(tiny_config(tmp_path, tiny_model, batch_size))


@pytest.mark.slow
@pytest.mark.render
def test_lora_weights_and_layouts(tmp_path, tiny_model, lora_files):
    ref = tiny_ref(tmp_path, tiny_model)
    renderer = fresh_renderer(tmp_path, tiny_model, batch_size=1)
    try:
        plain, zero, one, diffusers_one, again = render_all(renderer, [
            lora_task(ref, "plain", []),
            lora_task(ref, "zero", [("a", lora_files["a"], 0.0)]),
            lora_task(ref, "one", [("a", lora_files["a"], 1.0)]),
            lora_task(ref, "d", [("d", lora_files["d"], 1.0)]),
            lora_task(ref, "again", [])])
    finally:
        renderer.close()
    assert pixels(zero) == pixels(plain) == pixels(again)  # weight 0, and unloaded after
    assert max_diff(one, plain) > 10
    # the same weights written in kohya's layout and in diffusers' load the same LoRA
    assert max_diff(one, diffusers_one) <= 1


@pytest.mark.slow
@pytest.mark.render
def test_lora_sets_never_share_a_batch_or_leak(tmp_path, tiny_model, lora_files):
    from generator.render.diffusion import plan_batches

    ref = tiny_ref(tmp_path, tiny_model)
    a, b = ("a", lora_files["a"], 1.0), ("b", lora_files["b"], 0.8)
    sets = {"none": [], "a": [a], "b": [b], "ab": [a, b]}
    tasks = [lora_task(ref, f"{name}{i}", sets[name], prompt=f"cat {i}")
             for i, name in enumerate(["a", "none", "ab", "b", "a", "none"])]
    batches = plan_batches(tasks, 4)
    assert all(len({t.loras for t in batch}) == 1 for batch in batches)
    together = fresh_renderer(tmp_path, tiny_model)
    alone = fresh_renderer(tmp_path, tiny_model, batch_size=1)
    try:
        mixed = render_all(together, tasks)
        one_by_one = [render_all(alone, [t])[0] for t in reversed(tasks)][::-1]
    finally:
        together.close()
        alone.close()
    for got, want in zip(mixed, one_by_one, strict=True):
        assert max_diff(got, want) <= 2  # batch slots sum in other orders, nothing more


def test_parsed_posts_with_loras_are_remembered_as_they_were(make_blog):
    from generator.content import load_posts
    from generator.state import _json_safe, post_from_record, post_record

    post_text = """
        ---
        title: L
        date: 2024-01-01
        ---

        ```gallery
        - prompt: <lora:a:0.7> a cat
          loras: {b: 1}
          vae: v.safetensors
        ```
    """
    root = make_blog({"p.md": post_text})
    [post] = load_posts(root / "posts", root, {})
    record = post_record(post)
    assert _json_safe(record)  # else the post would be parsed again on every build
    again = post_from_record(post.source, "posts/p.md", record)
    assert again.galleries[0].images == post.galleries[0].images
    assert again.galleries[0].images[0].loras == (("a", 0.7), ("b", 1.0))
