"""The named queries of `sql/queries.sql`, read once with importlib.resources.

Queries stay SQL, in one file a DBA can read; code names them: `QUERIES["claim"]`.
Each query in the file starts with a `-- name --` line.
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_][a-z0-9_]*) --$", re.MULTILINE)


def sql_files() -> resources.abc.Traversable:
    """The folder of the SQL files, inside the installed package."""
    return resources.files("bridge.sql")


def parse_queries(text: str) -> dict[str, str]:
    """`-- name --` headed blocks -> {name: query}; comment lines are kept, they are SQL."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        query = body.strip().rstrip(";").strip()
        if not query:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = query
    return queries


QUERIES: dict[str, str] = parse_queries(sql_files().joinpath("queries.sql").read_text())
