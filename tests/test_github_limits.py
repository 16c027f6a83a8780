"""A blog on GitHub: cache pictures in Git LFS, the workflow keeps derived pictures,
and the build warns before the site passes GitHub Pages' limits (issue 20)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import yaml

from generator import output
from generator.scaffold import WORKFLOW_PATH
from tests.helpers import genimg, git, isolate_git

needs_lfs = pytest.mark.skipif(shutil.which("git-lfs") is None,
                               reason="needs git-lfs (.ci/run installs it)")


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.fixture
def blog(tmp_path: Path) -> Path:
    root = tmp_path / "blog"
    assert genimg("init", root).exit_code == 0
    return root


def test_workflow_checks_out_lfs_and_caches_derived_pictures(blog: Path) -> None:
    steps = yaml.safe_load((blog / WORKFLOW_PATH).read_text())["jobs"]["build"]["steps"]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert steps[uses.index("actions/checkout")]["with"]["lfs"] is True
    cache = steps[uses.index("actions/cache")]
    assert cache["with"]["path"] == ".genimg/derived"
    assert "hashFiles('.genimg/objects/**/*.json')" in cache["with"]["key"]
    assert cache["with"]["key"].startswith(cache["with"]["restore-keys"])
    build = next(i for i, s in enumerate(steps) if "genimg build" in s.get("run", ""))
    assert uses.index("actions/cache") < build


@needs_lfs
def test_cache_pictures_are_committed_to_lfs_and_status_says_so(blog: Path) -> None:
    git(blog, "init", "-q")
    git(blog, "lfs", "install", "--local")
    assert genimg("build", "--preview", "-q", "-C", blog).exit_code == 0
    git(blog, "add", "-A")
    git(blog, "commit", "-qm", "first")
    pngs = sorted(p.relative_to(blog).as_posix() for p in blog.glob(".genimg/objects/*/*.png"))
    assert pngs and sorted(git(blog, "lfs", "ls-files", "-n").split()) == pngs
    blob = git(blog, "cat-file", "-p", f"HEAD:{pngs[0]}")
    assert blob.startswith("version https://git-lfs.github.com/spec/v1")
    sidecar = pngs[0].replace(".png", ".json")
    assert git(blog, "cat-file", "-p", f"HEAD:{sidecar}").startswith("{")  # plain git

    status = genimg("cache", "status", "-C", blog)
    assert status.exit_code == 0, status.output
    assert f"committed: {len(pngs)} (" in status.output
    assert f"{len(pngs)} of them in Git LFS" in status.output
    assert "only on this machine" not in status.output

    post = next(blog.glob("posts/*.md"))
    post.write_text(post.read_text() + "\n```gallery\n- prompt: a new one\n  seed: 9\n```\n")
    assert genimg("build", "--preview", "-q", "-C", blog).exit_code == 0
    status = genimg("cache", "status", "-C", blog)
    assert "only on this machine: 1 (" in status.output


def test_status_outside_git_is_one_line(blog: Path) -> None:
    result = genimg("cache", "status", "-C", blog)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "not a git repository" in result.stderr


def test_pictures_committed_without_lfs_are_flagged(blog: Path) -> None:
    (blog / ".gitattributes").unlink()
    git(blog, "init", "-q")
    assert genimg("build", "--preview", "-q", "-C", blog).exit_code == 0
    git(blog, "add", "-A")
    git(blog, "commit", "-qm", "first")
    status = genimg("cache", "status", "-C", blog).output
    assert "0 of them in Git LFS" in status and "are not in Git LFS" in status


def test_build_warns_before_the_site_passes_pages_limits(blog: Path, monkeypatch) -> None:
    result = genimg("build", "--preview", "-C", blog)
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert "; site " in result.output and " MB" in result.output
    total, largest, name = output.site_size(blog / "site")
    assert total > largest > 0 and name
    monkeypatch.setattr(output, "PAGES_SITE_LIMIT", total)
    monkeypatch.setattr(output, "PAGES_FILE_LIMIT", largest)
    post = next(blog.glob("posts/*.md"))  # a text edit: nothing measured, nothing said
    post.write_text(post.read_text() + "\nMore text.\n")
    result = genimg("build", "--preview", "-C", blog)
    assert result.exit_code == 0 and "; site " not in result.output and not result.stderr
    next((blog / "site" / "images").glob("*.png")).unlink()  # a picture to write: measured
    result = genimg("build", "--preview", "-C", blog)
    assert result.exit_code == 0
    assert "GitHub Pages publishes at most 1 GB" in result.stderr
    assert f"warning: {name} is " in result.stderr


def _user_comment(webp: Path) -> str:
    from PIL import Image

    with Image.open(webp) as image:
        raw = image.getexif().get_ifd(0x8769)[0x9286]
    assert raw.startswith(b"UNICODE\0")
    return raw[8:].decode("utf-16-be")


def test_originals_as_lossless_webp_keep_pixels_and_infotext(blog: Path) -> None:
    from PIL import Image, ImageChops

    assert genimg("build", "--preview", "-q", "-C", blog).exit_code == 0
    png_total = sum(p.stat().st_size for p in (blog / "site" / "images").glob("*.png"))
    pngs = {p.stem: p.read_bytes() for p in (blog / "site" / "images").glob("*.png")}
    config = blog / "genimg.yaml"
    config.write_text(config.read_text() + "originals: webp\n")
    assert genimg("build", "--preview", "-q", "-C", blog).exit_code == 0
    images = blog / "site" / "images"
    assert not list(images.glob("*.png"))
    for stem, png_bytes in pngs.items():
        webp = images / f"{stem}.webp"
        with Image.open(io.BytesIO(png_bytes)) as png, Image.open(webp) as lossless:
            assert ImageChops.difference(png.convert("RGB"), lossless.convert("RGB")).getbbox() \
                is None  # the same pixels
            assert _user_comment(webp) == png.info["parameters"]
            # typed UNDEFINED, as piexif writes it (A1111, sd-prompt-reader read it so)
            assert b"\x92\x86\x00\x07" in lossless.info["exif"]
    page = next((blog / "site" / "posts").glob("*/index.html")).read_text()
    assert f'href="/images/{stem}.webp"' in page and ">Download original WEBP</a>" in page
    webp_total = sum((images / f"{s}.webp").stat().st_size for s in pngs)
    assert webp_total < png_total


def test_originals_none_leaves_them_out_and_links_elsewhere(blog: Path) -> None:
    config = blog / "genimg.yaml"
    config.write_text(config.read_text() + "originals: none\n"
                      "originals_url: https://example.org/pictures/\n")
    assert genimg("build", "--preview", "-q", "-C", blog).exit_code == 0
    images = blog / "site" / "images"
    thumbs = sorted(p.name for p in images.iterdir())
    # thumbnails, and each post's share card (issue 15)
    assert thumbs and all(name.endswith(("-512.webp", "-1024.webp", "-card.jpg"))
                          for name in thumbs)
    page = next((blog / "site" / "posts").glob("*/index.html")).read_text()
    stem = thumbs[0].rsplit("-", 1)[0]
    assert f'href="https://example.org/pictures/{stem}.png"' in page
    assert f'href="/images/{stem}-512.webp"' in page  # a click opens the largest thumbnail


def test_originals_must_be_known(blog: Path) -> None:
    config = blog / "genimg.yaml"
    config.write_text(config.read_text() + "originals: jpeg\n")
    result = genimg("check", "-C", blog)
    assert result.exit_code == 1
    assert "unknown originals 'jpeg'; expected one of png, webp, none" in result.stderr
