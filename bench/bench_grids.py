"""What a comparison grid costs to read: parsing and expanding its cells, and refusing
an oversize one.

    python bench/bench_grids.py            # 5 runs each

Times ``content.parse_gallery`` on grids of 9 to 10 000 cells (sampler × steps × Prompt
S/R, the limit raised as needed), per grid and per cell, and how long a grid of a
billion cells (``steps: 1-1000000000``) takes to be refused: its size is counted, never
expanded.
"""

from __future__ import annotations

import argparse
import contextlib
import time

from _util import machine_line, median, table

from generator.content import parse_gallery
from generator.errors import GenimgError, Location

SAMPLERS = ["Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2M", "DDIM", "PLMS",
            "UniPC"]


def grid_yaml(samplers: int, steps: int, words: int) -> str:
    axes = (f"x:\n  sampler: {SAMPLERS[:samplers]}\ny:\n  steps: 1-{steps}\n")
    if words > 1:
        axes += "z:\n  prompt_sr: [river, " + ", ".join(f"w{i}" for i in range(words - 1)) + "]\n"
    return "grid:\n  prompt: a river at night\n  seed: 1\n" + axes


def timed(text: str, limit: int) -> float:
    started = time.perf_counter()
    with contextlib.suppress(GenimgError):  # the refused grid
        parse_gallery(text, Location("posts/p.md", 1), {}, limit)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    rows = []
    for samplers, steps, words in ((3, 3, 1), (10, 10, 1), (10, 10, 10), (10, 100, 10)):
        cells = samplers * steps * words
        text = grid_yaml(samplers, steps, words)
        seconds = median([timed(text, cells) for _ in range(runs)])
        rows.append((f"{samplers} × {steps} × {words}", cells, f"{seconds * 1000:.1f} ms",
                     f"{seconds / cells * 1e6:.0f} µs"))
    huge = "grid: {prompt: a}\nx:\n  steps: 1-1000000000\n"
    refused = median([timed(huge, 100) for _ in range(runs)])
    rows.append(("refused: 10^9 cells", "0", f"{refused * 1000:.2f} ms", ""))
    print(machine_line())
    print(table(["grid", "cells", "parse + expand", "per cell"], rows))


if __name__ == "__main__":
    main()
