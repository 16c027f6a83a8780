"""Every key a writer may set, declared once: type, default, check, one-line doc, role.

A gallery spec, a gallery block, a post's front matter and each section of
``genimg.yaml`` is a ``Table`` of ``Key``s. Validation (``check_keys``), defaults,
"did you mean", every message about a value, the cache key's inputs (``Role``) and
the README's key tables (``markdown_table``) all come from these tables, so a new
key is one line here. Renderers declare their own option tables the same way
(``render/faces.py``'s ``FACE_OPTIONS``), found through ``modes.RENDERERS``.

Pure data and checks: no I/O, no torch. Like MkDocs' ``config_options``, but every
error keeps the exact ``file:line`` of the value.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import Location, did_you_mean, has_type, short_repr, text_problem, type_name
from .modes import MODES, TXT2IMG
from .passes import BUILT_IN, Hires, hires_key
from .samplers import REFUSED, SAMPLERS, SAMPLINGS, SCHEDULE_TYPES

SEED_MAX = 2**32 - 1
PROMPT_SYNTAXES = ("plain", "a1111")
NOISES = ("cpu", "nv")
SIZE_MIN, SIZE_MAX = 64, 4096
#: The most pictures ``batch_size: auto`` puts in one batch: past this a GPU is busy anyway.
BATCH_AUTO_MOST = 16
ATTENTION_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")


class Role(enum.Enum):
    """What a spec key does to a picture: what its cache key and derived seed hold."""

    SEED = "pixels, seed"  # shapes the diffusion: in the key and in a derived seed
    PIXELS = "pixels"  # changes the picture: in the key (for the modes that read it)
    PRESENTATION = "presentation"  # how a picture is shown: never in a key
    SETTING = "setting"  # not a spec key (genimg.yaml, front matter, gallery block)


#: ``check(name, value)`` -> the whole message if ``value`` is wrong, else None.
Check = Callable[[str, Any], str | None]
_REQUIRED = object()
_NONE = type(None)  # in a Key's types: the key may be written with no value


@dataclass(frozen=True)
class Key:
    """One key: what a writer may give it, what it is without them, what it means."""

    name: str
    types: tuple[type, ...]
    doc: str
    default: Any = None  # ``REQUIRED``: the key must be given
    check: Check | None = None
    role: Role = Role.SETTING
    convert: Callable[[Any], Any] | None = None  # e.g. ``float`` for ``cfg: 7``
    expected: str | None = None  # how messages name the types, when ``type_name`` won't do
    #: Hashed (into a cache key or derived seed) only when it differs from its default: for
    #: keys added after pictures were made, so adding one re-renders nothing.
    hashed_if_set: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def checked(self, value: Any, where: Location) -> Any:
        """``value`` if it is right for this key (converted), else a GenimgError at ``where``."""
        if value is None and _NONE not in self.types:
            raise where.error(f"{self.name!r} has no value")
        if not has_type(value, self.types):
            raise where.error(f"{self.name!r} must be {self.expected or type_name(self.types)}, "
                              f"got {short_repr(value)}")
        problem = _not_text(value, set())
        if problem:
            raise where.error(f"{self.name!r} holds {problem}, which is not text; remove it")
        if self.check is not None and value is not None:
            problem = self.check(self.name, value)
            if problem:
                raise where.error(problem)
        return self.convert(value) if self.convert is not None else value


def _not_text(value: Any, seen: set[int]) -> str | None:
    """The first string in ``value`` (a string, or strings inside lists and mappings, keys
    too) that is not text, as ``text_problem`` says. Aliases are walked once: a YAML
    alias bomb costs nothing."""
    if isinstance(value, str):
        return text_problem(value)
    if not isinstance(value, list | dict) or id(value) in seen:
        return None
    seen.add(id(value))
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    for item in items:
        problem = _not_text(item, seen)
        if problem:
            return problem
    return None


REQUIRED = _REQUIRED
Table = Mapping[str, Key]


def table(*keys: Key) -> dict[str, Key]:
    return {key.name: key for key in keys}


def check_keys(data: Mapping[Any, Any], keys: Table, what: str, where: Location,
               lines: Mapping[Any, int] | None = None, hint: str = "") -> dict[str, Any]:
    """Check every key of ``data`` (unknown, empty, type, range) and that the required
    ones are there; returns the values as given (``Key.convert`` is the caller's).

    ``where`` is the mapping's own line; ``lines`` gives each key's line."""
    lines = lines or {}
    for name, value in data.items():
        at = Location(where.file, lines.get(name, where.line))
        key = keys.get(name) if isinstance(name, str) else None
        if key is None:
            raise at.error(f"unknown {what} key {short_repr(name)}"
                           f"{did_you_mean(str(name), keys)}{hint}")
        key.checked(value, at)
    for key in keys.values():
        if key.required and key.name not in data:
            raise where.error(f"{what} needs '{key.name}:' ({key.doc})")
    return dict(data)


def defaults_of(keys: Table) -> dict[str, Any]:
    """Each key's default (required keys have none)."""
    return {k.name: k.default for k in keys.values() if not k.required}


# ------------------------------------------------------------------------- checks


def between(low: float, high: float) -> Check:
    def check(name: str, value: Any) -> str | None:
        ok = low <= value <= high
        return None if ok else f"{name!r} must be between {low} and {high}, got {value}"
    return check


def at_least(low: int) -> Check:
    def check(name: str, value: Any) -> str | None:
        return None if value >= low else f"{name!r} must be at least {low}, got {value}"
    return check


def one_of(choices: Iterable[str] | Callable[[], Iterable[str]]) -> Check:
    """The value must be one of ``choices`` (a callable is asked each time)."""
    def check(name: str, value: Any) -> str | None:
        known = list(choices() if callable(choices) else choices)
        if value in known:
            return None
        return (f"unknown {name} {short_repr(value)}{did_you_mean(str(value), known)}; "
                f"expected one of {', '.join(known)}")
    return check


def _fraction(name: str, value: Any) -> str | None:
    return None if 0 < value <= 1 else f"{name!r} must be in (0, 1], got {value}"


def _picture_size(name: str, value: Any) -> str | None:
    if SIZE_MIN <= value <= SIZE_MAX and not value % 8:
        return None
    return f"{name!r} must be a multiple of 8 between {SIZE_MIN} and {SIZE_MAX}, got {value}"


def _word(name: str, value: Any) -> str | None:
    if value.strip() and not any(c.isspace() for c in value):
        return None
    return f"{name!r} must be one word without spaces, got {short_repr(value)}"


def _lora_weights(name: str, value: Any) -> str | None:
    for lora, weight in value.items():
        if not isinstance(lora, str) or not lora.strip():
            return f"{name!r} maps LoRA names to weights, got the name {short_repr(lora)}"
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            return f"{name!r}: the weight of LoRA {lora!r} must be a number, got " \
                   f"{short_repr(weight)}"
    return None


def _hires(name: str, value: Any) -> str | None:
    """The ``hires:`` mapping, each of its keys checked against ``HIRES``."""
    from .errors import GenimgError

    try:
        check_keys(value, HIRES, "hires", Location("", 0))
    except GenimgError as exc:
        return f"{name!r}: {exc.message}"
    return None


def _upscaler(name: str, value: Any) -> str | None:
    if value.strip():
        return None
    return f"{name!r} must be one of {', '.join(BUILT_IN)} or an upscaler file's name"


def _sampler(name: str, value: Any) -> str | None:
    if value in REFUSED:
        return f"genimg cannot draw A1111's {value!r} sampler: {REFUSED[value]}"
    return one_of(SAMPLERS)(name, value)


def _device(name: str, value: Any) -> str | None:
    if value in ("auto", "cpu", "cuda", "mps") or value.startswith("cuda:"):
        return None
    return f"{name!r} must be auto, cpu, cuda, cuda:N or mps, got {short_repr(value)}"


def _batch_size(name: str, value: Any) -> str | None:
    if value == "auto" or (isinstance(value, int) and value >= 1):
        return None
    return f"{name!r} must be a number of at least 1, or auto, got {short_repr(value)}"


def _compile(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or value == "unet":
        return None
    return f"{name!r} must be true, false or unet, got {short_repr(value)}"


def _host_name(name: str, value: Any) -> str | None:
    if value.strip() and not any(c.isspace() or c in "/:@" for c in value.strip()):
        return None
    return f"{name!r} must be a host name like blog.example.com, got {short_repr(value)}"


def _words(name: str, value: Any) -> str | None:
    items = [value] if isinstance(value, str) else value
    if all(has_type(item, (str, int)) for item in items):
        return None
    return f"{name!r} must be a list of words, got {short_repr(value)}"


# --------------------------------------------------------------------- the tables

#: An image of a gallery. ``ImageSpec`` has a field for each (``from`` is ``source``).
SPEC = table(
    Key("prompt", (str,), "what the picture shows (every mode that generates needs one)",
        role=Role.SEED),
    Key("negative_prompt", (str,), "what it must not show", "", role=Role.SEED),
    Key("prompt_syntax", (str,), "`a1111`: prompts read as A1111 reads them (`(word:1.2)`, "
        "`[word]`, `BREAK`, no cut at 75 tokens); `plain`: the text as is, cut at 75 tokens",
        "plain", one_of(PROMPT_SYNTAXES), Role.SEED, hashed_if_set=True),
    Key("seed", (int,), "0 … 2^32−1; absent → derived from the spec, so builds stay "
        "reproducible", check=between(0, SEED_MAX), role=Role.PIXELS),
    Key("noise", (str,), "`nv`: A1111's noise (its NV generator: `torch.randn` on a CUDA GPU, "
        "computed the same on any device); `cpu`: a CPU `torch.Generator` (A1111's RNG: CPU)",
        "cpu", one_of(NOISES), Role.PIXELS, hashed_if_set=True),
    Key("subseed", (int,), "A1111's variation seed, mixed in by `subseed_strength`", 0,
        between(0, SEED_MAX), Role.PIXELS, hashed_if_set=True),
    Key("subseed_strength", (int, float), "A1111's variation strength, 0 … 1 (0: none)", 0.0,
        between(0, 1), Role.PIXELS, float, hashed_if_set=True),
    Key("eta_noise_seed_delta", (int,), "A1111's ENSD: ancestral samplers' noise comes from "
        "seed + this", 0, between(0, SEED_MAX), Role.PIXELS, hashed_if_set=True),
    Key("mode", (str,), "how it is made: " + ", ".join(f"`{m.name}` ({m.doc})"
                                                        for m in MODES.values()),
        TXT2IMG, one_of(MODES), Role.SEED),
    Key("from", (str,), "the `id` of another image anywhere on the site, or a file path "
        "relative to the post", role=Role.PIXELS),
    Key("model", (str,), "a name from `models:` in `genimg.yaml`, or a hub id / folder / "
        "`.safetensors` file", "default", role=Role.PIXELS),
    Key("sampler", (str,), "an A1111 sampler name (see below)", "Euler a", _sampler,
        Role.SEED),
    Key("sampling", (str,), "`a1111`: A1111's k-diffusion samplers drawn by genimg itself, "
        "step for step as k-diffusion (every `schedule_type`, A1111's Brownian noise for the "
        "SDE samplers); `diffusers`: diffusers' schedulers, as before", "diffusers",
        one_of(SAMPLINGS), Role.SEED, hashed_if_set=True),
    Key("schedule_type", (str,), "A1111 >= 1.9's Schedule type: " + ", ".join(
        f"`{name}`" for name in SCHEDULE_TYPES) + " (sigmas as A1111's; absent: the "
        "sampler name alone decides, as before)", check=one_of(SCHEDULE_TYPES),
        role=Role.SEED, hashed_if_set=True),
    Key("steps", (int,), "denoising steps", 20, between(1, 500), Role.SEED),
    Key("cfg", (int, float), "CFG scale: how closely to follow the prompt", 7.0,
        between(0, 50), Role.SEED, float),
    Key("width", (int,), "picture width in pixels", 512, _picture_size, Role.SEED),
    Key("height", (int,), "picture height in pixels", 512, _picture_size, Role.SEED),
    Key("clip_skip", (int,), "CLIP layers to skip, as A1111's Clip skip (1: none, 2: the "
        "penultimate layer)", 1, between(1, 12), Role.SEED, hashed_if_set=True),
    Key("strength", (int, float), "img2img denoising strength, 0 < s ≤ 1", 0.75, _fraction,
        Role.SEED, float),
    Key("restore_faces", (bool,), "run GFPGAN after generation (cached as a second "
        "picture, so toggling it never re-runs diffusion)", False, role=Role.PIXELS,
        convert=bool),
    Key("face_weight", (int, float), "GFPGAN blend weight, 0 … 1", 0.5, between(0, 1),
        Role.PIXELS, float),
    Key("loras", (dict,), "LoRA name → weight, as `<lora:name:weight>` in the prompt "
        "(each file's hash and weight are in the key)", check=_lora_weights,
        role=Role.PIXELS, hashed_if_set=True),
    Key("vae", (str,), "a VAE file replacing the model's, or its name in the models "
        "folder's `VAE/` (its hash is in the key)", role=Role.PIXELS, hashed_if_set=True),
    Key("hires", (dict, _NONE), "A1111's hires fix: the picture upscaled and redrawn, as one "
        "picture (`scale`, `steps`, `denoise`, `upscaler`, `resize_x`, `resize_y`; see "
        "*Hires fix*); txt2img only", check=_hires, role=Role.PIXELS, convert=hires_key,
        hashed_if_set=True),
    Key("refiner", (str, _NONE), "A1111's Refiner: a model (named like `model:`) that takes "
        "over the sampling at `refiner_switch` (SDXL; its hash is in the key)",
        role=Role.PIXELS, hashed_if_set=True),
    Key("refiner_switch", (int, float), "A1111's Refiner switch at: the fraction of the "
        "sampling after which the refiner samples, 0 < s ≤ 1 (1: never)", 0.8, _fraction,
        Role.PIXELS, float, hashed_if_set=True),
    Key("id", (str,), "a name other images' `from:` can use", check=_word,
        role=Role.PRESENTATION),
    Key("caption", (str,), "text under the picture", role=Role.PRESENTATION),
    Key("alt", (str,), "the picture's alt text (default: its prompt)", role=Role.PRESENTATION),
)
#: ``hires:``, A1111's hires fix (``passes.Hires``).
HIRES = table(
    Key("scale", (int, float), "A1111's Hires upscale: the first pass's size times this",
        Hires.scale, between(1, 8), convert=float),
    Key("steps", (int,), "A1111's Hires steps (0: as many as `steps`)", Hires.steps,
        between(0, 500)),
    Key("denoise", (int, float), "A1111's Denoising strength of the second pass, 0 < d ≤ 1",
        Hires.denoise, _fraction, convert=float),
    Key("upscaler", (str,), "A1111's Hires upscaler: " + ", ".join(f"`{name}`" for name in
        BUILT_IN) + ", or an ESRGAN-family file (its name in the models folder's `ESRGAN/`, "
        "or a path)", Hires.upscaler, _upscaler),
    Key("resize_x", (int,), "A1111's Resize width to (0: from `resize_y`'s ratio); with "
        "either, `scale` is not used", Hires.resize_x, between(0, SIZE_MAX)),
    Key("resize_y", (int,), "A1111's Resize height to (0: from `resize_x`'s ratio)",
        Hires.resize_y, between(0, SIZE_MAX)),
)
#: Keys that belong to one image: never a default, never in a cache key.
PRESENTATION_KEYS = tuple(k.name for k in SPEC.values() if k.role is Role.PRESENTATION)

#: A gallery block written as a mapping (a plain list is its ``images``).
GALLERY = table(
    Key("images", (list, _NONE), "the pictures, in a row"),
    Key("columns", (int, _NONE), "pictures per row, 1 … 12", check=between(1, 12)),
    Key("defaults", (dict, _NONE), "spec keys every image of the block starts from"),
    Key("caption", (str, _NONE), "text under the row"),
    Key("grid", (dict,), "a comparison grid: the spec every cell starts from (see "
        "*Comparison grids*)"),
    Key("x", (dict,), "a grid's columns: one spec key (or `prompt_sr`) and its values"),
    Key("y", (dict,), "a grid's rows, like `x`"),
    Key("z", (dict,), "a grid's stacked grids, like `x`"),
    Key("prompt_matrix", (bool,), "A1111's prompt matrix: the prompt's `|` parts on and "
        "off, over `x` and `y`", False),
    Key("limit", (int,), "most pictures the grid may have (default: `grid_limit` of "
        "`genimg.yaml`)", check=at_least(1)),
    Key("compare", (str, _NONE), "`slider` shows each picture made from another as a "
        "before/after slider (default: `side-by-side`, the slider one click away)",
        check=one_of(("side-by-side", "slider"))),
)
#: The gallery keys only a grid has.
GRID_KEYS = ("x", "y", "z", "prompt_matrix", "limit")

#: A post's YAML front matter.
FRONT_MATTER = table(
    Key("title", (str, int, float), "the post's title (default: from the file name)",
        expected="text"),
    Key("date", (str, dt.date, _NONE), "2022-10-30 (default: from a YYYY-MM-DD- file name)",
        expected="a date like 2022-10-30"),
    Key("tags", (list, str, _NONE), "a list of words", check=_words),
    Key("draft", (bool,), "shown only by `build/serve --drafts`", False),
    Key("slug", (str, _NONE), "the post's URL name (default: from the file name)"),
    Key("summary", (str, _NONE), "the index and feed text (default: the first paragraph)"),
    Key("extra", (dict, _NONE), "anything for a custom theme"),
)

#: ``genimg.yaml``.
CONFIG = table(
    Key("title", (str,), "the blog's name", "My genimg blog"),
    Key("base_url", (str,), "where the site is published; a sub-path works", "/"),
    Key("language", (str,), "the pages' language", "en"),
    Key("author", (str,), "the feed's and pages' author", ""),
    Key("description", (str,), "the index page's and feed's description", ""),
    Key("posts_dir", (str,), "folder of the posts", "posts"),
    Key("output_dir", (str,), "folder the site is written to (genimg owns it)", "site"),
    Key("cache_dir", (str,), "folder of the picture cache and build state", ".genimg"),
    Key("theme_dir", (str,), "folder of templates/static files overriding the theme's",
        "theme"),
    Key("per_page", (int,), "posts per index page", 10, at_least(1)),
    Key("grid_limit", (int,), "most pictures a comparison grid may have (a grid's `limit:` "
        "overrides it)", 100, at_least(1)),
    Key("search", (bool,), "a search page and its static index (needs "
        "`pip install 'genimg[search]'`; skipped with a note without it)", True),
    Key("allow_downloads", (bool,), "may a build download a hub model", False),
    Key("device", (str,), "auto, cpu, cuda, cuda:N or mps", "auto", _device),
    Key("dtype", (str,), "auto (fp16 on CUDA), float32, float16 or bfloat16", "auto",
        one_of(("auto", "float32", "float16", "bfloat16"))),
    Key("cpu_offload", (bool,), "keep model parts on the CPU until used (less GPU memory)",
        False),
    Key("vae_tiling", (bool,), "decode big pictures tile by tile (less GPU memory; other "
        "pixels above the VAE's sample size, 512 to 1024 px)", False),
    Key("vae_slicing", (bool,), "decode a batch one picture at a time (less GPU memory, same "
        "pixels)", False),
    Key("batch_size", (int, str), "pictures rendered at once; `auto`: as many as fit the free "
        "GPU memory for the model and size at hand (4 on a CPU)", 4, _batch_size,
        expected="a number or auto"),
    Key("originals", (str,), "full-size pictures in the site: `png` (as rendered), `webp` "
        "(lossless: same pixels, smaller) or `none` (thumbnails only; "
        "see `originals_url`); each keeps its A1111 infotext", "png",
        one_of(("png", "webp", "none"))),
    Key("originals_url", (str, _NONE), "with `originals: none`, where the PNGs are published "
        "instead (a URL the site links `<name>.png` under)"),
    Key("models_dir", (str,), "an A1111 (or ComfyUI) models folder: a spec's `model:` may "
        "name a checkpoint of its `Stable-diffusion/` (`checkpoints/`) or give its short hash; "
        "`<lora:name>` finds `Lora/` (`loras/`) files"),
    Key("models", (dict,), "name → hub id, folder, `.safetensors` file or a mapping "
        "(`source`, `config`, `revision`)"),
    Key("face_restorer", (dict,), "GFPGAN and facexlib weights (`model`, `detection`, "
        "`parsing`, `options`)"),
    Key("defaults", (dict,), "spec keys every image starts from"),
    Key("publish", (dict,), "`genimg publish` settings (`remote`, `branch`, `cname`, "
        "`message`)"),
    Key("render", (dict,), "where pictures render: `cluster` (a Ray address), `workers` "
        "(how many); needs `genimg[ray]`"),
    Key("speed", (dict,), "opt-in GPU speed-ups (`compile`, `channels_last`, `fuse_qkv`, "
        "`attention`, `tf32`; see *Speed*)"),
)
#: The folders of ``CONFIG``: paths relative to the blog.
FOLDER_KEYS = ("posts_dir", "output_dir", "cache_dir", "theme_dir")

#: A model of ``models:`` written as a mapping.
MODEL = table(
    Key("source", (str,), "hub id, folder or file", REQUIRED),
    Key("config", (str, _NONE), "a local diffusers folder for a single file's configs"),
    Key("revision", (str, _NONE), "a hub branch, tag or commit"),
    Key("vae", (str, _NONE), "a VAE file for this model, or its name in the models folder's "
        "`VAE/` (a spec's `vae:` wins)"),
    Key("prediction_type", (str, _NONE), "a single file's `epsilon` or `v_prediction` "
        "(default: from its tensors; SD 2.x by a test run)",
        check=one_of(("epsilon", "v_prediction"))),
)

#: ``face_restorer:``.
FACE_RESTORER = table(
    Key("model", (str,), "a file path: GFPGANv1.4.pth", REQUIRED),
    Key("detection", (str,), "a file path: detection_Resnet50_Final.pth", REQUIRED),
    Key("parsing", (str,), "a file path: parsing_parsenet.pth", REQUIRED),
    Key("options", (dict, _NONE), "the networks' shapes (see `render/faces.py`)"),
)

#: ``render:``: render on Ray workers (``generator.cluster``) instead of in the build.
RENDER = table(
    Key("cluster", (str, _NONE), "a running Ray cluster's address (`ray start --head` "
        "prints it), or `auto`"),
    Key("workers", (int, _NONE), "Ray workers to start (default: one per GPU, else one per "
        "node)", check=at_least(1)),
)

#: ``speed:``: what a renderer does to go faster. An option that changes the pixels' bits
#: (role PIXELS) is in the key of every generated picture, only when set (``hashed_if_set``:
#: a blog without ``speed:`` keeps its keys); one that does not (``fuse_qkv``: the same
#: pictures, bit for bit, tests/test_speed.py) never is.
SPEED = table(
    Key("compile", (bool, str), "`true`: `torch.compile` the UNet's repeated transformer "
        "blocks (regional: compiles in seconds to a minute, once per model and size per "
        "build); `unet`: the whole UNet (slower to compile, faster to run)", False,
        _compile, Role.PIXELS, hashed_if_set=True, expected="true, false or unet"),
    Key("channels_last", (bool,), "UNet and VAE in channels-last memory format (faster "
        "convolutions on GPUs)", False, role=Role.PIXELS, hashed_if_set=True),
    Key("fuse_qkv", (bool,), "one matrix product for attention's query, key and value "
        "(the same pictures, bit for bit; off for batches with LoRAs)", False),
    Key("attention", (str,), "the scaled-dot-product attention kernel: `auto` (torch's "
        "choice), " + ", ".join(f"`{k}`" for k in ATTENTION_KERNELS[1:]), "auto",
        one_of(ATTENTION_KERNELS), Role.PIXELS, hashed_if_set=True),
    Key("tf32", (bool,), "TensorFloat-32 matrix products on NVIDIA GPUs (float32 parts "
        "only: with float16 that is the upcast VAE)", False, role=Role.PIXELS,
        hashed_if_set=True),
)

#: ``publish:``.
PUBLISH = table(
    Key("remote", (str,), "git remote to push to", "origin"),
    Key("branch", (str,), "branch the site is committed to", "gh-pages"),
    Key("cname", (str, _NONE), "custom domain written to CNAME", check=_host_name),
    Key("message", (str,), "commit message", "Publish site"),
)


def _shown_default(key: Key) -> str:
    if key.required:
        return "required"
    if key.default is None:
        return ""
    if key.default == "":
        return "empty"
    if isinstance(key.default, bool):
        return f"`{str(key.default).lower()}`"
    if isinstance(key.default, float) and key.default.is_integer():
        return f"`{key.default:g}`"
    return f"`{key.default}`"


_IN_KEY = {Role.SEED: "yes, and in a derived seed", Role.PIXELS: "yes",
           Role.PRESENTATION: "never", Role.SETTING: "never"}


def markdown_table(keys: Table) -> str:
    """The README's table of ``keys``: one row each (spec keys say what their key holds)."""
    spec = any(key.role is not Role.SETTING for key in keys.values())
    rows = ["| key | meaning | default |" + (" in the cache key |" if spec else ""),
            "| --- | --- | --- |" + (" --- |" if spec else "")]
    for key in keys.values():
        row = f"| `{key.name}` | {key.doc} | {_shown_default(key)} |"
        rows.append(row + (f" {_IN_KEY[key.role]} |" if spec else ""))
    return "\n".join(rows)


if __name__ == "__main__":  # ``python -m generator.schema``: the README's tables
    print(markdown_table(SPEC), markdown_table(CONFIG), markdown_table(HIRES),
          markdown_table(SPEED), sep="\n\n")
