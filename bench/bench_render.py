"""genimg's DiffusionRenderer against a bare diffusers loop: it/s, pictures/s, memory.

For each model, size, step count, batch size and mode (eager, compiled) both render the
same pictures (Euler a, CFG 7, the same seeds), in one process, interleaved (a busy
machine slows both alike), after a warm-up of each batch shape that is timed on its own
(it holds the compile, once per shape). Reported: it/s (batch steps a second, as
diffusers' progress bar counts), pictures/s, genimg ÷ diffusers speed, peak memory the
run added (CUDA: allocated; CPU: resident) beside what ``batch_size: auto`` reckons the
batch needs (``render/speed.py``'s estimate, which this checks), and whether the pixels
are the same.

    python bench/bench_render.py                     # tiny SD, CPU: genimg vs bare, ~1 min
    python bench/bench_render.py --quick             # tiny SD 1.5 and SDXL, ~30 s (a test)
    python bench/bench_render.py --full-size --device cuda          # the GPU table, < 8 min

``--full-size`` builds SD 1.5 (512²) and SDXL (1024²) from genimg's shipped configs
(``generator/render/configs/``) with random weights, on the device, in its dtype: real
cost, nothing downloaded. Without it the same builder makes tiny networks (the shapes
of tests/tinymodels.py) in those configs' place. "compiled" is ``speed: {compile:
true}`` for genimg and the same ``compile_repeated_blocks`` for the bare loop; eager rows
run the same modules with ``torch.compiler.set_stance("force_eager")``; ``--speed`` adds
more of ``speed:`` to both (e.g. ``channels_last,fuse_qkv``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SIZES = {"sd1": 512, "sdxl": 1024}
NAMES = {"sd1": "SD 1.5", "sdxl": "SDXL"}


def configs(arch: str, tiny: bool) -> dict[str, Any]:
    """genimg's shipped configs of ``arch``; ``tiny``: with tests/tinymodels.py's tiny
    networks in place of the full-size ones (the same code path, in seconds on a CPU)."""
    from generator.render.singlefile import template

    base = template(arch)
    if tiny:
        from tinymodels import _arch_configs

        small = _arch_configs(arch)
        base.update(unet=small["unet"], vae=small["vae"], **small["texts"])
    return base


def build_model(arch: str, folder: Path, device: str, dtype: Any, tiny: bool) -> None:
    """A model of ``arch`` from its configs, random weights made on ``device`` (fast on a
    GPU), saved in ``dtype`` as a diffusers folder."""
    import diffusers
    import torch
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from generator.render.singlefile import write_tokenizer

    base = configs(arch, tiny)
    parts: dict[str, Any] = {}
    torch.manual_seed(0)
    with torch.device(device):
        parts["unet"] = diffusers.UNet2DConditionModel.from_config(base["unet"])
        parts["vae"] = diffusers.AutoencoderKL.from_config(base["vae"])
        for name in ("text_encoder", "text_encoder_2"):
            if name in base:
                model = CLIPTextModelWithProjection if name.endswith("2") else CLIPTextModel
                parts[name] = model(CLIPTextConfig(**base[name]))
    for name in ("tokenizer", "tokenizer_2"):
        if name in base:
            write_tokenizer(folder.parent / name, base[name])
            parts[name] = CLIPTokenizer.from_pretrained(str(folder.parent / name))
    scheduler = getattr(diffusers, base["scheduler"]["_class_name"])
    parts["scheduler"] = scheduler.from_config(base["scheduler"])
    if arch == "sd1":
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = getattr(diffusers, base["pipeline"])(**parts, **base.get("pipeline_config", {}))
    diffusers.utils.logging.set_verbosity_error()  # "modules to keep in float32: []"
    pipe.to(dtype=dtype)
    pipe.save_pretrained(folder)
    del pipe, parts
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def prompts(n: int) -> list[tuple[str, int]]:
    return [(f"high quality photo, beautiful girl, smile, {i}", 1000 + i) for i in range(n)]


class Bare:
    """The reference: a plain diffusers loop, the way its docs write one."""

    name = "diffusers"

    def __init__(self, folder: Path, device: str, dtype: Any, compiled: bool,
                 speed: list[str]):
        import torch
        from diffusers import AutoPipelineForText2Image

        extra = {} if (folder / "text_encoder_2").exists() else dict(
            safety_checker=None, requires_safety_checker=False)
        self.pipe = AutoPipelineForText2Image.from_pretrained(
            folder, dtype=dtype, local_files_only=True, **extra).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        if "channels_last" in speed:  # what genimg's speed: options do, by hand
            self.pipe.unet.to(memory_format=torch.channels_last)
            self.pipe.vae.to(memory_format=torch.channels_last)
        if "fuse_qkv" in speed:
            self.pipe.unet.fuse_qkv_projections()
        if "tf32" in speed and device.startswith("cuda"):
            torch.set_float32_matmul_precision("high")
        if compiled:
            self.pipe.unet.compile_repeated_blocks(fullgraph=True, dynamic=False)

    def render(self, todo: list[tuple[str, int]], batch: int, steps: int, size: int) -> list:
        import torch
        from diffusers import EulerAncestralDiscreteScheduler

        images = []
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            self.pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(
                self.pipe.scheduler.config)
            images += self.pipe(
                prompt=[p for p, _ in chunk], negative_prompt=[""] * len(chunk),
                num_inference_steps=steps, guidance_scale=7.0, width=size, height=size,
                generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk],
            ).images
        return images


class Genimg:
    """genimg's renderer, through its public interface."""

    name = "genimg"

    def __init__(self, folder: Path, device: str, dtype: str, compiled: bool,
                 speed: list[str]):
        from generator.config import SiteConfig, SpeedConfig
        from generator.models import ModelRef
        from generator.render.diffusion import DiffusionRenderer

        self.config = SiteConfig(root=folder.parent, device=device, dtype=dtype,
                                 speed=SpeedConfig(compile=compiled,
                                                   **{option: True for option in speed}))
        self.ref = ModelRef("bench", "folder", str(folder), "bench")
        self.renderer = DiffusionRenderer(self.config)
        self.renderer._activate(self.ref)
        self.tasks: dict[tuple, list[Any]] = {}

    def render(self, todo: list[tuple[str, int]], batch: int, steps: int, size: int) -> list:
        from generator.errors import Location
        from generator.render.base import RenderTask
        from generator.specs import parse_image

        self.renderer.config = replace(self.config, batch_size=batch)
        key = (tuple(todo), steps, size)  # specs are parsed before a build renders: untimed
        if key not in self.tasks:
            self.tasks[key] = [RenderTask(f"k{i}", parse_image(
                {"prompt": p, "seed": s, "steps": steps, "width": size, "height": size,
                 "sampler": "Euler a", "cfg": 7}, Location("bench", i)), self.ref)
                for i, (p, s) in enumerate(todo)]
        tasks = self.tasks[key]
        done = {t.key: im for t, im in self.renderer.render(tasks, lambda n: None)}
        return [done[f"k{i}"] for i in range(len(todo))]


class PeakRSS:
    """Peak resident memory while a block runs (sampled from /proc every 5 ms)."""

    def __enter__(self) -> PeakRSS:
        import threading

        self.start = self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._now())

    @staticmethod
    def _now() -> float:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:
            return 0.0


@dataclass
class Run:
    seconds: list[float] = field(default_factory=list)
    peak_mb: float = 0.0
    pixels: str = ""


@contextlib.contextmanager
def memory(cuda: bool) -> Iterator[dict[str, float]]:
    """What a block added to the peak: CUDA memory allocated, else resident memory."""
    out = {"mb": 0.0}
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        yield out
        torch.cuda.synchronize()
        out["mb"] = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        with PeakRSS() as rss:
            yield out
        out["mb"] = rss.peak - rss.start


def stance(mode: str, compiled: bool) -> Any:
    """Eager rows of a compiled setup run the same modules uncompiled."""
    import torch

    if mode == "eager" and compiled:
        return torch.compiler.set_stance("force_eager")
    return contextlib.nullcontext()


def bench_model(arch: str, folder: Path, args: argparse.Namespace, deadline: float,
                rows: list[dict[str, Any]]) -> None:
    """Every cell of one model, both implementations interleaved."""
    import torch

    from generator.render.device import pick_device, pick_dtype

    device = pick_device(args.device)
    cuda = device.startswith("cuda")
    compiled = "compiled" in args.modes
    impls = [Bare(folder, device, pick_dtype(args.dtype, device), compiled, args.speed),
             Genimg(folder, device, args.dtype, compiled, args.speed)]
    size = args.size or (SIZES[arch] if args.full_size else 64)
    from generator.render.speed import footprint_of

    genimg = impls[1]
    assert isinstance(genimg, Genimg)
    per_picture = footprint_of(genimg.renderer._activate(genimg.ref).txt2img).per_picture(
        size, size) / 2**20  # what batch_size: auto reckons a picture needs, MB
    for batch in args.batches:
        for mode in args.modes:
            if time.perf_counter() > deadline:
                print(f"skipped (over --budget): {NAMES[arch]} batch {batch} {mode}")
                continue
            warm = {}
            with stance(mode, compiled):
                for impl in impls:  # compiles this shape, when compiled
                    started = time.perf_counter()
                    impl.render(prompts(batch), batch, 2, size)
                    warm[impl.name] = time.perf_counter() - started
                for steps in args.steps:
                    runs = {impl.name: Run() for impl in impls}
                    n = batch * (args.batches_per_run or max(1, 8 // batch))
                    for _ in range(args.repeat):
                        for impl in impls:
                            with memory(cuda) as used:
                                started = args.clock()
                                images = impl.render(prompts(n), batch, steps, size)
                                if cuda:
                                    torch.cuda.synchronize()
                                runs[impl.name].seconds.append(args.clock() - started)
                            runs[impl.name].peak_mb = max(runs[impl.name].peak_mb, used["mb"])
                            runs[impl.name].pixels = hashlib.sha256(
                                b"".join(im.tobytes() for im in images)).hexdigest()[:10]
                    rows.append(dict(model=NAMES[arch], size=size, steps=steps, batch=batch,
                                     mode=mode, n=n, runs=runs, warm=warm,
                                     estimate=per_picture * batch))
                    print_row(rows[-1])
    del impls
    gc.collect()
    torch._dynamo.reset()
    if cuda:
        torch.cuda.empty_cache()


HEADER = (f"{'model':<7}{'size':>5}{'steps':>6}{'batch':>6} {'mode':<9}"
          f"{'diffusers it/s':>15}{'pics/s':>8}{'genimg it/s':>12}{'pics/s':>8}"
          f"{'speed':>7}{'peak MB d/g':>14}{'auto MB':>8}{'warm-up s d/g':>15}  pixels")


def print_row(row: dict[str, Any]) -> None:
    bare, ours = row["runs"]["diffusers"], row["runs"]["genimg"]
    b, g = min(bare.seconds), min(ours.seconds)
    calls = row["n"] / row["batch"]
    same = "same" if bare.pixels == ours.pixels else "differ"
    print(f"{row['model']:<7}{row['size']:>5}{row['steps']:>6}{row['batch']:>6} "
          f"{row['mode']:<9}{row['steps'] * calls / b:>15.2f}{row['n'] / b:>8.3f}"
          f"{row['steps'] * calls / g:>12.2f}{row['n'] / g:>8.3f}{b / g:>7.3f}"
          f"{bare.peak_mb:>7.0f}/{ours.peak_mb:<6.0f}{row['estimate']:>8.0f}"
          f"{row['warm']['diffusers']:>8.1f}/{row['warm']['genimg']:<6.1f} {same}", flush=True)


def summary(rows: list[dict[str, Any]]) -> None:
    """genimg's speed against the bare loop, and compiled against eager."""
    speeds = [min(r["runs"]["diffusers"].seconds) / min(r["runs"]["genimg"].seconds)
              for r in rows]
    if speeds:
        print(f"genimg ÷ diffusers speed: {min(speeds):.3f} … {max(speeds):.3f} "
              f"(goal ≥ 0.98 everywhere)")
    eager = {(r["model"], r["steps"], r["batch"]): r for r in rows if r["mode"] == "eager"}
    for r in rows:
        base = eager.get((r["model"], r["steps"], r["batch"]))
        if r["mode"] == "compiled" and base is not None:
            gain = min(base["runs"]["genimg"].seconds) / min(r["runs"]["genimg"].seconds)
            print(f"compiled ÷ eager, genimg, {r['model']} {r['steps']} steps batch "
                  f"{r['batch']}: {gain:.2f}× (goal ≥ 1.3 on SD 1.5)")


def machine(args: argparse.Namespace) -> str:
    import torch

    if args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available()):
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"CPU ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}), torch {torch.__version__}"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full-size", action="store_true",
                        help="SD 1.5 at 512² and SDXL at 1024², random weights")
    parser.add_argument("--quick", action="store_true",
                        help="tiny SD 1.x and SDXL, 2 steps, batches 1 and 2, once: seconds")
    parser.add_argument("--arch", help="comma-separated: sd1, sdxl")
    parser.add_argument("--steps", help="comma-separated step counts")
    parser.add_argument("--batches", help="comma-separated batch sizes")
    parser.add_argument("--modes", help="comma-separated: eager, compiled")
    parser.add_argument("--size", type=int, help="picture size (default: the model's)")
    parser.add_argument("--batches-per-run", type=int,
                        help="batches in each timed run (default: 1; tiny: 8 pictures)")
    parser.add_argument("--repeat", type=int, help="timed runs of each (the best counts)")
    parser.add_argument("--speed", default="", help="comma-separated speed: options for "
                        "both, beside compile: channels_last, fuse_qkv, tf32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time runs by this process's CPU time, not the wall clock (with "
                        "--threads 1: steadier on a machine other jobs load)")
    parser.add_argument("--budget", type=float, default=360,
                        help="seconds; cells not started by then are skipped (named)")
    args = parser.parse_args(argv)
    full, quick = args.full_size, args.quick
    defaults = dict(arch="sd1,sdxl" if full or quick else "sd1",
                    steps="20,50" if full else "2" if quick else "4",
                    batches="1,4,8" if full else "1,2" if quick else "1,4",
                    modes="eager,compiled" if full else "eager")
    for name, value in defaults.items():
        setattr(args, name, (getattr(args, name) or value).split(","))
    args.steps = [int(s) for s in args.steps]
    args.clock = time.process_time if args.cpu_time else time.perf_counter
    args.speed = [option for option in args.speed.split(",") if option]
    unknown = set(args.speed) - {"channels_last", "fuse_qkv", "tf32"}
    if unknown:
        parser.error(f"--speed: unknown {', '.join(sorted(unknown))}")
    args.batches = [int(b) for b in args.batches]
    args.batches_per_run = args.batches_per_run or (1 if full or quick else 0)  # 0: 8 pictures
    args.repeat = args.repeat or (1 if full or quick else 5)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    deadline = start + args.budget
    print(f"{machine(args)}; Euler a, CFG 7, {args.repeat} interleaved run(s) each, "
          f"{args.batches_per_run or '8 pictures in'} batch(es) a run; the best counts; "
          f"speed: {', '.join(args.speed) or 'none'} (+ compile in compiled rows)"
          f"{'; CPU time' if args.cpu_time else ''}")
    print(HEADER)
    rows: list[dict[str, Any]] = []
    from generator.render.device import pick_device, pick_dtype

    device = pick_device(args.device)
    with tempfile.TemporaryDirectory(prefix="genimg-bench-") as tmp:
        for arch in args.arch:
            built = time.perf_counter()
            folder = Path(tmp) / arch / "model"
            build_model(arch, folder, device, pick_dtype(args.dtype, device), not args.full_size)
            print(f"({NAMES[arch]}: built in {time.perf_counter() - built:.0f} s)", flush=True)
            bench_model(arch, folder, args, deadline, rows)
    summary(rows)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
