"""End to end through the real build: preview pictures, caching, no-change rebuilds."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from generator.build import BuildOptions, build_site, load_site
from generator.cache import Cache
from generator.metadata import parse_infotext, png_bytes
from tests.helpers import REPO, MakeBlog, genimg


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root: (sha256, mtime_ns)."""
    return {
        p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_preview_build_of_the_example_blog(example_blog: Path) -> None:
    report = build_site(example_blog, BuildOptions(preview=True))
    site = example_blog / "site"
    assert report.posts == 3 and report.rendered > 0
    for page in ("index.html", "posts/ai-images/index.html", "archive/index.html",
                 "tags/美丽图片/index.html", "feed.xml", "sitemap.xml", "404.html",
                 "static/style.css", ".genimg-preview"):
        assert (site / page).is_file(), page
    html = (site / "posts/ai-images/index.html").read_text()
    assert html.count('<figure class="picture"') == 18
    pngs = sorted((site / "images").glob("*.png"))
    assert any(p.name.startswith("329790701-color-photo-of-an-old-man-") for p in pngs)
    with Image.open(next(p for p in pngs if p.name.startswith("329790701-"))) as image:
        info = parse_infotext(image.info["parameters"])
    assert info["prompt"] == "color photo of an old man" and info["Seed"] == "329790701"
    assert info["Face restoration"] == "GFPGAN" and info["Preview"] == "genimg placeholder"
    assert list((site / "images").glob("*-512.webp"))


def test_second_build_renders_and_rewrites_nothing(example_blog: Path) -> None:
    build_site(example_blog, BuildOptions(preview=True))

    def state() -> tuple[dict, dict]:
        cache = tree(example_blog / ".genimg")
        cache.pop("lock")  # holds the pid of the last build, by design
        return tree(example_blog / "site"), cache

    before = state()
    report = build_site(example_blog, BuildOptions(preview=True))
    assert report.rendered == 0 and report.files_written == 0 and report.files_removed == 0
    assert state() == before


def test_changed_prompt_rerenders_only_it_and_its_descendants(simple_blog: Path) -> None:
    build_site(simple_blog, BuildOptions(preview=True))
    post = simple_blog / "posts" / "2022-10-30-pair.md"
    post.write_text(post.read_text().replace("high quality cg", "watercolour"))
    assert build_site(simple_blog, BuildOptions(preview=True)).rendered == 1
    post.write_text(post.read_text().replace("high quality photo", "old photo"))
    assert build_site(simple_blog, BuildOptions(preview=True)).rendered == 2
    assert len(list((simple_blog / "site/images").glob("*.png"))) == 2  # stale ones removed


def _fill_cache(root: Path) -> None:
    """Put a picture for every node of the real (non-preview) plan into the cache."""
    site = load_site(root)
    cache = Cache(site.config.cache_dir)
    for key in site.plan.nodes:
        image = Image.new("RGB", (64, 64), "#" + key[:6])
        cache.put(key, png_bytes(image, "cached"), {"width": 64, "height": 64, "preview": False})
    site.resolver.save()


FAKE_MODEL_CONFIG = "title: T\nmodels:\n  default: model.safetensors\n"


def test_fully_cached_build_never_imports_torch(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-10-30-a.md": "```gallery\n- prompt: x\n  seed: 1\n```\n"},
                     config=FAKE_MODEL_CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    _fill_cache(root)
    code = (
        "import sys; from pathlib import Path;"
        "from generator.build import build_site;"
        f"r = build_site(Path({str(root)!r}));"
        "print(r.rendered, 'torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.split()
    assert out == ["0", "False", "False"]


def test_frozen_build_uses_recorded_fingerprints_without_the_model(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-10-30-a.md": "```gallery\n- prompt: x\n  seed: 1\n```\n"},
                     config=FAKE_MODEL_CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    _fill_cache(root)
    (root / "model.safetensors").unlink()  # CI has no model: the recorded fingerprint serves
    recorded = json.loads((root / ".genimg/fingerprints.json").read_text())
    assert recorded["default = model.safetensors"].startswith("sha256:")
    result = genimg("build", "--frozen", "-q", "-C", root)
    assert result.exit_code == 0, result.stderr
    assert len(list((root / "site/images").glob("*.png"))) == 1


def test_build_without_a_model_fails_fast_and_says_how_to_proceed(example_blog: Path) -> None:
    result = genimg("build", "-C", example_blog)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and not (example_blog / "site").exists()
    first = result.stderr.splitlines()[0]
    assert "model 'default' not found" in first and "CompVis/stable-diffusion-v1-4" in first
    assert "Hugging Face cache" in first and "--preview" in first and "--frozen" in first


def test_bad_spec_is_one_line_with_file_and_line_and_site_untouched(simple_blog: Path) -> None:
    build_site(simple_blog, BuildOptions(preview=True))
    before = tree(simple_blog / "site")
    post = simple_blog / "posts" / "2022-10-30-pair.md"
    post.write_text(post.read_text().replace("seed: 482861532", "seed: 482861532\n  widht: 64"))
    result = genimg("build", "--preview", "-C", simple_blog)
    assert result.exit_code == 1
    assert result.stderr == ("error: posts/2022-10-30-pair.md:13: unknown image key 'widht' "
                   "(did you mean 'width'?)\n")
    assert tree(simple_blog / "site") == before


def test_check_and_info_commands(simple_blog: Path, example_blog: Path) -> None:
    result = genimg("check", "-C", example_blog)
    assert result.exit_code == 0 and "3 posts, 30 pictures" in result.stdout
    result = genimg("check", "-C", simple_blog)  # no models: in genimg.yaml
    assert result.exit_code == 1 and "unknown model 'default'" in result.stderr
    build_site(simple_blog, BuildOptions(preview=True))
    png = next((simple_blog / "site/images").glob("3509550471-*.png"))
    result = genimg("info", png)
    assert result.exit_code == 0
    out = result.stdout
    assert "prompt: high quality cg, beautiful young girl" in out and "seed: 3509550471" in out
    assert "mode: img2img" in out and "strength: 0.6" in out


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_cli_basics(flag: str) -> None:
    result = genimg(flag)
    assert result.exit_code == 0 and result.stdout


def test_a_renamed_model_source_never_reuses_the_old_fingerprint(make_blog: MakeBlog) -> None:
    root = make_blog({"2022-10-30-a.md": "```gallery\n- prompt: x\n  seed: 1\n```\n"},
                     config=FAKE_MODEL_CONFIG)
    (root / "model.safetensors").write_bytes(b"not really a model")
    _fill_cache(root)
    (root / "model.safetensors").unlink()
    config = root / "genimg.yaml"
    config.write_text(config.read_text().replace("model.safetensors", "other.safetensors"))
    result = genimg("build", "--frozen", "-q", "-C", root)  # the old pictures are not served
    assert result.exit_code == 1 and "not in the cache" in result.stderr


def test_never_prunes_a_folder_genimg_did_not_write(simple_blog: Path) -> None:
    docs = simple_blog / "site"
    docs.mkdir()
    (docs / "handbook.html").write_text("hand-written")
    result = genimg("build", "--preview", "-q", "-C", simple_blog)
    assert result.exit_code == 1 and "holds files genimg did not write" in result.stderr
    assert [p.name for p in docs.iterdir()] == ["handbook.html"]
    (docs / "handbook.html").unlink()
    assert genimg("build", "--preview", "-q", "-C", simple_blog).exit_code == 0
    assert (docs / ".genimg-site").is_file()
