"""Secrets that sign tokens, one per PBX and purpose, kept in PostgreSQL (sql/006_writes.sql).

The Issabel pbxapi hands out HS256 JWTs: whoever holds the signing key can mint an access
token for any login. So the key is never a constant of the code or a line of the config:
the first bridge that needs it generates 64 random bytes and stores them; every bridge of
that PBX (a standby too) reads the same, so a token stays good across a fail-over.
"""

from __future__ import annotations

import secrets
from typing import TypeAlias

import asyncpg

from .queries import QUERIES

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
SECRET_BYTES = 64  # HS256 wants at least 32 (RFC 7518 3.2); more costs nothing


async def token_secret(db: Db, pbx_id: str, purpose: str) -> bytes:
    """The PBX's secret for `purpose`, generated and stored on first use."""
    for _ in range(2):
        found = await db.fetchval(
            QUERIES["token_secret"], pbx_id, purpose, secrets.token_bytes(SECRET_BYTES)
        )
        if found is not None:
            return bytes(found)
        # another bridge inserted it while this statement ran (its snapshot missed the
        # row): the next one sees it
    raise RuntimeError(f"no token secret for {pbx_id}/{purpose}")
