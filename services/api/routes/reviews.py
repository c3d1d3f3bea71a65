"""GET /reviews/{product_id}/top: the storefront's route, the API's busiest.

It reads its own parameters (services/api/params.py): FastAPI's parameter machinery would cost it a fifth
of its time on every request, the storefront's page included, which has no query string at all.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.api.deps import served_index
from services.api.errors import NotFound
from services.api.models import ErrorBody, TopQuery, TopReviews, ValidationErrors
from services.api.params import documented, product_id, valid
from services.api.serving.index import ProductNotFound

router = APIRouter(tags=["reviews"])

_DEFAULT = TopQuery()


@router.get(
    "/reviews/{product_id}/top",
    response_class=Response,
    responses={
        200: {"model": TopReviews, "description": "most relevant first"},
        404: {"model": ErrorBody},
        422: {"model": ValidationErrors, "description": "Validation Error"},
        503: {"model": ErrorBody},
    },
    openapi_extra={"parameters": documented(TopQuery)},
)
async def top_reviews(request: Request) -> Response:
    """The most relevant reviews of a product in the newest curated version, by relevance descending; with
    ?topic=, those that discuss it, each with the sentences that matched."""
    wanted = product_id(request)
    query = _DEFAULT
    if request.scope["query_string"]:
        query = valid(TopQuery.model_validate, dict(request.query_params), "query")
    # The busiest route reads the index itself: FastAPI solves every dependency anew on each request.
    index = served_index(request)
    try:
        body = index.top(wanted, query.limit, query.category, query.min_rating, query.verified_only, query.topic)
    except ProductNotFound:
        raise NotFound(f"no product {wanted!r} in curated version {index.version.version}") from None
    return Response(body, media_type="application/json")
