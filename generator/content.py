"""Posts: find them, split the YAML front matter, Markdown -> HTML, gallery blocks -> specs.

Front matter is split here rather than with python-frontmatter because every error
must name the file *line*, and the gallery extension needs the body's first line.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor

from .errors import ErrorList, GenimgError
from .specs import BLOCK_KEYS, Gallery, ImageSpec, Location, did_you_mean, parse_image
from .yamlio import LineDict, load_yaml

FRONT_MATTER_KEYS = ("title", "date", "tags", "draft", "slug", "summary", "extra")
GALLERY_PLACEHOLDER = "<!--genimg-gallery:{}-->"
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*gallery[ \t]*$")
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")


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


def split_front_matter(text: str, file: str) -> tuple[Any, dict, str, int]:
    """Return (front matter data, its key lines, body, first line of the body)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return {}, {}, text, 1
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            data, key_lines = load_yaml("".join(lines[1:i]), file, 2)
            return data if data is not None else {}, key_lines, "".join(lines[i + 1 :]), i + 2
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
                out.append(lines[i])
                i += 1
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
            try:
                gallery = parse_gallery(
                    yaml_text, Location(self.owner.file, first_line), self.owner.defaults
                )
            except ErrorList as exc:
                self.owner.errors.extend(exc.errors)
                out.extend([""] * 3)
            except GenimgError as exc:
                self.owner.errors.append(exc)
                out.extend([""] * 3)
            else:
                index = len(self.owner.galleries)
                self.owner.galleries.append(gallery)
                placeholder = self.md.htmlStash.store(GALLERY_PLACEHOLDER.format(index))
                out.extend(["", placeholder, ""])
            # keep the line count so later blocks still know their file line
            out.extend([""] * max(0, end - i + 1 - 3))
            i = end + 1
        return out


class GalleryExtension(Extension):
    """Python-Markdown extension: ```gallery blocks become ImageSpecs + a placeholder."""

    def __init__(self, file: str, first_line: int, defaults: Mapping[str, Any]):
        super().__init__()
        self.file = file
        self.first_line = first_line
        self.defaults = defaults
        self.galleries: list[Gallery] = []
        self.errors: list[GenimgError] = []

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # Before fenced_code (priority 25), so it never sees gallery fences.
        md.preprocessors.register(_GalleryPreprocessor(md, self), "genimg_gallery", 28)


def parse_gallery(yaml_text: str, where: Location, defaults: Mapping[str, Any]) -> Gallery:
    """One gallery block: a list of images, or a mapping with ``images:`` and options."""
    data, _ = load_yaml(yaml_text, where.file, where.line + 1)
    columns = caption = None
    block_defaults: Mapping[str, Any] = {}
    if isinstance(data, Mapping):
        for key in data:
            if key not in BLOCK_KEYS:
                lines = data.key_lines if isinstance(data, LineDict) else {}
                line = lines.get(key, where.line)
                raise GenimgError(
                    f"unknown gallery key {key!r}{did_you_mean(str(key), BLOCK_KEYS)}; "
                    "a gallery is a list of images or a mapping with 'images:'",
                    where.file, line,
                )
        columns = data.get("columns")
        if columns is not None and (not isinstance(columns, int) or isinstance(columns, bool)
                                    or not 1 <= columns <= 12):
            raise where.error(f"'columns' must be an integer from 1 to 12, got {columns!r}")
        caption = data.get("caption")
        if caption is not None and not isinstance(caption, str):
            raise where.error("'caption' must be a string")
        block_defaults = data.get("defaults") or {}
        if not isinstance(block_defaults, Mapping):
            raise where.error("'defaults' must be a mapping of image keys")
        data = data.get("images")
    if not isinstance(data, list) or not data:
        raise where.error("a gallery needs a non-empty list of images")
    merged_defaults = {**defaults, **block_defaults}
    images: list[ImageSpec] = []
    errors: list[GenimgError] = []
    for item in data:
        line = item.line if isinstance(item, LineDict) else where.line + 1
        key_lines = item.key_lines if isinstance(item, LineDict) else {}
        try:
            images.append(
                parse_image(item, Location(where.file, line), merged_defaults, key_lines)
            )
        except GenimgError as exc:
            errors.append(exc)
    if errors:
        raise ErrorList(errors)
    return Gallery(tuple(images), columns, caption, where)


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
        raise GenimgError(f"date must look like 2022-10-30, got {value!r}", file, line)
    if value is None:
        match = _DATE_PREFIX.match(stem)
        if match:
            return dt.date.fromisoformat(match.group(1))
        raise GenimgError("post has no 'date:' and its file name has no YYYY-MM-DD- prefix",
                          file, 1)
    raise GenimgError(f"date must look like 2022-10-30, got {value!r}", file, line)


def _summary(html: str) -> str:
    """The first paragraph as plain text, for the index and the feed."""
    for para in re.findall(r"<p>(.*?)</p>", html, flags=re.S):
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", para)).strip()
        if text and not text.startswith("<!--"):
            return text[:300] + ("…" if len(text) > 300 else "")
    return ""


def load_post(path: Path, defaults: Mapping[str, Any], display_path: str | None = None) -> Post:
    """Parse one post file; raises GenimgError/ErrorList naming file and line."""
    file = display_path or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise GenimgError(f"not UTF-8 text ({exc.reason})", file) from None
    except OSError as exc:
        raise GenimgError(f"cannot read: {exc.strerror}", file) from None
    meta, key_lines, body, body_line = split_front_matter(text, file)
    if not isinstance(meta, Mapping):
        raise GenimgError("front matter must be a mapping of keys like 'title:'", file, 2)
    for key in meta:
        if key not in FRONT_MATTER_KEYS:
            raise GenimgError(
                f"unknown front matter key {key!r}{did_you_mean(str(key), FRONT_MATTER_KEYS)}",
                file, key_lines.get(key, 1),
            )

    def line_of(key: str) -> int:
        return key_lines.get(key, 1)

    stem = path.stem
    match = _DATE_PREFIX.match(stem)
    title = meta.get("title", (match.group(2) if match else stem).replace("-", " "))
    if not isinstance(title, str | int | float):
        raise GenimgError("title must be text", file, line_of("title"))
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str | int) for t in tags):
        raise GenimgError("tags must be a list of words", file, line_of("tags"))
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        raise GenimgError("draft must be true or false", file, line_of("draft"))
    slug = meta.get("slug")
    if slug is not None and (not isinstance(slug, str) or slugify(slug) != slug):
        raise GenimgError(f"slug must be lowercase words joined by '-', got {slug!r}",
                          file, line_of("slug"))
    summary = meta.get("summary")
    if summary is not None and not isinstance(summary, str):
        raise GenimgError("summary must be text", file, line_of("summary"))
    date = _as_date(meta.get("date"), file, line_of("date"), stem)

    ext = GalleryExtension(file, body_line, defaults)
    md = markdown.Markdown(extensions=[ext, "fenced_code", "tables", "footnotes", "attr_list",
                                       "toc", "sane_lists"], output_format="html")
    html = md.convert(body)
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
        extra=dict(meta.get("extra") or {}),
    )


def find_posts(posts_dir: Path) -> list[Path]:
    return sorted(p for p in posts_dir.rglob("*.md") if not p.name.startswith((".", "_")))


def load_posts(posts_dir: Path, root: Path, defaults: Mapping[str, Any],
               drafts: bool = False) -> list[Post]:
    """Every post, newest first; all errors of all posts reported together."""
    posts: list[Post] = []
    errors: list[GenimgError] = []
    for path in find_posts(posts_dir):
        try:
            display = str(path.relative_to(root))
        except ValueError:
            display = str(path)
        try:
            post = load_post(path, defaults, display)
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
                f"two posts share the slug {post.slug!r} (also {slugs[post.slug].source.name})",
                post.source, 1))
        slugs[post.slug] = post
    if errors:
        raise ErrorList(errors)
    return sorted(posts, key=lambda p: (p.date, p.slug), reverse=True)
