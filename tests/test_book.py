"""The book, checked in a real browser (headless Chromium through Playwright).

Every page of the table of contents loads, has its title, its images and internal links work,
pages that run code show their executed output (figures where the chapter makes them), math is
typeset by the site's own MathJax, and the search page finds a word of a chapter. Nothing is
fetched from any address but 127.0.0.1: every other request is blocked and recorded.

`make test` builds the book first (`make book`) and sets CASESTUDY_BOOK_BUILT=1, so the build is
reused here; otherwise this test builds it (book/build.py; cached pages make that quick).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HTML = BOOK / "_build" / "html"
SCREENSHOTS = BOOK / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
FIGURE_PAGES = {"01_data", "02_eda", "03_train", "04_evaluate", "05_tsne", "06_gradcam", "07_report",
                "limits"}  # pages whose code draws figures
SEARCH = ("truncation", "01_data")  # a word of a chapter, and that chapter

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install it with "
                       "`apt-get install -y chromium` to check the book in a browser"),
]


def toc_pages() -> list[str]:
    """Every page of book/_toc.yml, the root first."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    return [toc["root"], *(ch["file"] for part in toc["parts"] for ch in part["chapters"])]


def heading(page: str) -> str:
    """The page's title: the first level-1 heading of its source."""
    lines = (BOOK / f"{page}.md").read_text().splitlines()
    return next(line[2:].strip() for line in lines if line.startswith("# "))


def plain(text: str) -> str:
    """Undo Sphinx's smart quotes, to compare a rendered title with its source."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site():
    """Serve book/_build/html on 127.0.0.1 (building it first unless `make book` just did)."""
    if os.environ.get("CASESTUDY_BOOK_BUILT") != "1" or not (HTML / "index.html").is_file():
        subprocess.run([sys.executable, str(BOOK / "build.py")], check=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser_page(site):
    """A Chromium page that may reach 127.0.0.1 only; yields (page, list of blocked URLs)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    blocked: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", only_local)
        yield context.new_page(), blocked
        browser.close()


BROKEN_IMAGES = """async () => {
    const broken = [];
    for (const img of document.images) {
        img.loading = "eager";
        try { await img.decode(); } catch (e) {}
        if (!(img.complete && img.naturalWidth > 0)) broken.push(img.currentSrc || img.src);
    }
    return broken;
}"""


def test_every_page_loads_with_images_links_and_outputs(site, browser_page):
    page, blocked = browser_page
    checked_links: set[str] = set()
    for name in toc_pages():
        response = page.goto(site + f"{name}.html", wait_until="load")
        assert response is not None and response.status == 200, name
        title = heading(name)
        assert title in plain(page.title()), (name, page.title())
        assert plain(page.locator("h1").first.inner_text()).strip().startswith(title), name
        assert page.evaluate(BROKEN_IMAGES) == [], f"{name}: broken images"
        if page.locator("div.cell").count():  # the page runs code: its outputs are there
            assert page.locator("div.cell_output").count() > 0, f"{name}: no executed output"
        if name in FIGURE_PAGES:
            figures = page.locator("div.cell_output img")
            assert figures.count() > 0, f"{name}: no executed figure"
            assert figures.first.evaluate("img => img.naturalWidth") > 100, name
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        for href in hrefs:
            url = urldefrag(href).url
            if url.startswith(site) and url not in checked_links:
                checked_links.add(url)
                assert page.request.get(url).status == 200, f"{name}: broken link {href}"
    assert len(checked_links) > len(toc_pages())
    assert blocked == [], f"requests to other hosts: {blocked[:5]}"


def test_math_is_typeset_by_the_local_mathjax(site, browser_page):
    page, blocked = browser_page
    page.goto(site + "01_data.html", wait_until="load")
    page.wait_for_selector("mjx-container", timeout=30_000)  # MathJax rendered the psi formula
    sources = page.eval_on_selector_all("script[src*='mathjax']", "s => s.map(e => e.src)")
    assert sources and all(src.startswith(site) for src in sources), sources
    assert blocked == [], f"requests to other hosts: {blocked[:5]}"


def test_search_finds_a_word_of_a_chapter(site, browser_page):
    page, blocked = browser_page
    word, chapter = SEARCH
    page.goto(site + f"search.html?q={word}", wait_until="load")
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)  # Sphinx searches in JavaScript, after loading
    links = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any(link.startswith(f"{chapter}.html") for link in links), links
    assert blocked == [], f"requests to other hosts: {blocked[:5]}"


def test_screenshots_of_the_landing_page_and_a_chapter(site, browser_page):
    page, _ = browser_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, url in (("landing", ""), ("02_eda", "02_eda.html")):
        page.goto(site + url, wait_until="networkidle")
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        assert path.stat().st_size > 10_000, path


def test_the_public_book_shows_no_solution(site):
    """Students read the book: no exercise's solution (nor its code) is in the public build."""
    solved = [page.name for page in HTML.glob("*.html")
              if 'class="solution' in page.read_text() or "gradients.mean(axis=(2, 3))" in page.read_text()]
    assert not solved, f"solutions shown in {solved}"
    assert 'class="exercise' in (HTML / "06_gradcam.html").read_text()  # the exercises themselves stay
