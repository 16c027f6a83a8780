"""SD 2.x single files: ε (512-base) or v (768-v), told by A1111's test run (issue 12).

The tiny SD 2.x models here are not merely random: ``tinymodels.fit_prediction`` fits
the UNet's output layer to predict ε or v on noised latents, so the test run has
something to find (on a random UNet it would find nothing). The two files share every
other weight and say nothing in their tensors or names about what they predict.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from generator.config import load_config
from generator.errors import GenimgError
from generator.models import ModelRef, ModelResolver
from tests.helpers import MakeBlog
from tests.test_diffusion import make_config, max_diff, render_all, task
from tests.tinymodels import TinyModel

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")
KINDS = ("epsilon", "v_prediction")


def misnamed(model: TinyModel, tmp_path: Path, kind: str) -> Path:
    """The single file under the name of the *other* kind of SD 2.x release."""
    name = "v2-1_768-ema-pruned" if kind == "epsilon" else "v2-1_512-ema-pruned"
    path = tmp_path / f"{name}.safetensors"
    shutil.copyfile(model.checkpoint, path)
    return path


# --- no torch needed --------------------------------------------------------------------


def test_prediction_type_override_is_checked_and_keyed(make_blog: MakeBlog):
    config = ("title: T\nmodels:\n  a: m.safetensors\n  b:\n    source: m.safetensors\n"
              "    prediction_type: epsilon\n  c:\n    source: m.safetensors\n"
              "    prediction_type: v_prediction\n")
    root = make_blog({}, config=config)
    (root / "m.safetensors").write_bytes(b"weights")
    resolver = ModelResolver(load_config(root))
    a, b, c = (resolver.model(name) for name in "abc")
    assert a.prediction_type is None and a.fingerprint == "sha256:" + a.file_sha256
    assert b.prediction_type == "epsilon" and c.prediction_type == "v_prediction"
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3  # pixels differ: keys too
    assert a.short_hash == b.short_hash == c.short_hash  # the same checkpoint for A1111

    bad = make_blog({}, config="title: T\nmodels:\n  a:\n    source: m.safetensors\n"
                    "    prediction_type: v\n", name="bad")
    with pytest.raises(GenimgError, match=r"genimg\.yaml:5: unknown .*'v'.*epsilon"):
        load_config(bad)
    folder = make_blog({}, config="title: T\nmodels:\n  a:\n    source: f\n"
                       "    prediction_type: epsilon\n", name="folder")
    (folder / "f").mkdir()
    with pytest.raises(GenimgError, match="'prediction_type' is for single files"):
        ModelResolver(load_config(folder)).model("a")


# --- the test run (torch) ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.render
def test_test_run_tells_fitted_unets_apart(sd2_predicting):
    import torch
    from diffusers import UNet2DConditionModel

    from generator.render import sd2detect

    shifts = {}
    for kind in KINDS:
        unet = UNet2DConditionModel.from_pretrained(sd2_predicting[kind].folder / "unet")
        shifts[kind] = sd2detect.output_shift(unet.to(torch.float16))  # cast back and forth
        assert next(unet.parameters()).dtype == torch.float16
        unet.float()
        assert sd2detect.prediction_type(unet, "") == kind
    # On either side of A1111's threshold, with room to spare.
    assert shifts["epsilon"] > sd2detect.THRESHOLD + 0.3
    assert shifts["v_prediction"] < sd2detect.THRESHOLD - 0.2


@pytest.mark.slow
@pytest.mark.render
def test_sd2_single_file_renders_as_what_it_predicts(sd2_predicting, tmp_path, monkeypatch):
    from generator.render import sd2detect
    from generator.render.diffusion import DiffusionRenderer

    runs: list[float] = []
    real = sd2detect.output_shift
    monkeypatch.setattr(sd2detect, "output_shift", lambda unet: runs.append(real(unet)) or
                        runs[-1])
    monkeypatch.setattr(sd2detect, "_decided", {})
    for kind in KINDS:
        model = sd2_predicting[kind]
        folder = ModelRef("folder", "folder", str(model.folder), "sha256:folder-" + kind)
        single = ModelRef("file", "file", str(misnamed(model, tmp_path, kind)),
                          "sha256:file-" + kind)
        schedulers = []
        for refs in ((folder, single), (single,)):  # a second renderer loads it again
            renderer = DiffusionRenderer(make_config(tmp_path))
            try:
                pictures = render_all(renderer, [task(ref, ref.name, seed=4, steps=3)
                                                 for ref in refs])
                schedulers.append(renderer._models[single.fingerprint].scheduler_config)
            finally:
                renderer.close()
            assert max_diff(pictures[0], pictures[-1]) <= 1  # the file renders as its folder
        assert [s.prediction_type for s in schedulers] == [kind, kind]
    assert len(runs) == 2  # once per file, never again for the same fingerprint


@pytest.mark.slow
@pytest.mark.render
def test_prediction_type_overrides_the_test_run(sd2_predicting, tmp_path, monkeypatch):
    from generator.render import sd2detect
    from generator.render.diffusion import DiffusionRenderer

    monkeypatch.setattr(sd2detect, "_decided", {})
    monkeypatch.setattr(sd2detect, "output_shift", lambda unet: pytest.fail("test-ran"))
    path = str(sd2_predicting["v_prediction"].checkpoint)
    ref = ModelRef("file", "file", path, "sha256:forced", prediction_type="epsilon")
    renderer = DiffusionRenderer(make_config(tmp_path))
    try:
        render_all(renderer, [task(ref, seed=1, steps=1)])
        assert renderer._models[ref.fingerprint].scheduler_config.prediction_type == "epsilon"
    finally:
        renderer.close()
