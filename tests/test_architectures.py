"""SD 1.x, SD 2.x and SDXL from single files with no hub and no ``config:`` (issue 12).

The architecture comes from the file's tensor names and shapes, never its name; the
configs genimg ships are measured against the file; a single file renders the same
pixels as the diffusers folder it was written from.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from generator.checkpoints import SD1, SD2, SDXL, detect, prediction, safetensors_shapes
from generator.errors import GenimgError
from generator.metadata import parse_infotext
from generator.models import ModelRef
from tests.helpers import MakeBlog, genimg
from tests.test_diffusion import make_config, max_diff, render_all, task
from tests.tinymodels import TinyModel

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
SD2_TEXT = "cond_stage_model.model.token_embedding.weight"
XL_L = "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"
XL_G = "conditioner.embedders.1.model.positional_embedding"
ATTN2_K = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"


def write_header_only(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A .safetensors header (and zero bytes of data: detection never reads them)."""
    header = {k: {"dtype": "F32", "shape": list(v), "data_offsets": [0, 0]}
              for k, v in shapes.items()}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


# --- no torch needed --------------------------------------------------------------------


@pytest.mark.parametrize(("shapes", "expected"), [
    ({UNET_IN: (320, 4, 3, 3), SD1_TEXT: (77, 768), ATTN2_K: (320, 768)}, SD1),
    ({UNET_IN: (320, 4, 3, 3), SD2_TEXT: (49408, 1024)}, SD2),
    ({UNET_IN: (320, 4, 3, 3), SD1_TEXT: (77, 1024), ATTN2_K: (320, 1024)}, SD2),
    ({UNET_IN: (320, 4, 3, 3), XL_L: (77, 768), XL_G: (77, 1280)}, SDXL),
])
def test_architecture_from_tensor_names_and_shapes(tmp_path, shapes, expected):
    # The file's name says SDXL for every one of them: only the tensors count.
    file = write_header_only(tmp_path / "sd_xl_base_1.0.safetensors", shapes)
    assert detect(safetensors_shapes(file), str(file)) == expected
    v = prediction(shapes, expected)
    assert v == ("v_prediction" if expected == SD2 else "epsilon")
    assert prediction({**shapes, "v_pred": ()}, expected) == "v_prediction"


@pytest.mark.parametrize(("shapes", "says"), [
    ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)},
     "not a Stable Diffusion checkpoint genimg recognises"),
    ({"conditioner.embedders.0.model.text_projection": (1280, 1280)}, "an SDXL refiner"),
])
def test_unrecognised_file_is_one_line(tmp_path, shapes, says):
    file = write_header_only(tmp_path / "v1-5-pruned.safetensors", shapes)
    with pytest.raises(GenimgError, match=says) as caught:
        detect(safetensors_shapes(file), str(file))
    assert "\n" not in str(caught.value) and str(file) in str(caught.value)


def test_unreadable_safetensors_is_one_line(tmp_path):
    for data in (b"", b"not really a model", struct.pack("<Q", 5) + b"[1,2]"):
        file = tmp_path / "m.safetensors"
        file.write_bytes(data)
        with pytest.raises(GenimgError, match=r"not a readable \.safetensors file"):
            safetensors_shapes(file)


# --- rendering with the tiny models (imports torch: slow) --------------------------------


def refs_of(model: TinyModel, tmp_path: Path, name: str) -> tuple[ModelRef, ModelRef]:
    """The folder, and the single file under a misleading name, with no ``config:``."""
    misleading = tmp_path / name
    shutil.copyfile(model.checkpoint, misleading)
    return (ModelRef("folder", "folder", str(model.folder), "sha256:folder"),
            ModelRef("file", "file", str(misleading), "sha256:file"))


@pytest.mark.slow
@pytest.mark.render
@pytest.mark.parametrize(("arch", "name"), [("sd1", "sd_xl_base_1.0.safetensors"),
                                            ("sd2", "v1-5-pruned-emaonly.safetensors"),
                                            ("sdxl", "v2-1_768-ema-pruned.safetensors")])
def test_single_file_renders_like_its_folder(arch_models, tmp_path, arch, name):
    from generator.render.diffusion import DiffusionRenderer

    folder, single = refs_of(arch_models[arch], tmp_path, name)
    renderer = DiffusionRenderer(make_config(tmp_path))
    try:
        tasks = [task(ref, ref.name, seed=5, steps=2) for ref in (folder, single)]
        made = render_all(renderer, tasks)
        parents = [made[0], made[0]]
        img2img = render_all(renderer, [
            task(ref, ref.name + "-i", source=parent, mode="img2img", strength=0.5, steps=2,
                 **{"from": "parent"})
            for ref, parent in zip((folder, single), parents, strict=True)])
        loaded = [renderer._models[ref.fingerprint].txt2img for ref in (folder, single)]
    finally:
        renderer.close()
    assert len(set(made[0].tobytes())) > 50  # a real picture
    assert max_diff(*made) <= 1 and max_diff(*img2img) <= 1  # float rounding at most
    assert [type(p).__name__ for p in loaded] == [
        "StableDiffusionXLPipeline" if arch == "sdxl" else "StableDiffusionPipeline"] * 2
    for pipe in loaded:  # SD 2.x 768 models predict v
        expected = "v_prediction" if arch == "sd2" else "epsilon"
        assert pipe.scheduler.config.prediction_type == expected


@pytest.mark.slow
@pytest.mark.render
def test_unrecognised_single_file_fails_in_one_line(tmp_path):
    from generator.render.diffusion import DiffusionRenderer

    file = write_header_only(tmp_path / "lora.safetensors", {"lora_te_x.alpha": ()})
    ref = ModelRef("lora", "file", str(file), "sha256:x")
    with pytest.raises(GenimgError, match="not a Stable Diffusion checkpoint") as caught:
        render_all(DiffusionRenderer(make_config(tmp_path)), [task(ref)])
    assert "\n" not in str(caught.value)


@pytest.mark.slow
@pytest.mark.render
def test_sdxl_single_file_builds_offline_and_reads_back(make_blog: MakeBlog, arch_models):
    config = (f"title: XL\nbase_url: /\nmodels:\n  xl: {arch_models['sdxl'].checkpoint}\n"
              "defaults:\n  model: xl\n  steps: 2\n  width: 64\n  height: 64\n")
    post = """
        ---
        title: XL
        date: 2024-05-01
        ---

        ```gallery
        - prompt: photo of a cat
          seed: 3
        ```
    """
    root = make_blog({"2024-05-01-xl.md": post}, config=config)
    result = genimg("build", "-C", root, "-q")
    assert result.exit_code == 0, result.output
    [png] = (root / "site/images").glob("*.png")
    shown = genimg("info", png)
    assert shown.exit_code == 0 and "photo of a cat" in shown.output
    from PIL import Image

    with Image.open(png) as image:
        info = parse_infotext(image.info["parameters"])
    assert info["Seed"] == "3" and info["Size"] == "64x64"
