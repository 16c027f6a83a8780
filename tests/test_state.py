"""Issue 8: the build state (``.genimg/state/``) makes rebuilds fast and never wrong.

Every test compares with what a build from scratch gives: a cache may only skip work,
never change a byte of the site.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import generator.changed_pages
import generator.state
from generator.build import BuildOptions, build_site
from generator.cache import Cache
from tests.helpers import MakeBlog

PREVIEW = BuildOptions(preview=True)


def post(n: int, title: str = "", body: str = "Some text.", tags: str = "[a, b]") -> str:
    return f"""\
        ---
        title: {title or f"Post {n}"}
        date: 2022-10-{n + 10:02d}
        tags: {tags}
        ---

        {body}

        ```gallery
        - prompt: picture {n}
          seed: {n}
          width: 64
          height: 64
          steps: 2
        ```
        """


@pytest.fixture
def blog(make_blog: MakeBlog) -> Path:
    root = make_blog({f"2022-10-{n + 10:02d}-p{n}.md": post(n) for n in range(1, 5)})
    build_site(root, PREVIEW)
    return root


def site_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root / "site").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "site").rglob("*")) if p.is_file()}


def mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root / "site").as_posix(): p.stat().st_mtime_ns
            for p in sorted((root / "site").rglob("*")) if p.is_file()}


def from_scratch(root: Path, tmp_path: Path) -> dict[str, str]:
    """The site a build gives with no state, no site and no thumbnails (same cache)."""
    clean = tmp_path / "scratch"
    shutil.rmtree(clean, ignore_errors=True)
    shutil.copytree(root, clean, ignore=shutil.ignore_patterns("site", "state", "derived"))
    build_site(clean, PREVIEW)
    return site_tree(clean)


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def test_no_change_parses_renders_and_writes_nothing(blog: Path, parsed: list[str]) -> None:
    before, state = mtimes(blog), sorted((blog / ".genimg" / "state").rglob("*"))
    stamps = [p.stat().st_mtime_ns for p in state]
    report = build_site(blog, PREVIEW)
    assert parsed == []
    assert report.files_written == 0 and report.files_removed == 0
    assert mtimes(blog) == before
    assert [p.stat().st_mtime_ns for p in sorted((blog / ".genimg" / "state").rglob("*"))] \
        == stamps


def test_edited_post_is_parsed_again_and_only_it(blog: Path, parsed: list[str],
                                                 tmp_path: Path) -> None:
    edit(blog / "posts/2022-10-12-p2.md", "Some text.", "Brand new words.")
    build_site(blog, PREVIEW)
    assert parsed == ["2022-10-12-p2.md"]
    assert "Brand new words." in (blog / "site/posts/p2/index.html").read_text()
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_same_size_edit_is_noticed(blog: Path) -> None:
    """Content hashes, not sizes and mtimes: an edit of the same length, with the old
    mtime put back, is still an edit."""
    path = blog / "posts/2022-10-12-p2.md"
    stat = path.stat()
    edit(path, "Some text.", "Same size.")
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    build_site(blog, PREVIEW)
    assert "Same size." in (blog / "site/posts/p2/index.html").read_text()


def test_changed_defaults_invalidate_every_post(blog: Path, parsed: list[str],
                                                tmp_path: Path) -> None:
    config = blog / "genimg.yaml"
    config.write_text(config.read_text() + "defaults:\n  cfg: 9\n", encoding="utf-8")
    build_site(blog, PREVIEW)
    assert sorted(parsed) == sorted(p.name for p in (blog / "posts").glob("*.md"))
    assert "<dt>CFG scale</dt><dd>9</dd>" in (blog / "site/posts/p1/index.html").read_text()
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_title_change_rerenders_the_pages_that_show_it(blog: Path, tmp_path: Path) -> None:
    """Pages record which posts they read: the neighbours, index, tag and archive pages
    show the new title; a page that never read the post is not touched."""
    before = mtimes(blog)
    edit(blog / "posts/2022-10-12-p2.md", "title: Post 2", "title: Renamed")
    build_site(blog, PREVIEW)
    for page in ("posts/p1/index.html", "posts/p3/index.html", "index.html",
                 "tags/a/index.html", "archive/index.html"):
        assert "Renamed" in (blog / "site" / page).read_text(), page
    assert mtimes(blog)["tags/index.html"] == before["tags/index.html"]
    assert mtimes(blog)["posts/p4/index.html"] == before["posts/p4/index.html"]
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_prose_edit_rerenders_only_the_pages_that_show_the_prose(blog: Path,
                                                                 tmp_path: Path) -> None:
    """Pages record each field they read: the neighbours and the index show the post's
    title and summary, not its body, so only its own page and the feed (which holds
    the body) change."""
    before = mtimes(blog)
    edit(blog / "posts/2022-10-12-p2.md", "Some text.", "Some text.\n\nA new paragraph.")
    report = build_site(blog, PREVIEW)
    after = mtimes(blog)
    assert {page for page in after if after[page] != before[page]} == {
        "posts/p2/index.html", "feed.xml"}
    assert report.files_written == 2
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_a_picture_setting_out_of_the_key_rerenders_the_pages_that_show_it(
        make_blog: MakeBlog, tmp_path: Path) -> None:
    """The newest post's first picture is every page's share card, its ``alt`` the
    card's: a page that read a post's figures depends on its specs, not only its keys."""
    blog = make_blog({f"2022-10-{n + 10:02d}-p{n}.md": post(n) for n in range(1, 5)},
                     "title: Test blog\nbase_url: https://example.org/\n")
    build_site(blog, PREVIEW)
    edit(blog / "posts/2022-10-14-p4.md", "  seed: 4", "  seed: 4\n  alt: a fox at dusk")
    build_site(blog, PREVIEW)
    assert 'content="a fox at dusk"' in (blog / "site/tags/index.html").read_text()
    assert site_tree(blog) == from_scratch(blog, tmp_path)


@pytest.mark.parametrize("printed", ["{{ p|pprint }}", "{{ p }}"])
def test_a_template_printing_a_post_whole_depends_on_all_of_it(blog: Path,
                                                               printed: str) -> None:
    templates = blog / "theme" / "templates"
    templates.mkdir(parents=True)
    (templates / "tags.html").write_text("{% for tag in tags %}{% for p in tag.posts %}"
                                         + printed + "{% endfor %}{% endfor %}",
                                         encoding="utf-8")
    build_site(blog, PREVIEW)
    edit(blog / "posts/2022-10-12-p2.md", "Some text.", "Other words.")
    build_site(blog, PREVIEW)
    assert "Other words." in (blog / "site/tags/index.html").read_text()


def test_tag_change_moves_the_post_between_tag_pages(blog: Path, tmp_path: Path) -> None:
    edit(blog / "posts/2022-10-12-p2.md", "tags: [a, b]", "tags: [a, c]")
    build_site(blog, PREVIEW)
    assert "Post 2" in (blog / "site/tags/c/index.html").read_text()
    assert "Post 2" not in (blog / "site/tags/b/index.html").read_text()
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_theme_template_edit_rerenders_pages(blog: Path, tmp_path: Path) -> None:
    templates = blog / "theme" / "templates"
    templates.mkdir(parents=True)
    post_html = templates / "post.html"
    post_html.write_text('{% extends "default/post.html" %}{% block head %}<meta name="x" '
                         'content="one">{% endblock %}', encoding="utf-8")
    build_site(blog, PREVIEW)
    assert 'content="one"' in (blog / "site/posts/p1/index.html").read_text()
    edit(post_html, "one", "two")
    build_site(blog, PREVIEW)
    assert 'content="two"' in (blog / "site/posts/p1/index.html").read_text()
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_config_change_rerenders_pages(blog: Path) -> None:
    edit(blog / "genimg.yaml", "title: Test blog", "title: Another name")
    build_site(blog, PREVIEW)
    assert "Another name" in (blog / "site/posts/p3/index.html").read_text()


@pytest.mark.parametrize("damage", [b"{not json", b"[]", b'{"context": 1}', b"\xff\xfe", b""])
def test_damaged_state_is_ignored(blog: Path, parsed: list[str], damage: bytes) -> None:
    before = site_tree(blog)
    state = blog / ".genimg" / "state"
    files = [p for p in state.rglob("*") if p.is_file()]
    assert {p.parent.name for p in files} >= {"posts", "state"}
    for path in files:
        path.write_bytes(damage)
    for path in (blog / "site").rglob("*.html"):
        path.write_bytes(b"stale")  # the page state can no longer vouch for these
    build_site(blog, PREVIEW)
    assert len(parsed) == 4
    assert site_tree(blog) == before
    parsed.clear()
    report = build_site(blog, PREVIEW)  # and the state is whole again
    assert parsed == [] and report.files_written == 0


def test_damaged_post_entry_is_parsed_again(blog: Path, parsed: list[str]) -> None:
    before = site_tree(blog)
    for path in (blog / ".genimg" / "state" / "posts").glob("*.json"):
        data = json.loads(path.read_bytes())
        data["entries"]["post"]["galleries"][0][3][0] = ["too", "short"]
        path.write_text(json.dumps(data), encoding="utf-8")
    build_site(blog, PREVIEW)
    assert len(parsed) == 4
    assert site_tree(blog) == before


@pytest.mark.parametrize("rel", ["posts/p2/index.html", "index.html", "feed.xml",
                                 "static/style.css", "png", "webp"])
def test_deleted_site_file_is_written_again(blog: Path, rel: str) -> None:
    before = site_tree(blog)
    if rel in ("png", "webp"):
        rel = next(p for p in before if p.startswith("images/") and p.endswith(rel))
    (blog / "site" / rel).unlink()
    report = build_site(blog, PREVIEW)
    assert report.files_written == 1
    assert site_tree(blog) == before


def test_page_edited_on_disk_is_rendered_again(blog: Path) -> None:
    before = site_tree(blog)
    page = blog / "site/posts/p2/index.html"
    page.write_text(page.read_text().replace("Post 2", "Post X"), encoding="utf-8")  # same size
    build_site(blog, PREVIEW)
    assert site_tree(blog) == before


def test_a_new_site_links_back_its_unchanged_pages(blog: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  rendered: list[str]) -> None:
    before = site_tree(blog)
    shutil.rmtree(blog / "site")  # rm -rf site: every page linked back, none rendered
    build_site(blog, PREVIEW)
    assert rendered == [] and site_tree(blog) == before
    assert before == from_scratch(blog, tmp_path)
    rendered.clear()
    page = blog / "site/posts/p2/index.html"
    assert os.path.samefile(page, blog / ".genimg/derived/pages/posts/p2/index.html")

    page.write_text(page.read_text().replace("Post 2", "Post X"), encoding="utf-8")  # in place
    shutil.rmtree(blog / "site")  # the kept page was edited through its link: rendered again
    build_site(blog, PREVIEW)
    assert rendered == ["posts/p2/index.html"] and site_tree(blog) == before

    walked: list[Path] = []
    real_walk = generator.changed_pages.walk

    def walk(folder: Path) -> object:
        walked.append(folder)
        return real_walk(folder)

    monkeypatch.setattr(generator.changed_pages, "walk", walk)
    post = blog / "posts/2022-10-13-p3.md"
    post.write_text(post.read_text() + "\nMore.\n", encoding="utf-8")
    build_site(blog, PREVIEW)  # pages written, none gone: the store is not walked
    assert walked == [] and "More." in (blog / "site/posts/p3/index.html").read_text()
    (blog / "posts/2022-10-12-p2.md").unlink()  # a page gone: its kept file goes with it
    build_site(blog, PREVIEW)
    assert walked == [blog / ".genimg/derived/pages"]
    assert not (blog / ".genimg/derived/pages/posts/p2").exists()
    assert (blog / ".genimg/derived/pages/posts/p3/index.html").is_file()


def test_deleted_post_loses_its_page_and_state(blog: Path) -> None:
    (blog / "posts/2022-10-12-p2.md").unlink()
    build_site(blog, PREVIEW)
    assert not (blog / "site/posts/p2").exists()
    assert len(list((blog / ".genimg/state/posts").glob("*.json"))) == 3


def test_extra_that_json_cannot_hold_is_parsed_every_time(make_blog: MakeBlog,
                                                          parsed: list[str]) -> None:
    root = make_blog({"2022-10-11-p.md": post(1).replace(
        "tags: [a, b]", "tags: [a]\n        extra: {when: 2022-10-11, 7: seven}")})
    build_site(root, PREVIEW)
    build_site(root, PREVIEW)
    assert parsed == ["2022-10-11-p.md", "2022-10-11-p.md"]


def test_deleted_cache_entry_is_noticed(blog: Path) -> None:
    """The sidecar index trusts a stat, so a missing PNG is still a missing entry."""
    cache = Cache(blog / ".genimg")
    key = sorted(cache.keys())[0]
    cache.paths(key)[0].unlink()
    report = build_site(blog, PREVIEW)
    assert report.rendered == 1


def test_the_markdown_extensions_parsed_with_are_those_the_state_is_keyed_by() -> None:
    import generator.content

    made = [type(e).__module__.rsplit(".", 1)[1] for e in generator.content._extensions()]
    assert made == list(generator.content.MARKDOWN_EXTENSIONS)
