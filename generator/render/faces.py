"""GFPGAN face restoration: detect, align, restore and paste back each face.

This is the pipeline of ``gfpgan.GFPGANer.enhance`` (facexlib's RetinaFace finds
faces and five landmarks, each face is warped to the FFHQ template, GFPGAN
restores it, and ParseNet's face mask pastes it back), with one difference that
matters here: we build the three networks ourselves from local files. GFPGANer
and facexlib's ``init_*_model`` helpers download weights from GitHub when a
file is missing; a build must never do that, so they are never called.

torch, gfpgan and facexlib are imported inside functions only: importing this
module stays cheap, and a build whose pictures are all cached never loads them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenimgError, Location, has_type, short_repr
from ..modes import RESTORE
from ..schema import Key, check_keys, defaults_of, one_of, table

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from ..config import SiteConfig
    from ..models import FaceRestorerRef
from .base import RenderTask, StepCallback
from .device import pick_device

GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases"
FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases"

DETECTION_NETWORKS = ("resnet50", "mobile0.25")


def _positive(name: str, value: Any) -> str | None:
    return None if value > 0 else f"{name!r} must be more than 0, got {value}"


def _power_of_two(name: str, value: Any) -> str | None:
    if value >= 16 and not value & (value - 1):
        return None
    return f"{name!r} must be a power of two, at least 16, got {value}"


def _channel_range(name: str, value: Any) -> str | None:
    if len(value) == 2 and all(has_type(v, (int,)) and v > 0 for v in value):
        return None
    return f"{name!r} must be two positive integers like [32, 256], got {short_repr(value)}"


#: ``face_restorer: options:``: the real GFPGANv1.4 with facexlib's RetinaFace-ResNet50
#: detector and ParseNet parser by default. Small values describe the tiny
#: random-weight networks the tests build. Only GFPGAN's clean architecture (v1.2-v1.4):
#: the original and bilinear ones need basicsr's compiled CUDA ops, which PyPI's lacks.
FACE_OPTIONS = table(
    Key("out_size", (int,), "GFPGAN's face size (GFPGANv1Clean arguments follow)", 512,
        _power_of_two),
    Key("num_style_feat", (int,), "StyleGAN2 style features", 512, _positive),
    Key("channel_multiplier", (int,), "StyleGAN2 channel multiplier", 2, _positive),
    Key("narrow", (int, float), "StyleGAN2 channel narrowing", 1, _positive),
    Key("num_mlp", (int,), "StyleGAN2 mapping layers", 8, _positive),
    Key("different_w", (bool,), "a style vector per layer", True),
    Key("input_is_latent", (bool,), "styles are latents", True),
    Key("sft_half", (bool,), "SFT on half the channels", True),
    Key("detection_network", (str,), "facexlib RetinaFace backbone", "resnet50",
        one_of(DETECTION_NETWORKS)),
    # facexlib ParseNet (in/out size are always 512: the helper feeds it 512×512)
    Key("parsing_base_ch", (int,), "ParseNet base channels", 64, _positive),
    Key("parsing_res_depth", (int,), "ParseNet residual depth", 10, _positive),
    Key("parsing_min_feat_size", (int,), "ParseNet smallest feature map", 32, _positive),
    Key("parsing_ch_range", (list,), "ParseNet channel range", [32, 256], _channel_range),
)
DEFAULT_OPTIONS: dict[str, Any] = defaults_of(FACE_OPTIONS)


def face_options(options: Mapping[str, Any], where: Location | None = None,
                 lines: Mapping[Any, int] | None = None) -> dict[str, Any]:
    """``options`` merged over the defaults and checked, so a typo fails before loading."""
    where = where or Location("", 0)
    check_keys(options, FACE_OPTIONS, "face_restorer option", where, lines)
    merged = {**DEFAULT_OPTIONS, **options}
    merged["parsing_ch_range"] = list(merged["parsing_ch_range"])
    return merged


@dataclass(frozen=True)
class _Weights:
    """One of the three files, described for error messages."""

    what: str
    key: str
    hint: str

    def error(self, path: Path, problem: str) -> GenimgError:
        return GenimgError(f"{self.what} (face_restorer: {self.key}:) {problem}; {self.hint}", path)


GFPGAN_WEIGHTS = _Weights(
    "GFPGAN weights", "model",
    f"download GFPGANv1.4.pth from {GFPGAN_RELEASES} (v1.2 and v1.3 work too)")
DETECTION_WEIGHTS = _Weights(
    "face detection weights", "detection",
    f"download detection_Resnet50_Final.pth from {FACEXLIB_RELEASES} "
    "(detection_mobilenet0.25_Final.pth with 'detection_network: mobile0.25')")
PARSING_WEIGHTS = _Weights(
    "face parsing weights", "parsing", f"download parsing_parsenet.pth from {FACEXLIB_RELEASES}")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def load_state_dict(path: Path, weights: _Weights) -> dict[str, torch.Tensor]:
    """Tensors from a ``.pth`` (weights only: no pickled code runs) or ``.safetensors``."""
    import torch

    if not path.is_file():
        raise weights.error(path, "not found")
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file raises anything from EOFError to UnpicklingError
        raise weights.error(
            path, f"cannot be read, the file is damaged or not a checkpoint "
                  f"({type(exc).__name__}: {_first_line(exc)})") from None
    if isinstance(data, Mapping):
        for key in ("params_ema", "params"):  # GFPGAN training checkpoints nest the weights
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise weights.error(path, "holds no state dict of tensors")
    # Weights saved from DataParallel carry a 'module.' prefix (as facexlib strips it).
    return {k.removeprefix("module."): v for k, v in data.items()}


def _load_into(net: torch.nn.Module, path: Path, weights: _Weights) -> None:
    try:
        net.load_state_dict(load_state_dict(path, weights), strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:3]) or _first_line(exc)
        raise weights.error(
            path, f"do not fit the network described by face_restorer options ({detail[:300]})"
        ) from None


@contextlib.contextmanager
def _replaced(module: Any, **names: Any) -> Iterator[None]:
    """Rebind module globals for a moment, then put the originals back."""
    saved = {name: getattr(module, name) for name in names}
    try:
        for name, value in names.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


@dataclass
class _Nets:
    """The loaded networks of one restorer, on one device."""

    fingerprint: str
    device: torch.device
    gfpgan: torch.nn.Module
    helper: Any  # facexlib FaceRestoreHelper holding the detector and the parser


def load_networks(ref: FaceRestorerRef, device: str | torch.device = "auto",
                  config_file: Path | None = None) -> _Nets:
    """Build GFPGAN, RetinaFace and ParseNet from ``ref``'s local files; never download.

    ``device`` is a torch device or a ``device:`` value of genimg.yaml.
    """
    # Cheap checks first: a typo or a missing file fails before torch is imported.
    opts = face_options(ref.options, Location(str(config_file or ""), 0))
    for path, weights in ((ref.model, GFPGAN_WEIGHTS), (ref.detection, DETECTION_WEIGHTS),
                          (ref.parsing, PARSING_WEIGHTS)):
        if not Path(path).is_file():
            raise weights.error(Path(path), "not found")
    if isinstance(device, str):
        import torch

        device = torch.device(pick_device(device, config_file))

    _import_gfpgan()
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet
    from facexlib.utils import face_restoration_helper

    gfpgan = _build_gfpgan(opts)
    _load_into(gfpgan, Path(ref.model), GFPGAN_WEIGHTS)

    with warnings.catch_warnings():  # torchvision: resnet50(pretrained=False) is deprecated
        warnings.simplefilter("ignore", UserWarning)
        detector = RetinaFace(network_name=opts["detection_network"], half=False, device=device)
    _load_into(detector, Path(ref.detection), DETECTION_WEIGHTS)

    parser = ParseNet(in_size=512, out_size=512, parsing_ch=19,
                      base_ch=opts["parsing_base_ch"], res_depth=opts["parsing_res_depth"],
                      min_feat_size=opts["parsing_min_feat_size"],
                      ch_range=list(opts["parsing_ch_range"]))
    _load_into(parser, Path(ref.parsing), PARSING_WEIGHTS)

    nets = [net.eval().to(device) for net in (gfpgan, detector, parser)]
    for net in nets:
        net.requires_grad_(False)
    # FaceRestoreHelper's constructor calls init_detection_model/init_parsing_model,
    # which download weights. Hand it our networks instead, so it cannot.
    with _replaced(face_restoration_helper,
                   init_detection_model=lambda *args, **kwargs: detector,
                   init_parsing_model=lambda *args, **kwargs: parser):
        helper = face_restoration_helper.FaceRestoreHelper(
            1, face_size=opts["out_size"], crop_ratio=(1, 1),
            det_model=f"retinaface_{opts['detection_network']}", save_ext="png",
            use_parse=True, device=device, model_rootpath=None)
    assert helper.face_det is detector and helper.face_parse is parser
    return _Nets(ref.fingerprint, device, gfpgan, helper)


def _import_gfpgan() -> None:
    """Import gfpgan (and basicsr) through the compat shim, without their import noise."""
    from .compat import ensure_gfpgan_importable

    ensure_gfpgan_importable()
    with warnings.catch_warnings():  # basicsr imports scipy.ndimage.filters (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        import gfpgan  # noqa: F401


def _build_gfpgan(opts: Mapping[str, Any]) -> torch.nn.Module:
    """The network ``GFPGANer(arch="clean")`` builds, with random weights."""
    _import_gfpgan()
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    return GFPGANv1Clean(
        out_size=opts["out_size"], num_style_feat=opts["num_style_feat"],
        channel_multiplier=opts["channel_multiplier"], decoder_load_path=None,
        fix_decoder=False, num_mlp=opts["num_mlp"],
        input_is_latent=opts["input_is_latent"], different_w=opts["different_w"],
        narrow=opts["narrow"], sft_half=opts["sft_half"])


def restore_faces(nets: _Nets, image: Image.Image, weight: float) -> Image.Image:
    """Restore every face in ``image``; ``weight`` blends original (0) to restored (1).

    GFPGAN's own ``weight`` argument is ignored by its networks, so the blend is
    done here, over the whole pasted-back picture (A1111's "visibility"). Noise
    comes from the buffers stored in the checkpoint, not from the RNG, so the same
    picture restores to the same pixels every time, as the cache needs.
    """
    import numpy as np
    import torch
    from basicsr.utils import img2tensor, tensor2img
    from PIL import Image
    from torchvision.transforms.functional import normalize

    rgb = np.asarray(image.convert("RGB"))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    helper = nets.helper
    helper.clean_all()
    try:
        with torch.no_grad():
            helper.read_image(bgr)
            # eye distance < 5 px: side or tiny faces, which GFPGAN only smears
            helper.get_face_landmarks_5(only_center_face=False, eye_dist_threshold=5)
            if not helper.all_landmarks_5:
                return image.copy()
            helper.align_warp_face()
            for face in helper.cropped_faces:
                tensor = img2tensor(face / 255.0, bgr2rgb=True, float32=True)
                normalize(tensor, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), inplace=True)
                out = nets.gfpgan(tensor.unsqueeze(0).to(nets.device), return_rgb=False,
                                  randomize_noise=False)[0]
                restored = tensor2img(out.squeeze(0).float().cpu(), rgb2bgr=True, min_max=(-1, 1))
                helper.add_restored_face(restored.astype("uint8"))
            helper.get_inverse_affine(None)
            pasted = helper.paste_faces_to_input_image()
    finally:
        helper.clean_all()  # drop this picture's arrays
    return Image.fromarray(_blend(bgr, pasted, weight)[:, :, ::-1].copy(), "RGB")


def _blend(original: np.ndarray, restored: np.ndarray, weight: float) -> np.ndarray:
    """``original + weight·(restored − original)``: exact where nothing was pasted."""
    import numpy as np

    if weight >= 1:
        return restored.astype(np.uint8)
    base = original.astype(np.float32)
    mixed = base + np.float32(weight) * (restored.astype(np.float32) - base)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


class FaceRestorer:
    """The renderer for ``mode: restore`` tasks (and ``restore_faces`` steps)."""

    def __init__(self, config: SiteConfig):
        self.config = config
        self._nets: _Nets | None = None

    def _networks(self, ref: FaceRestorerRef) -> _Nets:
        """Load once, on the first task; again only if the weights changed meanwhile."""
        if self._nets is None or self._nets.fingerprint != ref.fingerprint:
            self.close()
            self._nets = load_networks(ref, self.config.device, self.config.file)
        return self._nets

    def render(
        self, tasks: Sequence[RenderTask], on_step: StepCallback
    ) -> Iterator[tuple[RenderTask, Image.Image]]:
        """Restore each task's ``source`` picture; a picture without faces comes back as is."""
        for task in tasks:
            spec = task.spec
            if spec.mode != RESTORE and not spec.restore_faces:
                raise GenimgError(f"the face restorer cannot render a {spec.mode!r} picture",
                                  spec.location.file, spec.location.line)
            if task.source is None or task.restorer is None:
                raise GenimgError("face restoration needs the source picture and the restorer",
                                  spec.location.file, spec.location.line)
            if task.restorer.problem:
                raise GenimgError(task.restorer.problem, spec.location.file, spec.location.line)
            nets = self._networks(task.restorer)
            picture = restore_faces(nets, task.source, spec.face_weight)
            on_step(1)
            yield task, picture

    def close(self) -> None:
        """Drop the networks (and the GPU memory they hold)."""
        nets, self._nets = self._nets, None
        if nets is not None and nets.device.type == "cuda":
            import torch

            del nets
            torch.cuda.empty_cache()
