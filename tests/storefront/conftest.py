"""The storefront in headless Chromium, against real API servers on the session's real servers.

Chromium is Debian's (``make test`` installs it); Playwright only drives it and never downloads
a browser. Without Chromium these tests fail, saying so: a storefront nobody looked at is not tested.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from ops.stack.process import free_port
from ops.stack.s3_server import grant_lake
from services.api.app import create_app
from shared.settings import Settings
from tests.api.conftest import Publisher, ServerThread, wait_until_served
from tests.storefront.catalogue import catalogue_batches

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that phones home: the machine reaches no network but loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "storefront"
CATALOGUE_VERSION = "20260501T000000Z-777777"
PREFIX = "/reviews-api"

expect.set_options(timeout=10_000)  # the default 5 s is tight on two cores shared with the servers


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the storefront tests drive Debian's Chromium. "
            "`make test` installs it (apt-get install chromium chromium-driver).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Console:
    """What the page reported: console errors, and uncaught exceptions prefixed "pageerror"."""

    errors: list[str] = field(default_factory=list)

    def failed_loads_only(self) -> bool:
        # Chromium logs every non-2xx answer a fetch gets; expected when a test asks for a 404 or a dead API.
        return all(e.startswith("Failed to load resource") for e in self.errors)


@pytest.fixture
def console() -> Console:
    return Console()


Screenshot = Callable[[str], Path]


@pytest.fixture
def page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page per test; its screenshot is saved when the test ends, passed or failed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.on("console", lambda message: console.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console.errors.append(f"pageerror: {error}"))
    try:
        yield page
    finally:
        save_screenshot(page, request.node.name)
        context.close()


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest) -> Screenshot:
    """For a test whose last state is not the only one worth seeing: ``screenshot("api-down")``."""
    return lambda label: save_screenshot(page, f"{request.node.name}-{label}")


def save_screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


@pytest.fixture(scope="session")
def shop_settings(servers: Settings) -> Settings:
    """An API of the storefront tests' own: its own bucket, so other tests' versions never show up."""
    settings = servers.model_copy(
        update={
            "s3_bucket": "storefront-test-lake",
            "redis_db": 3,
            "api_port": free_port(),
            "api_reload_check_s": 1.0,
        }
    )
    grant_lake(settings)  # the publisher writes it, the API reads its serving files and pointer
    return settings


@pytest.fixture(scope="session")
def shop_api(shop_settings: Settings) -> Iterator[ServerThread]:
    """The API serving the catalogue (published once, through the real publish code)."""
    with ServerThread(shop_settings) as server:
        Publisher(shop_settings).publish(CATALOGUE_VERSION, catalogue_batches())
        with httpx.Client(base_url=server.url, timeout=10) as client:
            wait_until_served(client, CATALOGUE_VERSION)
        yield server


class AppServer(ServerThread):
    """A ServerThread for any ASGI app, not only ``create_app``'s."""

    def __init__(self, app: ASGIApp, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"


def mounted_under(prefix: str, settings: Settings) -> Starlette:
    """The API as a reverse proxy serving it at ``prefix`` presents it: the app sees the prefix as its
    root_path, as with ``uvicorn --root-path``, and nothing outside the prefix reaches it."""
    api = create_app(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with api.router.lifespan_context(api):  # a mounted app's own lifespan is not run by Starlette
            yield

    return Starlette(routes=[Mount(prefix, app=api)], lifespan=lifespan)


@pytest.fixture(scope="session")
def prefixed_api(shop_api: ServerThread, shop_settings: Settings) -> Iterator[AppServer]:
    """The same API and catalogue, served under ``PREFIX`` only."""
    with AppServer(mounted_under(PREFIX, shop_settings), free_port()) as server:
        with httpx.Client(base_url=f"{server.url}{PREFIX}", timeout=10) as client:
            wait_until_served(client, CATALOGUE_VERSION)
        yield server
