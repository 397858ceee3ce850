"""The Issabel pbxapi dialect, `/pbxapi`: JWT logins, extensions and ring groups that
Asterisk obeys (Issabel's README and its models/rest.php say how it answers).

- `POST authenticate`, `GET authenticate/renewtoken` (`session`): HS256 JWTs signed with the
  PBX's own secret (`tokens`), for logins made with `crm-bridge login add` that may use
  the issabel dialect;
- `extensions`, `extensions/{id}` and `ringgroups`, `ringgroups/{id}` (`extensions`,
  `ringgroups`): GET all or one (`?fields=*`: every field), POST (201 + Location, the next
  free number when none is given), PUT (creates or updates), DELETE (`1005,1006`);
  written through bridge.api.writes: the view at once, Asterisk's config applied
  (`reload: false`: stored only) or the write undone with the reason.

Answers: `{"status": "success", "results": [...]}` with string values; a write's answer
also says `apply` (applied, unchanged, stored, disabled) and `message` ("stored, not
applied: ..." while Asterisk is away). Errors: `{"status": "fail", "errors": [{"status":
"404", "detail": "Record not found"}]}` with that HTTP status: 400 (unreadable body, a value
the provisioning rules refuse: the detail says which and why), 403 (no or a bad token, bad
credentials), 404, 405, 409 (extension in use, a phone of Asterisk's own config), 413, 422
(a value not in Issabel's list, a required field missing), 502 (Asterisk refused the
change: it is undone), 503 (provisioning not available). An expired access token is
answered 200 `{"status": "expired"}`, as Issabel does.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from ..errors import Handler, error_middleware
from ..services import Services
from ..writes import WriteFailed
from . import extensions, ringgroups, session
from .errors import IssabelError, error_body, issabel_shape
from .extensions import IN_USE
from .tokens import Tokens


@web.middleware
async def issabel_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except IssabelError as exc:
        return web.json_response(error_body(exc.status, exc.detail, exc.source), status=exc.status)
    except WriteFailed as exc:
        return web.json_response(error_body(exc.status, exc.message), status=exc.status)
    except asyncpg.UniqueViolationError:  # two writers took the same number at once
        return web.json_response(error_body(409, IN_USE), status=409)


def create_issabel_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware(issabel_shape), issabel_errors, session.bearer_auth]
    )
    app[session.TOKENS] = Tokens(services.pool, services.pbx_id)
    session.add_routes(app)
    extensions.add_routes(app)
    ringgroups.add_routes(app)
    return app
