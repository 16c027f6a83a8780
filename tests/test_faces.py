"""GFPGAN face restoration on tiny random-weight networks (no GPU, no network)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from generator.config import SiteConfig
from generator.errors import GenimgError, Location
from generator.models import FaceRestorerRef
from generator.render.base import RenderTask
from generator.specs import parse_image
from tests.helpers import REPO


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (nothing imported yet) from the repo root."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


# --- pure Python: no torch -------------------------------------------------------------


def test_importing_faces_does_not_import_torch() -> None:
    result = run_python("""
        import sys
        import generator.render.faces, generator.render.compat
        from generator.render.faces import FaceRestorer, face_options
        face_options({"out_size": 64})
        heavy = [m for m in ("torch", "torchvision", "gfpgan", "facexlib", "basicsr", "cv2")
                 if m in sys.modules]
        assert not heavy, heavy
    """)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.render
def test_shim_is_what_makes_gfpgan_importable() -> None:
    result = run_python("""
        import importlib.util, sys
        name = "torchvision.transforms.functional_tensor"
        if importlib.util.find_spec(name) is not None:
            print("SKIP: this torchvision still has", name)
            raise SystemExit(0)
        try:
            import gfpgan
        except ModuleNotFoundError as exc:
            assert exc.name == name, exc
        else:
            raise AssertionError("gfpgan imported without the shim")
        for mod in [m for m in sys.modules if m.split(".")[0] in ("gfpgan", "basicsr")]:
            del sys.modules[mod]
        from generator.render.compat import ensure_gfpgan_importable
        ensure_gfpgan_importable()
        ensure_gfpgan_importable()  # idempotent
        import gfpgan
        from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
        import torchvision.transforms.functional as F
        from torchvision.transforms.functional_tensor import rgb_to_grayscale
        assert rgb_to_grayscale is F.rgb_to_grayscale
        assert sys.modules[name].to_tensor is F.to_tensor  # everything else forwards too
        print("OK")
    """)
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("SKIP"):
        pytest.skip(result.stdout.strip())
    assert result.stdout.strip() == "OK"


def test_shim_leaves_a_real_module_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from generator.render import compat

    monkeypatch.delitem(sys.modules, compat.REMOVED_MODULE, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    compat.ensure_gfpgan_importable()
    assert compat.REMOVED_MODULE not in sys.modules


def test_options_are_checked_before_loading() -> None:
    from generator.render.faces import DEFAULT_OPTIONS, face_options

    assert face_options({}) == DEFAULT_OPTIONS
    assert face_options({"out_size": 64, "narrow": 0.5})["out_size"] == 64
    with pytest.raises(GenimgError, match=r"genimg.yaml:3: unknown face_restorer option key "
                       r"'out_sise' \(did you mean 'out_size'\?\)"):
        face_options({"out_sise": 64}, Location("genimg.yaml", 1), {"out_sise": 3})
    with pytest.raises(GenimgError, match="power of two"):
        face_options({"out_size": 100})
    with pytest.raises(GenimgError, match="'channel_multiplier' must be an integer, got '2'"):
        face_options({"channel_multiplier": "2"})
    with pytest.raises(GenimgError, match="unknown detection_network 'yolo'; expected one of"):
        face_options({"detection_network": "yolo"})
    with pytest.raises(GenimgError, match="unknown face_restorer option key 'arch'"):
        face_options({"arch": "RestoreFormer"})


# --- the real pipeline on tiny networks ------------------------------------------------


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Tiny networks gain nothing from threads, and on a busy 2-core machine torch's
    thread pool makes a 0.2 s restoration take seconds; restored after this module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, single_thread: None) -> dict[str, Any]:
    from tests.tinyfaces import make_face_restorer

    return make_face_restorer(tmp_path_factory.mktemp("faces"))


@pytest.fixture(scope="module")
def faceless(tmp_path_factory: pytest.TempPathFactory, single_thread: None) -> dict[str, Any]:
    from tests.tinyfaces import make_face_restorer

    return make_face_restorer(tmp_path_factory.mktemp("faceless"), find_face=False)


def ref_of(cfg: dict[str, Any], **paths: Path) -> FaceRestorerRef:
    files = {k: Path(cfg[k]) for k in ("model", "detection", "parsing")} | paths
    return FaceRestorerRef(files["model"], files["detection"], files["parsing"],
                           dict(cfg["options"]), "sha256:" + "|".join(map(str, files.values())))


def task_of(ref: FaceRestorerRef, source: Image.Image, weight: float = 0.5,
            key: str = "k") -> RenderTask:
    spec = parse_image({"mode": "restore", "from": "face.png", "face_weight": weight},
                       Location("posts/p.md", 7))
    return RenderTask(key=key, spec=spec, restorer=ref, source=source)


def picture(seed: int = 1) -> Image.Image:
    import numpy as np

    from tests.tinyfaces import SIZE

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), "RGB")


def restorer(tmp_path: Path) -> Any:
    from generator.render.faces import FaceRestorer

    return FaceRestorer(SiteConfig(root=tmp_path, device="cpu", file=tmp_path / "genimg.yaml"))


def restore(tmp_path: Path, ref: FaceRestorerRef, source: Image.Image,
            weight: float = 0.5) -> Image.Image:
    ((_, out),) = list(restorer(tmp_path).render([task_of(ref, source, weight)], lambda n: None))
    return out


def diff_box(a: Image.Image, b: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom), exclusive, of the pixels that differ."""
    from PIL import ImageChops

    return ImageChops.difference(a, b).getbbox()


@pytest.mark.slow
@pytest.mark.render
def test_restores_the_face_and_nothing_else(tiny: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.render import faces
    from tests.tinyfaces import face_box

    loads = []
    real_load = faces.load_networks
    monkeypatch.setattr(faces, "load_networks",
                        lambda *a, **k: loads.append(1) or real_load(*a, **k))
    ref = ref_of(tiny)
    sources = [picture(1), picture(2)]
    tasks = [task_of(ref, src, 1.0, key=f"k{i}") for i, src in enumerate(sources)]
    steps: list[int] = []
    results = list(restorer(tmp_path).render(tasks, steps.append))

    assert [t.key for t, _ in results] == ["k0", "k1"]
    assert steps == [1, 1]
    assert loads == [1]  # the networks load once per FaceRestorer
    left, top, right, bottom = face_box()
    for src, (_, out) in zip(sources, results, strict=True):
        assert out.size == src.size and out.mode == "RGB"
        changed = diff_box(src, out)
        assert changed is not None, "the face was not restored"
        # every changed pixel lies in the face crop; the face's centre did change
        assert left <= changed[0] and top <= changed[1]
        assert changed[2] <= right + 1 and changed[3] <= bottom + 1
        centre = src.crop((left + 16, top + 16, right - 16, bottom - 16))
        assert diff_box(centre, out.crop((left + 16, top + 16, right - 16, bottom - 16)))


@pytest.mark.slow
@pytest.mark.render
def test_face_weight_blends_original_and_restored(tiny: dict[str, Any], tmp_path: Path) -> None:
    import numpy as np

    ref, src = ref_of(tiny), picture(3)
    none, half, full = (restore(tmp_path, ref, src, w) for w in (0.0, 0.5, 1.0))
    assert none.tobytes() == src.tobytes()
    assert full.tobytes() != src.tobytes()
    a, h, f = (np.asarray(x, dtype=np.int16) for x in (src, half, full))
    assert np.abs(h - (a + f) / 2).max() <= 1  # halfway, up to rounding
    assert half.tobytes() not in (src.tobytes(), full.tobytes())


@pytest.mark.slow
@pytest.mark.render
def test_restoration_is_deterministic(tiny: dict[str, Any], tmp_path: Path) -> None:
    ref, src = ref_of(tiny), picture(4)
    assert restore(tmp_path, ref, src).tobytes() == restore(tmp_path, ref, src).tobytes()


@pytest.mark.slow
@pytest.mark.render
def test_picture_without_a_face_comes_back_unchanged(faceless: dict[str, Any],
                                                     tmp_path: Path) -> None:
    src = picture(5)
    out = restore(tmp_path, ref_of(faceless), src, 1.0)
    assert out.tobytes() == src.tobytes() and out.size == src.size


@pytest.mark.slow
@pytest.mark.render
def test_nothing_is_downloaded(tiny: dict[str, Any], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.render.compat import ensure_gfpgan_importable

    ensure_gfpgan_importable()
    import basicsr.utils.download_util
    import facexlib.detection
    import facexlib.parsing
    import facexlib.utils
    import facexlib.utils.misc
    import gfpgan.utils
    import torch.hub

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"download attempted: {args} {kwargs}")

    for module, name in [
        (basicsr.utils.download_util, "load_file_from_url"),
        (gfpgan.utils, "load_file_from_url"),
        (facexlib.utils, "load_file_from_url"),
        (facexlib.utils.misc, "load_file_from_url"),
        (facexlib.detection, "load_file_from_url"),  # what init_detection_model calls
        (facexlib.parsing, "load_file_from_url"),  # what init_parsing_model calls
        (torch.hub, "download_url_to_file"),
        (torch.hub, "load_state_dict_from_url"),
        (socket.socket, "connect"),
        (socket, "create_connection"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    src = picture(6)
    assert restore(tmp_path, ref_of(tiny), src, 1.0).tobytes() != src.tobytes()


@pytest.mark.parametrize(("key", "where"), [
    ("model", "github.com/TencentARC/GFPGAN/releases"),
    ("detection", "github.com/xinntao/facexlib/releases"),
    ("parsing", "github.com/xinntao/facexlib/releases"),
])
def test_missing_weights_say_which_file_and_where_to_get_it(tmp_path: Path, key: str,
                                                            where: str) -> None:
    """Fails before torch is imported: this test stays fast, and needs no render extras."""
    # checked before torch is imported: placeholders stand in for the other two files
    cfg: dict[str, Any] = {"options": {}}
    for name in ("model", "detection", "parsing"):
        cfg[name] = tmp_path / f"{name}.pth"
        cfg[name].write_bytes(b"")
    missing = tmp_path / f"no-{key}.pth"
    with pytest.raises(GenimgError) as info:
        restore(tmp_path, ref_of(cfg, **{key: missing}), Image.new("RGB", (64, 64)))
    message = str(info.value)
    assert message.startswith(f"{missing}: ")
    assert where in message and "not found" in message and f"face_restorer: {key}:" in message


@pytest.mark.slow
@pytest.mark.render
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    from generator.render.device import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(GenimgError, match="no CUDA GPU"):
        pick_device("cuda", tmp_path / "genimg.yaml")
    assert pick_device("auto") in ("cpu", "mps")


def test_an_unusable_restorer_says_why(tmp_path: Path) -> None:
    ref = FaceRestorerRef(Path(), Path(), Path(), {}, "recorded", problem="no face_restorer")
    with pytest.raises(GenimgError, match=r"^posts/p.md:7: no face_restorer$"):
        restore(tmp_path, ref, Image.new("RGB", (64, 64)))  # no NumPy: no render extras


@pytest.mark.slow
@pytest.mark.render
@pytest.mark.parametrize("key", ["model", "detection", "parsing"])
@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_corrupt_weights_name_the_file(tiny: dict[str, Any], tmp_path: Path, key: str,
                                       content: bytes) -> None:
    bad = tmp_path / f"bad-{key}.pth"
    bad.write_bytes(content)
    with pytest.raises(GenimgError) as info:
        restore(tmp_path, ref_of(tiny, **{key: bad}), picture())
    assert str(bad) in str(info.value) and "cannot be read" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.slow
@pytest.mark.render
def test_truncated_checkpoint_names_the_file(tiny: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(Path(tiny["model"]).read_bytes()[:5000])
    with pytest.raises(GenimgError, match="cannot be read") as info:
        restore(tmp_path, ref_of(tiny, model=bad), picture())
    assert str(bad) in str(info.value)


@pytest.mark.slow
@pytest.mark.render
def test_weights_of_another_architecture_are_a_clear_error(tiny: dict[str, Any],
                                                           tmp_path: Path) -> None:
    ref = ref_of(tiny)
    swapped = FaceRestorerRef(ref.detection, ref.model, ref.parsing, ref.options, "x")
    with pytest.raises(GenimgError, match="do not fit the network") as info:
        restore(tmp_path, swapped, picture())
    assert str(ref.detection) in str(info.value)
    other = FaceRestorerRef(ref.model, ref.detection, ref.parsing,
                            {**ref.options, "out_size": 64}, "y")
    with pytest.raises(GenimgError, match="do not fit the network"):
        restore(tmp_path, other, picture())


@pytest.mark.slow
@pytest.mark.render
def test_safetensors_and_dataparallel_weights_load(tiny: dict[str, Any], tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    ref, src = ref_of(tiny), picture(7)
    params = torch.load(ref.model, weights_only=True)["params_ema"]
    model = tmp_path / "GFPGANv1.4.safetensors"
    save_file({k: v.contiguous() for k, v in params.items()}, model)
    detection = tmp_path / "detection.pth"
    state = torch.load(ref.detection, weights_only=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, detection)
    expected = restore(tmp_path, ref, src, 1.0)
    assert restore(tmp_path, ref_of(tiny, model=model, detection=detection), src,
                   1.0).tobytes() == expected.tobytes()


@pytest.mark.slow
@pytest.mark.render
def test_render_refuses_tasks_it_cannot_do(tiny: dict[str, Any], tmp_path: Path) -> None:
    where = Location("posts/p.md", 3)
    txt2img = RenderTask("k", parse_image({"prompt": "a cat"}, where), restorer=ref_of(tiny),
                         source=picture())
    with pytest.raises(GenimgError, match=r"posts/p.md:3: .*'txt2img'"):
        list(restorer(tmp_path).render([txt2img], lambda n: None))
    sourceless = task_of(ref_of(tiny), None)  # type: ignore[arg-type]
    with pytest.raises(GenimgError, match="needs the source picture"):
        list(restorer(tmp_path).render([sourceless], lambda n: None))


@pytest.mark.slow
@pytest.mark.render
def test_close_frees_and_a_later_task_reloads(tiny: dict[str, Any], tmp_path: Path) -> None:
    face = restorer(tmp_path)
    src = picture(8)
    ((_, first),) = face.render([task_of(ref_of(tiny), src)], lambda n: None)
    face.close()
    assert face._nets is None
    ((_, again),) = face.render([task_of(ref_of(tiny), src)], lambda n: None)
    assert first.tobytes() == again.tobytes()
    face.close()


# --- through the real build ------------------------------------------------------------

RESTORE_POST = """
    ---
    title: Restored
    date: 2024-01-02
    ---

    ```gallery
    - mode: restore
      from: face.png
      face_weight: {weight}
    ```
"""


def restored_pngs(root: Path) -> list[Path]:
    """Full-size pictures in the site, less the copy of the user's source picture."""
    return [p for p in (root / "site" / "images").glob("*.png")
            if not p.name.startswith("source-")]


@pytest.mark.slow
@pytest.mark.render
def test_build_restores_a_user_picture_and_caches_it(tiny: dict[str, Any],
                                                     make_blog: Any) -> None:
    import yaml

    from generator.build import BuildOptions, build_site
    from generator.metadata import parse_infotext
    from tests.tinyfaces import face_box

    config = yaml.safe_dump({"title": "T", "base_url": "/", "device": "cpu", "face_restorer": {
        "model": tiny["model"], "detection": tiny["detection"], "parsing": tiny["parsing"],
        "options": tiny["options"]}})
    root = make_blog({"2024-01-02-restored.md": RESTORE_POST.format(weight=0.5)}, config=config)
    source = picture(9)
    source.save(root / "posts" / "face.png")

    report = build_site(root, BuildOptions())
    assert report.rendered == 1 and not report.preview
    (full,) = restored_pngs(root)
    assert full.name.startswith("restored-face-")
    with Image.open(full) as shown:
        shown.load()
        restored = shown.convert("RGB")
        info = parse_infotext(shown.info["parameters"])
    assert restored.size == source.size
    changed = diff_box(source, restored)
    left, top, right, bottom = face_box()
    assert changed is not None and (left, top) <= changed[:2]
    assert changed[2] <= right + 1 and changed[3] <= bottom + 1
    assert info["Face restoration"] == "GFPGAN" and info["Face weight"] == "0.5"
    pages = [p.read_text(encoding="utf-8") for p in (root / "site").rglob("*.html")]
    assert any(full.name in page for page in pages)  # the post shows it

    assert build_site(root, BuildOptions()).rendered == 0  # cached

    post = root / "posts" / "2024-01-02-restored.md"
    post.write_text(post.read_text().replace("face_weight: 0.5", "face_weight: 1"))
    assert build_site(root, BuildOptions()).rendered == 1
    (again,) = restored_pngs(root)
    assert again.name != full.name
    with Image.open(again) as shown:
        assert shown.convert("RGB").tobytes() != restored.tobytes()
