"""Does storing pictures still stall rendering? A build's render stage against the
renderer alone.

N txt2img pictures (tiny random-weight SD model, 512², Euler a) three ways, interleaved:

- **renderer only**: ``DiffusionRenderer.render`` and nothing else (UNet, VAE, PIL);
- **writer thread**: ``rendering.render_misses`` as a build runs it: each picture's PNG,
  infotext, sidecar and fsyncs on the writer thread while the next batch renders;
- **inline store**: the same with each picture stored before the next batch starts
  (genimg before issue 18).

Goal (issue 18): the build within 5 % of the renderer alone.

    python bench/bench_store.py --pictures 24 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import REPO, machine_line

sys.path.insert(0, str(REPO / "tests"))

POST = "---\ntitle: Bench\ndate: 2022-10-30\n---\n\n```gallery\n{items}```\n"


class InlineWriter:
    """The writer's interface, storing at once in the build's thread (as before)."""

    def __init__(self, store: Any, depth: int):
        self.store = store

    def put(self, node: Any, image: Any, seconds: float) -> None:
        self.store(node, image, seconds)

    def flush(self) -> None: ...

    def __enter__(self) -> InlineWriter:
        return self

    def __exit__(self, *exc: object) -> None: ...


def blog(parent: Path, model: Path, pictures: int, size: int, steps: int, batch: int) -> Path:
    root = parent / "blog"
    (root / "posts").mkdir(parents=True)
    items = "".join(f"- prompt: high quality photo, girl {i}\n  seed: {i}\n"
                    for i in range(pictures))
    (root / "posts/2022-10-30-bench.md").write_text(POST.format(items=items))
    (root / "genimg.yaml").write_text(
        f"title: b\nbase_url: /\nbatch_size: {batch}\nmodels:\n  default: {model}\n"
        f"defaults:\n  steps: {steps}\n  width: {size}\n  height: {size}\n")
    return root


def render_only(root: Path) -> float:
    from generator.build import load_site
    from generator.render.diffusion import DiffusionRenderer
    from generator.rendering import task_for

    site = load_site(root)
    renderer = DiffusionRenderer(site.config)
    tasks = [task_for(node, None) for node in site.plan.nodes.values()]
    renderer._activate(tasks[0].model)  # type: ignore[arg-type]
    started = time.perf_counter()
    for _ in renderer.render(tasks, lambda n: None):
        pass
    took = time.perf_counter() - started
    renderer.close()
    return took


def build(root: Path, inline: bool) -> float:
    """``render_misses`` on an empty cache; the model is loaded before the clock starts."""
    from generator import rendering
    from generator.build import load_site
    from generator.cache import Cache
    from generator.progress import Progress
    from generator.render.diffusion import DiffusionRenderer

    shutil.rmtree(root / ".genimg", ignore_errors=True)
    site = load_site(root)
    cache = Cache(site.config.cache_dir)
    misses = list(site.plan.nodes.values())
    renderer = DiffusionRenderer(site.config)
    renderer._activate(misses[0].model)  # type: ignore[arg-type]
    made = rendering.RENDERERS["diffusion"]
    original = rendering.Renderers.for_mode, rendering.Writer
    rendering.Renderers.for_mode = lambda self, mode: renderer  # type: ignore[method-assign]
    if inline:
        rendering.Writer = InlineWriter  # type: ignore[misc, assignment]
    try:
        started = time.perf_counter()
        stored = rendering.render_misses(site.config, site.plan, cache, misses, False,
                                         Progress())
        took = time.perf_counter() - started
    finally:
        rendering.Renderers.for_mode, rendering.Writer = original  # type: ignore[method-assign]
    assert stored == len(misses) and made is rendering.RENDERERS["diffusion"]
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tinymodels import save_tiny_model

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="genimg-bench-store-") as tmp:
        model = save_tiny_model(Path(tmp)).folder
        root = blog(Path(tmp), model, args.pictures, args.size, args.steps, args.batch)
        times: dict[str, list[float]] = {"renderer only": [], "writer thread": [],
                                         "inline store": []}
        for _ in range(args.repeat):
            times["renderer only"].append(render_only(root))
            times["writer thread"].append(build(root, inline=False))
            times["inline store"].append(build(root, inline=True))
        alone = statistics.median(times["renderer only"])
        print(f"{args.pictures} pictures {args.size}², {args.steps} steps, batch {args.batch}, "
              f"median of {args.repeat}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:<14} {median:7.2f} s  {args.pictures / median:6.2f} pictures/s  "
                  f"{median / alone:5.3f}× the renderer alone")


if __name__ == "__main__":
    main()
