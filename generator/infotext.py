"""A picture's A1111 infotext, both ways: composed from the plan, read back as a spec.

Each mode names its parameters (``modes.Mode.infotext``); ``PARAMETERS`` says how each
is written, in A1111's words. ``genimg info`` reads them back with the same table, so
what genimg writes and what it reads can never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .metadata import format_infotext, parse_infotext
from .modes import IMG2IMG, MODES
from .schema import SPEC

if TYPE_CHECKING:
    from .models import ModelRef
    from .plan import Node, Plan
    from .specs import ImageSpec

PREVIEW_NOTE = ", Preview: genimg placeholder"

#: parameter -> (A1111's name, its text from the spec and the model). A parameter named
#: after a spec key is read back into that key by ``infotext_to_spec``.
PARAMETERS: dict[str, tuple[str, Callable[[ImageSpec, ModelRef | None], Any]]] = {
    # (in the order `genimg info` prints the keys it reads back)
    "seed": ("Seed", lambda spec, model: spec.seed),
    "steps": ("Steps", lambda spec, model: spec.steps),
    "sampler": ("Sampler", lambda spec, model: spec.sampler),
    "cfg": ("CFG scale", lambda spec, model: f"{spec.cfg:g}"),
    "strength": ("Denoising strength", lambda spec, model: f"{spec.strength:g}"),
    "model": ("Model", lambda spec, model: model.shown_name if model else spec.model),
    "face_weight": ("Face weight", lambda spec, model: f"{spec.face_weight:g}"),
    "size": ("Size", lambda spec, model: f"{spec.width}x{spec.height}"),
    "model_hash": ("Model hash", lambda spec, model: model.short_hash if model else None),
    "model_revision": ("Model revision", lambda spec, model: model.revision
                       if model and model.kind == "hub" else None),
    "face_restoration": ("Face restoration", lambda spec, model: "GFPGAN"),
}


def infotext_for(node: Node, plan: Plan, preview: bool = False) -> str:
    """The A1111 ``parameters`` text of a node; preview pictures say so, so no tool
    mistakes a placeholder for a rendering."""
    spec, model = node.spec, node.model
    prompt, negative = spec.prompt, spec.negative_prompt
    params: dict[str, Any] = {}
    for name in MODES[spec.mode].infotext:
        if name == "generation":  # a picture made from another: where it comes from
            parent = plan.nodes.get(node.parent) if node.parent else None
            if parent is not None and MODES[parent.spec.mode].generates:
                base = parent.spec
                prompt, negative = base.prompt, base.negative_prompt
                params.update(_parameters(MODES[base.mode].infotext, base, parent.model))
                params.update(lora_hashes(parent))
            elif node.file is not None:
                params["Source"] = node.file.name
        else:
            params.update(_parameters((name,), spec, model))
    params.update(lora_hashes(node))
    text = format_infotext(prompt, negative, params)
    return text + PREVIEW_NOTE if preview else text


def lora_hashes(node: Node) -> dict[str, str]:
    """A1111's ``Lora hashes: "name: hash, …"`` (12 hex digits of each file's SHA-256),
    and ``VAE hash`` (10) and ``VAE`` (its file name) for a VAE replacing the model's."""
    found = {}
    if node.vae is not None:
        found["VAE hash"] = node.vae.short_hash[:10]
        found["VAE"] = Path(node.vae.path).name
    if node.embeddings:
        found["TI hashes"] = ", ".join(f"{e.name}: {e.short_hash}" for e in node.embeddings)
    if node.loras:
        found["Lora hashes"] = ", ".join(f"{lora.name}: {lora.short_hash}"
                                         for lora, _ in node.loras)
    return found


def _parameters(names: tuple[str, ...], spec: ImageSpec, model: ModelRef | None
                ) -> dict[str, Any]:
    return {PARAMETERS[name][0]: PARAMETERS[name][1](spec, model) for name in names}


def infotext_to_spec(text: str) -> dict[str, Any]:
    """Map an infotext back to a genimg spec (what `genimg info` prints)."""
    fields = parse_infotext(text)
    spec: dict[str, Any] = {"prompt": fields.get("prompt", "")}
    if fields.get("Negative prompt"):
        spec["negative_prompt"] = fields["Negative prompt"]
    for name, (label, _) in PARAMETERS.items():
        if name in SPEC and label in fields:
            spec[name] = _converted(fields[label], float if float in SPEC[name].types
                                    else SPEC[name].types[0])
    width, _, height = fields.get("Size", "").partition("x")
    if height:
        spec["width"], spec["height"] = _converted(width, int), _converted(height, int)
    if "Denoising strength" in fields:
        spec["mode"] = IMG2IMG
    if fields.get("Face restoration"):
        spec["restore_faces"] = True
    return spec


def _converted(text: str, convert: Any) -> Any:
    """A number if the text is one; else the text as written (other tools' infotexts)."""
    try:
        return convert(text)
    except ValueError:
        return text
