"""The VPBX "REST API for CRM" dialect, `/crmapi/v1` (header `X-API-KEY`).

Endpoints: `history/json`, `history/csv`, `history/inner/json`, `history/inner/csv`
(`history`), `makecall` (`makecall`), `users`, `users/{login}`, `users/{login}/groups`,
`groups`, `groups/{id}`, `groups/{id}/users`, `telnums`, `telnums/{telnum}`
(`directory`), `webhook`, `webhook/{id}` (`webhooks`). Each module says how it reads
the documentation where the documentation leaves a choice.

Writes, applied to Asterisk through bridge.provision (`writing` says how they answer):
`POST users`, `PUT|PATCH|DELETE users/{login}`, `GET|PUT|DELETE users/{login}/dnd`
(`employees`); `POST groups`, `PUT|PATCH|DELETE groups/{id}`, `PUT groups/{id}/users`
(`departments`); `POST telnums/{telnum}` (its route), `PUT|DELETE telnums/{telnum}/enabled`
(`numbers`); `GET|POST|DELETE blacklist/telnums`, `GET|POST|DELETE
blacklist/block-anonymous` (`blacklist`). The documentation's methods are OCR-garbled
badges: POST adds (6.3, 8.3, 9.3, 10.2, 10.4), PUT turns on or changes in bulk (6.9, 8.6,
9.5), DELETE removes or turns off; the edits of 6.4 and 8.4 ("only the parameters sent are
changed") take PATCH and PUT; where a client might send the other verb, it is taken too.

Errors are `{"message": ...}` with 400 (a parameter or body is wrong: "Validation error",
the documentation's words for it, then what is wrong, naming it), 401 `Invalid token`,
403 (a key limited to other APIs, see `auth`), 404, 405, 413 (a body too big), 502
(Asterisk refused a write: it is undone) and 503 (click-to-call or provisioning not
available).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import error_middleware
from ..services import Services
from . import blacklist, departments, directory, employees, history, makecall, numbers, webhooks
from .auth import vpbx_key_middleware
from .writing import write_errors

VALIDATION = "Validation error"  # the documentation's return value for every 400 (3.3)


def vpbx_error(status: int, message: str) -> dict[str, Any]:
    """`{"message": ...}`; a 400 leads with the documentation's words, then says what."""
    if status == 400 and not message.startswith(VALIDATION):
        message = f"{VALIDATION}: {message}"
    return {"message": message}


def create_vpbx_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[
            error_middleware(vpbx_error),
            vpbx_key_middleware(services.keys, vpbx_error),
            write_errors(vpbx_error),
        ]
    )
    history.add_routes(app)
    makecall.add_routes(app)
    directory.add_routes(app)
    webhooks.add_routes(app)
    employees.add_routes(app)
    departments.add_routes(app)
    numbers.add_routes(app)
    blacklist.add_routes(app)
    return app
