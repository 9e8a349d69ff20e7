"""Browser fixtures: headless Chromium driven by Playwright against the live server (``live``).

Chromium comes from PROMPTSTUDIO_TEST_CHROMIUM (a path), else Debian's ``chromium`` (or
``chromium-browser``, ``google-chrome``) on PATH, else a browser Playwright installed itself. With
none of them (or no ``playwright`` package) the browser tests are skipped, saying why; `.ci/run`
installs Debian's chromium when it can.

``offline_page(server)`` opens a page on which the only reachable origin is the test server: any
other request is refused and recorded (``page.blocked``), so a page that needs the internet shows
it, and a test can assert that nothing was asked of it.
"""
from __future__ import annotations

import os
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from app.http import assets

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: What the probe of this kind of machine found Chromium needs here: no sandbox as root, and no
#: background connections (there is no network beyond the package registries).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-features=Translate,MediaRouter,OptimizationHints"]


def chromium_path() -> tuple[str | None, str]:
    """(executable or None for Playwright's own, how it was found) — or (None, why there is none)."""
    given = os.environ.get("PROMPTSTUDIO_TEST_CHROMIUM")
    if given:
        return (given, "PROMPTSTUDIO_TEST_CHROMIUM") if Path(given).is_file() else (
            None, f"PROMPTSTUDIO_TEST_CHROMIUM={given} is not a file")
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found, name
    return None, ""


@pytest_asyncio.fixture(scope="session")
async def browser():
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package (pip install playwright; it is in the test extra)")
    executable, how = chromium_path()
    if executable is None and how:
        pytest.skip(how)
    async with async_playwright() as pw:
        if executable is None and not Path(pw.chromium.executable_path).is_file():
            pytest.skip("no Chromium: install Debian's chromium (apt-get install chromium; .ci/run does when it can) "
                        "or set PROMPTSTUDIO_TEST_CHROMIUM to a Chromium or Chrome binary")
        chromium = await pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def built_assets():
    """The built pages; a test of them fails (it is not skipped) when they were not built."""
    found = assets.load()
    assert found.built, (f"the browser pages are not built ({found.problem}); build them with "
                         "`python tools/web_build.py` (make install does)")
    return found


@pytest.fixture
def offline_page(browser, built_assets):
    @asynccontextmanager
    async def open_page(server, *, viewport=(1400, 900)):
        origin = urlsplit(server.url)
        context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                            service_workers="block")
        blocked: list[str] = []

        async def only_the_server(route):
            url = urlsplit(route.request.url)
            if (url.scheme, url.netloc) == (origin.scheme, origin.netloc) or url.scheme == "data":
                await route.continue_()
            else:
                blocked.append(route.request.url)
                await route.abort("internetdisconnected")

        await context.route("**/*", only_the_server)
        page = await context.new_page()
        page.blocked = blocked
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        try:
            yield page
        finally:
            await context.close()

    return open_page
