"""genimg.yaml's ``speed:``, ``batch_size: auto`` and the writer thread (issue 18).

What each speed option does to the pixels is tested here on the tiny model, on CPU: the
options out of the cache key (``fuse_qkv``) give the same bits; the ones in it change
them (by float rounding) only when set, so every older key stays.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from generator.build import BuildOptions, load_site
from generator.config import SpeedConfig, load_config
from generator.errors import GenimgError
from generator.render.speed import (
    AUTO_CPU,
    AUTO_MOST,
    Footprint,
    auto_batch_size,
)
from generator.writer import Writer
from tests.helpers import MakeBlog

pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")
GB = 2**30
POST = """
    ---
    title: Keys
    date: 2022-10-30
    ---

    ```gallery
    - id: girl
      prompt: a girl
      seed: 1
    - mode: img2img
      from: girl
      prompt: a cat
      seed: 2
    - mode: img2img
      from: photo.png
      prompt: a cat
      seed: 3
      restore_faces: true
    ```
"""
CONFIG = "title: t\nbase_url: /\nmodels:\n  default: model.safetensors\n"


# --- the setting ------------------------------------------------------------------------


def test_speed_and_batch_size_auto_are_read(make_blog: MakeBlog) -> None:
    root = make_blog({}, config=CONFIG + "batch_size: auto\nspeed:\n  compile: unet\n"
                     "  channels_last: true\n  fuse_qkv: true\n  attention: math\n  tf32: true\n")
    config = load_config(root)
    assert config.batch_size == "auto" and config.batch_limit == AUTO_MOST
    assert config.speed == SpeedConfig("unet", True, True, "math", True)
    assert config.speed.hashed() == {"compile": "unet", "channels_last": True,
                                     "attention": "math", "tf32": True}  # never fuse_qkv
    assert load_config(make_blog({}, name="plain")).speed.hashed() == {}


@pytest.mark.parametrize(("text", "line", "message"), [
    ("speed:\n  compile: full\n", 6, "'compile' must be true, false or unet, got 'full'"),
    ("speed:\n  compile: 1\n", 6, "'compile' must be true, false or unet, got 1"),
    ("speed:\n  chanels_last: true\n", 6, "did you mean 'channels_last'"),
    ("speed:\n  attention: xformers\n", 6, "expected one of auto, flash, efficient, cudnn, "
                                           "math"),
    ("batch_size: many\n", 5, "'batch_size' must be a number of at least 1, or auto"),
    ("batch_size: 0\n", 5, "'batch_size' must be a number of at least 1, or auto, got 0"),
])
def test_bad_speed_settings_are_one_line(make_blog: MakeBlog, text: str, line: int,
                                         message: str) -> None:
    root = make_blog({}, config=CONFIG + text)
    with pytest.raises(GenimgError) as info:
        load_config(root)
    assert info.value.line == line and message in str(info.value)


def _keys(make_blog: MakeBlog, name: str, speed: str) -> dict[str, dict]:
    root = make_blog({"2022-10-30-keys.md": POST}, config=CONFIG + speed, name=name)
    (root / "model.safetensors").write_bytes(b"weights")
    from PIL import Image

    Image.new("RGB", (64, 64)).save(root / "posts/photo.png")
    plan = load_site(root, BuildOptions(preview=True)).plan
    return {f"{n.spec.mode}:{n.spec.seed}": {"key": n.key, **n.fields}
            for n in plan.nodes.values()}


def test_only_options_that_change_bits_change_keys(make_blog: MakeBlog) -> None:
    plain = _keys(make_blog, "plain", "")
    assert all("speed" not in fields for fields in plain.values())
    fused = _keys(make_blog, "fused", "speed:\n  fuse_qkv: true\n  attention: auto\n")
    assert fused == plain  # same pictures, bit for bit: same keys
    compiled = _keys(make_blog, "compiled", "speed:\n  compile: true\n  fuse_qkv: true\n")
    for name, fields in compiled.items():
        if name.startswith("restore"):  # GFPGAN is not sped up: only its source changed
            assert "speed" not in fields and fields["source"] != plain[name]["source"]
        else:
            assert fields["speed"] == {"compile": True}
        assert fields["key"] != plain[name]["key"]


# --- batch_size: auto -----------------------------------------------------------------

SD15_FP16 = Footprint(unet_channels=320, unet_bytes=2, vae_channels=128, vae_bytes=2)
SDXL_FP16 = Footprint(320, 2, 128, 4)  # diffusers upcasts SDXL's VAE to decode


def test_footprints_per_picture() -> None:
    # SD 1.5 at 512²: the VAE's decoder at full resolution weighs most (805 MB).
    assert SD15_FP16.per_picture(512, 512) == 12 * 512 * 512 * 128 * 2
    # SDXL at 1024², VAE in float32: 6.4 GB a picture; 512-pixel tiles: a quarter of it,
    # and then the UNet (838 MB) is still less.
    assert SDXL_FP16.per_picture(1024, 1024) == 12 * 1024 * 1024 * 128 * 4
    assert SDXL_FP16.per_picture(1024, 1024, tiling=True) == 12 * 512 * 512 * 128 * 4
    # The UNet's share: two rows (CFG) of the latent's pixels by its first block's width.
    assert Footprint(320, 2, 128, 0).per_picture(512, 512) == 40 * 2 * 64 * 64 * 320 * 2


@pytest.mark.parametrize(("free", "footprint", "size", "tiling", "batch"), [
    (120 * GB, SD15_FP16, 512, False, AUTO_MOST),  # an H100: capped
    (10 * GB, SD15_FP16, 512, False, 10),  # (10 GB * 0.85 - 0.5 GB) / 805 MB
    (6 * GB, SD15_FP16, 512, False, 6),
    (1 * GB, SD15_FP16, 512, False, 1),  # never below one
    (0, SD15_FP16, 512, False, 1),
    (70 * GB, SDXL_FP16, 1024, False, 9),  # an 80 GB card with SDXL's weights on it
    (16 * GB, SDXL_FP16, 1024, False, 2),
    (16 * GB, SDXL_FP16, 1024, True, 8),  # tiles: the VAE costs a 512² picture
    (16 * GB, SD15_FP16, 1024, False, 4),  # 4x the pixels of 512²: a quarter of the batch
])
def test_auto_batch_size_fits_free_memory(free: int, footprint: Footprint, size: int,
                                          tiling: bool, batch: int) -> None:
    chosen = auto_batch_size(free, footprint, size, size, tiling)
    assert chosen == batch
    if 1 < chosen < AUTO_MOST:  # the largest that fits: one more would not
        usable = free * 0.85 - 512 * 2**20
        per = footprint.per_picture(size, size, tiling)
        assert chosen * per <= usable < (chosen + 1) * per


def test_auto_batch_size_grows_with_memory_and_shrinks_with_size() -> None:
    sizes = [auto_batch_size(gb * GB, SD15_FP16, 512, 512) for gb in range(1, 40)]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == AUTO_MOST
    by_size = [auto_batch_size(24 * GB, SD15_FP16, s, s) for s in (256, 512, 768, 1024)]
    assert by_size == sorted(by_size, reverse=True)


# --- the writer thread ------------------------------------------------------------------


class Slow:
    """A store that takes its time and remembers what it stored, in order."""

    def __init__(self, seconds: float = 0.0, fail_at: int | None = None):
        self.seconds, self.fail_at = seconds, fail_at
        self.stored: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, node, image, seconds) -> None:
        time.sleep(self.seconds)
        self.threads.add(threading.current_thread().name)
        if node == self.fail_at:
            raise GenimgError("disk full: no space left for the cache")
        self.stored.append(node)


def test_writer_stores_in_order_on_its_own_thread_and_bounds_the_queue() -> None:
    store = Slow(0.02)
    started = time.perf_counter()
    with Writer(store, depth=2) as writer:
        for n in range(6):
            writer.put(n, None, 0.0)  # type: ignore[arg-type]
        queued = time.perf_counter() - started
    assert store.stored == list(range(6))
    assert store.threads == {"genimg-writer"}
    # Six stores of 20 ms with room for two queued: put waited for about three of them.
    assert queued >= 0.05


def test_writer_flush_waits_for_every_picture() -> None:
    store = Slow(0.02)
    with Writer(store, depth=8) as writer:
        for n in range(4):
            writer.put(n, None, 0.0)  # type: ignore[arg-type]
        writer.flush()
        assert store.stored == [0, 1, 2, 3]


def test_a_failed_store_fails_the_build_and_loses_nothing() -> None:
    store = Slow(0.01, fail_at=2)
    with pytest.raises(GenimgError, match="disk full"), Writer(store, depth=1) as writer:
        for n in range(10):
            writer.put(n, None, 0.0)  # type: ignore[arg-type]
    # Stored before the failure, and what was queued behind it: nothing rendered is lost.
    assert store.stored[:2] == [0, 1] and 2 not in store.stored
    assert store.stored == sorted(store.stored) and len(store.stored) < 9


def test_a_failure_at_the_end_is_raised_by_close() -> None:
    store = Slow(0.0, fail_at=3)
    with pytest.raises(GenimgError, match="disk full"), Writer(store, depth=8) as writer:
        for n in range(4):
            writer.put(n, None, 0.0)  # type: ignore[arg-type]
    assert store.stored == [0, 1, 2]


def test_ctrl_c_in_the_renderer_still_stores_what_was_rendered() -> None:
    store = Slow(0.02)
    with pytest.raises(KeyboardInterrupt), Writer(store, depth=8) as writer:
        for n in range(5):
            writer.put(n, None, 0.0)  # type: ignore[arg-type]
        raise KeyboardInterrupt
    assert store.stored == [0, 1, 2, 3, 4]


def test_the_renderers_own_error_wins_over_a_store_error() -> None:
    store = Slow(0.0, fail_at=0)
    with pytest.raises(ValueError, match="renderer"), Writer(store, depth=8) as writer:
        writer.put(0, None, 0.0)  # type: ignore[arg-type]
        time.sleep(0.05)
        raise ValueError("renderer")


def test_speed_config_defaults_are_the_schemas() -> None:
    assert replace(SpeedConfig()).hashed() == {}
    assert AUTO_CPU == 4


# --- on the tiny model, CPU (imports torch) ---------------------------------------------

SMALL = {"steps": 3, "width": 64, "height": 64}


def _config(tmp_path: Path, tiny_model, **options):
    from types import MappingProxyType

    from generator.config import ModelConfig, SiteConfig

    models = {"default": ModelConfig("default", str(tiny_model.folder))}
    return SiteConfig(root=tmp_path, cache_dir=tmp_path / ".genimg",
                      models=MappingProxyType(models), **options)


def _tasks(tmp_path: Path, tiny_model, n: int, loras=(), **fields):
    from generator.errors import Location
    from generator.models import FileRef, ModelResolver
    from generator.render.base import RenderTask
    from generator.specs import parse_image

    ref = ModelResolver(_config(tmp_path, tiny_model)).model("default")
    refs = tuple((FileRef(Path(p).stem, str(p), "sha256:" + str(p)), w) for p, w in loras)
    return [RenderTask(f"k{i}", parse_image({"prompt": f"photo girl {i}", "seed": i, **SMALL,
                                             **fields}, Location("posts/p.md", 3)), ref,
                       loras=refs) for i in range(n)]


def _render(tmp_path: Path, tiny_model, tasks, steps: list[int] | None = None, **options):
    from generator.render.diffusion import DiffusionRenderer

    renderer = DiffusionRenderer(_config(tmp_path, tiny_model, **options))
    try:
        done = dict(renderer.render(tasks, steps.append if steps is not None else _ignore))
    finally:
        renderer.close()
    return [done[task].tobytes() for task in tasks]


def _ignore(steps: int) -> None:
    pass


def _max_diff(a: list[bytes], b: list[bytes]) -> int:
    return max(abs(x - y) for one, two in zip(a, b, strict=True)
               for x, y in zip(one, two, strict=True))


@pytest.fixture(scope="module")
def lora(tiny_model, tmp_path_factory) -> Path:
    from diffusers import StableDiffusionPipeline

    from tests.tinymodels import save_tiny_lora

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model.folder))
    return save_tiny_lora(pipe, tmp_path_factory.mktemp("lora") / "a.safetensors", "kohya",
                          seed=1)


@pytest.mark.slow
@pytest.mark.render
def test_fused_projections_give_the_same_bits_with_and_without_loras(tmp_path, tiny_model,
                                                                     lora) -> None:
    """Why ``fuse_qkv`` is not in the key; and a LoRA still counts (fused projections
    would bypass it: the renderer unfuses for its batch and fuses again after)."""
    tasks = [*_tasks(tmp_path, tiny_model, 2), *_tasks(tmp_path / "l", tiny_model, 1,
                                                       loras=[(lora, 1.0)]),
             *_tasks(tmp_path / "again", tiny_model, 1)]
    tasks[2] = replace(tasks[2], key="lora")
    tasks[3] = replace(tasks[3], key="again")
    plain = _render(tmp_path, tiny_model, tasks)
    fused = _render(tmp_path, tiny_model, tasks, speed=SpeedConfig(fuse_qkv=True))
    assert fused == plain
    assert plain[2] != plain[0]  # the LoRA changed its picture


@pytest.mark.slow
@pytest.mark.render
def test_options_in_the_key_change_pixels_only_by_rounding(tmp_path, tiny_model) -> None:
    """channels-last and the math attention kernel: other bits on this CPU (so they are
    in the key when set), the same picture to the eye."""
    tasks = _tasks(tmp_path, tiny_model, 2)
    plain = _render(tmp_path, tiny_model, tasks)
    for speed in (SpeedConfig(channels_last=True), SpeedConfig(attention="math")):
        assert _max_diff(_render(tmp_path, tiny_model, tasks, speed=speed), plain) <= 2, speed


@pytest.mark.slow
@pytest.mark.render
def test_an_attention_kernel_that_cannot_run_here_is_one_line(tmp_path, tiny_model) -> None:
    with pytest.raises(GenimgError, match="speed: attention 'efficient' cannot run on cpu"):
        _render(tmp_path, tiny_model, _tasks(tmp_path, tiny_model, 1),
                speed=SpeedConfig(attention="efficient"))


@pytest.mark.slow
@pytest.mark.render
def test_batch_size_auto_on_a_cpu_is_the_default_batch(tmp_path, tiny_model) -> None:
    tasks = _tasks(tmp_path, tiny_model, 5)
    steps: list[int] = []
    auto = _render(tmp_path, tiny_model, tasks, steps, batch_size="auto")
    assert steps == [AUTO_CPU] * 3 + [1] * 3  # a batch of 4, then 1 (3 steps each)
    assert auto == _render(tmp_path, tiny_model, tasks, batch_size=AUTO_CPU)


@pytest.mark.slow
@pytest.mark.render
def test_compile_runs_once_per_shape_and_gives_the_same_picture(tmp_path, tiny_model,
                                                                monkeypatch) -> None:
    """torch.compile (inductor, C++ on this CPU) of the UNet's transformer blocks: one
    compile for a size and batch, reused by the next batch of that shape (dynamo makes no
    new graph), with a line before and after it; the pixels differ from eager ones only
    by rounding."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from generator.render import speed
    from generator.render.diffusion import DiffusionRenderer

    notes: list[str] = []
    monkeypatch.setattr(speed, "note", notes.append)
    torch._dynamo.reset()
    tasks = _tasks(tmp_path, tiny_model, 4)
    eager = _render(tmp_path, tiny_model, tasks, batch_size=2)
    renderer = DiffusionRenderer(_config(tmp_path, tiny_model, batch_size=2,
                                         speed=SpeedConfig(compile=True)))
    try:
        first = dict(renderer.render(tasks[:2], _ignore))
        graphs = counters["stats"]["unique_graphs"]
        assert graphs >= 1 and len(notes) == 2
        second = dict(renderer.render(tasks[2:], _ignore))
        assert counters["stats"]["unique_graphs"] == graphs and len(notes) == 2
    finally:
        renderer.close()
        torch._dynamo.reset()
    assert notes[0].startswith("compiling the UNet for 64×64, 2 at a time")
    assert notes[1].startswith("compiled, first batch rendered in")
    compiled = [{**first, **second}[task].tobytes() for task in tasks]
    assert _max_diff(compiled, eager) <= 2


@pytest.mark.slow
@pytest.mark.render
def test_a_build_with_speed_ups_out_of_the_key(make_blog: MakeBlog, tiny_model) -> None:
    """A whole build with ``fuse_qkv`` and ``batch_size: auto``: pictures stored by the
    writer thread, each under the key it has without ``speed:``, read back by the next."""
    from PIL import Image

    from generator.build import build_site

    post = {"2022-10-30-p.md": POST.replace("      restore_faces: true\n", "")}
    config = (f"title: t\nbase_url: /\nmodels:\n  default: {tiny_model.folder}\n"
              "defaults:\n  steps: 2\n  width: 64\n  height: 64\nbatch_size: auto\n")
    root = make_blog(post, config=config + "speed:\n  fuse_qkv: true\n")
    Image.new("RGB", (64, 64), (10, 200, 30)).save(root / "posts/photo.png")
    assert build_site(root).rendered == 3
    (root / "genimg.yaml").write_text(config)  # no speed: the same keys, all cached
    assert build_site(root).rendered == 0


@pytest.mark.slow
@pytest.mark.render
def test_the_render_bench_runs_in_its_quick_form(capsys, monkeypatch) -> None:
    """bench/bench_render.py's table, reduced: a tiny SDXL built by the code that
    builds the full-size ones, genimg and the bare loop interleaved, the same pixels."""
    import importlib.util

    from tests.helpers import REPO

    spec = importlib.util.spec_from_file_location("bench_render", REPO / "bench/bench_render.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_render", bench)  # its dataclasses look it up
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--arch", "sdxl", "--batches", "2"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("SD 1.5 ", "SDXL "))]
    assert len(rows) == 1 and all(row.endswith("same") for row in rows), out
    assert "genimg ÷ diffusers speed:" in out


def test_a_note_shows_above_the_bar_only_while_rendering(capsys) -> None:
    from generator.progress import RichProgress, note

    note("before")  # no bar: nowhere to show it
    bar = RichProgress()
    bar.start(1, 10)
    note("compiling the UNet for 64×64")
    bar.stop()
    note("after")
    out = capsys.readouterr().out
    assert "compiling the UNet for 64×64" in out
    assert "before" not in out and "after" not in out


@pytest.mark.slow
@pytest.mark.render
def test_footprint_counts_the_vae_diffusers_upcasts(tmp_path) -> None:
    """SDXL's VAE decodes in float32 under a float16 model (its config's force_upcast,
    shipped in render/configs/sdxl.json): ``auto`` counts 4 bytes for it; SD 1.x's stays."""
    import torch

    from generator.render.singlefile import template
    from generator.render.speed import footprint_of
    from tests.tinymodels import build_arch_pipeline

    assert template("sdxl")["vae"]["force_upcast"] is True
    sdxl = build_arch_pipeline(tmp_path / "xl", "sdxl").to(torch.float16)
    sd1 = build_arch_pipeline(tmp_path / "sd1", "sd1").to(torch.float16)
    assert footprint_of(sdxl) == Footprint(64, 2, 32, 4)
    assert footprint_of(sd1) == Footprint(32, 2, 32, 2)
    assert footprint_of(sd1.to(torch.float32)) == Footprint(32, 4, 32, 4)
