"""`genimg init` and `genimg new`: a blog that builds, a valid workflow, no overwrites."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
import yaml

from generator.content import load_post
from generator.scaffold import WORKFLOW_PATH
from tests.helpers import genimg


@pytest.fixture
def blog(tmp_path: Path) -> Path:
    root = tmp_path / "myblog"
    result = genimg("init", root, "--title", "Mon blog: test")
    assert result.exit_code == 0, result.output
    return root


def test_init_writes_a_blog_that_checks_and_builds(blog: Path) -> None:
    for name in ("genimg.yaml", ".gitignore", WORKFLOW_PATH):
        assert (blog / name).is_file(), name
    posts = list((blog / "posts").glob("*.md"))
    assert len(posts) == 1 and "```gallery" in posts[0].read_text()
    config = yaml.safe_load((blog / "genimg.yaml").read_text())
    assert config["title"] == "Mon blog: test"
    # a new blog reads prompts and draws noise as A1111 does
    assert config["defaults"]["prompt_syntax"] == "a1111" and config["defaults"]["noise"] == "nv"
    assert config["defaults"]["sampling"] == "a1111"

    check = genimg("check", "-C", blog)
    assert check.exit_code == 0, check.output
    assert "1 posts, 2 pictures" in check.output
    build = genimg("build", "-C", blog, "--preview", "-q")
    assert build.exit_code == 0, build.output
    assert (blog / "site" / "index.html").is_file()
    assert list((blog / "site" / "images").glob("*.png"))


def test_workflow_builds_frozen_and_deploys_to_pages(blog: Path) -> None:
    flow = yaml.safe_load((blog / WORKFLOW_PATH).read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert flow["permissions"]["pages"] == "write"
    assert flow["permissions"]["id-token"] == "write"
    steps = [step for job in flow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    runs = " ".join(step.get("run", "") for step in steps)
    for action in ("actions/checkout", "actions/configure-pages",
                   "actions/upload-pages-artifact", "actions/deploy-pages"):
        assert action in uses, action
    assert uses.index("actions/configure-pages") < uses.index("actions/upload-pages-artifact")
    assert "genimg build --frozen" in runs
    assert "pip install" in runs and "genimg" in runs
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "site"
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"


def test_gitignore_ignores_the_site_but_not_the_cache(blog: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=blog, check=True)

    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=blog)
        return done.returncode == 0

    assert ignored("site/index.html")
    assert ignored(".genimg/lock")
    assert ignored(".genimg/derived/abc-512.webp")
    assert ignored(".genimg/state/posts/abc.json")
    assert not ignored(".genimg/objects/ab/abcdef.png")
    assert not ignored(".genimg/objects/ab/abcdef.json")
    assert not ignored(".genimg/fingerprints.json")
    assert not ignored("posts/2024-01-01-x.md")


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    (root / ".gitignore").write_text("mine\n")
    result = genimg("init", root)
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output and ".gitignore" in result.output
    assert (root / ".gitignore").read_text() == "mine\n"
    assert not (root / "genimg.yaml").exists()
    assert not (root / "posts").exists()


def test_init_twice_refuses(blog: Path) -> None:
    (blog / "genimg.yaml").write_text("title: edited\n")
    result = genimg("init", blog)
    assert result.exit_code == 1
    assert (blog / "genimg.yaml").read_text() == "title: edited\n"


def test_new_post_english(blog: Path) -> None:
    result = genimg("new", "-C", blog, "Hello World: part 2", "--date", "2024-05-01")
    assert result.exit_code == 0, result.output
    path = blog / "posts" / "2024-05-01-hello-world-part-2.md"
    assert path.is_file()
    assert result.output.strip().endswith("2024-05-01-hello-world-part-2.md")
    post = load_post(path, {})
    assert post.title == "Hello World: part 2"
    assert post.date == dt.date(2024, 5, 1)
    assert post.tags == () and post.draft is True
    assert post.slug == "hello-world-part-2"
    # a draft: left out of a normal check, counted with --drafts
    assert "1 posts" in genimg("check", "-C", blog).output
    assert "2 posts" in genimg("check", "-C", blog, "--drafts").output


def test_new_post_cjk_title_keeps_cjk_slug(blog: Path) -> None:
    result = genimg("new", "-C", blog, "你好，世界", "--date", "2024-05-02", "--no-draft")
    assert result.exit_code == 0, result.output
    path = blog / "posts" / "2024-05-02-你好-世界.md"
    assert path.is_file()
    post = load_post(path, {})
    assert post.title == "你好，世界" and post.slug == "你好-世界" and not post.draft
    build = genimg("build", "-C", blog, "--preview", "-q")
    assert build.exit_code == 0, build.output
    assert (blog / "site" / "posts" / "你好-世界" / "index.html").is_file()


def test_new_defaults_to_today(blog: Path) -> None:
    result = genimg("new", "-C", blog, "Today")
    assert result.exit_code == 0
    assert (blog / "posts" / f"{dt.date.today().isoformat()}-today.md").is_file()


def test_new_refuses_to_overwrite(blog: Path) -> None:
    args = ("new", "-C", blog, "Same title", "--date", "2024-05-03")
    assert genimg(*args).exit_code == 0
    path = blog / "posts" / "2024-05-03-same-title.md"
    path.write_text("my words\n")
    again = genimg(*args)
    assert again.exit_code == 1
    assert "refusing to overwrite" in again.output
    assert path.read_text() == "my words\n"


def test_new_outside_a_blog_fails_clearly(tmp_path: Path) -> None:
    result = genimg("new", "-C", tmp_path, "Lost")
    assert result.exit_code == 1
    assert "not a genimg blog" in result.output
    assert not list(tmp_path.rglob("*.md"))
