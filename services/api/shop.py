"""The API's two pages, plain static files: the storefront mockup under ``/shop`` (``/`` sends a visitor there)
and the operator's console under ``/console``; what both load (the DOM helper ``el``) under ``/common``.

Each page is plain HTML/CSS/JS that calls the API from the browser, like any other client; it gets no data
from the server side (the console's data routes need the operator token, its files hold none). Every URL they
use is relative, and so is the redirect below, so both work when the API sits under a prefix.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STOREFRONT_DIR = Path(__file__).with_name("storefront")
CONSOLE_DIR = Path(__file__).with_name("console")
COMMON_DIR = Path(__file__).with_name("common")  # what both pages load: the DOM helper


def install_storefront(app: FastAPI) -> None:
    # html=True serves index.html for /shop/; check_dir fails at start-up, not at the first visit.
    app.mount("/shop", StaticFiles(directory=STOREFRONT_DIR, html=True), name="shop")
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    app.mount("/common", StaticFiles(directory=COMMON_DIR), name="common")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        # Relative on purpose: behind a proxy serving the API at /prefix/ it resolves to /prefix/shop/.
        return RedirectResponse("shop/")
