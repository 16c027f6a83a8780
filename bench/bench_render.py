"""How much does genimg's DiffusionRenderer cost over a bare diffusers loop?

Renders N pictures through ``DiffusionRenderer`` and through a plain
``StableDiffusionPipeline`` loop, one picture per call and in batches: same model
folder, sampler (Euler a), steps, CFG, size and seeds. Each implementation runs in
its own process (its memory is its own); times are the best of --repeat runs after
a warm-up, so a busy machine disturbs them less. Goal: ratio <= 1.05, same pixels.

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
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from tinymodels import write_tokenizer_files
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    write_tokenizer_files(workdir / "tokenizer-src")
    tokenizer = CLIPTokenizer.from_pretrained(str(workdir / "tokenizer-src"), model_max_length=77)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
        hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def prompts(n: int) -> list[tuple[str, int]]:
    return [(f"high quality photo, beautiful girl, smile, {i}", 1000 + i) for i in range(n)]


def run_bare(args: argparse.Namespace) -> tuple[float, Render]:
    """The reference: a plain diffusers loop, the way its docs write one."""
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    from generator.render.diffusion import pick_device, pick_dtype

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
    from generator.models import ModelRef
    from generator.render.base import RenderTask
    from generator.render.diffusion import DiffusionRenderer
    from generator.specs import Location, parse_image

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


def variant(args: argparse.Namespace) -> None:
    """One implementation, both batch sizes, in this process; prints JSON lines."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    load, render = (run_bare if args.variant == "diffusers" else run_genimg)(args)
    for batch in (1, args.batch):
        render(prompts(1), batch)  # warm-up: kernels, allocator, autotuning
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times, digest = [], ""
        with PeakRSS() as rss:
            for _ in range(args.repeat):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                images = render(prompts(args.n), batch)
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
                digest = hashlib.sha256(b"".join(im.tobytes() for im in images)).hexdigest()
        print(json.dumps({
            "batch": batch, "load_s": load, "render_s": min(times), "all_s": times,
            "peak_rss_mb": rss.peak,
            "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "pixels": digest[:12],
        }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full-size", action="store_true", help="SD 1.5 architecture")
    parser.add_argument("--n", type=int, default=8, help="pictures per run")
    parser.add_argument("--steps", type=int, help="default: 4 tiny, 20 full size")
    parser.add_argument("--size", type=int, help="default: 64 tiny, 512 full size")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch", type=int, default=4, help="the batched run's batch size")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (best counts)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: its default); 1 is steadier on a busy box")
    parser.add_argument("--variant", choices=["diffusers", "genimg"], help=argparse.SUPPRESS)
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
              f"threads {args.threads or 'default'}, "
              f"best of {args.repeat}")
        rows: dict[tuple[int, str], dict] = {}
        for impl in ("diffusers", "genimg"):
            cmd = [sys.executable, __file__, f"--variant={impl}", f"--model={folder}"] + [
                f"--{k}={getattr(args, k)}"
                for k in ("n", "steps", "size", "device", "dtype", "batch", "repeat", "threads")]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{impl} failed:\n{out.stderr}")
            for line in out.stdout.splitlines():
                if line.startswith("{"):
                    r = json.loads(line)
                    rows[r["batch"], impl] = r
        print(f"{'batch':>5} {'impl':>9} {'load s':>7} {'render s':>9} {'s/pic':>7} "
              f"{'peak RSS MB':>11} {'CUDA MB':>8}  pixels")
        for batch in (1, args.batch):
            for impl in ("diffusers", "genimg"):
                r = rows[batch, impl]
                cuda = f"{r['cuda_peak_mb']:8.0f}" if r["cuda_peak_mb"] is not None else "       -"
                print(f"{batch:>5} {impl:>9} {r['load_s']:7.2f} {r['render_s']:9.3f} "
                      f"{r['render_s'] / args.n:7.3f} {r['peak_rss_mb']:11.0f} {cuda}  "
                      f"{r['pixels']}")
            ours, bare = rows[batch, "genimg"], rows[batch, "diffusers"]
            same = "same" if ours["pixels"] == bare["pixels"] else "DIFFERENT"
            print(f"      batch {batch}: genimg/diffusers = "
                  f"{ours['render_s'] / bare['render_s']:.3f} (goal <= 1.05), {same} pixels")


if __name__ == "__main__":
    main()
