"""``genimg cache status``: which cache pictures are committed (and in Git LFS), which
exist only on this machine.

The workflow `genimg init` writes builds the site from the committed cache, so a
picture only on this machine fails that build; and PNGs committed outside LFS make
the repository grow by ~400 KB a picture for ever.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache
from .config import load_config
from .errors import GenimgError


@dataclass(frozen=True)
class CacheGitStatus:
    pictures: int
    bytes: int
    committed: int  # in HEAD's tree
    committed_bytes: int
    in_lfs: int  # committed pictures whose path Git LFS filters
    local: int  # not in HEAD: only on this machine (maybe staged)
    local_bytes: int

    def lines(self) -> list[str]:
        """What `genimg cache status` prints."""
        out = [f"{self.pictures} pictures, {_mb(self.bytes)}",
               f"committed: {self.committed} ({_mb(self.committed_bytes)}), "
               f"{self.in_lfs} of them in Git LFS"]
        if self.committed > self.in_lfs:
            out.append(f"warning: {self.committed - self.in_lfs} committed pictures are not in "
                       "Git LFS: the repository grows by their full size; see .gitattributes "
                       "from `genimg init` and `git lfs migrate`")
        if self.local:
            out.append(f"only on this machine: {self.local} ({_mb(self.local_bytes)}); commit "
                       ".genimg/ so that `genimg build --frozen` (the workflow) finds them")
        return out


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=True)
    except FileNotFoundError:
        raise GenimgError("git is not installed") from None
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace").strip().splitlines()
        raise GenimgError(f"git {args[0]}: {message[-1] if message else 'failed'}",
                          root) from None
    return done.stdout.decode(errors="surrogateescape")


def cache_git_status(root: Path) -> CacheGitStatus:
    """Count the cache's pictures by where they are: committed, in LFS, local only."""
    config = load_config(root)
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    objects = Cache(config.cache_dir).objects
    pngs = {p.resolve().relative_to(top).as_posix(): p.stat().st_size
            for p in objects.glob("*/*.png")} if objects.is_dir() else {}
    committed: set[str] = set()
    if pngs and _git(root, "rev-parse", "--verify", "-q", "HEAD").strip():
        rel = objects.resolve().relative_to(top).as_posix()
        listed = _git(top, "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", rel)
        committed = {name for name in listed.split("\0") if name in pngs}
    in_lfs = 0
    if committed:
        attrs = subprocess.run(["git", "-C", str(top), "check-attr", "-z", "--stdin", "filter"],
                               input="\0".join(sorted(committed)).encode() + b"\0",
                               capture_output=True, check=True).stdout.split(b"\0")
        in_lfs = sum(1 for i in range(2, len(attrs), 3) if attrs[i] == b"lfs")
    local = set(pngs) - committed
    return CacheGitStatus(len(pngs), sum(pngs.values()), len(committed),
                          sum(pngs[p] for p in committed), in_lfs, len(local),
                          sum(pngs[p] for p in local))
