"""Webhook targets: the config's [crm] (stored as 'primary') and subscriptions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..config import signing_secret_problem
from ..crm.outbox_rows import Target
from ..crm.profiles import PROFILES
from ..crm.sangoma_call import COMMANDS as SANGOMA_COMMANDS
from .queries import QUERIES

COMMANDS = ("history", "event", "rating")
DIRECTIONS = ("in", "out", "both")


class TargetCache:
    """Enabled targets of one PBX, re-read at most every `ttl` seconds (every batch the
    pipeline stores needs them)."""

    def __init__(self, pbx_id: str, ttl: float = 5.0) -> None:
        self.pbx_id = pbx_id
        self.ttl = ttl
        self._targets: list[Target] = []
        self._loaded_at = float("-inf")

    async def get(self, conn: asyncpg.Connection) -> list[Target]:
        if time.monotonic() - self._loaded_at > self.ttl:
            rows = await conn.fetch(QUERIES["enabled_targets"], self.pbx_id)
            self._targets = [Target.from_row(r) for r in rows]
            self._loaded_at = time.monotonic()
        return self._targets

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")


async def ensure_primary_target(
    conn: asyncpg.Connection,
    pbx_id: str,
    url: str | None,
    token: str | None,
    profile: str,
    signing_secret: str | None,
) -> int | None:
    """The config's [crm] as the target named 'primary' (kept in step with the config).

    A primary switched off by a 410 stays off until an operator enables it again."""
    if not url:
        await conn.execute(QUERIES["disable_primary"], pbx_id)
        return None
    target_id: int = await conn.fetchval(
        QUERIES["ensure_primary"], pbx_id, url, token or "", profile, signing_secret
    )
    return target_id


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as an operator or an API client describes it."""

    name: str
    url: str
    token: str = ""
    profile: str = "vpbx"
    commands: tuple[str, ...] = COMMANDS
    direction: str = "both"
    signing_secret: str | None = None

    def problems(self) -> list[str]:
        found = []
        if self.name == "primary":
            found.append("'primary' is the config's [crm]; choose another name")
        if not self.name or len(self.name) > 100:
            found.append("name must be 1 to 100 characters")
        if self.direction not in DIRECTIONS:
            found.append(f"direction must be in, out or both, not {self.direction!r}")
        known = SANGOMA_COMMANDS if self.profile == "sangoma" else COMMANDS
        unknown = set(self.commands) - set(known)
        if unknown or not self.commands:
            found.append(f"commands are {', '.join(known)}; got {sorted(self.commands)}")
        if self.profile not in PROFILES:
            found.append(f"profile must be {', '.join(PROFILES)}, not {self.profile!r}")
        if not self.url.startswith(("http://", "https://")) or len(self.url) > 2000:
            found.append(f"{self.url[:100]!r} is not an http(s) URL")
        if self.signing_secret is not None:
            why = signing_secret_problem(self.signing_secret)
            if why:
                found.append(f"signing secret: {why}")
        return found


async def add_target(conn: asyncpg.Connection, pbx_id: str, sub: Subscription) -> int:
    """Add or replace (by name) a subscription; ValueError says what is wrong with it."""
    problems = sub.problems()
    if problems:
        raise ValueError("; ".join(problems))
    target_id: int = await conn.fetchval(
        QUERIES["add_target"],
        pbx_id,
        sub.name,
        sub.url,
        sub.token,
        sub.profile,
        list(sub.commands),
        sub.direction,
        sub.signing_secret,
    )
    return target_id


async def list_targets(conn: asyncpg.Connection, pbx_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(QUERIES["list_targets"], pbx_id)]


async def remove_target(conn: asyncpg.Connection, pbx_id: str, name: str) -> bool:
    """Deletes the subscription and its undelivered rows (never the primary)."""
    return _one(await conn.execute(QUERIES["remove_target"], pbx_id, name))


async def enable_target(conn: asyncpg.Connection, pbx_id: str, name: str) -> bool:
    """Switch a target on again (after a 410) and wake the workers."""
    done = _one(await conn.execute(QUERIES["enable_target"], pbx_id, name))
    await conn.execute(QUERIES["wake_workers"])
    return done


def _one(status: str) -> bool:
    return status.endswith(" 1")
