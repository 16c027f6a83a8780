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


class WorkersParam(click.ParamType):
    """``--workers``: a count of at least 1, or ``auto`` (0 inside: one per GPU, else one)."""

    name = "workers"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        if str(value).strip().lower() == "auto":
            return 0
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            self.fail(f"{value!r} is neither a count of at least 1 nor 'auto'", param, ctx)
        return count


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
        from .rendering import Interrupted

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
@click.option("--workers", type=WorkersParam(), default=None, metavar="N|auto",
              help="Render on N Ray worker processes, or `auto`: one per GPU (else one); "
                   "needs genimg[ray].")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Render on the Ray cluster at ADDRESS (`ray start --head` prints it).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def build(blog: Path, preview: bool, frozen: bool, drafts: bool, lock_wait: float,
          workers: int | None, cluster: str | None, quiet: bool) -> None:
    """Render missing pictures and write the site."""
    from .build import BuildOptions, build_site
    from .progress import RichProgress

    if preview and frozen:
        raise click.UsageError("--preview and --frozen exclude each other")
    progress = RichProgress(disable=quiet)
    report = build_site(blog, BuildOptions(preview=preview, frozen=frozen, drafts=drafts,
                                           lock_wait=lock_wait, workers=workers,
                                           cluster=cluster),
                        progress=progress, log=lambda m: click.echo(f"warning: {m}", err=True))
    kind = " (preview pictures)" if report.preview else ""
    click.echo(
        f"built {report.posts} posts, {report.pictures} pictures{kind}: rendered "
        f"{report.rendered}, wrote {report.files_written} files, removed "
        f"{report.files_removed} in {report.seconds:.2f}s"
        + (f"; site {report.site_bytes / 1e6:.1f} MB" if report.site_bytes is not None else "")
        + ("; nothing changed" if report.unchanged else "")
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
@click.option("--raw", is_flag=True, help="Print the metadata as the tool stored it.")
@reports_errors
def info(files: tuple[Path, ...], raw: bool) -> None:
    """Print the prompt and settings stored in picture files (PNG, JPEG, WebP) as a
    gallery spec; exit 1 if any file has none genimg can read."""
    import yaml

    from .adopt import adopt
    from .errors import NOT_TEXT, escaped, one_line
    from .infotext import read_spec
    from .readers import read_picture

    failed = False
    for file in files:
        try:
            picture = read_picture(file)
        except GenimgError as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
            continue
        adopted = adopt(picture)
        spec, unsupported = (read_spec(picture.infotext) if picture.infotext is not None
                             else (adopted.spec, []))
        if spec is None:
            click.echo(f"error: {GenimgError(str(adopted.why), file)}", err=True)
            failed = True
            continue
        if len(files) > 1:
            click.echo(f"# {one_line(str(file))} ({picture.origin})")
        if raw:  # a picture is anyone's: its terminal escapes are shown, never obeyed
            text = picture.infotext or picture.texts.get("prompt", "")
            click.echo(NOT_TEXT.sub(lambda m: escaped(m.group()), text))
        else:
            click.echo(yaml.safe_dump([spec], allow_unicode=True, sort_keys=False).rstrip())
            if unsupported:  # names from anyone's picture: shown, never obeyed
                names = NOT_TEXT.sub(lambda m: escaped(m.group()), ", ".join(unsupported))
                click.echo(f"warning: {one_line(str(file))}: genimg does not render these "
                           f"fields: {names}", err=True)
    if failed:
        sys.exit(1)


@main.command("import")
@BLOG_OPTION
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--post", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Add the galleries to this post (default: a new post).")
@click.option("--title", default=None, help="The new post's title (default: the folder's name).")
@click.option("--gallery-size", type=click.IntRange(1, 12), default=4, show_default=True,
              help="Pictures per gallery block.")
@click.option("--dry-run", is_flag=True, help="Print the Markdown; write nothing.")
@reports_errors
def import_(blog: Path, paths: tuple[Path, ...], post: Path | None, title: str | None,
            gallery_size: int, dry_run: bool) -> None:
    """Bring in pictures made by A1111, ComfyUI and others: adopted into the cache,
    shown in a post, rendered never."""
    from .importer import ImportOptions, import_pictures, summary

    if post is not None and title is not None:
        raise click.UsageError("--post and --title exclude each other")
    report = import_pictures(blog, list(paths), ImportOptions(post, title, gallery_size,
                                                              dry_run))
    if dry_run and report.markdown:
        click.echo(f"# would be added to {report.post}:\n{report.markdown}", nl=False)
    for line in summary(report):
        click.echo(("would have " + line) if dry_run and line.startswith("imported ")
                   else line, err=line.startswith("skipped"))
    if report.bad and not report.added and not report.already:
        sys.exit(1)


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is below it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--title", default="My genimg blog", show_default=True, help="The blog's title.")
@reports_errors
def init(directory: Path, title: str) -> None:
    """Scaffold a blog: genimg.yaml, a sample post, .gitignore, a GitHub Pages workflow."""
    from .scaffold import init_blog

    for path in init_blog(directory, title):
        click.echo(f"created {_shown(path)}")
    click.echo("next: `genimg serve --preview` to see it, `genimg new \"Title\"` to write")


@main.command()
@BLOG_OPTION
@click.argument("title")
@click.option("--date", "when", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The post's date (default: today).")
@click.option("--draft/--no-draft", default=True, show_default=True,
              help="Mark it draft: true (left out of builds until you flip it).")
@reports_errors
def new(blog: Path, title: str, when: Any, draft: bool) -> None:
    """Create posts/YYYY-MM-DD-<slug>.md with front matter and print its path."""
    from .scaffold import new_post

    click.echo(_shown(new_post(blog, title, when.date() if when else None, draft=draft)))


@main.command()
@BLOG_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--preview", is_flag=True, help="Placeholder pictures, no model.")
@click.option("--drafts", is_flag=True, help="Include posts marked draft: true.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def serve(blog: Path, host: str, port: int, preview: bool, drafts: bool, quiet: bool) -> None:
    """Build, serve site/ locally, rebuild on every change and reload the browser."""
    from .build import BuildOptions
    from .progress import RichProgress
    from .serve import DevServer

    server = DevServer(blog, BuildOptions(preview=preview, drafts=drafts, lock_wait=30),
                       host=host, port=port, log=click.echo,
                       error_log=lambda m: click.echo(m, err=True),
                       progress=RichProgress(disable=quiet))
    try:
        click.echo(f"serving {server.start()} (Ctrl-C to stop)")
        server.wait()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.close()


@main.command()
@BLOG_OPTION
@click.option("--remote", default=None,
              help="Git remote (name or URL) to push to [default: publish.remote, origin].")
@click.option("--frozen", is_flag=True, help="Build from the cache alone, rendering nothing.")
@click.option("--no-build", is_flag=True, help="Publish site/ as it is, without building.")
@reports_errors
def publish(blog: Path, remote: str | None, frozen: bool, no_build: bool) -> None:
    """Build, commit site/ to the gh-pages branch and push it."""
    from .publish import publish_site

    result = publish_site(blog, remote=remote, frozen=frozen, build=not no_build,
                          log=lambda m: click.echo(f"warning: {m}", err=True))
    if result.build:
        click.echo(f"built {result.build.posts} posts, {result.build.pictures} pictures")
    where = f"{result.remote}/{result.branch}"
    if result.changed:
        click.echo(f"published {result.files} files to {where} ({result.commit[:10]})")
    else:
        click.echo(f"nothing changed: {where} already holds this site ({result.commit[:10]})")


@main.group()
def cache() -> None:
    """Inspect and clean the picture cache (.genimg/)."""


@cache.command("ls")
@BLOG_OPTION
@click.option("--unused", is_flag=True, help="Only entries no post uses.")
@reports_errors
def cache_ls(blog: Path, unused: bool) -> None:
    """Every cached picture: key, size, mode, where it is used, prompt."""
    from .maintenance import human_size, list_entries

    entries = list_entries(blog)
    for e in entries:
        if unused and e.used:
            continue
        where = e.used_at[0] if e.used else f"UNUSED (was {e.rendered_at or '?'})"
        if len(e.used_at) > 1:
            where += f" +{len(e.used_at) - 1}"
        mode = e.mode + (" preview" if e.preview else "") + (" imported" if e.imported else "")
        prompt = e.prompt if len(e.prompt) <= 60 else e.prompt[:59] + "…"
        click.echo(f"{e.key[:12]}  {human_size(e.size):>9}  {mode:<15}  {where}  {prompt!r}")
    idle = [e for e in entries if not e.used]
    total = human_size(sum(e.size for e in entries))
    tail = f"; {len(idle)} unused (`genimg cache gc` removes them)" if idle else ""
    click.echo(f"{len(entries)} entries, {total}{tail}")


@cache.command("status")
@BLOG_OPTION
@reports_errors
def cache_status(blog: Path) -> None:
    """Which cached pictures are committed (and in Git LFS), which are only local."""
    from .cache_git import cache_git_status

    for line in cache_git_status(blog).lines():
        click.echo(line)


@cache.command("verify")
@BLOG_OPTION
@click.option("--discard", is_flag=True, help="Remove corrupt entries so a build renders them.")
@reports_errors
def cache_verify(blog: Path, discard: bool) -> None:
    """Re-hash every entry; exit 1 if any is corrupt."""
    from .maintenance import verify_cache

    report = verify_cache(blog, discard=discard)
    for key, why in report.corrupt:
        click.echo(f"corrupt: {key[:12]}: {why}", err=True)
    click.echo(f"checked {report.checked} entries: {len(report.corrupt)} corrupt"
               + (f", {report.discarded} discarded" if report.discarded else ""))
    if report.corrupt:
        sys.exit(1)


@cache.command("gc")
@BLOG_OPTION
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@reports_errors
def cache_gc(blog: Path, dry_run: bool) -> None:
    """Remove entries no post uses, their thumbnails, and leftovers of killed builds."""
    from .maintenance import collect_garbage, human_size

    report = collect_garbage(blog, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in report.entries:
        click.echo(f"{verb} {e.key[:12]}  {e.mode}  {e.prompt[:60]!r}")
    if not report.files:
        click.echo("nothing to remove: every entry is used")
        return
    click.echo(f"{verb} {len(report.entries)} entries, {len(report.files)} files "
               f"({human_size(report.bytes)})")
