"""The VPBX "REST API for CRM" dialect, `/crmapi/v1` (header `X-API-KEY`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..auth import header, key_middleware
from ..errors import error_middleware
from ..services import Services


def vpbx_error(status: int, message: str) -> dict[str, Any]:
    return {"message": message}


def create_vpbx_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[
            error_middleware(vpbx_error),
            key_middleware(services.keys, "vpbx", header("X-API-KEY"), vpbx_error),
        ]
    )
    return app
