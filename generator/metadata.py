"""A1111 infotext: the ``parameters`` PNG text chunk that A1111, ComfyUI and image
browsers read the prompt and seed back from."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

from .errors import GenimgError

_PAIR = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def format_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """``prompt\\nNegative prompt: …\\nSteps: 20, Sampler: Euler a, …`` as A1111 writes it."""
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    pairs = []
    for key, value in params.items():
        if value is None or value == "":
            continue
        text = str(value)
        if "," in text or ":" in text or '"' in text:
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        pairs.append(f"{key}: {text}")
    lines.append(", ".join(pairs))
    return "\n".join(lines)


def parse_infotext(text: str) -> dict[str, str]:
    """The inverse of ``format_infotext``: ``{"prompt": …, "Negative prompt": …, "Seed": …}``."""
    lines = text.strip().split("\n")
    params_line = lines.pop() if lines and _PAIR.match(lines[-1]) and ":" in lines[-1] else ""
    result: dict[str, str] = {}
    prompt_lines: list[str] = []
    negative: list[str] | None = None
    for line in lines:
        if line.startswith("Negative prompt:"):
            negative = [line[len("Negative prompt:"):].strip()]
        elif negative is not None:
            negative.append(line)
        else:
            prompt_lines.append(line)
    result["prompt"] = "\n".join(prompt_lines).strip()
    if negative is not None:
        result["Negative prompt"] = "\n".join(negative).strip()
    for key, value in _PAIR.findall(params_line):
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        result[key.strip()] = value
    return result


def png_bytes(image: Image.Image, infotext: str) -> bytes:
    """Encode ``image`` as PNG with the infotext in its ``parameters`` chunk."""
    from PIL import PngImagePlugin  # here: a build from the cache needs no PIL

    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", infotext)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=6)
    return buffer.getvalue()


def read_infotext(path: Path) -> str:
    """The ``parameters`` text of a PNG, as A1111's PNG Info shows it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            text = image.info.get("parameters")
    except (OSError, Image.UnidentifiedImageError) as exc:
        raise GenimgError(f"not a readable image: {exc}", path) from None
    if not text:
        raise GenimgError("this PNG carries no 'parameters' infotext", path)
    return str(text)
