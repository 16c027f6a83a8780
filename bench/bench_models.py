"""What loading a single checkpoint file costs against a diffusers folder, and what
switching LoRAs costs between two batches (issue 12).

Builds a model of each architecture from configs (random weights, nothing downloaded),
saves it as a diffusers folder and as an original-layout single file, then times, in
one process, alternating: ``from_pretrained`` of the folder, genimg's single-file load
(architecture detected, configs written, diffusers' key conversion), and genimg's LoRA
switch (unload one kohya-layout LoRA, load another, set its weight).

    python bench/bench_models.py                       # tiny SD 1.x, SD 2.x, SDXL, CPU
    python bench/bench_models.py --full-size --arch sd1 --repeat 3

``--full-size`` uses the architecture's published sizes (generator/render/configs/):
SD 1.5 is 1.1 B parameters (4.3 GB in float32), SDXL 3.5 B.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import REPO

sys.path.insert(0, str(REPO / "tests"))


def full_size(workdir: Path, arch: str) -> Any:
    """The architecture at its published sizes, random weights."""
    import diffusers
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    from generator.render.singlefile import template, write_tokenizer

    base = template(arch)
    drop = ("_class_name", "architectures", "model_type")
    parts: dict[str, Any] = {
        "unet": diffusers.UNet2DConditionModel.from_config(base["unet"]),
        "vae": diffusers.AutoencoderKL.from_config(base["vae"]),
        "scheduler": getattr(diffusers, base["scheduler"]["_class_name"]).from_config(
            base["scheduler"]),
    }
    for name in ("text_encoder", "text_encoder_2"):
        if name in base:
            model = CLIPTextModelWithProjection if name.endswith("2") else CLIPTextModel
            config = {k: v for k, v in base[name].items() if k not in drop}
            parts[name] = model(CLIPTextConfig(**config))
            tokenizer = name.replace("text_encoder", "tokenizer")
            write_tokenizer(workdir / tokenizer, base[tokenizer])
            parts[tokenizer] = CLIPTokenizer.from_pretrained(str(workdir / tokenizer))
    if arch != "sdxl":
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return getattr(diffusers, base["pipeline"])(**parts)


def save(workdir: Path, arch: str, big: bool) -> tuple[Path, Path, Any]:
    from safetensors.torch import save_file
    from tinymodels import build_arch_pipeline, to_ldm_arch_state_dict

    pipe = full_size(workdir, arch) if big else build_arch_pipeline(workdir, arch)
    folder, single = workdir / f"{arch}-folder", workdir / f"{arch}.safetensors"
    pipe.save_pretrained(folder, safe_serialization=True)
    save_file(to_ldm_arch_state_dict(pipe, arch), str(single))
    return folder, single, pipe


def timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench(arch: str, big: bool, repeat: int) -> dict[str, float]:
    import diffusers
    import torch
    from tinymodels import save_tiny_lora

    from generator.models import FileRef
    from generator.render.base import RenderTask
    from generator.render.diffusion import _Model, _use_loras
    from generator.render.singlefile import load, template
    from generator.specs import parse_image

    with tempfile.TemporaryDirectory() as tmp:
        folder, single, pipe = save(Path(tmp), arch, big)
        loras = [save_tiny_lora(pipe, Path(tmp) / f"l{i}.safetensors", rank=32 if big else 4,
                                seed=i) for i in range(2)]
        del pipe
        cls = getattr(diffusers, template(arch)["pipeline"])
        options = dict(local_files_only=True, torch_dtype=torch.float32)
        if arch != "sdxl":
            options.update(safety_checker=None, requires_safety_checker=False)
        times: dict[str, list[float]] = {"folder": [], "single file": [], "LoRA switch": []}
        for _ in range(repeat):
            times["folder"].append(timed(lambda: cls.from_pretrained(str(folder), **options)))
            times["single file"].append(timed(lambda: load(single, dict(options))))
        model = _Model(cls.from_pretrained(str(folder), **options), None, None)
        spec = parse_image({"prompt": "a cat"}, _where())
        tasks = [RenderTask("k", spec, loras=((FileRef(f"l{i}", str(f), f"sha256:{i}"), 0.8),))
                 for i, f in enumerate(loras)]
        _use_loras(model, tasks[1])  # warm-up
        for i in range(repeat * 2):
            times["LoRA switch"].append(timed(lambda i=i: _use_loras(model, tasks[i % 2])))
    return {name: statistics.median(values) for name, values in times.items()}


def _where() -> Any:
    from generator.errors import Location

    return Location("bench.md", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("sd1", "sd2", "sdxl"), action="append")
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| model | folder load | single-file load | ratio | LoRA switch |")
    print("| --- | --- | --- | --- | --- |")
    for arch in args.arch or ["sd1", "sd2", "sdxl"]:
        got = bench(arch, args.full_size, args.repeat)
        size = "full size" if args.full_size else "tiny"
        print(f"| {arch} ({size}) | {got['folder']:.2f} s | {got['single file']:.2f} s | "
              f"{got['single file'] / got['folder']:.2f} | {got['LoRA switch']:.3f} s |")


if __name__ == "__main__":
    main()
