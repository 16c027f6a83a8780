"""Infotext both ways: what genimg writes is byte for byte what A1111 writes for the same
settings, and what A1111 writes reads back into the spec (or a warning naming the field)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from generator.errors import Location
from generator.infotext import infotext_for, read_spec
from generator.metadata import format_infotext, parse_infotext
from generator.models import ModelRef
from generator.plan import Node, Plan
from generator.prompts import unsupported
from generator.specs import parse_image
from tests.helpers import plan_key

WHERE = Location("posts/p.md", 4)
MODEL = ModelRef("v1-5-pruned-emaonly", "file", "/m/v1-5-pruned-emaonly.safetensors",
                 "sha256:6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa")
BASE = {"prompt": "a photo of a girl, (red cheek:1.2)", "negative_prompt": "blurry, lowres",
        "seed": 329790701, "prompt_syntax": "a1111"}
HEAD = ("a photo of a girl, (red cheek:1.2)\nNegative prompt: blurry, lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 329790701, Size: 512x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly")

# Settings, and the parameters line A1111 (1.9, 1.10) writes for them after HEAD.
WRITTEN = [
    ({}, ""),
    ({"clip_skip": 2}, ", Clip skip: 2"),
    ({"subseed": 12345, "subseed_strength": 0.3}, ", Variation seed: 12345, "
     "Variation seed strength: 0.3"),
    ({"subseed": 7, "subseed_strength": 1}, ", Variation seed: 7, Variation seed strength: 1.0"),
    ({"eta_noise_seed_delta": 31337}, ", ENSD: 31337"),
    ({"eta_noise_seed_delta": 31337, "sampler": "Euler"}, None),  # ENSD unused: not written
    ({"noise": "nv"}, ", RNG: NV"),
    ({"schedule_type": "Automatic"}, None),
    ({"mode": "img2img", "from": "x.png", "strength": 0.6, "clip_skip": 2, "noise": "nv"},
     ", Denoising strength: 0.6, Clip skip: 2, RNG: NV"),
]


def infotext(**fields) -> str:
    spec = parse_image({**BASE, **fields}, WHERE)
    node = Node("k", spec, spec, model=MODEL)
    return infotext_for(node, Plan({"k": node}, {}, {}))


@pytest.mark.parametrize(("fields", "tail"), WRITTEN)
def test_written_as_a1111_writes_it(fields, tail):
    expected = HEAD + (tail or "")
    if fields.get("sampler"):
        expected = expected.replace("Euler a", fields["sampler"])
    if fields.get("schedule_type"):
        expected = expected.replace("Euler a", "Euler a, Schedule type: Automatic")
    assert infotext(**fields) == expected


def test_quoting_and_the_whole_text_as_a1111():
    text = format_infotext(" a cat\n", "", {"Steps": 2, "Model": 'x, "y"', "Lora hashes":
                                              "add_detail: 7c6bad76eb54", "Tiling": "Tiling",
                                              "Empty": None})
    assert text == ('a cat\n\nSteps: 2, Model: "x, \\"y\\"", '
                    'Lora hashes: "add_detail: 7c6bad76eb54", Tiling')
    assert parse_infotext(text) == {"prompt": "a cat\n", "Steps": "2", "Model": 'x, "y"',
                                    "Lora hashes": "add_detail: 7c6bad76eb54"}


# An infotext as A1111 1.9 writes a hires-fix picture with every field in its order.
A1111_HIRES = (
    "masterpiece, (red cheek:1.2), BREAK\nsecond line\n"
    "Negative prompt: blurry\n"
    "Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    "Variation seed: 42, Variation seed strength: 0.25, Denoising strength: 0.45, "
    "Clip skip: 2, ENSD: 31337, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, "
    'Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.9.4')


def test_an_a1111_infotext_reads_back_and_names_what_genimg_lacks():
    spec, unsupported_fields = read_spec(A1111_HIRES)
    assert spec == {
        "prompt": "masterpiece, (red cheek:1.2), BREAK\nsecond line",
        "negative_prompt": "blurry", "prompt_syntax": "a1111", "seed": 1234, "steps": 30,
        "sampler": "DPM++ 2M", "schedule_type": "Karras", "cfg": 6.5,
        "model": "v1-5-pruned-emaonly", "clip_skip": 2, "subseed": 42, "subseed_strength": 0.25,
        "eta_noise_seed_delta": 31337, "width": 512, "height": 768, "noise": "nv",
        "hires": {"scale": 2.0, "steps": 10, "denoise": 0.45, "upscaler": "Latent"}}
    # A1111 samples with k-diffusion, but genimg's second passes run diffusers' schedulers
    assert "sampling" not in spec
    assert read_spec(A1111_HIRES.replace("Hires upscale", "Hires-upscale"))[0][
        "sampling"] == "a1111"
    assert unsupported_fields == ["Lora hashes"]
    assert "mode" not in spec  # a hires fix is not an img2img
    parse_image(spec, WHERE)  # and genimg accepts what it printed


def test_schedule_types_and_rng():
    line = "Steps: 20, Sampler: {}, Schedule type: {}, CFG scale: 7, Seed: 1, RNG: CPU"

    def read(sampler: str, schedule: str) -> tuple[dict, list[str]]:
        return read_spec("x\n" + line.format(sampler, schedule))

    assert read("DPM++ 2M", "Automatic")[0]["schedule_type"] == "Automatic"
    assert read("Euler", "Karras")[0]["schedule_type"] == "Karras"
    assert read("DPM2", "Karras") == ({"prompt": "x", "steps": 20, "sampler": "DPM2",
                                       "cfg": 7.0, "seed": 1, "noise": "cpu"},
                                      ["Schedule type"])
    assert read("DPM++ 2M", "Uniform")[1] == ["Schedule type"]
    assert read("Heun", "Automatic")[1] == ["Schedule type"]


def test_a_genimg_infotext_has_nothing_unsupported():
    for fields, _ in WRITTEN:
        assert read_spec(infotext(**fields))[1] == []


# --- round trip: `genimg info` printed, pasted back, gives the same cache key ----------

lines = st.text(st.sampled_from("abc ,()[]:\\1.\n"), min_size=1, max_size=30)


@settings(deadline=None)
@given(prompt=lines, negative=st.sampled_from(["", "blurry", "ugly\n", " (bad:0.5) "]),
       extra=st.sampled_from(WRITTEN))
def test_pasted_back_it_keeps_its_key(prompt, negative, extra):
    assume(prompt.strip() and unsupported(prompt) is None and "Negative" not in prompt)
    raw = {**BASE, "prompt": prompt, "negative_prompt": negative, **extra[0]}
    spec = parse_image(raw, WHERE)
    node = Node("k", spec, spec, model=MODEL)
    back, _ = read_spec(infotext_for(node, Plan({"k": node}, {}, {})))
    pasted = parse_image({**back, "prompt_syntax": "a1111",
                          **({"from": "x.png"} if "from" in raw else {})}, WHERE)
    assert plan_key(pasted, "m", "s" if "from" in raw else None, None) == plan_key(
        spec, "m", "s" if "from" in raw else None, None)


@given(st.sampled_from(["a cat\n", "a cat", "a cat\nsecond line\n", "a, cat: 2\n"]))
def test_plain_prompts_keep_a_final_newline(prompt):
    """Without A1111's syntax the prompt is hashed as written: the final newline must
    survive the trip (it is an empty line before the parameters)."""
    spec = parse_image({"prompt": prompt, "seed": 1}, WHERE)
    node = Node("k", spec, spec, model=MODEL)
    back, _ = read_spec(infotext_for(node, Plan({"k": node}, {}, {})))
    assert back["prompt"] == prompt


def test_info_prints_the_spec_and_warns_about_fields_it_cannot_render(tmp_path):
    import yaml
    from PIL import Image

    from generator.metadata import png_bytes
    from tests.helpers import genimg

    png = tmp_path / "00013-1234-hires.png"
    png.write_bytes(png_bytes(Image.new("RGB", (8, 8)), A1111_HIRES))
    result = genimg("info", png)
    assert result.exit_code == 0
    [spec] = yaml.safe_load(result.stdout)
    assert spec["schedule_type"] == "Karras" and spec["clip_skip"] == 2
    assert spec["hires"] == {"scale": 2.0, "steps": 10, "denoise": 0.45, "upscaler": "Latent"}
    assert result.stderr == (f"warning: {png}: genimg does not render these fields: "
                             "Lora hashes\n")


@settings(deadline=None)
@given(st.text(st.sampled_from("ab ,.:1()[]|\\\n\"<>"), max_size=60) | st.text(max_size=80))
def test_any_text_reads_without_crashing(text):
    spec, cannot = read_spec(text)
    assert isinstance(spec["prompt"], str) and all(isinstance(name, str) for name in cannot)
    read_spec(text + "\nSteps: 2, Sampler: Euler, Schedule type: " + text[:5] + ", Seed: 1")
