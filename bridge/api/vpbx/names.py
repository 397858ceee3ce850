"""Who is who, for one request: the directory (employees, groups, company numbers) in
memory, so every row of a history or a list is named without a query of its own.

A call row keeps the employee's login as the webhook `user` said it when the call ended
(the extension itself when the directory did not know it yet). Rows are named by that
login if the directory has it, else by the extension: history and `/users` agree on
`login` once the directory is filled, and without a directory the login is the extension
and the name is empty.
"""

from __future__ import annotations

import asyncpg

from ...store import directory
from ...store.directory import Group, Number, User


class Names:
    def __init__(self, users: list[User], groups: list[Group], numbers: list[Number]) -> None:
        self.users = users
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

    def employee(self, login: str, ext: str) -> tuple[str, str]:
        """(login, name) of a call's employee."""
        u = self._by_login.get(login) if login else None
        if u is None and ext:
            u = self._by_ext.get(ext)
        if u is not None:
            return u.login, u.name
        return login or ext, ""

    def aliases(self, wanted: tuple[str, ...]) -> tuple[str, ...]:
        """Every login or extension a call row may carry for these employees."""
        found: list[str] = []
        for w in wanted:
            found.append(w)
            u = self.user(w)
            if u is not None:
                found += [u.login, u.ext] if u.ext else [u.login]
        return tuple(dict.fromkeys(found))

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
    return Names(snap.users, snap.groups, snap.numbers)
