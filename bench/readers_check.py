"""Do other tools read genimg's pictures? sd-parsers and sd-prompt-reader on genimg's
PNGs (``originals: png``) and lossless WebPs (``originals: webp``).

Not a test: the readers pin Pillow versions that clash with genimg's and with each
other, so each lives in its own virtual environment, run here as a subprocess:

    python3 -m venv /work/venvs/sd-parsers && /work/venvs/sd-parsers/bin/pip install sd-parsers
    python3 -m venv /work/venvs/sd-prompt-reader && \\
        /work/venvs/sd-prompt-reader/bin/pip install sd-prompt-reader

(``--venvs DIR`` if they live elsewhere.) A preview build makes the pictures (their
infotext is what a real build writes); the table says, for every infotext field genimg
wrote, whether each reader gives it back: ``yes`` (a field of its own, same value),
``text`` (only in the settings text it shows), ``WRONG`` (another value) or ``-``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _util import REPO

POST = """\
---
title: Readers
---

```gallery
- prompt: "a (red:1.2) fox,\\n[blurry] forest"
  negative_prompt: "lowres, (bad hands:1.3)"
  prompt_syntax: a1111
  seed: 42
  steps: 24
  sampler: DPM++ 2M
  schedule_type: Karras
  sampling: a1111
  cfg: 6.5
  width: 512
  height: 768
  clip_skip: 2
  noise: nv
  subseed: 7
  subseed_strength: 0.25
  id: fox
- prompt: a lighthouse at dusk, "quoted", 100%
  seed: 7
  sampler: Euler a
  eta_noise_seed_delta: 31337
  width: 640
  height: 512
  restore_faces: true
- mode: img2img
  from: fox
  prompt: a fox in snow
  strength: 0.55
  seed: 9
```
"""

#: Each reader, as a program printing {file: {field label: value}} (A1111's labels).
SD_PARSERS = """
import json, sys
from sd_parsers import ParserManager
NAMES = {"cfg_scale": "CFG scale", "seed": "Seed", "steps": "Steps", "scheduler":
         "Schedule type", "ensd": "ENSD", "denoising_strength": "Denoising strength"}
out = {}
for path in sys.argv[1:]:
    info = ParserManager().parse(path)
    got = {}
    if info is not None:
        got["tool"] = str(info.generator.value)
        for sampler in info.samplers:
            got["Sampler"] = sampler.name
            got.update({NAMES.get(k, k): str(v) for k, v in sampler.parameters.items()})
            if sampler.model:
                got["Model"], got["Model hash"] = sampler.model.name, sampler.model.hash
            got["prompt"] = "\\n".join(p.value for p in sampler.prompts)
            if sampler.negative_prompts:
                got["Negative prompt"] = "\\n".join(p.value for p in sampler.negative_prompts)
        got.update({k: str(v) for k, v in info.metadata.items()})
    out[path] = got
print(json.dumps(out))
"""
SD_PROMPT_READER = """
import json, sys
from sd_prompt_reader.image_data_reader import ImageDataReader
NAMES = {"model": "Model", "sampler": "Sampler", "seed": "Seed", "cfg": "CFG scale",
         "steps": "Steps", "size": "Size"}
out = {}
for path in sys.argv[1:]:
    reader = ImageDataReader(path)
    got = {"tool": reader.tool.replace("\\n", " ")} if reader.tool else {}
    if reader.tool:
        got["prompt"] = reader.positive
        if reader.negative:
            got["Negative prompt"] = reader.negative
        got.update({NAMES[k]: v for k, v in reader.parameter.items() if v.strip()})
        got["settings text"] = reader.setting
    out[path] = got
print(json.dumps(out))
"""


def build(blog: Path, originals: str) -> list[Path]:
    """A preview build with ``originals``; its full-size pictures (they hold infotext)."""
    (blog / "posts").mkdir(parents=True, exist_ok=True)
    (blog / "genimg.yaml").write_text(f"title: Readers\nbase_url: /\noriginals: {originals}\n")
    (blog / "posts/2024-01-01-readers.md").write_text(POST)
    from generator.build import BuildOptions, build_site

    build_site(blog, BuildOptions(preview=True))
    return sorted(p for p in (blog / "site/images").glob(f"*.{originals}")
                  if not p.stem.rsplit("-", 1)[-1].isdigit())


def read(venv: Path, program: str, files: list[Path]) -> dict[str, dict[str, str]]:
    python = venv / "bin/python"
    if not python.exists():
        sys.exit(f"{python} is missing: see this script's docstring")
    done = subprocess.run([str(python), "-c", program, *map(str, files)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def verdict(label: str, value: str, got: dict[str, str]) -> str:
    if label in got:
        return "yes" if got[label].strip() == value.strip() else f"WRONG ({got[label]!r})"
    text = got.get("settings text", "")
    return "text" if f"{label}: {value}" in text else "-"


def main() -> None:
    from generator.metadata import parse_infotext
    from generator.readers import read_picture

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venvs", type=Path, default=Path("/work/venvs"))
    venvs = parser.parse_args().venvs
    readers = {"sd-parsers": (venvs / "sd-parsers", SD_PARSERS),
               "sd-prompt-reader": (venvs / "sd-prompt-reader", SD_PROMPT_READER)}
    rows: dict[str, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory() as work:
        for originals in ("png", "webp"):
            files = build(Path(work) / originals, originals)
            answers = {name: read(venv, program, files)
                       for name, (venv, program) in readers.items()}
            for file in files:
                fields = parse_infotext(read_picture(file).texts["parameters"])
                for label, value in fields.items():
                    row = rows.setdefault(label, {})
                    for name in readers:
                        row.setdefault(f"{name} {originals.upper()}", []).append(
                            verdict(label, value, answers[name][str(file)]))
    columns = [f"{name} {kind}" for kind in ("PNG", "WEBP") for name in readers]
    print("| field | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for label, row in rows.items():
        cells = [", ".join(sorted(set(row.get(c, ["-"])))) for c in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(textwrap.dedent(f"""
        {sum(len(v[columns[0]]) for v in rows.values())} fields in 3 pictures, read from
        {REPO.name}'s preview build; 'yes, text': in some pictures as a field, in others
        only in the settings text."""))


if __name__ == "__main__":
    main()
