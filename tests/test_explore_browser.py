"""The explorer pages in a real headless browser (Chromium driven by Playwright).

Each page (``linsolve.explore.write_html``, coarse smoke grid) must load from ``file://`` with no
console error and no page error, draw its plot, and redraw a different plot when a slider moves
(the screenshots of the plot differ). Skipped without Playwright or a Chromium executable
(``LINSOLVE_CHROMIUM`` overrides the search for ``chromium`` / ``chromium-browser``).
"""

import os
import shutil

import pytest

from linsolve import explore

NAMES = tuple(explore.EXPLORERS)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _chromium() -> str | None:
    return (os.environ.get("LINSOLVE_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    pytest.importorskip("plotly", reason="plotly is not installed (pip install 'linsolve[explore]')")
    folder = tmp_path_factory.mktemp("explore")
    return {name: explore.write_html(name, folder / f"{name}.html", smoke=True) for name in NAMES}


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install 'linsolve[dev]')"
    )
    executable = _chromium()
    if executable is None or not os.path.exists(executable):
        pytest.skip("no Chromium executable (install chromium, or set LINSOLVE_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.mark.parametrize("name", NAMES)
def test_page_loads_without_errors_and_a_slider_redraws(pages, browser, name):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"file://{os.path.abspath(pages[name])}")
    page.wait_for_selector("#plot .main-svg", timeout=10_000)
    plot = page.locator("#plot")
    before = plot.screenshot()
    slider = page.locator("#slider-0")
    value = slider.input_value()
    maximum = slider.get_attribute("max")
    new = "0" if value == maximum else maximum
    label = page.locator("#value-0").text_content()
    slider.evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", new
    )
    page.wait_for_timeout(300)
    after = plot.screenshot()
    assert page.locator("#value-0").text_content() != label, "the slider's value label did not change"
    page.close()
    assert errors == [], errors
    assert before != after, f"{name}: moving slider 0 from {value} to {new} left the plot unchanged"
    remote = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert remote == [], f"the page made network requests: {remote}"
