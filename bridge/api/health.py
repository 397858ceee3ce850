"""`/healthz`, `/readyz` and `/metrics` (SPEC section 7), served by aiohttp."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]


def create_health_app(
    ready: ReadyCheck,
    registry: CollectorRegistry,
    info: Callable[[], dict[str, object]] | None = None,
    soft: frozenset[str] = frozenset(),
) -> web.Application:
    """An application with only the health routes (tests, tools)."""
    app = web.Application()
    add_health_routes(app, ready, registry, info, soft)
    return app


def add_health_routes(
    app: web.Application,
    ready: ReadyCheck,
    registry: CollectorRegistry,
    info: Callable[[], dict[str, object]] | None = None,
    soft: frozenset[str] = frozenset(),
) -> None:
    """`/readyz` is 200 "ready" when every check passes; 503 "degraded" when only `soft`
    checks fail (the bridge still does its job, e.g. tracking into its buffer while the
    database is away, or webhooks lagging); 503 "not ready" otherwise."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await ready()
        failing = {name for name, passed in checks.items() if not passed}
        ok = not failing
        status = "ready" if ok else "degraded" if failing <= soft else "not ready"
        body = {
            "status": status,
            "checks": checks,
            **(info() if info else {}),
        }
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
