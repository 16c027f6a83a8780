"""Issue 20: a build after an edit of a post's words writes only the pages that show
them (``generator/patch.py``), and gives byte for byte the site a full build gives."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import generator.pages
import generator.state
from generator import search
from generator.build import BuildMemory, BuildOptions, BuildReport, build_site
from generator.errors import GenimgError
from tests.helpers import DEFAULT_CONFIG, MakeBlog
from tests.test_stamp import age
from tests.test_state import edit, from_scratch, mtimes, post, site_tree

PREVIEW = BuildOptions(preview=True)


@pytest.fixture
def blog(make_blog: MakeBlog) -> Path:
    """Four posts, built and settled (the next build trusts its stamp); no search."""
    posts = {f"2022-10-{n + 10:02d}-p{n}.md": post(n) for n in range(1, 5)}
    posts["2022-10-12-p2.md"] = post(2).replace("tags: [a, b]",
                                                "tags: [a, b]\n        extra: {mood: calm}")
    return settled(make_blog(posts, DEFAULT_CONFIG + "search: false\n"))


def settled(root: Path) -> Path:
    build_site(root, PREVIEW)
    age(root)
    build_site(root, PREVIEW)  # the stamp, settled
    return root


P2 = "posts/2022-10-12-p2.md"
#: edits a patch handles -> the pages they must re-render
PATCHED = {
    "prose": (("Some text.", "Some text.\n\nA new *paragraph*."),
              {"posts/p2/index.html", "feed.xml"}),
    "lines moved": (("Some text.", "Some text.\n\nMore.\n\nAnd more."),
                    {"posts/p2/index.html", "feed.xml"}),
    "title": (("title: Post 2", "title: Renamed"),
              {"posts/p1/index.html", "posts/p2/index.html", "posts/p3/index.html",
               "index.html", "tags/a/index.html", "tags/b/index.html", "archive/index.html",
               "feed.xml"}),
    "front matter extra": (("mood: calm", "mood: stormy"), set()),
}
#: edits that need a full build (a picture, a listing's order or tags, a draft)
FULL = {
    "prompt": ("prompt: picture 2", "prompt: another picture"),
    "date": ("date: 2022-10-12", "date: 2022-10-20"),
    "tags": ("tags: [a, b]", "tags: [a, c]"),
    "draft": ("title: Post 2", "title: Post 2\ndraft: true"),
}


@pytest.mark.parametrize("name", PATCHED)
def test_an_edit_of_words_is_patched_like_a_full_build(blog: Path, tmp_path: Path,
                                                       rendered: list[str], parsed: list[str],
                                                       name: str) -> None:
    (old, new), pages = PATCHED[name]
    before = mtimes(blog)
    edit(blog / P2, old, new)
    report = build_site(blog, PREVIEW)
    assert report.patched and not report.unchanged and report.rendered == 0
    assert parsed == ["2022-10-12-p2.md"]
    assert pages <= set(rendered)  # and a page that read what changed may come out the same
    after = mtimes(blog)
    assert {page for page in after if after[page] != before[page]} == pages
    assert report.files_written == len(pages)
    assert site_tree(blog) == from_scratch(blog, tmp_path)
    # What the patch recorded is what a full build would: without the stamp, it renders
    # and parses nothing.
    (blog / ".genimg/state/stamp.json").unlink()
    rendered.clear()
    parsed.clear()
    report = build_site(blog, PREVIEW)
    assert not report.patched and report.files_written == 0
    assert rendered == [] and parsed == []


def test_a_page_that_shows_other_posts_bodies_reads_them_from_the_state(
        blog: Path, tmp_path: Path) -> None:
    templates = blog / "theme" / "templates"
    templates.mkdir(parents=True)
    (templates / "tags.html").write_text("{% for tag in tags %}{% for p in tag.posts %}"
                                         "{{ p.html|safe }}{% endfor %}{% endfor %}",
                                         encoding="utf-8")
    settled(blog)
    edit(blog / P2, "Some text.", "Some text.\n\nWords for the tags page.")
    assert build_site(blog, PREVIEW).patched
    assert "Words for the tags page." in (blog / "site/tags/index.html").read_text()
    assert site_tree(blog) == from_scratch(blog, tmp_path)


@pytest.mark.parametrize("name", FULL)
def test_an_edit_of_more_than_words_gets_a_full_build(blog: Path, tmp_path: Path,
                                                      name: str) -> None:
    edit(blog / P2, *FULL[name])
    report = build_site(blog, PREVIEW)
    assert not report.patched
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_a_touched_post_writes_nothing_and_the_next_build_trusts_the_stamp(
        blog: Path, rendered: list[str], parsed: list[str]) -> None:
    before = mtimes(blog)
    (blog / P2).write_bytes((blog / P2).read_bytes())
    report = build_site(blog, PREVIEW)
    assert report.patched and report.files_written == 0 and rendered == []
    assert mtimes(blog) == before
    age(blog)
    build_site(blog, PREVIEW)  # the touch, settled
    assert build_site(blog, PREVIEW).unchanged


def test_edits_in_a_row_and_two_posts_at_once(blog: Path, tmp_path: Path) -> None:
    for n in range(3):
        edit(blog / P2, "Some text.", f"Some text {n}.")
        edit(blog / "posts/2022-10-14-p4.md", "title: Post 4", f"title: Post 4.{n}")
        if n:
            edit(blog / P2, f"Some text {n - 1}.", f"Some text {n}.")
        assert build_site(blog, PREVIEW).patched
        assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_a_mistake_in_the_edited_post_is_the_full_builds_error(blog: Path) -> None:
    before = site_tree(blog)
    edit(blog / P2, "title: Post 2", "title: [unclosed")
    with pytest.raises(GenimgError) as error:
        build_site(blog, PREVIEW)
    assert str(error.value).startswith("posts/2022-10-12-p2.md:2:")
    assert site_tree(blog) == before


@pytest.mark.parametrize("damage", ["missing", "other digest", "no figures"])
def test_state_a_page_needs_but_cannot_trust_means_a_full_build(
        blog: Path, tmp_path: Path, damage: str) -> None:
    """The feed shows every post's body: a post whose state is gone or not what the
    listing says cannot be patched from."""
    state = next(p for p in (blog / ".genimg/state/posts").glob("*.json")
                 if '"file":"posts/2022-10-14-p4.md"' in p.read_text())
    data = json.loads(state.read_text())
    if damage == "missing":
        state.unlink()
    else:
        if damage == "other digest":
            data["entries"]["digest"] = "0" * 64
        else:
            del data["entries"]["figures"]
        state.write_text(json.dumps(data))
    edit(blog / P2, "Some text.", "New words.")
    report = build_site(blog, PREVIEW)
    assert not report.patched
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_a_damaged_record_of_a_pages_reads_means_a_full_build(blog: Path,
                                                              tmp_path: Path) -> None:
    state = blog / ".genimg/state/pages.json"
    data = json.loads(state.read_text())
    data["entries"]["index.html"][1].append(7)
    state.write_text(json.dumps(data))
    edit(blog / P2, "Some text.", "New words.")
    assert not build_site(blog, PREVIEW).patched
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_a_new_site_or_a_new_post_is_a_full_build(blog: Path, tmp_path: Path) -> None:
    shutil.rmtree(blog / "site")
    edit(blog / P2, "Some text.", "New words.")
    assert not build_site(blog, PREVIEW).patched
    (blog / "posts/2022-10-20-p9.md").write_text(post(9).replace("        ", ""))
    assert not build_site(blog, PREVIEW).patched
    assert site_tree(blog) == from_scratch(blog, tmp_path)


def test_serve_keeps_its_posts_in_memory_across_patches(blog: Path, tmp_path: Path,
                                                        parsed: list[str]) -> None:
    memory = BuildMemory()
    build_site(blog, PREVIEW, memory=memory)
    for n in range(2):
        edit(blog / P2, "Some text" if n == 0 else "Words 0", f"Words {n}")
        report: BuildReport = build_site(blog, PREVIEW, memory=memory)
        assert report.patched
    assert parsed == ["2022-10-12-p2.md"] * 2
    assert site_tree(blog) == from_scratch(blog, tmp_path)


@pytest.mark.skipif(not search.available(), reason="needs genimg[search]")
def test_with_search_an_edit_the_index_shows_gets_a_full_build(make_blog: MakeBlog,
                                                               tmp_path: Path) -> None:
    """The search records hold titles and summaries, not a post's body."""
    root = settled(make_blog({f"2022-10-{n + 10:02d}-p{n}.md": post(n) for n in (1, 2)}))
    edit(root / P2, "Some text.", "Some text.\n\nNew words, past the summary.")
    assert build_site(root, PREVIEW).patched
    assert site_tree(root) == from_scratch(root, tmp_path)
    edit(root / P2, "title: Post 2", "title: Renamed")
    assert not build_site(root, PREVIEW).patched
    assert site_tree(root) == from_scratch(root, tmp_path)


#: (old, new) text edits of a post, each one line of ``post(n)``'s
EDITS = {
    "prose": ("Some text.", "Some text.\n\nMore words."),
    "summary": ("Some text.", "Other text."),
    "title": ("title: Post {n}", "title: Retitled {n}"),
    "extra": ("tags: [a, b]", "tags: [a, b]\nextra: {{mood: calm}}"),
    "tags": ("tags: [a, b]", "tags: [b]"),
    "date": ("date: 2022-10-", "date: 2022-09-"),
    "prompt": ("prompt: picture {n}", "prompt: picture {n}, again"),
    "alt": ("  seed: {n}", "  seed: {n}\n  alt: alt {n}"),  # out of the key, on share cards
}
WORDS = ["prose", "summary", "title", "extra"]  # drawn more often: edits a patch builds


@pytest.mark.slow
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 4), st.sampled_from(WORDS * 3 + sorted(EDITS))),
                min_size=1, max_size=4, unique=True))
def test_any_edits_give_the_site_a_full_build_gives(make_blog: MakeBlog,
                                                    edits: list[tuple[int, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = settled(make_blog({f"2022-10-{n + 10:02d}-p{n}.md": post(n)
                                  for n in range(1, 5)},
                                 "title: T\nbase_url: https://example.org/\nsearch: false\n",
                                 name=Path(folder).name))
        for n, kind in edits:
            path = root / "posts" / f"2022-10-{n + 10:02d}-p{n}.md"
            old, new = (text.format(n=n) for text in EDITS[kind])
            path.write_text(path.read_text().replace(old, new, 1), encoding="utf-8")
        report = build_site(root, PREVIEW)
        event(f"patched: {report.patched}")
        assert site_tree(root) == from_scratch(root, Path(folder))
        shutil.rmtree(root)


def test_compiled_templates_are_kept_outside_the_blog(blog: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja2's private per-user folder: marshal data is code, and a blog folder may
    come from anyone's repository."""
    import jinja2

    from generator.config import load_config

    kept = generator.pages._bytecode_cache()
    assert kept is not None and not Path(kept.directory).is_relative_to(blog)
    assert Path(kept.directory).stat().st_mode & 0o077 == 0
    compiled: list[str] = []
    real = jinja2.Environment.compile

    def compile(self: jinja2.Environment, source: str, name: str | None = None,
                *args: object, **kwargs: object) -> object:
        compiled.append(str(name))
        return real(self, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", compile)
    config = load_config(blog)
    generator.pages.PageRenderer(config, {}).env.get_template("post.html")
    compiled.clear()
    generator.pages.PageRenderer(config, {}).env.get_template("post.html")
    assert compiled == []


def test_a_temp_folder_that_cannot_be_written_only_costs_compiling(
        blog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unusable = generator.pages._QuietBytecodeCache(str(tmp_path / "gone"))
    monkeypatch.setattr(generator.pages, "_bytecode_cache", lambda: unusable)
    shutil.rmtree(blog / "site")
    shutil.rmtree(blog / ".genimg/state")
    build_site(blog, PREVIEW)
    assert site_tree(blog) == from_scratch(blog, tmp_path)
