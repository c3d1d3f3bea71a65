"""The storefront mockup: static files under ``/shop``, and ``/`` sending a visitor there.

The page is plain HTML/CSS/JS that calls the public API from the browser, like any
other client; it gets no data from the server side. Every URL it uses is relative, and
so is the redirect below, so the whole thing works when the API sits under a prefix.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STOREFRONT_DIR = Path(__file__).with_name("storefront")


def install_storefront(app: FastAPI) -> None:
    # html=True serves index.html for /shop/; check_dir fails at start-up, not at the first visit.
    app.mount("/shop", StaticFiles(directory=STOREFRONT_DIR, html=True), name="shop")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        # Relative on purpose: behind a proxy serving the API at /prefix/ it resolves to /prefix/shop/.
        return RedirectResponse("shop/")
