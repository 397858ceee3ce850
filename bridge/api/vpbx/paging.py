"""Lists as section 3.2 shapes them: `{"items": [...], "info": {search, total, start,
limit, next}}`, filtered by `search` (a substring, any case, of several fields) and paged
by `start`/`limit`.

No `limit`: everything from `start` on (`info.limit` is then the number of items given).
`info.next` is where the next page starts, present only while there is one: a client
follows it until it is gone and has read every item exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..params import Params

T = TypeVar("T")
MAX_LIMIT = 10_000


def listing(
    p: Params,
    items: Sequence[T],
    haystack: Callable[[T], Iterable[str]],
    shape: Callable[[T], dict[str, Any]],
) -> dict[str, Any]:
    search = p.text("search") or ""
    start = p.integer("start", 0, minimum=0)
    limit = (
        p.integer("limit", MAX_LIMIT, minimum=1, maximum=MAX_LIMIT)
        if p.raw("limit") is not None
        else None
    )
    if search:
        needle = search.casefold()
        items = [i for i in items if any(needle in f.casefold() for f in haystack(i))]
    total = len(items)
    chosen = items[start:] if limit is None else items[start : start + limit]
    info: dict[str, Any] = {
        "search": search,
        "total": total,
        "start": start,
        "limit": limit if limit is not None else len(chosen),
    }
    if limit is not None and start + limit < total:
        info["next"] = start + limit
    return {"items": [shape(i) for i in chosen], "info": info}
