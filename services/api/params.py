"""Parameters read by the serving routes themselves (GET /reviews/{id}/top, GET /products/{id}/summary).

They use the same pydantic types FastAPI would, give the same 422 answer, and are documented from those
types: FastAPI's parameter machinery costs the busiest routes a fifth of their time on every request,
most of which have no query string at all (measured: the API section of BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

PRODUCT_ID = TypeAdapter(Annotated[str, Field(min_length=1, max_length=64, title="Product Id")])


def documented(query: type[BaseModel] | None = None) -> list[dict[str, Any]]:
    """The route's parameters (``product_id`` in its path, the query model's fields) as FastAPI documents a
    ``Path()`` and a ``Query()`` model."""
    schema = query.model_json_schema() if query else {"properties": {}}
    return [
        {"name": "product_id", "in": "path", "required": True, "schema": PRODUCT_ID.json_schema()},
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


def valid(validate: Callable[[Any], Any], value: Any, *loc: str) -> Any:
    try:
        return validate(value)
    except ValidationError as exc:  # FastAPI's answer: 422, each error located in the request
        raise RequestValidationError(
            [{**error, "loc": (*loc, *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


def product_id(request: Request) -> str:
    return valid(PRODUCT_ID.validate_python, request.path_params["product_id"], "path", "product_id")
