"""Every page of the site from Jinja2 templates: index, posts, tags, archive, feed, sitemap.

Templates and static files come from the blog's own ``theme/`` first, then from the
default theme shipped with genimg, so a user overrides any single file by name; a
user template may still extend the original as ``default/<name>``.
All URLs go through ``url()`` and are absolute paths (``/blog/static/style.css``), so a
site under a sub-path works, and so does the 404 page that GitHub Pages serves at any depth.

Pages are listed first (``pages``) and rendered one by one (``render``), so a build can
skip those whose inputs are unchanged. What a page was made from is its template and
context, whose shape (``shape``) names posts only by URL, plus what it read of each post:
the environment records every field a template touches (``post.title``,
``post['title']``, ``map(attribute=…)``, ``figures_of``) as ``read_of(url, field)``, so
a page that lists a tag's titles depends on those titles and not on the posts' prose,
and a page that never looks at a post does not depend on it. A post printed whole
(``{{ post }}``, ``|pprint``) counts as read whole (``WHOLE``). Not seen: fields
reached around Jinja's attribute lookup (``'{0.html}'.format(post)``, ``post == other``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from pprint import pformat
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2

import generator

from .config import SiteConfig
from .content import GALLERY_PLACEHOLDER, Post, slugify
from .errors import NOT_TEXT, GenimgError, StaleState
from .images import CARD_SIZE
from .state import code_digest

FEED_ENTRIES = 20
#: The field a read names when a template used a post whole (printed it, or its body)
WHOLE = "*"


def read_of(url: str, name: str) -> str:
    """How a page records that it read field ``name`` of the post at ``url``."""
    return f"{name}:{url}"


def split_read(read: str) -> tuple[str, str]:
    """``read_of``'s (url, field)."""
    name, _, url = read.partition(":")
    return url, name


def default_theme_dir() -> Path:
    """The theme inside the wheel, or the repository's ``theme/`` in a source checkout."""
    package = Path(generator.__file__).parent
    shipped = package / "theme"
    return shipped if shipped.is_dir() else package.parent / "theme"


def theme_dirs(config: SiteConfig) -> list[Path]:
    """Theme folders, the user's first; the default theme is last."""
    dirs = [config.theme_dir] if config.theme_dir.is_dir() else []
    default = default_theme_dir()
    if default.resolve() not in [d.resolve() for d in dirs]:
        dirs.append(default)
    return dirs


def static_files(config: SiteConfig) -> dict[str, Path]:
    """``static/…`` site path -> source file, user files shadowing the default theme's."""
    files: dict[str, Path] = {}
    for theme in reversed(theme_dirs(config)):
        static = theme / "static"
        if static.is_dir():
            for file in static.rglob("*"):
                if file.is_file():
                    files["static/" + file.relative_to(static).as_posix()] = file
    return files


@dataclass(frozen=True)
class Tag:
    name: str
    slug: str
    posts: tuple[Post, ...]

    @property
    def url(self) -> str:
        return f"tags/{self.slug}/"


@dataclass
class Page:
    """One page of the site, not rendered yet."""

    path: str  # site path, e.g. ``posts/slug/index.html``
    template: str
    context: dict[str, Any]
    #: context values made only when rendering: a post's gallery rows are the costly part
    lazy: dict[str, Callable[[], Any]] = field(default_factory=dict)


def shape(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """JSON data for a context value, naming each post by its URL only (what a post
    holds is digested separately, for the posts a page reads). Lists and tags are
    memoised by identity: every index page shares the one list of tags.

    Raises TypeError for a value it cannot describe (the page is then always rendered).
    """
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Post):
        return "post:" + value.url
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)][1]
    if isinstance(value, Tag):
        result: Any = ["tag", value.name, value.slug, shape(value.posts, memo)]
    elif isinstance(value, list | tuple):
        result = [shape(v, memo) for v in value]
    elif isinstance(value, Mapping):
        result = {str(k): shape(v, memo) for k, v in value.items()}
    elif isinstance(value, dt.date):
        result = value.isoformat()
    elif callable(value):
        result = "function:" + getattr(value, "__qualname__", type(value).__name__)
    else:
        raise TypeError(f"cannot describe {type(value).__name__} in a page context")
    memo[id(value)] = (value, result)  # keeps value alive, so its id stays its own
    return result


class _Environment(jinja2.Environment):
    """Jinja2 environment that records what templates read of posts (see module doc)."""

    reads: set[str] | None = None  # ``read_of`` each field read while rendering a page

    def __init__(self, **options: Any):
        super().__init__(finalize=self._printed, **options)
        self.filters["pprint"] = self._pprint

    def read(self, post: Post, name: str) -> None:
        if self.reads is not None:
            self.reads.add(read_of(post.url, name))

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Post):
            self.read(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Post):
            self.read(obj, str(argument))
        return super().getitem(obj, argument)

    def _printed(self, value: Any) -> Any:
        """``{{ post }}`` shows every field of the post."""
        if isinstance(value, Post):
            self.read(value, WHOLE)
        return value

    def _pprint(self, value: Any) -> str:
        if isinstance(value, Post):
            self.read(value, WHOLE)
        return pformat(value)


@jinja2.pass_environment
def _attr(environment: jinja2.Environment, obj: Any, name: str) -> Any:
    """The ``attr`` filter, through ``environment.getattr`` so that reads are recorded."""
    return environment.getattr(obj, name)


class PageRenderer:
    """Renders pages to bytes; knows nothing of caches or models."""

    def __init__(self, config: SiteConfig, figures: Mapping[Any, Mapping[str, Any]],
                 preview: bool = False, search: bool = False):
        self.config = config
        self.figures = figures
        self.preview = preview
        self.search = search
        # Absolute URL path of the site root, always with a leading and trailing slash.
        sub_path = config.base_path.strip("/")
        self.base_path = f"/{sub_path}/" if sub_path else "/"
        split = urlsplit(config.base_url)
        self.origin = f"{split.scheme}://{split.netloc}" if split.scheme and split.netloc else ""
        self._template_dirs = [(d / "templates").resolve() for d in theme_dirs(config)]
        self._template_dirs.append((default_theme_dir() / "templates").resolve())
        loader = jinja2.ChoiceLoader([
            jinja2.FileSystemLoader([str(d / "templates") for d in theme_dirs(config)]),
            jinja2.PrefixLoader(
                {"default": jinja2.FileSystemLoader(str(default_theme_dir() / "templates"))}),
        ])
        self.env = _Environment(
            loader=loader,
            bytecode_cache=_bytecode_cache(),
            autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.env.globals.update(
            url=self.url, abs_url=self.abs_url, site=config, preview=preview,
            genimg_version=generator.__version__, tag_url=self.tag_url,
            figures_of=self.figures_of, page_url=None, search=search,
            has_origin=bool(self.origin), card_size=CARD_SIZE,
        )
        self.env.filters["isodate"] = _isodate
        self.env.filters["attr"] = _attr

    def url(self, path: str = "") -> str:
        """Site path -> absolute URL path under ``base_url``, percent-encoded."""
        return self.base_path + quote(path.lstrip("/"), safe="/#?=&")

    def abs_url(self, path: str = "") -> str:
        """Site path -> full URL for feeds, sitemaps and canonical links.

        Without a host in ``base_url`` there is none to give, so it falls back to the path.
        """
        return self.origin + self.url(path)

    @staticmethod
    def tag_url(tag: str) -> str:
        return f"tags/{slugify(str(tag))}/"

    def figures_of(self, post: Post) -> list[list[Mapping[str, Any]]]:
        """A post's pictures as template data, one list per gallery (for index covers)."""
        self.env.read(post, "figures")
        return [[self.figures[image.location] for image in gallery.images]
                for gallery in post.galleries]

    def _render(self, template: str, **context: Any) -> bytes:
        # What is no text (a control character from a theme or a post) would make the
        # feed no XML, and a lone surrogate cannot be encoded: neither is ever written.
        text = self.env.get_template(template).render(**context)
        return NOT_TEXT.sub("", text).encode("utf-8")

    def _template_error(self, exc: Exception) -> GenimgError:
        """A theme's mistake as one line naming the template file and line."""
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return GenimgError(f"template error: {exc.message}",
                               self._shown(exc.filename or exc.name or "?"), exc.lineno)
        file, line = "?", None
        tb = exc.__traceback__
        while tb is not None:  # jinja2 points the frames of template code at the template
            name = tb.tb_frame.f_code.co_filename
            if any(Path(name).is_relative_to(d) for d in self._template_dirs):
                file, line = self._shown(name), tb.tb_lineno
            tb = tb.tb_next
        what = exc.message if isinstance(exc, jinja2.TemplateError) else \
            f"{type(exc).__name__}: {exc}"
        return GenimgError(f"template error: {what}", file, line)

    def _shown(self, name: str) -> str:
        path = Path(name)
        return str(path.relative_to(self.config.root)) if path.is_relative_to(
            self.config.root) else name

    def post_html(self, post: Post, absolute: bool = False) -> str:
        """The post body with each gallery placeholder replaced by its rendered row or grid.

        ``absolute`` gives full URLs, for feed readers that show the content off-site.
        """
        self.env.read(post, WHOLE)  # its body and galleries
        html = post.html
        link = self.abs_url if absolute else self.url
        for index, figures in enumerate(self.figures_of(post)):
            gallery = post.galleries[index]
            template = self.env.get_template("grid.html" if gallery.grid else "gallery.html")
            row = template.render(gallery=gallery, figures=figures, post=post, url=link,
                                  interactive=not absolute)
            html = html.replace(GALLERY_PLACEHOLDER.format(index), row)
        return html

    def tags(self, posts: list[Post]) -> list[Tag]:
        """Tags by slug (two spellings of one slug are one tag), most used first."""
        by_slug: dict[str, list[Post]] = {}
        names: dict[str, str] = {}
        for post in posts:
            spellings: dict[str, str] = {}  # each slug once per post, first spelling
            for tag in post.tags:
                spellings.setdefault(slugify(tag), tag)
            for slug, tag in spellings.items():
                names.setdefault(slug, tag)
                by_slug.setdefault(slug, []).append(post)
        return sorted((Tag(names[s], s, tuple(p)) for s, p in by_slug.items()),
                      key=lambda t: (-len(t.posts), t.name))

    def index_pages(self, posts: list[Post], tags: list[Tag]) -> list[Page]:
        """``index.html``, ``page/2/index.html``, …: ``per_page`` summaries each."""
        per_page = self.config.per_page
        chunks = [posts[i:i + per_page] for i in range(0, len(posts), per_page)] or [[]]
        pages = []
        for number, chunk in enumerate(chunks, start=1):
            page_url = "" if number == 1 else f"page/{number}/"
            pager = {
                "number": number, "total": len(chunks),
                "prev": None if number == 1 else ("" if number == 2 else f"page/{number - 1}/"),
                "next": f"page/{number + 1}/" if number < len(chunks) else None,
            }
            pages.append(Page(page_url + "index.html", "index.html",
                              {"posts": chunk, "pager": pager, "tags": tags,
                               "page_url": page_url}))
        return pages

    def feed_content(self, post: Post) -> str:
        """A post's body with full URLs, for feed readers that show it off-site."""
        return self.post_html(post, absolute=True)

    def pages(self, posts: list[Post]) -> list[Page]:
        """Every page of the site, in the order ``render_all`` renders them."""
        tags = self.tags(posts)
        pages = self.index_pages(posts, tags)
        for i, post in enumerate(posts):
            pages.append(Page(
                post.url + "index.html", "post.html",
                {"post": post, "page_url": post.url, "share_post": post,
                 "newer": posts[i - 1] if i > 0 else None,
                 "older": posts[i + 1] if i + 1 < len(posts) else None},
                lazy={"content": functools.partial(self.post_html, post)}))
        for tag in tags:
            pages.append(Page(tag.url + "index.html", "tag.html",
                              {"tag": tag, "page_url": tag.url}))
        pages.append(Page("tags/index.html", "tags.html", {"tags": tags, "page_url": "tags/"}))
        if self.search:
            pages.append(Page("search/index.html", "search.html", {"page_url": "search/"}))
        years: dict[int, list[Post]] = {}
        for post in posts:
            years.setdefault(post.date.year, []).append(post)
        pages.append(Page("archive/index.html", "archive.html",
                          {"years": sorted(years.items(), reverse=True), "page_url": "archive/"}))
        updated = max((p.date for p in posts), default=dt.date(2000, 1, 1))
        pages.append(Page("feed.xml", "feed.xml", {
            "posts": posts[:FEED_ENTRIES], "updated": updated, "content": self.feed_content}))
        listing = [p.path for p in pages
                   if p.path.endswith("index.html") and not p.path.startswith("posts/")]
        pages.append(Page("sitemap.xml", "sitemap.xml", {
            "posts": posts, "updated": updated,
            "urls": [p.removesuffix("index.html") for p in listing]}))
        pages.append(Page("robots.txt", "robots.txt", {}))
        pages.append(Page("404.html", "404.html", {}))
        # The share card of a page that shows no one post: the newest post's first picture.
        newest = next((p for p in posts if p.images), None)
        for page in pages:
            if page.path.endswith(".html"):
                page.context.setdefault("share_post", newest)
        return pages

    def render(self, page: Page) -> tuple[bytes, list[str]]:
        """The page's bytes, and what it read of posts (``read_of``)."""
        reads: set[str] = set()
        self.env.reads = reads
        try:
            lazy = {name: make() for name, make in page.lazy.items()}
            data = self._render(page.template, **page.context, **lazy)
        except (GenimgError, StaleState):
            raise
        except Exception as exc:  # templates are the theme's code: any error is its own
            raise self._template_error(exc) from None
        finally:
            self.env.reads = None
        return data, sorted(reads)

    def render_all(self, posts: list[Post]) -> dict[str, bytes]:
        """Every page: site path -> bytes."""
        return {page.path: self.render(page)[0] for page in self.pages(posts)}


@functools.cache
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between builds (compiling the theme's templates was a
    third of a one-post edit): Jinja2's own per-user folder in the temp dir, which it
    makes private to the user (the code it holds is run as it is, so never in the blog
    folder, where a cloned repository could plant it). The file names carry genimg's
    code digest and Jinja2's version: the source's checksum is Jinja2's only other
    key, and the environment that compiles it changes with genimg."""
    try:
        return _QuietBytecodeCache(
            pattern=f"__genimg_{code_digest()[:16]}_{jinja2.__version__}_%s.cache")
    except (OSError, RuntimeError):  # no private temp folder to be had: compile each time
        return None


class _QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
    """A cache, so a full or read-only temp folder only costs compiling (Jinja2 would
    raise, and the build would fail on a template that is fine)."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _isodate(value: dt.date) -> str:
    """RFC 3339 for Atom; a bare date is taken as midnight UTC."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).isoformat()
