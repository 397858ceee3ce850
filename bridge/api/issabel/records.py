"""What the extensions and ring-groups resources share: ids from the URL, `?fields=`, the
next free number, the answers of a write, and the directory read once per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import asyncpg
from aiohttp import web

from ...provision.rules import EXTENSION
from ...store import directory as store
from ...store.queries import QUERIES
from ..services import services_of
from ..writes import Outcome
from .errors import IssabelError, success

MAX_IDS = 100  # ids of one comma list


def ids_of(request: web.Request) -> list[str]:
    """`1005` or `1005,1006` from the URL, each checked; 404 for one that cannot exist."""
    raw = request.match_info.get("id", "")
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not ids or len(ids) > MAX_IDS:
        raise IssabelError(404, "Record not found")
    return ids


def one_id(request: web.Request) -> str:
    ids = ids_of(request)
    if len(ids) != 1 or not EXTENSION.fullmatch(ids[0]):
        raise IssabelError(404, "Record not found")
    return ids[0]


def chosen(request: web.Request, defaults: Iterable[str], everything: Iterable[str]) -> list[str]:
    """The fields to show: the resource's defaults, plus `?fields=a,b` (known ones), or all of
    them for `fields=*`."""
    wanted = request.query.get("fields", "").strip()
    if wanted == "*":
        return list(everything)
    names = list(defaults)
    extra = [f.strip() for f in wanted.split(",") if f.strip()]
    return names + [f for f in everything if f in extra and f not in names]


def pick(record: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    return {f: record[f] for f in fields if f in record}


async def used_extensions(db: asyncpg.Pool | asyncpg.Connection, pbx_id: str) -> set[str]:
    return {r["ext"] for r in await db.fetch(QUERIES["used_extensions"], pbx_id)}


def next_free(used: set[str], own: Iterable[str], first: int) -> str:
    """Issabel's rule: the number after the lowest one of this kind, filling gaps; `first`
    when there is none. A number held by anything (an extension, a group) is skipped."""
    numbers = [int(e) for e in own if e.isdigit() and len(e) <= 18]
    n = min(numbers) + 1 if numbers else first
    while str(n) in used:
        n += 1
    return str(n)


def written(
    request: web.Request,
    outcome: Outcome,
    results: list[dict[str, Any]] | list[str],
    *,
    created: str | None = None,
) -> web.Response:
    """A write's answer: 201 with `Location` for a created record (Issabel's), else 200; the
    body says whether Asterisk runs the change (`apply`: applied, unchanged, stored,
    disabled) and, for `stored`, that it is stored, not applied."""
    headers = None
    status = 200
    if created is not None:
        base = str(request.url.with_query(None)).rstrip("/")
        location = base if base.endswith("/" + created) else f"{base}/{created}"
        headers = {"Location": location}
        status = 201
    return success(
        results, status=status, headers=headers, apply=outcome.status, message=outcome.message
    )


async def snapshot(request: web.Request) -> store.Snapshot:
    s = services_of(request)
    return await store.snapshot(s.pool, s.pbx_id)


async def _post_with_id(request: web.Request) -> web.Response:
    raise IssabelError(
        400,
        "We refuse to insert a record if a resource id is passed. For update use the PUT "
        "method instead.",
    )


async def _put_without_id(request: web.Request) -> web.Response:
    raise IssabelError(405, "Unable to update. Missing record id")


async def _delete_without_id(request: web.Request) -> web.Response:
    raise IssabelError(405, "Cannot delete if no ID is supplied")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_resource_routes(
    app: web.Application,
    path: str,
    *,
    list_all: Handler,
    create: Handler,
    get_one: Handler,
    put_one: Handler,
    delete: Handler,
) -> None:
    """One Issabel resource: GET/POST on the collection, GET/PUT/DELETE on `{id}` (a
    comma list for DELETE), and Issabel's own answers to the verbs that miss or carry an
    id they should not."""
    app.router.add_get(path, list_all)
    app.router.add_post(path, create)
    app.router.add_put(path, _put_without_id)
    app.router.add_delete(path, _delete_without_id)
    app.router.add_get(path + "/{id}", get_one)
    app.router.add_post(path + "/{id}", _post_with_id)
    app.router.add_put(path + "/{id}", put_one)
    app.router.add_delete(path + "/{id}", delete)
