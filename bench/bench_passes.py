"""What A1111's hires fix and refiner cost per picture (issues 13 and 12), on tiny models.

Renders one picture at a time through ``DiffusionRenderer`` (models loaded once, before
timing): the first pass alone, then with a hires fix of each upscaler kind (latent,
Lanczos, a tiny ESRGAN through spandrel), and an SDXL picture without and with a refiner.
Tiny random-weight models on the CPU: the numbers say what the passes add around the
sampling, not what a real model costs on a GPU.

    python bench/bench_passes.py                 # 20 steps, hires 2x with 10 steps
    python bench/bench_passes.py --steps 30 --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any

from _util import REPO, machine_line, median, table

sys.path.insert(0, str(REPO / "tests"))


def timed(renderer: Any, make: Any, repeat: int) -> tuple[float, tuple[int, int]]:
    """Median seconds of rendering the task ``make(i)`` gives, and its picture's size."""
    times, size = [], (0, 0)
    for index in range(repeat + 1):  # the first one warms up
        started = time.perf_counter()
        [(_, image)] = list(renderer.render([make(index)], lambda n: None))
        if index:
            times.append(time.perf_counter() - started)
        size = image.size
    return median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from tinymodels import save_arch_model, save_tiny_esrgan, save_tiny_model, save_tiny_refiner

    from generator.config import SiteConfig
    from generator.errors import Location
    from generator.models import FileRef, ModelRef
    from generator.render.base import RenderTask
    from generator.render.diffusion import DiffusionRenderer
    from generator.specs import parse_image

    print(machine_line())
    root = Path(tempfile.mkdtemp(prefix="genimg-bench-passes-"))
    sd, xl = save_tiny_model(root), save_arch_model(root, "sdxl")
    refiner_model = save_tiny_refiner(root)
    esrgan = FileRef("tiny-4x", str(save_tiny_esrgan(root / "tiny-4x.pth")), "sha256:e")
    renderer = DiffusionRenderer(SiteConfig(root=root, cache_dir=root / ".genimg",
                                            models=MappingProxyType({})))
    sd_ref = ModelRef("sd", "folder", str(sd.folder), "fp-sd")
    xl_ref = ModelRef("xl", "folder", str(xl.folder), "fp-xl")
    refiner = ModelRef("refiner", "file", str(refiner_model.checkpoint), "fp-refiner")

    def task(model: ModelRef, seed: int, **fields: Any) -> RenderTask:
        extra = {k: fields.pop(k) for k in ("upscaler", "refiner_ref") if k in fields}
        spec = parse_image({"prompt": "a photo of a cat", "seed": seed, "steps": args.steps,
                            "width": 64, "height": 64, **fields}, Location("bench.md", 1))
        return RenderTask(f"k{seed}", spec, model, upscaler=extra.get("upscaler"),
                          refiner=extra.get("refiner_ref"))

    hires = {"scale": 2, "steps": args.steps // 2, "denoise": 0.5}
    cases = [
        ("SD 1.x, first pass only", lambda i: task(sd_ref, i)),
        ("+ hires Latent 2x", lambda i: task(sd_ref, i, hires=hires)),
        ("+ hires Lanczos 2x", lambda i: task(sd_ref, i, hires={**hires, "upscaler": "Lanczos"})),
        ("+ hires ESRGAN 2x (spandrel)", lambda i: task(
            sd_ref, i, hires={**hires, "upscaler": "tiny-4x"}, upscaler=esrgan)),
        ("SDXL, base only", lambda i: task(xl_ref, i)),
        ("SDXL + refiner at 0.8", lambda i: task(xl_ref, i, refiner="refiner",
                                                 refiner_ref=refiner)),
    ]
    rows = []
    for name, make in cases:
        seconds, size = timed(renderer, make, args.repeat)
        rows.append((name, f"{size[0]}x{size[1]}", f"{seconds:.3f} s"))
    renderer.close()
    print(table(("picture", "size", "median"), rows,
                f"{args.steps} steps, hires {hires['steps']} steps at denoise 0.5, CPU"))


if __name__ == "__main__":
    main()
