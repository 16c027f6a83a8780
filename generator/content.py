"""Posts: find them, split the YAML front matter, Markdown -> HTML, gallery blocks -> specs.

Front matter is split here rather than with python-frontmatter because every error
must name the file *line*, and the gallery extension needs the body's first line.
"""

from __future__ import annotations

import datetime as dt
import functools
import html as html_lib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import markdown
from markdown.extensions import Extension
from markdown.extensions.attr_list import AttrListExtension
from markdown.extensions.fenced_code import FencedCodeExtension
from markdown.extensions.footnotes import FootnoteExtension
from markdown.extensions.sane_lists import SaneListExtension
from markdown.extensions.tables import TableExtension
from markdown.extensions.toc import TocExtension
from markdown.preprocessors import Preprocessor

from . import schema
from .errors import NOT_TEXT, ErrorList, GenimgError, Location, short_repr, text_problem
from .grids import parse_grid
from .specs import Gallery, ImageSpec, parse_defaults, parse_image
from .yamlio import LineDict, LineList, key_lines_of, load_yaml, read_text_file

MARKDOWN_EXTENSIONS = ("fenced_code", "tables", "footnotes", "attr_list", "toc", "sane_lists")
GALLERY_PLACEHOLDER = "<!--genimg-gallery:{}-->"
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*gallery[ \t]*$")
_ANY_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})")
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")
GRID_LIMIT: int = schema.CONFIG["grid_limit"].default
#: Python-Markdown finds the ``]`` of each ``[`` (and the ``)`` of each ``](``) by walking
#: the characters after it, so a paragraph of n unmatched ``[`` costs n² steps: 20,000 of
#: them took a minute, and ``serve`` hung meanwhile. ``_check_brackets`` estimates that
#: walk in linear time; about 1.5 million steps take a second.
MAX_BRACKET_WORK = 3_000_000
_BRACKETS = re.compile(r"\\.|\]\(|[\[\]()]")


def _extensions() -> list[Extension]:
    """``MARKDOWN_EXTENSIONS``, made directly: by name, Python-Markdown looks each one up
    among every installed package's entry points (``importlib.metadata``, slow to
    import and to scan)."""
    return [FencedCodeExtension(), TableExtension(), FootnoteExtension(), AttrListExtension(),
            TocExtension(), SaneListExtension()]


@functools.lru_cache(maxsize=65536)  # every tag of every post, on every build
def slugify(text: str) -> str:
    """A URL-safe slug that keeps CJK and other letters (the browser percent-encodes them)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w]+", "-", text, flags=re.UNICODE)
    return text.strip("-_") or "untitled"


@dataclass
class Post:
    """One Markdown post with its galleries; ``html`` holds gallery placeholders."""

    source: Path
    title: str
    date: dt.date
    slug: str
    tags: tuple[str, ...]
    draft: bool
    summary: str
    html: str
    galleries: list[Gallery] = field(default_factory=list)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Path of the post page below the site root."""
        return f"posts/{self.slug}/"

    @property
    def images(self) -> list[ImageSpec]:
        return [image for gallery in self.galleries for image in gallery.images]


def normalize_newlines(text: str) -> str:
    """``\\r\\n`` and ``\\r`` -> ``\\n``, and no BOM: lines are counted the way an editor does."""
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_front_matter(text: str, file: str) -> tuple[Any, dict, str, int]:
    """Return (front matter data, its key lines, body, first line of the body).

    Lines are split on ``\\n`` only (after ``normalize_newlines``), exactly as Markdown
    does, so the body's line numbers stay the file's. Only an unindented ``---`` ends the
    front matter (as in YAML): an indented one is part of a block scalar.
    """
    lines = normalize_newlines(text).split("\n")
    if lines[0].strip() != "---":
        return {}, {}, "\n".join(lines), 1
    for i in range(1, len(lines)):
        if lines[i].rstrip() in ("---", "..."):
            data, key_lines = load_yaml("\n".join(lines[1:i]) + "\n", file, 2)
            return data if data is not None else {}, key_lines, "\n".join(lines[i + 1 :]), i + 2
    raise GenimgError("front matter starts with '---' but never ends", file, 1)


def _closes(line: str, fence: str) -> bool:
    """A closing fence: the same character, at least as many, nothing else."""
    return line.startswith(fence) and not line.strip().strip(fence[0])


class _GalleryPreprocessor(Preprocessor):
    """Cuts ```gallery blocks out of the Markdown, parses them, leaves a placeholder."""

    def __init__(self, md: markdown.Markdown, owner: GalleryExtension):
        super().__init__(md)
        self.owner = owner

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(lines):
            match = _FENCE.match(lines[i])
            if not match:
                other = _ANY_FENCE.match(lines[i])
                end = _other_fence_end(lines, i, other.group("fence")) if other else None
                if end is None:
                    out.append(lines[i])
                    i += 1
                else:  # a code block (maybe showing gallery syntax): fenced_code's, untouched
                    out.extend(lines[i : end + 1])
                    i = end + 1
                continue
            fence = match.group("fence")
            end = i + 1
            while end < len(lines) and not _closes(lines[end], fence):
                end += 1
            first_line = self.owner.first_line + i
            if end >= len(lines):
                self.owner.errors.append(
                    GenimgError("gallery block is never closed", self.owner.file, first_line)
                )
                return out
            yaml_text = "\n".join(lines[i + 1 : end]) + "\n"
            block = [""] * (end - i + 1)  # as many lines as the block: later lines keep theirs
            try:
                gallery = parse_gallery(yaml_text, Location(self.owner.file, first_line),
                                        self.owner.defaults, self.owner.grid_limit)
            except ErrorList as exc:
                self.owner.errors.extend(exc.errors)
            except GenimgError as exc:
                self.owner.errors.append(exc)
            else:
                index = len(self.owner.galleries)
                self.owner.galleries.append(gallery)
                block[1] = self.md.htmlStash.store(GALLERY_PLACEHOLDER.format(index))
            out.extend(block)
            i = end + 1
        return out


def _other_fence_end(lines: list[str], start: int, fence: str) -> int | None:
    """The closing line of a non-gallery fenced code block (as fenced_code finds it)."""
    if fence[0] == "`" and "`" in lines[start][len(fence):]:
        return None  # inline code, not a fence
    for end in range(start + 1, len(lines)):
        if lines[end].rstrip(" ") == fence:
            return end
    return None


class GalleryExtension(Extension):
    """Python-Markdown extension: ```gallery blocks become ImageSpecs + a placeholder."""

    def __init__(self, file: str, first_line: int, defaults: Mapping[str, Any],
                 grid_limit: int = GRID_LIMIT):
        super().__init__()
        self.file = file
        self.first_line = first_line
        self.defaults = defaults
        self.grid_limit = grid_limit
        self.galleries: list[Gallery] = []
        self.errors: list[GenimgError] = []

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # Before fenced_code (priority 25), so it never sees gallery fences.
        md.preprocessors.register(_GalleryPreprocessor(md, self), "genimg_gallery", 28)


def parse_gallery(yaml_text: str, where: Location, defaults: Mapping[str, Any],
                  grid_limit: int = GRID_LIMIT) -> Gallery:
    """One gallery block: a list of images, a mapping with ``images:`` and options, or a
    comparison grid (``grid:``, see ``grids``).

    ``where`` is the opening fence; the YAML starts on the line after it.
    """
    data, top_lines = load_yaml(yaml_text, where.file, where.line + 1)

    def at(key: str) -> Location:
        return Location(where.file, top_lines.get(key, where.line))

    columns = caption = compare = None
    block_defaults: Mapping[str, Any] = {}
    images_at = where
    if isinstance(data, Mapping):
        schema.check_keys(data, schema.GALLERY, "gallery", where, top_lines,
                          hint="; a gallery is a list of images or a mapping with 'images:'")
        if "grid" in data:
            return parse_grid(data, top_lines, where, defaults, grid_limit)
        for key in schema.GRID_KEYS:
            if key in data:
                raise at(key).error(f"'{key}:' belongs to a comparison grid: add 'grid:' "
                                    "with the spec every cell starts from")
        columns = data.get("columns")
        caption = data.get("caption")
        compare = data.get("compare")
        if data.get("defaults") is not None:
            raw = data["defaults"]
            block_defaults = parse_defaults(raw, at("defaults"), key_lines_of(raw))
        data = data.get("images")
        images_at = at("images")
    if not isinstance(data, list) or not data:
        raise images_at.error("a gallery needs a non-empty list of images")
    merged_defaults = {**defaults, **block_defaults}
    images: list[ImageSpec] = []
    errors: list[GenimgError] = []
    item_lines = data.item_lines if isinstance(data, LineList) else []
    for index, item in enumerate(data):
        if isinstance(item, LineDict):
            line = item.line
        elif index < len(item_lines):
            line = item_lines[index]
        else:
            line = where.line + 1
        key_lines = key_lines_of(item)
        if images and images[-1].location.line == line:
            # A picture is known by its file and line (errors, cache ls, the page's figures).
            errors.append(GenimgError("put each image of a gallery on its own line",
                                      where.file, line))
            continue
        try:
            images.append(
                parse_image(item, Location(where.file, line), merged_defaults, key_lines)
            )
        except GenimgError as exc:
            errors.append(exc)
    if errors:
        raise ErrorList(errors)
    return Gallery(tuple(images), columns, caption, where, compare=compare)


def _as_date(value: Any, file: str, line: int, stem: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
        raise GenimgError(f"date must look like 2022-10-30, got {short_repr(value)}", file, line)
    if value is None:
        match = _DATE_PREFIX.match(stem)
        if match:
            try:
                return dt.date.fromisoformat(match.group(1))
            except ValueError:
                raise GenimgError(
                    f"post has no 'date:' and its file name starts with {match.group(1)!r}, "
                    "which is not a date", file, 1) from None
        raise GenimgError("post has no 'date:' and its file name has no YYYY-MM-DD- prefix",
                          file, 1)
    raise GenimgError(f"date must look like 2022-10-30, got {short_repr(value)}", file, line)


def _summary(html: str) -> str:
    """The first paragraph as plain text, for the index and the feed."""
    for para in re.findall(r"<p>(.*?)</p>", html, flags=re.S):
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", para))
        text = NOT_TEXT.sub("", text).strip()  # ``&#12;`` unescaped is no text
        if text and not text.startswith("<!--"):
            return text[:300] + ("…" if len(text) > 300 else "")
    return ""


def _check_brackets(body: str, file: str, first_line: int) -> None:
    """Refuse a paragraph whose brackets would keep Markdown busy for seconds (see
    ``MAX_BRACKET_WORK``), naming its first line; fenced code is not parsed, so skipped."""
    fence: str | None = None
    block: list[str] = []
    start = 0
    for number, line in enumerate([*body.split("\n"), ""]):
        opener = _ANY_FENCE.match(line)
        if fence is not None:
            fence = None if _closes(line, fence) else fence
        elif opener:
            fence = opener.group("fence")
        if line.strip() and fence is None and not opener:
            start = number if not block else start
            block.append(line)
            continue
        if block and _bracket_work("\n".join(block)) > MAX_BRACKET_WORK:
            raise GenimgError(
                "this paragraph has too many '[' without a near ']' for Markdown to parse in "
                "reasonable time; write them as '\\[' or put them in a code block",
                file, first_line + start)
        block = []


def _bracket_work(text: str) -> int:
    """Characters Markdown walks to match every ``[`` and ``](`` of ``text``."""
    brackets: list[int] = []
    parens: list[tuple[int, bool]] = []  # (where, opens a link target)
    work = 0
    for match in _BRACKETS.finditer(text):
        token, at = match.group(), match.start()
        if token == "[":
            brackets.append(at)
        elif token[0] == "]":
            if brackets:
                work += at - brackets.pop()
            if token == "](":
                parens.append((at, True))
        elif token == "(":
            parens.append((at, False))
        elif token == ")" and parens:
            opened, link = parens.pop()
            work += at - opened if link else 0
    work += sum(len(text) - at for at in brackets)
    return work + sum(len(text) - at for at, link in parens if link)


def load_post(path: Path, defaults: Mapping[str, Any], display_path: str | None = None,
              grid_limit: int = GRID_LIMIT) -> Post:
    """Parse one post file; raises GenimgError/ErrorList naming file and line."""
    file = display_path or str(path)
    text = read_text_file(path, file)
    meta, key_lines, body, body_line = split_front_matter(text, file)
    if not isinstance(meta, Mapping):
        raise GenimgError("front matter must be a mapping of keys like 'title:'", file, 2)
    schema.check_keys(meta, schema.FRONT_MATTER, "front matter", Location(file, 1), key_lines)

    def line_of(key: str) -> int:
        return key_lines.get(key, 1)

    stem = path.stem
    match = _DATE_PREFIX.match(stem)
    title = meta.get("title", (match.group(2) if match else stem).replace("-", " "))
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    draft = meta.get("draft", False)
    slug = meta.get("slug")
    if slug is not None and slugify(slug) != slug:
        raise GenimgError(f"'slug' must be lowercase words joined by '-', got {short_repr(slug)}",
                          file, line_of("slug"))
    summary = meta.get("summary")
    date = _as_date(meta.get("date"), file, line_of("date"), stem)
    extra = meta.get("extra")

    body = NOT_TEXT.sub("", body)  # a raw vertical tab or form feed: no text, and no XML
    _check_brackets(body, file, body_line)
    ext = GalleryExtension(file, body_line, defaults, grid_limit)
    md = markdown.Markdown(extensions=[ext, *_extensions()], output_format="html")
    try:
        html = md.convert(body)
    except RecursionError:
        raise GenimgError("Markdown nested too deeply", file, body_line) from None
    if ext.errors:
        raise ErrorList(ext.errors)
    return Post(
        source=path,
        title=str(title),
        date=date,
        slug=slug or slugify(match.group(2) if match else stem),
        tags=tuple(str(t) for t in tags),
        draft=draft,
        summary=summary or _summary(html),
        html=html,
        galleries=ext.galleries,
        extra=dict(extra or {}),
    )


def find_posts(posts_dir: Path) -> list[Path]:
    # Sorted by parts, as Paths sort, without Path's slow comparisons (10,000 posts: 0.1 s)
    return sorted((p for p in posts_dir.rglob("*.md") if not p.name.startswith((".", "_"))),
                  key=lambda p: p.parts)


class PostLoader(Protocol):
    """Something that loads a post like ``load_post`` does (``state.PostCache``)."""

    def load(self, path: Path, file: str) -> Post: ...


def load_posts(posts_dir: Path, root: Path, defaults: Mapping[str, Any],
               drafts: bool = False, loader: PostLoader | None = None,
               grid_limit: int = GRID_LIMIT) -> list[Post]:
    """Every post, newest first; all errors of all posts reported together.

    ``loader`` (a cache of parsed posts) replaces ``load_post(path, defaults, …)``.
    """
    posts: list[Post] = []
    errors: list[GenimgError] = []
    shown: dict[Path, str] = {}
    for path in find_posts(posts_dir):
        try:
            display = str(path.relative_to(root))
        except ValueError:
            display = str(path)
        shown[path] = display
        problem = text_problem(path.name)
        if problem:
            errors.append(GenimgError(
                f"the file name holds {problem}, which is not text; rename the file", display))
            continue
        try:
            post = (loader.load(path, display) if loader is not None
                    else load_post(path, defaults, display, grid_limit))
        except ErrorList as exc:
            errors.extend(exc.errors)
            continue
        except GenimgError as exc:
            errors.append(exc)
            continue
        if drafts or not post.draft:
            posts.append(post)
    slugs: dict[str, Post] = {}
    for post in posts:
        if post.slug in slugs:
            errors.append(GenimgError(
                f"two posts share the slug {short_repr(post.slug)} "
                f"(also {shown[slugs[post.slug].source]})",
                shown[post.source], 1))
        slugs[post.slug] = post
    if errors:
        raise ErrorList(errors)
    return sorted(posts, key=lambda p: (p.date, p.slug), reverse=True)
