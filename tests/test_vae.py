"""A VAE replacing the model's (issue 12): per spec or per model, by file hash in the key,
loaded from A1111's layout, swapped per batch and never left behind."""

from __future__ import annotations

from dataclasses import replace

import pytest

from generator.build import load_site
from generator.models import FileRef
from tests.helpers import MakeBlog
from tests.test_diffusion import max_diff, pixels, render_all, task
from tests.test_loras import fresh_renderer, tiny_ref

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

POST = """
    ---
    title: V
    date: 2024-01-01
    ---

    ```gallery
    - prompt: a cat
      seed: 1
    - prompt: a cat
      seed: 1
      model: other
    - prompt: a cat
      seed: 1
      vae: VAE/b.safetensors
    ```
"""


def test_vae_per_spec_or_per_model_is_keyed_by_its_file(make_blog: MakeBlog):
    config = ("title: T\nmodels:\n  default: m.safetensors\n"
              "  other:\n    source: m.safetensors\n    vae: VAE/a.safetensors\n")
    root = make_blog({"p.md": POST}, config=config)
    (root / "m.safetensors").write_bytes(b"model")
    (root / "VAE").mkdir()
    (root / "VAE/a.safetensors").write_bytes(b"vae a")
    (root / "VAE/b.safetensors").write_bytes(b"vae b")
    plain, per_model, per_spec = (n.key_dict() for n in load_site(root).plan.nodes.values())
    assert "vae" not in plain  # no VAE: the key as before
    assert per_model["vae"] != per_spec["vae"] and per_model["model"] == plain["model"]
    (root / "VAE/b.safetensors").write_bytes(b"vae b, retrained")
    again = [n.key_dict() for n in load_site(root).plan.nodes.values()]
    assert again[2]["vae"] != per_spec["vae"] and again[:2] == [plain, per_model]


def test_an_unknown_vae_is_one_line(make_blog: MakeBlog, tmp_path):
    from tests.helpers import genimg

    (tmp_path / "models/VAE").mkdir(parents=True)
    (tmp_path / "models/VAE/vae-ft-mse.safetensors").write_bytes(b"v")
    root = make_blog({"p.md": POST.replace("VAE/b.safetensors", "vae-ft-mes")},
                     config=f"title: T\nmodels_dir: {tmp_path / 'models'}\nmodels:\n"
                            "  default: m.safetensors\n  other: m.safetensors\n")
    (root / "m.safetensors").write_bytes(b"model")
    result = genimg("check", "-C", root)
    assert result.exit_code == 1 and "did you mean 'vae-ft-mse'" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.render
def test_a_vae_file_changes_the_pixels_and_leaves_no_trace(tmp_path, tiny_model):
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    from tests.tinymodels import TINY_VAE, save_tiny_vae

    own = StableDiffusionPipeline.from_pretrained(str(tiny_model.folder)).vae
    same = FileRef("same", str(save_tiny_vae(own, tmp_path / "same.safetensors")), "sha256:s")
    import torch

    torch.manual_seed(5)
    other = AutoencoderKL(**TINY_VAE)
    new = FileRef("new", str(save_tiny_vae(other, tmp_path / "new.safetensors")), "sha256:n")
    ref = tiny_ref(tmp_path, tiny_model)
    renderer = fresh_renderer(tmp_path, tiny_model, batch_size=4)
    try:
        plain, with_same, with_new = render_all(renderer, [
            replace(task(ref, name, steps=2, seed=2), vae=vae)
            for name, vae in (("plain", None), ("same", same), ("new", new))])
        back = render_all(renderer, [task(ref, "back", steps=2, seed=2)])[0]  # after "new"
    finally:
        renderer.close()
    assert max_diff(with_same, plain) <= 1  # its own VAE, read from A1111's layout
    assert max_diff(with_new, plain) > 10
    assert pixels(back) == pixels(plain)
