"""A1111's hires fix and refiner (``passes``, ``render/passes.py``): keys, sizes, infotext
both ways, and real renders on tiny random-weight models (SD 1.x for the hires fix, SDXL
and a tiny SDXL refiner for the refiner, a tiny ESRGAN through spandrel)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.config import SiteConfig
from generator.errors import GenimgError, Location
from generator.hashing import canonical_key
from generator.infotext import infotext_for, read_spec
from generator.metadata import parse_infotext
from generator.models import FileRef, ModelRef
from generator.passes import Hires, img2img_schedule, target
from generator.plan import Node, Plan, key_fields
from generator.specs import parse_image
from tests.helpers import MakeBlog, genimg

WHERE = Location("posts/p.md", 3)
BASE = {"prompt": "a photo of a girl", "seed": 1, "steps": 3, "width": 64, "height": 64}
MODEL = ModelRef("m", "file", "/models/m.safetensors", "sha256:" + "a" * 64,
                 file_sha256="a" * 64)
REFINER = ModelRef("xl-refiner", "file", "/models/xl-refiner.safetensors",
                   "sha256:" + "b" * 64, file_sha256="b" * 64)


def spec_of(**fields):
    return parse_image({**BASE, **fields}, WHERE)


def key_of(spec, refiner=None, upscaler=None) -> str:
    return canonical_key(key_fields(spec, MODEL.fingerprint, None, None, refiner=refiner,
                                    upscaler=upscaler))


# --- spec, key, sizes: no torch -----------------------------------------------------------


def test_without_passes_the_key_is_as_before():
    plain = spec_of()
    assert spec_of(hires=None, refiner=None) == plain
    assert spec_of(refiner="xl-refiner", refiner_switch=1) == plain  # never takes over
    assert key_of(plain) == key_of(spec_of(refiner_switch=0.5))  # no refiner: no switch
    assert "hires" not in key_fields(plain, "m", None, None)


@pytest.mark.parametrize("change", [{"scale": 1.5}, {"steps": 4}, {"denoise": 0.4},
                                    {"upscaler": "Lanczos"}, {"upscaler": "Latent (bicubic)"},
                                    {"resize_x": 96}, {"resize_y": 96}])
def test_the_key_changes_with_each_hires_field(change):
    hires = spec_of(hires={})
    assert key_of(hires) != key_of(spec_of())
    assert key_of(spec_of(hires=change)) != key_of(hires)


def test_resize_replaces_the_scale_and_the_seed_ignores_the_passes():
    assert key_of(spec_of(hires={"resize_x": 96, "scale": 3})) == key_of(
        spec_of(hires={"resize_x": 96}))
    unseeded = {k: v for k, v in BASE.items() if k != "seed"}
    seed = parse_image(unseeded, WHERE).seed
    for extra in ({"hires": {}}, {"refiner": "xl-refiner"}):  # the first picture stays
        assert parse_image({**unseeded, **extra}, WHERE).seed == seed


def test_the_refiner_is_keyed_by_its_fingerprint_and_switch():
    spec = spec_of(refiner="xl-refiner")
    assert spec.refiner == "xl-refiner" and spec.refiner_switch == 0.8
    keyed = key_of(spec, refiner=REFINER)
    assert keyed != key_of(spec_of())
    assert key_of(spec_of(refiner="another-name"), refiner=REFINER) == keyed  # not the name
    assert key_of(spec_of(refiner="xl-refiner", refiner_switch=0.6), refiner=REFINER) != keyed
    upscaler = FileRef("x", "/x.pth", "sha256:" + "c" * 64)
    esrgan = spec_of(hires={"upscaler": "x"})
    assert key_of(esrgan, upscaler=upscaler) != key_of(esrgan)


@pytest.mark.parametrize(("raw", "line", "says"), [
    ({"hires": {"denoise": 2}}, 4, "'hires': 'denoise' must be in (0, 1], got 2"),
    ({"hires": {"scal": 2}}, 4, "unknown hires key 'scal' (did you mean 'scale'?)"),
    ({"hires": {"scale": 0.5}}, 4, "'scale' must be between 1 and 8"),
    ({"hires": {"upscaler": " "}}, 4, "'upscaler' must be one of Latent"),
    ({"hires": "2x"}, 4, "'hires' must be"),
    ({"hires": {"scale": 8}, "width": 1024}, 4, "'hires' makes a 8192x512 picture"),
    ({"hires": {}, "mode": "img2img", "from": "x.png"}, 4, "'hires' needs 'mode: txt2img'"),
    ({"refiner": "xl", "mode": "restore", "from": "x.png"}, 5, "'refiner' needs a mode"),
    ({"refiner_switch": 0}, 6, "'refiner_switch' must be in (0, 1]"),
])
def test_bad_values_are_one_line_at_their_key(raw, line, says):
    lines = {"hires": 4, "refiner": 5, "refiner_switch": 6, "width": 7, "mode": 8, "from": 9}
    with pytest.raises(GenimgError) as err:
        parse_image({**BASE, **raw}, WHERE, key_lines={k: lines[k] for k in raw})
    assert says in err.value.message and err.value.line == line
    assert "\n" not in str(err.value)


def test_hires_from_defaults_leaves_other_modes_alone():
    spec = parse_image({"mode": "img2img", "from": "x.png", "prompt": "p"}, WHERE,
                       defaults={"hires": {"scale": 2}, "refiner": "xl"})
    assert spec.hires is None and spec.refiner == "xl"


@pytest.mark.parametrize(("size", "hires", "upscaled", "final"), [
    ((512, 512), Hires(scale=2), (1024, 1024), (1024, 1024)),
    ((512, 768), Hires(scale=1.5), (768, 1152), (768, 1152)),
    ((512, 512), Hires(scale=1.3), (664, 664), (664, 664)),  # int(665.6) rounded down to 8
    ((512, 768), Hires(resize_x=1024, resize_y=1024), (1024, 1536), (1024, 1024)),
    ((768, 512), Hires(resize_x=1024, resize_y=1024), (1536, 1024), (1024, 1024)),
    ((512, 768), Hires(resize_x=1024), (1024, 1536), (1024, 1536)),
    ((512, 768), Hires(resize_y=1024), (680, 1024), (680, 1024)),  # 682 -> 680
])
def test_target_sizes_as_a1111_computes_them(size, hires, upscaled, final):
    goal = target(*size, hires)
    assert goal.upscaled == upscaled and goal.size == final


@given(w=st.integers(8, 256).map(lambda n: n * 8), h=st.integers(8, 256).map(lambda n: n * 8),
       scale=st.floats(1, 4), rx=st.integers(0, 2048), ry=st.integers(0, 2048))
def test_targets_are_whole_latent_cells_and_never_smaller_than_asked(w, h, scale, rx, ry):
    goal = target(w, h, Hires(scale=scale, resize_x=rx, resize_y=ry))
    assert all(side % 8 == 0 for side in (*goal.upscaled, *goal.size))
    assert goal.crop[0] >= 0 and goal.crop[1] >= 0
    if rx and ry:  # "Resize to": the middle of an upscale that covers it
        exact = 0 if w / h < rx / ry else 1
        assert goal.size[exact] == (rx, ry)[exact] // 8 * 8
        assert abs(goal.size[0] - rx) < 16 and abs(goal.size[1] - ry) < 16


@given(steps=st.integers(1, 150), denoise=st.floats(0.01, 1))
def test_the_second_pass_runs_exactly_its_steps(steps, denoise):
    """A1111 runs the hires steps out of ``int(steps / denoise)``: diffusers runs
    ``int(total × strength)`` of them."""
    total, strength = img2img_schedule(steps, denoise)
    assert total == int(steps / min(denoise, 0.999)) and 0 < strength <= 1
    assert min(int(total * strength), total) == steps


@settings(deadline=None)
@given(hires=st.fixed_dictionaries({}, optional={
    "scale": st.sampled_from([1, 1.5, 2, 2.25]), "steps": st.integers(0, 30),
    "denoise": st.sampled_from([0.3, 0.45, 0.7, 1]),
    "upscaler": st.sampled_from(["Latent", "Latent (nearest-exact)", "Lanczos", "4x-UltraSharp",
                                 "R-ESRGAN 4x+"]),
    "resize_x": st.sampled_from([0, 96, 200]), "resize_y": st.sampled_from([0, 96, 200])}))
def test_infotext_round_trip_keeps_the_key(hires):
    spec = spec_of(hires=hires)
    node = Node("k", spec, spec, model=MODEL)
    text = infotext_for(node, Plan({"k": node}, {}, {}))
    back, cannot = read_spec(text)
    assert cannot == []
    assert key_of(parse_image(back, WHERE)) == key_of(spec)


def test_infotext_fields_in_a1111_order():
    spec = spec_of(hires={"scale": 2, "steps": 10, "denoise": 0.45}, clip_skip=2)
    node = Node("k", spec, spec, model=MODEL)
    names = list(parse_infotext(infotext_for(node, Plan({"k": node}, {}, {}))))
    assert names[names.index("Denoising strength"):] == [
        "Denoising strength", "Clip skip", "Hires upscale", "Hires steps", "Hires upscaler"]
    resized = spec_of(hires={"resize_x": 96, "resize_y": 80})
    text = infotext_for(Node("k", resized, resized, model=MODEL), Plan({}, {}, {}))
    assert "Hires resize: 96x80" in text and "Hires upscale:" not in text
    assert "Hires steps" not in text  # 0: as many as the first pass, not written


def test_refiner_infotext_as_a1111_and_read_back():
    spec = spec_of(refiner="xl-refiner", refiner_switch=0.6)
    lora = (FileRef("detail", "/l.safetensors", "sha256:" + "d" * 64), 0.5)
    node = Node("k", spec, spec, model=MODEL, refiner=REFINER, loras=(lora,))
    text = infotext_for(node, Plan({"k": node}, {}, {}))
    assert text.endswith('Lora hashes: "detail: dddddddddddd", '
                         "Refiner: xl-refiner [bbbbbbbbbb], Refiner switch at: 0.6")
    back, cannot = read_spec(text)
    assert cannot == ["Lora hashes"]  # genimg reads LoRAs from the prompt's tags
    assert back["refiner"] == "xl-refiner" and back["refiner_switch"] == 0.6
    assert key_of(parse_image(back, WHERE), refiner=REFINER) == key_of(spec, refiner=REFINER)


# --- renders: tiny models -------------------------------------------------------------------

render = pytest.mark.render
pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")


@pytest.fixture(scope="module")
def sd(tiny_model, tmp_path_factory):
    """A renderer and the tiny SD 1.x model, shared by the module's hires renders."""
    from generator.render.diffusion import DiffusionRenderer

    root = tmp_path_factory.mktemp("passes")
    config = SiteConfig(root=root, cache_dir=root / ".genimg", models=MappingProxyType({}))
    renderer = DiffusionRenderer(config)
    yield renderer, ModelRef("default", "folder", str(tiny_model.folder), "fp-sd"), root
    renderer.close()


def rendered(renderer, tasks, steps: list[int] | None = None):
    done = {t.key: image for t, image in renderer.render(
        tasks, steps.append if steps is not None else (lambda n: None))}
    return [done[t.key] for t in tasks]


def task(ref, key="k", **fields):
    from generator.render.base import RenderTask

    extra = {}
    if isinstance(fields.get("refiner"), ModelRef):  # the spec names it, the task has it
        extra["refiner"] = fields["refiner"]
        fields["refiner"] = extra["refiner"].name
    if "upscaler" in fields:
        extra["upscaler"] = fields.pop("upscaler")
    return RenderTask(key, spec_of(**fields), ref, **extra)


@render
@pytest.mark.parametrize("noise", ["cpu", "nv"])
def test_hires_has_its_size_and_is_deterministic_and_batch_independent(sd, noise):
    renderer, ref, _ = sd
    hires = {"scale": 2, "steps": 2, "denoise": 0.6}
    steps: list[int] = []
    [alone] = rendered(renderer, [task(ref, "a", hires=hires, noise=noise)], steps)
    assert alone.size == (128, 128) and sum(steps) == 3 + 2
    if noise == "cpu":  # rendered again, the same bytes (nv: the batch below says it)
        [again] = rendered(renderer, [task(ref, "a", hires=hires, noise=noise)])
        assert again.tobytes() == alone.tobytes()
    batch = rendered(renderer, [task(ref, "b", hires=hires, noise=noise, seed=7),
                                task(ref, "a", hires=hires, noise=noise),
                                task(ref, "c", noise=noise)])
    assert max(abs(x - y) for x, y in zip(batch[1].tobytes(), alone.tobytes(),
                                           strict=True)) <= 2
    assert batch[2].size == (64, 64)


@render
def test_upscalers_differ_and_resize_crops(sd):
    renderer, ref, _ = sd
    pictures = {name: rendered(renderer, [task(ref, name, hires={"upscaler": name,
                                                                   "steps": 1})])[0]
                for name in ("Latent", "Latent (nearest)", "Lanczos", "Nearest")}
    assert len({p.tobytes() for p in pictures.values()}) == 4
    assert all(p.size == (128, 128) for p in pictures.values())
    [wide] = rendered(renderer, [task(ref, "w", hires={"resize_x": 128, "resize_y": 80,
                                                       "steps": 1})])
    assert wide.size == (128, 80)


@render
def test_an_esrgan_file_upscales_through_spandrel(sd):
    from tests.tinymodels import save_tiny_esrgan

    renderer, ref, root = sd
    file = save_tiny_esrgan(root / "ESRGAN" / "tiny-4x.pth")
    upscaler = FileRef("tiny-4x", str(file), "sha256:" + "e" * 64)
    hires = {"upscaler": "tiny-4x", "scale": 1.5, "steps": 1}
    [esrgan] = rendered(renderer, [task(ref, "e", hires=hires, upscaler=upscaler)])
    [lanczos] = rendered(renderer, [task(ref, "l", hires={**hires, "upscaler": "Lanczos"})])
    assert esrgan.size == (96, 96) and esrgan.tobytes() != lanczos.tobytes()
    broken = root / "ESRGAN" / "broken.safetensors"
    broken.write_bytes(b"not a model")
    bad = FileRef("broken", str(broken), "sha256:" + "f" * 64)
    with pytest.raises(GenimgError, match="cannot load hires upscaler 'broken'") as err:
        rendered(renderer, [task(ref, "x", hires={**hires, "upscaler": "broken"}, upscaler=bad)])
    assert err.value.file == "posts/p.md"


@pytest.fixture(scope="module")
def xl(arch_models, tiny_refiner, tmp_path_factory):
    """A renderer, the tiny SDXL base and the tiny refiner (single file)."""
    from generator.render.diffusion import DiffusionRenderer

    root = tmp_path_factory.mktemp("refiner")
    config = SiteConfig(root=root, cache_dir=root / ".genimg", models=MappingProxyType({}))
    renderer = DiffusionRenderer(config)
    base = ModelRef("xl", "folder", str(arch_models["sdxl"].folder), "fp-xl")
    refiner = ModelRef("refiner", "file", str(tiny_refiner.checkpoint), "fp-refiner")
    yield renderer, base, refiner
    renderer.close()


@render
def test_the_refiner_takes_over_and_switch_one_is_the_base_picture(xl, tiny_refiner):
    renderer, base, refiner = xl
    [plain] = rendered(renderer, [task(base, "p", steps=4)])
    [refined] = rendered(renderer, [task(base, "r", steps=4, refiner=refiner,
                                         refiner_switch=0.5)])
    assert refined.size == plain.size and refined.tobytes() != plain.tobytes()
    never = replace(spec_of(steps=4, refiner="refiner", refiner_switch=0.5), refiner_switch=1.0)
    from generator.render.base import RenderTask

    [same] = rendered(renderer, [RenderTask("n", never, base, refiner=refiner)])
    assert same.tobytes() == plain.tobytes()
    folder = replace(refiner, kind="folder", location=str(tiny_refiner.folder), fingerprint="f")
    [from_folder] = rendered(renderer, [task(base, "f", steps=4, refiner=folder,
                                             refiner_switch=0.5)])
    assert max(abs(x - y) for x, y in zip(from_folder.tobytes(), refined.tobytes(),
                                           strict=True)) <= 1


@render
def test_with_a_hires_fix_the_refiner_takes_over_in_the_hires_pass(xl):
    renderer, base, refiner = xl
    hires = {"scale": 1.5, "steps": 3, "denoise": 0.6}
    [upscaled] = rendered(renderer, [task(base, "h", steps=3, hires=hires)])
    steps: list[int] = []
    [refined] = rendered(renderer, [task(base, "r", steps=3, hires=hires, refiner=refiner,
                                         refiner_switch=0.5)], steps)
    assert refined.size == upscaled.size == (96, 96) and sum(steps) == 3 + 3
    assert refined.tobytes() != upscaled.tobytes()


@render
def test_refined_pictures_do_not_depend_on_their_batch(xl):
    renderer, base, refiner = xl
    fields = {"steps": 4, "refiner": refiner, "refiner_switch": 0.5, "noise": "nv",
              "prompt_syntax": "a1111", "sampler": "Euler a"}
    [alone] = rendered(renderer, [task(base, "a", **fields)])
    pair = rendered(renderer, [task(base, "b", **{**fields, "seed": 9}), task(base, "a", **fields)])
    assert max(abs(x - y) for x, y in zip(pair[1].tobytes(), alone.tobytes(),
                                           strict=True)) <= 2


@render
def test_a_model_switch_parks_the_refiner_too(arch_models, tiny_refiner, tmp_path,
                                             monkeypatch):
    """Only the active model on the accelerator: parked modules go to ``meta`` here (see
    tests/test_memory.py), so a refiner left behind would still hold bytes on the CPU."""
    from generator.render import memory
    from generator.render.diffusion import DiffusionRenderer

    monkeypatch.setattr(memory, "PARKING", "meta")
    config = SiteConfig(root=tmp_path, cache_dir=tmp_path / ".genimg",
                        models=MappingProxyType({}))
    renderer = DiffusionRenderer(config)
    base = ModelRef("xl", "folder", str(arch_models["sdxl"].folder), "fp-xl")
    other = replace(base, name="other", fingerprint="fp-other")
    refiner = ModelRef("refiner", "file", str(tiny_refiner.checkpoint), "fp-refiner")
    try:
        rendered(renderer, [task(base, "r", steps=2, refiner=refiner, refiner_switch=0.5)])
        held = list(memory.modules_of(renderer.passes.pipes()))
        assert held and memory.bytes_on(held, "cpu") > 0
        rendered(renderer, [task(other, "o", steps=2)])
        assert memory.bytes_on(held, "cpu") == 0 and memory.bytes_on(held, "meta") > 0
    finally:
        renderer.close()


@render
def test_a_refiner_needs_an_sdxl_model(sd, tiny_refiner):
    renderer, ref, _ = sd
    refiner = ModelRef("refiner", "file", str(tiny_refiner.checkpoint), "fp-refiner")
    with pytest.raises(GenimgError, match="'refiner' needs an SDXL model") as err:
        rendered(renderer, [task(ref, "x", refiner=refiner)])
    assert (err.value.file, err.value.line) == ("posts/p.md", 3)


# --- whole builds: genimg build, genimg info ------------------------------------------------

POST = """
    ---
    title: Passes
    date: 2024-05-01
    ---

    ```gallery
    - prompt: photo of a cat
      seed: 3
{extra}
    ```
"""


def _post(extra: str) -> dict[str, str]:
    return {"2024-05-01-passes.md": POST.replace("{extra}", extra)}


@render
@pytest.mark.slow
def test_a_hires_build_with_an_esrgan_file_reads_back(make_blog: MakeBlog, tiny_model):
    from tests.tinymodels import save_tiny_esrgan

    config = (f"title: H\nbase_url: /\nmodels_dir: models\nmodels:\n  default: "
              f"{tiny_model.folder}\ndefaults:\n  steps: 2\n  width: 64\n  height: 64\n")
    extra = ("      hires:\n        upscaler: tiny-4x\n        scale: 1.5\n"
             "        denoise: 0.5\n        steps: 1")
    root = make_blog(_post(extra), config=config)
    save_tiny_esrgan(root / "models/ESRGAN/tiny-4x.safetensors")
    result = genimg("build", "-C", root, "-q")
    assert result.exit_code == 0, result.output
    [png] = (root / "site/images").glob("*.png")
    shown = genimg("info", png)
    assert shown.exit_code == 0 and shown.stderr == ""
    [spec] = yaml.safe_load(shown.stdout)
    assert spec["hires"] == {"scale": 1.5, "steps": 1, "denoise": 0.5, "upscaler": "tiny-4x"}
    assert spec["width"] == 64  # the first pass's size, as A1111 writes it
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (96, 96)


def test_an_unknown_upscaler_file_is_one_line(make_blog: MakeBlog):
    config = "title: H\nbase_url: /\nmodels:\n  default: m.safetensors\n"
    root = make_blog(_post("      hires:\n        upscaler: 4x-nowhere"), config=config)
    result = genimg("check", "-C", root)
    assert result.exit_code == 1
    assert "2024-05-01-passes.md:9: hires upscaler '4x-nowhere' not found" in result.output


@render
@pytest.mark.slow
def test_a_refiner_build_reads_back(make_blog: MakeBlog, arch_models, tiny_refiner):
    config = (f"title: XL\nbase_url: /\nmodels:\n  xl: {arch_models['sdxl'].checkpoint}\n"
              f"  xl-refiner: {tiny_refiner.checkpoint}\n"
              "defaults:\n  model: xl\n  steps: 4\n  width: 64\n  height: 64\n")
    root = make_blog(_post("      refiner: xl-refiner\n      refiner_switch: 0.5"),
                     config=config)
    result = genimg("build", "-C", root, "-q")
    assert result.exit_code == 0, result.output
    [png] = (root / "site/images").glob("*.png")
    shown = genimg("info", png)
    [spec] = yaml.safe_load(shown.stdout)
    assert shown.stderr == "" and spec["refiner"] == "tiny-refiner"
    assert spec["refiner_switch"] == 0.5
    text = genimg("info", "--raw", png).stdout
    digest = _sha256(tiny_refiner.checkpoint)[:10]
    assert f"Refiner: tiny-refiner [{digest}], Refiner switch at: 0.5" in text


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_spec_shown_to_readers_has_only_the_passes_asked_for():
    """The spec a page offers to copy: an older picture's is as it was."""
    assert not {"hires", "refiner", "refiner_switch"} & set(spec_of().as_yaml_dict())
    shown = spec_of(hires={"scale": 1.5}, refiner_switch=0.5).as_yaml_dict()
    assert shown["hires"]["scale"] == 1.5 and "refiner_switch" not in shown
    back = parse_image(shown, WHERE)  # pasted back: the same picture
    assert key_of(back) == key_of(spec_of(hires={"scale": 1.5}))


def test_the_readme_has_the_hires_keys():
    from generator.schema import HIRES, markdown_table
    from tests.helpers import REPO

    assert markdown_table(HIRES) in (REPO / "README.md").read_text(encoding="utf-8")


def test_a_hires_preview_has_the_picture_s_size():
    from generator.render.base import RenderTask
    from generator.render.preview import preview_picture

    picture = preview_picture(RenderTask("k", spec_of(hires={"resize_x": 128, "resize_y": 96})))
    assert picture.size == (128, 96)


def test_parsed_post_state_keeps_the_passes(make_blog: MakeBlog):
    """``posts.json`` (state.py) stores specs as JSON: a hires fix comes back as it was."""
    import json

    from generator.content import load_post
    from generator.state import post_from_record, post_record

    root = make_blog(_post("      hires: {scale: 1.5, upscaler: Lanczos}"))
    path = root / "posts/2024-05-01-passes.md"
    post = load_post(path, {}, "posts/2024-05-01-passes.md")
    record = json.loads(json.dumps(post_record(post)))
    back = post_from_record(path, "posts/2024-05-01-passes.md", record)
    assert back.galleries[0].images == post.galleries[0].images
    assert back.galleries[0].images[0].hires == Hires(scale=1.5, upscaler="Lanczos")


def test_a_grid_compares_hires_fixes_with_readable_labels(make_blog: MakeBlog):
    from generator.content import load_post

    grid = """
        ---
        title: Grid
        ---

        ```gallery
        grid: {prompt: a cat, seed: 1}
        x:
          hires: [{scale: 1.5}, {scale: 2, upscaler: Lanczos}]
        ```
    """
    root = make_blog({"2024-05-01-grid.md": grid})
    post = load_post(root / "posts/2024-05-01-grid.md", {}, "posts/2024-05-01-grid.md")
    [gallery] = post.galleries
    assert gallery.grid is not None
    assert gallery.grid.x.labels == ("scale 1.5", "scale 2, upscaler Lanczos")
    assert [image.hires for image in gallery.images] == [
        Hires(scale=1.5), Hires(scale=2.0, upscaler="Lanczos")]
