"""A ComfyUI ``prompt`` graph read as one genimg spec, when it is one sampler pass.

ComfyUI saves the graph it ran (its API form: node id -> ``class_type`` and
``inputs``, a link being ``[node id, output]``) in the ``prompt`` chunk. The graph a
genimg spec can stand for is the default one: checkpoint loader -> CLIP text encode
x2 -> KSampler on an empty latent -> VAE decode -> save. Anything else (LoRAs,
ControlNet, a second sampler pass, an upscaler) is named as the reason the picture
comes in as a plain one.
"""

from __future__ import annotations

from typing import Any

#: ComfyUI (sampler_name, scheduler) -> the A1111 sampler name genimg knows it by.
SAMPLERS: dict[tuple[str, str], str] = {
    ("euler_ancestral", "normal"): "Euler a",
    ("euler", "normal"): "Euler",
    ("lms", "normal"): "LMS",
    ("lms", "karras"): "LMS Karras",
    ("heun", "normal"): "Heun",
    ("dpm_2", "normal"): "DPM2",
    ("dpm_2_ancestral", "normal"): "DPM2 a",
    ("dpmpp_2m", "normal"): "DPM++ 2M",
    ("dpmpp_2m", "karras"): "DPM++ 2M Karras",
    ("dpmpp_sde", "normal"): "DPM++ SDE",
    ("dpmpp_2m_sde", "normal"): "DPM++ 2M SDE",
    ("ddim", "ddim_uniform"): "DDIM",
    ("ddim", "normal"): "DDIM",
    ("uni_pc", "normal"): "UniPC",
}
_SAMPLER_NODES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
#: Nodes a one-pass graph may hold (besides its one KSampler).
_PLAIN_NODES = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "VAEDecode",
                "SaveImage", "PreviewImage"}


class NotOnePass(ValueError):
    """The graph is not one sampler pass genimg can redo; the message says why."""


def graph_to_spec(graph: dict[str, Any]) -> dict[str, Any]:
    """The spec of a one-pass graph (``model`` is the checkpoint file name), else NotOnePass."""
    if not all(isinstance(node, dict) for node in graph.values()):
        raise NotOnePass("its graph is not one ComfyUI saves")
    samplers = [node for node in graph.values() if node.get("class_type") in _SAMPLER_NODES]
    if len(samplers) != 1:
        raise NotOnePass(f"its graph has {len(samplers)} sampler passes (hires fix or "
                         "refiner): genimg renders one" if samplers
                         else "its graph has no sampler")
    others = sorted({str(node.get("class_type")) for node in graph.values()
                     if node.get("class_type") not in (*_PLAIN_NODES, "KSampler")})
    if samplers[0].get("class_type") != "KSampler":
        others.insert(0, str(samplers[0].get("class_type")))
    if others:
        raise NotOnePass(f"its graph uses {', '.join(others)}, which genimg does not render")
    inputs = samplers[0].get("inputs")
    if not isinstance(inputs, dict):
        raise NotOnePass("its sampler has no inputs")
    loader = _linked(graph, inputs.get("model"), "CheckpointLoaderSimple")
    latent = _linked(graph, inputs.get("latent_image"), "EmptyLatentImage")
    name = (str(inputs.get("sampler_name")), str(inputs.get("scheduler")))
    if name not in SAMPLERS:
        raise NotOnePass(f"its sampler {name[0]} with the {name[1]} schedule is not one genimg "
                         "has")
    if inputs.get("denoise", 1) != 1 or latent["inputs"].get("batch_size", 1) != 1:
        raise NotOnePass("its sampler starts from a partly noised latent or makes a batch")
    spec: dict[str, Any] = {
        "prompt": _text(graph, inputs.get("positive")),
        "negative_prompt": _text(graph, inputs.get("negative")),
        "seed": inputs.get("seed"), "sampler": SAMPLERS[name], "steps": inputs.get("steps"),
        "cfg": inputs.get("cfg"), "width": latent["inputs"].get("width"),
        "height": latent["inputs"].get("height"),
        "model": loader["inputs"].get("ckpt_name"),
    }
    if not spec["negative_prompt"]:
        del spec["negative_prompt"]
    return spec


def _linked(graph: dict[str, Any], link: Any, kind: str) -> dict[str, Any]:
    """The node a ``[node id, output]`` link points at, which must be a ``kind``."""
    node = graph.get(str(link[0])) if isinstance(link, list) and link else None
    if not isinstance(node, dict) or node.get("class_type") != kind:
        raise NotOnePass(f"its sampler does not read a {kind} where genimg expects one")
    if not isinstance(node.get("inputs"), dict):
        raise NotOnePass(f"its {kind} has no inputs")
    return node


def _text(graph: dict[str, Any], link: Any) -> str:
    text = _linked(graph, link, "CLIPTextEncode")["inputs"].get("text")
    if not isinstance(text, str):
        raise NotOnePass("a prompt of its graph comes from another node")
    return text
