"""How the VPBX dialect answers its writes (employees, departments, numbers, DND, the
black list), over bridge.api.writes.

- applied (or provisioning off: the directory only): the documented answer, the object
  (200) or 204 No Content;
- stored, not applied (Asterisk not reachable over AMI from this bridge): 202 Accepted,
  the object with a `message` field, or `{"message": "stored, not applied: ..."}` where
  the documented answer has no body. A client that only checks for 2xx goes on; one that
  looks sees that the PBX has not taken it yet (it does at the next AMI login);
- Asterisk refused the change (it is undone): 502 `{"message": ...}`; the change itself
  cannot be rendered: 400; provisioning not wired on this bridge: 503.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from ...provision import BadNumber, ProvisionError, UnknownEmployee
from ..errors import Handler, Shape, json_error
from ..writes import Outcome, WriteFailed


def answer(outcome: Outcome, body: dict[str, Any] | None = None) -> web.Response:
    if outcome.applied:
        return web.json_response(body) if body is not None else web.Response(status=204)
    return web.json_response({**(body or {}), "message": outcome.message}, status=202)


def write_errors(shape: Shape) -> Any:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except WriteFailed as exc:
            return json_error(shape, exc.status, exc.message)
        except (UnknownEmployee, BadNumber) as exc:
            return json_error(shape, 400, exc.message)
        except asyncpg.UniqueViolationError:  # two writers took the same extension at once
            return json_error(shape, 400, "ext: taken by another employee or group meanwhile")
        except ProvisionError as exc:
            return json_error(shape, 502, exc.message)

    return errors
