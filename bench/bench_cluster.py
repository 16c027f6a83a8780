"""Pictures per second on Ray workers, and what Ray adds to each picture.

Builds the same blog (N txt2img pictures, batch_size 1 so work spreads over the
workers) in one process, on 1 Ray worker and on 2, in a local Ray started once
(its start-up and each worker's model load are left out: rates count from the
picture each worker finishes first). Then Ray's own cost per picture: the same
number of ``--preview`` pictures at SD 1.5's 512x512 (drawing one takes
milliseconds, so the difference to a single-process preview build is Ray's
scheduling and the 512x512 picture's serialisation and transfer), set against one
picture's render time. Also checks that every worker build made the single-process
build's exact PNGs.

    python bench/bench_cluster.py                     # tiny model, ~2 min on 2 CPUs
    python bench/bench_cluster.py --full-size --n 6   # SD 1.5's UNet/VAE/CLIP, random weights
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path[:0] = [str(Path(__file__).resolve().parent.parent),
                str(Path(__file__).resolve().parent.parent / "tests")]

from generator.build import BuildOptions, build_site  # noqa: E402
from generator.progress import Progress  # noqa: E402


class Clock(Progress):
    """When each picture arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def picture_done(self, key: str) -> None:
        self.times.append(time.perf_counter())

    def rate(self, workers: int) -> float:
        """Pictures per second once every worker has made its first one."""
        first, last = self.times[workers - 1], self.times[-1]
        return (len(self.times) - workers) / (last - first)


def write_blog(root: Path, model: Path, n: int, size: int, steps: int) -> Path:
    (root / "posts").mkdir(parents=True)
    (root / "genimg.yaml").write_text(
        f"title: bench\nbatch_size: 1\nmodels:\n  default: {model}\n"
        f"defaults:\n  steps: {steps}\n  width: {size}\n  height: {size}\n")
    images = "".join(f"- prompt: high quality photo, beautiful girl, smile {i}\n  seed: {i}\n"
                     for i in range(n))
    (root / "posts/2022-10-30-bench.md").write_text(
        f"---\ntitle: bench\n---\n\n```gallery\n{images}```\n")
    return root


def pngs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "site/images").glob("*.png")}


def timed(root: Path, workers: int | None, preview: bool = False) -> Clock:
    clock = Clock()
    build_site(root, BuildOptions(workers=workers, preview=preview), clock)
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="pictures per build")
    parser.add_argument("--size", type=int, default=64, help="picture width and height")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--full-size", action="store_true", help="SD 1.5's architecture")
    parser.add_argument("--preview-n", type=int, default=40, help="pictures, overhead run")
    args = parser.parse_args()

    import ray
    from tinymodels import (
        FULL_TEXT,
        FULL_UNET,
        FULL_VAE,
        build_pipeline,
        save_tiny_model,
    )

    work = Path(tempfile.mkdtemp(prefix="genimg-bench-cluster-"))
    if args.full_size:
        model = work / "model"
        build_pipeline(work, FULL_UNET, FULL_VAE, FULL_TEXT).save_pretrained(model)
    else:
        model = save_tiny_model(work / "tiny").folder
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    try:
        rates, sites = {}, {}
        for label, workers in (("1 process", None), ("1 worker", 1), ("2 workers", 2)):
            root = write_blog(work / label.replace(" ", "-"), model, args.n, args.size,
                              args.steps)
            rates[label] = timed(root, workers).rate(workers or 1)
            sites[label] = pngs(root)
        render_s = 1 / rates["1 process"]
        print(f"\n{args.n} pictures, {args.size}x{args.size}, {args.steps} steps, "
              f"{'SD 1.5 architecture' if args.full_size else 'tiny model'}, "
              f"{os.cpu_count()} CPUs\n")
        print("| how | pictures/s | vs 1 process | same PNGs |\n| --- | --- | --- | --- |")
        for label, rate in rates.items():
            same = "yes" if sites[label] == sites["1 process"] else "NO"
            print(f"| {label} | {rate:.3f} | {rate / rates['1 process']:.2f}x | {same} |")

        per = {}
        for label, workers in (("1 process", None), ("1 worker", 1)):
            root = write_blog(work / f"preview-{workers}", model, args.preview_n, 512, 20)
            per[label] = 1 / timed(root, workers, preview=True).rate(workers or 1)
        overhead = per["1 worker"] - per["1 process"]
        print(f"\nRay per 512x512 picture: {overhead * 1000:.1f} ms (preview picture "
              f"{per['1 process'] * 1000:.1f} ms in 1 process, "
              f"{per['1 worker'] * 1000:.1f} ms on 1 worker)")
        print(f"= {100 * overhead / render_s:.2f} % of this run's {render_s:.2f} s picture; "
              f"{100 * overhead / 1.0:.2f} % of SD 1.5 at 512x512 on a datacenter GPU (~1 s)")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
