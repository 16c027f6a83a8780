"""`genimg import` of a few hundred pictures: time, specs vs plain pictures, and the
build after it (which must render nothing).

    python bench/bench_import.py                  # 300 pictures, most of them 512x512
    python bench/bench_import.py --pictures 1000

The pictures are written in each tool's format (``tests/pictures.py``): 60% A1111 PNGs
named as A1111 names them, 10% A1111 JPEGs, 10% ComfyUI one-pass graphs, 10% ComfyUI
hires-fix graphs, 5% InvokeAI, 5% without metadata. Then, each timed as the CLI
command: the import into a new post, `genimg build` (renders nothing: it must say
``rendered 0``), `genimg build --frozen` again (no change), and the same import again
(adds nothing).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from _util import env_for_checkout, fmt_s, genimg_cmd, machine_line, run_timed, table
from PIL import Image

from tests import pictures as P  # the checkout's: _util puts it first on sys.path


def write_pictures(folder: Path, count: int) -> None:
    for i in range(count):
        kind = i % 20
        seed = 1000 + i
        text = P.A1111_TEXT.replace("329790701", str(seed)).replace("64x64", "512x512")
        if kind < 12:
            P.png(folder / f"{i:05d}-{seed}-color-photo-of-an-old-man.png",
                  {"parameters": text}, seed, (512, 512))
        elif kind < 14:
            image_path = folder / f"{i:05d}-{seed}-a-jpeg.jpg"
            P.exif_picture(image_path, text, "JPEG", seed)
            with Image.open(image_path) as small:  # 512x512, as its infotext says
                exif = small.info["exif"]
                small.convert("RGB").resize((512, 512)).save(image_path, "JPEG", exif=exif)
        elif kind < 16:
            graph = P.comfy_graph(seed=seed)
            graph["5"]["inputs"].update(width=512, height=512)
            P.comfy_png(folder / f"ComfyUI_{i:05d}_.png", graph, seed, (512, 512))
        elif kind < 18:
            P.comfy_png(folder / f"ComfyUI_{i:05d}_.png", P.comfy_graph(seed=seed, hires=True),
                        seed)
        elif kind < 19:
            P.invokeai_png(folder / f"invoke-{i:05d}.png", seed, made_with=seed)
        else:
            P.png(folder / f"photo-{i:05d}.png", {}, seed, (512, 512))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/genimg-bench-import"))
    args = parser.parse_args()
    print(machine_line())
    shutil.rmtree(args.workdir, ignore_errors=True)
    src, blog = args.workdir / "outputs", args.workdir / "blog"
    src.mkdir(parents=True)
    (blog / "posts").mkdir(parents=True)
    (blog / "genimg.yaml").write_text("title: Bench\nmodels:\n  default: model.safetensors\n")
    (blog / "model.safetensors").write_bytes(b"a stand-in: keys only hash it")
    write_pictures(src, args.pictures)
    cmd, env = genimg_cmd(), env_for_checkout()
    rows = []
    seconds, out = run_timed([*cmd, "import", "-C", str(blog), str(src), "--title", "Old"],
                             env=env)
    found = re.search(r"imported (\d+) pictures .*: (\d+) as specs, (\d+) as plain", out)
    rows.append(["import", fmt_s(seconds), found.group(0) if found else out.strip()[-80:]])
    for name, extra in (("build", []), ("build --frozen", ["--frozen"])):
        seconds, out = run_timed([*cmd, "build", "-q", "-C", str(blog), *extra], env=env)
        rows.append([name, fmt_s(seconds), out.strip()])
    seconds, out = run_timed([*cmd, "import", "-C", str(blog), str(src), "--title", "Again"],
                             env=env)
    rows.append(["import again", fmt_s(seconds), out.strip().splitlines()[-1]])
    print(table(["step", "time", "result"], rows,
                f"{args.pictures} pictures (most of them 512x512) from {src}"))


if __name__ == "__main__":
    main()
