"""`genimg publish`: site/ -> one gh-pages commit per change, pushed; previews refused."""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import Result
from PIL import Image

from generator.publish import preview_problems
from tests.helpers import genimg, git, isolate_git

POST = """
    ---
    title: Hello
    date: 2024-01-01
    tags: [notes]
    ---

    Text only: a real build needs no model.
"""
CONFIG = """
    title: Published
    base_url: https://blog.example.com/
    publish:
      cname: blog.example.com
"""


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def errors(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    return bare


def in_git(root: Path, remote: Path | None) -> Path:
    git(root, "init", "-q", "-b", "main")
    if remote is not None:
        git(root, "remote", "add", "origin", str(remote))
    return root


@pytest.fixture
def blog(make_blog, remote: Path) -> Path:
    return in_git(make_blog({"2024-01-01-hello.md": POST}, config=CONFIG), remote)


def commits(bare: Path, branch: str = "gh-pages") -> list[str]:
    done = subprocess.run(["git", "rev-list", branch], cwd=bare, capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else []


def checkout(bare: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--branch", "gh-pages", str(bare), str(dest)],
                   check=True)
    return dest


def tree_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def test_publish_mirrors_site_with_nojekyll_and_cname(blog: Path, remote: Path,
                                                      tmp_path: Path) -> None:
    result = genimg("publish", "-C", blog)
    assert result.exit_code == 0, result.output
    assert "published" in result.output and "origin/gh-pages" in result.output
    assert len(commits(remote)) == 1
    out = checkout(remote, tmp_path / "pages")
    site = blog / "site"
    assert tree_files(out) == tree_files(site) | {".nojekyll", "CNAME"}
    for rel in tree_files(site):
        assert filecmp.cmp(site / rel, out / rel, shallow=False), rel
    assert (out / "CNAME").read_text() == "blog.example.com\n"
    assert (out / ".nojekyll").read_bytes() == b""
    # The writer's own branch, index and working tree are untouched.
    assert git(blog, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(blog, "branch", "--show-current") == "main"
    assert git(blog, "rev-parse", "gh-pages") == commits(remote)[0]
    message = git(remote, "log", "-1", "--format=%s%n%b", "gh-pages")
    assert message.startswith("Publish site") and "genimg" in message


def test_unchanged_republish_makes_no_commit_and_a_change_makes_one(
        blog: Path, remote: Path) -> None:
    assert genimg("publish", "-C", blog).exit_code == 0
    first = commits(remote)
    again = genimg("publish", "-C", blog)
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output
    assert commits(remote) == first

    post = blog / "posts" / "2024-01-01-hello.md"
    post.write_text(post.read_text() + "\nOne more line.\n")
    changed = genimg("publish", "-C", blog)
    assert changed.exit_code == 0, changed.output
    history = commits(remote)
    assert len(history) == 2
    assert git(remote, "rev-parse", "gh-pages^") == first[0]  # on top of the previous tip
    assert "One more line." in git(remote, "show", "gh-pages:posts/hello/index.html")


def test_removed_post_disappears_from_the_branch(blog: Path, remote: Path) -> None:
    (blog / "posts" / "2024-02-01-second.md").write_text("---\ntitle: Second\n---\nhi\n")
    assert genimg("publish", "-C", blog).exit_code == 0
    assert "posts/second/index.html" in git(remote, "ls-tree", "-r", "--name-only", "gh-pages")
    (blog / "posts" / "2024-02-01-second.md").unlink()
    assert genimg("publish", "-C", blog).exit_code == 0
    assert "posts/second/" not in git(remote, "ls-tree", "-r", "--name-only", "gh-pages")
    assert len(commits(remote)) == 2


def test_rejected_push_fails_clearly_and_fetch_then_publish_works(
        blog: Path, remote: Path, tmp_path: Path) -> None:
    assert genimg("publish", "-C", blog).exit_code == 0
    # Someone else publishes an unrelated commit to the remote's gh-pages.
    other = checkout(remote, tmp_path / "other")
    (other / "elsewhere.txt").write_text("from another machine\n")
    git(other, "add", "elsewhere.txt")
    git(other, "commit", "-qm", "elsewhere")
    git(other, "push", "-q", "origin", "gh-pages")
    remote_tip = commits(remote)[0]
    local_tip = git(blog, "rev-parse", "gh-pages")

    post = blog / "posts" / "2024-01-01-hello.md"
    post.write_text(post.read_text() + "\nEdited.\n")
    result = genimg("publish", "-C", blog)
    assert result.exit_code == 1
    lines = errors(result)
    assert len(lines) == 1, result.stderr
    assert "rejected" in lines[0] and "git fetch origin" in lines[0]
    assert commits(remote)[0] == remote_tip
    assert git(blog, "rev-parse", "gh-pages") == local_tip  # local branch not moved

    git(blog, "fetch", "-q", "origin")
    retry = genimg("publish", "-C", blog)
    assert retry.exit_code == 0, retry.output
    assert git(remote, "rev-parse", "gh-pages^") == remote_tip
    # The branch mirrors site/: the stray file from elsewhere is gone.
    assert "elsewhere.txt" not in git(remote, "ls-tree", "-r", "--name-only", "gh-pages")


def test_missing_remote_is_refused(blog: Path, remote: Path, tmp_path: Path) -> None:
    named = genimg("publish", "-C", blog, "--remote", "upstream")
    assert named.exit_code == 1
    assert len(errors(named)) == 1
    assert "no git remote named 'upstream'" in errors(named)[0]
    gone = genimg("publish", "-C", blog, "--remote", str(tmp_path / "nowhere.git"))
    assert gone.exit_code == 1
    assert len(errors(gone)) == 1 and "cannot push" in errors(gone)[0]
    assert commits(remote) == []


def test_remote_from_config(make_blog, remote: Path, tmp_path: Path) -> None:
    config = CONFIG.replace("publish:\n", "publish:\n      remote: pages\n"
                            "      message: New site\n")
    root = in_git(make_blog({"2024-01-01-hello.md": POST}, config=config), None)
    git(root, "remote", "add", "pages", str(remote))
    result = genimg("publish", "-C", root)
    assert result.exit_code == 0, result.output
    assert "pages/gh-pages" in result.output
    assert git(remote, "log", "-1", "--format=%s", "gh-pages") == "New site"


def test_frozen_publish(blog: Path, remote: Path) -> None:
    result = genimg("publish", "-C", blog, "--frozen")
    assert result.exit_code == 0, result.output
    assert len(commits(remote)) == 1


def test_failed_build_is_refused(blog: Path, remote: Path) -> None:
    (blog / "posts" / "2024-03-01-bad.md").write_text("---\ntitle: [unclosed\n---\n")
    result = genimg("publish", "-C", blog)
    assert result.exit_code == 1
    lines = errors(result)
    assert "2024-03-01-bad.md" in "\n".join(lines)
    assert lines[-1] == "error: publish refused: the build failed; nothing was published"
    assert commits(remote) == []


def test_not_a_git_repository(make_blog) -> None:
    root = make_blog({"2024-01-01-hello.md": POST}, name="nogit")
    env_ceiling = os.environ.get("GIT_CEILING_DIRECTORIES")
    try:  # tmp_path may sit inside some repository: stop git from looking above
        os.environ["GIT_CEILING_DIRECTORIES"] = str(root.parent)
        result = genimg("publish", "-C", root)
    finally:
        if env_ceiling is None:
            os.environ.pop("GIT_CEILING_DIRECTORIES")
        else:
            os.environ["GIT_CEILING_DIRECTORIES"] = env_ceiling
    assert result.exit_code == 1
    assert len(errors(result)) == 1 and "not in a git repository" in errors(result)[0]


def test_preview_site_is_refused(example_blog: Path, remote: Path) -> None:
    root = in_git(example_blog, remote)
    # A normal build of the example blog needs models this machine lacks: refused.
    built = genimg("publish", "-C", root)
    assert built.exit_code == 1
    assert errors(built)[-1].endswith("the build failed; nothing was published")

    assert genimg("build", "-C", root, "--preview", "-q").exit_code == 0
    marked = genimg("publish", "-C", root, "--no-build")
    assert marked.exit_code == 1
    assert len(errors(marked)) == 1
    assert "built with --preview" in errors(marked)[0]

    (root / "site" / ".genimg-preview").unlink()  # the pictures still say what they are
    unmarked = genimg("publish", "-C", root, "--no-build")
    assert unmarked.exit_code == 1
    assert len(errors(unmarked)) == 1
    assert "is a preview picture" in errors(unmarked)[0]
    assert commits(remote) == []


def test_preview_restore_of_a_user_photo_is_found_through_the_cache(make_blog) -> None:
    """Its infotext has no model hash to give it away; the cache entry knows."""
    root = make_blog({"2024-01-01-photo.md": """
        ---
        title: Photo
        ---

        ```gallery
        - mode: restore
          from: me.png
        ```
    """})
    Image.new("RGB", (64, 64), (200, 150, 120)).save(root / "posts" / "me.png")
    assert genimg("build", "-C", root, "--preview", "-q").exit_code == 0
    (root / "site" / ".genimg-preview").unlink()
    problems = preview_problems(root / "site", root / ".genimg")
    assert len(problems) == 1 and "restored-me" in problems[0]


def test_blog_in_a_subfolder_without_cname(tmp_path: Path, remote: Path) -> None:
    repo = tmp_path / "repo"
    blog = repo / "blog"
    (blog / "posts").mkdir(parents=True)
    (blog / "genimg.yaml").write_text("title: Sub\nbase_url: /\n")
    (blog / "posts" / "2024-01-01-a.md").write_text("---\ntitle: A\n---\ntext\n")
    in_git(repo, remote)
    result = genimg("publish", "-C", blog)
    assert result.exit_code == 0, result.output
    names = git(remote, "ls-tree", "-r", "--name-only", "gh-pages").splitlines()
    assert "index.html" in names and ".nojekyll" in names and "CNAME" not in names
    assert not any(name.startswith("blog/") for name in names)


def test_fresh_clone_builds_on_the_remote_branch(blog: Path, remote: Path) -> None:
    """No local gh-pages, only origin/gh-pages (as after a clone): nothing to publish."""
    assert genimg("publish", "-C", blog).exit_code == 0
    tip = commits(remote)[0]
    git(blog, "branch", "-D", "gh-pages")
    result = genimg("publish", "-C", blog)
    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output
    assert commits(remote)[0] == tip and git(blog, "rev-parse", "gh-pages") == tip
