"""Who is who: the directory (employees, groups, company numbers) in memory for the list
endpoints, and the logins and extensions a history filter on an employee must match.

A call row keeps the employee's login as the webhook `user` said it when the call ended
(the extension itself when the directory did not know it yet). History names it by that
login if the directory has it, else by the extension (the query layer's NAMED_COLUMNS):
history and `/users` agree on `login` once the directory is filled, and without a
directory the login is the extension and the name is empty.
"""

from __future__ import annotations

import asyncpg

from ...store import directory
from ...store.directory import Group, Number, User
from ...store.queries import QUERIES


class Names:
    def __init__(
        self,
        users: list[User],
        groups: list[Group],
        numbers: list[Number],
        norecord: frozenset[str] = frozenset(),
        dnd: frozenset[str] = frozenset(),
    ) -> None:
        self.users = users
        self.norecord = norecord  # logins whose conversations are never recorded
        self.dnd_or_norecord = norecord | dnd  # logins with keys of their own in AstDB
        self.groups = groups
        self.numbers = numbers
        self._by_login = {u.login: u for u in users}
        self._by_ext = {u.ext: u for u in users if u.ext}
        self._numbers = {n.telnum: n for n in numbers}
        self._groups = {str(g.id): g for g in groups}

    def user(self, login_or_ext: str) -> User | None:
        """By login, else by extension (both name an employee in this API)."""
        if not login_or_ext:
            return None
        found: User | None = self._by_login.get(login_or_ext)
        if found is None:
            found = self._by_ext.get(login_or_ext)
        return found

    def number(self, telnum: str) -> Number | None:
        return self._numbers.get(telnum) if telnum else None

    def group(self, ref: str) -> Group | None:
        """By id, else by extension (or queue name), else by name."""
        found: Group | None = self._groups.get(ref)
        if found is None:
            found = next((g for g in self.groups if g.ext and g.ext == ref), None)
        if found is None:
            found = next((g for g in self.groups if g.name == ref), None)
        return found

    def groups_of(self, u: User) -> list[Group]:
        keys = {u.login, u.ext} - {""}
        return [g for g in self.groups if keys & set(g.members)]


async def load(db: asyncpg.Pool | asyncpg.Connection, pbx_id: str) -> Names:
    snap = await directory.snapshot(db, pbx_id)
    norecord = frozenset(r["login"] for r in await db.fetch(QUERIES["norecord_logins"], pbx_id))
    dnd = frozenset(r["login"] for r in await db.fetch(QUERIES["dnd_logins"], pbx_id))
    return Names(snap.users, snap.groups, snap.numbers, norecord, dnd)


async def aliases(
    db: asyncpg.Pool | asyncpg.Connection, pbx_id: str, wanted: tuple[str, ...]
) -> tuple[str, ...]:
    """Every login or extension a call row may carry for these employees (a query per
    employee asked for: a history filter names one or a few)."""
    found: list[str] = []
    for w in wanted:
        found.append(w)
        u = await directory.user(db, pbx_id, w)
        if u is not None:
            found += [u.login, u.ext] if u.ext else [u.login]
    return tuple(dict.fromkeys(found))
