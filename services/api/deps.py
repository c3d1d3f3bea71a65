"""Dependencies of the routes, as ``Annotated`` aliases; everything comes from ``app.state``.

They are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, two thread hops
per request for what is an attribute read.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.errors import Forbidden, NotReady, Unauthorized
from services.api.serving.holder import IndexHolder
from services.api.serving.index import ServingIndex
from shared.history import History
from shared.history.audit import Actor
from shared.settings import Settings


async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (a test's, say), not the environment's."""
    return request.app.state.settings


async def get_holder(request: Request) -> IndexHolder:
    return request.app.state.holder


def served_index(request: Request) -> ServingIndex:
    # Read the reference once: the whole request then uses one version, even across a swap.
    index = request.app.state.holder.index
    if index is None:
        raise NotReady("no curated data published yet: run the pipeline (reviews run) and retry")
    return index


async def get_index(request: Request) -> ServingIndex:
    return served_index(request)


async def get_history(request: Request) -> History:
    return request.app.state.history


_bearer = HTTPBearer(auto_error=False, description="the API token (API_TOKEN)")


async def require_token(
    settings: Annotated[Settings, Depends(app_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The operator the token stands for, as the audit trail names them (never the token)."""
    if credentials is None:
        raise Unauthorized("this is for operators: send the operator token as 'Authorization: Bearer <API_TOKEN>'")
    if not secrets.compare_digest(credentials.credentials.encode(), settings.api_token.get_secret_value().encode()):
        raise Forbidden("the bearer token is not the operator token (API_TOKEN)")
    return Actor(settings.api_token_name, "api")


SettingsDep = Annotated[Settings, Depends(app_settings)]
HolderDep = Annotated[IndexHolder, Depends(get_holder)]
IndexDep = Annotated[ServingIndex, Depends(get_index)]
HistoryDep = Annotated[History, Depends(get_history)]
TokenDep = Depends(require_token)
OperatorDep = Annotated[Actor, TokenDep]
