"""Pictures written the way each tool writes them, for the reader and import tests.

A1111: ``parameters`` text chunk (``PngInfo.add_text``, as ``modules/images.py``);
JPEG/WebP: EXIF UserComment, ``UNICODE`` + UTF-16 big-endian (``piexif.helper.
UserComment.dump(…, encoding="unicode")``). ComfyUI: ``prompt`` and ``workflow``
JSON text chunks (``nodes.SaveImage``). InvokeAI: ``invokeai_metadata`` JSON. Fooocus:
``parameters`` JSON plus ``fooocus_scheme``. NovelAI: ``Software``, ``Comment``.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

A1111_TEXT = (
    "color photo of an old man\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 329790701, Size: 64x64, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0")


def pixels(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A deterministic picture that differs by ``seed``."""
    data = hashlib.shake_256(str(seed).encode()).digest(size[0] * size[1] * 3)
    return Image.frombytes("RGB", size, data)


def png(path: Path, texts: dict[str, str], seed: int = 0, size: tuple[int, int] = (64, 64),
        after_data: bool = False) -> Path:
    """A PNG with ``texts`` as text chunks (after the image data if ``after_data``)."""
    info = PngImagePlugin.PngInfo()
    if not after_data:
        for key, value in texts.items():
            info.add_text(key, value)
    buffer = io.BytesIO()
    pixels(seed, size).save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    if after_data:
        chunks = b"".join(_chunk(b"iTXt", k.encode() + b"\0\0\0\0\0" + v.encode())
                          for k, v in texts.items())
        data = data[:-12] + chunks + data[-12:]  # before IEND
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def exif_picture(path: Path, text: str, fmt: str = "JPEG", seed: int = 0,
                 little_endian: bool = False) -> Path:
    """A JPEG or WebP with ``text`` in its EXIF UserComment, as A1111 saves one."""
    exif = Image.Exif()
    encoded = text.encode("utf-16-le" if little_endian else "utf-16-be")
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + encoded
    options: dict[str, Any] = {"quality": 95} if fmt == "JPEG" else {"lossless": True}
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels(seed).save(path, format=fmt, exif=exif.tobytes(), **options)
    return path


def comfy_graph(ckpt: str = "v1-5-pruned-emaonly.safetensors", seed: int = 156680208,
                hires: bool = False, lora: bool = False) -> dict[str, Any]:
    """ComfyUI's default graph in its API form (what it saves as ``prompt``)."""
    graph: dict[str, Any] = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64,
                                                           "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {
            "text": "beautiful scenery nature glass bottle landscape", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark",
                                                         "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI",
                                                    "images": ["8", 0]}},
    }
    if hires:
        graph["10"] = {"class_type": "LatentUpscale", "inputs": {
            "samples": ["3", 0], "upscale_method": "nearest-exact", "width": 128,
            "height": 128, "crop": "disabled"}}
        graph["11"] = {"class_type": "KSampler", "inputs": {
            **graph["3"]["inputs"], "denoise": 0.5, "latent_image": ["10", 0]}}
        graph["8"]["inputs"]["samples"] = ["11", 0]
    if lora:
        graph["12"] = {"class_type": "LoraLoader", "inputs": {
            "lora_name": "x.safetensors", "strength_model": 1, "strength_clip": 1,
            "model": ["4", 0], "clip": ["4", 1]}}
        graph["3"]["inputs"]["model"] = ["12", 0]
    return graph


def comfy_png(path: Path, graph: dict[str, Any], seed: int = 0,
              size: tuple[int, int] = (64, 64)) -> Path:
    workflow = {"last_node_id": 9, "nodes": [{"id": int(k), "type": v["class_type"]}
                                             for k, v in graph.items()]}
    return png(path, {"prompt": json.dumps(graph), "workflow": json.dumps(workflow)}, seed,
               size)


def invokeai_png(path: Path, seed: int = 0, made_with: int = 123) -> Path:
    """InvokeAI 3's metadata of a txt2img picture made with seed ``made_with``."""
    meta = {"app_version": "3.4.0", "generation_mode": "txt2img",
            "positive_prompt": "a castle", "negative_prompt": "", "width": 64, "height": 64,
            "seed": made_with, "steps": 30, "cfg_scale": 7.5, "scheduler": "euler",
            "model": {"model_name": "stable-diffusion-v1-5", "base_model": "sd-1"}}
    return png(path, {"invokeai_metadata": json.dumps(meta)}, seed)


def fooocus_png(path: Path, seed: int = 0) -> Path:
    params = {"Prompt": "a cat", "Negative Prompt": "", "Fooocus V2 Expansion": "a cat, cute",
              "Styles": "['Fooocus V2']", "Performance": "Speed", "Resolution": "(64, 64)",
              "Sharpness": 2, "Sampler": "dpmpp_2m_sde_gpu", "Scheduler": "karras",
              "Seed": 42, "Base Model": "juggernautXL_v8Rundiffusion.safetensors",
              "Version": "Fooocus v2.1.865"}
    return png(path, {"parameters": json.dumps(params), "fooocus_scheme": "fooocus"}, seed)


def novelai_png(path: Path, seed: int = 0) -> Path:
    comment = {"prompt": "1girl", "steps": 28, "scale": 5, "seed": 7, "sampler": "k_euler",
               "uc": "lowres"}
    return png(path, {"Title": "AI generated image", "Description": "1girl",
                      "Software": "NovelAI", "Source": "Stable Diffusion 1D44365E",
                      "Comment": json.dumps(comment)}, seed)
