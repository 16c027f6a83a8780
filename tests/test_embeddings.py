"""Textual-inversion embeddings the A1111 way (issue 12): a file of the embeddings folder
is used where its name is written in a prompt; its hash is in the key."""

from __future__ import annotations

from dataclasses import replace

import pytest

from generator.build import load_site
from generator.metadata import parse_infotext
from generator.models import FileRef
from tests.helpers import MakeBlog
from tests.test_diffusion import max_diff, pixels, render_all, task
from tests.test_loras import fresh_renderer, tiny_ref

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

POST = """
    ---
    title: E
    date: 2024-01-01
    ---

    ```gallery
    - prompt: a cat
      negative_prompt: easynegative, blurry
      seed: 1
    - prompt: a cat, bad-hands-5
      seed: 1
    - prompt: a cat
      seed: 1
    ```
"""


def test_embeddings_named_in_prompts_are_keyed_by_file(make_blog: MakeBlog, tmp_path):
    from generator.infotext import infotext_for

    webui = tmp_path / "webui"
    (webui / "embeddings").mkdir(parents=True)
    (webui / "models").mkdir()
    (webui / "embeddings/easynegative.safetensors").write_bytes(b"e1")
    (webui / "embeddings/bad-hands-5.pt").write_bytes(b"e2")
    (webui / "embeddings/bad.pt").write_bytes(b"e3")  # a word inside "bad-hands-5": unused
    config = f"title: T\nmodels_dir: {webui / 'models'}\nmodels:\n  default: m.safetensors\n"
    root = make_blog({"p.md": POST}, config=config)
    (root / "m.safetensors").write_bytes(b"model")
    site = load_site(root)
    negative, hands, plain = site.plan.nodes.values()
    assert [e.name for e in negative.embeddings] == ["easynegative"]
    assert [e.name for e in hands.embeddings] == ["bad-hands-5"]
    assert "embeddings" not in plain.key_dict()
    assert negative.key_dict()["embeddings"][0].startswith("sha256:")
    info = parse_infotext(infotext_for(negative, site.plan))
    assert info["TI hashes"].startswith("easynegative: ") and len(info["TI hashes"]) == 26
    (webui / "embeddings/easynegative.safetensors").write_bytes(b"retrained")
    again = list(load_site(root).plan.nodes.values())
    assert again[0].key != negative.key and again[1].key == hands.key


@pytest.mark.slow
@pytest.mark.render
def test_an_embedding_changes_the_pixels_and_is_unloaded(tmp_path, tiny_model):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "shiny.safetensors"
    save_file({"emb_params": torch.randn(2, 32, generator=torch.Generator().manual_seed(3))},
              str(path))
    shiny = FileRef("shiny", str(path), "sha256:shiny")
    ref = tiny_ref(tmp_path, tiny_model)
    renderer = fresh_renderer(tmp_path, tiny_model, batch_size=1)
    try:
        base = dict(prompt="a photo of shiny cat", steps=2, seed=2)
        without = render_all(renderer, [task(ref, "without", **base)])[0]
        with_it = render_all(renderer, [replace(task(ref, "with", **base),
                                                embeddings=(shiny,))])[0]
        after = render_all(renderer, [task(ref, "after", **base)])[0]
    finally:
        renderer.close()
    assert max_diff(with_it, without) > 10
    assert pixels(after) == pixels(without)


def _text_sizes(pipe) -> list[tuple[int, int]]:
    """Each tokenizer's vocabulary and its encoder's embedding rows: an embedding left
    behind shows in both."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return [(len(tok), enc.get_input_embeddings().weight.shape[0]) for tok, enc in pairs]


@pytest.mark.slow
@pytest.mark.render
def test_an_sdxl_embedding_changes_the_pixels_and_is_unloaded(tmp_path, arch_models):
    """A1111/Civitai SDXL embeddings hold one tensor per text encoder: ``clip_l``, ``clip_g``."""
    import torch
    from safetensors.torch import save_file

    from generator.models import ModelRef
    from generator.render.diffusion import DiffusionRenderer
    from tests.test_diffusion import make_config

    gen = torch.Generator().manual_seed(5)
    path = tmp_path / "shiny.safetensors"
    save_file({"clip_l": torch.randn(2, 64, generator=gen),
               "clip_g": torch.randn(2, 128, generator=gen)}, str(path))
    shiny = FileRef("shiny", str(path), "sha256:shiny")
    ref = ModelRef("xl", "folder", str(arch_models["sdxl"].folder), "sha256:xl")
    renderer = DiffusionRenderer(make_config(tmp_path, batch_size=1))
    try:
        # diffusers' prompts here (A1111's, encoded by genimg: the build test below)
        base = dict(prompt="a photo of shiny cat", steps=2, seed=2)
        without = render_all(renderer, [task(ref, "without", **base)])[0]
        sizes = _text_sizes(renderer._models[ref.fingerprint].txt2img)
        with_it = render_all(renderer, [replace(task(ref, "with", **base),
                                                embeddings=(shiny,))])[0]
        grown = _text_sizes(renderer._models[ref.fingerprint].txt2img)
        after = render_all(renderer, [task(ref, "after", **base)])[0]
        assert max_diff(with_it, without) > 10
        assert pixels(after) == pixels(without)
        # two vectors: two tokens (shiny, shiny_1) in each tokenizer and encoder
        assert [n + 2 for pair in sizes for n in pair] == [n for pair in grown for n in pair]
        assert _text_sizes(renderer._models[ref.fingerprint].txt2img) == sizes
    finally:
        renderer.close()


MIXED = """
    ---
    title: Mixed
    date: 2024-01-01
    ---

    ```gallery
    - prompt: (photo:1.4) of a [cat], shiny BREAK smile <lora:add_detail:0.8>
    - prompt: (photo:1.4) of a [cat], shiny BREAK smile
    - prompt: (photo:1.4) of a [cat] BREAK smile <lora:add_detail:0.8>
    - prompt: photo of a cat, shiny smile <lora:add_detail:0.8>
    - prompt: (photo:1.4) of a [cat] BREAK smile
    ```
"""


def _mixed_blog(make_blog: MakeBlog, tmp_path, arch_models, arch: str, post: str):
    """An A1111 webui folder: the tiny checkpoint, a LoRA and a 2-vector embedding."""
    import torch
    from diffusers import DiffusionPipeline
    from safetensors.torch import save_file

    from tests.test_a1111 import webui
    from tests.tinymodels import save_tiny_lora

    model = arch_models[arch]
    webui_dir = tmp_path / arch
    if not (webui_dir / "webui/embeddings").is_dir():
        pipe = DiffusionPipeline.from_pretrained(str(model.folder))
        lora = save_tiny_lora(pipe, webui_dir / "lora.safetensors", "kohya", seed=3)
        webui(webui_dir, model.checkpoint, lora)
        gen = torch.Generator().manual_seed(7)
        vectors = ({"clip_l": torch.randn(2, 64, generator=gen),
                    "clip_g": torch.randn(2, 128, generator=gen)} if arch == "sdxl"
                   else {"emb_params": torch.randn(2, 64, generator=gen)})
        (webui_dir / "webui/embeddings").mkdir()
        save_file(vectors, str(webui_dir / "webui/embeddings/shiny.safetensors"))
    config = (f"title: T\nbase_url: /\nmodels_dir: {webui_dir / 'webui/models'}\n"
              "defaults:\n  model: v1-5-pruned-emaonly\n  steps: 2\n  width: 64\n"
              "  height: 64\n  seed: 3\n  prompt_syntax: a1111\n")
    return make_blog({"2024-01-01-a.md": post}, config=config, name=f"blog-{arch}-{len(post)}")


def _pictures(root) -> dict[str, tuple[dict[str, str], bytes]]:
    from PIL import Image

    from generator.metadata import parse_infotext

    found = {}
    for png in (root / "site/images").glob("*.png"):
        with Image.open(png) as image:
            info = parse_infotext(image.info["parameters"])
            found[info["prompt"]] = (info, image.convert("RGB").tobytes())
    return found


@pytest.mark.slow
@pytest.mark.render
@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_a1111_prompts_with_loras_and_embeddings(make_blog, tmp_path, arch_models, arch):
    """Weights, BREAK, a LoRA and an embedding in one prompt: each one counts, keys and
    infotexts say which were used, and none is left behind for the next picture."""
    from tests.helpers import genimg

    root = _mixed_blog(make_blog, tmp_path, arch_models, arch, MIXED)
    result = genimg("build", "-C", root, "-q")
    assert result.exit_code == 0, result.output
    found = _pictures(root)
    assert len(found) == 5 and len({bytes_ for _, bytes_ in found.values()}) == 5
    full, no_lora, no_embedding, no_syntax, plain = (
        found[p.strip()[len("- prompt: "):]] for p in MIXED.split("\n")
        if p.strip().startswith("- prompt:"))
    assert "Lora hashes" in full[0] and "TI hashes" in full[0]
    assert "Lora hashes" not in no_lora[0] and full[0]["TI hashes"] == no_lora[0]["TI hashes"]
    assert "TI hashes" not in no_embedding[0] and "TI hashes" in no_syntax[0]
    assert "Lora hashes" not in plain[0] and "TI hashes" not in plain[0]
    # Rendered last, after the LoRA and embedding batches: as if it were alone.
    alone = _mixed_blog(make_blog, tmp_path, arch_models, arch, MIXED.split("    - ")[0] +
                        "    - prompt: (photo:1.4) of a [cat] BREAK smile\n    ```\n")
    assert genimg("build", "-C", alone, "-q").exit_code == 0
    [(info, picture)] = _pictures(alone).values()
    assert picture == plain[1] and info == plain[0]
