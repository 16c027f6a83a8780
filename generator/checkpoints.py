"""What a single checkpoint file is, from its tensor names and shapes, without torch.

A ``.safetensors`` file starts with a JSON header listing every tensor's name and shape,
so genimg knows a file's architecture while it checks a site, before anything is
loaded, and never from the file's name. The names are those diffusers' single-file
loader looks for (``diffusers.loaders.single_file_utils.CHECKPOINT_KEY_NAMES``).
A ``.ckpt`` is a pickle: only the renderer (with torch) can list its tensors.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

from .errors import GenimgError

Shapes = Mapping[str, tuple[int, ...]]

SD1, SD2, SDXL, SDXL_REFINER = "sd1", "sd2", "sdxl", "sdxl_refiner"
NAMES = {SD1: "SD 1.x", SD2: "SD 2.x", SDXL: "SDXL", SDXL_REFINER: "SDXL refiner"}

_UNET = "model.diffusion_model."
_SD2_ATTN2_K = _UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
_SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
_SD2_TEXT = "cond_stage_model.model.token_embedding.weight"
_XL_TEXT_L = "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"
_XL_TEXT_G = "conditioner.embedders.1.model.positional_embedding"
_XL_REFINER = "conditioner.embedders.0.model.text_projection"
_MAX_HEADER = 100 << 20  # a real header is a few MB at most


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, read from the header alone (raises GenimgError)."""
    try:
        with path.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > _MAX_HEADER:
                raise ValueError("header too large")
            header = json.loads(fh.read(size))
        return {name: tuple(entry["shape"]) for name, entry in header.items()
                if name != "__metadata__"}
    except (OSError, ValueError, struct.error, TypeError, KeyError, AttributeError) as exc:
        raise GenimgError(f"{path}: not a readable .safetensors file ({exc})") from None


def detect(shapes: Shapes, where: str) -> str:
    """SD1, SD2, SDXL or SDXL_REFINER, from which text encoders and UNet tensors the file
    holds (a refiner has only SDXL's second text encoder, as the first embedder)."""
    has_unet = _UNET + "input_blocks.0.0.weight" in shapes
    if has_unet and _XL_TEXT_L in shapes and _XL_TEXT_G in shapes:
        return SDXL
    if has_unet and _SD2_TEXT in shapes:
        return SD2
    if has_unet and _SD1_TEXT in shapes:
        # SD 2.x with a CLIP-layout text encoder still cross-attends to 1024 features.
        return SD2 if shapes.get(_SD2_ATTN2_K, (0,))[-1] == 1024 else SD1
    if has_unet and _XL_REFINER in shapes:
        return SDXL_REFINER
    if _XL_REFINER in shapes:
        raise GenimgError(f"{where}: an SDXL refiner checkpoint without its UNet")
    raise GenimgError(f"{where}: not a Stable Diffusion checkpoint genimg recognises (SD 1.x, "
                      "SD 2.x or SDXL base, with its UNet and text encoders in one file)")


def prediction(shapes: Shapes, architecture: str) -> str:
    """What the UNet predicts, as far as the tensors say: ``v_pred`` (ComfyUI's mark) is v;
    SD 2.x is v until the renderer's test run says otherwise (``render/sd2detect.py``)."""
    if "v_pred" in shapes or architecture == SD2:
        return "v_prediction"
    return "epsilon"
