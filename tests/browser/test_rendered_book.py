r"""The rendered book, read as a reader's browser reads it.

These tests open every page of the table of contents of the built book (``_build/html``,
or the folder in ``BOOK_HTML``), served on localhost by the tests themselves, in
Debian's headless Chromium (``/usr/bin/chromium``, or ``BOOK_CHROMIUM``) driven by
Playwright, which downloads no browser. One pass opens each page at a desktop size and
then at a phone's size and records what the checks need; each check is then its own test
per page, so a failure names the page and what is wrong on it. Screenshots of three
representative pages go to ``_build/screenshots/`` (beside the HTML folder).

They need a built book and a browser, so ``make test`` skips them; they run when
``BOOK_BROWSER_TESTS=1``, as ``make browser-test`` (after ``make book``) sets:

    make book && make browser-test
    BOOK_BROWSER_TESTS=1 BOOK_HTML=/tmp/copy/_build/html \
        .venv/bin/python -m pytest tests/browser
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import urlopen

import pytest
import yaml

if os.environ.get("BOOK_BROWSER_TESTS") != "1":
    pytest.skip(
        "browser tests: run `make browser-test` after `make book`",
        allow_module_level=True,
    )

REPO = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", REPO / "_build" / "html")).resolve()
SCREENSHOTS = HTML.parent / "screenshots"
CHROMIUM = os.environ.get("BOOK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))


def toc_pages() -> list[str]:
    """Every document of ``_toc.yml``, root first, as paths without a suffix."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(str(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return pages


# Both editions: the Chinese one is built into zh_CN/ with the same page names.
CHINESE = "zh_CN/"
ENGLISH_PAGES = toc_pages()
PAGES = ENGLISH_PAGES + [CHINESE + page for page in ENGLISH_PAGES]
SECTIONS = [
    page for page in PAGES if page.removeprefix(CHINESE).startswith("chapters/")
]
# The start page, a section with formulas and figures (desktop), a section on a phone,
# and the Chinese edition's start page and a Chinese section.
SCREENSHOT_PAGES = [
    ("intro", DESKTOP, "intro-desktop.png"),
    ("chapters/attention/scaled_dot_product_attention", DESKTOP, "sdpa-desktop.png"),
    ("chapters/sequence_models/gated_units", PHONE, "gated-units-phone.png"),
    (CHINESE + "intro", DESKTOP, "zh-intro-desktop.png"),
    (CHINESE + "chapters/attention/soft_lookup", DESKTOP, "zh-soft-lookup-desktop.png"),
    (CHINESE + "chapters/attention/multi_head_attention", PHONE, "zh-mha-phone.png"),
]

# What the page reports about itself once MathJax has finished typesetting.
SURVEY_JS = (
    r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const root = document.querySelector("main") || document.body;
  // Text a reader sees as prose: not code, not outputs, not typeset maths.
  const skip = "mjx-container, pre, code, kbd, samp, script, style, textarea, "
             + ".cell_output, .output, .highlight";
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => node.parentElement && !node.parentElement.closest(skip)
      ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT,
  });
  const texPattern = /\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\s]([^$]*[^$\s])?\$|"""
    r"""\\(frac|sqrt|sum|mathbf|mathrm|begin|end|alpha|cdot|top|operatorname)\b/;
  const rawTex = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const match = node.textContent.match(texPattern);
    if (match) {
      const at = Math.max(0, match.index - 30);
      rawTex.push(node.textContent.slice(at, match.index + 50).replace(/\s+/g, " "));
    }
  }
  const mathNodes = [...document.querySelectorAll("span.math, div.math")];
  const untypeset = mathNodes.filter((el) => !el.querySelector("mjx-container"))
    .map((el) => el.textContent.trim().slice(0, 80));
  const mathErrors = [...document.querySelectorAll("mjx-merror")]
    .map((el) => el.getAttribute("data-mjx-error") || el.textContent);
  const images = [...document.querySelectorAll("img")].map((img) => ({
    src: img.getAttribute("src") || "", alt: img.getAttribute("alt"),
  }));
  const links = [...document.querySelectorAll("a[href]")].map((a) => ({
    raw: a.getAttribute("href"), url: a.href,
    download: a.classList.contains("btn-download-source-button"),
    switch: !!a.closest("nav.language-switch"),
  }));
  // Code cells whose lines do not fit the column (each scrolls sideways in its box).
  const scrollingCode = [...document.querySelectorAll(".cell_input pre")]
    .filter((pre) => pre.scrollWidth > pre.clientWidth + 1)
    .map((pre) => pre.innerText.split("\n")"""
    r""".reduce((a, b) => (b.length > a.length ? b : a)));
  return {rawTex, mathCount: mathNodes.length, untypeset, mathErrors, images, links,
          scrollingCode};
}
"""
)

# The elements that stick out of a narrow window and are not inside a box that scrolls
# (or clips) on its own: what makes the whole page scroll sideways.
OVERFLOW_JS = (
    r"""
() => {
  const limit = window.innerWidth + 1;
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (["auto", "scroll", "hidden", "clip"]"""
    r""".includes(getComputedStyle(p).overflowX)) {
        return true;
      }
    }
    return false;
  };
  // Hidden and fixed-position elements (off-canvas sidebars) do not widen the page.
  const unseen = (el) => {
    if (getComputedStyle(el).visibility === "hidden") return true;
    for (let p = el; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).position === "fixed") return true;
    }
    return false;
  };
  const culprits = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > limit && !clipped(el) && !unseen(el)) {
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
        + [...el.classList].slice(0, 3).map((c) => "." + c).join("");
      culprits.push(`${name} (right edge ${Math.round(box.right)} px)`);
    }
  }
  return {
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
    culprits: culprits.slice(-6),
  };
}
"""
)


@dataclass
class PageReport:
    url: str
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    survey: dict = field(default_factory=dict)
    overflow: dict = field(default_factory=dict)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports what matters
        pass


@pytest.fixture(scope="session")
def site():
    """Serve the built book on a free localhost port; yields its base URL."""
    if not (HTML / "index.html").is_file():
        pytest.fail(
            f"No built book in {HTML}: run `make book` first (or set BOOK_HTML)."
        )
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Debian Chromium with a fresh profile (Playwright drives, never
    downloads)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install chromium (or set BOOK_CHROMIUM)."
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=DESKTOP,
        )
        try:
            yield context
        finally:
            context.close()


def _open(context, url: str, report: PageReport):
    """Open ``url`` in a new tab, recording errors and every request that leaves
    localhost."""
    page = context.new_page()
    base = url.split("/", 3)[:3]
    origin = "/".join(base) + "/"

    def route(route_):
        if route_.request.url.startswith(origin):
            route_.continue_()
        else:  # the book must work offline: nothing is fetched from another host
            report.external_requests.append(route_.request.url)
            route_.abort()

    page.route("**/*", route)
    page.on(
        "console",
        lambda msg: (
            msg.type == "error"
            and report.console_errors.append(
                f"{msg.text} ({msg.location.get('url', '')})"
            )
        ),
    )
    page.on(
        "pageerror", lambda error: report.console_errors.append(f"uncaught: {error}")
    )
    page.on(
        "requestfailed",
        lambda request: (
            request.url.startswith(origin)
            and report.failed_requests.append(f"{request.url}: {request.failure}")
        ),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and report.failed_requests.append(f"{response.url}: HTTP {response.status}")
        ),
    )
    page.goto(url, wait_until="load")
    return page


@pytest.fixture(scope="session")
def reports(site, browser) -> dict[str, PageReport]:
    """Open every page of the table of contents: desktop survey, then a phone-sized
    window."""
    result = {}
    for name in PAGES:
        report = result[name] = PageReport(url=site + name + ".html")
        page = _open(browser, report.url, report)
        report.survey = page.evaluate(SURVEY_JS)
        page.set_viewport_size(PHONE)
        page.reload(wait_until="load")
        page.evaluate(
            "async () => window.MathJax && MathJax.startup && MathJax.startup.promise"
        )
        report.overflow = page.evaluate(OVERFLOW_JS)
        page.close()
    return result


def _html_file(url: str, site: str) -> Path | None:
    """The file under the HTML folder that a localhost URL names (None for other
    hosts)."""
    if not url.startswith(site):
        return None
    path = unquote(urlsplit(url).path).lstrip("/")
    target = HTML / path
    return target / "index.html" if path == "" or path.endswith("/") else target


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    """Every id (and <a name>) in an HTML file: the fragments a link may point at."""
    found: set[str] = set()

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for key, value in attrs:
                if value and (key == "id" or (tag == "a" and key == "name")):
                    found.add(value)

    Collector().feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(found)


# --------------------------------------------------------------------------------------
# The checks, one test per page.


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_without_errors(reports, name):
    report = reports[name]
    problems = (
        report.console_errors
        + report.failed_requests
        + [f"fetched from another host: {url}" for url in report.external_requests]
    )
    assert not problems, f"{name}.html:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", PAGES)
def test_formulas_are_typeset(reports, name):
    survey = reports[name].survey
    assert not survey["rawTex"], (
        f"raw TeX left in the text of {name}.html: {survey['rawTex'][:5]}"
    )
    assert not survey["untypeset"], (
        f"{len(survey['untypeset'])} of {survey['mathCount']} formulas "
        f"on {name}.html were not "
        f"typeset by MathJax, e.g. {survey['untypeset'][:3]}"
    )
    assert not survey["mathErrors"], (
        f"MathJax errors on {name}.html: {survey['mathErrors'][:5]}"
    )


def test_the_book_has_formulas(reports):
    """The typesetting check looks at something: the maths of the sections is there."""
    with_math = [name for name in SECTIONS if reports[name].survey["mathCount"] > 0]
    assert len(with_math) >= len(SECTIONS) // 2, f"only {with_math} have formulas"


IMAGE_PATH = re.compile(r"(^|/)[^/\s]+\.(png|jpe?g|gif|svg|webp)$", re.IGNORECASE)


def images_without_alt(images: list[dict]) -> list[str]:
    """Images whose alt text is missing, blank, or only a file's path."""
    bad = []
    for image in images:
        alt = (image["alt"] or "").strip()
        if (
            not alt
            or IMAGE_PATH.search(alt)
            or "_images/" in alt
            or alt == image["src"]
        ):
            bad.append(f"{image['src']} has alt {image['alt']!r}")
    return bad


@pytest.mark.parametrize("name", PAGES)
def test_images_have_alt_text(reports, name):
    bad = images_without_alt(reports[name].survey["images"])
    assert not bad, (
        f"{name}.html: images without a text alternative (a figure needs a title: "
        "seqbook.book.plotting turns titles and axis labels into alt text):\n  "
        + "\n  ".join(bad)
    )


@pytest.mark.parametrize("name", SECTIONS)
def test_code_cells_fit_the_column_on_a_desktop(reports, name):
    # Code lines are at most 88 characters (tests/book/test_config.py); _static/book.css
    # sizes the code font so that 88 fit at the desktop size. The Colab install line is
    # longer.
    scrolling = [
        line
        for line in reports[name].survey["scrollingCode"]
        if not line.lstrip().startswith("%pip install")
    ]
    assert not scrolling, (
        f"{name}.html: code cells scroll sideways at "
        f"{DESKTOP['width']} px; their longest lines:\n  " + "\n  ".join(scrolling)
    )


def broken_links(links: list[dict], site: str) -> list[str]:
    """The links to this site whose file, or whose #anchor in that file, does not
    exist."""
    broken = []
    for link in links:
        target = _html_file(link["url"], site)
        if target is None:
            continue
        fragment = unquote(urlsplit(link["url"]).fragment)
        if not target.is_file():
            broken.append(f"{link['raw']}: no such file {target.relative_to(HTML)}")
        elif fragment and target.suffix == ".html" and fragment not in _anchors(target):
            broken.append(
                f"{link['raw']}: no anchor #{fragment} in {target.relative_to(HTML)}"
            )
    return sorted(set(broken))


@pytest.mark.parametrize("name", PAGES)
def test_internal_links_resolve(reports, site, name):
    broken = broken_links(reports[name].survey["links"], site)
    assert not broken, f"{name}.html has broken links:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("name", PAGES)
def test_no_sideways_scrolling_on_a_phone(reports, name):
    overflow = reports[name].overflow
    assert overflow["innerWidth"] == PHONE["width"]
    assert overflow["scrollWidth"] <= overflow["innerWidth"] + 1, (
        f"{name}.html is {overflow['scrollWidth']} px wide "
        f"in a {overflow['innerWidth']} px "
        f"window; sticking out: {overflow['culprits']}"
    )


def _repository() -> tuple[str, str]:
    """("owner/name", branch) of the repository named in _config.yml."""
    url = CONFIG["repository"]["url"].rstrip("/")
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(\.git)?", url)
    assert match, f"repository.url is not a GitHub repository: {url}"
    return match.group(1), CONFIG["repository"].get("branch", "main")


@pytest.mark.parametrize("name", SECTIONS)
def test_launch_buttons_open_this_notebook(reports, name):
    repo, branch = _repository()
    notebook = f"{name}.ipynb"
    assert (REPO / notebook).is_file(), (
        f"the page's notebook {notebook} is not in the repository"
    )
    urls = [link["url"] for link in reports[name].survey["links"]]
    colab_host = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    binder_host = CONFIG["launch_buttons"]["binderhub_url"].rstrip("/")
    colab = [url for url in urls if url.startswith(colab_host + "/")]
    binder = [url for url in urls if url.startswith(binder_host + "/")]
    assert colab == [f"{colab_host}/github/{repo}/blob/{branch}/{notebook}"], colab
    assert len(binder) == 1, f"{name}.html has {len(binder)} Binder buttons"
    parts = urlsplit(binder[0])
    assert parts.path == f"/v2/gh/{repo}/{branch}", binder[0]
    assert re.fullmatch(
        rf"urlpath=(lab/tree|tree)/{re.escape(notebook)}", unquote(parts.query)
    ), binder[0]


STUDENT_MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")


@pytest.mark.parametrize("name", SECTIONS)
def test_download_button_serves_the_student_notebook(reports, site, name):
    downloads = [
        link["url"] for link in reports[name].survey["links"] if link["download"]
    ]
    notebooks = [url for url in downloads if url.endswith(".ipynb")]
    edition = CHINESE if name.startswith(CHINESE) else ""
    page = name.removeprefix(edition)
    assert notebooks == [f"{site}{edition}_sources/{page}.ipynb"], downloads
    with urlopen(notebooks[0]) as response:
        served = json.loads(response.read().decode("utf-8"))
    student = json.loads((REPO / f"{name}.ipynb").read_text(encoding="utf-8"))
    served_sources = ["".join(cell["source"]) for cell in served["cells"]]
    assert served_sources == ["".join(cell["source"]) for cell in student["cells"]], (
        f"the download of {name}.html is not the student notebook {name}.ipynb"
    )
    leaked = [
        marker for marker in STUDENT_MARKERS if any(marker in s for s in served_sources)
    ]
    assert not leaked, f"the download of {name}.html contains {leaked}"


@pytest.mark.parametrize(
    "term, expected",
    [
        ("attention", "chapters/attention/scaled_dot_product_attention.html"),
        ("LSTM", "chapters/sequence_models/gated_units.html"),
        # The Chinese edition's index is built with jieba's word segmentation.
        ("注意力", CHINESE + "chapters/attention/scaled_dot_product_attention.html"),
        ("门控", CHINESE + "chapters/sequence_models/gated_units.html"),
    ],
)
def test_search_finds(site, browser, term, expected):
    edition = CHINESE if expected.startswith(CHINESE) else ""
    report = PageReport(url=f"{site}{edition}search.html?q={term}")
    page = _open(browser, report.url, report)
    try:
        page.wait_for_function(
            "() => { const h = document.querySelector('#search-results h2');"
            " return h && ['Search Results', '搜索结果'].includes(h.textContent); }",
            timeout=30_000,
        )
        hits = page.eval_on_selector_all(
            "#search-results ul.search li a", "links => links.map(a => a.href)"
        )
    finally:
        page.close()
    assert not report.console_errors + report.failed_requests, report
    pages = {urlsplit(url)._replace(query="", fragment="").geturl() for url in hits}
    assert site + expected in pages, f"searching {term!r} found {sorted(pages)}"
    for url in pages:
        assert _html_file(url, site).is_file(), f"search result {url} does not exist"


@pytest.mark.parametrize("name", PAGES)
def test_page_links_to_itself_in_the_other_language(reports, site, name):
    other = name.removeprefix(CHINESE) if name.startswith(CHINESE) else CHINESE + name
    switches = [link["url"] for link in reports[name].survey["links"] if link["switch"]]
    assert switches == [site + other + ".html"], (
        f"{name}.html should link once to {other}.html: {switches}"
    )


# Each distinct CJK character of the page's prose, drawn on a canvas in the page's own
# font, compared pixel for pixel with a character no font has (U+E000, private use):
# a character drawn like it is an empty box (tofu). Fonts are awaited first.
TOFU_JS = r"""
async () => {
  await document.fonts.ready;
  const root = document.querySelector("main") || document.body;
  const sidebar = document.querySelector(".bd-sidebar-primary") || document.body;
  const text = root.innerText + sidebar.innerText + document.title;
  const chars = [...new Set(text.match(/[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]/g)
                 || [])];
  const family = getComputedStyle(root).fontFamily;
  // A face that fails to load (the control test blocks it) must not stop the count.
  await Promise.all(chars.map((c) => document.fonts.load(`32px ${family}`, c)
    .catch(() => null)));
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 40;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  const draw = (c) => {
    ctx.clearRect(0, 0, 40, 40);
    ctx.font = `32px ${family}`;
    ctx.fillText(c, 2, 32);
    return ctx.getImageData(0, 0, 40, 40).data.join(",");
  };
  const box = draw("\ue000");
  return {count: chars.length, tofu: chars.filter((c) => draw(c) === box)};
}
"""
# Pages whose prose is Chinese: the Chinese edition's, and the English glossary.
CJK_PAGES = [
    CHINESE + "intro",
    CHINESE + "chapters/attention/soft_lookup",
    CHINESE + "back/glossary",
    "back/glossary",
]


def _tofu(browser, url: str, block_font: bool = False) -> dict:
    report = PageReport(url=url)
    page = _open(browser, url, report)
    try:
        if block_font:
            page.route("**/*.woff2", lambda route_: route_.abort())
            page.reload(wait_until="load")
        return page.evaluate(TOFU_JS)
    finally:
        page.close()


@pytest.mark.parametrize("name", CJK_PAGES)
def test_chinese_text_has_no_missing_glyphs(site, browser, name):
    found = _tofu(browser, site + name + ".html")
    assert found["count"] > 10, found
    assert not found["tofu"], (
        f"{name}.html draws {len(found['tofu'])} of its {found['count']} Chinese "
        f"characters as empty boxes: {''.join(found['tofu'][:40])}"
    )


def test_the_tofu_detector_sees_boxes_without_the_served_font(site, browser):
    import subprocess

    fonts = subprocess.run(
        ["fc-list", ":lang=zh"], capture_output=True, text=True, check=False
    ).stdout
    if fonts.strip():
        pytest.skip("this machine has a CJK font of its own: no boxes to see")
    found = _tofu(browser, site + CHINESE + "intro.html", block_font=True)
    assert len(found["tofu"]) == found["count"] > 10, found


def test_screenshots(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport, filename in SCREENSHOT_PAGES:
        assert name in PAGES, f"screenshot of {name}, which is not in _toc.yml"
        report = PageReport(url=site + name + ".html")
        page = _open(browser, report.url, report)
        page.set_viewport_size(viewport)
        page.evaluate(
            "async () => window.MathJax && MathJax.startup && MathJax.startup.promise"
        )
        figure = page.query_selector("main img[src*='_images/']")
        if figure is not None and viewport is DESKTOP:
            figure.evaluate("el => el.scrollIntoView({block: 'center'})")
        path = SCREENSHOTS / filename
        page.screenshot(path=str(path))
        page.close()
        assert path.stat().st_size > 10_000, f"{path} looks empty"


# A page with one of each defect: the detectors above must see every one of them.
DEFECTS = """<!DOCTYPE html><html><head>\
<meta name="viewport" content="width=device-width">
</head><body><main>
<p>The score is $q^\\top k$ and \\(x\\) stayed raw; code keeps <code>$HOME</code>.</p>
<span class="math">\\(y\\)</span>
<img src="../_images/abc.png" alt="../_images/abc.png"><img src="b.png">
<img src="c.png" alt="A heat map of attention weights.">
<a href="intro.html#no-such-anchor">x</a><a href="no-such-page.html">y</a>
<a href="intro.html">z</a><a href="https://example.org/">w</a>
<div style="width: 600px">too wide</div>
<div style="overflow-x: auto">\
<div style="width: 900px">scrolls in its own box</div></div>
</main></body></html>"""


def test_the_detectors_find_planted_defects(browser, site):
    page = browser.new_page()
    try:
        page.set_viewport_size(PHONE)
        page.set_content(DEFECTS)
        survey = page.evaluate(SURVEY_JS)
        overflow = page.evaluate(OVERFLOW_JS)
    finally:
        page.close()
    # The sentence and the formula MathJax did not typeset; not the code.
    assert len(survey["rawTex"]) == 2 and "q^" in survey["rawTex"][0], survey["rawTex"]
    assert not any("HOME" in text for text in survey["rawTex"]), survey["rawTex"]
    assert survey["untypeset"] == ["\\(y\\)"], survey["untypeset"]
    assert [
        entry.split(" has")[0] for entry in images_without_alt(survey["images"])
    ] == ["../_images/abc.png", "b.png"]
    links = [
        {"raw": href, "url": site + href}
        for href in ("intro.html#no-such-anchor", "no-such-page.html", "intro.html")
    ]
    links.append({"raw": "https://example.org/", "url": "https://example.org/"})
    assert [entry.split(":")[0] for entry in broken_links(links, site)] == [
        "intro.html#no-such-anchor",
        "no-such-page.html",
    ]
    assert overflow["scrollWidth"] > PHONE["width"] + 1
    assert overflow["culprits"] == ["div (right edge 608 px)"], overflow["culprits"]
