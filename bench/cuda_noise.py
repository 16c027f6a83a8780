"""Does genimg's ``noise: nv`` equal ``torch.randn`` on this machine's CUDA GPU?

Run on a machine with a CUDA GPU: ``python bench/cuda_noise.py``. For each case of
``tests/data/nv_noise.json`` (written by genimg's Philox generator), it draws twice
from a CUDA generator seeded with the case's seed and prints the largest absolute
difference of each draw: 0 is bit-exact, about 1e-7 is float32 rounding.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from generator.render.noise import Philox

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "nv_noise.json"


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU here")
    for case in json.loads(DATA.read_text(encoding="utf-8"))["cases"]:
        seed, shape = case["seed"], tuple(case["shape"])
        gpu = torch.Generator("cuda").manual_seed(seed)
        ours = Philox(seed)
        diffs = []
        for _ in range(2):
            cuda = torch.randn(shape, generator=gpu, device="cuda").cpu().numpy()
            diffs.append(float(np.abs(cuda - ours.randn(shape)).max()))
        stored = np.array(case["first_16"], dtype=np.float32)
        print(f"seed {seed} shape {shape}: max |cuda - nv| first {diffs[0]:.3g}, "
              f"second {diffs[1]:.3g}; stored vector matches: "
              f"{np.array_equal(stored, Philox(seed).randn(shape).reshape(-1)[:16])}")


if __name__ == "__main__":
    main()
