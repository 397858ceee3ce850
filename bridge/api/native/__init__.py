"""The native API, `/api/v1` (SPEC section 6): calls (list, one, CSV, recording), the
directory, webhook subscriptions and dead letters, click-to-call, the cloud-PBX style
requests, and its own OpenAPI document and page (the only routes needing no key)."""

from __future__ import annotations

from functools import cache

from aiohttp import web

from ..auth import bearer_or, key_middleware
from ..errors import error_middleware, message_shape
from ..services import Services
from . import calls, cloud, dead_letters, dial, docs, openapi, people, subscriptions

PUBLIC = frozenset({"openapi", "docs"})  # route names


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


@cache
def _page() -> str:
    return docs.render(openapi.document())


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html")


def is_public(request: web.Request) -> bool:
    return request.match_info.route.name in PUBLIC


def create_native_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[
            error_middleware(message_shape),
            key_middleware(
                services.keys,
                "native",
                bearer_or("X-API-Key"),
                message_shape,
                missing=(401, "An API key is needed (Authorization: Bearer <key>)"),
                refused=(401, "Invalid API key"),
                public=is_public,
            ),
        ]
    )
    calls.add_routes(app)
    people.add_routes(app)
    subscriptions.add_routes(app)
    dead_letters.add_routes(app)
    dial.add_routes(app)
    cloud.add_routes(app)
    app.router.add_get("/openapi.json", openapi_json, name="openapi")
    app.router.add_get("/docs", docs_page, name="docs")
    return app
