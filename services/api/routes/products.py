from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from services.api.deps import IndexDep, served_index
from services.api.errors import NotFound
from services.api.models import CustomersSay, ErrorBody, ProductPage, ValidationErrors
from services.api.params import documented, product_id
from services.api.serving.index import MAX_QUERY_WORDS, ProductNotFound, TooManyWords, query_words

router = APIRouter(tags=["products"])


@router.get("/products", response_model=ProductPage, responses={503: {"model": ErrorBody}})
async def products(
    index: IndexDep,
    query: Annotated[
        str | None,
        Query(
            max_length=100,
            description=f"words that start words of the product's id or title, in any order; at most "
            f"{MAX_QUERY_WORDS} once repeats and words another one starts with are dropped",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> ProductPage:
    """Products with their review counts and average rating, in product-id order, for the storefront."""
    try:
        if query_words(query):
            # Measured at 485,000 products: 0.5 ms for a title word, 5 to 11 ms for eight one-letter words (each
            # a pass over postings of most products): off the event loop, which every other request waits on.
            page, next_cursor = await anyio.to_thread.run_sync(index.search, query, limit, cursor)
        else:  # a page of the product list: 0.1 to 0.4 ms, less than the hop to a thread costs under load
            page, next_cursor = index.search(query, limit, cursor)
    except TooManyWords as exc:  # FastAPI's 422, as a too long query gets
        raise RequestValidationError(
            [{"type": "too_many_words", "loc": ("query", "query"), "msg": str(exc), "input": query}]
        ) from None
    return ProductPage(products=page, next_cursor=next_cursor)


@router.get(
    "/products/{product_id}/summary",
    response_class=Response,
    responses={
        200: {"model": CustomersSay, "description": "topics most discussed first"},
        404: {"model": ErrorBody, "description": "no such product in the served version"},
        422: {"model": ValidationErrors, "description": "Validation Error"},
        503: {"model": ErrorBody, "description": "nothing published yet"},
    },
    openapi_extra={"parameters": documented()},
)
async def product_summary(request: Request) -> Response:
    """What customers say of a product, topic by topic: how many reviews and sentences discuss each, the
    shares positive and negative, and a quote for each side. Read as published, like its top reviews."""
    wanted = product_id(request)  # read as GET /reviews/{id}/top reads it: no FastAPI parameter machinery
    index = served_index(request)
    try:
        body = index.summary(wanted)
    except ProductNotFound:
        raise NotFound(f"no product {wanted!r} in curated version {index.version.version}") from None
    return Response(body, media_type="application/json")
