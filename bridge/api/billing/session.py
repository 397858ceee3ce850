"""`POST /api/login`, `POST /api/logout` (and `POST /api/register`, closed).

As the FusionPBX billing API (Laravel 8, Sanctum 2) answers them:
- login: 201 `{"user": {...}, "token": "<id>|<secret>", "success": true}`; wrong e-mail
  or password: 200 `{"message": "Invalid credentials.", "success": false, "data": ""}`
  (the original returns `response()->json(...)` without a status, hence 200); missing or
  malformed fields: 422 with Laravel's validation errors;
- logout: 200 `{"message": "Logged out successfully.", "success": true}`; the token used
  stops working (the original deletes every token of the user: this deletes the one
  presented, as its documentation says, so another client of the same login stays in);
- register: logins are made by the operator (`crm-bridge login add`), so 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from ...store import logins
from ..services import services_of
from .laravel import email, failure, read_input, string, validate

SESSION = web.RequestKey("billing_session", logins.Session)
DIALECT = "billing"


def laravel_time(at: datetime) -> str:
    """Laravel 8's JSON dates: `2026-11-22T11:20:14.000000Z`."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_json(login: logins.Login) -> dict[str, Any]:
    return {
        "id": login.id,
        "name": login.display_name or login.name,
        "email": login.name,
        "email_verified_at": None,
        "created_at": laravel_time(login.created_at),
        "updated_at": laravel_time(login.updated_at),
    }


async def login(request: web.Request) -> web.Response:
    data = validate(await read_input(request), {"email": (string, email), "password": (string,)})
    s = services_of(request)
    found = await logins.authenticate(s.pool, s.pbx_id, data["email"], data["password"], DIALECT)
    if found is None:
        return web.json_response(failure("Invalid credentials."))
    token = await logins.issue_token(s.pool, found, DIALECT)
    return web.json_response(
        {"user": user_json(found), "token": token, "success": True}, status=201
    )


async def logout(request: web.Request) -> web.Response:
    await logins.delete_token(services_of(request).pool, request[SESSION].token_id)
    return web.json_response({"message": "Logged out successfully.", "success": True})


async def register(request: web.Request) -> web.Response:
    return web.json_response(
        failure("Registration is closed: logins are made by the PBX's operator."), status=403
    )


PUBLIC = frozenset({login, register})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/login", login)
    app.router.add_post("/register", register)
    app.router.add_post("/logout", logout)
