from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.api.deps import IndexDep
from services.api.models import ErrorBody, ProductPage

router = APIRouter(tags=["products"])


@router.get("/products", response_model=ProductPage, responses={503: {"model": ErrorBody}})
async def products(
    index: IndexDep,
    query: Annotated[
        str | None,
        Query(max_length=100, description="words that start words of the product's id or title, in any order"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> ProductPage:
    """Products with their review counts and average rating, in product-id order, for the storefront."""
    page, next_cursor = index.search(query, limit, cursor)
    return ProductPage(products=page, next_cursor=next_cursor)
