"""Logins of the password-based dialects (billing, Issabel) and their bearer tokens.

A login has a name (an e-mail for the billing API, a user name for Issabel), an argon2id
hash of its password (argon2-cffi) and the dialects it may use; `crm-bridge login add`
makes one. Hashing and verifying take tens of milliseconds on purpose, so they run in a
worker thread and never stall the event loop; an unknown name costs the same time as a
wrong password (nothing tells which names exist).

A token reads `<id>|<secret>`, the Laravel Sanctum form billing clients already parse:
the id finds the row, only the SHA-256 of the secret is stored (40 random characters: a
slow hash would buy nothing). A token works for the dialect it was issued for only and
until it is deleted (logout) or expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeAlias

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .queries import QUERIES

PASSWORD_DIALECTS = ("billing", "issabel")
MIN_PASSWORD = 8  # characters (Laravel's Password::defaults())
MAX_PASSWORD = 1024
_HASHER = PasswordHasher()
_ALPHABET = string.ascii_letters + string.digits

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class Login:
    id: int
    pbx_id: str
    name: str
    display_name: str
    dialects: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def allows(self, dialect: str) -> bool:
        return not self.dialects or dialect in self.dialects

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Login:
        return cls(
            id=row["id"],
            pbx_id=row["pbx_id"],
            name=row["name"],
            display_name=row["display_name"],
            dialects=tuple(row["dialects"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class Session:
    """A verified token: whose it is, and its id (logout deletes it)."""

    login: Login
    token_id: int


def name_problem(name: str) -> str | None:
    if not name or len(name) > 200 or not name.isprintable() or name != name.strip():
        return "the name must be 1 to 200 printable characters, without spaces around it"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the password must have at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"the password must have at most {MAX_PASSWORD} characters"
    if "\n" in password or "\r" in password or "\x00" in password:
        return "the password must be one line"
    return None


async def create_login(
    conn: Db,
    pbx_id: str,
    name: str,
    password: str,
    *,
    dialects: list[str] | None = None,
    display_name: str = "",
) -> Login:
    """A new login; ValueError says what is wrong (never quoting the password)."""
    problem = name_problem(name) or password_problem(password)
    if problem:
        raise ValueError(problem)
    unknown = sorted(set(dialects or ()) - set(PASSWORD_DIALECTS))
    if unknown:
        raise ValueError(
            f"unknown dialect(s) {unknown}; logins are for {', '.join(PASSWORD_DIALECTS)}"
        )
    if len(display_name) > 200 or not display_name.isprintable():
        raise ValueError("the display name must be at most 200 printable characters")
    hashed = await asyncio.to_thread(_HASHER.hash, password)
    try:
        row = await conn.fetchrow(
            QUERIES["create_login"], pbx_id, name, display_name, hashed, list(dialects or ())
        )
    except asyncpg.UniqueViolationError:
        raise ValueError(f"a login named {name!r} exists; remove it first") from None
    return Login.from_row(row)


async def list_logins(conn: Db, pbx_id: str) -> list[dict[str, Any]]:
    return [
        {
            "name": r["name"],
            "display_name": r["display_name"],
            "dialects": list(r["dialects"]),
            "created_at": r["created_at"].isoformat(),
            "last_login_at": r["last_login_at"].isoformat() if r["last_login_at"] else None,
            "live_tokens": r["live_tokens"],
        }
        for r in await conn.fetch(QUERIES["list_logins"], pbx_id)
    ]


async def remove_login(conn: Db, pbx_id: str, name: str) -> bool:
    """Deletes the login and every token it holds."""
    status = await conn.execute(QUERIES["remove_login"], pbx_id, name)
    return status.endswith(" 1")


@cache
def _dummy_hash() -> str:
    """Verified when the name is unknown, so that answer takes as long as a wrong password."""
    return _HASHER.hash(secrets.token_hex(16))


def _verify(hashed: str | None, password: str) -> bool:
    if hashed is None:
        _verify(_dummy_hash(), password)
        return False
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


async def authenticate(db: Db, pbx_id: str, name: str, password: str, dialect: str) -> Login | None:
    """The login when `password` is its password and it may use `dialect`; else None."""
    row = await db.fetchrow(QUERIES["find_login"], pbx_id, name)
    hashed: str | None = row["password_hash"] if row is not None else None
    good = await asyncio.to_thread(_verify, hashed, password)
    if row is None or hashed is None or not good:
        return None
    login = Login.from_row(row)
    if not login.allows(dialect):
        return None
    if _HASHER.check_needs_rehash(hashed):
        fresh = await asyncio.to_thread(_HASHER.hash, password)
        await db.execute(QUERIES["rehash_login"], login.id, fresh)
    return login


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


async def issue_token(db: Db, login: Login, dialect: str, ttl: float | None = None) -> str:
    """A new `<id>|<secret>` token (returned once, never stored)."""
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(40))
    token_id: int = await db.fetchval(
        QUERIES["create_login_token"], login.id, dialect, _digest(secret), ttl
    )
    return f"{token_id}|{secret}"


def _split(token: str) -> tuple[int, str] | None:
    head, sep, secret = token.partition("|")
    if not sep or not head.isascii() or not head.isdigit() or len(head) > 18:
        return None
    if not 0 < len(secret) <= 200:
        return None
    return int(head), secret


async def verify_token(db: Db, pbx_id: str, token: str, dialect: str) -> Session | None:
    """The session of a live token of this PBX issued for `dialect`; None otherwise."""
    parts = _split(token)
    if parts is None:
        return None
    token_id, secret = parts
    row = await db.fetchrow(QUERIES["use_login_token"], pbx_id, token_id, dialect, _digest(secret))
    if row is None:
        return None
    login = Login.from_row(row)
    return Session(login, token_id) if login.allows(dialect) else None


async def delete_token(db: Db, token_id: int) -> bool:
    status = await db.execute(QUERIES["delete_login_token"], token_id)
    return status.endswith(" 1")
