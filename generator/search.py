"""The static search index: Pagefind, fed one record per picture and per post.

Pagefind (``pip install 'genimg[search]'``) splits the index into chunks, so a reader's
browser fetches only those its query needs, and segments CJK text (its extended
build). The records are written from the specs, not scraped from the pages: a picture
is found by its prompt, negative prompt, seed, model, sampler, caption, and its post's
title and tags, and the result opens the picture in its post (``#img-…``).

Pagefind is optional: without it the build writes no index, no search page, and says
so once. An index whose records are unchanged is kept as it is (``state/search.json``);
its files are kept in the cache's ``derived/search/`` too (``Bundle``) and hard-linked
into the site, so a new ``site/`` (``rm -rf site``, a fresh clone with its cache) gets
the index without running Pagefind again.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import usable, write_atomic
from .errors import GenimgError
from .hashing import digest
from .state import code_digest, read_state, write_state

if TYPE_CHECKING:
    from .config import SiteConfig
    from .content import Post
    from .figures import Figures

#: The search bundle's folder in the site.
FOLDER = "pagefind/"
#: Pagefind's own UIs: genimg's search page is its own, so they are not published.
_UNUSED = ("pagefind-ui.", "pagefind-modular-ui.", "pagefind-component-ui.",
           "pagefind-highlight.")
MISSING_NOTE = ("search: skipped, Pagefind is not installed "
                "(pip install 'genimg[search]' to add a search page)")


def available() -> bool:
    """Whether Pagefind and one of its binaries are installed."""
    if importlib.util.find_spec("pagefind") is None:
        return False
    from pagefind.service import get_executable

    return get_executable() is not None


def _versions() -> list[str | None]:
    """Pagefind's versions, binary included: a new one makes a new index."""
    from importlib import metadata  # here: slow to import, and only a search index needs it

    found: list[str | None] = []
    for name in ("pagefind", "pagefind-bin-extended", "pagefind-bin"):
        try:
            found.append(metadata.version(name))
        except metadata.PackageNotFoundError:
            found.append(None)
    return found


def _words(*values: Any) -> str:
    return "\n".join(str(v) for v in values if v not in (None, ""))


def records(posts: list[Post], figures: Figures, url: Callable[[str], str]
            ) -> list[dict[str, Any]]:
    """What is indexed: each picture, then each post (``url`` makes site paths absolute).

    A face restoration alone has no prompt of its own: it is found by its source's, as
    its infotext gives them."""
    found: list[dict[str, Any]] = []
    for post in posts:
        tags = " ".join(post.tags)
        cover: Mapping[str, Any] | None = None
        for image in post.images:
            f = figures.basic(image.location)
            cover = cover or f
            prompt, negative = figures.origin_prompts.get(
                image.location, (f["prompt"], f["negative_prompt"]))
            found.append({
                "url": url(post.url) + "#" + f["anchor"],
                "content": _words(f["caption"], prompt, negative,
                                  f["seed"] if f["generated"] else None,
                                  f["model"] if f["generated"] else None,
                                  f["sampler"] if f["generated"] else None, f["mode"],
                                  post.title, tags),
                "meta": _meta(f, url, kind="picture", title=f["caption"] or post.title,
                              post=post.title),
            })
        found.append({"url": url(post.url), "content": _words(post.title, post.summary, tags),
                      "meta": _meta(cover, url, kind="post", title=post.title,
                                    post=post.title)})
    return found


def _meta(f: Mapping[str, Any] | None, url: Callable[[str], str], **meta: str
          ) -> dict[str, str]:
    """Pagefind metadata: all strings; the thumbnail and its size for the result list."""
    if f is not None:
        meta.update(image=url(f["src"]), image_alt=f["alt"], width=str(f["width"]),
                    height=str(f["height"]))
        if f["preview"]:
            meta["preview"] = "yes"
    return meta


def index_files(found: list[dict[str, Any]], language: str) -> dict[str, bytes]:
    """The search bundle: site path -> bytes, made by Pagefind's CLI from ``found``.

    Each record becomes a small HTML file (its text in ``data-pagefind-body``, its
    metadata in ``data-pagefind-meta`` tags, its URL among them): the CLI indexes a
    thousand in a fraction of a second, where Pagefind's Python API answers ten
    records a second."""
    from pagefind.service import get_executable

    language = language.lower()
    with tempfile.TemporaryDirectory(prefix="genimg-search-") as tmp:
        pages, out = Path(tmp) / "records", Path(tmp) / "bundle"
        pages.mkdir()
        for n, record in enumerate(found):
            (pages / f"{n}.html").write_text(_record_html(record, language), encoding="utf-8")
        done = subprocess.run([str(get_executable()), "--site", str(pages), "--output-path",
                               str(out), "--force-language", language, "--silent"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines() or ["no message"]
            raise GenimgError(f"search: Pagefind failed: {why[-1]}")
        return {FOLDER + file.relative_to(out).as_posix(): file.read_bytes()
                for file in sorted(out.rglob("*"))
                if file.is_file() and not file.name.startswith(_UNUSED)}


def _record_html(record: dict[str, Any], language: str) -> str:
    meta = {"url": record["url"], **record["meta"]}
    head = "".join(f'<meta data-pagefind-meta="{escape(name)}[content]" '
                   f'content="{escape(value)}">' for name, value in meta.items())
    body = "".join(f"<p>{escape(line)}</p>" for line in record["content"].split("\n"))
    return (f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
            f"<title>{escape(meta.get('title', ''))}</title>{head}</head>"
            f"<body><main data-pagefind-body>{body}</main></body></html>")


def search_files(config: SiteConfig, posts: list[Post], figures: Figures,
                 url: Callable[[str], str], present: Mapping[str, Any]
                 ) -> tuple[dict[str, Path], list[str]]:
    """The index's files to link into the site (site path -> its file in the cache's
    ``derived/search/``) and the files of an unchanged index to keep as they are."""
    found = records(posts, figures, url)
    context = digest(code_digest(), _versions(), config.language)
    state = SearchState(config.cache_dir, context)
    kept = state.kept(found, present)
    if kept is not None:
        return {}, kept
    bundle = Bundle(config.cache_dir / "derived" / "search", digest(context, found))
    files = bundle.files()
    if files is None:
        files = bundle.make(index_files(found, config.language))
    state.save(found, list(files))
    return files, []


class Bundle:
    """An index kept in the cache's ``derived/search/``, named by the digest of its records
    (and of genimg's code and Pagefind's version): a new ``site/`` links its files in
    instead of running Pagefind again. Its listing (``<name>.files``) is written last, so
    a bundle is whole when its listing is there and every file it names is."""

    def __init__(self, folder: Path, name: str):
        self.folder = folder
        self.name = name
        self.dir = folder / name
        self.listing = folder / f"{name}.files"

    def files(self) -> dict[str, Path] | None:
        """Site path -> file of a whole bundle; None if there is none."""
        try:
            names = self.listing.read_text(encoding="utf-8").split("\n")
        except (OSError, ValueError):
            return None
        files = {FOLDER + name: self.dir / name for name in names
                 if name and not name.startswith("/") and ".." not in name.split("/")}
        if not names or len(files) != len(names) or not all(map(usable, files.values())):
            return None
        return files

    def make(self, index: Mapping[str, bytes]) -> dict[str, Path]:
        """Keep ``index`` (site path -> bytes) as this bundle, and drop every other."""
        names = sorted(rel.removeprefix(FOLDER) for rel in index)
        for name in names:
            write_atomic(self.dir / name, index[FOLDER + name], durable=False)
        write_atomic(self.listing, "\n".join(names).encode("utf-8"), durable=False)
        for other in self.folder.iterdir():
            if other.name not in (self.name, self.listing.name):
                if other.is_dir():
                    shutil.rmtree(other, ignore_errors=True)
                else:
                    other.unlink(missing_ok=True)
        return {FOLDER + name: self.dir / name for name in names}


class SearchState:
    """The records the site's index was made from, and its files: kept while unchanged."""

    def __init__(self, cache_dir: Path, context: str):
        self.path = cache_dir / "state" / "search.json"
        self.context = context
        self.entries = read_state(self.path, context)

    def kept(self, found: list[dict[str, Any]], present: Mapping[str, Any]) -> list[str] | None:
        """The files of the last index if it was made from the same records and all are
        still in the site; else None."""
        files = self.entries.get("files")
        if self.entries.get("records") != digest(found) or not isinstance(files, list):
            return None
        return files if all(isinstance(f, str) and f in present for f in files) else None

    def save(self, found: list[dict[str, Any]], files: list[str]) -> None:
        write_state(self.path, self.context, {"records": digest(found), "files": sorted(files)})
