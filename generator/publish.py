"""``genimg publish``: commit ``site/`` to the ``gh-pages`` branch and push it.

Plain git plumbing rather than ghp-import: ghp-import always makes a commit (even
an empty one), works only in the current directory, writes its failures to stdout
and pushes with a bare ``check_call``, so "nothing changed" and a clear reason for a
rejected push would both need work-arounds. With plumbing the tree is built in a
throw-away index (the user's index and working tree are never touched), compared
with the branch tip, committed on top of it, pushed, and only then is the local
branch moved, so a rejected push leaves everything as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import generator

from .build import BuildOptions, BuildReport, build_site
from .cache import Cache
from .config import SiteConfig, load_config
from .errors import ErrorList, GenimgError
from .metadata import parse_infotext
from .models import PREVIEW_FINGERPRINT
from .output import PREVIEW_MARKER
from .rendering import Interrupted

_KEY8 = re.compile(r"-([0-9a-f]{8})$")


@dataclass
class PublishResult:
    remote: str
    branch: str
    commit: str  # the branch tip after publishing
    changed: bool  # False: the branch already held exactly this site
    files: int
    build: BuildReport | None = None


def _refuse(why: str) -> GenimgError:
    return GenimgError(f"publish refused: {why}")


def preview_problems(site: Path, cache_dir: Path) -> list[str]:
    """Why ``site`` holds preview pictures (empty if it does not): marker, infotext, cache."""
    problems = []
    if (site / PREVIEW_MARKER).exists():
        problems.append(f"{site.name}/ was built with --preview ({PREVIEW_MARKER} is there)")
    from PIL import Image

    cache = Cache(cache_dir)
    for png in sorted(site.rglob("*.png")):
        try:
            with Image.open(png) as image:
                text = str(image.info.get("parameters") or "")
        except OSError:
            continue
        preview = parse_infotext(text).get("Model hash") == PREVIEW_FINGERPRINT[:10]
        match = _KEY8.search(png.stem)
        if not preview and match:  # e.g. a restore of a user photo: ask the cache
            for side in cache.objects.glob(f"{match.group(1)[:2]}/{match.group(1)}*.json"):
                meta = cache.meta(side.stem)
                preview = preview or bool(meta and meta.get("preview"))
        if preview:
            problems.append(f"{png.relative_to(site.parent)} is a preview picture")
    return problems


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, data: bytes | None = None,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, input=data,
                              capture_output=True, check=False)
    except FileNotFoundError:
        raise _refuse("git is not installed (or not on PATH)") from None
    if check and done.returncode != 0:
        raise _refuse(f"git {args[0]} failed: {_last_line(done.stderr)}")
    return done


def _out(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stdout.decode().strip()


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    lines = [line.removeprefix("fatal: ").removeprefix("error: ") for line in lines if line]
    return lines[-1] if lines else "no message"


def _rev(root: Path, ref: str) -> str | None:
    done = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return _out(done) if done.returncode == 0 else None


def shown_remote(remote: str) -> str:
    """``remote`` as genimg prints it: a URL without its ``user:token@`` (git strips it
    from its own messages; genimg must not print it back)."""
    if "://" not in remote:
        return remote
    parts = urlsplit(remote)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _is_named(remote: str) -> bool:
    return not ("/" in remote or ":" in remote or remote.startswith("."))


def _check_remote(root: Path, remote: str) -> None:
    """A named remote must exist; URLs and paths are left to ``git push`` to judge."""
    if not _is_named(remote):
        return
    if _git(root, "remote", "get-url", remote, check=False).returncode != 0:
        raise _refuse(f"this repository has no git remote named {remote!r}; add one with "
                      f"`git remote add {remote} URL`, or pass --remote")


def site_tree(root: Path, git_dir: str, site: Path, cname: str | None) -> tuple[str, int]:
    """Write ``site`` (+ ``.nojekyll``, ``CNAME``) as a git tree; returns (tree, files)."""
    with tempfile.TemporaryDirectory(prefix="genimg-publish-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        base = ["-c", "core.autocrlf=false", f"--git-dir={git_dir}", f"--work-tree={site}"]
        _git(site, *base, "add", "--all", "--force", "--", ".", env=env)
        extra = {".nojekyll": b""}
        if cname:
            extra["CNAME"] = cname.strip().encode() + b"\n"
        for name, data in extra.items():
            blob = _out(_git(root, "hash-object", "-w", "--stdin", data=data))
            _git(site, *base, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}",
                 env=env)
        files = len(_git(site, *base, "ls-files", "-z", env=env).stdout.split(b"\0")) - 1
        return _out(_git(site, *base, "write-tree", env=env)), files


def _check_branch(root: Path, remote: str, branch: str) -> None:
    """Refuse to publish onto a branch that holds the sources: one checked out (here or in
    another worktree), or the upstream of the branch checked out."""
    listing = _out(_git(root, "worktree", "list", "--porcelain", check=False))
    if f"branch refs/heads/{branch}" in listing.splitlines():
        raise _refuse(f"{branch} is checked out (it holds your sources?): publishing would "
                      f"replace them with the site; set 'publish: branch:' to another branch, "
                      "like gh-pages")
    head = _git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if head.returncode != 0:
        return
    current = _out(head)
    upstream_remote = _out(_git(root, "config", f"branch.{current}.remote", check=False))
    merge = _out(_git(root, "config", f"branch.{current}.merge", check=False))
    same_remote = upstream_remote == remote or (upstream_remote and _out(_git(
        root, "remote", "get-url", upstream_remote, check=False)) == remote)
    if same_remote and merge == f"refs/heads/{branch}":
        raise _refuse(f"{shown_remote(remote)}/{branch} is the upstream of {current}, the "
                      "branch checked out: publishing would replace your sources with the "
                      "site; set 'publish: branch:' to another branch, like gh-pages")


def _push_error(remote: str, branch: str, stderr: bytes) -> GenimgError:
    text = stderr.decode(errors="replace").replace(remote, shown_remote(remote))
    shown = shown_remote(remote)
    if "[rejected]" in text or "non-fast-forward" in text or "fetch first" in text:
        # a URL or path has no remote-tracking branch: fetch into the local branch itself
        fetch = (f"git fetch {remote}" if _is_named(remote) else
                 f"git fetch {shlex.quote(shown)} +{branch}:refs/heads/{branch}")
        return _refuse(
            f"{shown} rejected the push: its {branch} has commits your local {branch} lacks "
            f"(published from elsewhere?); run `{fetch}` and publish again")
    last = _last_line(text.encode())
    if "does not appear to be a git repository" in text or "Could not read from remote" in text:
        return _refuse(f"cannot push to {shown!r}: {last}")
    return _refuse(f"pushing to {shown} failed: {last}")


def _commit_message(root: Path, config: SiteConfig) -> str:
    head = _git(root, "rev-parse", "--short", "HEAD", check=False)
    source = f" from {_out(head)}" if head.returncode == 0 else ""
    return f"{config.publish.message}\n\nBuilt by genimg {generator.__version__}{source}.\n"


def publish_site(root: Path, remote: str | None = None, frozen: bool = False,
                 build: bool = True, log: Callable[[str], None] = lambda m: None
                 ) -> PublishResult:
    """Build (unless ``build`` is False), then commit and push ``site/`` to gh-pages."""
    config = load_config(root)
    remote = remote or config.publish.remote
    branch = config.publish.branch
    root = config.root
    done = _git(root, "rev-parse", "--absolute-git-dir", check=False)
    if done.returncode != 0:
        raise _refuse(f"{root} is not in a git repository; run `git init` and add a remote")
    git_dir = _out(done)
    _check_remote(root, remote)
    _check_branch(root, remote, branch)
    report = None
    if build:
        try:
            report = build_site(root, BuildOptions(frozen=frozen), log=log)
        except Interrupted:
            raise
        except GenimgError as exc:
            errors = exc.errors if isinstance(exc, ErrorList) else [exc]
            raise ErrorList([*errors, _refuse("the build failed; nothing was published")]
                            ) from None
    site = config.output_dir
    if not site.is_dir():
        raise _refuse(f"there is no {site}; run `genimg build` first")
    problems = preview_problems(site, config.cache_dir)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _refuse(f"{problems[0]}{more}; run `genimg build` (without --preview) first")

    with Cache(config.cache_dir).lock():  # no build may rewrite site/ while it is read
        tree, files = site_tree(root, git_dir, site, config.publish.cname)
    local = _rev(root, f"refs/heads/{branch}")
    tracking = _rev(root, f"refs/remotes/{remote}/{branch}")
    parent = local
    if tracking and (local is None or _is_ancestor(root, local, tracking)):
        parent = tracking  # e.g. a fresh clone: build on what the remote has
    changed = parent is None or _out(_git(root, "rev-parse", f"{parent}^{{tree}}")) != tree
    tip = parent or ""
    if changed:
        args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-"]
        made = _git(root, *args, data=_commit_message(root, config).encode(), check=False)
        if made.returncode != 0:
            if b"identity" in made.stderr or b"user.email" in made.stderr:
                raise _refuse("git does not know who you are; set `git config user.name` "
                              "and `git config user.email`")
            raise _refuse(f"git commit-tree failed: {_last_line(made.stderr)}")
        tip = _out(made)
    if changed or tracking != tip:
        pushed = _git(root, "push", "--porcelain", remote, f"{tip}:refs/heads/{branch}",
                      check=False)
        if pushed.returncode != 0:
            raise _push_error(remote, branch, pushed.stderr + pushed.stdout)
    if local != tip:
        _git(root, "update-ref", f"refs/heads/{branch}", tip, *([local] if local else []))
    return PublishResult(shown_remote(remote), branch, tip, changed, files, report)


def _is_ancestor(root: Path, older: str, newer: str) -> bool:
    with contextlib.suppress(GenimgError):
        return _git(root, "merge-base", "--is-ancestor", older, newer,
                    check=False).returncode == 0
    return False
