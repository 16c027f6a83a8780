"""``genimg.yaml`` -> one frozen ``SiteConfig``, with defaults and clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import GenimgError
from .specs import SPEC_KEYS, Location, did_you_mean, parse_image
from .yamlio import load_yaml

CONFIG_NAME = "genimg.yaml"

TOP_KEYS = {
    "title": str,
    "base_url": str,
    "language": str,
    "author": str,
    "description": str,
    "posts_dir": str,
    "output_dir": str,
    "cache_dir": str,
    "theme_dir": str,
    "per_page": int,
    "allow_downloads": bool,
    "device": str,
    "dtype": str,
    "cpu_offload": bool,
    "vae_tiling": bool,
    "batch_size": int,
    "models": dict,
    "face_restorer": dict,
    "defaults": dict,
    "publish": dict,
}
MODEL_KEYS = ("source", "config", "revision")
FACE_KEYS = ("model", "detection", "parsing", "options")
PUBLISH_KEYS = ("remote", "branch", "cname", "message")


@dataclass(frozen=True)
class ModelConfig:
    """A named model: a hub id, a diffusers folder, or a single checkpoint file."""

    name: str
    source: str
    config: str | None = None  # single files: a local diffusers folder for from_single_file
    revision: str | None = None


@dataclass(frozen=True)
class FaceRestorerConfig:
    """GFPGAN weights and the facexlib detector/parser weights, all local files."""

    model: Path
    detection: Path
    parsing: Path
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class PublishConfig:
    remote: str = "origin"
    branch: str = "gh-pages"
    cname: str | None = None
    message: str = "Publish site"


@dataclass(frozen=True)
class SiteConfig:
    """Everything a build needs to know about a blog; paths are absolute."""

    root: Path
    title: str = "My genimg blog"
    base_url: str = "/"
    language: str = "en"
    author: str = ""
    description: str = ""
    posts_dir: Path = Path("posts")
    output_dir: Path = Path("site")
    cache_dir: Path = Path(".genimg")
    theme_dir: Path = Path("theme")
    per_page: int = 10
    allow_downloads: bool = False
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    vae_tiling: bool = False
    batch_size: int = 4
    models: Mapping[str, ModelConfig] = field(default_factory=lambda: MappingProxyType({}))
    face_restorer: FaceRestorerConfig | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    publish: PublishConfig = PublishConfig()
    file: Path | None = None

    @property
    def base_path(self) -> str:
        """The URL path the site lives under, e.g. ``/blog/`` for a project site."""
        from urllib.parse import urlsplit

        path = urlsplit(self.base_url).path or "/"
        return path if path.endswith("/") else path + "/"


def _require(value: Any, typ: type, key: str, where: Location) -> Any:
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        names = {str: "a string", int: "an integer", bool: "true or false", dict: "a mapping"}
        raise where.error(f"{key!r} must be {names.get(typ, typ.__name__)}, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Any, what: str, lines: Any, file: str) -> None:
    for key in data:
        if key not in allowed:
            where = Location(file, lines.get(key, 1))
            raise where.error(f"unknown {what} key {key!r}{did_you_mean(str(key), list(allowed))}")


def load_config(root: Path) -> SiteConfig:
    """Read ``root/genimg.yaml`` (absent -> all defaults)."""
    root = root.resolve()
    path = root / CONFIG_NAME
    if not path.exists():
        return SiteConfig(root=root, posts_dir=root / "posts", output_dir=root / "site",
                          cache_dir=root / ".genimg", theme_dir=root / "theme")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GenimgError(f"cannot read config: {exc}", path) from None
    data, lines = load_yaml(text, str(path), 1)
    if data is None:
        data = {}
    file = str(path)
    if not isinstance(data, Mapping):
        raise GenimgError("the config must be a mapping of keys like 'title:'", path, 1)
    _check_keys(data, TOP_KEYS, "config", lines, file)
    values: dict[str, Any] = {}
    for key, typ in TOP_KEYS.items():
        if key in data:
            values[key] = _require(data[key], typ, key, Location(file, lines.get(key, 1)))

    def at(key: str) -> Location:
        return Location(file, lines.get(key, 1))

    values["posts_dir"] = root / data.get("posts_dir", "posts")
    values["output_dir"] = root / data.get("output_dir", "site")
    values["cache_dir"] = root / data.get("cache_dir", ".genimg")
    values["theme_dir"] = root / data.get("theme_dir", "theme")
    if values.get("per_page", 10) < 1:
        raise at("per_page").error("per_page must be at least 1")
    if values.get("batch_size", 4) < 1:
        raise at("batch_size").error("batch_size must be at least 1")
    if values.get("device", "auto") not in ("auto", "cpu", "cuda", "mps") and not str(
        values.get("device")
    ).startswith("cuda:"):
        raise at("device").error("device must be auto, cpu, cuda, cuda:N or mps")
    if values.get("dtype", "auto") not in ("auto", "float32", "float16", "bfloat16"):
        raise at("dtype").error("dtype must be auto, float32, float16 or bfloat16")

    models: dict[str, ModelConfig] = {}
    for name, spec in (data.get("models") or {}).items():
        where = at("models")
        if isinstance(spec, str):
            models[str(name)] = ModelConfig(str(name), spec)
        elif isinstance(spec, Mapping):
            _check_keys(spec, MODEL_KEYS, f"model {name!r}", {}, file)
            if not isinstance(spec.get("source"), str):
                raise where.error(f"model {name!r} needs 'source:' (hub id, folder or file)")
            models[str(name)] = ModelConfig(
                str(name), spec["source"], spec.get("config"), spec.get("revision")
            )
        else:
            raise where.error(f"model {name!r} must be a hub id, a path, or a mapping")
    values["models"] = MappingProxyType(models)

    if "face_restorer" in data:
        face = data["face_restorer"]
        _check_keys(face, FACE_KEYS, "face_restorer", {}, file)
        for key in ("model", "detection", "parsing"):
            if not isinstance(face.get(key), str):
                raise at("face_restorer").error(f"face_restorer needs '{key}:' (a file path)")
        # Checked now (the module imports no torch), so a typo fails before any render.
        from .render.faces import face_options

        face_options(face.get("options") or {}, path)
        values["face_restorer"] = FaceRestorerConfig(
            model=root / face["model"],
            detection=root / face["detection"],
            parsing=root / face["parsing"],
            options=MappingProxyType(dict(face.get("options") or {})),
        )

    if "defaults" in data:
        defaults = data["defaults"]
        allowed = [k for k in SPEC_KEYS if k not in ("id", "caption", "alt", "from")]
        default_lines = getattr(defaults, "key_lines", {})
        for key in defaults:
            if key not in allowed:
                where = Location(file, default_lines.get(key, lines.get("defaults", 1)))
                raise where.error(
                    f"unknown image default {key!r}{did_you_mean(str(key), allowed)}")
        # Validate the defaults the way an image would be, with a throwaway prompt.
        parse_image({"prompt": "x", **defaults} if "mode" not in defaults else dict(defaults),
                    at("defaults"), key_lines={})
        values["defaults"] = MappingProxyType(dict(defaults))

    if "publish" in data:
        pub = data["publish"]
        _check_keys(pub, PUBLISH_KEYS, "publish", {}, file)
        values["publish"] = PublishConfig(**pub)

    return SiteConfig(root=root, file=path, **values)


def dump_default_config(title: str) -> str:
    """The config `genimg init` writes: every key a new blog is likely to touch."""
    return yaml.safe_dump(
        {
            "title": title,
            "base_url": "https://example.github.io/",
            "language": "en",
            "author": "",
            "models": {"default": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
            "defaults": {"steps": 20, "cfg": 7, "sampler": "Euler a", "width": 512, "height": 512},
        },
        allow_unicode=True,
        sort_keys=False,
    )
