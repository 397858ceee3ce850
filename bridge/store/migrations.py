"""Plain SQL migrations (`sql/NNN_name.sql`), applied in name order, each once.

Several bridges may start at the same time against one database: an advisory lock makes
them take turns, and each file runs in its own transaction. The files ship inside the
package (`bridge.sql`), so an installed bridge migrates without a source checkout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from ..observability.logs import get_logger
from .queries import QUERIES, sql_files

_LOCK_KEY = 0x6272_6964_6765  # "bridge"
_NAME = re.compile(r"^\d{3}_[a-z0-9_]+\.sql$")
log = get_logger("bridge.store")


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str


def migration_files() -> list[Migration]:
    found = sorted((f for f in sql_files().iterdir() if _NAME.match(f.name)), key=lambda f: f.name)
    if not found:
        raise FileNotFoundError("no migrations found in the bridge.sql package")
    return [Migration(f.name, f.read_text()) for f in found]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply what is missing; return the names applied now."""
    applied_now: list[str] = []
    await conn.execute(QUERIES["migrations_lock"], _LOCK_KEY)
    try:
        await conn.execute(QUERIES["migrations_table"])
        done = {r["name"] for r in await conn.fetch(QUERIES["migrations_applied"])}
        for migration in migration_files():
            if migration.name in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(QUERIES["migration_done"], migration.name)
            applied_now.append(migration.name)
            log.info("migration_applied", migration=migration.name)
    finally:
        await conn.execute(QUERIES["migrations_unlock"], _LOCK_KEY)
    return applied_now
