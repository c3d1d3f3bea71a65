from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from services.api.deps import IndexDep
from services.api.errors import NotFound
from services.api.index import ProductNotFound
from services.api.models import ErrorBody, TopReviews

router = APIRouter(tags=["reviews"])


@router.get(
    "/reviews/{product_id}/top",
    response_class=Response,
    responses={200: {"model": TopReviews, "description": "most relevant first"},
               404: {"model": ErrorBody}, 503: {"model": ErrorBody}},  # fmt: skip
)
async def top_reviews(
    index: IndexDep,
    product_id: Annotated[str, Path(min_length=1, max_length=64)],
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
    category: Annotated[str | None, Query(max_length=64)] = None,
    min_rating: Annotated[int | None, Query(ge=1, le=5)] = None,
    verified_only: bool = False,
) -> Response:
    """The most relevant reviews of a product in the newest curated version, by relevance descending."""
    try:
        body = index.top(product_id, limit, category, min_rating, verified_only)
    except ProductNotFound:
        raise NotFound(f"no product {product_id!r} in curated version {index.version.version}") from None
    return Response(body, media_type="application/json")
