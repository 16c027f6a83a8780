"""Helpers the test modules share (the fixtures built on them are in ``conftest.py``)."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from click.testing import CliRunner, Result

if TYPE_CHECKING:
    import pytest

    from generator.specs import ImageSpec

REPO = Path(__file__).resolve().parent.parent

#: ``make_blog(posts, config=..., name=...)``: the fixture of ``conftest.py``.
MakeBlog = Callable[..., Path]

DEFAULT_CONFIG = "title: Test blog\nbase_url: /\n"


def write_blog(parent: Path, posts: dict[str, str], config: str = DEFAULT_CONFIG,
               name: str = "blog") -> Path:
    """A blog folder ``parent / name``: ``genimg.yaml`` and ``posts/``; texts are dedented."""
    root = parent / name
    (root / "posts").mkdir(parents=True, exist_ok=True)
    (root / "genimg.yaml").write_text(textwrap.dedent(config), encoding="utf-8")
    for file, text in posts.items():
        path = root / "posts" / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def isolate_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """git with an empty global config and a test identity: works on a fresh CI machine,
    and ignores the developer's own git config."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test Writer")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "writer@example.com")


def git(cwd: Path, *args: str) -> str:
    """``git ARGS`` in ``cwd``; its stdout, stripped (a failure raises)."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def genimg(*args: str | Path) -> Result:
    """``genimg ARGS`` in this process (click's CliRunner): exit code, stdout and stderr.

    An exception other than ``SystemExit`` is raised, not turned into exit code 1.
    """
    from generator.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def plan_key(spec: ImageSpec, model_fp: str | None, source: str | None,
             restorer_fp: str | None) -> str:
    """The key of the picture ``spec`` shows, computed as the plan does: with
    ``restore_faces``, the restore step over the unrestored picture."""
    from generator.hashing import canonical_key
    from generator.modes import RESTORE
    from generator.plan import key_fields

    if spec.restore_faces:
        raw = spec.without_restore()
        raw_key = canonical_key(key_fields(raw, model_fp, source, restorer_fp))
        step = replace(raw, mode=RESTORE, source=None)
        return canonical_key(key_fields(step, None, raw_key, restorer_fp))
    return canonical_key(key_fields(spec, model_fp, source, restorer_fp))
