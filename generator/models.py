"""Find models on disk and fingerprint them for cache keys, without importing torch.

A model is a Hugging Face hub id (looked up in the local hub cache), a diffusers
folder, or a single ``.safetensors``/``.ckpt`` file. Its fingerprint is the hub
revision or a content hash; file hashes are remembered by path+size+mtime so a
4 GB checkpoint is hashed once. Fingerprints are also recorded in the cache
folder, so ``--frozen`` builds can compute keys on a machine without the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .atomic import read_json_dict, write_atomic
from .config import FaceRestorerConfig, ModelConfig, SiteConfig
from .errors import GenimgError, did_you_mean, short_repr
from .passes import UPSCALER_SUFFIXES

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pth", ".pt", ".json", ".txt", ".model")
LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")
#: The models folder's subfolders of LoRAs and VAEs: A1111's names, then ComfyUI's.
ADD_ON_FOLDERS = {"lora": ("Lora", "lora", "loras"), "vae": ("VAE", "vae"),
                  "upscaler": ("ESRGAN", "RealESRGAN", "upscale_models")}
PREVIEW_FINGERPRINT = "preview-v1"
#: Fingerprints of models known only from imported pictures: A1111's short hash of the
#: checkpoint, or the file name another tool wrote.
A1111_PREFIX, IMPORTED_PREFIX = "a1111:", "imported:"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: where it is and what it is, for loading and for keys."""

    name: str
    kind: Literal["hub", "folder", "file", "preview"]
    location: str  # hub id, or an absolute path
    fingerprint: str
    config: str | None = None  # single file: a local diffusers folder with its configs
    revision: str | None = None
    problem: str | None = None  # why it cannot be loaded here (None: it can)
    file_sha256: str | None = None  # a single file: its own SHA-256 (config: or not)
    vae: str | None = None  # genimg.yaml's VAE for this model (a spec's ``vae:`` wins)
    prediction_type: str | None = None  # genimg.yaml's, for a single file

    @property
    def short_hash(self) -> str | None:
        """What A1111 shows as ``Model hash``: the first 10 hex digits of the checkpoint
        file's SHA-256. Hub and folder models have no such file (``Model`` names them)."""
        if self.file_sha256:
            return self.file_sha256[:10]
        if self.kind in ("hub", "folder") and not self.problem:
            return None
        return self.fingerprint.split(":")[-1][:10]

    @property
    def shown_name(self) -> str:
        """What A1111 shows as ``Model``: the checkpoint's name, never genimg.yaml's alias;
        a hub model's repo id, a folder's name."""
        if self.location.endswith(CHECKPOINT_SUFFIXES):
            return Path(self.location).stem
        if self.kind == "folder":
            return Path(self.location).name
        return self.location if self.kind == "hub" and not self.problem else self.name


@dataclass(frozen=True)
class FileRef:
    """A LoRA or VAE file found for a name, with its hash (A1111 shows LoRAs by 12 hex
    digits of it, VAEs by 10)."""

    name: str
    path: str
    fingerprint: str  # "sha256:<hex>"
    problem: str | None = None  # why it cannot be loaded here (None: it can)

    @property
    def short_hash(self) -> str:
        return self.fingerprint.split(":")[-1][:12]


@dataclass(frozen=True)
class FaceRestorerRef:
    """GFPGAN + facexlib weights, resolved, with one fingerprint for all three."""

    model: Path
    detection: Path
    parsing: Path
    options: dict
    fingerprint: str
    problem: str | None = None  # why it cannot be loaded here (None: it can)


def hf_hub_cache() -> Path:
    """The hub cache folder, honouring the same variables as huggingface_hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


class FileHasher:
    """SHA-256 of files, remembered by (path, size, mtime) in ``hashes.json``."""

    def __init__(self, cache_dir: Path):
        self.path = cache_dir / "hashes.json"
        self._memo: dict[str, dict] | None = None
        self._dirty = False

    def _load(self) -> dict[str, dict]:
        if self._memo is None:
            self._memo = read_json_dict(self.path)  # damaged: forget it, rehash
        return self._memo

    def hash(self, file: Path) -> str:
        stat = file.stat()
        memo = self._load()
        key = str(file.resolve())
        seen = memo.get(key)
        if (isinstance(seen, dict) and seen.get("size") == stat.st_size
                and seen.get("mtime_ns") == stat.st_mtime_ns
                and isinstance(seen.get("sha256"), str)):
            return seen["sha256"]
        digest = hashlib.sha256()
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        memo[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                     "sha256": digest.hexdigest()}
        self._dirty = True
        return memo[key]["sha256"]

    def save(self) -> None:
        if self._dirty and self._memo is not None:
            write_atomic(self.path, json.dumps(self._memo, indent=1, sort_keys=True).encode())
            self._dirty = False


class ModelResolver:
    """Resolves model names from specs; remembers fingerprints for frozen builds."""

    def __init__(self, config: SiteConfig, preview: bool = False):
        self.config = config
        self.preview = preview
        self.hasher = FileHasher(config.cache_dir)
        self.record_path = config.cache_dir / "fingerprints.json"
        self.recorded: dict[str, str] = read_json_dict(self.record_path)
        self._resolved: dict[str, ModelRef] = {}
        self._restorer: FaceRestorerRef | None = None
        self._loras: dict[str, FileRef] = {}
        self._embeddings: dict[str, Path] | None = None
        self._embedding_fps: dict[str, str] = {}  # embedding name -> fingerprint, as used

    def known_names(self) -> list[str]:
        stems = {f.stem for folder in self.checkpoint_folders() for f in folder.rglob("*")
                 if f.suffix in (".safetensors", ".ckpt")}
        return sorted({*self.config.models, *stems})

    def model(self, name: str) -> ModelRef:
        """The model a spec's ``model:`` names (raises GenimgError if unusable)."""
        if name not in self._resolved:
            ref = self._resolve(name)
            cfg = self.config.models.get(name)
            self._resolved[name] = replace(ref, vae=cfg.vae) if cfg and cfg.vae else ref
        return self._resolved[name]

    def _resolve(self, name: str) -> ModelRef:
        cfg = self.config.models.get(name)
        if self.config.models_dir is not None:  # a name or short hash in the models folder
            wanted = cfg.source if cfg else name
            found = None if (self.config.root / wanted).exists() or "/" in wanted else (
                self._a1111_checkpoint(wanted))
            if found:
                cfg = ModelConfig(name, str(found), cfg.config if cfg else None,
                                  prediction_type=cfg.prediction_type if cfg else None)
        if cfg is None:
            looks_like_ref = "/" in name or name.endswith(CHECKPOINT_SUFFIXES)
            # Preview builds load no model, but a typo must fail now, not on the GPU
            # machine; only a blog with no models at all previews its "default".
            if not looks_like_ref and not (self.preview and name == "default"
                                           and not self.config.models):
                from .errors import did_you_mean, short_repr

                known = ", ".join(self.known_names()) or "none"
                raise GenimgError(
                    f"unknown model {short_repr(name)}{did_you_mean(name, self.known_names())}; "
                    f"models in genimg.yaml: {known}. Add it under 'models:' in genimg.yaml, "
                    "or build with --preview (placeholder pictures)"
                )
            cfg = ModelConfig(name, name)
        if self.preview:
            return ModelRef(name, "preview", name, PREVIEW_FINGERPRINT)
        return self._locate(cfg)

    def checkpoint_folders(self) -> list[Path]:
        """Where checkpoints are found by name: A1111's ``Stable-diffusion/`` or ComfyUI's
        ``checkpoints/``, in the models folder (``webui/models``) or below it (``webui``)."""
        base = self.config.models_dir
        if base is None:
            return []
        names = ("Stable-diffusion", "checkpoints", "models/Stable-diffusion",
                 "models/checkpoints")
        return [base / name for name in names if (base / name).is_dir()]

    def _a1111_checkpoint(self, name: str) -> Path | None:
        """A checkpoint by file name (without suffix, as A1111 shows it) or by A1111's short
        hash (10 hex digits: hashes every checkpoint once, remembered like all hashes)."""
        files = [f for folder in self.checkpoint_folders() for f in sorted(folder.rglob("*"))
                 if f.suffix in (".safetensors", ".ckpt") and f.is_file()]
        for file in files:
            if name in (file.stem, file.name):
                return file
        if len(name) == 10 and all(c in "0123456789abcdef" for c in name.lower()):
            for file in files:
                if self.hasher.hash(file).startswith(name.lower()):
                    return file
        return None

    def _locate(self, cfg: ModelConfig) -> ModelRef:
        source = cfg.source
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = self.config.root / path
        if source.endswith(CHECKPOINT_SUFFIXES) or path.is_file():
            if path.is_file():
                file_hash = self.hasher.hash(path)
                fp = "sha256:" + file_hash
                adopted = self.recorded.get(_record_key(cfg), "")
                if adopted.startswith(A1111_PREFIX) and fp[7:].startswith(adopted[6:]):
                    fp = adopted  # the checkpoint imported pictures were made with: same keys
                config = str(self.config.root / cfg.config) if cfg.config else None
                if config:  # its scheduler and prediction type shape the pixels too
                    fp = "sha256:" + hashlib.sha256(
                        (fp + self._config_hash(Path(config))).encode()).hexdigest()
                if cfg.prediction_type:  # likewise (keys without it stay as they were)
                    fp = "sha256:" + hashlib.sha256(
                        f"{fp} prediction_type={cfg.prediction_type}".encode()).hexdigest()
                return self._record(cfg, ModelRef(cfg.name, "file", str(path), fp, config=config,
                                                  file_sha256=file_hash,
                                                  prediction_type=cfg.prediction_type))
            return self._missing(cfg, f"the file {path} does not exist")
        if cfg.prediction_type:
            raise GenimgError(f"model {short_repr(cfg.name)}: 'prediction_type' is for single "
                              "files (a folder's or hub model's scheduler config says it)",
                              self.config.file)
        if path.is_dir():
            if not (path / "model_index.json").is_file():  # `model: /usr/` hashed 3,035 files
                raise GenimgError(f"{path} is not a diffusers model folder (it has no "
                                  "model_index.json)")
            return self._record(cfg, ModelRef(cfg.name, "folder", str(path),
                                              self._folder_hash(path)))
        if source.startswith((".", "/", "~")):
            return self._missing(cfg, f"the folder {path} does not exist")
        return self._hub(cfg)

    def _config_hash(self, config: Path) -> str:
        if config.is_dir():
            return self._folder_hash(config)
        if config.is_file():
            return self.hasher.hash(config)
        raise GenimgError(f"the model config {config} does not exist", self.config.file)

    def _folder_hash(self, folder: Path) -> str:
        digest = hashlib.sha256()
        for file in sorted(folder.rglob("*")):
            if file.is_file() and file.suffix in WEIGHT_SUFFIXES:
                digest.update(f"{file.relative_to(folder).as_posix()}\0".encode())
                digest.update(self.hasher.hash(file).encode())
        return "sha256:" + digest.hexdigest()

    def _hub(self, cfg: ModelConfig) -> ModelRef:
        repo = hf_hub_cache() / ("models--" + cfg.source.replace("/", "--"))
        revision = cfg.revision or "main"
        ref_file = repo / "refs" / revision
        commit = ref_file.read_text().strip() if ref_file.is_file() else None
        if commit is None and len(revision) == 40 and (repo / "snapshots" / revision).is_dir():
            commit = revision
        if commit is None and self.config.allow_downloads:
            commit = self._remembered_commit(cfg) or _hub_commit(cfg.source, revision)
        if commit and ((repo / "snapshots" / commit).is_dir() or self.config.allow_downloads):
            # Keyed by the commit, never by a moving branch name: the same pictures are
            # found before and after the download.
            return self._record(cfg, ModelRef(cfg.name, "hub", cfg.source,
                                              f"hub:{cfg.source}@{commit}", revision=commit))
        why = ("its commit could not be looked up on the hub" if self.config.allow_downloads
               else "downloads are off")
        return self._missing(
            cfg, f"hub model {cfg.source!r} is not in the local Hugging Face cache ({repo}) "
            f"and {why}")

    def _record(self, cfg: ModelConfig, ref: ModelRef) -> ModelRef:
        self.recorded[_record_key(cfg)] = ref.fingerprint
        return ref

    def _remembered_commit(self, cfg: ModelConfig) -> str | None:
        fingerprint = self.recorded.get(_record_key(cfg), "")
        return fingerprint.rpartition("@")[2] if fingerprint.startswith("hub:") else None

    def _missing(self, cfg: ModelConfig, why: str) -> ModelRef:
        """A model not on this machine: keyed by its recorded fingerprint if there is one
        (for the same name *and* source), so cached pictures are still found; rendering
        with it fails naming ``why``."""
        fingerprint = self.recorded.get(_record_key(cfg), f"unavailable:{cfg.name}")
        if fingerprint.startswith(A1111_PREFIX):
            why += (f" (pictures imported with this model name were made with the "
                    f"checkpoint of A1111 hash {fingerprint[6:]})")
        elif fingerprint.startswith(IMPORTED_PREFIX):
            why += f" (pictures imported with this model name were made with {fingerprint[9:]})"
        return ModelRef(cfg.name, "hub", cfg.source, fingerprint, problem=why)

    def recorded_for(self, name: str) -> str | None:
        """The fingerprint recorded for ``model: name`` (a file name), if any."""
        return self.recorded.get(_record_key(ModelConfig(name, name)))

    def adopt(self, name: str, fingerprint: str) -> bool:
        """Key ``model: name`` (a file not here) by ``fingerprint``, as ``genimg import``
        does for a model genimg.yaml lacks; False if the name stands for another one."""
        key = _record_key(ModelConfig(name, name))
        if self.recorded.setdefault(key, fingerprint) != fingerprint:
            return False
        self._resolved.pop(name, None)
        return True

    def lora(self, name: str) -> FileRef:
        """The LoRA file ``<lora:name:…>`` means (raises GenimgError if there is none)."""
        return self.add_on("lora", name)

    def vae(self, name: str) -> FileRef:
        """The VAE file a ``vae:`` names (raises GenimgError if there is none)."""
        return self.add_on("vae", name)

    def upscaler(self, name: str) -> FileRef:
        """The upscaler file a hires fix names (ESRGAN family; raises GenimgError)."""
        return self.add_on("upscaler", name)

    def add_on(self, kind: str, name: str) -> FileRef:
        key = f"{kind}: {name}"
        if key not in self._loras:
            self._loras[key] = self._find_add_on(kind, name, key)
        return self._loras[key]

    def add_on_folders(self, kind: str) -> list[Path]:
        """Where LoRAs (VAEs) are looked for by name: the models folder's ``Lora/``
        (``VAE/``), or ComfyUI's ``loras/`` (``vae/``), whether it names ``webui`` or
        ``webui/models``."""
        base = self.config.models_dir
        if base is None:
            return []
        names = ADD_ON_FOLDERS[kind]
        return [base / name for name in (*names, *(f"models/{n}" for n in names))
                if (base / name).is_dir()]

    def embeddings_in(self, prompts: tuple[str, ...]) -> tuple[FileRef, ...]:
        """The textual-inversion embeddings the prompts use, the A1111 way: an embedding's
        file name written as a word. Only with a models folder (so older keys stay)."""
        if self._embeddings is None:
            self._embeddings = {
                f.stem: f for folder in self.embedding_folders() for f in sorted(folder.rglob("*"))
                if f.suffix in (".safetensors", ".pt", ".bin") and f.is_file()}
        used = [name for name in sorted(self._embeddings)
                if any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", p) for p in prompts)]
        return tuple(self._embedding(name, self._embeddings[name]) for name in used)

    def embedding_folders(self) -> list[Path]:
        """A1111 keeps embeddings in ``webui/embeddings`` (beside ``models``), ComfyUI in
        ``models/embeddings``."""
        base = self.config.models_dir
        if base is None:
            return []
        found = [base / "embeddings", base / "models/embeddings", base.parent / "embeddings"]
        return [f for f in found if f.is_dir() and (f.parent != base.parent
                                                    or base.name == "models")]

    def _embedding(self, name: str, path: Path) -> FileRef:
        fp = PREVIEW_FINGERPRINT if self.preview else "sha256:" + self.hasher.hash(path)
        self._embedding_fps[name] = fp
        return FileRef(name, str(path), fp)

    def lora_folders(self) -> list[Path]:
        return self.add_on_folders("lora")

    def _find_add_on(self, kind: str, name: str, key: str) -> FileRef:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = self.config.root / path
        suffixes = UPSCALER_SUFFIXES if kind == "upscaler" else LORA_SUFFIXES
        found = [path] if name.endswith(suffixes) and path.is_file() else [
            f for folder in self.add_on_folders(kind) for f in sorted(folder.rglob("*"))
            if f.stem == name and f.suffix in suffixes and f.is_file()]
        if self.preview:
            return FileRef(name, str(found[0]) if found else name, PREVIEW_FINGERPRINT)
        if found:
            fp = "sha256:" + self.hasher.hash(found[0])
            self.recorded[key] = fp
            return FileRef(name, str(found[0]), fp)
        where = ", ".join(str(f) for f in self.add_on_folders(kind)) or (
            "no folder: set 'models_dir:' in genimg.yaml to your A1111 or ComfyUI models folder")
        if key in self.recorded:  # a frozen build on a machine without the file
            return FileRef(name, name, self.recorded[key], problem=f"not found in {where}")
        known = sorted({f.stem for folder in self.add_on_folders(kind)
                        for f in folder.rglob("*") if f.suffix in suffixes})
        what = {"lora": "LoRA", "vae": "VAE", "upscaler": "hires upscaler"}[kind]
        raise GenimgError(f"{what} {short_repr(name)} not found{did_you_mean(name, known)} "
                          f"(looked in {where})")

    def restorer(self) -> FaceRestorerRef:
        """The GFPGAN restorer from genimg.yaml (raises GenimgError if unusable)."""
        if self._restorer is None:
            self._restorer = self._resolve_restorer()
        return self._restorer

    def _resolve_restorer(self) -> FaceRestorerRef:
        if self.preview:
            return FaceRestorerRef(Path(), Path(), Path(), {}, PREVIEW_FINGERPRINT)
        face: FaceRestorerConfig | None = self.config.face_restorer
        record_key = self._restorer_record_key(face)
        recorded = self.recorded.get(record_key, "unavailable:face_restorer")
        if face is None:
            return FaceRestorerRef(Path(), Path(), Path(), {}, recorded, problem=(
                "a picture asks for face restoration, but genimg.yaml has no 'face_restorer:' "
                "(model, detection, parsing: paths to GFPGANv1.4.pth, "
                "detection_Resnet50_Final.pth, parsing_parsenet.pth)"))
        missing = [p for p in (face.model, face.detection, face.parsing) if not p.is_file()]
        if missing:
            return FaceRestorerRef(face.model, face.detection, face.parsing, dict(face.options),
                                   recorded, problem=(
                f"face restorer weights not found: {', '.join(map(str, missing))}. Download "
                "GFPGANv1.4.pth from https://github.com/TencentARC/GFPGAN/releases and the "
                "facexlib weights from https://github.com/xinntao/facexlib/releases, or build "
                "with --preview or --frozen"))
        digest = hashlib.sha256()
        for file in (face.model, face.detection, face.parsing):
            digest.update(self.hasher.hash(file).encode())
        digest.update(json.dumps(dict(face.options), sort_keys=True).encode())
        fp = "sha256:" + digest.hexdigest()
        self.recorded[record_key] = fp
        return FaceRestorerRef(face.model, face.detection, face.parsing, dict(face.options), fp)

    def _restorer_record_key(self, face: FaceRestorerConfig | None) -> str:
        if face is None:
            return "face_restorer"
        files = [p.relative_to(self.config.root).as_posix() if p.is_relative_to(self.config.root)
                 else str(p) for p in (face.model, face.detection, face.parsing)]
        return "face_restorer = " + ", ".join(files)

    def resolved(self) -> dict[str, Any]:
        """Every name this resolver was asked for, with the fingerprint it gave, as JSON
        data (for the build stamp, ``resolves_as``)."""
        return {"models": {name: ref.fingerprint for name, ref in self._resolved.items()},
                "add_ons": {key: ref.fingerprint for key, ref in self._loras.items()},
                "embeddings": None if self._embeddings is None else {
                    name: str(path) for name, path in self._embeddings.items()},
                "used_embeddings": dict(self._embedding_fps),
                "restorer": None if self._restorer is None else self._restorer.fingerprint}

    def resolves_as(self, resolved: Mapping[str, Any]) -> bool:
        """Whether the names of ``resolved()`` resolve to the same fingerprints now (a
        file changed, appeared or went away: not)."""
        try:
            if any(self.model(name).fingerprint != fp
                   for name, fp in resolved["models"].items()):
                return False
            if any(self.add_on(*key.split(": ", 1)).fingerprint != fp
                   for key, fp in resolved["add_ons"].items()):
                return False
            if resolved["embeddings"] is not None:
                self.embeddings_in(())
                found = self._embeddings or {}
                if {name: str(path) for name, path in found.items()} != resolved["embeddings"] \
                        or any(self._embedding(name, found[name]).fingerprint != fp
                        for name, fp in resolved["used_embeddings"].items()):
                    return False
            return resolved["restorer"] is None or self.restorer().fingerprint == \
                resolved["restorer"]
        except (GenimgError, OSError, KeyError, TypeError, ValueError, AttributeError):
            return False

    def save(self) -> None:
        """Persist file hashes and fingerprints (only if they changed)."""
        self.hasher.save()
        if self.preview:
            return
        if read_json_dict(self.record_path) != self.recorded:
            data = json.dumps(self.recorded, indent=1, sort_keys=True)
            write_atomic(self.record_path, data.encode())


def _record_key(cfg: ModelConfig) -> str:
    """What a recorded fingerprint belongs to: the name *and* what it points at, so
    re-pointing a name at another model never reuses the old fingerprint."""
    key = f"{cfg.name} = {cfg.source}"
    if cfg.revision:
        key += f" @ {cfg.revision}"
    key += f" (config {cfg.config})" if cfg.config else ""
    return key + (f" ({cfg.prediction_type})" if cfg.prediction_type else "")


def _hub_commit(repo_id: str, revision: str) -> str | None:
    """The commit a hub branch points at now (downloads are allowed, so asking is too)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(repo_id, revision=revision).sha
    except Exception:  # offline, unknown repo, no huggingface_hub: the load will say why
        return None


def model_missing_error(name: str, why: str) -> GenimgError:
    return GenimgError(
        f"model {name!r} not found: {why}. Point 'models: {name}:' in genimg.yaml at a "
        "diffusers folder or a .safetensors file, put the model in the Hugging Face cache, or "
        "set 'allow_downloads: true'; `genimg build --preview` builds with placeholder "
        "pictures and `genimg build --frozen` builds from cached pictures only"
    )
