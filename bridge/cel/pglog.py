"""Reading cel_pgsql's table (the same PostgreSQL as the bridge's, or another).

cel_pgsql writes one row per CEL event into the table of cel_pgsql.conf (`cel` by
default: id, eventtype, eventtime, cid_name, cid_num, exten, context, channame, appname,
appdata, uniqueid, linkedid, peer, userfield, extra, ...). `eventtime` is a `timestamp`
written in the PBX host's local time unless cel_pgsql.conf says `usegmtime = yes`: the
bridge reads a zone-less `timestamp` in `[cel] timezone` ("UTC" by default), and a
`timestamptz` as it is. Rows come in the order Asterisk wrote them (`id`, when the table
has one). An index on `eventtime` keeps reading a gap fast on a big table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import asyncpg

from ..observability.logs import get_logger
from .rows import CelRow

log = get_logger("bridge.cel")
T = TypeVar("T")
# seconds one read of the CEL table may take: a stalled CEL database must not hold the
# backfill (and the parked calls waiting for it) for ever; the read is retried later
READ_TIMEOUT = 60.0

_COLUMNS = (
    "eventtype",
    "cid_name",
    "cid_num",
    "exten",
    "context",
    "channame",
    "appname",
    "appdata",
    "uniqueid",
    "linkedid",
    "peer",
    "userfield",
    "extra",
)


def _quoted(table: str) -> str:
    """`cel` -> `"cel"`; `asterisk.cel` -> `"asterisk"."cel"` (names checked by config)."""
    return ".".join(f'"{part}"' for part in table.split("."))


class CelTable:
    def __init__(self, url: str, table: str = "cel", timezone: str = "UTC") -> None:
        self.url = url
        self.table = table
        self.timezone = timezone
        self._query: str | None = None
        self._naive = True  # `eventtime` is a zone-less timestamp (in `timezone`)
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = self._conn = await asyncpg.connect(self.url, timeout=10)
            self._query = None
        return conn

    async def _build(self, conn: asyncpg.Connection) -> str:
        schema, _, name = self.table.rpartition(".")
        found = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $1 AND ($2 = '' OR table_schema = $2)",
            name,
            schema,
        )
        types = {r["column_name"].lower(): r["data_type"] for r in found}
        if not types:
            raise LookupError(f"no table {self.table!r} in the CEL database")
        missing = {"eventtype", "eventtime", "uniqueid", "linkedid", "channame"} - set(types)
        if missing:
            raise LookupError(f"CEL table {self.table!r} lacks {', '.join(sorted(missing))}")
        naive = self._naive = types["eventtime"] == "timestamp without time zone"
        when = "eventtime AT TIME ZONE $2" if naive else "eventtime"
        since = "(to_timestamp($1) AT TIME ZONE $2)" if naive else "to_timestamp($1)"
        columns = ", ".join(
            f"coalesce({c}::text, '') AS {c}" if c in types else f"'' AS {c}" for c in _COLUMNS
        )
        order = "id" if "id" in types else "eventtime"
        return (
            f"SELECT {columns}, extract(epoch FROM {when})::float8 AS eventtime "
            f"FROM {_quoted(self.table)} WHERE eventtime >= {since} "
            f"ORDER BY {order}"
        )

    async def rows(self, since: float) -> list[CelRow]:
        """Every row written at `since` or later, in the order Asterisk wrote them."""
        try:
            conn = await self._connection()
            if self._query is None:
                self._query = await self._build(conn)
            zone = (self.timezone,) if self._naive else ()  # $2: a zone-less column's zone
            found = await conn.fetch(self._query, since, *zone, timeout=READ_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self.close()
            raise
        return [_row(r, i) for i, r in enumerate(found)]

    async def read(self, since: float, reader: Callable[[Iterable[CelRow]], T]) -> T:
        """`reader` over the rows written at `since` or later, in a worker thread."""
        rows = await self.rows(since)
        return await asyncio.to_thread(reader, rows)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()


def _row(r: Any, order: int) -> CelRow:
    return CelRow(
        eventtype=r["eventtype"],
        eventtime=r["eventtime"],
        uniqueid=r["uniqueid"],
        linkedid=r["linkedid"],
        channame=r["channame"],
        cid_num=r["cid_num"],
        cid_name=r["cid_name"],
        exten=r["exten"],
        context=r["context"],
        appname=r["appname"],
        appdata=r["appdata"],
        peer=r["peer"],
        userfield=r["userfield"],
        extra=r["extra"],
        order=order,
    )
