"""A1111 infotext: the ``parameters`` PNG text chunk that A1111, ComfyUI and image
browsers read the prompt and seed back from."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

from .errors import GenimgError

#: One ``Key: value`` of the parameters line, as A1111's reader finds them (a key of at
#: most 80 characters, so a long line without one is read in linear time).
_PARAM = re.compile(r'\s*(\w[\w \-/]{1,79}):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
NEGATIVE = "Negative prompt:"


def quote(value: Any) -> str:
    """A value as A1111 writes it: JSON-quoted only if it holds ``,``, ``:`` or a newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    """The inverse of ``quote`` (a value that is not valid JSON stays as written)."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def format_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """``prompt\nNegative prompt: …\nSteps: 20, Sampler: Euler a, …`` exactly as A1111
    writes it (its quoting, a key alone when its value is the key, the whole stripped)."""
    pairs = ", ".join(key if key == value else f"{key}: {quote(value)}"
                      for key, value in params.items() if value is not None and value != "")
    negative = f"\n{NEGATIVE} {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{pairs}".strip()


def parse_infotext(text: str) -> dict[str, str]:
    """The inverse of ``format_infotext``, read as A1111 reads it: ``{"prompt": …,
    "Negative prompt": …, "Seed": …}``. The last line holds the parameters if it has at
    least three; every line is stripped, so a prompt's final newline survives (it is an
    empty line) but its outer spaces do not."""
    *lines, last = text.strip().split("\n")
    if ":" not in last or len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] | None = None
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE):
            negative = negative if negative is not None else []
            line = line[len(NEGATIVE):].strip()
        (prompt if negative is None else negative).append(line)
    result = {"prompt": _lines(prompt)}
    if negative is not None:
        result["Negative prompt"] = _lines(negative)
    for key, value in _PARAM.findall(last):
        result[key] = unquote(value) if value[:1] == '"' else value
    return result


def _lines(lines: list[str]) -> str:
    """Lines joined as A1111 joins them: empty lines before any text vanish."""
    text = ""
    for line in lines:
        text += ("\n" if text else "") + line
    return text


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
