"""Array codecs, learnt once per connection.

asyncpg encodes `text[]` and `oid[]` without asking the server; any other array type a
statement passes (`timestamptz[]`, `integer[]`, ...) makes its first use on a connection run
asyncpg's type-introspection query first: 16-25 ms each on the test machine, paid by the
first save on every new pool connection (one save in five in `bench.delivery`'s first
seconds). `prime_codecs`, the pool's `init`, asks once for all of them.
"""

from __future__ import annotations

import asyncpg

__all__ = ["ARRAY_TYPES", "PRIME", "prime_codecs"]

# every non-text array type a named query (sql/queries.sql) or the store passes;
# (tests/integration/test_pool.py checks the list against every query)
ARRAY_TYPES = ("timestamptz[]", "integer[]", "bigint[]", "cidr[]")

PRIME = "SELECT " + ", ".join(f"${n}::{t}" for n, t in enumerate(ARRAY_TYPES, 1))


async def prime_codecs(conn: asyncpg.Connection) -> None:
    """One introspection for the store's array types, before the connection's first use."""
    await conn.prepare(PRIME)
