"""What A1111's noise costs: ``noise: nv`` (Philox4x32-10 in NumPy) against the CPU
``torch.Generator`` of ``noise: cpu``, per latent, for 512² and 1024² pictures."""

from __future__ import annotations

import os
import statistics
import time

from _util import REPO  # noqa: F401  (puts this checkout first on sys.path)


def per_draw(draw, repeats: int = 7) -> float:
    draw()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        draw()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    import torch

    from generator.render.noise import Philox

    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("| latent | nv (Philox, NumPy) ms | cpu (torch.Generator) ms |")
    print("| --- | --- | --- |")
    for shape in ((4, 64, 64), (4, 128, 128)):
        philox, generator = Philox(1), torch.Generator().manual_seed(1)
        nv = per_draw(lambda p=philox, s=shape: p.randn(s))
        cpu = per_draw(lambda g=generator, s=shape: torch.randn(s, generator=g))
        print(f"| {shape} | {nv:.1f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
