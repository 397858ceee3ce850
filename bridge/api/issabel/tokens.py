"""The Issabel pbxapi's tokens: HS256 JWTs as Issabel's jwtauth makes them.

- access token: `{"iat", "exp", "data": {"name": <login>}}` as Issabel's, plus `sub` (the
  login's id) and `typ` "access": a login removed (or removed and made again under the same
  name) loses its tokens, and a refresh token is never taken as an access token;
- refresh token: the same with `typ` "refresh" (Issabel's carry no data and any token of
  the key passes as one: these name their login and only renew).

Lifetimes: the access token lives ACCESS_TTL (an hour, as Issabel since 4.0.0-6 sets
`JWT_EXPIRES`), the refresh token REFRESH_TTL (a day: what Issabel's own renewal hands out,
24 times the access lifetime), both from when they are issued; a renewal issues both anew.

The key is the PBX's own (bridge.store.token_secrets), read once per process. Time comes
from `now()`, looked up on this module at every use, so tests replace it (no sleeping until
a token expires); expiry is checked here against it, not by PyJWT against the wall clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import jwt

from ...store.logins import Login
from ...store.token_secrets import token_secret

ACCESS_TTL = 3600  # seconds
REFRESH_TTL = 86400
PURPOSE = "issabel-jwt"
MAX_TOKEN = 4096  # characters: a token of ours is ~250
ALGORITHM = "HS256"

Kind = Literal["access", "refresh"]


def now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True)
class Claims:
    login_id: int
    name: str
    expired: bool


class Tokens:
    def __init__(self, pool: asyncpg.Pool, pbx_id: str) -> None:
        self.pool = pool
        self.pbx_id = pbx_id
        self._key: bytes | None = None

    async def key(self) -> bytes:
        if self._key is None:
            self._key = await token_secret(self.pool, self.pbx_id, PURPOSE)
        return self._key

    async def issue(self, login: Login) -> dict[str, Any]:
        """Issabel's answer to a good authentication: both tokens, `expires_in` seconds."""
        key = await self.key()
        issued = int(now())
        return {
            "access_token": self._encode(key, login, "access", issued, ACCESS_TTL),
            "expires_in": ACCESS_TTL,
            "refresh_token": self._encode(key, login, "refresh", issued, REFRESH_TTL),
            "token_type": "Bearer",
        }

    @staticmethod
    def _encode(key: bytes, login: Login, kind: Kind, issued: int, ttl: int) -> str:
        payload = {
            "iat": issued,
            "exp": issued + ttl,
            "sub": str(login.id),
            "typ": kind,
            "data": {"name": login.name},
        }
        return jwt.encode(payload, key, algorithm=ALGORITHM)

    async def read(self, token: str, kind: Kind) -> Claims | None:
        """The claims of a token of ours of this kind (`expired` said, not refused);
        None for anything else: malformed, signed with another key, of the other kind."""
        if not token or len(token) > MAX_TOKEN or not token.isascii():
            return None
        try:
            payload = jwt.decode(
                token,
                await self.key(),
                algorithms=[ALGORITHM],
                options={
                    "verify_exp": False,  # checked below, against now()
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "sub", "typ", "data"],
                },
            )
        except jwt.InvalidTokenError:
            return None
        data = payload.get("data")
        sub, exp = payload.get("sub"), payload.get("exp")
        if payload.get("typ") != kind or not isinstance(data, dict):
            return None
        name = data.get("name")
        if not isinstance(name, str) or not isinstance(sub, str) or not sub.isdigit():
            return None
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        return Claims(int(sub), name, expired=now() >= exp)
