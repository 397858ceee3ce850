"""The Sangoma CRM REST dialect, `/admin/api/sangomacrm/rest` (FreePBX's sangomacrm module).

Authentication is the module's only one: a `Token:` header carrying an API key of this PBX
allowed for the `sangoma` dialect (`crm-bridge apikey create`); no `Authorization` header,
no login. A missing or wrong token is a 401. Errors are `{"status": false, "message": ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ...backoff import Backoff
from ...observability.logs import get_logger
from ...store.errors import DB_ERRORS
from ..auth import header, key_middleware
from ..errors import error_middleware
from ..services import Services
from . import calls, users, webhooks

log = get_logger("bridge.api")


def sangoma_error(status: int, message: str) -> dict[str, Any]:
    return {"status": False, "message": message}


async def _follow_setting(services: Services) -> None:
    """Bring the subscriptions in line with `[api] sangoma_webhooks`, waiting out a
    database that is not there yet."""
    backoff = Backoff(first=0.5, cap=30.0)
    while True:
        try:
            await webhooks.follow_setting(services.pool, services)
            return
        except DB_ERRORS as exc:
            log.info("sangoma_webhooks_setting_waits_for_database", error=repr(exc))
            await backoff.sleep()


def create_sangoma_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[
            error_middleware(sangoma_error),
            key_middleware(
                services.keys,
                "sangoma",
                header("Token"),
                sangoma_error,
                missing=(401, "A Token header is needed"),
                refused=(401, "Invalid Token"),
            ),
        ]
    )
    calls.add_routes(app)
    users.add_routes(app)
    webhooks.add_routes(app)

    async def follow_setting(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_follow_setting(services), name="sangoma-webhooks-setting")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    app.cleanup_ctx.append(follow_setting)
    return app
