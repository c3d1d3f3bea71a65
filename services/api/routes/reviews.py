from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from services.api.deps import served_index
from services.api.errors import NotFound
from services.api.index import ProductNotFound
from services.api.models import ErrorBody, TopQuery, TopReviews

router = APIRouter(tags=["reviews"])


@router.get(
    "/reviews/{product_id}/top",
    response_class=Response,
    responses={200: {"model": TopReviews, "description": "most relevant first"},
               404: {"model": ErrorBody}, 503: {"model": ErrorBody}},  # fmt: skip
)
async def top_reviews(
    request: Request,
    product_id: Annotated[str, Path(min_length=1, max_length=64)],
    query: Annotated[TopQuery, Query()],
) -> Response:
    """The most relevant reviews of a product in the newest curated version, by relevance descending."""
    # The busiest route reads the index itself: FastAPI solves every dependency anew on each request.
    index = served_index(request)
    try:
        body = index.top(product_id, query.limit, query.category, query.min_rating, query.verified_only)
    except ProductNotFound:
        raise NotFound(f"no product {product_id!r} in curated version {index.version.version}") from None
    return Response(body, media_type="application/json")
