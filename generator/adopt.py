"""A picture's parameters as a genimg spec, or why they cannot be one.

``genimg info`` prints what this reads; ``genimg import`` adopts the picture under
the spec's key. A1111's infotext goes through ``infotext.infotext_to_spec`` (the one
mapping of its parameters), ComfyUI graphs through ``comfyui``, and InvokeAI's JSON
metadata of a txt2img picture maps key by key. A parameter none of them maps would
change the pixels in a way genimg cannot redo, so such a picture comes in as a plain
one, with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .comfyui import NotOnePass, graph_to_spec
from .infotext import PARAMETERS, REFINER, REFINER_SWITCH, read_spec
from .metadata import parse_infotext
from .passes import BUILT_IN
from .prompts import unsupported
from .readers import COMFYUI, INVOKEAI, Picture

#: A1111 parameters that say nothing about the pixels.
_INFORMATIVE = {"prompt", "Negative prompt", "Version", "Model", "Model hash"}
_KNOWN = _INFORMATIVE | {label for label, _ in PARAMETERS.values()} | {REFINER, REFINER_SWITCH}


#: InvokeAI's scheduler names -> the A1111 sampler names genimg knows.
INVOKEAI_SAMPLERS = {
    "euler": "Euler", "euler_a": "Euler a", "lms": "LMS", "lms_k": "LMS Karras",
    "heun": "Heun", "kdpm_2": "DPM2", "kdpm_2_a": "DPM2 a", "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_k": "DPM++ 2M Karras", "dpmpp_sde": "DPM++ SDE", "dpmpp_2m_sde": "DPM++ 2M SDE",
    "ddim": "DDIM", "pndm": "PNDM", "unipc": "UniPC",
}
#: InvokeAI metadata (3.x+) that a spec holds or that says nothing about the pixels; any
#: other key with a value (LoRAs, ControlNets, IP adapters, hires fix, a VAE…) does.
_INVOKEAI_READ = {"generation_mode", "positive_prompt", "negative_prompt", "width", "height",
                  "seed", "cfg_scale", "steps", "scheduler", "model", "rand_device",
                  "app_version", "positive_style_prompt", "negative_style_prompt"}


@dataclass(frozen=True)
class Adopted:
    """A spec (``model``: the tool's name for it), or ``why`` not."""

    spec: dict[str, Any] | None
    why: str | None = None
    model_hash: str | None = None  # A1111's short hash of the checkpoint


def adopt(picture: Picture) -> Adopted:
    """The spec ``picture`` was made from, as far as genimg can redo it."""
    if picture.tool == COMFYUI and picture.graph is not None:
        try:
            return Adopted(graph_to_spec(picture.graph))
        except NotOnePass as exc:
            return Adopted(None, f"a ComfyUI picture: {exc}")
    if picture.tool == INVOKEAI and "invokeai_metadata" in picture.texts:
        return _from_invokeai(picture.texts["invokeai_metadata"])
    if picture.infotext is None:
        if picture.tool is None:
            return Adopted(None, "it carries no generation parameters")
        return Adopted(None, f"made by {picture.tool}, whose parameters genimg does not read "
                       "(it reads A1111's infotext, ComfyUI graphs and InvokeAI's metadata)")
    return _from_infotext(picture.infotext)


def _from_infotext(text: str) -> Adopted:
    fields = parse_infotext(text)
    if "Preview" in fields:
        return Adopted(None, "a genimg preview placeholder")
    unknown = [label for label in fields if label not in _KNOWN]
    restorer = fields.get("Face restoration")
    if restorer and restorer != "GFPGAN":
        unknown.append(f"Face restoration: {restorer}")
    if unknown:
        return Adopted(None, f"its parameters {', '.join(unknown)} are not ones genimg "
                       "renders")
    if REFINER in fields:
        return Adopted(None, "made with a refiner: genimg import does not adopt those yet "
                       "(write its spec from `genimg info`)")
    if "Denoising strength" in fields and not ({"Hires upscale", "Hires resize"} & set(fields)):
        return Adopted(None, "an img2img picture: the picture it was made from is not in "
                       "the file")
    if "<lora:" in fields.get("prompt", "") or "<lyco:" in fields.get("prompt", ""):
        return Adopted(None, "its prompt uses a LoRA, which genimg does not load")
    for name in ("prompt", "Negative prompt"):  # read with A1111's syntax: what it refuses
        problem = unsupported(fields.get(name, ""))
        if problem:
            return Adopted(None, f"its {name.lower()} {problem}")
    spec, cannot = read_spec(text)
    upscaler = spec.get("hires", {}).get("upscaler", "Latent")
    if upscaler not in BUILT_IN:
        return Adopted(None, f"its hires upscaler {upscaler} is a model file; genimg import "
                       f"adopts {', '.join(BUILT_IN)}")
    if cannot:  # e.g. a Schedule type genimg does not draw for that sampler
        return Adopted(None, f"its parameters {', '.join(cannot)} are not ones genimg renders")
    return Adopted(spec, model_hash=fields.get("Model hash") or None)


def _from_invokeai(text: str) -> Adopted:
    """InvokeAI's ``invokeai_metadata`` of a txt2img picture as a spec."""
    try:
        meta = json.loads(text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        return Adopted(None, "its InvokeAI metadata is not JSON")
    used = sorted(str(k) for k, v in meta.items() if k not in _INVOKEAI_READ and v)
    if used:
        return Adopted(None, f"its InvokeAI parameters {', '.join(used)} are not ones genimg "
                       "renders")
    if meta.get("generation_mode") not in ("txt2img", "sdxl_txt2img"):
        return Adopted(None, f"an InvokeAI {meta.get('generation_mode')} picture: genimg "
                       "adopts txt2img ones")
    sampler = INVOKEAI_SAMPLERS.get(str(meta.get("scheduler")))
    if sampler is None:
        return Adopted(None, f"its InvokeAI scheduler {meta.get('scheduler')} is not one "
                       "genimg has")
    model = meta.get("model")
    spec = {"prompt": meta.get("positive_prompt"), "negative_prompt": meta.get(
        "negative_prompt") or "", "seed": meta.get("seed"), "sampler": sampler,
        "steps": meta.get("steps"), "cfg": meta.get("cfg_scale"), "width": meta.get("width"),
        "height": meta.get("height"),
        "model": model.get("model_name") or model.get("name") if isinstance(model, dict)
        else None}
    return Adopted({k: v for k, v in spec.items() if v is not None})
