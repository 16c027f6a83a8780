"""``genimg.yaml`` -> one frozen ``SiteConfig``, with defaults and clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import GenimgError
from .specs import Location, did_you_mean, parse_defaults, require_type, short_repr
from .yamlio import key_lines_of, load_yaml, read_text_file

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


def _check_keys(data: Mapping[str, Any], allowed: Any, what: str, lines: Mapping[Any, int],
                file: str, line: int = 1) -> None:
    for key in data:
        if key not in allowed:
            where = Location(file, lines.get(key, line))
            raise where.error(
                f"unknown {what} key {short_repr(key)}{did_you_mean(str(key), list(allowed))}")


def _check_folders(root: Path, values: dict[str, Any], at: Any, written: Any) -> None:
    """``output_dir`` is emptied of files genimg did not write: it must hold nothing else."""
    resolved: dict[str, Path] = {}
    for key in ("posts_dir", "output_dir", "cache_dir", "theme_dir"):
        try:
            resolved[key] = values[key].resolve()
        except (OSError, ValueError, RuntimeError):  # NUL bytes, long names, symlink loops
            raise at(key).error(
                f"{key} must be a usable folder path, got {short_repr(str(values[key]))}"
            ) from None
    out = resolved["output_dir"]
    if root == out or root.is_relative_to(out):
        raise at("output_dir").error(
            f"output_dir must not be the blog folder or above it ({out}): the build deletes "
            "every file there that it did not write")
    cache = resolved["cache_dir"]
    if root.is_relative_to(cache) or resolved["posts_dir"].is_relative_to(cache):
        raise at("cache_dir").error(
            f"cache_dir ({cache}) must be a folder of its own, not the blog folder or one "
            "that holds the posts")
    for key in ("posts_dir", "cache_dir", "theme_dir"):
        other = resolved[key]
        if other == out or other.is_relative_to(out):
            raise at("output_dir" if "output_dir" in written else key).error(
                f"output_dir ({out}) must not hold {key} ({other}): the build deletes every "
                "file there that it did not write")


def load_config(root: Path) -> SiteConfig:
    """Read ``root/genimg.yaml`` (absent -> all defaults).

    Errors name the file as ``genimg.yaml`` (relative to the blog, like posts) and its line.
    """
    root = root.resolve()
    path = root / CONFIG_NAME
    if not path.exists() and not path.is_symlink():
        return SiteConfig(root=root, posts_dir=root / "posts", output_dir=root / "site",
                          cache_dir=root / ".genimg", theme_dir=root / "theme")
    file = CONFIG_NAME
    text = read_text_file(path, file)
    data, lines = load_yaml(text, file, 1)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise GenimgError("the config must be a mapping of keys like 'title:'", file, 1)
    _check_keys(data, TOP_KEYS, "config", lines, file)

    def at(key: str) -> Location:
        return Location(file, lines.get(key, 1))

    values: dict[str, Any] = {}
    for key, typ in TOP_KEYS.items():
        if key in data:
            require_type(key, data[key], (typ,), at(key))
            values[key] = data[key]

    values["posts_dir"] = root / data.get("posts_dir", "posts")
    values["output_dir"] = root / data.get("output_dir", "site")
    values["cache_dir"] = root / data.get("cache_dir", ".genimg")
    values["theme_dir"] = root / data.get("theme_dir", "theme")
    _check_folders(root, values, at, data)
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
    model_data = data.get("models") or {}
    model_lines = key_lines_of(model_data)
    for name, spec in model_data.items():
        where = Location(file, model_lines.get(name, lines.get("models", 1)))
        shown = short_repr(str(name))
        if isinstance(spec, str):
            models[str(name)] = ModelConfig(str(name), spec)
        elif isinstance(spec, Mapping):
            spec_lines = key_lines_of(spec)
            _check_keys(spec, MODEL_KEYS, f"model {shown}", spec_lines, file, where.line)
            if not isinstance(spec.get("source"), str):
                raise where.error(
                    f"model {shown} needs 'source:' (hub id, folder or file)")
            for key in ("config", "revision"):
                if spec.get(key) is not None and not isinstance(spec[key], str):
                    raise Location(file, spec_lines.get(key, where.line)).error(
                        f"model {shown}: {key!r} must be a string, "
                        f"got {short_repr(spec[key])}")
            models[str(name)] = ModelConfig(
                str(name), spec["source"], spec.get("config"), spec.get("revision")
            )
        else:
            raise where.error(f"model {shown} must be a hub id, a path, or a mapping")
    values["models"] = MappingProxyType(models)

    if "face_restorer" in data:
        face = data["face_restorer"]
        face_lines = key_lines_of(face)

        def face_at(key: str) -> Location:
            return Location(file, face_lines.get(key, lines.get("face_restorer", 1)))

        _check_keys(face, FACE_KEYS, "face_restorer", face_lines, file, face_at("").line)
        for key in ("model", "detection", "parsing"):
            if not isinstance(face.get(key), str):
                raise face_at(key).error(f"face_restorer needs '{key}:' (a file path)")
        options = face.get("options") or {}
        if not isinstance(options, Mapping):
            raise face_at("options").error(
                f"face_restorer options must be a mapping, got {short_repr(options)}")
        # Checked now (the module imports no torch), so a typo fails before any render.
        from .render.faces import face_options

        face_options(options, path)
        values["face_restorer"] = FaceRestorerConfig(
            model=root / face["model"],
            detection=root / face["detection"],
            parsing=root / face["parsing"],
            options=MappingProxyType(dict(options)),
        )

    if "defaults" in data:
        defaults = data["defaults"]
        checked = parse_defaults(defaults, at("defaults"), key_lines_of(defaults),
                                 forbidden=("id", "caption", "alt", "from"))
        values["defaults"] = MappingProxyType(checked)

    if "publish" in data:
        pub = data["publish"]
        pub_lines = key_lines_of(pub)
        _check_keys(pub, PUBLISH_KEYS, "publish", pub_lines, file, lines.get("publish", 1))
        for key, value in pub.items():
            if not isinstance(value, str) and not (key == "cname" and value is None):
                raise Location(file, pub_lines.get(key, 1)).error(
                    f"publish {key!r} must be a string, got {short_repr(value)}")
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
