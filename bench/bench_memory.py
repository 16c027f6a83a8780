"""What genimg.yaml's memory options cost in time, and what SD 2.x's test run costs
(issue 12), on this machine's CPU.

Renders the same pictures with the tiny SD model (random weights, built from configs)
through genimg's renderer with each option: ``cpu_offload`` (diffusers' model offload;
on a CPU its hooks run but move nothing, so this is the hooks' own cost, not the
transfers a GPU pays), ``vae_slicing`` (a batch decoded one picture at a time) and
``vae_tiling`` (at 64 px, the tiny VAE's sample size, where it does nothing, and at
256 px, where it decodes in tiles). Then times ``sd2detect.output_shift`` (one UNet
call on an 8x8 latent, float32) on the tiny SD 2.x UNet and, with ``--full-size``, on
SD 2.1's published UNet (865 M parameters, 3.5 GB in float32, random weights).

    python bench/bench_memory.py [--repeat 3] [--full-size]

Times are the process's CPU seconds (all its threads), not wall time: on a machine
shared with other work they still measure this work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from _util import REPO, machine_line

sys.path.insert(0, str(REPO / "tests"))

OPTIONS = {"none": {}, "cpu_offload": {"cpu_offload": True},
           "vae_slicing": {"vae_slicing": True}, "vae_tiling": {"vae_tiling": True}}


def render_seconds(folder: Path, root: Path, options: dict[str, Any], size: int,
                   repeat: int) -> float:
    """Median seconds to render a batch of 4 pictures (the model loaded beforehand)."""
    from generator.config import ModelConfig, SiteConfig
    from generator.errors import Location
    from generator.models import ModelRef
    from generator.render.base import RenderTask
    from generator.render.diffusion import DiffusionRenderer
    from generator.specs import parse_image

    config = SiteConfig(root=root, cache_dir=root / ".genimg", device="cpu", dtype="float32",
                        models=MappingProxyType({"m": ModelConfig("m", str(folder))}),
                        **options)
    ref = ModelRef("m", "folder", str(folder), "sha256:m")
    renderer = DiffusionRenderer(config)
    times = []
    try:
        for round_ in range(repeat + 1):  # the first round loads the model: not counted
            tasks = [RenderTask(f"{round_}-{i}", parse_image(
                {"prompt": "a cat", "seed": i, "steps": 4, "width": size, "height": size},
                Location("bench.md", 1)), ref) for i in range(4)]
            start = time.process_time()
            for _ in renderer.render(tasks, lambda n: None):
                pass
            if round_:
                times.append(time.process_time() - start)
    finally:
        renderer.close()
    return statistics.median(times)


def detect_seconds(unet: Any, repeat: int) -> float:
    from generator.render.sd2detect import output_shift

    output_shift(unet)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.process_time()
        output_shift(unet)
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full-size", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    import diffusers
    from tinymodels import _arch_configs, save_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_tiny_model(Path(tmp)).folder
        print("| option | 4 pictures, 64 px | 4 pictures, 256 px |")
        print("| --- | --- | --- |")
        base: dict[int, float] = {}
        for name, options in OPTIONS.items():
            got = {size: render_seconds(folder, Path(tmp), options, size, args.repeat)
                   for size in (64, 256)}
            base = base or got
            print(f"| {name} | " + " | ".join(
                f"{got[s]:.3f} s CPU ({got[s] / base[s] - 1:+.0%})" for s in (64, 256)) + " |")
    print()
    unets = {"tiny SD 2.x": lambda: diffusers.UNet2DConditionModel(
        **_arch_configs("sd2")["unet"])}
    if args.full_size:
        from generator.render.singlefile import template

        unets["SD 2.1 (865 M)"] = lambda: diffusers.UNet2DConditionModel.from_config(
            template("sd2")["unet"])
    for name, make in unets.items():
        unet = make().eval()
        print(f"SD 2.x test run, {name}: {detect_seconds(unet, args.repeat):.3f} s CPU")
        del unet


if __name__ == "__main__":
    main()
