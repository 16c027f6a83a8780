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
from .prompts import is_plain
from .samplers import ANCESTRAL, OWN, SAMPLERS, draws_itself, schedule_problem
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
    "schedule_type": ("Schedule type", lambda spec, model: spec.schedule_type),
    "cfg": ("CFG scale", lambda spec, model: f"{spec.cfg:g}"),
    "strength": ("Denoising strength", lambda spec, model: f"{spec.strength:g}"),
    # A1111 drops commas and colons from a model's name
    "model": ("Model", lambda spec, model: (model.shown_name if model else spec.model)
              .replace(",", "").replace(":", "")),
    "face_weight": ("Face weight", lambda spec, model: f"{spec.face_weight:g}"),
    "size": ("Size", lambda spec, model: f"{spec.width}x{spec.height}"),
    "model_hash": ("Model hash", lambda spec, model: model.short_hash if model else None),
    "model_revision": ("Model revision", lambda spec, model: model.revision
                       if model and model.kind == "hub" else None),
    "face_restoration": ("Face restoration", lambda spec, model: "GFPGAN"),
    # A1111 writes Clip skip only when it skips a layer.
    "clip_skip": ("Clip skip", lambda spec, model: spec.clip_skip if spec.clip_skip > 1 else None),
    "subseed": ("Variation seed",
                lambda spec, model: spec.subseed if spec.subseed_strength else None),
    "subseed_strength": ("Variation seed strength", lambda spec, model: (  # as Python's float
        str(float(spec.subseed_strength)) if spec.subseed_strength else None)),
    "eta_noise_seed_delta": ("ENSD", lambda spec, model: (
        spec.eta_noise_seed_delta or None) if spec.sampler in ANCESTRAL else None),
    "noise": ("RNG", lambda spec, model: "NV" if spec.noise == "nv" else None),
    # A1111's hires fix: its denoising strength where img2img's is, the rest at the end
    "hires_denoise": ("Denoising strength", lambda spec, model: (
        f"{spec.hires.denoise:g}" if spec.hires else None)),
    "hires_upscale": ("Hires upscale", lambda spec, model: (
        f"{spec.hires.scale:g}" if spec.hires and not spec.hires.resized else None)),
    "hires_resize": ("Hires resize", lambda spec, model: (
        f"{spec.hires.resize_x}x{spec.hires.resize_y}" if spec.hires and spec.hires.resized
        else None)),
    "hires_steps": ("Hires steps", lambda spec, model: (
        spec.hires.steps or None) if spec.hires else None),
    "hires_upscaler": ("Hires upscaler", lambda spec, model: (
        spec.hires.upscaler if spec.hires else None)),
    # genimg's own: which loop drew a sampler both diffusers and genimg have (A1111's is
    # k-diffusion's: an A1111 infotext, with its Version, is read as `a1111`)
    "sampling": ("Sampling", lambda spec, model: "a1111" if spec.sampling == "a1111" else None),
}
#: A1111 writes the refiner when it took over, after the LoRAs (``refiner_text``).
REFINER, REFINER_SWITCH = "Refiner", "Refiner switch at"


_LABELS = frozenset(label for label, _ in PARAMETERS.values())


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
                params.update(refiner_text(parent))
            elif node.file is not None:
                params["Source"] = node.file.name
        else:
            params.update(_parameters((name,), spec, model))
    params.update(lora_hashes(node))
    params.update(refiner_text(node))
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


def refiner_text(node: Node) -> dict[str, str]:
    """A1111's ``Refiner: name [hash], Refiner switch at: 0.8`` (its checkpoint's short
    title, and the fraction as Python writes a float)."""
    refiner = getattr(node, "refiner", None)
    if refiner is None or node.spec.refiner is None:
        return {}
    name = refiner.shown_name
    title = f"{name} [{refiner.short_hash}]" if refiner.short_hash else name
    return {REFINER: title, REFINER_SWITCH: str(float(node.spec.refiner_switch))}


def _parameters(names: tuple[str, ...], spec: ImageSpec, model: ModelRef | None
                ) -> dict[str, Any]:
    return {PARAMETERS[name][0]: PARAMETERS[name][1](spec, model) for name in names}


#: Fields genimg reads without a spec key of their own: informational, or read together
#: with another (``Size``, ``Schedule type``), or what genimg itself writes.
_ALSO_READ = frozenset({"prompt", "Negative prompt", "Size", "Model hash", "Version",
                        "Schedule type", "Face restoration", "Source", "Preview", REFINER,
                        REFINER_SWITCH})


def infotext_to_spec(text: str) -> dict[str, Any]:
    """Map an infotext back to a genimg spec (what `genimg info` prints)."""
    return read_spec(text)[0]


def read_spec(text: str) -> tuple[dict[str, Any], list[str]]:
    """An infotext as a genimg spec, and the names of the fields genimg cannot render."""
    fields = parse_infotext(text)
    spec: dict[str, Any] = {"prompt": fields.get("prompt", "")}
    if fields.get("Negative prompt"):
        spec["negative_prompt"] = fields["Negative prompt"]
    if not (is_plain(spec["prompt"]) and is_plain(spec.get("negative_prompt", ""))):
        spec["prompt_syntax"] = "a1111"  # what A1111 meant by its brackets
    for name, (label, _) in PARAMETERS.items():
        if name in SPEC and label in fields:
            spec[name] = _converted(fields[label], float if float in SPEC[name].types
                                    else SPEC[name].types[0])
    width, _, height = fields.get("Size", "").partition("x")
    if height:
        spec["width"], spec["height"] = _converted(width, int), _converted(height, int)
    dropped = set()
    if not _hires(fields, spec) and "Denoising strength" in fields:
        spec["mode"] = IMG2IMG
    if fields.get("Face restoration"):
        spec["restore_faces"] = True
    sampler = spec.get("sampler")
    second_pass = "hires" in spec or "Refiner" in fields  # drawn with diffusers' schedulers
    if "Version" in fields and sampler in SAMPLERS and draws_itself(str(sampler), "a1111") \
            and SAMPLERS[str(sampler)][0] != OWN and not second_pass:
        spec["sampling"] = "a1111"  # A1111 samples with k-diffusion
    if not _schedule(fields, spec):
        dropped.add("Schedule type")
    rng = fields.get("RNG", "GPU" if "Version" in fields else None)  # A1111's default: GPU
    if rng is not None:  # whose noise NV is, on any device
        spec["noise"] = {"NV": "nv", "GPU": "nv", "CPU": "cpu"}.get(rng, rng)
    _refiner(fields, spec)
    unsupported = [name for name in fields
                   if name in dropped or (name not in _ALSO_READ and name not in _LABELS)]
    return spec, unsupported


def _hires(fields: dict[str, str], spec: dict[str, Any]) -> bool:
    """A1111's hires fix fields as a ``hires:`` mapping (``Denoising strength`` is its
    second pass's); False if the picture has none."""
    if "Hires upscale" not in fields and "Hires resize" not in fields:
        return False
    hires: dict[str, Any] = {}
    if "Hires upscale" in fields:
        hires["scale"] = _converted(fields["Hires upscale"], float)
    wide, _, high = fields.get("Hires resize", "").partition("x")
    if high:
        hires["resize_x"], hires["resize_y"] = _converted(wide, int), _converted(high, int)
    if "Hires steps" in fields:
        hires["steps"] = _converted(fields["Hires steps"], int)
    if "strength" in spec:
        hires["denoise"] = spec.pop("strength")
    hires["upscaler"] = fields.get("Hires upscaler", "Latent")  # A1111's default
    spec["hires"] = hires
    return True


def _refiner(fields: dict[str, str], spec: dict[str, Any]) -> None:
    """``Refiner: name [hash]`` as ``refiner: name`` and its switch."""
    if REFINER not in fields:
        return
    name = fields[REFINER]
    if name.endswith("]") and " [" in name:
        name = name[:name.rindex(" [")]
    spec["refiner"] = name
    if REFINER_SWITCH in fields:
        spec["refiner_switch"] = _converted(fields[REFINER_SWITCH], float)


def _schedule(fields: dict[str, str], spec: dict[str, Any]) -> bool:
    """A1111 >= 1.9's ``Sampler: DPM++ 2M, Schedule type: Karras``: a ``schedule_type``
    where genimg draws A1111's sigmas, else the old combined name (``DPM++ 2M Karras``)
    if there is one. False if genimg cannot draw that schedule."""
    schedule = spec.get("schedule_type")
    sampler = str(spec.get("sampler"))
    if schedule is None or sampler not in SAMPLERS or not schedule_problem(
            sampler, schedule, spec.get("sampling", "diffusers")):
        return True
    del spec["schedule_type"]
    if f"{sampler} {schedule}" in SAMPLERS:
        spec["sampler"] = f"{sampler} {schedule}"
        return True
    return False


def _converted(text: str, convert: Any) -> Any:
    """A number if the text is one; else the text as written (other tools' infotexts)."""
    try:
        return convert(text)
    except ValueError:
        return text
