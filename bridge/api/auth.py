"""API-key authentication, per dialect: where the key is read, what a refusal looks like.

The key never reaches a log line: only its name does, once verified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..store.apikeys import ApiKey, KeyRing
from .errors import Handler, Shape, json_error

API_KEY = web.RequestKey("api_key", ApiKey)
KEY_NAME = web.RequestKey("key_name", str)
KeySource = Callable[[web.Request], str | None]


def header(name: str) -> KeySource:
    return lambda request: request.headers.get(name)


def bearer_or(name: str) -> KeySource:
    """`Authorization: Bearer <key>`, else the header `name`."""

    def read(request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return request.headers.get(name)

    return read


def key_middleware(
    keys: KeyRing,
    dialect: str,
    source: KeySource,
    shape: Shape,
    *,
    missing: tuple[int, str] = (401, "Invalid token"),
    refused: tuple[int, str] = (401, "Invalid token"),
    public: Callable[[web.Request], bool] = lambda request: False,
) -> Any:
    """Lets a request through when it carries a live key of this PBX that is allowed for
    this dialect from the client's address; else answers `missing` / `refused`."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if public(request):
            return await handler(request)
        presented = source(request)
        if not presented:
            return json_error(shape, *missing)
        key = await keys.verify(presented)
        if key is None or not key.allows(request.remote, dialect):
            return json_error(shape, *refused)
        request[API_KEY] = key
        request[KEY_NAME] = key.name  # for the access log
        return await handler(request)

    return authenticate
