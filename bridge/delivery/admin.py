"""Operator tools on the outbox: list what failed, re-drive it (CLI now, API later)."""

from __future__ import annotations

import asyncpg

LIST = """
SELECT o.id, t.name AS target, o.callid, o.cmd, o.state, o.attempts, o.last_status,
       o.last_error, o.created_at, o.available_at, o.webhook_id
FROM webhook_outbox o JOIN webhook_targets t ON t.id = o.target_id
WHERE ($1::text IS NULL OR o.state = $1)
ORDER BY o.id DESC LIMIT $2
"""


async def list_rows(
    conn: asyncpg.Connection, state: str | None = None, limit: int = 50
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST, state, limit)


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT state, count(*) AS n FROM webhook_outbox GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


async def redrive(conn: asyncpg.Connection, ids: list[int] | None = None) -> int:
    """Dead letters (all, or these ids) back to pending, with a fresh retry window.
    Their webhook-id stays the same, so a receiver that got one anyway drops it."""
    result = await conn.execute(
        "UPDATE webhook_outbox SET state = 'pending', available_at = now(), attempts = 0, "
        "expires_at = now() + (expires_at - created_at), "  # NULL stays NULL
        "created_at = now(), first_attempt_at = NULL, lease_until = NULL "
        "WHERE state = 'dead' AND ($1::bigint[] IS NULL OR id = ANY($1))",
        ids,
    )
    await conn.execute("SELECT pg_notify('webhook_outbox', '')")
    return int(result.split()[-1])


async def enable_target(conn: asyncpg.Connection, pbx_id: str, name: str) -> bool:
    result = await conn.execute(
        "UPDATE webhook_targets SET enabled = true, disabled_reason = '' "
        "WHERE pbx_id = $1 AND name = $2",
        pbx_id,
        name,
    )
    await conn.execute("SELECT pg_notify('webhook_outbox', '')")
    return result.endswith(" 1")


async def list_targets(conn: asyncpg.Connection, pbx_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, name, url, profile, commands, direction, enabled, disabled_reason, "
        "signing_secret IS NOT NULL AS signed FROM webhook_targets WHERE pbx_id = $1 "
        "ORDER BY id",
        pbx_id,
    )


async def add_target(
    conn: asyncpg.Connection,
    pbx_id: str,
    name: str,
    url: str,
    *,
    token: str = "",
    profile: str = "vpbx",
    commands: tuple[str, ...] = ("history", "event", "rating"),
    direction: str = "both",
    signing_secret: str | None = None,
) -> int:
    """A webhook subscription (another CRM, a billing hook). Replaces one of the same name."""
    if name == "primary":
        raise ValueError("'primary' is the config's [crm]; choose another name")
    if direction not in ("in", "out", "both"):
        raise ValueError(f"direction must be in, out or both, not {direction!r}")
    unknown = set(commands) - {"history", "event", "rating"}
    if unknown or not commands:
        raise ValueError(f"commands are history, event, rating; got {sorted(commands)}")
    if profile not in ("vpbx", "vpbx-legacy", "json"):
        raise ValueError(f"profile must be vpbx, vpbx-legacy or json, not {profile!r}")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return await conn.fetchval(
        """
        INSERT INTO webhook_targets (pbx_id, name, url, token, profile, commands, direction,
                                     signing_secret)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (pbx_id, name) DO UPDATE SET url = EXCLUDED.url, token = EXCLUDED.token,
            profile = EXCLUDED.profile, commands = EXCLUDED.commands,
            direction = EXCLUDED.direction, signing_secret = EXCLUDED.signing_secret,
            enabled = true, disabled_reason = ''
        RETURNING id
        """,
        pbx_id,
        name,
        url,
        token,
        profile,
        list(commands),
        direction,
        signing_secret,
    )


async def remove_target(conn: asyncpg.Connection, pbx_id: str, name: str) -> bool:
    """Deletes the subscription and its undelivered rows."""
    result = await conn.execute(
        "DELETE FROM webhook_targets WHERE pbx_id = $1 AND name = $2 AND name <> 'primary'",
        pbx_id,
        name,
    )
    return result.endswith(" 1")
