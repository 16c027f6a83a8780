"""Time one GFPGAN restoration with real-sized (random-weight) networks.

Usage: ``python bench/faces_cpu.py [device]``. Builds GFPGANv1.4-sized GFPGAN,
RetinaFace-ResNet50 and ParseNet with random weights (about 350 MB in a temp
folder; no download), then times loading, a full restoration of one face, and
the detector alone on a 512×512 picture. The face crop is always 512×512, so
GFPGAN's share does not depend on the picture size; the detector's does.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    import numpy as np
    import torch
    from PIL import Image
    from tinyfaces import make_face_restorer

    from generator.models import FaceRestorerRef
    from generator.render.device import pick_device
    from generator.render.faces import load_networks, restore_faces

    device = torch.device(pick_device(sys.argv[1] if len(sys.argv) > 1 else "auto"))
    size = 160  # the crafted detector finds one face at the centre of this size
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_face_restorer(Path(tmp), size=size, options={})
        ref = FaceRestorerRef(Path(cfg["model"]), Path(cfg["detection"]), Path(cfg["parsing"]),
                              {}, "bench")
        start = time.perf_counter()
        nets = load_networks(ref, device)
        elapsed = time.perf_counter() - start
        print(f"{device}, {torch.get_num_threads()} threads: load {elapsed:.2f} s")
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    restore_faces(nets, picture, 1.0)  # warm-up
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        out = restore_faces(nets, picture, 0.5)
        runs.append(time.perf_counter() - start)
    assert out.size == picture.size and out.tobytes() != picture.tobytes()
    print(f"restore one face ({size}x{size} picture): best {min(runs):.2f} s of {len(runs)}")
    big = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    start = time.perf_counter()
    with torch.no_grad():
        nets.helper.face_det.detect_faces(big, 0.97)
    print(f"detector alone on 512x512: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
