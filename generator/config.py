"""``genimg.yaml`` -> one frozen ``SiteConfig``, with defaults and clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from . import schema
from .errors import GenimgError, Location, short_repr
from .modes import RENDERERS
from .specs import parse_defaults
from .yamlio import key_lines_of, load_yaml, read_text_file

CONFIG_NAME = "genimg.yaml"


@dataclass(frozen=True)
class ModelConfig:
    """A named model: a hub id, a diffusers folder, or a single checkpoint file."""

    name: str
    source: str
    config: str | None = None  # single files: a local diffusers folder for from_single_file
    revision: str | None = None
    vae: str | None = None  # a VAE file (or a name in the models folder's VAE/)
    prediction_type: str | None = None  # a single file's, overriding its detection


@dataclass(frozen=True)
class FaceRestorerConfig:
    """GFPGAN weights and the facexlib detector/parser weights, all local files."""

    model: Path
    detection: Path
    parsing: Path
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


_PUBLISH = schema.defaults_of(schema.PUBLISH)


@dataclass(frozen=True)
class PublishConfig:
    remote: str = _PUBLISH["remote"]
    branch: str = _PUBLISH["branch"]
    cname: str | None = _PUBLISH["cname"]
    message: str = _PUBLISH["message"]


@dataclass(frozen=True)
class RenderConfig:
    """``render:``: where pictures render (no cluster, no workers: in the build itself)."""

    cluster: str | None = None
    workers: int | None = None


_SPEED = schema.defaults_of(schema.SPEED)


@dataclass(frozen=True)
class SpeedConfig:
    """``speed:``: opt-in speed-ups (``render/speed.py`` applies them)."""

    compile: bool | str = _SPEED["compile"]  # True: the UNet's repeated blocks; "unet"
    channels_last: bool = _SPEED["channels_last"]
    fuse_qkv: bool = _SPEED["fuse_qkv"]
    attention: str = _SPEED["attention"]
    tf32: bool = _SPEED["tf32"]

    def hashed(self) -> dict[str, Any]:
        """The options that change a picture's bits, where set: what generated pictures'
        cache keys hold (empty without any, so every older key stays as it was)."""
        return {key.name: getattr(self, key.name) for key in schema.SPEED.values()
                if key.role is schema.Role.PIXELS and getattr(self, key.name) != key.default}


_DEFAULTS = schema.defaults_of(schema.CONFIG)


@dataclass(frozen=True)
class SiteConfig:
    """Everything a build needs to know about a blog; paths are absolute.

    Its defaults are ``schema.CONFIG``'s (``load_config`` fills every field)."""

    root: Path
    title: str = _DEFAULTS["title"]
    base_url: str = _DEFAULTS["base_url"]
    language: str = _DEFAULTS["language"]
    author: str = _DEFAULTS["author"]
    description: str = _DEFAULTS["description"]
    posts_dir: Path = Path(_DEFAULTS["posts_dir"])
    output_dir: Path = Path(_DEFAULTS["output_dir"])
    cache_dir: Path = Path(_DEFAULTS["cache_dir"])
    theme_dir: Path = Path(_DEFAULTS["theme_dir"])
    per_page: int = _DEFAULTS["per_page"]
    grid_limit: int = _DEFAULTS["grid_limit"]
    search: bool = _DEFAULTS["search"]
    allow_downloads: bool = _DEFAULTS["allow_downloads"]
    device: str = _DEFAULTS["device"]
    dtype: str = _DEFAULTS["dtype"]
    cpu_offload: bool = _DEFAULTS["cpu_offload"]
    vae_tiling: bool = _DEFAULTS["vae_tiling"]
    vae_slicing: bool = _DEFAULTS["vae_slicing"]
    batch_size: int | str = _DEFAULTS["batch_size"]  # or "auto" (``render/speed.py``)
    originals: str = _DEFAULTS["originals"]
    originals_url: str | None = _DEFAULTS["originals_url"]
    models_dir: Path | None = None  # an A1111/ComfyUI models folder
    models: Mapping[str, ModelConfig] = field(default_factory=lambda: MappingProxyType({}))
    face_restorer: FaceRestorerConfig | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    publish: PublishConfig = PublishConfig()
    render: RenderConfig = RenderConfig()
    speed: SpeedConfig = SpeedConfig()
    file: Path | None = None

    @property
    def batch_limit(self) -> int:
        """The most pictures of one renderer call: ``batch_size``, or with ``auto`` the most
        it may pick (the diffusion renderer cuts such a call to what fits its GPU)."""
        size = self.batch_size
        return max(1, size) if isinstance(size, int) else schema.BATCH_AUTO_MOST

    @property
    def base_path(self) -> str:
        """The URL path the site lives under, e.g. ``/blog/`` for a project site."""
        from urllib.parse import urlsplit

        path = urlsplit(self.base_url).path or "/"
        return path if path.endswith("/") else path + "/"


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
    for key in ("posts_dir", "theme_dir"):  # `posts_dir: /` walked the whole disk
        if resolved[key] != root and root.is_relative_to(resolved[key]):
            raise at(key).error(f"{key} ({resolved[key]}) must not be above the blog folder")
    out = resolved["output_dir"]
    static = resolved["theme_dir"] / "static"  # copied into the site, as it is
    for key in ("output_dir", "cache_dir"):
        if resolved[key].is_relative_to(static):
            raise at(key).error(f"{key} ({resolved[key]}) must not be inside the theme's "
                                f"static folder ({static}): it is copied into the site")
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
        return SiteConfig(root=root, **_folders(root, {}))
    file = CONFIG_NAME
    data, lines = load_yaml(read_text_file(path, file), file, 1)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise GenimgError("the config must be a mapping of keys like 'title:'", file, 1)
    schema.check_keys(data, schema.CONFIG, "config", Location(file, 1), lines)

    def at(key: str) -> Location:
        return Location(file, lines.get(key, 1))

    values: dict[str, Any] = {k: v for k, v in data.items() if k not in schema.FOLDER_KEYS}
    values.update(_folders(root, data))
    _check_folders(root, values, at, data)
    if "models_dir" in data:
        values["models_dir"] = root / Path(data["models_dir"]).expanduser()
    values["models"] = _models(data.get("models") or {}, at("models"))
    if "face_restorer" in data:
        values["face_restorer"] = _face_restorer(root, data["face_restorer"], at("face_restorer"))
    if "defaults" in data:
        defaults = data["defaults"]
        checked = parse_defaults(defaults, at("defaults"), key_lines_of(defaults),
                                 forbidden=(*schema.PRESENTATION_KEYS, "from"))
        values["defaults"] = MappingProxyType(checked)
    if "publish" in data:
        pub = data["publish"]
        schema.check_keys(pub, schema.PUBLISH, "publish", at("publish"), key_lines_of(pub))
        values["publish"] = PublishConfig(**pub)
    if "render" in data:
        where = data["render"]
        schema.check_keys(where, schema.RENDER, "render", at("render"), key_lines_of(where))
        values["render"] = RenderConfig(**where)
    if "speed" in data:
        speed = data["speed"]
        schema.check_keys(speed, schema.SPEED, "speed", at("speed"), key_lines_of(speed))
        values["speed"] = SpeedConfig(**speed)
    return SiteConfig(root=root, file=path, **values)


def _folders(root: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """The four folders, absolute (relative ones are below the blog)."""
    return {key: config_path(root, data.get(key, schema.CONFIG[key].default))
            for key in schema.FOLDER_KEYS}


def config_path(root: Path, value: str) -> Path:
    """A path written in genimg.yaml: ``~`` is the home folder, a relative path is below
    the blog."""
    try:
        return root / Path(value).expanduser()
    except RuntimeError:  # ``~name`` of no known user: a folder of that name, as written
        return root / value


def _models(data: Mapping[str, Any], where: Location) -> Mapping[str, ModelConfig]:
    """``models:``: name -> a hub id, folder or file, or a mapping with ``source:``."""
    models: dict[str, ModelConfig] = {}
    model_lines = key_lines_of(data)
    for name, spec in data.items():
        at = Location(where.file, model_lines.get(name, where.line))
        shown = short_repr(str(name))
        if isinstance(spec, str):
            models[str(name)] = ModelConfig(str(name), spec)
        elif isinstance(spec, Mapping):
            schema.check_keys(spec, schema.MODEL, f"model {shown}", at, key_lines_of(spec))
            models[str(name)] = ModelConfig(str(name), spec["source"], spec.get("config"),
                                            spec.get("revision"), spec.get("vae"),
                                            spec.get("prediction_type"))
        else:
            raise at.error(f"model {shown} must be a hub id, a path, or a mapping")
    return MappingProxyType(models)


def _face_restorer(root: Path, face: Mapping[str, Any], where: Location) -> FaceRestorerConfig:
    """``face_restorer:``; its ``options`` are checked against the face renderer's own
    table now (the renderer module imports no torch), so a typo fails before any render."""
    face_lines = key_lines_of(face)
    schema.check_keys(face, schema.FACE_RESTORER, "face_restorer", where, face_lines)
    options = face.get("options") or {}
    options_at = Location(where.file, face_lines.get("options", where.line))
    schema.check_keys(options, RENDERERS["faces"].option_table(), "face_restorer option",
                      options_at, key_lines_of(options))
    return FaceRestorerConfig(model=config_path(root, face["model"]),
                              detection=config_path(root, face["detection"]),
                              parsing=config_path(root, face["parsing"]),
                              options=MappingProxyType(dict(options)))


def dump_default_config(title: str) -> str:
    """The config `genimg init` writes: every key a new blog is likely to touch."""
    return yaml.safe_dump(
        {
            "title": title,
            "base_url": "https://example.github.io/",
            "language": "en",
            "author": "",
            "models": {"default": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
            # A new blog speaks A1111's dialect: its prompt syntax, its (NV) noise and its
            # samplers (k-diffusion's, step for step).
            "defaults": {"steps": 20, "cfg": 7, "sampler": "Euler a", "width": 512, "height": 512,
                         "prompt_syntax": "a1111", "noise": "nv", "sampling": "a1111"},
        },
        allow_unicode=True,
        sort_keys=False,
    )
