"""`genimg import` and `genimg info`: pictures of A1111, ComfyUI, InvokeAI, Fooocus and
NovelAI, written by ``tests/pictures.py`` in each tool's own format, read by one reader
and adopted into a blog that then builds without rendering anything."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from generator import readers
from generator.adopt import adopt
from generator.build import BuildOptions, build_site
from generator.comfyui import NotOnePass, graph_to_spec
from generator.errors import GenimgError
from generator.importer import ImportOptions, import_pictures
from tests import pictures as P
from tests.helpers import MakeBlog, genimg

REAL = Path(__file__).parent / "data/sd-parsers"  # sd-parsers' sample files (MIT)
CONFIG = "title: T\nbase_url: /\nmodels:\n  default: model.safetensors\n"
OLD_MAN = P.A1111_TEXT
WORKER = OLD_MAN.replace("color photo of an old man", "color photo of a worker").replace(
    "329790701", "2516937710")


def _bomb(path: Path) -> Path:
    """A 30000x30000 PNG header over a few bytes of data: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 4000)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """A folder laid out like A1111's outputs (index-seed-prompt names) plus other tools'
    pictures and three bad files."""
    src = tmp_path / "outputs"
    P.png(src / "00013-329790701-color-photo-of-an-old-man.png", {"parameters": OLD_MAN}, 1)
    P.png(src / "00014-2516937710-color-photo-of-a-worker.png", {"parameters": WORKER}, 2,
          after_data=True)
    P.exif_picture(src / "00015-11-a-jpeg.jpg", OLD_MAN.replace("329790701", "11"), "JPEG", 3)
    P.exif_picture(src / "00016-12-a-webp.webp", OLD_MAN.replace("329790701", "12"), "WEBP", 4,
                   little_endian=True)
    P.comfy_png(src / "comfy/ComfyUI_00001_.png", P.comfy_graph(), 5)
    P.comfy_png(src / "comfy/ComfyUI_00002_.png", P.comfy_graph(hires=True), 6)
    P.invokeai_png(src / "invoke.png", 7)
    P.fooocus_png(src / "fooocus.png", 8)
    P.png(src / "plain.png", {}, 9)
    whole = (src / "plain.png").read_bytes()
    (src / "truncated.png").write_bytes(whole[: len(whole) // 2])
    _bomb(src / "bomb.png")
    (src / "notes.png").write_text("not a picture")
    return src


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_reader_names_each_tool(outputs: Path) -> None:
    seen = {p.name: readers.read_picture(p) for p in outputs.rglob("*")
            if p.is_file() and p.name not in ("truncated.png", "notes.png")}
    assert seen["00013-329790701-color-photo-of-an-old-man.png"].infotext == OLD_MAN
    assert seen["00014-2516937710-color-photo-of-a-worker.png"].infotext == WORKER  # after IDAT
    assert seen["00015-11-a-jpeg.jpg"].format == "JPEG"
    assert seen["00016-12-a-webp.webp"].infotext == OLD_MAN.replace("329790701", "12")
    assert seen["00013-329790701-color-photo-of-an-old-man.png"].origin == "A1111 v1.6.0"
    assert seen["ComfyUI_00001_.png"].tool == "ComfyUI"
    assert seen["invoke.png"].origin == "InvokeAI 3.4.0"
    assert seen["fooocus.png"].origin == "Fooocus v2.1.865"
    assert seen["plain.png"].tool is None
    assert readers.read_picture(P.novelai_png(outputs / "nai.png")).tool == "NovelAI"
    for name, why in [("truncated.png", "truncated PNG"), ("notes.png", "not a picture")]:
        with pytest.raises(GenimgError, match=why):
            readers.read_picture(outputs / name)
    with pytest.raises(GenimgError, match="decompression bomb"):
        readers.load_pixels(outputs / "bomb.png")


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=20), st.booleans())
def test_user_comment_reads_either_byte_order(prompt: str, little: bool) -> None:
    text = prompt + "\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512"
    encoded = text.encode("utf-16-le" if little else "utf-16-be", errors="surrogatepass")
    assert readers.user_comment(b"UNICODE\0" + encoded) == text.encode(
        "utf-16", errors="surrogatepass").decode("utf-16", errors="replace")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_png_texts_never_crash(tail: bytes) -> None:
    path = Path("/tmp") / f"genimg-fuzz-{hashlib.sha256(tail).hexdigest()[:12]}.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + tail)
    try:
        readers.png_texts(path)
    except GenimgError as exc:
        assert "\n" not in str(exc)
    finally:
        path.unlink()


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list("3456789")), _JSON, max_size=7))
def test_graph_reading_fails_only_with_a_reason(graph: dict) -> None:
    try:
        graph_to_spec(graph)
    except NotOnePass as exc:
        assert str(exc)


@pytest.mark.parametrize(("graph", "why"), [
    (P.comfy_graph(hires=True), "2 sampler passes"),
    (P.comfy_graph(lora=True), "LoraLoader"),
])
def test_comfyui_graphs_that_are_not_one_pass_say_why(graph: dict, why: str) -> None:
    with pytest.raises(NotOnePass, match=why):
        graph_to_spec(graph)


def test_comfyui_default_graph_is_a_spec() -> None:
    assert graph_to_spec(P.comfy_graph()) == {
        "prompt": "beautiful scenery nature glass bottle landscape",
        "negative_prompt": "text, watermark", "seed": 156680208, "sampler": "Euler",
        "steps": 20, "cfg": 8, "width": 64, "height": 64,
        "model": "v1-5-pruned-emaonly.safetensors"}


def test_invokeai_metadata_of_a_txt2img_picture_is_a_spec(tmp_path: Path) -> None:
    spec = adopt(readers.read_picture(P.invokeai_png(tmp_path / "invoke.png"))).spec
    assert spec == {"prompt": "a castle", "negative_prompt": "", "seed": 123,
                    "sampler": "Euler", "steps": 30, "cfg": 7.5, "width": 64, "height": 64,
                    "model": "stable-diffusion-v1-5"}
    real = adopt(readers.read_picture(REAL / "invokeai_imeta1.png"))
    assert real.spec is None and "ipAdapters" in (real.why or "")


def test_a1111_parameters_genimg_cannot_redo_make_a_plain_picture(tmp_path: Path) -> None:
    hires = OLD_MAN.replace("Version:", "Denoising strength: 0.7, Hires upscale: 2, Version:")
    picture = readers.read_picture(P.png(tmp_path / "a.png", {"parameters": hires}))
    assert adopt(picture).spec["hires"] == {"scale": 2.0, "denoise": 0.7,  # a hires fix is read
                                            "upscaler": "Latent"}
    karras = OLD_MAN.replace("Version:", "Schedule type: Karras, Version:")
    dpm2 = readers.read_picture(P.png(tmp_path / "c.png", {"parameters": karras.replace(
        "Sampler: Euler a", "Sampler: DPM2")}))
    spec = adopt(dpm2).spec  # genimg's own k-diffusion loop draws it as A1111 did
    assert spec is not None and spec["sampling"] == "a1111" and spec["schedule_type"] == "Karras"
    for text, why in (
            (hires.replace("Version:", "Hires sampler: DDIM, Version:"), "Hires sampler"),
            (OLD_MAN.replace("Version:", "Refiner: xl [0123456789], Refiner switch at: 0.8, "
                             "Version:"), "refiner"),
            (karras.replace("Sampler: Euler a", "Sampler: UniPC").replace("Karras", "Uniform"),
             "Schedule type"),
            ("a [cat:dog:0.5]\n" + OLD_MAN.split("\n")[-1], "prompt editing")):
        picture = readers.read_picture(P.png(tmp_path / "b.png", {"parameters": text}))
        assert why in (adopt(picture).why or ""), text


def test_import_adopts_every_picture_and_a_build_renders_none(
        make_blog: MakeBlog, outputs: Path) -> None:
    root = make_blog({}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    before = _snapshot(outputs)
    result = genimg("import", "-C", root, outputs, "--title", "Old pictures")
    assert result.exit_code == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 3 and all(n in result.stderr for n in ("truncated", "bomb", "notes"))
    assert "imported 9 pictures" in result.stdout and "6 as specs, 3 as plain" in result.stdout
    assert result.stdout.count("plain picture:") == 3
    assert _snapshot(outputs) == before  # sources untouched
    post = next((root / "posts").glob("*-old-pictures.md")).read_text()
    assert post.index("00013-") < post.index("00014-") < post.index("00016-")

    report = build_site(root, BuildOptions())
    assert report.rendered == 0 and report.pictures == 9
    site_pngs = {hashlib.sha256(p.read_bytes()).hexdigest(): p
                 for p in (root / "site/images").glob("*.png") if "source-" not in p.name}
    for name in ("00013-329790701-color-photo-of-an-old-man.png", "comfy/ComfyUI_00001_.png",
                 "plain.png", "invoke.png", "fooocus.png"):  # PNGs: the very bytes
        assert hashlib.sha256((outputs / name).read_bytes()).hexdigest() in site_pngs
    jpeg = Image.open(outputs / "00015-11-a-jpeg.jpg").convert("RGB")
    assert any(Image.open(p).convert("RGB").tobytes() == jpeg.tobytes()
               for p in site_pngs.values())  # a JPEG: its lossless PNG

    assert genimg("build", "-C", root, "--frozen", "-q").exit_code == 0
    listing = genimg("cache", "ls", "-C", root).stdout
    assert listing.count("txt2img imported") == 6 and listing.count("picture imported") == 3
    side = next((root / ".genimg/objects").glob("*/*.json"))
    origin = json.loads(side.read_text())["imported"]
    assert origin["tool"] in ("A1111", "ComfyUI", "InvokeAI", "Fooocus", None)

    again = genimg("import", "-C", root, outputs, "--title", "Old pictures")
    assert again.exit_code == 0 and "all 9 pictures are in the blog already" in again.stdout
    assert len(list((root / "posts").glob("*.md"))) == 1

    # An edit asks for the model by name, with the hash A1111 gave it.
    edited = next((root / "posts").glob("*.md"))
    edited.write_text(edited.read_text().replace("seed: 329790701", "seed: 5", 1))
    failed = genimg("build", "-C", root, "-q")
    assert failed.exit_code == 1
    assert failed.stderr.count("\n") == 1 and "'v1-5-pruned-emaonly.safetensors'" in failed.stderr
    assert "A1111 hash 6ce0161689" in failed.stderr


def test_a_model_of_genimg_yaml_is_matched_by_hash_or_name(make_blog: MakeBlog,
                                                             tmp_path: Path) -> None:
    root = make_blog({}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    short = hashlib.sha256(b"not really a model").hexdigest()[:10]
    P.png(tmp_path / "in/00001-1-x.png",
          {"parameters": OLD_MAN.replace("6ce0161689", short)}, 1)
    P.comfy_png(tmp_path / "in/ComfyUI_00001_.png", P.comfy_graph("model.safetensors"), 2)
    result = genimg("import", "-C", root, tmp_path / "in", "--dry-run")
    assert result.exit_code == 0 and result.stdout.count("model: default") == 2
    assert list((root / "posts").iterdir()) == [] and not (root / ".genimg/objects").exists()


def test_import_adds_to_a_post_and_an_interrupted_one_leaves_it_as_it_was(
        make_blog: MakeBlog, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_blog({"2022-10-30-a.md": "---\ntitle: A\n---\n\nHello.\n"}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    post = root / "posts/2022-10-30-a.md"
    posts_before = _snapshot(root / "posts")
    from generator import cache as cache_module

    calls = []

    def put_then_stop(self: object, key: str, data: bytes, meta: dict) -> None:
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt
    monkeypatch.setattr(cache_module.Cache, "put", put_then_stop)
    with pytest.raises(KeyboardInterrupt):
        import_pictures(root, [outputs], ImportOptions(post=post, gallery_size=3))
    assert _snapshot(root / "posts") == posts_before  # no copy, no post change
    monkeypatch.undo()
    report = import_pictures(root, [outputs], ImportOptions(post=post, gallery_size=3))
    assert len(report.added) == 9 and post.read_text().startswith("---\ntitle: A\n---\n\nHello.")
    assert post.read_text().count("```gallery") == 3
    assert len(list((root / "posts/2022-10-30-a").iterdir())) == 3  # the plain pictures
    assert build_site(root, BuildOptions()).rendered == 0


def test_info_reads_every_tool_and_goes_on(outputs: Path) -> None:
    result = genimg("info", outputs / "00015-11-a-jpeg.jpg", outputs / "fooocus.png",
                    outputs / "comfy/ComfyUI_00001_.png", outputs / "truncated.png")
    assert result.exit_code == 1
    assert "seed: 11" in result.stdout and "seed: 156680208" in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "Fooocus" in lines[0] and "truncated" in lines[1]


def test_a_picture_spec_is_shown_as_it_is_even_in_a_preview(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-10-30-a.md": "```gallery\n- mode: picture\n  from: p.png\n```\n"},
                     config=CONFIG)
    P.png(root / "posts/p.png", {}, 3)
    assert build_site(root, BuildOptions(preview=True)).rendered == 1
    (png,) = (root / "site/images").glob("p-*.png")
    with Image.open(io.BytesIO(png.read_bytes())) as shown, Image.open(root / "posts/p.png") as src:
        assert shown.convert("RGB").tobytes() == src.convert("RGB").tobytes()
    assert build_site(root, BuildOptions()).rendered == 0  # not a placeholder: kept

REAL_TOOLS = {
    "automatic1111_cropped.png": "A1111", "automatic1111_cropped.jpg": "A1111",
    "text_after_idat.png": "A1111", "automatic1111_stealth.png": None,
    "img2img_cropped.png": "ComfyUI", "night_evening_day_morning_cropped.png": "ComfyUI",
    "noisy_latents_3_subjects_cropped.png": "ComfyUI", "unclip_2pass_cropped.png": "ComfyUI",
    "invokeai_dream1.png": "InvokeAI", "invokeai_imeta1.png": "InvokeAI",
    "invokeai_sdmeta1.png": "InvokeAI", "fooocus1_cropped.png": "Fooocus",
    "novelai1_cropped.png": "NovelAI", "empty_image.png": None,
}


def test_real_pictures_of_each_tool(make_blog: MakeBlog) -> None:
    """sd-parsers' sample files (MIT): the tool is named, and all of them come in."""
    for name, tool in REAL_TOOLS.items():
        assert readers.read_picture(REAL / name).tool == tool, name
    spec = adopt(readers.read_picture(REAL / "text_after_idat.png")).spec
    assert spec is not None and spec["prompt"] == "photo of a duck" and spec["seed"] == 235284042
    root = make_blog({}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    report = import_pictures(root, [REAL], ImportOptions(title="Real"))
    # The A1111 samples were cropped after rendering: plain pictures, saying so.
    assert len(report.added) == len(REAL_TOOLS) and not report.bad
    assert any("cropped after" in (c.why or "") for c in report.added)
    assert build_site(root, BuildOptions()).rendered == 0


def test_the_checkpoint_put_in_place_later_keeps_the_keys(make_blog: MakeBlog,
                                                          tmp_path: Path) -> None:
    root = make_blog({}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    weights = b"the checkpoint the pictures were made with"
    text = OLD_MAN.replace("6ce0161689", hashlib.sha256(weights).hexdigest()[:10]).replace(
        "v1-5-pruned-emaonly", "mine")
    P.png(tmp_path / "in/00001-1-x.png", {"parameters": text}, 1)
    assert genimg("import", "-C", root, tmp_path / "in").exit_code == 0
    assert "model: mine.safetensors" in next((root / "posts").glob("*.md")).read_text()
    (root / "mine.safetensors").write_bytes(weights)
    assert genimg("build", "-C", root, "--frozen", "-q").exit_code == 0  # same keys
    (root / "mine.safetensors").write_bytes(b"another checkpoint of that name")
    assert "not in the cache" in genimg("build", "-C", root, "--frozen", "-q").stderr


#: Text a value may hold (issue 19: no lone surrogates, no control characters; a picture
#: whose prompt has them is imported as a plain picture, like any spec genimg refuses).
VALUE_TEXT = st.characters(blacklist_categories=("Cs", "Cc"),
                           blacklist_characters="\ufffe\uffff")


@settings(max_examples=80, deadline=None)
@given(st.text(VALUE_TEXT, min_size=1, max_size=40).filter(str.strip),
       st.text(VALUE_TEXT, max_size=20),
       st.integers(0, 2**32 - 1), st.sampled_from(["Euler a", "DPM++ 2M Karras", "DDIM"]))
def test_an_imported_item_reads_back_as_the_same_spec(prompt: str, negative: str, seed: int,
                                                      sampler: str) -> None:
    """Whatever a prompt holds (fences, quotes, line breaks), the Markdown the importer
    writes parses back to the spec it keyed the picture by."""
    from generator.content import load_post
    from generator.errors import Location
    from generator.importer import Candidate, _markdown
    from generator.readers import Picture
    from generator.specs import parse_image

    item = {"prompt": prompt, "negative_prompt": negative, "seed": seed, "sampler": sampler,
            "steps": 20, "cfg": 7.5, "width": 512, "height": 512, "model": "default"}
    where = Location("posts/2022-01-01-a.md", 0)
    expected = parse_image(item, where)
    picture = Picture(Path("x\n```.png"), "PNG", {}, "A1111")
    text = "---\ntitle: A\ndate: 2022-01-01\n---\n\n" + _markdown(
        [Candidate(Path("x\n```.png"), picture, item, "k", "s", 512, 512)], 4)
    path = Path("/tmp") / f"genimg-roundtrip-{hashlib.sha256(text.encode()).hexdigest()[:12]}.md"
    path.write_text(text, encoding="utf-8")
    try:
        (spec,) = load_post(path, {}, where.file).images
    finally:
        path.unlink()
    assert spec.pixel_fields() == expected.pixel_fields() and spec.model == "default"


def test_two_pictures_with_the_same_parameters_are_both_kept(make_blog: MakeBlog,
                                                             tmp_path: Path) -> None:
    """Same parameters, other pixels (another machine, another version): the second
    cannot have the first's key, so it comes in as a plain picture; none is dropped."""
    root = make_blog({}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    P.png(tmp_path / "in/00001-329790701-a.png", {"parameters": OLD_MAN}, 1)
    P.png(tmp_path / "in/00002-329790701-a.png", {"parameters": OLD_MAN}, 2)
    first = import_pictures(root, [tmp_path / "in"], ImportOptions(title="Twins"))
    assert [c.why is None for c in first.added] == [True, False]
    assert "those of another picture" in (first.added[1].why or "")
    again = import_pictures(root, [tmp_path / "in"], ImportOptions(title="Twins"))
    assert not again.added and len(again.already) == 2
    assert build_site(root, BuildOptions()).rendered == 0


def test_info_reads_genimg_own_webp_originals(make_blog: MakeBlog) -> None:
    """`originals: webp` keeps the infotext in EXIF as A1111 does: the reader reads it."""
    root = make_blog({"2022-10-30-a.md": "```gallery\n- prompt: a red fox\n  seed: 77\n```\n"},
                     config="title: T\noriginals: webp\n")
    build_site(root, BuildOptions(preview=True))
    # the original: the shortest name (thumbnails add "-<width>")
    original = min((root / "site/images").glob("77-*.webp"), key=lambda p: len(p.name))
    picture = readers.read_picture(original)
    assert picture.format == "WEBP" and picture.tool == "A1111"
    spec = adopt(picture)
    assert spec.spec is None and "preview placeholder" in (spec.why or "")
    result = genimg("info", original)
    assert result.exit_code == 0 and "seed: 77" in result.stdout


def test_a_hires_fix_picture_comes_in_as_a_spec_of_its_size(make_blog: MakeBlog,
                                                            tmp_path: Path) -> None:
    """A hires fix is redone by genimg: its picture is the second pass's size, and an
    upscaler model (not in the file) makes it a plain picture, saying which."""
    root = make_blog({}, config=CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    hires = OLD_MAN.replace("Version:", "Denoising strength: 0.5, Hires upscale: 1.5, "
                            "Hires upscaler: Latent (bicubic), Version:")
    P.png(tmp_path / "in/00001-329790701-a.png", {"parameters": hires}, 1, size=(96, 96))
    P.png(tmp_path / "in/00002-329790701-b.png", {"parameters": hires}, 2, size=(64, 64))
    P.png(tmp_path / "in/00003-329790701-c.png", {"parameters": hires.replace(
        "Latent (bicubic)", "R-ESRGAN 4x+")}, 3, size=(96, 96))
    report = import_pictures(root, [tmp_path / "in"], ImportOptions(title="Hires"))
    first, small, esrgan = report.added
    assert first.why is None and first.item["hires"] == {
        "scale": 1.5, "denoise": 0.5, "upscaler": "Latent (bicubic)"}
    assert "it is 64x64, not the 96x96" in (small.why or "")
    assert "hires upscaler R-ESRGAN 4x+ is a model file" in (esrgan.why or "")
    assert build_site(root, BuildOptions()).rendered == 0


def test_info_on_other_tools_pictures_is_one_line_naming_the_tool() -> None:
    """sd-parsers' real files: A1111's read as a spec, every other tool's refused in one
    line that names it (``genimg info`` goes on to the next file)."""
    others = {name: tool for name, tool in REAL_TOOLS.items() if tool not in ("A1111", None)}
    result = genimg("info", REAL / "automatic1111_cropped.png", REAL / "automatic1111_cropped.jpg",
                    *(REAL / name for name in others))
    assert result.exit_code == 1
    assert result.stdout.count("prompt: photo of a duck") == 2 and "sampler: UniPC" in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == len(others)
    for line, (name, tool) in zip(lines, others.items(), strict=True):
        assert name in line and tool in line, line
