"""`POST authenticate`, `GET authenticate/renewtoken` and the bearer check of every other
route, as Issabel's jwtauth and authorize models answer them.

- authenticate: `user` (or `username`) and `password` as JSON, form or multipart, of a
  login made with `crm-bridge login add NAME --password-stdin` that may use the issabel
  dialect: 200 `{access_token, expires_in, refresh_token, token_type: "Bearer"}`; anything
  else (wrong or missing credentials, a login of the billing dialect only): 403;
- renewtoken `?refresh_token=...&access_token=...`: both tokens anew with `"status":
  "authorized"`; an expired refresh token: 200 `{"status": "expired", "type": "refresh"}`
  (Issabel's answer: the client logs in again); a bad one, an access token that is not
  ours or names another login: 403 `{"status": "unauthorized"}`;
- every other route wants `Authorization: Bearer <access token>`: missing or bad is 403,
  an expired access token is answered HTTP 200 `{"status": "expired"}` as Issabel does (its
  clients renew on that body); a login removed since loses its tokens.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...store import logins
from ...store.queries import QUERIES
from ..auth import KEY_NAME
from ..errors import Handler
from ..services import services_of
from .body import read_input
from .errors import error_body
from .tokens import Claims, Tokens

DIALECT = "issabel"
TOKENS = web.AppKey("issabel_tokens", Tokens)
LOGIN = web.RequestKey("issabel_login", logins.Login)
FORBIDDEN = "Forbidden: no valid access token"
BAD_CREDENTIALS = "Invalid user or password"


def forbidden(detail: str = FORBIDDEN) -> web.Response:
    return web.json_response(error_body(403, detail), status=403)


def unauthorized() -> web.Response:
    return web.json_response({"status": "unauthorized"}, status=403)


async def _login_of(request: web.Request, claims: Claims) -> logins.Login | None:
    """The login a token names, while it exists, is the same login and may use Issabel."""
    s = services_of(request)
    row = await s.pool.fetchrow(QUERIES["find_login"], s.pbx_id, claims.name)
    if row is None or row["id"] != claims.login_id:
        return None
    login = logins.Login.from_row(row)
    return login if login.allows(DIALECT) else None


async def authenticate(request: web.Request) -> web.Response:
    fields = await read_input(request)
    name = fields.get("user")
    if name is None:
        name = fields.get("username")
    password = fields.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        return forbidden(BAD_CREDENTIALS)
    if len(name) > 200 or len(password) > logins.MAX_PASSWORD:
        return forbidden(BAD_CREDENTIALS)
    s = services_of(request)
    found = await logins.authenticate(s.pool, s.pbx_id, name, password, DIALECT)
    if found is None:
        return forbidden(BAD_CREDENTIALS)
    request[KEY_NAME] = f"login:{found.name}"
    return web.json_response(await request.app[TOKENS].issue(found))


async def session_tokens(request: web.Request) -> web.Response:
    """GET authenticate: Issabel hands out the tokens of its web session; there is none."""
    return web.json_response({"status": "unauthorized"})


async def renew(request: web.Request) -> web.Response:
    tokens = request.app[TOKENS]
    refresh = await tokens.read(request.query.get("refresh_token", ""), "refresh")
    if refresh is None:
        return unauthorized()
    if refresh.expired:
        return web.json_response({"status": "expired", "type": "refresh"})
    given = request.query.get("access_token", "")
    if given:
        access = await tokens.read(given, "access")
        if access is None or access.login_id != refresh.login_id:
            return unauthorized()
    login = await _login_of(request, refresh)
    if login is None:
        return unauthorized()
    request[KEY_NAME] = f"login:{login.name}"
    answer: dict[str, Any] = await tokens.issue(login)
    return web.json_response({**answer, "status": "authorized"})


PUBLIC = frozenset({authenticate, session_tokens, renew})


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = request.match_info
    if match.http_exception is not None or match.handler in PUBLIC:
        return await handler(request)
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return forbidden()
    claims = await request.app[TOKENS].read(token.strip(), "access")
    if claims is None:
        return forbidden()
    if claims.expired:
        return web.json_response({"status": "expired"})
    login = await _login_of(request, claims)
    if login is None:
        return forbidden()
    request[LOGIN] = login
    request[KEY_NAME] = f"login:{login.name}"  # for the access log
    return await handler(request)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/authenticate", authenticate)
    app.router.add_get("/authenticate", session_tokens)
    app.router.add_get("/authenticate/renewtoken", renew)
