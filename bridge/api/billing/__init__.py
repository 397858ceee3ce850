"""The billing dialect, `/api`: the FusionPBX billing API (Laravel Sanctum) over our calls.

`POST login` (email, password) gives a bearer token `<id>|<secret>`; `POST logout` deletes
it; `GET calls?domain_name=` and `GET call_range?from&to&domain_name` answer bare arrays of
`v_xml_cdr` objects (see `cdr.py`). `domain_name` is the `[pbx] id`: one database holding
several PBXs answers each one's calls only.
"""

from __future__ import annotations

from aiohttp import web

from ...store import logins
from ..auth import KEY_NAME
from ..errors import Handler, error_middleware, json_error
from ..services import Services, services_of
from . import calls, session
from .laravel import UNAUTHENTICATED, laravel_shape, validation_errors

SESSION = session.SESSION


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but login needs `Authorization: Bearer <token>` of a billing login; an
    unknown path or method is answered as such first (Laravel matches routes before it
    authenticates)."""
    match = request.match_info
    if match.http_exception is not None or match.handler in session.PUBLIC:
        return await handler(request)
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    s = services_of(request)
    found = await logins.verify_token(s.pool, s.pbx_id, token, "billing") if token else None
    if found is None:
        return json_error(laravel_shape, 401, UNAUTHENTICATED)
    request[SESSION] = found
    request[KEY_NAME] = f"login:{found.login.name}"  # for the access log
    return await handler(request)


def create_billing_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware(laravel_shape), validation_errors, bearer_auth]
    )
    session.add_routes(app)
    calls.add_routes(app)
    return app
