"""`X-API-KEY` as the VPBX API checks it (section 3.1, error codes of 3.3).

- no key, an unknown, tampered or revoked key, or a key used from a network it is not
  allowed from: 401 `Invalid token` (as every dialect answers an unlisted address);
- a live key limited to other dialects: 403 `Don't have permission to access` — the key
  is right but may not use this API, which is what 403 means in section 3.3, and a CRM
  showing "wrong key" would send its admin after the wrong problem.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from ...store.apikeys import KeyRing
from ..auth import API_KEY, KEY_NAME
from ..errors import Handler, Shape, json_error

DIALECT = "vpbx"
INVALID = (401, "Invalid token")
FORBIDDEN = (403, "Don't have permission to access")


def vpbx_key_middleware(keys: KeyRing, shape: Shape) -> Any:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        presented = request.headers.get("X-API-KEY")
        if not presented:
            return json_error(shape, *INVALID)
        key = await keys.verify(presented)
        if key is None:
            return json_error(shape, *INVALID)
        if not key.allows(request.remote, DIALECT):
            any_dialect = dataclasses.replace(key, dialects=())
            if not any_dialect.allows(request.remote, DIALECT):
                return json_error(shape, *INVALID)  # the network, not the dialect
            request[KEY_NAME] = key.name
            return json_error(shape, *FORBIDDEN)
        request[API_KEY] = key
        request[KEY_NAME] = key.name  # for the access log
        return await handler(request)

    return authenticate
