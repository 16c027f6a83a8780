"""The example blog in headless Chromium, served under ``/blog/`` like a GitHub project site.

Layout (pairs side by side on a desktop, stacked on a phone; the samplers grid's labels
aligned with its cells, scrolling sideways inside itself on a phone), every picture
loading, the lightbox by keyboard (along a grid's rows and columns too), the 404 page at
any depth, and no console errors or failed requests anywhere. Screenshots go to the
test's ``tmp_path / "artifacts"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browsing import Watch, chromium, example_blog, playwright_or_skip, serving

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAIR_POST = "/blog/posts/ai-images/"

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example blog built into ``public/blog``, ``public/`` served; yields the origin."""
    root = example_blog(tmp_path_factory.mktemp("browser") / "example")
    with serving(root / "public") as origin:
        yield origin


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(sync_api) as launched:
        yield launched


def _boxes(page: Any, gallery: int) -> list[dict[str, float]]:
    figures = page.locator(".content .gallery").nth(gallery).locator("figure.picture")
    return [figures.nth(i).bounding_box() for i in range(figures.count())]


def test_pairs_side_by_side_on_desktop(browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900)
    watch.goto(server + PAIR_POST)
    gallery = watch.page.locator(".content .gallery").nth(1)
    gallery.scroll_into_view_if_needed()
    first, second = _boxes(watch.page, 1)
    assert abs(first["y"] - second["y"]) < 1
    assert second["x"] >= first["x"] + first["width"]
    assert first["width"] > 400  # a real row, not thumbnails
    assert all(abs(a["y"] - b["y"]) < 1 for a, b in (_boxes(watch.page, i) for i in range(9)))
    watch.load_all_images()
    gallery.scroll_into_view_if_needed()
    watch.screenshot(tmp_path, "desktop-post")
    watch.close()


def test_pairs_stacked_on_a_phone(browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 390, 844, device_scale_factor=2, is_mobile=True, has_touch=True)
    watch.goto(server + PAIR_POST)
    first, second = _boxes(watch.page, 1)
    assert second["y"] >= first["y"] + first["height"] - 1
    assert abs(first["x"] - second["x"]) < 1
    assert first["width"] > 300  # full width of the phone, less the margins
    width = watch.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways
    watch.page.locator(".content .gallery").nth(1).scroll_into_view_if_needed()
    watch.load_all_images()
    watch.page.locator(".content .gallery").nth(1).scroll_into_view_if_needed()
    watch.screenshot(tmp_path, "phone-post")
    watch.goto(server + "/blog/")
    watch.load_all_images()
    watch.screenshot(tmp_path, "phone-index")
    watch.close()


def test_every_page_loads_every_picture(browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900, color_scheme="dark")
    pages = ["/blog/", "/blog/posts/ai-images/", "/blog/posts/samplers/",
             "/blog/posts/face-restoration/", "/blog/tags/", "/blog/archive/",
             "/blog/tags/%E7%BE%8E%E4%B8%BD%E5%9B%BE%E7%89%87/"]
    pictures = 0
    for url in pages:
        watch.goto(server + url)
        pictures += watch.load_all_images()
        assert watch.page.locator("html").get_attribute("lang") == "zh-CN"
        assert watch.page.locator(".preview-banner").is_visible()
    assert pictures >= 30
    background = watch.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(19, 19, 21)"  # dark mode from prefers-color-scheme
    watch.screenshot(tmp_path, "desktop-dark-tag")
    watch.goto(server + "/blog/")
    watch.screenshot(tmp_path, "desktop-dark-index")
    watch.close()


def test_404_page_works_at_any_depth(browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900)
    watch.goto(server + "/blog/no/such/page/", status=404)
    assert watch.page.locator("h1").inner_text() == "Page not found"
    color = watch.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert color == "rgb(251, 250, 247)"  # the stylesheet loaded from three levels down
    watch.screenshot(tmp_path, "desktop-404")
    watch.page.get_by_role("link", name="archive", exact=True).click()
    watch.page.wait_for_url("**/blog/archive/")
    assert watch.page.locator("h1").inner_text() == "Archive"
    watch.close()


def test_lightbox_keyboard_and_buttons(browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900)
    page = watch.page
    watch.goto(server + PAIR_POST)
    links = page.locator("a.picture-link")
    count = links.count()
    assert count == 18
    hrefs = [links.nth(i).get_attribute("href") for i in range(count)]
    box, img = page.locator(".lightbox"), page.locator(".lightbox img")

    def shown() -> int:
        page.wait_for_function("() => { const i = document.querySelector('.lightbox img');"
                               " return i.complete && i.naturalWidth > 0; }")
        index = int(box.get_attribute("data-index"))
        assert img.get_attribute("src") == server + hrefs[index]
        return index

    links.nth(2).click()
    assert box.is_visible() and shown() == 2
    assert page.evaluate("() => document.activeElement.className") == "lb-close"
    assert page.locator(".lb-count").inner_text() == f"3 / {count}"
    watch.screenshot(tmp_path, "desktop-lightbox")
    page.keyboard.press("ArrowRight")
    assert shown() == 3
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert shown() == 1
    page.locator(".lb-next").click()
    assert shown() == 2
    page.keyboard.press("Tab")  # focus stays inside the dialog
    assert page.evaluate("() => !!document.activeElement.closest('.lightbox')")
    page.keyboard.press("Escape")
    assert box.is_hidden()
    assert page.evaluate("() => document.activeElement.getAttribute('href')") == hrefs[2]
    links.nth(0).click()
    page.keyboard.press("ArrowLeft")  # wraps around to the last picture of the post
    assert shown() == count - 1
    page.mouse.click(5, 450)  # the dark backdrop closes it too
    assert box.is_hidden()
    watch.close()


def test_lightbox_swipes_on_a_phone(browser: Any, server: str):
    watch = Watch(browser, 390, 844, is_mobile=True, has_touch=True)
    page = watch.page
    watch.goto(server + "/blog/posts/samplers/")
    page.locator("a.picture-link").first.tap()
    box = page.locator(".lightbox")
    assert box.is_visible() and box.get_attribute("data-index") == "0"

    def swipe(dx: int, dy: int = 0) -> None:
        page.evaluate("""([dx, dy]) => {
            const box = document.querySelector('.lightbox');
            const touch = (x, y) => new Touch({identifier: 1, target: box, clientX: x, clientY: y});
            box.dispatchEvent(new TouchEvent('touchstart', {touches: [touch(200, 300)]}));
            box.dispatchEvent(new TouchEvent('touchend',
                {changedTouches: [touch(200 + dx, 300 + dy)]}));
        }""", [dx, dy])

    swipe(-120)
    assert box.get_attribute("data-index") == "1"
    swipe(120)
    swipe(120)
    assert box.get_attribute("data-index") == "8"  # the grid's last cell
    swipe(0, 200)
    assert box.is_hidden()
    watch.close()


GRID_POST = "/blog/posts/samplers/"


def _grid_boxes(page: Any) -> tuple[list[dict], list[dict], list[list[dict]]]:
    """Column label boxes, row label boxes, and cell boxes row by row, of the first grid."""
    table = page.locator(".content .grid-table").first
    boxes = table.evaluate("""t => {
        const box = e => { const r = e.getBoundingClientRect();
                           return {x: r.x, y: r.y, width: r.width, height: r.height}; };
        return {cols: [...t.querySelectorAll('thead .grid-label')].map(box),
                rows: [...t.querySelectorAll('tbody th[scope=row]')].map(box),
                cells: [...t.querySelectorAll('tbody tr')].map(
                    tr => [...tr.querySelectorAll('td')].map(box))};
    }""")
    return boxes["cols"], boxes["rows"], boxes["cells"]


def _assert_labels_aligned(page: Any) -> None:
    cols, rows, cells = _grid_boxes(page)
    assert len(cols) == 3 and len(rows) == 3 and all(len(row) == 3 for row in cells)
    for x, label in enumerate(cols):  # each column label spans exactly its cells
        for row in cells:
            assert abs(label["x"] - row[x]["x"]) < 1 and abs(label["width"] - row[x]["width"]) < 1
            assert label["y"] + label["height"] <= row[x]["y"]
    for y, label in enumerate(rows):  # each row label sits level with its cells, before them
        for cell in cells[y]:
            assert abs(label["y"] - cell["y"]) < 1 and abs(label["height"] - cell["height"]) < 1


def test_grid_on_desktop_and_its_lightbox_moves_along_rows_and_columns(
        browser: Any, server: str, tmp_path: Path):
    watch = Watch(browser, 1280, 900)
    page = watch.page
    watch.goto(server + GRID_POST)
    _assert_labels_aligned(page)
    _, rows, cells = _grid_boxes(page)
    assert cells[0][0]["width"] > 250  # real pictures, not thumbnails
    assert all(rows[0]["x"] + rows[0]["width"] <= row[0]["x"] for row in cells)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
    scroll = page.locator(".grid-scroll").first
    assert scroll.evaluate("e => e.scrollWidth <= e.clientWidth")  # fits: no inner scroll
    watch.load_all_images()
    page.locator(".grid-table").first.scroll_into_view_if_needed()
    watch.screenshot(tmp_path, "desktop-grid")
    links = page.locator(".grid-table a.picture-link")
    box = page.locator(".lightbox")

    def at() -> tuple[str, str]:
        index = int(box.get_attribute("data-index"))
        cell = page.locator("a.picture-link").nth(index).locator("xpath=ancestor::td")
        return cell.get_attribute("data-x"), cell.get_attribute("data-y")

    links.nth(0).click()
    assert at() == ("0", "0")
    for key, expected in (("ArrowRight", ("1", "0")), ("ArrowDown", ("1", "1")),
                          ("ArrowUp", ("1", "0")), ("ArrowUp", ("1", "2")),
                          ("ArrowLeft", ("0", "2")), ("ArrowLeft", ("2", "2")),
                          ("ArrowDown", ("2", "0"))):
        page.keyboard.press(key)
        assert at() == expected, key
    assert "sampler: DDIM · steps: 10" in page.locator(".lb-caption").inner_text()
    page.keyboard.press("Escape")
    watch.close()


def test_grid_on_a_phone_scrolls_sideways_inside_itself(browser: Any, server: str,
                                                        tmp_path: Path):
    watch = Watch(browser, 390, 844, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = watch.page
    watch.goto(server + GRID_POST)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    scroll = page.locator(".grid-scroll").first
    assert scroll.evaluate("e => e.scrollWidth > e.clientWidth + 100")  # scrolls inside
    _assert_labels_aligned(page)
    _, rows, cells = _grid_boxes(page)
    assert cells[0][0]["width"] > 120
    watch.load_all_images()
    page.locator(".grid-table").first.scroll_into_view_if_needed()
    watch.screenshot(tmp_path, "phone-grid")
    before = rows[0]["x"]
    scroll.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
    page.wait_for_function("() => document.querySelector('.grid-scroll').scrollLeft > 100")
    _assert_labels_aligned(page)  # still level with their cells, the columns too
    _, rows, cells = _grid_boxes(page)
    assert abs(rows[0]["x"] - before) < 1  # the row labels stay in view
    assert cells[0][0]["x"] < before  # the pictures moved under them
    last = cells[0][-1]
    assert last["x"] + last["width"] <= 390  # the last column can be reached
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    watch.screenshot(tmp_path, "phone-grid-scrolled")
    watch.close()
