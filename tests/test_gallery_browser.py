"""Search, copy buttons, the before/after slider, share cards and accessibility, in
headless Chromium, on the example blog plus a post of CJK prompts, served under ``/blog/``.

Needs Pagefind (``genimg[search]``) and axe-core (``npm ci --prefix tests/browser``);
CI installs both, and there a missing one fails instead of skipping.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from generator import search
from generator.build import BuildOptions, load_site
from generator.specs import ImageSpec
from tests.browsing import BASE_URL, Watch, chromium, example_blog, playwright_or_skip, serving
from tests.helpers import REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser]

sync_api = playwright_or_skip()

AXE = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
#: WCAG 2.0 and 2.1, levels A and AA
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

CJK_POST = """---
title: "窗台与雨夜"
date: "2023-02-01"
slug: cats
tags: [水彩]
---

一些猫，一个机器人。

```gallery
compare: slider
images:
  - id: cat
    prompt: 一只橘猫在窗台上晒太阳, watercolor
    seed: 11
    caption: 原图
  - mode: img2img
    from: cat
    prompt: 一只橘猫, anime style
    seed: 12
    strength: 0.5
  - prompt: 机器人在雨中, neon lights
    negative_prompt: blurry, lowres
    seed: 13
```
"""


def _missing(what: str, how: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI: {how}")
    pytest.skip(f"{what} is missing: {how}")


if not search.available():
    _missing("Pagefind", "pip install -e '.[search]'")


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_blog(tmp_path_factory.mktemp("gallery") / "example",
                        {"2023-02-01-cats.md": CJK_POST})


@pytest.fixture(scope="module")
def server(blog: Path) -> Iterator[str]:
    with serving(blog / "public") as origin:
        yield origin


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(sync_api) as launched:
        yield launched


def _expected(blog: Path, word: str) -> set[str]:
    """Anchors (``/blog/posts/slug/#img-…``) of the pictures whose prompt, negative
    prompt or caption holds ``word`` (a whole word, for Latin letters); a restoration
    alone has its source's prompts, as in its infotext."""
    site = load_site(blog, BuildOptions(preview=True))
    pattern = re.compile(rf"\b{re.escape(word)}\b" if word.isascii() else re.escape(word),
                         re.I)

    def text(image: ImageSpec) -> str:
        node = site.plan.nodes[site.plan.shown_key[image.location]]
        while node.parent and not node.spec.prompt:
            node = site.plan.nodes[node.parent]
        spec = node.spec
        return " ".join(filter(None, (spec.prompt, spec.negative_prompt, image.caption)))

    return {f"/blog/{post.url}#img-{site.plan.shown_key[image.location][:8]}"
            for post in site.posts for image in post.images if pattern.search(text(image))}


def _search(watch: Watch, server: str, query: str) -> list[str]:
    watch.goto(f"{server}/blog/search/?q={query}")
    watch.page.wait_for_function("q => document.body.dataset.searched === q", arg=query)
    return watch.page.eval_on_selector_all(
        ".result-picture a", "links => links.map(a => a.getAttribute('href'))")


@pytest.mark.parametrize("word", ["cheek", "橘猫", "lowres", "worker"])
def test_search_finds_exactly_the_pictures_with_a_word(browser: Any, server: str, blog: Path,
                                                        word: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900)
    expected = _expected(blog, word)
    assert expected  # the word is in some prompt
    found = _search(watch, server, word)
    assert sorted(found) == sorted(expected)
    status = watch.page.locator("#search-status").inner_text()
    assert str(len(watch.page.locator(".result").all())) in status
    watch.load_all_images()  # every result has its thumbnail
    watch.screenshot(tmp_path, f"search-{len(word)}")
    # A result opens the picture in its post.
    watch.page.locator(".result-picture a").first.click()
    watch.page.wait_for_url(re.compile(r".*/blog/posts/.*#img-[0-9a-f]{8}$"))
    anchor = urlsplit(watch.page.url).fragment
    assert watch.page.evaluate("() => document.querySelector(':target').id") == anchor
    watch.close()


def test_search_from_the_header_and_only_what_the_query_needs(browser: Any, server: str):
    watch = Watch(browser, 1280, 900)
    fetched: list[str] = []
    watch.page.on("request", lambda r: fetched.append(r.url))
    watch.goto(server + "/blog/archive/")
    assert not any("/pagefind/" in url for url in fetched)  # no index on other pages
    field = watch.page.get_by_role("searchbox", name="Search pictures and posts")
    field.fill("worker")
    field.press("Enter")
    watch.page.wait_for_function("() => document.body.dataset.searched === 'worker'")
    assert watch.page.url.endswith("/blog/search/?q=worker")
    assert watch.page.locator(".result-picture").count() >= 2
    # pagefind.js, its worker, wasm, entry, meta, one index chunk and each result's fragment
    index = [url for url in fetched if "/pagefind/index/" in url]
    assert len(index) == 1
    assert all(url.startswith(server + "/blog/pagefind/") for url in fetched
               if "pagefind" in url)
    badge = watch.page.locator(".result-kind").first.inner_text()
    assert "preview" in badge  # a --preview site is searchable, and says so
    watch.close()


def _png_parameters(blog: Path, href: str) -> str:
    from PIL import Image

    path = blog / "public" / unquote(href.removeprefix("/"))
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        return str(image.info["parameters"])


def test_copy_buttons_put_the_exact_infotext_on_the_clipboard(browser: Any, server: str,
                                                              blog: Path, tmp_path: Path):
    watch = Watch(browser, 1280, 900, permissions=["clipboard-read", "clipboard-write"])
    page = watch.page
    watch.goto(server + "/blog/posts/ai-images/")
    figure = page.locator("figure.picture").nth(2)
    figure.locator("summary").focus()
    page.keyboard.press("Enter")  # the settings open by keyboard
    page.keyboard.press("Tab")  # … past the download link, to the copy buttons
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused == "Copy prompt"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    button = figure.get_by_role("button", name=re.compile("Copy generation data"))
    page.wait_for_function("b => b.classList.contains('copied')", arg=button.element_handle())
    infotext = page.evaluate("() => navigator.clipboard.readText()")
    download = figure.locator("a.download")
    assert download.get_attribute("download") is not None
    assert infotext == _png_parameters(blog, download.get_attribute("href"))  # byte for byte
    assert "Steps: 20, Sampler: Euler a" in infotext and "Seed: 482861532" in infotext
    assert page.locator("p[role=status]").last.inner_text() == "Generation data copied"
    figure.scroll_into_view_if_needed()
    watch.screenshot(tmp_path, "copied")
    figure.get_by_role("button", name="Copy genimg spec").click()
    page.wait_for_function("() => navigator.clipboard.readText().then(t => "
                           "t.startsWith('- prompt: high quality photo'))")
    watch.close()


def test_copy_works_without_a_secure_context(browser: Any, server: str):
    """Where the Clipboard API is missing (plain http), the textarea fallback copies."""
    watch = Watch(browser, 1280, 900, permissions=["clipboard-read", "clipboard-write"])
    page = watch.page
    page.add_init_script("Object.defineProperty(window, 'isSecureContext', {value: false})")
    watch.goto(server + "/blog/posts/samplers/")
    figure = page.locator("figure.picture").first
    figure.locator("summary").click()
    prompt = figure.locator("dd.prompt").first.inner_text()
    figure.get_by_role("button", name="Copy prompt").click()
    page.wait_for_function("() => document.querySelector('button.copy.copied')")
    assert page.evaluate("() => navigator.clipboard.readText()") == prompt
    watch.close()


def _slider_state(page: Any, figure: Any) -> dict[str, Any]:
    return figure.evaluate("""f => {
        const box = f.querySelector('.compare'), range = box.querySelector('input');
        const imgs = Array.from(box.querySelectorAll('img'));
        return {value: +range.value, hidden: box.hidden,
                loaded: imgs.every(i => i.complete && i.naturalWidth > 0),
                shown: imgs.map(i => i.getBoundingClientRect().width),
                clip: getComputedStyle(box.querySelector('.compare-after')).clipPath,
                text: range.getAttribute('aria-valuetext')};
    }""")


def test_slider_keys_drag_and_touch(browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900)
    page = watch.page
    watch.goto(server + "/blog/posts/face-restoration/")
    figure = page.locator("figure.picture").nth(1)  # restore from worker-raw
    assert figure.locator(".compare").is_hidden()  # side by side stays the default
    toggle = figure.get_by_role("button", name=re.compile("^Compare with"))
    toggle.focus()
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-pressed") == "true"
    page.wait_for_function("f => Array.from(f.querySelectorAll('.compare img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)",
                           arg=figure.element_handle())
    state = _slider_state(page, figure)
    assert not state["hidden"] and state["loaded"] and min(state["shown"]) > 300
    assert state["value"] == 50 and state["clip"] == "inset(0px 0px 0px 50%)"
    assert page.evaluate("() => document.activeElement.className") == "compare-range"
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    assert _slider_state(page, figure)["value"] == 40
    page.keyboard.press("End")
    state = _slider_state(page, figure)
    assert state["value"] == 100 and state["text"] == "100% before"
    page.keyboard.press("Home")
    assert _slider_state(page, figure)["value"] == 0
    box = figure.locator(".compare").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.3, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
    page.mouse.up()
    state = _slider_state(page, figure)
    assert abs(state["value"] - 75) <= 1
    assert state["clip"] == f"inset(0px 0px 0px {state['value']}%)"
    watch.screenshot(tmp_path, "slider")
    figure.locator(".compare").evaluate("""(box) => {
        const r = box.getBoundingClientRect(), y = r.top + r.height / 2;
        const at = (type, x) => box.dispatchEvent(new PointerEvent(type, {pointerId: 7,
            pointerType: 'touch', clientX: r.left + r.width * x, clientY: y, bubbles: true}));
        at('pointerdown', 0.6); at('pointermove', 0.2); at('pointerup', 0.2);
    }""")
    assert _slider_state(page, figure)["value"] == 20
    toggle.click()  # and back to the picture
    assert figure.locator(".compare").is_hidden() and figure.locator(".picture-link").is_visible()
    watch.close()


def test_gallery_option_starts_with_the_slider(browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900)
    watch.goto(server + "/blog/posts/cats/")
    figures = watch.page.locator("figure.picture")
    assert figures.nth(1).locator(".compare").is_visible()  # img2img of the first: a slider
    assert figures.nth(0).locator(".compare").count() == 0  # nothing to compare with
    assert figures.nth(0).locator(".picture-link").is_visible()
    watch.load_all_images()
    watch.screenshot(tmp_path, "cats-slider")
    watch.close()


def test_share_cards_validate(browser: Any, server: str, blog: Path):
    from PIL import Image

    watch = Watch(browser, 1280, 900)
    for path in ["/blog/", "/blog/posts/ai-images/", "/blog/tags/", "/blog/archive/",
                 "/blog/search/", "/blog/tags/%E6%B0%B4%E5%BD%A9/"]:
        watch.goto(server + path)
        watch.load_all_images()  # nothing left in flight when the next page opens
        tags = watch.page.evaluate("""() => Object.fromEntries(Array.from(
            document.querySelectorAll('meta[property^="og:"], meta[name^="twitter:"]'))
            .map(m => [m.getAttribute('property') || m.getAttribute('name'), m.content]))""")
        assert tags["og:url"] == BASE_URL.removesuffix("/blog/") + path
        assert tags["og:title"] and tags["og:description"] is not None
        assert tags["twitter:card"] == "summary_large_image"
        image = tags["og:image"]
        assert image == tags["twitter:image"] and image.startswith(BASE_URL)
        assert image.endswith("-card.jpg") and tags["og:image:alt"]
        file = blog / "public" / "blog" / unquote(image.removeprefix(BASE_URL))
        with Image.open(file) as card:
            assert card.format == "JPEG"
            assert card.size == (int(tags["og:image:width"]), int(tags["og:image:height"]))
            assert card.size == (1200, 630)
        response = watch.page.request.get(server + "/blog/" + image.removeprefix(BASE_URL))
        assert response.ok
    assert watch.page.evaluate("() => document.querySelector('meta[property=\"og:type\"]')"
                               ".content") == "website"
    watch.close()


def _axe(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})",
                           AXE_TAGS)
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(node["target"][0] for node in v["nodes"][:3])
            for v in result["violations"]]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_wcag_violations(browser: Any, server: str, scheme: str):
    if not AXE.is_file():
        _missing("axe-core", "npm ci --prefix tests/browser")
    watch = Watch(browser, 1280, 900, color_scheme=scheme)
    page = watch.page
    problems: dict[str, list[str]] = {}

    def check(name: str) -> None:
        watch.load_all_images()
        found = _axe(page)
        if found:
            problems[name] = found

    for path in ["/blog/", "/blog/posts/ai-images/", "/blog/tags/", "/blog/archive/",
                 "/blog/tags/%E6%B0%B4%E5%BD%A9/"]:
        watch.goto(server + path)
        check(path)
    watch.goto(server + "/blog/posts/cats/")
    page.locator("figure.picture summary").first.click()  # settings and copy buttons open
    check("post with a slider, settings open")
    page.locator("a.picture-link").first.click()
    check("lightbox")
    page.keyboard.press("Escape")
    watch.goto(server + "/blog/search/?q=cheek")
    page.wait_for_function("() => document.body.dataset.searched === 'cheek'")
    check("search results")
    watch.goto(server + "/blog/no/such/page/", status=404)
    check("404")
    watch.close()
    assert problems == {}
