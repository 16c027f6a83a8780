"""Read the generation metadata of a picture file, whatever tool wrote it.

One reader for ``genimg info`` and ``genimg import``. PNG text chunks (``tEXt``,
``zTXt``, ``iTXt``) are read wherever they are, before or after the image data, by
walking the chunks (Pillow only sees late chunks after decoding every pixel); JPEG
and WebP carry A1111's infotext in the EXIF ``UserComment`` (an 8-byte charset
prefix, then UTF-16 for ``UNICODE``). The tool is recognised by what it writes:
A1111 (and Forge, genimg) an infotext in ``parameters``; ComfyUI its graphs as JSON in
``prompt`` and ``workflow``; InvokeAI ``invokeai_metadata``; Fooocus and SwarmUI JSON in
``parameters``; NovelAI ``Software: NovelAI``.
"""

from __future__ import annotations

import json
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GenimgError

if TYPE_CHECKING:
    from PIL import Image

A1111, COMFYUI, INVOKEAI, FOOOCUS, SWARMUI, NOVELAI = (
    "A1111", "ComfyUI", "InvokeAI", "Fooocus", "SwarmUI", "NovelAI")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_LIMIT = 8 << 20  # a text chunk inflated past this is not metadata
_EXIF_IFD, _USER_COMMENT, _EXIF_MAKE, _EXIF_MODEL = 0x8769, 0x9286, 0x010F, 0x0110
_VERSION = re.compile(r"(?:^|,\s*)Version:\s*([^,\n]+)")


@dataclass(frozen=True)
class Picture:
    """What a picture file says about how it was made (no pixels)."""

    path: Path
    format: str  # PNG, JPEG, WEBP
    texts: dict[str, str]  # PNG text chunks, or the EXIF texts of a JPEG/WebP
    tool: str | None = None  # None: no generation metadata at all
    version: str | None = None
    infotext: str | None = None  # A1111's ``parameters`` text, when it is one
    graph: dict[str, Any] | None = field(default=None, compare=False)  # ComfyUI's ``prompt``

    @property
    def origin(self) -> str:
        """``A1111 v1.6.0``: the tool and its version, as a summary line names them."""
        if self.tool and self.version and self.version.startswith(self.tool):
            return self.version
        return " ".join(part for part in (self.tool, self.version) if part) or "no metadata"


def read_picture(path: Path) -> Picture:
    """The metadata of one PNG, JPEG or WebP file (GenimgError: one line saying why not)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise GenimgError(f"cannot read it: {exc.strerror or exc}", path) from None
    if head == _PNG_SIGNATURE:
        texts = png_texts(path)
        return _recognised(path, "PNG", texts)
    return _exif_picture(path)


def png_texts(path: Path) -> dict[str, str]:
    """Every text chunk of a PNG, by keyword (the first of two with one keyword wins)."""
    texts: dict[str, str] = {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GenimgError(f"cannot read it: {exc.strerror or exc}", path) from None
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length:
            raise GenimgError("a truncated PNG (it ends inside a chunk)", path)
        pos += 12 + length
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword, text = _text_chunk(kind, body)
            if keyword is not None:
                texts.setdefault(keyword, text)
        elif kind == b"IEND":
            return texts
    raise GenimgError("a truncated PNG (no IEND chunk)", path)


def _text_chunk(kind: bytes, body: bytes) -> tuple[str | None, str]:
    """(keyword, text) of one text chunk; (None, "") if it is malformed."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep:
        return None, ""
    try:
        if kind == b"tEXt":
            return keyword.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return keyword.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
        compressed, _method = rest[0], rest[1]
        _language, _, rest = rest[2:].partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        raw = _inflate(text) if compressed else text
        return keyword.decode("latin-1"), raw.decode("utf-8", errors="replace")
    except (IndexError, zlib.error, ValueError):
        return None, ""


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _TEXT_LIMIT)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk too large")
    return out


def _exif_picture(path: Path) -> Picture:
    """A JPEG or WebP: the texts A1111 and ComfyUI put in its EXIF."""
    with _opened(path) as image:
        kind = image.format or "?"
        if kind not in ("JPEG", "WEBP"):
            raise GenimgError(f"a {kind} picture: genimg reads PNG, JPEG and WebP", path)
        exif = image.getexif()
        texts: dict[str, str] = {}
        comment = exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT)
        if comment:
            texts["parameters"] = user_comment(comment)
        for tag in (_EXIF_MAKE, _EXIF_MODEL):  # ComfyUI's WebP: "workflow:{…}", "prompt:{…}"
            value = exif.get(tag)
            if isinstance(value, str) and ":" in value:
                name, _, text = value.partition(":")
                if name in ("prompt", "workflow"):
                    texts[name] = text
        if isinstance(image.info.get("comment"), bytes | str) and "parameters" not in texts:
            raw = image.info["comment"]
            texts["parameters"] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return _recognised(path, kind, {k: v.rstrip("\0") for k, v in texts.items() if v.strip()})


def user_comment(value: bytes | str) -> str:
    """EXIF UserComment text: an 8-byte charset prefix, then the text (UTF-16 for
    ``UNICODE``, in either byte order: A1111 writes big-endian, some tools little)."""
    if isinstance(value, str):
        return value
    prefix, body = value[:8], value[8:]
    if prefix.startswith(b"UNICODE"):
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", errors="replace")
        # The parameters line is ASCII: the byte order that reads more of it is the one.
        big, little = (body.decode(codec, errors="replace") for codec in ("utf-16-be",
                                                                             "utf-16-le"))
        return big if _ascii(big) >= _ascii(little) else little
    if prefix.startswith((b"ASCII", b"\0\0\0\0\0\0\0\0")):
        return body.decode("utf-8", errors="replace")
    return value.decode("utf-8", errors="replace")


def _ascii(text: str) -> int:
    return sum(1 for char in text if " " <= char < "\x7f")


def _opened(path: Path) -> Image.Image:
    """``Image.open`` with a decompression bomb as an error, not a warning."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GenimgError(f"too many pixels (over {Image.MAX_IMAGE_PIXELS}): a decompression "
                          "bomb, not a picture", path) from None
    except (OSError, Image.UnidentifiedImageError, SyntaxError, ValueError):
        raise GenimgError("not a picture genimg can read (PNG, JPEG or WebP)", path) from None


def load_pixels(path: Path) -> Image.Image:
    """Decode every pixel (a truncated file or a decompression bomb: one line why)."""
    from PIL import Image

    image = _opened(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except Exception:  # Pillow raises many kinds for a damaged file
        image.close()
        raise GenimgError("a damaged or truncated picture (its pixels cannot be decoded)",
                          path) from None
    return image


def _json(text: str | None) -> Any:
    if not text or not text.lstrip().startswith("{"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _recognised(path: Path, kind: str, texts: dict[str, str]) -> Picture:
    """Name the tool that wrote ``texts`` and pick out what each tool keeps."""
    params = texts.get("parameters")
    data = _json(params)
    graph = _json(texts.get("prompt"))
    if isinstance(graph, dict) and all(isinstance(n, dict) and "class_type" in n
                                       for n in graph.values()):
        return Picture(path, kind, texts, COMFYUI, None, None, graph)
    if "invokeai_metadata" in texts or "sd-metadata" in texts or "Dream" in texts:
        meta = _json(texts.get("invokeai_metadata") or texts.get("sd-metadata")) or {}
        return Picture(path, kind, texts, INVOKEAI, _str(meta.get("app_version")))
    if texts.get("Software", "").startswith("NovelAI"):
        return Picture(path, kind, texts, NOVELAI)
    if isinstance(data, dict):
        if "sui_image_params" in data:
            extra = data.get("sui_extra_data")
            version = extra.get("swarm_version") if isinstance(extra, dict) else None
            return Picture(path, kind, texts, SWARMUI, _str(version))
        if "fooocus_scheme" in texts or str(data.get("Version", "")).startswith("Fooocus"):
            return Picture(path, kind, texts, FOOOCUS, _str(data.get("Version")))
        return Picture(path, kind, texts, "an unknown tool (JSON 'parameters')")
    if params:
        match = _VERSION.search(params.rsplit("\n", 1)[-1])
        version = match.group(1).strip() if match else None
        tool = FOOOCUS if version and version.startswith("Fooocus") else A1111
        return Picture(path, kind, texts, tool, version, params)
    return Picture(path, kind, texts)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def picture_files(paths: list[Path]) -> list[Path]:
    """The picture files among ``paths``, folders walked (hidden files left out)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()
                                and p.suffix.lower() in PICTURE_SUFFIXES
                                and not any(part.startswith(".") for part in
                                            p.relative_to(path).parts)))
        else:
            found.append(path)
    return list(dict.fromkeys(found))
