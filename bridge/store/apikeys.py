"""API keys for the pull APIs: made once, shown once, kept as a hash.

A key reads `cbk_<prefix>_<secret>`: the prefix finds its row, the SHA-256 of the whole
key is compared in constant time (keys are 190 random bits: a slow password hash would
buy nothing). Each key may be limited to client networks (others get 401, as cloud PBXs
answer) and to dialects (`native`, `vpbx`, `sangoma`, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from .errors import DB_ERRORS_OR_TIMEOUT
from .queries import QUERIES

KEY_PREFIX = "cbk_"
DIALECTS = ("native", "vpbx", "sangoma", "issabel", "billing")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    pbx_id: str
    name: str
    prefix: str
    networks: tuple[Network, ...]
    dialects: tuple[str, ...]
    secret_hash: bytes

    def allows(self, address: str | None, dialect: str) -> bool:
        if self.dialects and dialect not in self.dialects:
            return False
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKey:
        return cls(
            id=row["id"],
            pbx_id=row["pbx_id"],
            name=row["name"],
            prefix=row["prefix"],
            networks=tuple(ipaddress.ip_network(str(n)) for n in row["networks"]),
            dialects=tuple(row["dialects"]),
            secret_hash=bytes(row["secret_hash"]),
        )


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _prefix_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, rest = key[len(KEY_PREFIX) :].partition("_")
    return prefix if sep and prefix and rest and len(key) <= 200 else None


def parse_networks(values: list[str]) -> list[Network]:
    """`10.0.0.0/8`, `192.0.2.7` (one address), `2001:db8::/32`; ValueError names the bad one."""
    found = []
    for value in values:
        try:
            found.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return found


async def create_key(
    conn: asyncpg.Connection,
    pbx_id: str,
    name: str,
    networks: list[str] | None = None,
    dialects: list[str] | None = None,
) -> str:
    """A new key (returned once, never stored); ValueError says what is wrong."""
    if not name or len(name) > 100 or not name.isprintable():
        raise ValueError("name must be 1 to 100 printable characters")
    unknown = sorted(set(dialects or ()) - set(DIALECTS))
    if unknown:
        raise ValueError(f"unknown dialect(s) {unknown}; known: {', '.join(DIALECTS)}")
    nets = parse_networks(networks or [])
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    try:
        await conn.execute(
            QUERIES["create_api_key"],
            pbx_id,
            name,
            prefix,
            _digest(key),
            [str(n) for n in nets],
            list(dialects or ()),
        )
    except asyncpg.UniqueViolationError:
        raise ValueError(f"a key named {name!r} exists; revoke it or choose another name") from None
    return key


async def list_keys(conn: asyncpg.Connection, pbx_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(QUERIES["list_api_keys"], pbx_id)
    return [
        {
            **dict(r),
            "networks": [str(n) for n in r["networks"]],
            "created_at": r["created_at"].isoformat(),
            "last_used_at": r["last_used_at"].isoformat() if r["last_used_at"] else None,
            "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
        }
        for r in rows
    ]


async def revoke_key(conn: asyncpg.Connection, pbx_id: str, name: str) -> bool:
    status = await conn.execute(QUERIES["revoke_api_key"], pbx_id, name)
    return status.endswith(" 1")


class KeyRing:
    """Verifies presented keys; a verified key is remembered for `ttl` seconds, so a page
    of history costs no extra query (a revoked key stops working within `ttl`). The keys'
    `last_used_at` is written at a key's first use, then at most every `flush_every`
    seconds (one statement for all the keys used meanwhile)."""

    def __init__(
        self, pool: asyncpg.Pool, pbx_id: str, ttl: float = 10.0, flush_every: float = 10.0
    ) -> None:
        self.pool = pool
        self.pbx_id = pbx_id
        self.ttl = ttl
        self.flush_every = flush_every
        self._known: dict[str, tuple[float, ApiKey | None]] = {}
        self._used: set[int] = set()
        self._flushed = float("-inf")

    async def verify(self, presented: str | None) -> ApiKey | None:
        """The key's record when `presented` is a valid, unrevoked key of this PBX."""
        prefix = _prefix_of(presented or "")
        if prefix is None or presented is None:
            return None
        now = time.monotonic()
        cached = self._known.get(prefix)
        if cached is None or now - cached[0] > self.ttl:
            row = await self.pool.fetchrow(QUERIES["find_api_key"], self.pbx_id, prefix)
            record = ApiKey.from_row(row) if row is not None else None
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[prefix] = cached = (now, record)
        record = cached[1]
        if record is None or not hmac.compare_digest(record.secret_hash, _digest(presented)):
            return None
        self._used.add(record.id)
        if now - self._flushed >= self.flush_every:
            self._flushed = now
            with contextlib.suppress(*DB_ERRORS_OR_TIMEOUT):  # only a date: next time
                await self.flush_usage()
        return record

    def forget(self) -> None:
        self._known.clear()

    async def flush_usage(self) -> None:
        """Write `last_used_at` of the keys used since the last flush (one statement)."""
        used, self._used = self._used, set()
        if used:
            try:
                await self.pool.execute(QUERIES["touch_api_keys"], list(used))
            except BaseException:
                self._used |= used
                raise
