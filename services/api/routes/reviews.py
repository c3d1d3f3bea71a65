"""GET /reviews/{product_id}/top: the storefront's route, the API's busiest.

It reads its own parameters, with the same pydantic types FastAPI would use and the same 422 answer,
and documents them from those types: FastAPI's parameter machinery costs this route a fifth of its time
on every request, the storefront's page included, which has no query string at all (measured: the
API section of BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from services.api.deps import served_index
from services.api.errors import NotFound
from services.api.models import ErrorBody, TopQuery, TopReviews, ValidationErrors
from services.api.serving.index import ProductNotFound

router = APIRouter(tags=["reviews"])

PRODUCT_ID = TypeAdapter(Annotated[str, Field(min_length=1, max_length=64, title="Product Id")])
_DEFAULT = TopQuery()


def _parameters(product_id: TypeAdapter, query: type[BaseModel]) -> list[dict[str, Any]]:
    """The route's parameters as FastAPI documents a ``Path()`` and a ``Query()`` model."""
    schema = query.model_json_schema()
    return [
        {"name": "product_id", "in": "path", "required": True, "schema": product_id.json_schema()},
        *(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
                "schema": field,
                **({"description": field["description"]} if "description" in field else {}),
            }
            for name, field in schema["properties"].items()
        ),
    ]


def _valid(validate: Callable[[Any], Any], value: Any, *loc: str) -> Any:
    try:
        return validate(value)
    except ValidationError as exc:  # FastAPI's answer: 422, each error located in the request
        raise RequestValidationError(
            [{**error, "loc": (*loc, *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


@router.get(
    "/reviews/{product_id}/top",
    response_class=Response,
    responses={
        200: {"model": TopReviews, "description": "most relevant first"},
        404: {"model": ErrorBody},
        422: {"model": ValidationErrors, "description": "Validation Error"},
        503: {"model": ErrorBody},
    },
    openapi_extra={"parameters": _parameters(PRODUCT_ID, TopQuery)},
)
async def top_reviews(request: Request) -> Response:
    """The most relevant reviews of a product in the newest curated version, by relevance descending."""
    product_id = _valid(PRODUCT_ID.validate_python, request.path_params["product_id"], "path", "product_id")
    query = _DEFAULT
    if request.scope["query_string"]:
        query = _valid(TopQuery.model_validate, dict(request.query_params), "query")
    # The busiest route reads the index itself: FastAPI solves every dependency anew on each request.
    index = served_index(request)
    try:
        body = index.top(product_id, query.limit, query.category, query.min_rating, query.verified_only)
    except ProductNotFound:
        raise NotFound(f"no product {product_id!r} in curated version {index.version.version}") from None
    return Response(body, media_type="application/json")
