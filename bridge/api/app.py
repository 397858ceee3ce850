"""The HTTP application: health and metrics, recording links, and the pull-API dialects.

`create_app` is the factory: one root application with repeated slashes in paths read as
one, request ids, an access log line per API request and JSON errors for unknown paths, and
one sub-application per dialect
(`/api/v1`, `/crmapi/v1`, ...), each with its own authentication and error shape over the
same query layer.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from ..observability.logs import get_logger
from .auth import KEY_NAME
from .billing import create_billing_app
from .errors import Handler, error_middleware, message_shape
from .health import ReadyCheck, add_health_routes
from .issabel import create_issabel_app
from .native import create_native_app
from .recordings import add_recording_routes
from .sangoma import create_sangoma_app
from .services import SERVICES, Services
from .vpbx import create_vpbx_app

log = get_logger("bridge.api")
REQUEST_ID = web.RequestKey("request_id", str)

MAX_BODY = 1 << 20  # bytes of a request body; more answers 413
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SLASHES = re.compile(r"//+")
QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # polled often: not logged

# prefix -> factory of each dialect's sub-application
Dialect = Callable[[Services], web.Application]
DIALECTS: dict[str, Dialect] = {
    "/api/v1": create_native_app,
    "/crmapi/v1": create_vpbx_app,
    "/admin/api/sangomacrm/rest": create_sangoma_app,
    "/pbxapi": create_issabel_app,
    "/api": create_billing_app,  # after /api/v1: the longer prefix is tried first
}


@web.middleware
async def merged_slashes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`//admin/api/x//y` is `/admin/api/x/y`, as Apache (FreePBX, Issabel) reads it: the
    Sangoma module's own examples use a base URL ending in `/`.

    Served in place, never redirected: many clients (PHP curl by default) do not follow
    redirects, and aiohttp's `normalize_path_middleware` only redirects. aiohttp picks the
    route before any middleware runs, so a path with repeated slashes is routed again,
    merged (query string kept), through `Application._handle`: the one private name used,
    as it is what aiohttp's server calls for every request and no public one routes a
    request. Outermost, so every other middleware (request ids, the dialect's auth and
    error shape) runs once, on the merged path only.
    """
    path = request.rel_url.raw_path
    if "//" not in path:
        return await handler(request)
    merged = request.rel_url.with_path(_SLASHES.sub("/", path), encoded=True, keep_query=True)
    return await request.app._handle(request.clone(rel_url=merged))


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id (the client's `X-Request-Id` if sane, else a new one) on the response
    and on every log line written while the request is handled; one access line."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=rid):
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-Id"] = rid
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-Id"] = rid
            raise
        finally:
            if request.path not in QUIET:
                log.info(
                    "api_request",
                    request_id=rid,
                    method=request.method,
                    path=request.path,
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                    key=request.get(KEY_NAME),
                    remote=request.remote,
                )


def create_app(
    services: Services,
    *,
    ready: ReadyCheck,
    registry: CollectorRegistry,
    info: Callable[[], dict[str, object]] | None = None,
    soft: frozenset[str] = frozenset(),
) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[merged_slashes, request_ids, error_middleware(message_shape)],
    )
    app[SERVICES] = services
    add_health_routes(app, ready, registry, info=info, soft=soft)
    api = services.settings.api
    if api.link_secret:
        add_recording_routes(app, services.store, api.link_secret, api.recordings_dir)
    for prefix, factory in DIALECTS.items():
        app.add_subapp(prefix, factory(services))
    return app
