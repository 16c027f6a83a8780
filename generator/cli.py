"""The ``genimg`` command line: thin shells around build, check, info and friends.

click for commands and options, rich for the progress bar. Every GenimgError
becomes one line per problem on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

import generator

from .errors import GenimgError

BLOG_OPTION = click.option(
    "-C", "--blog", "blog", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
    show_default=True, help="The blog folder (holds genimg.yaml and posts/).",
)


def _fail(error: GenimgError, code: int = 1) -> None:
    for line in str(error).splitlines():
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GenimgError into ``error: file:line: message`` lines and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .build import Interrupted

        try:
            return func(*args, **kwargs)
        except Interrupted as exc:
            _fail(exc, 130)
        except GenimgError as exc:
            _fail(exc)
        except OSError as exc:  # a file the build needs to write or read: no traceback
            _fail(GenimgError(exc.strerror or str(exc), exc.filename))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(generator.__version__, prog_name="genimg")
def main() -> None:
    """genimg: a static blog-gallery generator for pictures made by Stable Diffusion."""


@main.command()
@BLOG_OPTION
@click.option("--preview", is_flag=True, help="Placeholder pictures, no model (never publish).")
@click.option("--frozen", is_flag=True,
              help="Render nothing; build from the cache alone, failing on any missing picture.")
@click.option("--drafts", is_flag=True, help="Include posts marked draft: true.")
@click.option("--wait", "lock_wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait if another build of this blog is running.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def build(blog: Path, preview: bool, frozen: bool, drafts: bool, lock_wait: float,
          quiet: bool) -> None:
    """Render missing pictures and write the site."""
    from .build import BuildOptions, build_site
    from .progress import RichProgress

    if preview and frozen:
        raise click.UsageError("--preview and --frozen exclude each other")
    progress = RichProgress(disable=quiet)
    report = build_site(blog, BuildOptions(preview=preview, frozen=frozen, drafts=drafts,
                                           lock_wait=lock_wait),
                        progress=progress, log=lambda m: click.echo(f"warning: {m}", err=True))
    kind = " (preview pictures)" if report.preview else ""
    click.echo(
        f"built {report.posts} posts, {report.pictures} pictures{kind}: rendered "
        f"{report.rendered}, wrote {report.files_written} files, removed "
        f"{report.files_removed} in {report.seconds:.2f}s"
    )


@main.command()
@BLOG_OPTION
@click.option("--drafts", is_flag=True, help="Check draft posts too.")
@reports_errors
def check(blog: Path, drafts: bool) -> None:
    """Validate config, posts and specs without rendering anything."""
    from .build import BuildOptions, load_site

    site = load_site(blog, BuildOptions(drafts=drafts))
    click.echo(f"ok: {len(site.posts)} posts, {len(site.images)} pictures, "
               f"{len(site.plan.nodes)} render steps")


@main.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--raw", is_flag=True, help="Print the infotext as A1111 stores it.")
@reports_errors
def info(files: tuple[Path, ...], raw: bool) -> None:
    """Print the prompt and settings stored in PNG files, as a gallery spec."""
    import yaml

    from .metadata import infotext_to_spec, read_infotext

    for file in files:
        text = read_infotext(file)
        if len(files) > 1:
            click.echo(f"# {file}")
        if raw:
            click.echo(text)
        else:
            spec = infotext_to_spec(text)
            click.echo(yaml.safe_dump([spec], allow_unicode=True, sort_keys=False).rstrip())
