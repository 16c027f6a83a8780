"""An A1111 (or ComfyUI) models folder named once in genimg.yaml (issue 12): checkpoints
by name or short hash, LoRAs from ``Lora/``, and the infotext A1111 and Civitai read."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image

from generator.build import load_site
from generator.infotext import infotext_to_spec
from generator.metadata import parse_infotext
from tests.helpers import MakeBlog, genimg

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

POST = """
    ---
    title: A1111
    date: 2024-01-01
    ---

    ```gallery
    - prompt: photo of a cat, <lora:add_detail:0.7>
      model: {model}
      seed: 1
    ```
"""


def webui(root: Path, checkpoint: bytes | Path = b"checkpoint", lora: bytes | Path = b"l") -> Path:
    """``webui/models/Stable-diffusion``, ``webui/models/Lora`` as A1111 lays them out."""
    models = root / "webui/models"
    for folder, name, content in (("Stable-diffusion/sd15", "v1-5-pruned-emaonly", checkpoint),
                                  ("Lora", "add_detail", lora)):
        (models / folder).mkdir(parents=True, exist_ok=True)
        target = models / folder / f"{name}.safetensors"
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    return models


def blog(make_blog: MakeBlog, models: Path, model: str, extra: str = "") -> Path:
    config = f"title: T\nbase_url: /\nmodels_dir: {models}\n{extra}"
    return make_blog({"2024-01-01-a.md": POST.format(model=model)}, config=config)


def test_checkpoints_by_name_or_short_hash_have_one_key(make_blog, tmp_path):
    models = webui(tmp_path)
    short = hashlib.sha256(b"checkpoint").hexdigest()[:10]
    keys = []
    for model in ("v1-5-pruned-emaonly", short, "v1-5-pruned-emaonly.safetensors"):
        root = blog(make_blog, models, model)
        [node] = load_site(root).plan.nodes.values()
        assert node.model is not None and node.model.short_hash == short
        assert node.model.shown_name == "v1-5-pruned-emaonly"
        keys.append(node.key)
        shutil.rmtree(root)
    assert len(set(keys)) == 1


def test_an_unknown_checkpoint_names_the_folder_choices(make_blog, tmp_path):
    root = blog(make_blog, webui(tmp_path), "v1-5-pruned-emaonyl")
    result = genimg("check", "-C", root)
    assert result.exit_code == 1
    assert "did you mean 'v1-5-pruned-emaonly'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_infotext_names_the_checkpoint_and_its_hashes(make_blog, tmp_path):
    from generator.infotext import infotext_for

    models = webui(tmp_path)
    root = blog(make_blog, models, "sd15", "models:\n  sd15: v1-5-pruned-emaonly\n")
    site = load_site(root)
    [node] = site.plan.nodes.values()
    info = parse_infotext(infotext_for(node, site.plan))
    assert info["Model"] == "v1-5-pruned-emaonly"  # the checkpoint, never the alias
    assert info["Model hash"] == hashlib.sha256(b"checkpoint").hexdigest()[:10]
    assert info["Lora hashes"] == f"add_detail: {hashlib.sha256(b'l').hexdigest()[:12]}"
    assert info["prompt"] == "photo of a cat, <lora:add_detail:0.7>"  # A1111 keeps the tag
    assert infotext_to_spec(infotext_for(node, site.plan))["model"] == "v1-5-pruned-emaonly"


@pytest.mark.slow
@pytest.mark.render
def test_a1111_folder_renders_sd15_with_a_lora_offline(make_blog, tmp_path, arch_models):
    from diffusers import StableDiffusionPipeline

    from tests.tinymodels import save_tiny_lora

    sd1 = arch_models["sd1"]
    lora = save_tiny_lora(StableDiffusionPipeline.from_pretrained(str(sd1.folder)),
                          tmp_path / "lora.safetensors", "kohya", seed=3)
    models = webui(tmp_path, sd1.checkpoint, lora)
    root = blog(make_blog, models, "v1-5-pruned-emaonly",
                "defaults:\n  steps: 2\n  width: 64\n  height: 64\n")
    result = genimg("build", "-C", root, "-q")
    assert result.exit_code == 0, result.output
    [png] = (root / "site/images").glob("*.png")
    with Image.open(png) as image:
        info = parse_infotext(image.info["parameters"])
    file_hash = hashlib.sha256(sd1.checkpoint.read_bytes()).hexdigest()
    assert info["Model"] == "v1-5-pruned-emaonly" and info["Model hash"] == file_hash[:10]
    assert info["Lora hashes"] == (
        f"add_detail: {hashlib.sha256(lora.read_bytes()).hexdigest()[:12]}")
    shown = genimg("info", png)
    assert shown.exit_code == 0 and "<lora:add_detail:0.7>" in shown.output
