"""Load a single checkpoint file with no hub: genimg writes the diffusers config folder.

diffusers' ``from_single_file`` converts the original (CompVis/A1111/kohya) key layout
itself, but needs the diffusers configs of the architecture, which it would fetch from
the hub. genimg ships them (``configs/<architecture>.json``, the published configs of
SD 1.5, SD 2.1 and SDXL base) and replaces every size it can measure in the file's
tensors, so a fine-tune with other sizes loads too. What cannot be measured follows the
architecture's rule: SD 1.x has 8 attention heads, SD 2.x and SDXL heads of 64 channels,
CLIP heads of 64 channels.
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from ..checkpoints import (
    SD1,
    SD2,
    SDXL,
    SDXL_REFINER,
    Shapes,
    detect,
    prediction,
    safetensors_shapes,
)
from ..errors import GenimgError

CONFIGS = Path(__file__).parent / "configs"
_UNET, _VAE = "model.diffusion_model.", "first_stage_model."
_CLIP_MERGES = 49152 - 256 - 2  # what CLIP's own tokenizer reads of its BPE file
#: Where each architecture keeps its text encoders: (component, prefix, layout).
_TEXT = {
    SD1: [("text_encoder", "cond_stage_model.transformer.text_model.", "clip")],
    SD2: [("text_encoder", "cond_stage_model.model.", "open_clip")],
    SDXL: [("text_encoder", "conditioner.embedders.0.transformer.text_model.", "clip"),
           ("text_encoder_2", "conditioner.embedders.1.model.", "open_clip")],
    SDXL_REFINER: [("text_encoder_2", "conditioner.embedders.0.model.", "open_clip")],
}
#: SDXL's time conditioning: its size and crop (6 numbers); the refiner's adds an
#: aesthetic score for the size (5).
_TIME_IDS = {SDXL: 6, SDXL_REFINER: 5}


def template(architecture: str) -> dict[str, Any]:
    return json.loads((CONFIGS / f"{architecture}.json").read_text(encoding="utf-8"))


def checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes: the safetensors header, or a .ckpt loaded safely."""
    if path.suffix == ".safetensors":
        return safetensors_shapes(path)
    import torch

    try:  # mmap: a 4 GB .ckpt is not read to list its tensors
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # saved before torch's zip format: mmap cannot read it
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def load(path: Path, options: dict[str, Any], refiner: bool = False, fingerprint: str = "",
         prediction_type: str | None = None) -> Any:
    """The txt2img pipeline of a single file, its architecture detected, no hub needed (a
    refiner's: its img2img pipeline, and only where a spec names it as ``refiner:``).

    ``prediction_type`` (genimg.yaml's) overrides what the file's tensors say; without
    it an SD 2.x file with no ``v_pred`` tensor is test-run once (``sd2detect``)."""
    import diffusers

    shapes = checkpoint_shapes(path)
    architecture = detect(shapes, str(path))
    if architecture == SDXL_REFINER and not refiner:
        raise GenimgError(f"{path}: an SDXL refiner checkpoint: it renders only as a spec's "
                          "'refiner:', after an SDXL model")
    pipeline = getattr(diffusers, template(architecture)["pipeline"])
    if architecture in _TIME_IDS:  # it has no safety checker to turn off
        options = {k: v for k, v in options.items() if "safety_checker" not in k}
    if "config" in options or "original_config" in options:  # the user's override
        return pipeline.from_single_file(str(path), **options)
    with tempfile.TemporaryDirectory(prefix="genimg-config-") as folder:
        write_config_folder(architecture, shapes, Path(folder), prediction_type)
        pipe = pipeline.from_single_file(str(path), config=folder, **options)
    if architecture == SD2 and prediction_type is None and "v_pred" not in shapes:
        from . import sd2detect

        sd2detect.settle(pipe, fingerprint)
    return pipe


def write_config_folder(architecture: str, shapes: Shapes, folder: Path,
                        prediction_type: str | None = None) -> None:
    """A diffusers model folder without weights: model_index.json and each part's config."""
    base = template(architecture)
    predicts = prediction_type or prediction(shapes, architecture)
    parts: dict[str, dict[str, Any]] = {
        "unet": unet_config(base["unet"], shapes, architecture),
        "vae": vae_config(base["vae"], shapes),
        "scheduler": dict(base["scheduler"], prediction_type=predicts),
    }
    for name, prefix, layout in _TEXT[architecture]:
        measure = clip_config if layout == "clip" else open_clip_config
        parts[name] = measure(base[name], shapes, prefix, architecture)
    if architecture in _TIME_IDS:
        pooled = parts["text_encoder_2"]["projection_dim"]
        added = shapes[_UNET + "label_emb.0.0.weight"][1]
        parts["unet"].update(projection_class_embeddings_input_dim=added,
                             addition_time_embed_dim=(added - pooled) // _TIME_IDS[architecture])
    index: dict[str, Any] = {"_class_name": base["pipeline"], **base.get("pipeline_config", {})}
    for name, config in parts.items():
        library = "transformers" if name.startswith("text_encoder") else "diffusers"
        klass = config.get("architectures", [config.get("_class_name")])[0]
        index[name] = [library, klass]
        _write_json(folder / name / ("scheduler_config.json" if name == "scheduler"
                                     else "config.json"), config)
    for name in ("tokenizer", "tokenizer_2"):
        if name in base:
            write_tokenizer(folder / name, base[name])
            index[name] = ["transformers", "CLIPTokenizer"]
    index.update(safety_checker=[None, None], feature_extractor=[None, None])
    if architecture in _TIME_IDS:
        index.pop("safety_checker")
        index.pop("feature_extractor")
    if architecture == SDXL_REFINER:  # only SDXL's second text encoder
        index.update(text_encoder=[None, None], tokenizer=[None, None])
    _write_json(folder / "model_index.json", index)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _count(shapes: Shapes, pattern: str) -> int:
    """How many distinct indices fill the ``(\\d+)`` of ``pattern`` (a regex)."""
    found = re.compile(pattern)
    return len({m.group(1) for key in shapes if (m := found.match(key))})


def unet_config(base: dict[str, Any], shapes: Shapes, architecture: str) -> dict[str, Any]:
    """The UNet's sizes, measured: channels, levels, layers, attention, context size."""
    block = _UNET + "input_blocks.{}."
    levels = _count(shapes, re.escape(_UNET) + r"input_blocks\.(\d+)\.0\.op\.weight") + 1
    inputs = _count(shapes, re.escape(_UNET) + r"input_blocks\.(\d+)\.")
    layers = (inputs - levels) // levels
    firsts = [1 + level * (layers + 1) for level in range(levels)]
    channels = [shapes[block.format(i) + "0.in_layers.2.weight"][0] for i in firsts]
    attention = [block.format(i) + "1.proj_in.weight" in shapes for i in firsts]
    config = dict(base, in_channels=shapes[block.format(0) + "0.weight"][1],
                  out_channels=shapes[_UNET + "out.2.weight"][0], layers_per_block=layers,
                  block_out_channels=channels,
                  down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D"
                                    for a in attention],
                  up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D"
                                  for a in reversed(attention)])
    first = next(i for i, a in zip(firsts, attention, strict=True) if a)
    config["cross_attention_dim"] = shapes[
        block.format(first) + "1.transformer_blocks.0.attn2.to_k.weight"][1]
    config["use_linear_projection"] = len(shapes[block.format(first) + "1.proj_in.weight"]) == 2
    if architecture != SD1:
        config["attention_head_dim"] = [c // 64 for c in channels]  # heads of 64 channels
    if "transformer_layers_per_block" in base:
        # A level without attention takes the middle block's count: diffusers builds the
        # middle block with the last level's (the refiner's last level has no attention).
        middle = _count(shapes, re.escape(_UNET) + r"middle_block\.1\.transformer_blocks\.(\d+)\.")
        config["transformer_layers_per_block"] = [
            max(1, _count(shapes, re.escape(block.format(i)) + r"1\.transformer_blocks\.(\d+)\.")
                if a else max(1, middle)) for i, a in zip(firsts, attention, strict=True)]
    return config


def vae_config(base: dict[str, Any], shapes: Shapes) -> dict[str, Any]:
    down = re.escape(_VAE) + r"encoder\.down\.(\d+)\."
    levels = _count(shapes, down)
    return dict(
        base, in_channels=shapes[_VAE + "encoder.conv_in.weight"][1],
        out_channels=shapes[_VAE + "decoder.conv_out.weight"][0],
        latent_channels=shapes[_VAE + "quant_conv.weight"][0] // 2,
        block_out_channels=[shapes[_VAE + f"encoder.down.{i}.block.0.conv1.weight"][0]
                            for i in range(levels)],
        layers_per_block=_count(shapes, re.escape(_VAE) + r"encoder\.down\.0\.block\.(\d+)\."),
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
    )


def clip_config(base: dict[str, Any], shapes: Shapes, prefix: str, _arch: str) -> dict[str, Any]:
    vocab, hidden = shapes[prefix + "embeddings.token_embedding.weight"]
    return dict(base, vocab_size=vocab, hidden_size=hidden, num_attention_heads=hidden // 64,
                max_position_embeddings=shapes[prefix + "embeddings.position_embedding.weight"][0],
                intermediate_size=shapes[prefix + "encoder.layers.0.mlp.fc1.weight"][0],
                num_hidden_layers=_count(shapes, re.escape(prefix) + r"encoder\.layers\.(\d+)\."))


def open_clip_config(base: dict[str, Any], shapes: Shapes, prefix: str,
                     architecture: str) -> dict[str, Any]:
    vocab, hidden = shapes[prefix + "token_embedding.weight"]
    layers = _count(shapes, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    config = dict(base, vocab_size=vocab, hidden_size=hidden, num_attention_heads=hidden // 64,
                  max_position_embeddings=shapes[prefix + "positional_embedding"][0],
                  intermediate_size=shapes[prefix + "transformer.resblocks.0.mlp.c_fc.weight"][0],
                  # SD 2.x reads the penultimate layer: diffusers' encoder stops before the last.
                  num_hidden_layers=layers - 1 if architecture == SD2 else layers)
    if prefix + "text_projection" in shapes:
        config["projection_dim"] = shapes[prefix + "text_projection"][1]
    return config


@cache
def _clip_bpe() -> tuple[str, str]:
    """CLIP's vocab.json and merges.txt, made from its BPE file as CLIP itself does."""
    lines = gzip.decompress((CONFIGS / "bpe_simple_vocab_16e6.txt.gz").read_bytes()).decode()
    merges = lines.split("\n")[1:_CLIP_MERGES + 1]
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]
    vocab = [*chars, *(c + "</w>" for c in chars), *("".join(m.split()) for m in merges),
             "<|startoftext|>", "<|endoftext|>"]
    return (json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False),
            "#version: 0.2\n" + "\n".join(merges) + "\n")


def write_tokenizer(folder: Path, config: dict[str, Any]) -> None:
    """A CLIP tokenizer folder (SD 2.x and SDXL's OpenCLIP one pads with ``!``)."""
    vocab, merges = _clip_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(vocab, encoding="utf-8")
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    _write_json(folder / "tokenizer_config.json", config)
