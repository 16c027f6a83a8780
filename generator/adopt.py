"""A picture's parameters as a genimg spec, or why they cannot be one.

``genimg info`` prints what this reads; ``genimg import`` adopts the picture under
the spec's key. A1111's infotext goes through ``infotext.infotext_to_spec`` (the one
mapping of its parameters); a parameter it does not map would change the pixels in a
way genimg cannot redo, so such a picture comes in as a plain one, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .comfyui import NotOnePass, graph_to_spec
from .infotext import PARAMETERS, infotext_to_spec
from .metadata import parse_infotext
from .readers import COMFYUI, Picture

#: A1111 parameters that say nothing about the pixels.
_INFORMATIVE = {"prompt", "Negative prompt", "Version", "Model", "Model hash"}
_KNOWN = _INFORMATIVE | {label for label, _ in PARAMETERS.values()}


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
    if picture.infotext is None:
        if picture.tool is None:
            return Adopted(None, "it carries no generation parameters")
        return Adopted(None, f"made by {picture.tool}, whose parameters genimg does not read "
                       "(it reads A1111's infotext and ComfyUI graphs)")
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
    if "Denoising strength" in fields:
        return Adopted(None, "an img2img picture: the picture it was made from is not in "
                       "the file")
    if "<lora:" in fields.get("prompt", "") or "<lyco:" in fields.get("prompt", ""):
        return Adopted(None, "its prompt uses a LoRA, which genimg does not load")
    spec = infotext_to_spec(text)
    return Adopted(spec, model_hash=fields.get("Model hash") or None)
