"""Query parameters of the calls endpoints -> `history.CallQuery`, and the pages' names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from ...store import directory, history
from ...store.queries import QUERIES
from ..errors import bad_request
from ..params import Params
from . import cursor

DIRECTIONS = ("in", "out", "internal")
STATUSES = ("Success", "missed", "Cancel", "Busy", "NotAvailable", "NotAllowed", "NotFound")
SORTS = tuple(history.SORTS)  # start, duration, wait
ORDERS = ("desc", "asc")
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000  # deeper: page with the cursor

# single-valued parameters, and lists (repeated or comma-separated)
FILTERS = (
    "from",
    "to",
    "ended_from",
    "ended_to",
    "phone",
    "diversion",
    "q",
    "missed_status",
)
FILTER_LISTS = ("direction", "status", "user", "ext", "participant", "group", "callid")
ORDERING = ("sort", "order")
PAGING = ("offset", "limit", "after", "total")


async def group_names(
    db: asyncpg.Pool, pbx_id: str, values: Sequence[str], kind: str | None = None
) -> tuple[str, ...]:
    """Group filter values as the names calls carry: each value is taken as a name, and a
    directory group (of `kind`, if given) whose id or number it is adds its name."""
    if not values:
        return ()
    names = dict.fromkeys(values)
    for g in await directory.groups(db, pbx_id):
        if (kind is None or g.kind == kind) and any(v in (str(g.id), g.ext) for v in values):
            names[g.name] = None
    return tuple(names)


async def logins_of(db: asyncpg.Pool, pbx_id: str, values: Sequence[str]) -> tuple[str, ...]:
    """Employees named by login or extension, as the logins calls carry (a value the
    directory does not know is kept: calls may name employees it has not learnt yet)."""
    if not values:
        return ()
    logins = dict.fromkeys(values)
    for r in await db.fetch(QUERIES["native_logins"], pbx_id, list(values)):
        logins[r["login"]] = None
    return tuple(logins)


async def user_names(db: asyncpg.Pool, pbx_id: str, logins: Iterable[str]) -> dict[str, str]:
    wanted = sorted({login for login in logins if login})
    if not wanted:
        return {}
    rows = await db.fetch(QUERIES["native_user_names"], pbx_id, wanted)
    return {r["login"]: r["name"] for r in rows}


def ordering(p: Params, sorts: Sequence[str] = SORTS) -> tuple[str, bool]:
    return p.choice("sort", sorts, "start"), p.choice("order", ORDERS, "desc") == "desc"


async def call_query(db: asyncpg.Pool, pbx_id: str, p: Params, *, paged: bool) -> history.CallQuery:
    """The CallQuery of the filters (and, `paged`, the page) of a calls request."""
    sort, descending = ordering(p)
    after = p.raw("after") if paged else None
    missed = p.integer("missed_status", -1, minimum=0, maximum=32767)
    try:
        return history.CallQuery(
            since=p.time("from"),
            until=p.time("to"),
            ended_since=p.time("ended_from"),
            ended_until=p.time("ended_to"),
            directions=p.choices("direction", DIRECTIONS),
            statuses=p.choices("status", STATUSES),
            users=p.strings("user"),
            exts=p.strings("ext"),
            participants=p.strings("participant"),
            groups=await group_names(db, pbx_id, p.strings("group")),
            phone=p.phone("phone"),
            diversion=p.phone("diversion"),
            search=p.text("q"),
            missed_status=None if missed < 0 else missed,
            callids=p.strings("callid"),
            sort=sort,
            descending=descending,
            offset=p.integer("offset", 0, minimum=0, maximum=MAX_OFFSET) if paged else 0,
            limit=p.integer("limit", 100, minimum=1, maximum=MAX_LIMIT) if paged else 0,
            after=cursor.decode(after, sort, descending) if after else None,
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
