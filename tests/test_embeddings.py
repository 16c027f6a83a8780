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
    assert "embeddings" not in plain.fields and negative.fields["embeddings"][0].startswith(
        "sha256:")
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
