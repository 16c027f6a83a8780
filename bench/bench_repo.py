"""Repository and site size of a blog whose cache is committed, with and without Git LFS.

Builds a blog of N pictures (``--pictures``, default 300) whose cache PNGs are the size
of Stable Diffusion's (512², ~400 KB: smooth colour fields with fine noise, which PNG
compresses about as well as it does SD's output), commits it twice — once with the
``.gitattributes`` `genimg init` writes (Git LFS), once without — and prints what git
stores, what LFS stores, and the site's size for each ``originals:`` setting, per picture
and scaled to 10,000 pictures.

    python bench/bench_repo.py --pictures 300
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}


def _sd_like_png(seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512] / 512.0
    base = np.stack([np.sin(x * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)], -1)
    base = (base + np.cos(y * rng.uniform(2, 9))[..., None]) * 60 + 128
    noisy = base + rng.normal(0, 5, base.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype("uint8")).save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def _blog(root: Path, pictures: int) -> None:
    from generator.scaffold import init_blog

    init_blog(root, "bench")
    post = next((root / "posts").glob("*.md"))
    rows = "".join(f"- prompt: picture {i}\n  seed: {i}\n" for i in range(pictures))
    post.write_text(post.read_text().split("```gallery")[0] + f"```gallery\n{rows}```\n")
    (root / "genimg.yaml").write_text("title: bench\nmodels:\n  default: model.safetensors\n")
    (root / "model.safetensors").write_bytes(b"fake model: keys only hash it")
    from generator.build import BuildOptions, load_site
    from generator.cache import Cache
    from generator.metadata import png_bytes

    site = load_site(root, BuildOptions())
    cache = Cache(site.config.cache_dir)
    import io

    from PIL import Image
    for index, key in enumerate(site.plan.nodes):
        image = Image.open(io.BytesIO(_sd_like_png(index)))
        cache.put(key, png_bytes(image, f"picture {index}\nSteps: 20, Seed: {index}"),
                  {"width": 512, "height": 512, "preview": False})
    site.resolver.save()
    subprocess.run([sys.executable, "-m", "generator", "build", "--frozen", "-q", "-C",
                    str(root)], check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=subprocess.DEVNULL)


def _rebuild(root: Path, original: str) -> None:
    config = root / "genimg.yaml"
    config.write_text(config.read_text().split("originals:")[0] + f"originals: {original}\n")
    subprocess.run([sys.executable, "-m", "generator", "build", "--frozen", "-q", "-C",
                    str(root)], check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=subprocess.DEVNULL)


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _commit(root: Path, lfs: bool) -> tuple[int, int]:
    """(bytes git stores, bytes LFS stores) after committing the blog."""
    git = [["init", "-q"]] + ([["lfs", "install", "--local"]] if lfs else [])
    for args in [*git, ["add", "-A"], ["commit", "-qm", "blog"], ["gc", "-q"]]:
        subprocess.run(["git", *args], cwd=root, check=True, env=GIT_ENV,
                       stdout=subprocess.DEVNULL)
    lfs_dir = root / ".git" / "lfs"
    git_bytes = _du(root / ".git") - (_du(lfs_dir) if lfs_dir.exists() else 0)
    return git_bytes, _du(lfs_dir) if lfs_dir.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=300)
    n = parser.parse_args().pictures
    scale = 10_000 / n
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        _blog(template, n)
        cache_bytes = _du(template / ".genimg" / "objects")
        site_bytes = _du(template / "site")
        rows = [("cache objects (PNG + sidecar)", cache_bytes, None),
                ("site/, originals: png", site_bytes, None)]
        for original in ("webp", "none"):
            _rebuild(template, original)
            rows.append((f"site/, originals: {original}", _du(template / "site"), None))
        for lfs in (False, True):
            root = Path(tmp) / f"lfs-{lfs}"
            shutil.copytree(template, root, ignore=shutil.ignore_patterns("site", "derived",
                                                                            "state"))
            if not lfs:
                (root / ".gitattributes").unlink()
            git_bytes, lfs_bytes = _commit(root, lfs)
            label = "with Git LFS" if lfs else "without LFS"
            rows.append((f"git repository, {label}", git_bytes, None))
            if lfs:
                rows.append(("LFS store (not in git history)", lfs_bytes, None))
    print(f"{n} pictures of 512²; 10,000 scaled linearly")
    print(f"{'':40} {'total':>10} {'per picture':>12} {'10,000 pictures':>16}")
    for label, size, _ in rows:
        print(f"{label:40} {size / 1e6:8.1f} MB {size / n / 1e3:9.1f} KB "
              f"{size * scale / 1e9:13.2f} GB")


if __name__ == "__main__":
    main()
