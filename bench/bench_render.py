"""How much does genimg's DiffusionRenderer cost over a bare diffusers loop?

Renders N pictures through ``DiffusionRenderer`` and through a plain
``StableDiffusionPipeline`` loop, one picture per call and in batches: same model
folder, sampler (Euler a), steps, CFG, size and seeds. Times come from one process
that runs the two in turn after a warm-up (a busy machine slows both alike); peak
memory from one process per implementation. Goal: ratio <= 1.05, same pixels.

    python bench/bench_render.py                      # tiny model, CPU, ~30 s
    python bench/bench_render.py --full-size --device cuda --n 8 --steps 20

``--full-size`` builds SD 1.5's architecture (UNet 860M, VAE, CLIP ViT-L text
encoder) from its config with random weights: real cost, nothing downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Render = Callable[[list[tuple[str, int]], int], list]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def build_full_size(workdir: Path) -> object:
    """SD 1.5's architecture (its published configs) with random weights."""
    from tinymodels import FULL_TEXT, FULL_UNET, FULL_VAE, build_pipeline

    return build_pipeline(workdir, FULL_UNET, FULL_VAE, FULL_TEXT)


def prompts(n: int) -> list[tuple[str, int]]:
    return [(f"high quality photo, beautiful girl, smile, {i}", 1000 + i) for i in range(n)]


def run_bare(args: argparse.Namespace) -> tuple[float, Render]:
    """The reference: a plain diffusers loop, the way its docs write one."""
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    from generator.render.device import pick_device, pick_dtype

    device = pick_device(args.device)
    start = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(
        args.model, dtype=pick_dtype(args.dtype, device), safety_checker=None,
        requires_safety_checker=False, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    load = time.perf_counter() - start

    def render(todo: list[tuple[str, int]], batch: int) -> list:
        images = []
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
            images += pipe(
                prompt=[p for p, _ in chunk], negative_prompt=[""] * len(chunk),
                num_inference_steps=args.steps, guidance_scale=7.0,
                width=args.size, height=args.size,
                generator=[torch.Generator("cpu").manual_seed(s) for _, s in chunk],
            ).images
        return images

    return load, render


def run_genimg(args: argparse.Namespace) -> tuple[float, Render]:
    """genimg's renderer, through its public interface."""
    from dataclasses import replace

    from diffusers import AutoPipelineForText2Image  # noqa: F401  (import cost not timed)

    from generator.config import SiteConfig
    from generator.errors import Location
    from generator.models import ModelRef
    from generator.render.base import RenderTask
    from generator.render.diffusion import DiffusionRenderer
    from generator.specs import parse_image

    config = SiteConfig(root=Path(args.model).parent, device=args.device, dtype=args.dtype)
    ref = ModelRef("bench", "folder", args.model, "bench")
    renderers: dict[int, DiffusionRenderer] = {}

    def renderer(batch: int) -> DiffusionRenderer:
        if batch not in renderers:  # one per batch size; the model loads in each
            renderers[batch] = DiffusionRenderer(replace(config, batch_size=batch))
            renderers[batch]._activate(ref)
        return renderers[batch]

    def tasks(todo: list[tuple[str, int]]) -> list[RenderTask]:
        return [RenderTask(f"k{i}", parse_image(
            {"prompt": p, "seed": s, "steps": args.steps, "width": args.size,
             "height": args.size, "sampler": "Euler a", "cfg": 7},
            Location("bench", i)), ref) for i, (p, s) in enumerate(todo)]

    def render(todo: list[tuple[str, int]], batch: int) -> list:
        done = {t.key: im for t, im in renderer(batch).render(tasks(todo), lambda n: None)}
        return [done[f"k{i}"] for i in range(len(todo))]

    start = time.perf_counter()
    renderer(1)
    return time.perf_counter() - start, render


class PeakRSS:
    """Peak resident memory while a block runs (Linux: sampled; else process peak)."""

    def __enter__(self) -> PeakRSS:
        import threading

        self.peak, self._stop = self._now(), threading.Event()
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
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _digest(images: list) -> str:
    return hashlib.sha256(b"".join(im.tobytes() for im in images)).hexdigest()[:12]


def time_both(args: argparse.Namespace) -> None:
    """Both implementations in one process, runs interleaved: a busy machine slows both."""
    impls = {"diffusers": run_bare(args), "genimg": run_genimg(args)}
    todo = prompts(args.n)
    for batch in (1, args.batch):
        times: dict[str, list[float]] = {name: [] for name in impls}
        pixels = {}
        for _, render in impls.values():
            render(prompts(1), batch)  # warm-up: kernels, allocator, autotuning
        for _ in range(args.repeat):
            for name, (_, render) in impls.items():
                _sync()
                start = time.perf_counter()
                images = render(todo, batch)
                _sync()
                times[name].append(time.perf_counter() - start)
                pixels[name] = _digest(images)
        for name, (load, _) in impls.items():
            print(json.dumps({"kind": "time", "impl": name, "batch": batch, "load_s": load,
                              "best_s": min(times[name]),
                              "median_s": statistics.median(times[name]),
                              "pixels": pixels[name]}))


def memory_of(args: argparse.Namespace) -> None:
    """One implementation alone in this process: its peak memory per batch size."""
    import torch

    cuda = torch.cuda.is_available() and args.device != "cpu"
    _, render = (run_bare if args.variant == "mem-diffusers" else run_genimg)(args)
    for batch in (1, args.batch):
        render(prompts(1), batch)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with PeakRSS() as rss:
            render(prompts(args.n), batch)
        print(json.dumps({"kind": "memory", "impl": args.variant[4:], "batch": batch,
                          "peak_rss_mb": rss.peak,
                          "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20
                          if cuda else None}))


def variant(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    (time_both if args.variant == "time" else memory_of)(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full-size", action="store_true", help="SD 1.5 architecture")
    parser.add_argument("--n", type=int, default=8, help="pictures per run")
    parser.add_argument("--steps", type=int, help="default: 4 tiny, 20 full size")
    parser.add_argument("--size", type=int, help="default: 64 tiny, 512 full size")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch", type=int, default=4, help="the batched run's batch size")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: its default); 1 is steadier on a busy box")
    parser.add_argument("--variant", choices=["time", "mem-diffusers", "mem-genimg"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = args.steps or (20 if args.full_size else 4)
    args.size = args.size or (512 if args.full_size else 64)
    if args.variant:
        return variant(args)

    with tempfile.TemporaryDirectory(prefix="genimg-bench-") as tmp:
        start = time.perf_counter()
        folder = Path(tmp) / "model"
        if args.full_size:
            build_full_size(Path(tmp)).save_pretrained(folder)
        else:
            from tinymodels import save_tiny_model

            folder = save_tiny_model(Path(tmp)).folder
        print(f"model: {'SD 1.5 architecture' if args.full_size else 'tiny SD'}, random "
              f"weights, built in {time.perf_counter() - start:.1f} s; {args.n} pictures "
              f"{args.size}x{args.size}, {args.steps} steps, Euler a, device {args.device}, "
              f"threads {args.threads or 'default'}, {args.repeat} interleaved runs each")
        rows: dict[tuple[str, int, str], dict] = {}
        flags = [f"--model={folder}"] + [
            f"--{k}={getattr(args, k)}"
            for k in ("n", "steps", "size", "device", "dtype", "batch", "repeat", "threads")]
        # Timing alone first; then the two memory runs side by side (time does not matter).
        for group in (["time"], ["mem-diffusers", "mem-genimg"]):
            runs = {what: subprocess.Popen([sys.executable, __file__, f"--variant={what}", *flags],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True) for what in group}
            for what, proc in runs.items():
                stdout, stderr = proc.communicate()
                if proc.returncode:
                    sys.exit(f"{what} failed:\n{stderr}")
                for line in stdout.splitlines():
                    if line.startswith("{"):
                        r = json.loads(line)
                        rows[r["kind"], r["batch"], r["impl"]] = r
        print(f"{'batch':>5} {'impl':>9} {'load s':>7} {'best s':>8} {'median s':>9} "
              f"{'s/pic':>7} {'peak RSS MB':>11} {'CUDA MB':>8}  pixels")
        for batch in (1, args.batch):
            for impl in ("diffusers", "genimg"):
                t, m = rows["time", batch, impl], rows["memory", batch, impl]
                cuda = f"{m['cuda_peak_mb']:8.0f}" if m["cuda_peak_mb"] is not None else "       -"
                print(f"{batch:>5} {impl:>9} {t['load_s']:7.2f} {t['best_s']:8.3f} "
                      f"{t['median_s']:9.3f} {t['best_s'] / args.n:7.3f} "
                      f"{m['peak_rss_mb']:11.0f} {cuda}  {t['pixels']}")
            ours, bare = rows["time", batch, "genimg"], rows["time", batch, "diffusers"]
            same = "same" if ours["pixels"] == bare["pixels"] else "DIFFERENT"
            print(f"      batch {batch}: genimg/diffusers = {ours['best_s'] / bare['best_s']:.3f}"
                  f" best, {ours['median_s'] / bare['median_s']:.3f} median (goal <= 1.05), "
                  f"{same} pixels")


if __name__ == "__main__":
    main()
