"""Plain SQL migrations from `sql/`, applied in file-name order, each once.

Several bridges may start at the same time against one database: an advisory lock makes
them take turns, and each file runs in its own transaction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_LOCK_KEY = 0x6272_6964_6765  # "bridge"
log = logging.getLogger("bridge.store")


def migration_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    files = sorted(sql_dir.glob("[0-9][0-9][0-9]_*.sql"))
    if not files:
        raise FileNotFoundError(f"no migrations found in {sql_dir}")
    return files


async def migrate(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply what is missing; return the names applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in migration_files(sql_dir):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied_now.append(path.name)
            log.info("migration_applied", extra={"migration": path.name})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
