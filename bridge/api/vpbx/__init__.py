"""The VPBX "REST API for CRM" dialect, `/crmapi/v1` (header `X-API-KEY`).

Endpoints: `history/json`, `history/csv`, `history/inner/json`, `history/inner/csv`
(`history`), `makecall` (`makecall`), `users`, `users/{login}`, `users/{login}/groups`,
`groups`, `groups/{id}`, `groups/{id}/users`, `telnums`, `telnums/{telnum}`
(`directory`), `webhook`, `webhook/{id}` (`webhooks`). Each module says how it reads
the documentation where the documentation leaves a choice.

Errors are `{"message": ...}` with 400 (a parameter or body is wrong; the message names
it), 401 `Invalid token`, 403 (a key limited to other APIs, see `auth`), 404, 405,
413 (a body too big) and 503 (click-to-call not available).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import error_middleware
from ..services import Services
from . import directory, history, makecall, webhooks
from .auth import vpbx_key_middleware


def vpbx_error(status: int, message: str) -> dict[str, Any]:
    return {"message": message}


def create_vpbx_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[
            error_middleware(vpbx_error),
            vpbx_key_middleware(services.keys, vpbx_error),
        ]
    )
    history.add_routes(app)
    makecall.add_routes(app)
    directory.add_routes(app)
    webhooks.add_routes(app)
    return app
